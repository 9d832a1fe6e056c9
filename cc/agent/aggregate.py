"""The router's ``interval_aggregates``: derived metrics from one round's messages.

Each aggregate, as in cc-metric-collector::

    {"name": "mem_bw", "if": "name == 'mem_read_bw' || name == 'mem_write_bw'",
     "function": "sum(values)", "tags": {"type": "node"}, "meta": {"unit": "<copy>"}}

collects the values of the round's messages matching ``if`` and evaluates ``function``
on them.  The function is arithmetic (``+ - * /``, parentheses, numbers) over lists
reduced by ``sum``, ``min``, ``max``, ``avg``/``mean``, ``median`` and ``len``.  Names:
``values`` (all matching values), each matching metric's name (the list of its values,
so ``sum(mem_total) - sum(mem_free)`` works as upstream documents) and the constants
``numHWThreads``, ``numSockets``... given by the router.  A tag or meta value ``<copy>``
is taken from the first matching message that has it.

Unlike upstream, which emits derived metrics one interval late, the result is sent in
the same round with the round's timestamp.  In ``if``, a bare name that is no keyword is a
tag or meta key (``source == 'MemstatCollector'``), as upstream's examples write them.  Parsing is our own; nothing is ``eval``-ed.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections.abc import Callable
from typing import Any

from cc.agent.expr import Condition, ConditionError, compile_condition
from cc.agent.message import Message

__all__ = ["Aggregate", "AggregateError", "compile_function"]

log = logging.getLogger("agent.router")

_TOK = re.compile(r"\s*(?:(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                  r"|(?P<op>[-+*/(),]))")

_REDUCE: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum, "min": min, "max": max, "avg": statistics.fmean, "mean": statistics.fmean,
    "median": statistics.median, "len": len,
}

Env = dict[str, Any]
_Fn = Callable[[Env], Any]


class AggregateError(ValueError):
    """A bad ``interval_aggregates`` entry; the message names it."""


def compile_function(text: str, where: str) -> _Fn:
    """Compile an aggregate function into a callable on an environment of lists and constants."""
    if not isinstance(text, str) or not text.strip():
        raise AggregateError(f"{where}: expected an expression such as 'sum(values)'")
    toks: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOK.match(text, pos)
        if not m or not m.lastgroup:
            raise AggregateError(f"{where}: unexpected character {text[pos:].lstrip()[:1]!r} at column "
                                 f"{pos + 1 + len(text[pos:]) - len(text[pos:].lstrip())} in {text!r}")
        toks.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
        pos = m.end()
    toks.append(("end", "", len(text)))
    i = 0

    def fail(msg: str) -> None:
        raise AggregateError(f"{where}: {msg} at column {toks[i][2] + 1} in {text!r}")

    def peek(v: str) -> bool:
        return toks[i][0] == "op" and toks[i][1] == v

    def additive(depth: int) -> _Fn:
        nonlocal i
        left = term(depth)
        while peek("+") or peek("-"):
            op = toks[i][1]
            i += 1
            right = term(depth)
            left = _bin(op, left, right)
        return left

    def term(depth: int) -> _Fn:
        nonlocal i
        left = unary(depth)
        while peek("*") or peek("/"):
            op = toks[i][1]
            i += 1
            right = unary(depth)
            left = _bin(op, left, right)
        return left

    def unary(depth: int) -> _Fn:
        nonlocal i
        if depth > 64:
            fail("nested too deeply")
        if peek("-"):
            i += 1
            inner = unary(depth + 1)
            return lambda env: -_scalar(inner(env))
        kind, val, _ = toks[i]
        i += 1
        if kind == "num":
            c = float(val)
            return lambda env: c
        if kind == "op" and val == "(":
            e = additive(depth + 1)
            if not peek(")"):
                fail("expected ')'")
            i += 1
            return e
        if kind == "name":
            if peek("("):
                i += 1
                if val not in _REDUCE:
                    i -= 2
                    fail(f"unknown function {val!r} (known: {', '.join(_REDUCE)})")
                arg = additive(depth + 1)
                if not peek(")"):
                    fail(f"{val}() takes one list, expected ')'")
                i += 1
                f = _REDUCE[val]
                return lambda env: _reduce(f, arg(env))
            return lambda env: env.get(val, [])
        i -= 1
        fail(f"unexpected {val or 'end of expression'!r}")
        raise AssertionError

    fn = additive(0)
    if toks[i][0] != "end":
        fail(f"unexpected {toks[i][1]!r}")
    return fn


def _reduce(f: Callable[[list[float]], float], v: Any) -> float:
    if not isinstance(v, list):
        v = [v]
    if not v:
        raise ArithmeticError("no values")
    return float(f(v))


def _scalar(v: Any) -> float:
    if isinstance(v, list):
        if len(v) != 1:
            raise ArithmeticError("a list of several values used as a number (reduce it with sum(), avg()...)")
        return float(v[0])
    return float(v)


def _bin(op: str, a: _Fn, b: _Fn) -> _Fn:
    if op == "+":
        return lambda env: _scalar(a(env)) + _scalar(b(env))
    if op == "-":
        return lambda env: _scalar(a(env)) - _scalar(b(env))
    if op == "*":
        return lambda env: _scalar(a(env)) * _scalar(b(env))
    return lambda env: _scalar(a(env)) / _scalar(b(env))


def _condition(text: Any, where: str, env: dict[str, Any]) -> Condition:
    try:
        return compile_condition(text, where, env)
    except ConditionError as e:
        m = re.search(r"unknown name '([^']+)'", str(e))
        if not m:
            raise AggregateError(str(e)) from None
    # bare tag/meta names (upstream's old router put every tag and meta key into the condition's scope)
    names = set(re.findall(r"(?<![\w.'\"-])([A-Za-z_][\w-]*)(?![\w(])", _strip_strings(text)))
    rewritten = text
    for n in sorted(names, key=len, reverse=True):
        if n in env or n in ("true", "false", "nil", "null", "name", "value", "time", "timestamp",
                             "and", "or", "not", "in", "matches", "type", "type-id", "typeid", "stype", "stype-id",
                             "stypeid", "hostname", "cluster", "messagetype", "msgtype"):
            continue
        rewritten = re.sub(rf"(?<![\w.'\"-]){re.escape(n)}(?![\w(.-])", f"__any.{n}", rewritten)
    try:
        return compile_condition(rewritten.replace("__any.", "any."), where, env)
    except ConditionError as e:
        raise AggregateError(str(e)) from None


def _strip_strings(text: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", text)


class Aggregate:
    """One ``interval_aggregates`` entry, checked at load time."""

    def __init__(self, cfg: Any, where: str, constants: dict[str, Any]):
        if not isinstance(cfg, dict):
            raise AggregateError(f"{where}: expected an object with name, if, function, tags, meta")
        extra = set(cfg) - {"name", "if", "function", "tags", "meta"}
        if extra:
            raise AggregateError(f"{where}: unknown key {sorted(extra)[0]!r} (known: name, if, function, tags, meta)")
        self.name = cfg.get("name")
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in " ,"):
            raise AggregateError(f"{where}.name: expected a metric name, got {self.name!r}")
        self.cond = _condition(cfg.get("if", "true"), f"{where}.if", constants)
        self.fn = compile_function(cfg.get("function"), f"{where}.function")
        self.constants = constants
        for key in ("tags", "meta"):
            v = cfg.get(key) or {}
            if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
                raise AggregateError(f"{where}.{key}: expected an object of strings")
            setattr(self, key, dict(v))
        self.where = where
        self._failed = 0

    def evaluate(self, msgs: list[Message], ts: float, base_tags: dict[str, str]) -> Message | None:
        """The derived message for one round, or None if nothing matched (or the function failed)."""
        matches = [m for m in msgs if isinstance(m.value, (int, float)) and self.cond(m)]
        if not matches:
            return None
        env: Env = dict(self.constants)
        env["values"] = [float(m.value) for m in matches]
        for m in matches:
            env.setdefault(m.name, [])
            if isinstance(env[m.name], list):
                env[m.name].append(float(m.value))
        try:
            value = _scalar(self.fn(env))
        except (ArithmeticError, ValueError, TypeError) as e:
            self._failed += 1
            if self._failed & (self._failed - 1) == 0:
                log.error("%s: cannot compute %s this round (%d times so far): %s",
                          self.where, self.name, self._failed, e)
            return None
        if not math.isfinite(value):
            return None
        tags = dict(base_tags)
        tags.update(_copied(self.tags, matches, "tags"))
        meta = _copied(self.meta, matches, "meta")
        return Message(self.name, tags, meta, value, ts)


def _copied(spec: dict[str, str], matches: list[Message], attr: str) -> dict[str, str]:
    out = {}
    for k, v in spec.items():
        if v == "<copy>":
            for m in matches:
                src = getattr(m, attr)
                if k in src:
                    out[k] = src[k]
                    break
        else:
            out[k] = v
    return out
