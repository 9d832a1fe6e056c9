"""The line-protocol grammar, line by line: the slow path of :mod:`cc.ingestd.lineproto`.

Everything here parses one piece of one line with full validation and an error message
that names the offending part (:class:`Reject`).  These functions define what a valid
line is; the parser's numpy fast path only accepts lines it computes identically.
"""

from __future__ import annotations

import math
import re
import sys

from cc.shm._registry import SeriesKey

#: Scope types a metric line may name in its ``type`` tag (``cpu`` is accepted as legacy
#: spelling of ``hwthread``).
SCOPE_TYPES = frozenset({"node", "socket", "die", "memoryDomain", "llc", "core", "hwthread", "accelerator"})

NOT_METRIC_FIELDS = frozenset({b"event", b"log", b"control"})
PRECISION_DIVISOR = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
_MAX_NAME_BYTES = 255
# Timestamp magnitudes at which auto-detection switches to the next finer unit.
MS_FROM, US_FROM, NS_FROM = 10**11, 10**14, 10**17


# --- slow path grammar -------------------------------------------------------------------
# Escapes: in the measurement ``\,`` and ``\ ``; in tag keys/values and field keys ``\,``
# ``\=`` ``\ ``.  A backslash before any other character is a literal backslash.  For
# finding separators the two sets behave the same (``=`` never separates a measurement).
PREFIX_RE = re.compile(rb"(?:\\[ ,=]|[^ \\]|\\)*+")
_COMMA_SPLIT_RE = re.compile(rb"\\[ ,=]|,")
_EQ_SPLIT_RE = re.compile(rb"\\[ ,=]|=")
_MEAS_UNESCAPE_RE = re.compile(rb"\\([ ,])")
_TAG_UNESCAPE_RE = re.compile(rb"\\([ ,=])")
_FIELD_KEY_RE = re.compile(rb"(?:\\[ ,=]|[^ ,=\\]|\\)*+")
_FIELD_STR_RE = re.compile(rb'"(?:\\.|[^"\\])*+"', re.S)
_FIELD_PLAIN_RE = re.compile(rb"[^ ,]*+")
_CTRL_RE = re.compile(rb"[\x00-\x1f\x7f]")
_CTRL_STR_RE = re.compile(r"[\x00-\x1f\x7f]")
_FLOAT_RE = re.compile(rb"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SIGNED_INT_RE = re.compile(rb"-?[0-9]+i")
_UNSIGNED_INT_RE = re.compile(rb"[0-9]+u")
_NONFINITE_RE = re.compile(rb"[+-]?(?:nan|inf|infinity)", re.I)
_BOOLEANS = frozenset({b"t", b"T", b"true", b"True", b"TRUE", b"f", b"F", b"false", b"False", b"FALSE"})
DIGITS_RE = re.compile(rb"[0-9]+")
NEG_INT_RE = re.compile(rb"-[0-9]+")


class Reject(Exception):
    """A line is malformed; ``reason`` says why."""

    def __init__(self, reason: str, invalid_name: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.invalid_name = invalid_name


_SHOW_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def show(raw: bytes | str, limit: int = 64) -> str:
    """Quote a (possibly binary) piece of a line for an error message."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    if len(text) > limit:
        text = text[:limit] + "..."
    return "'" + text.translate(_SHOW_ESCAPES) + "'"


def _split_unescaped(raw: bytes, sep_re: re.Pattern[bytes], sep: bytes) -> list[bytes]:
    """Split ``raw`` at the separators ``sep_re`` finds outside of escape pairs."""
    if b"\\" not in raw:
        return raw.split(sep)
    out = []
    start = 0
    for m in sep_re.finditer(raw):
        if m.end() - m.start() == 1:  # the bare separator, not an escape pair
            out.append(raw[start : m.start()])
            start = m.end()
    out.append(raw[start:])
    return out


def _unescape(raw: bytes, unescape_re: re.Pattern[bytes]) -> bytes:
    return unescape_re.sub(rb"\1", raw) if b"\\" in raw else raw


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject(f"{what} {show(raw)} is not valid UTF-8") from None


def _check_path_name(name: str, what: str) -> None:
    """Reject cluster/host names that would be unsafe as a path component."""
    problem = None
    if "/" in name:
        problem = "contains '/'"
    elif "\\" in name:
        problem = "contains '\\'"
    elif ".." in name:
        problem = "contains '..'"
    elif name == ".":
        problem = "is '.'"
    elif _CTRL_STR_RE.search(name):
        problem = "contains a control character"
    elif len(name.encode()) > _MAX_NAME_BYTES:
        problem = f"is longer than {_MAX_NAME_BYTES} bytes"
    if problem is not None:
        raise Reject(f"invalid {what} name {show(name)}: {problem}", invalid_name=True)


def parse_value(raw: bytes) -> float:
    """The number in a ``value=`` field (InfluxDB float, ``i`` and ``u`` integer syntax)."""
    if _FLOAT_RE.fullmatch(raw):
        v = float(raw)
    elif _SIGNED_INT_RE.fullmatch(raw):
        n = int(raw[:-1]) if len(raw.lstrip(b"-0")) <= 21 else UINT64_MAX
        if not -INT64_MAX - 1 <= n <= INT64_MAX:
            raise Reject(f"integer {show(raw)} in field 'value' is out of the int64 range")
        v = float(n)
    elif _UNSIGNED_INT_RE.fullmatch(raw):
        n = int(raw[:-1]) if len(raw.lstrip(b"0")) <= 21 else UINT64_MAX + 1
        if n > UINT64_MAX:
            raise Reject(f"unsigned integer {show(raw)} in field 'value' is out of the uint64 range")
        v = float(n)
    elif _NONFINITE_RE.fullmatch(raw):
        raise Reject(f"value must be a finite number, got {show(raw)}")
    elif raw[:1] == b'"':
        raise Reject("unsupported value type string for 'value' (expected a number)")
    elif raw in _BOOLEANS:
        raise Reject(f"unsupported value type boolean ({show(raw)}) for 'value' (expected a number)")
    elif not raw:
        raise Reject("field 'value' has an empty value")
    else:
        raise Reject(f"field 'value' has an invalid number {show(raw)}")
    if not math.isfinite(v):
        raise Reject(f"value must be a finite number, got {show(raw)}")
    return v


def scan_fields(rest: bytes) -> tuple[list[tuple[bytes, bytes]], int]:
    """Parse the field set at the start of ``rest``: [(unescaped key, raw value)], end."""
    fields: list[tuple[bytes, bytes]] = []
    n = len(rest)
    pos = 0
    while True:
        m = _FIELD_KEY_RE.match(rest, pos)
        assert m is not None  # the pattern matches the empty string
        key = _unescape(m.group(), _TAG_UNESCAPE_RE)
        pos = m.end()
        if not key:
            raise Reject(f"empty field key in field set {show(rest)}")
        if pos >= n or rest[pos] != 0x3D:  # '='
            raise Reject(f"field {show(key)} has no '=' (expected 'value=<number>')")
        pos += 1
        if pos < n and rest[pos] == 0x22:  # '"'
            m = _FIELD_STR_RE.match(rest, pos)
            if m is None:
                raise Reject(f"unterminated string value in field {show(key)}")
            after = m.end()
            if after < n and rest[after] not in b" ,":
                raise Reject(f"unexpected text after the string value of field {show(key)}")
        else:
            m = _FIELD_PLAIN_RE.match(rest, pos)
            assert m is not None
            after = m.end()
        fields.append((key, m.group()))
        pos = after
        if pos < n and rest[pos] == 0x2C:  # ','
            pos += 1
            continue
        return fields, pos


def timestamp_seconds(t: int, divisor: int | None) -> int:
    if divisor is not None:
        return t // divisor
    if t < MS_FROM:
        return t
    if t < US_FROM:
        return t // 1_000
    if t < NS_FROM:
        return t // 1_000_000
    return t // 1_000_000_000


def canonical_key(prefix: bytes, default_cluster: str | None) -> SeriesKey:
    """The canonical series key of a raw prefix (measurement and tags); raises Reject."""
    escaped = b"\\" in prefix
    if escaped:
        parts = _split_unescaped(prefix, _COMMA_SPLIT_RE, b",")
        metric_raw = _unescape(parts[0], _MEAS_UNESCAPE_RE)
    else:
        parts = prefix.split(b",")
        metric_raw = parts[0]
    if not metric_raw:
        raise Reject("empty metric name (measurement)")
    has_ctrl = _CTRL_RE.search(prefix) is not None  # if so, find out where
    if has_ctrl and _CTRL_RE.search(metric_raw):
        raise Reject(f"metric name {show(metric_raw)} contains a control character")
    metric = _decode(metric_raw, "metric name")

    tags: dict[bytes, bytes] = {}
    for raw in parts[1:]:
        kv = _split_unescaped(raw, _EQ_SPLIT_RE, b"=") if escaped else raw.split(b"=")
        if len(kv) == 1:
            if not raw:
                raise Reject("empty tag (stray ',' in the tag set)")
            raise Reject(f"tag {show(raw)} has no '='")
        k = _unescape(kv[0], _TAG_UNESCAPE_RE) if escaped else kv[0]
        if not k:
            raise Reject(f"empty tag key in {show(raw)}")
        if len(kv) > 2:
            raise Reject(f"unescaped '=' in the value of tag {show(k)}")
        v = _unescape(kv[1], _TAG_UNESCAPE_RE) if escaped else kv[1]
        if not v:
            raise Reject(f"tag {show(k)} has an empty value")
        if k in tags:
            raise Reject(f"duplicate tag {show(k)}")
        if has_ctrl:
            if _CTRL_RE.search(k):
                raise Reject(f"tag key {show(k)} contains a control character")
            if _CTRL_RE.search(v) and k not in (b"cluster", b"hostname", b"host"):
                raise Reject(f"tag {show(k)} has a value with a control character")
        tags[k] = v

    raw_cluster = tags.get(b"cluster")
    if raw_cluster is not None:
        cluster = _decode(raw_cluster, "tag 'cluster'")
    elif default_cluster is not None:
        cluster = default_cluster
    else:
        raise Reject("no cluster tag and no ?cluster= parameter")
    _check_path_name(cluster, "cluster")

    raw_host = tags.get(b"hostname")
    host_tag = "hostname"
    if raw_host is None:
        raw_host = tags.get(b"host")
        host_tag = "host"
    if raw_host is None:
        raise Reject("missing hostname tag")
    host = _decode(raw_host, f"tag {host_tag!r}")
    _check_path_name(host, "host")

    raw_type = tags.get(b"type")
    if raw_type is None:
        scope = "node"
    else:
        scope = _decode(raw_type, "tag 'type'")
        if scope == "cpu":
            scope = "hwthread"
        elif scope not in SCOPE_TYPES:
            known = ", ".join(sorted(SCOPE_TYPES))
            raise Reject(f"unknown scope {show(scope)} in tag 'type' (expected one of {known})")
    if scope == "node":
        type_id = ""
    else:
        # cc-metric-store accepts a type without id (one series for the whole scope type); so do we.
        raw_id = tags.get(b"type-id")
        type_id = "" if raw_id is None else _decode(raw_id, "tag 'type-id'")

    raw_stype = tags.get(b"stype")
    raw_sid = tags.get(b"stype-id")
    if raw_stype is not None:
        stype = _decode(raw_stype, "tag 'stype'")
        stype_id = "" if raw_sid is None else _decode(raw_sid, "tag 'stype-id'")
    elif raw_sid is not None:
        raise Reject("tag 'stype-id' without tag 'stype'")
    elif (raw_dev := tags.get(b"device")) is not None:
        stype, stype_id = "device", _decode(raw_dev, "tag 'device'")
    elif (raw_fs := tags.get(b"filesystem")) is not None:
        stype, stype_id = "filesystem", _decode(raw_fs, "tag 'filesystem'")
    else:
        stype = stype_id = ""
    # interned: thousands of series share these few strings, and a burst of new series holds
    # thousands of keys until the worker has resolved them
    return SeriesKey(*map(sys.intern, (cluster, host, metric, scope, type_id, stype, stype_id)))
