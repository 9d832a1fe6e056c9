"""Arithmetic and boolean expressions of job-class rules (the subset of expr-lang that rules use).

The agent's condition language (:mod:`cc.agent.expr`) has no arithmetic, which every
job-class variable needs (``mem_bw.avg / mem_bw.limits.peak * 100``), so rules get this
small parser.  Text is parsed into closures -- never ``eval`` -- and the names an
expression reads are returned, so a rule naming an unknown metric or parameter is
rejected when it is loaded, not when the first job arrives.

Grammar (loosest binding first)::

    or    := and (('||' | 'or') and)*
    and   := not (('&&' | 'and') not)*
    not   := ('!' | 'not') not | cmp
    cmp   := sum [('==' | '!=' | '<' | '<=' | '>' | '>=') sum]
    sum   := prod (('+' | '-') prod)*
    prod  := unary (('*' | '/' | '%') unary)*
    unary := '-' unary | atom
    atom  := NUMBER | STRING | 'true' | 'false' | 'nil' | NAME ('.' NAME)* | FUNC '(' args ')' | '(' or ')'

Functions: ``abs``, ``min``, ``max``.  Division follows IEEE floats as expr-lang does
(``x / 0`` is ``+Inf`` or ``NaN``; comparisons with ``NaN`` are false), so a metric whose
peak is 0 makes a rule not match instead of failing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["ExprError", "EvalError", "Compiled", "compile_expr"]

Env = dict[str, Any]
_Fn = Callable[[Env], Any]


class ExprError(ValueError):
    """The text does not parse (message gives the column)."""


class EvalError(ValueError):
    """Evaluation failed for this job (wrong types, a name without value)."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!().,])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)
_WORDS = {"and": "&&", "or": "||", "not": "!"}
_FUNCS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max}
MAX_LENGTH = 4000
MAX_DEPTH = 64


