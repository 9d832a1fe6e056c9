"""cc-backend's NATS API messages: events in line protocol with a JSON payload.

``job,function=start_job event="<JSON>" <ts>``, ``job,function=stop_job event="<JSON>" <ts>``
and ``nodestate event="<JSON>" <ts>`` (upstream ``internal/api/nats.go``).  The string field
escapes ``"`` and ``\\`` with a backslash, as InfluxDB line protocol does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cc.ingestd._lpsyntax import (
    _COMMA_SPLIT_RE,
    _EQ_SPLIT_RE,
    _MEAS_UNESCAPE_RE,
    _TAG_UNESCAPE_RE,
    PREFIX_RE,
    Reject,
    _split_unescaped,
    _unescape,
    scan_fields,
)


@dataclass
class Event:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, str]  # string fields unescaped; other fields as written
    timestamp: int | None
    line: int


def _esc_tag(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def encode_event(measurement: str, tags: dict[str, str], payload: str, ts: float | None = None) -> bytes:
    """One event line (seconds precision), as cc-lib's ``NewEvent(...).ToLineProtocol``."""
    head = _esc_tag(measurement).replace("\\=", "=")
    if tags:
        head += "," + ",".join(f"{_esc_tag(k)}={_esc_tag(v)}" for k, v in sorted(tags.items()))
    body = payload.replace("\\", "\\\\").replace('"', '\\"')
    return f'{head} event="{body}" {int(time.time() if ts is None else ts)}\n'.encode()


def _unescape_string(raw: bytes) -> str:
    inner = raw[1:-1]
    if b"\\" in inner:
        out = bytearray()
        i = 0
        while i < len(inner):
            c = inner[i]
            if c == 0x5C and i + 1 < len(inner) and inner[i + 1] in b'"\\':
                out.append(inner[i + 1])
                i += 2
                continue
            out.append(c)
            i += 1
        inner = bytes(out)
    return inner.decode("utf-8")


def parse_event_line(line: bytes, lineno: int) -> Event:
    """One line -> Event; Reject names what is wrong."""
    m = PREFIX_RE.match(line)
    prefix = m.group() if m else b""
    if not prefix:
        raise Reject("empty measurement")
    rest = line[len(prefix):]
    if not rest.startswith(b" "):
        raise Reject("no field set (expected 'event=\"<JSON>\"')")
    parts = _split_unescaped(prefix, _COMMA_SPLIT_RE, b",")
    measurement = _unescape(parts[0], _MEAS_UNESCAPE_RE).decode("utf-8", "replace")
    tags: dict[str, str] = {}
    for raw in parts[1:]:
        kv = _split_unescaped(raw, _EQ_SPLIT_RE, b"=")
        if len(kv) != 2 or not kv[0]:
            raise Reject(f"malformed tag {raw[:60]!r}")
        tags[_unescape(kv[0], _TAG_UNESCAPE_RE).decode("utf-8", "replace")] = \
            _unescape(kv[1], _TAG_UNESCAPE_RE).decode("utf-8", "replace")
    fields_raw, end = scan_fields(rest[1:])
    fields: dict[str, str] = {}
    for k, v in fields_raw:
        key = k.decode("utf-8", "replace")
        try:
            fields[key] = _unescape_string(v) if v[:1] == b'"' else v.decode("utf-8", "replace")
        except UnicodeDecodeError:
            raise Reject(f"field {key!r} is not valid UTF-8") from None
    tail = rest[1 + end:].strip()
    ts: int | None = None
    if tail:
        if not tail.lstrip(b"-").isdigit():
            raise Reject(f"invalid timestamp {tail[:30]!r}")
        ts = int(tail)
    return Event(measurement, tags, fields, ts, lineno)


def decode_events(data: bytes) -> tuple[list[Event], list[tuple[int, str]]]:
    """All event lines of a message, and (line number, reason) for each malformed one."""
    events: list[Event] = []
    errors: list[tuple[int, str]] = []
    for i, raw in enumerate(data.replace(b"\r\n", b"\n").split(b"\n"), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            events.append(parse_event_line(line, i))
        except Reject as e:
            errors.append((i, e.reason))
    return events, errors
