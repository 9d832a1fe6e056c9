"""The router's condition language: a small, safe subset of cc-lib's message-processor terms.

Conditions come from configuration files, so they are parsed here into a tree of Python
closures -- never ``eval`` -- and every mistake is reported at load time with its column.

Grammar (loosest binding first)::

    expr    := and  (('||' | 'or')  and)*
    and     := not  (('&&' | 'and') not)*
    not     := ('!' | 'not') not | cmp
    cmp     := primary [('==' | '!=' | '<' | '<=' | '>' | '>=' | 'matches' | 'in' | 'not in') primary]
    primary := STRING | NUMBER | 'true' | 'false' | 'nil' | NAME | NAME '(' args ')'
             | '[' [expr (',' expr)*] ']' | '(' expr ')'

Names: ``name``, ``value``, ``timestamp``/``time``, ``messagetype``/``msgtype`` (always
``metric``), ``type``, ``type-id``, ``stype``, ``stype-id``, ``hostname``, ``cluster``, any tag
as ``tag.KEY``/``tags.KEY``/``tag_KEY``/``tags_KEY``, meta as ``meta.KEY``/``meta_KEY``,
``any.KEY`` (the tag, else the meta value: how the aggregator reads upstream's bare names), the
value as ``field.value``/``fields.value``/``field_value``, and constants from
``add_base_env``.  A missing tag or meta is ``nil``.  Strings are in single (or double)
quotes.  In regular expressions (``matches``, ``match(re, s)``) write ``%`` for ``\\`` as
upstream asks, since JSON makes backslashes painful.  Functions: ``match(re, s)``,
``startswith(s, prefix)``, ``endswith(s, suffix)``, ``contains(s, part)``, and
``metric.Name()`` (the name, as upstream's older router examples write it).  A string compared
with a number is read as a number (tags are strings: ``type-id == 0`` works).  ``*``
alone means ``true`` (legacy router syntax).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cc.agent.message import Message

__all__ = ["ConditionError", "compile_condition", "Condition"]

Condition = Callable[[Message], bool]
_Eval = Callable[[Message], Any]


class ConditionError(ValueError):
    """A condition does not parse or names something unknown (message says where)."""


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\],])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:[.\-][A-Za-z_][A-Za-z0-9_]*)*)
""", re.X)

_KEYWORDS = {"and": "&&", "or": "||", "not": "!"}
_TAG_ALIASES = {"type": "type", "type-id": "type-id", "typeid": "type-id", "stype": "stype",
                "stype-id": "stype-id", "stypeid": "stype-id", "hostname": "hostname", "cluster": "cluster"}


MAX_DEPTH = 64  # nesting of parentheses, brackets, calls and '!': deeper is an error, not a RecursionError
MAX_NUMBER_DIGITS = 64


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern.replace("%", "\\"))
    except (re.error, OverflowError, RecursionError) as e:  # 'a{99999999999}': OverflowError
        raise ConditionError(f"{where}: invalid regular expression {pattern!r}: {e}") from None


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    na, nb = _num(a), _num(b)
    if na is None or nb is None:
        return a == b
    return na == nb