def _tokens(text: str) -> list[tuple[str, Any, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"column {pos + 1}: unexpected character {text[pos]!r}")
        kind, val = m.lastgroup, m.group()
        if kind == "num":
            out.append(("val", float(val), pos))
        elif kind == "str":
            out.append(("val", re.sub(r"\\(.)", r"\1", val[1:-1]), pos))
        elif kind == "name":
            if val in _WORDS:
                out.append(("op", _WORDS[val], pos))
            elif val in ("true", "false", "nil"):
                out.append(("val", {"true": True, "false": False, "nil": None}[val], pos))
            else:
                out.append(("name", val, pos))
        elif kind == "op":
            out.append(("op", val, pos))
        pos = m.end()
    out.append(("end", None, pos))
    return out


def _number(v: Any, op: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EvalError(f"'{op}' needs numbers, got {type(v).__name__} {v!r}")
    return float(v)


def _div(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def _mod(a: float, b: float) -> float:
    return math.nan if b == 0 else math.fmod(a, b)


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": _div, "%": _mod}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (isinstance(a, bool) or isinstance(b, bool)):
        return float(a) == float(b)
    return a == b


def _lookup(path: tuple[str, ...]) -> _Fn:
    dotted = ".".join(path)

    def get(env: Env) -> Any:
        v: Any = env
        for part in path:
            if not isinstance(v, dict) or part not in v:
                raise EvalError(f"{dotted!r} has no value")
            v = v[part]
        return v
    return get


def _or(a: _Fn, b: _Fn) -> _Fn:
    return lambda env: _truth(a(env), "||") or _truth(b(env), "||")


def _and(a: _Fn, b: _Fn) -> _Fn:
    return lambda env: _truth(a(env), "&&") and _truth(b(env), "&&")


def _arith(op: str, a: _Fn, b: _Fn) -> _Fn:
    f = _ARITH[op]
    return lambda env: f(_number(a(env), op), _number(b(env), op))


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0
        self.names: set[str] = set()

    def peek(self) -> tuple[str, Any, int]:
        return self.toks[self.i]

    def take(self) -> tuple[str, Any, int]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, *ops: str) -> str | None:
        kind, val, _ = self.peek()
        if kind == "op" and val in ops:
            self.i += 1
            return val
        return None

    def expect(self, op: str) -> None:
        kind, val, pos = self.take()
        if kind != "op" or val != op:
            raise ExprError(f"column {pos + 1}: expected {op!r}, found {_show(kind, val)}")

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"nested deeper than {MAX_DEPTH} levels")

    def parse(self) -> _Fn:
        fn = self.or_()
        kind, val, pos = self.peek()
        if kind != "end":
            raise ExprError(f"column {pos + 1}: unexpected {_show(kind, val)}")
        return fn

    def or_(self) -> _Fn:
        left = self.and_()
        while self.accept("||"):
            left = _or(left, self.and_())
        return left

    def and_(self) -> _Fn:
        left = self.not_()
        while self.accept("&&"):
            left = _and(left, self.not_())
        return left

    def not_(self) -> _Fn:
        if self.accept("!"):
            self.deeper()
            inner = self.not_()
            self.depth -= 1
            return lambda env: not _truth(inner(env), "!")
        return self.cmp()

    def cmp(self) -> _Fn:
        left = self.sum_()
        op = self.accept("==", "!=", "<", "<=", ">", ">=")
        if op is None:
            return left
        right = self.sum_()
        if op == "==":
            return lambda env: _equal(left(env), right(env))
        if op == "!=":
            return lambda env: not _equal(left(env), right(env))
        order = _ORDER[op]

        def compare(env: Env) -> bool:
            a, b = left(env), right(env)
            if isinstance(a, str) and isinstance(b, str):
                return order(a, b)
            return order(_number(a, op), _number(b, op))
        return compare

    def _binary(self, ops: tuple[str, ...], sub: Callable[[], _Fn]) -> _Fn:
        left = sub()
        while (op := self.accept(*ops)) is not None:
            left = _arith(op, left, sub())
        return left

    def sum_(self) -> _Fn:
        return self._binary(("+", "-"), self.prod)

    def prod(self) -> _Fn:
        return self._binary(("*", "/", "%"), self.unary)

    def unary(self) -> _Fn:
        if self.accept("-"):
            self.deeper()
            inner = self.unary()
            self.depth -= 1
            return lambda env: -_number(inner(env), "-")
        if self.accept("+"):
            return self.unary()
        return self.atom()

    def atom(self) -> _Fn:
        kind, val, pos = self.take()
        if kind == "val":
            return lambda env: val
        if kind == "op" and val == "(":
            self.deeper()
            inner = self.or_()
            self.depth -= 1
            self.expect(")")
            return inner
        if kind == "name":
            if self.accept("("):
                return self.call(val, pos)
            path = [val]
            while self.accept("."):
                k, v, p = self.take()
                if k != "name":
                    raise ExprError(f"column {p + 1}: expected a field name after '.', found {_show(k, v)}")
                path.append(v)
            self.names.add(".".join(path))
            return _lookup(tuple(path))
        raise ExprError(f"column {pos + 1}: unexpected {_show(kind, val)}")

    def call(self, name: str, pos: int) -> _Fn:
        fn = _FUNCS.get(name)
        if fn is None:
            raise ExprError(f"column {pos + 1}: unknown function {name!r} (known: {', '.join(sorted(_FUNCS))})")
        self.deeper()
        args: list[_Fn] = []
        if not self.accept(")"):
            args.append(self.or_())
            while self.accept(","):
                args.append(self.or_())
            self.expect(")")
        self.depth -= 1
        want = 1 if name == "abs" else None
        if (want is not None and len(args) != want) or not args:
            raise ExprError(f"column {pos + 1}: {name}() takes {want or 'at least one'} argument(s)")
        return lambda env: fn(*(_number(a(env), name) for a in args))


def _truth(v: Any, op: str) -> bool:
    if not isinstance(v, bool):
        raise EvalError(f"'{op}' needs true/false, got {type(v).__name__} {v!r}")
    return v


def _show(kind: str, val: Any) -> str:
    return "end of expression" if kind == "end" else repr(val)


class Compiled:
    """A parsed expression: call it with an environment; ``names`` are the dotted names it reads."""

    __slots__ = ("text", "names", "_fn")

    def __init__(self, text: str, fn: _Fn, names: frozenset[str]):
        self.text, self._fn, self.names = text, fn, names

    def __call__(self, env: Env) -> Any:
        try:
            return self._fn(env)
        except (TypeError, OverflowError) as e:
            raise EvalError(str(e)) from None


def compile_expr(text: Any) -> Compiled:
    """Parse an expression; :class:`ExprError` tells what and where (the caller adds file and field)."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("must be a non-empty string")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"longer than {MAX_LENGTH} characters")
    p = _Parser(text)
    fn = p.parse()
    return Compiled(text, fn, frozenset(p.names))
