"""Line protocol -> :class:`Message`, for what the receivers take in (small volumes, pure Python).

Accepts what cc-lib and InfluxDB write: escaped measurement and tags, a ``value`` field
(float, ``i``/``u`` integers, booleans), optional further fields (ignored: a ClusterCockpit
metric has one value), an optional timestamp in the given precision -- ``auto`` (the default) reads it by its
magnitude, since cc-metric-collector sends seconds and InfluxDB clients nanoseconds --
or now when there is none.
A bad line is reported with its number and skipped; the good ones are kept.
"""

from __future__ import annotations

import re
import time

from cc.agent.message import PRECISIONS, Message

__all__ = ["parse_lines"]

_SPLIT = re.compile(r"(?<!\\) ")
_COMMA = re.compile(r"(?<!\\),")
_EQ = re.compile(r"(?<!\\)=")
_UNESC = re.compile(r"\\([,= \\\"])")


def _unesc(s: str) -> str:
    return _UNESC.sub(r"\1", s) if "\\" in s else s


def _value(raw: str) -> float | int | bool | None:
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    try:
        if raw[-1:] in ("i", "u"):
            return int(raw[:-1])
        return float(raw)
    except ValueError:
        return None


def _auto(ts: int) -> float:
    a = abs(ts)
    return ts if a < 10**11 else ts / 1e3 if a < 10**14 else ts / 1e6 if a < 10**17 else ts / 1e9


def parse_lines(text: str, precision: str = "auto", now: float | None = None) -> tuple[list[Message], list[str]]:
    """Messages of ``text`` and one error string per bad line (``line N: why``)."""
    div = PRECISIONS.get(precision, 0)
    out: list[Message] = []
    errors: list[str] = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = _SPLIT.split(line)
        if len(parts) not in (2, 3):
            errors.append(f"line {no}: expected 'measurement[,tags] fields [timestamp]'")
            continue
        head = _COMMA.split(parts[0])
        tags = {}
        ok = True
        for kv in head[1:]:
            kvs = _EQ.split(kv, 1)
            if len(kvs) != 2 or not kvs[0] or not kvs[1]:
                errors.append(f"line {no}: bad tag {kv!r}")
                ok = False
                break
            tags[_unesc(kvs[0])] = _unesc(kvs[1])
        if not ok:
            continue
        value = None
        for kv in _COMMA.split(parts[1]):
            kvs = _EQ.split(kv, 1)
            if len(kvs) == 2 and _unesc(kvs[0]) == "value":
                value = _value(kvs[1])
        if value is None:
            errors.append(f"line {no}: no numeric 'value' field")
            continue
        if len(parts) == 3:
            try:
                ts = int(parts[2]) / div if div else _auto(int(parts[2]))
            except ValueError:
                errors.append(f"line {no}: bad timestamp {parts[2][:30]!r}")
                continue
        else:
            ts = time.time() if now is None else now
        name = _unesc(head[0])
        if not name:
            errors.append(f"line {no}: empty measurement name")
            continue
        out.append(Message(name, tags, {}, value, ts))
    return out, errors
