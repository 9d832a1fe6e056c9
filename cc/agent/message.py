"""One message (a metric) as the agent passes it around, and its line-protocol form.

Tags are sent; meta (``unit``, ``source``, ``group``) stays inside the agent unless a sink
lists it in ``meta_as_tags`` -- as in cc-metric-collector, where some collectors
(cpustat) put ``unit`` into the tags anyway.
"""

from __future__ import annotations

import math
import re

__all__ = ["Message", "encode", "encode_many", "PRECISIONS"]

PRECISIONS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

_MEAS_ESC = re.compile(r"([, ])")
_TAG_ESC = re.compile(r"([,= ])")


class Message:
    """A metric: name, tags, meta, a numeric value and a wall-clock timestamp (seconds)."""

    __slots__ = ("name", "tags", "meta", "value", "time")

    def __init__(self, name: str, tags: dict[str, str], meta: dict[str, str], value: float | int,
                 time: float):
        self.name = name
        self.tags = tags
        self.meta = meta
        self.value = value
        self.time = time

    def copy(self) -> Message:
        return Message(self.name, dict(self.tags), dict(self.meta), self.value, self.time)

    def __repr__(self) -> str:
        return f"Message({self.name!r}, {self.tags!r}, {self.meta!r}, {self.value!r}, {self.time!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.name, self.tags, self.meta, self.value, self.time) == (
            other.name, other.tags, other.meta, other.value, other.time)

    __hash__ = None  # type: ignore[assignment]


def _esc_meas(s: str) -> str:
    return _MEAS_ESC.sub(r"\\\1", s) if ("," in s or " " in s) else s


def _esc_tag(s: str) -> str:
    return _TAG_ESC.sub(r"\\\1", s) if ("," in s or "=" in s or " " in s) else s


def _value(v: float | int) -> str | None:
    if isinstance(v, bool):
        return "1i" if v else "0i"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None
    return None


def encode(m: Message, precision: str = "s", meta_as_tags: tuple[str, ...] = ()) -> str | None:
    """The line for ``m`` (tags sorted by key, as cc-lib writes them); None if it has no finite value."""
    val = _value(m.value)
    if val is None or not m.name:
        return None
    tags = m.tags
    if meta_as_tags:
        extra = {k: m.meta[k] for k in meta_as_tags if k in m.meta and k not in tags}
        if extra:
            tags = {**tags, **extra}
    parts = [_esc_meas(m.name)]
    for k in sorted(tags):
        v = tags[k]
        if k and v:  # line protocol has no empty tag keys or values
            parts.append(f"{_esc_tag(k)}={_esc_tag(v)}")
    ts = int(round(m.time * PRECISIONS[precision])) if precision != "s" else int(m.time)
    return f"{','.join(parts)} value={val} {ts}"


def encode_many(msgs: list[Message], precision: str = "s", meta_as_tags: tuple[str, ...] = ()) -> list[str]:
    out = []
    for m in msgs:
        line = encode(m, precision, meta_as_tags)
        if line is not None:
            out.append(line)
    return out