def _order(op: str) -> Callable[[Any, Any], bool]:
    def cmp(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        if isinstance(a, str) and isinstance(b, str):
            x, y = a, b
        else:
            x, y = _num(a), _num(b)
            if x is None or y is None:
                return False
        if op == "<":
            return x < y
        if op == "<=":
            return x <= y
        if op == ">":
            return x > y
        return x >= y
    return cmp


class _Parser:
    def __init__(self, text: str, where: str, env: dict[str, Any]):
        self.text = text
        self.where = where
        self.env = env
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m:
                self.fail(f"unexpected character {text[pos]!r}", pos)
            kind = m.lastgroup or ""
            if kind != "ws":
                val = m.group()
                if kind == "name" and val in _KEYWORDS:
                    kind, val = "op", _KEYWORDS[val]
                self.toks.append((kind, val, pos))
            pos = m.end()
        self.toks.append(("end", "", len(text)))
        self.i = 0
        self.depth = 0

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nested more than {MAX_DEPTH} levels deep", pos)

    def fail(self, msg: str, pos: int | None = None) -> None:
        col = (self.toks[self.i][2] if pos is None else pos) + 1
        text = self.text if len(self.text) <= 200 else self.text[:200] + "..."
        raise ConditionError(f"{self.where}: {msg} at column {col} in {text!r}")

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i]

    def take(self) -> tuple[str, str, int]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, val: str) -> None:
        kind, v, _ = self.peek()
        if v != val or kind not in ("op",):
            self.fail(f"expected {val!r}, found {v or 'end of condition'!r}")
        self.i += 1

    def parse(self) -> _Eval:
        e = self.parse_or()
        if self.peek()[0] != "end":
            self.fail(f"unexpected {self.peek()[1]!r}")
        return e

    def parse_or(self) -> _Eval:
        parts = [self.parse_and()]
        while self.peek()[1] == "||" and self.peek()[0] == "op":
            self.i += 1
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda m: any(bool(p(m)) for p in parts)

    def parse_and(self) -> _Eval:
        parts = [self.parse_not()]
        while self.peek()[1] == "&&" and self.peek()[0] == "op":
            self.i += 1
            parts.append(self.parse_not())
        if len(parts) == 1:
            return parts[0]
        return lambda m: all(bool(p(m)) for p in parts)

    def parse_not(self) -> _Eval:
        if self.peek()[0] == "op" and self.peek()[1] == "!":
            self.enter(self.peek()[2])
            self.i += 1
            inner = self.parse_not()
            self.depth -= 1
            return lambda m: not inner(m)
        return self.parse_cmp()

    def parse_cmp(self) -> _Eval:
        left = self.parse_primary()
        kind, op, pos = self.peek()
        if kind == "op" and op in ("==", "!=", "<", "<=", ">", ">="):
            self.i += 1
            right = self.parse_primary()
            if op == "==":
                return lambda m: _eq(left(m), right(m))
            if op == "!=":
                return lambda m: not _eq(left(m), right(m))
            f = _order(op)
            return lambda m: f(left(m), right(m))
        if kind == "name" and op == "matches":
            self.i += 1
            rpos = self.peek()[2]
            right = self.parse_primary()
            const = getattr(right, "const", None)
            if not isinstance(const, str):
                self.fail("'matches' needs a quoted regular expression on its right", rpos)
            rx = _regex(const, self.where)
            return lambda m: isinstance(v := left(m), str) and rx.search(v) is not None
        negate = False
        if kind == "op" and op == "!" and self.toks[self.i + 1][1] == "in":
            negate = True
            self.i += 1
            kind, op, pos = self.peek()
        if kind == "name" and op == "in":
            self.i += 1
            right = self.parse_primary()

            def member(m: Message) -> bool:
                lst = right(m)
                if not isinstance(lst, list):
                    return False
                v = left(m)
                return any(_eq(v, x) for x in lst)
            return (lambda m: not member(m)) if negate else member
        if negate:
            self.fail("expected 'in' after '!'")
        return left

    def parse_primary(self) -> _Eval:
        kind, val, pos = self.take()
        if kind == "num":
            if len(val) > MAX_NUMBER_DIGITS:
                self.fail(f"number longer than {MAX_NUMBER_DIGITS} characters", pos)
            return _const(float(val) if any(c in val for c in ".eE") else int(val))
        if kind == "str":
            body = val[1:-1]
            return _const(re.sub(r"\\(.)", r"\1", body))
        if kind == "op" and val in "([":
            self.enter(pos)
            try:
                return self.parse_group(val)
            finally:
                self.depth -= 1
        if kind == "name":
            if self.peek()[0] == "op" and self.peek()[1] == "(":
                self.enter(pos)
                try:
                    return self.parse_call(val, pos)
                finally:
                    self.depth -= 1
            return self.name(val, pos)
        self.fail(f"unexpected {val or 'end of condition'!r}", pos)
        raise AssertionError  # unreachable

    def parse_group(self, val: str) -> _Eval:
        if val == "(":
            e = self.parse_or()
            self.expect(")")
            return e
        items: list[_Eval] = []  # '[' list ']'
        if not (self.peek()[0] == "op" and self.peek()[1] == "]"):
            items.append(self.parse_or())
            while self.peek()[0] == "op" and self.peek()[1] == ",":
                self.i += 1
                items.append(self.parse_or())
        self.expect("]")
        return lambda m: [it(m) for it in items]

    def parse_call(self, fname: str, pos: int) -> _Eval:
        self.expect("(")
        args: list[_Eval] = []
        if not (self.peek()[0] == "op" and self.peek()[1] == ")"):
            args.append(self.parse_or())
            while self.peek()[0] == "op" and self.peek()[1] == ",":
                self.i += 1
                args.append(self.parse_or())
        self.expect(")")
        if fname == "metric.Name":  # the older router's spelling of 'name'
            if args:
                self.fail("metric.Name() takes no arguments", pos)
            return lambda m: m.name
        if fname == "match":
            if len(args) != 2 or not isinstance(getattr(args[0], "const", None), str):
                self.fail("match() takes a quoted regular expression and a value: match('re', name)", pos)
            rx = _regex(args[0].const, self.where)  # type: ignore[attr-defined]
            subject = args[1]
            return lambda m: isinstance(v := subject(m), str) and rx.search(v) is not None
        funcs: dict[str, Callable[[str, str], bool]] = {
            "startswith": str.startswith, "endswith": str.endswith,
            "contains": lambda s, p: p in s,
        }
        if fname in funcs:
            if len(args) != 2:
                self.fail(f"{fname}() takes two arguments", pos)
            f, a, b = funcs[fname], args[0], args[1]

            def call(m: Message) -> bool:
                x, y = a(m), b(m)
                return isinstance(x, str) and isinstance(y, str) and f(x, y)
            return call
        self.fail(f"unknown function {fname!r} (known: match, startswith, endswith, contains)", pos)
        raise AssertionError

    def name(self, n: str, pos: int) -> _Eval:
        if n == "true":
            return _const(True)
        if n == "false":
            return _const(False)
        if n in ("nil", "null"):
            return _const(None)
        if n == "name":
            return lambda m: m.name
        if n in ("value", "field.value", "fields.value", "field_value", "fields_value"):
            return lambda m: m.value
        if n in ("timestamp", "time"):
            return lambda m: m.time
        if n in ("messagetype", "msgtype"):
            return _const("metric")
        if n in self.env:
            return _const(self.env[n])
        key = None
        for prefix in ("tags.", "tag.", "tags_", "tag_"):
            if n.startswith(prefix) and len(n) > len(prefix):
                key = n[len(prefix):]
                key = _TAG_ALIASES.get(key, key) if key in ("typeid", "stypeid") else key
                break
        if key is None and n in _TAG_ALIASES:
            key = _TAG_ALIASES[n]
        if key is not None:
            k = key
            return lambda m: m.tags.get(k)
        if n.startswith("any.") and len(n) > 4:  # tag, else meta (the aggregator's bare names)
            ak = n[4:]
            return lambda m: m.tags.get(ak, m.meta.get(ak))
        for prefix in ("meta.", "meta_"):
            if n.startswith(prefix) and len(n) > len(prefix):
                mk = n[len(prefix):]
                return lambda m: m.meta.get(mk)
        hint = ""
        if self.i == 1 and self.peek()[0] == "end":
            hint = f" (to match a metric name write \"name == '{n}'\")"
        else:
            hint = f" (tags are tag.{n}, meta is meta.{n})"
        self.fail(f"unknown name {n!r}{hint}", pos)
        raise AssertionError


def _const(v: Any) -> _Eval:
    f = lambda m: v  # noqa: E731
    f.const = v  # type: ignore[attr-defined]
    return f


def compile_condition(text: str, where: str = "condition", env: dict[str, Any] | None = None) -> Condition:
    """Compile ``text`` into a predicate on messages; raises :class:`ConditionError` naming ``where``."""
    if not isinstance(text, str):
        raise ConditionError(f"{where}: a condition must be a string, got {text!r}")
    if text.strip() in ("*", ""):
        if text.strip() == "":
            raise ConditionError(f"{where}: empty condition (use 'true' to match every message)")
        return lambda m: True
    ev = _Parser(text, where, env or {}).parse()
    const = getattr(ev, "const", _MISSING)
    if const is not _MISSING:
        c = bool(const)
        return lambda m: c
    return lambda m: bool(ev(m))


_MISSING = object()
