"""Parser for ClusterCockpit line protocol bodies (what collectors POST to ``/api/write``).

A body is InfluxDB line protocol with ClusterCockpit conventions, one point per line::

    cpu_load,cluster=c1,hostname=n0001,type=hwthread,type-id=5 value=1.5 1763600000

:class:`LineParser` turns a body into three aligned numpy arrays (series id, timestamp in
seconds, value) plus counters and a bounded list of per-line errors.  Each distinct
canonical :class:`~cc.shm._store.SeriesKey` gets a persistent small integer id, a "kid".

Two paths produce identical results:

* **Fast path.**  A line that splits on single spaces into exactly ``prefix field
  timestamp`` and whose raw prefix bytes are in the prefix cache only has its field and
  timestamp collected; all of them are validated and converted at once with numpy
  (floats and ``i`` integers up to 18 digits; decimal timestamps up to 19 digits).
* **Slow path.**  Everything else (first sight of a prefix, escapes in the separators,
  quoted strings, ``u`` integers, no timestamp, blank and comment lines, NUL bytes,
  anything the bulk checks reject) is parsed line by line with full validation and
  precise error messages.  The slow path defines the semantics; the fast path only
  accepts lines whose result it computes identically and hands everything else back.

The prefix cache only ever holds prefixes the slow path resolved completely (canonical key
built, metric looked up), so a cache hit implies the prefix is valid.  A valid prefix never
ends in a backslash (``\\`` followed by a space escapes the space), so ``line.split(b' ')[0]``
equals a cached prefix only if it really is the line's prefix.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from cc.config import MetricSpec
from cc.shm._registry import SeriesKey

__all__ = ["LineError", "LineParser", "Parsed", "SCOPE_TYPES"]

#: Scope types a metric line may name in its ``type`` tag (``cpu`` is accepted as legacy
#: spelling of ``hwthread``).
SCOPE_TYPES = frozenset({"node", "socket", "die", "memoryDomain", "llc", "core", "hwthread", "accelerator"})

_NOT_METRIC_FIELDS = frozenset({b"event", b"log", b"control"})
_PRECISION_DIVISOR = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_MAX_NAME_BYTES = 255
# Timestamp magnitudes at which auto-detection switches to the next finer unit.
_MS_FROM, _US_FROM, _NS_FROM = 10**11, 10**14, 10**17

# --- slow path grammar -------------------------------------------------------------------
# Escapes: in the measurement ``\,`` and ``\ ``; in tag keys/values and field keys ``\,``
# ``\=`` ``\ ``.  A backslash before any other character is a literal backslash.  For
# finding separators the two sets behave the same (``=`` never separates a measurement).
_PREFIX_RE = re.compile(rb"(?:\\[ ,=]|[^ \\]|\\)*+")
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
_DIGITS_RE = re.compile(rb"[0-9]+")
_NEG_INT_RE = re.compile(rb"-[0-9]+")

# --- fast path tables ----------------------------------------------------------------------
# The first 8 bytes of a fast-path field, as a native uint64, masked to 'value='.
_PREFIX_WORD = np.frombuffer(b"value=\x00\x00", dtype=np.uint64)[0]
_PREFIX_MASK = np.frombuffer(b"\xff" * 6 + b"\x00\x00", dtype=np.uint64)[0]
# Bytes a fast-path number may consist of (NUL = padding of numpy's fixed-width strings;
# bodies with NULs get an extra check).  Within this alphabet numpy's string->float cast
# accepts exactly _FLOAT_RE (plus a leading '+', excluded separately) and rounds like
# float(); anything else (i/u suffixes, nan, quotes, ...) goes to the slow path.
_NUM_BYTES = b"0123456789.-+eE\x00"
_NUM_OK = np.zeros(256, dtype=bool)
_NUM_OK[list(_NUM_BYTES)] = True
_DIGIT_OK = np.zeros(256, dtype=bool)
_DIGIT_OK[list(b"0123456789\x00")] = True
_TS_WIDTH = 20  # timestamps of 20+ characters never take the fast path
_INT64_MAX_BYTES = str(_INT64_MAX).encode()
_POW10 = np.array([10**k for k in range(_TS_WIDTH - 2, -1, -1)], dtype=np.int64)

# Slow path outcomes.
_BLANK, _POINT, _UNKNOWN, _NOT_METRIC = range(4)


class LineError(NamedTuple):
    line: int  # 1-based line number in the body (blank/comment lines count)
    reason: str  # human readable, names the offending part


@dataclass
class Parsed:
    kids: np.ndarray  # int64, per accepted point: the parser's persistent series id ("kid")
    ts: np.ndarray  # int64 seconds
    values: np.ndarray  # float64
    lines: int = 0  # non-blank, non-comment lines seen
    errors: list[LineError] = field(default_factory=list)  # the first `max_errors`, in line order
    error_count: int = 0  # all malformed lines (incl. those not listed)
    unknown_metric: int = 0  # lines dropped because lookup(cluster, metric) returned None
    invalid_name: int = 0  # lines rejected for an unsafe cluster/host name (also errors)
    not_a_metric: int = 0  # event=/log=/control= lines (valid, not for the store)


class _Reject(Exception):
    """A line is malformed; ``reason`` says why."""

    def __init__(self, reason: str, invalid_name: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.invalid_name = invalid_name


_SHOW_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _show(raw: bytes | str, limit: int = 64) -> str:
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
        raise _Reject(f"{what} {_show(raw)} is not valid UTF-8") from None


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
        raise _Reject(f"invalid {what} name {_show(name)}: {problem}", invalid_name=True)


def _parse_value(raw: bytes) -> float:
    """The number in a ``value=`` field (InfluxDB float, ``i`` and ``u`` integer syntax)."""
    if _FLOAT_RE.fullmatch(raw):
        v = float(raw)
    elif _SIGNED_INT_RE.fullmatch(raw):
        n = int(raw[:-1]) if len(raw.lstrip(b"-0")) <= 21 else _UINT64_MAX
        if not -_INT64_MAX - 1 <= n <= _INT64_MAX:
            raise _Reject(f"integer {_show(raw)} in field 'value' is out of the int64 range")
        v = float(n)
    elif _UNSIGNED_INT_RE.fullmatch(raw):
        n = int(raw[:-1]) if len(raw.lstrip(b"0")) <= 21 else _UINT64_MAX + 1
        if n > _UINT64_MAX:
            raise _Reject(f"unsigned integer {_show(raw)} in field 'value' is out of the uint64 range")
        v = float(n)
    elif _NONFINITE_RE.fullmatch(raw):
        raise _Reject(f"value must be a finite number, got {_show(raw)}")
    elif raw[:1] == b'"':
        raise _Reject("unsupported value type string for 'value' (expected a number)")
    elif raw in _BOOLEANS:
        raise _Reject(f"unsupported value type boolean ({_show(raw)}) for 'value' (expected a number)")
    elif not raw:
        raise _Reject("field 'value' has an empty value")
    else:
        raise _Reject(f"field 'value' has an invalid number {_show(raw)}")
    if not math.isfinite(v):
        raise _Reject(f"value must be a finite number, got {_show(raw)}")
    return v


def _scan_fields(rest: bytes) -> tuple[list[tuple[bytes, bytes]], int]:
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
            raise _Reject(f"empty field key in field set {_show(rest)}")
        if pos >= n or rest[pos] != 0x3D:  # '='
            raise _Reject(f"field {_show(key)} has no '=' (expected 'value=<number>')")
        pos += 1
        if pos < n and rest[pos] == 0x22:  # '"'
            m = _FIELD_STR_RE.match(rest, pos)
            if m is None:
                raise _Reject(f"unterminated string value in field {_show(key)}")
            after = m.end()
            if after < n and rest[after] not in b" ,":
                raise _Reject(f"unexpected text after the string value of field {_show(key)}")
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


def _timestamp_seconds(t: int, divisor: int | None) -> int:
    if divisor is not None:
        return t // divisor
    if t < _MS_FROM:
        return t
    if t < _US_FROM:
        return t // 1_000
    if t < _NS_FROM:
        return t // 1_000_000
    return t // 1_000_000_000


def _bulk_values(fields: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Values of ``value=<float>`` fields and a mask of fields this cannot handle."""
    n = len(fields)
    # Guess a width (a multiple of 8, for the prefix test) from the first field; if any
    # field fills it completely it may have been truncated, so redo with the exact width.
    width = (len(fields[0]) + 16) & ~7
    arr = np.array(fields, dtype=f"S{width}")
    u = arr.view(np.uint8).reshape(n, width)
    if u[:, width - 1].any():
        width = (max(map(len, fields)) + 8) & ~7
        arr = np.array(fields, dtype=f"S{width}")
        u = arr.view(np.uint8).reshape(n, width)
    bad = (u.view(np.uint64)[:, 0] & _PREFIX_MASK) != _PREFIX_WORD
    num = np.ascontiguousarray(u[:, 6:])
    if num.tobytes().translate(None, _NUM_BYTES):  # a byte outside the number alphabet somewhere
        ok = np.take(_NUM_OK, num).all(axis=1)
        int_rows = _accept_int_suffix(num, ok)
        bad |= ~ok
    else:
        int_rows = None
    first = num[:, 0]
    bad |= (first == 0) | (first == 0x2B)  # empty, or a leading '+'
    if bad.any():
        num[bad] = 0
        num[bad, 0] = 0x30  # '0', a harmless placeholder
    strings = num.view(f"S{width - 6}").ravel()
    try:
        values = strings.astype(np.float64)
    except ValueError:  # a malformed number (e.g. '1e', '1-2'): find it element by element
        values = np.zeros(n)
        for j, s in enumerate(strings.tolist()):
            try:
                values[j] = float(s)
            except ValueError:
                bad[j] = True
    if int_rows is not None:
        values[int_rows] += 0.0  # the integer -0i is +0.0, not the float -0.0
    bad |= ~np.isfinite(values)
    return values, bad


def _accept_int_suffix(num: np.ndarray, ok: np.ndarray) -> np.ndarray | None:
    """Turn rows of ``num`` of the form ``-?<digits>i`` (at most 18 digits, so within int64)
    into plain ``-?<digits>`` and mark them ``ok``; returns their indices (None if none).
    float() of such an integer equals float() of its decimal text (both round the exact
    value), so the float cast applies."""
    rows = np.flatnonzero(~ok)
    lengths = np.count_nonzero(num[rows], axis=1)
    ends = lengths - 1
    rows_i = (ends > 0) & (ends <= 18 + (num[rows, 0] == 0x2D)) & (num[rows, np.maximum(ends, 0)] == 0x69)
    rows, ends = rows[rows_i], ends[rows_i]
    if not len(rows):
        return None
    cand = num[rows]
    cand[np.arange(len(rows)), ends] = 0
    digits = np.take(_DIGIT_OK, cand[:, 1:]).all(axis=1)  # NUL padding counts as a digit here
    first = cand[:, 0]
    good = digits & (((first >= 0x30) & (first <= 0x39)) | ((first == 0x2D) & (ends > 1)))
    rows = rows[good]
    num[rows] = cand[good]
    ok[rows] = True
    return rows


def _bulk_timestamps(stamps: list[bytes], divisor: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Whole seconds of decimal timestamps and a mask of stamps this cannot handle."""
    n = len(stamps)
    t = None
    size = len(stamps[0])
    if 0 < size < _TS_WIDTH:
        # Common case: all stamps are digit strings as long as the first one.  Then the
        # digit matrix times powers of ten is the integer (no partial sum exceeds it).
        arr = np.array(stamps, dtype=f"S{size + 1}")
        u = arr.view(np.uint8).reshape(n, size + 1)
        if not u[:, size].any() and u[:, size - 1].all():
            digits = u[:, :size] - np.uint8(0x30)
            if not (digits > 9).any() and (size < _TS_WIDTH - 1 or not (arr > _INT64_MAX_BYTES).any()):
                t = digits.astype(np.int64) @ _POW10[-size:]
                bad = np.zeros(n, dtype=bool)
    if t is None:
        arr = np.array(stamps, dtype=f"S{_TS_WIDTH}")
        u = arr.view(np.uint8).reshape(n, _TS_WIDTH)
        bad = ~np.take(_DIGIT_OK, u).all(axis=1) | (u[:, 0] == 0)
        bad |= u[:, _TS_WIDTH - 1] != 0  # 20+ characters (may have been truncated)
        bad |= (u[:, _TS_WIDTH - 2] != 0) & (arr > _INT64_MAX_BYTES)  # 19 digits beyond int64
        if bad.any():
            arr[bad] = b"0"
        try:
            t = arr.astype(np.int64)
        except ValueError:  # an embedded NUL: find it element by element
            t = np.zeros(n, dtype=np.int64)
            for j, s in enumerate(arr.tolist()):
                try:
                    t[j] = int(s)
                except ValueError:
                    bad[j] = True
    if divisor is not None:
        if divisor != 1:
            t //= divisor
    elif n and t.max() >= _MS_FROM:
        t = np.where(
            t < _MS_FROM,
            t,
            np.where(t < _US_FROM, t // 1_000, np.where(t < _NS_FROM, t // 1_000_000, t // 1_000_000_000)),
        )
    return t, bad


class _Acc:
    """Per-parse accumulator for slow-path outcomes."""

    __slots__ = ("lines", "errors", "error_count", "unknown", "invalid", "not_metric",
                 "s_line", "s_kid", "s_ts", "s_val", "max_errors")

    def __init__(self, max_errors: int):
        self.max_errors = max_errors
        self.lines = 0
        self.errors: list[LineError] = []
        self.error_count = 0
        self.unknown = 0
        self.invalid = 0
        self.not_metric = 0
        self.s_line: list[int] = []
        self.s_kid: list[int] = []
        self.s_ts: list[int] = []
        self.s_val: list[float] = []


class LineParser:
    """Parses line protocol bodies into (kid, ts, value) arrays; see the module docstring."""

    def __init__(self, lookup: Callable[[str, str], MetricSpec | None], *, max_errors: int = 100,
                 cache_limit: int = 1_000_000):
        self._lookup = lookup
        self.max_errors = max_errors
        self.cache_limit = cache_limit
        # raw prefix -> kid (or -1: metric unknown), one dict per ?cluster= default.
        self._caches: dict[str | None, dict[bytes, int]] = {}
        self._cache_size = 0
        self._kid_of: dict[SeriesKey, int] = {}
        self._keys: list[SeriesKey | None] = []
        self._specs: list[MetricSpec] = []

    # --- kids -----------------------------------------------------------------------------
    @property
    def num_keys(self) -> int:
        return len(self._keys)

    def key(self, kid: int) -> SeriesKey:
        key = self._keys[kid]
        if key is None:
            raise KeyError(f"key of kid {kid} was forgotten (the caller resolved it)")
        return key

    def forget(self, kids) -> None:
        """Drop the keys of kids the caller has resolved to series ids.

        A worker sees every series of the cluster; keeping their keys would cost a few
        hundred bytes per series in every ingest process.  A raw prefix seen later still
        maps to its kid through the prefix cache; only a new spelling of a forgotten key
        gets a new kid (which resolves to the same series).
        """
        for kid in kids:
            key = self._keys[kid]
            if key is not None:
                if self._kid_of.get(key) == kid:
                    del self._kid_of[key]
                self._keys[kid] = None

    def restore(self, kid: int, key: SeriesKey) -> None:
        """Give a forgotten kid its key back (its series id became invalid)."""
        self._keys[kid] = key

    def frequency(self, kid: int) -> int:
        return self._specs[kid].frequency

    # --- parsing --------------------------------------------------------------------------
    def parse(self, body: bytes, default_cluster: str | None, now: int,
              precision: str | None = None) -> Parsed:
        if precision is None:
            divisor = None
        else:
            try:
                divisor = _PRECISION_DIVISOR[precision]
            except KeyError:
                raise ValueError(f"unknown precision {precision!r} (expected s, ms, us or ns)") from None
        if not default_cluster:
            default_cluster = None
        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
            if body.endswith(b"\r"):
                body = body[:-1]
        lines = body.split(b"\n")
        cache = self._caches.get(default_cluster)
        if cache is None:
            cache = self._caches[default_cluster] = {}
        acc = _Acc(self.max_errors)
        slow_lines: list[int] = []
        f_kid: list[int] = []
        f_fld: list[bytes] = []
        f_ts: list[bytes] = []

        get = cache.get
        slow = self._slow_line
        for i, line in enumerate(lines):
            parts = line.split(b" ")
            if len(parts) == 3:
                kid = get(parts[0])
                if kid is not None:
                    f_kid.append(kid)
                    f_fld.append(parts[1])
                    f_ts.append(parts[2])
                    continue
            slow_lines.append(i)
            slow(line, i, cache, default_cluster, now, divisor, acc)

        nf = len(f_kid)
        acc.lines += nf
        first_errors = acc.errors
        acc.errors = []
        f_line = None
        if nf:
            kids = np.array(f_kid, dtype=np.int64)
            values, bad = _bulk_values(f_fld)
            ts, bad_ts = _bulk_timestamps(f_ts, divisor)
            bad |= bad_ts
            if b"\x00" in body:  # numpy's fixed-width strings would drop trailing NULs
                for j in range(nf):
                    if b"\x00" in f_fld[j] or b"\x00" in f_ts[j]:
                        bad[j] = True
            if bad.any():
                f_line = _complement(len(lines), slow_lines)
                acc.lines -= int(bad.sum())
                for j in np.flatnonzero(bad).tolist():
                    i = int(f_line[j])
                    slow(lines[i], i, cache, default_cluster, now, divisor, acc)
                good = ~bad
                kids, ts, values, f_line = kids[good], ts[good], values[good], f_line[good]
            unknown = kids < 0
            if unknown.any():
                acc.unknown += int(unknown.sum())
                if f_line is None:
                    f_line = _complement(len(lines), slow_lines)
                known = ~unknown
                kids, ts, values, f_line = kids[known], ts[known], values[known], f_line[known]
        else:
            kids = np.zeros(0, dtype=np.int64)
            ts = np.zeros(0, dtype=np.int64)
            values = np.zeros(0, dtype=np.float64)

        if acc.s_line:
            if f_line is None:
                f_line = _complement(len(lines), slow_lines)
            all_lines = np.concatenate([f_line, np.array(acc.s_line, dtype=np.int64)])
            order = np.argsort(all_lines, kind="stable")
            kids = np.concatenate([kids, np.array(acc.s_kid, dtype=np.int64)])[order]
            ts = np.concatenate([ts, np.array(acc.s_ts, dtype=np.int64)])[order]
            values = np.concatenate([values, np.array(acc.s_val, dtype=np.float64)])[order]

        errors = first_errors
        if acc.errors:
            errors = sorted(first_errors + acc.errors)[: self.max_errors]
        return Parsed(kids=kids, ts=ts, values=values, lines=acc.lines, errors=errors,
                      error_count=acc.error_count, unknown_metric=acc.unknown, invalid_name=acc.invalid,
                      not_a_metric=acc.not_metric)

    def _slow_line(self, line: bytes, i: int, cache: dict[bytes, int], default_cluster: str | None,
                   now: int, divisor: int | None, acc: _Acc) -> None:
        try:
            outcome = self._parse_line(line, cache, default_cluster, now, divisor)
        except _Reject as e:
            acc.lines += 1
            acc.error_count += 1
            if e.invalid_name:
                acc.invalid += 1
            if len(acc.errors) < acc.max_errors:
                acc.errors.append(LineError(i + 1, e.reason))
            return
        kind = outcome[0]
        if kind == _BLANK:
            return
        acc.lines += 1
        if kind == _POINT:
            acc.s_line.append(i)
            acc.s_kid.append(outcome[1])
            acc.s_ts.append(outcome[2])
            acc.s_val.append(outcome[3])
        elif kind == _UNKNOWN:
            acc.unknown += 1
        else:
            acc.not_metric += 1

    def _parse_line(self, line: bytes, cache: dict[bytes, int], default_cluster: str | None, now: int,
                    divisor: int | None) -> tuple:
        """Full parse of one line: an outcome tuple, or raises _Reject."""
        s = line.strip(b" ")
        if not s or s[0] == 0x23:  # blank or '#' comment
            return (_BLANK,)

        # Sections: prefix (measurement and tags), field set, optional timestamp.
        if b"\\" in s:
            m = _PREFIX_RE.match(s)
            assert m is not None
            end = m.end()
        else:
            end = s.find(b" ")
            if end < 0:
                end = len(s)
        prefix = s[:end]
        rest = s[end:].lstrip(b" ")
        if not rest:
            raise _Reject(f"missing field set after {_show(prefix)} (expected ' value=<number>')")
        fields, pos = _scan_fields(rest)
        tail = rest[pos:].lstrip(b" ")
        ts_raw = None
        if tail:
            sp = tail.find(b" ")
            if sp >= 0:
                raise _Reject(f"unexpected text {_show(tail[sp:].lstrip(b' '))} after the timestamp")
            ts_raw = tail
            if not _DIGITS_RE.fullmatch(ts_raw):
                if _NEG_INT_RE.fullmatch(ts_raw):
                    raise _Reject(f"timestamp {_show(ts_raw)} is negative")
                raise _Reject(f"timestamp {_show(ts_raw)} is not an integer")

        # Message kind.
        if len(fields) != 1:
            names = ", ".join(_show(k) for k, _ in fields[:5])
            raise _Reject(f"metric lines carry exactly one field 'value', found {len(fields)}: {names}")
        fkey, fval = fields[0]
        if fkey != b"value":
            if fkey in _NOT_METRIC_FIELDS:
                return (_NOT_METRIC,)
            raise _Reject(f"unknown field {_show(fkey)} (metric messages carry 'value')")

        kid = self._resolve(prefix, cache, default_cluster)
        value = _parse_value(fval)
        if ts_raw is None:
            t = now
        else:
            if len(ts_raw.lstrip(b"0")) > 19:
                raise _Reject(f"timestamp {_show(ts_raw)} is out of the int64 range")
            t = int(ts_raw)
            if t > _INT64_MAX:
                raise _Reject(f"timestamp {_show(ts_raw)} is out of the int64 range")
            t = _timestamp_seconds(t, divisor)
        if kid < 0:
            return (_UNKNOWN,)
        return (_POINT, kid, t, value)

    def _resolve(self, prefix: bytes, cache: dict[bytes, int], default_cluster: str | None) -> int:
        """Kid of a raw prefix (-1: unknown metric), via the cache; raises _Reject."""
        kid = cache.get(prefix)
        if kid is not None:
            return kid
        key = _canonical_key(prefix, default_cluster)
        spec = self._lookup(key.cluster, key.metric)
        if spec is None:
            kid = -1
        else:
            kid = self._kid_of.get(key)
            if kid is None:
                kid = len(self._keys)
                self._kid_of[key] = kid
                self._keys.append(key)
                self._specs.append(spec)
            else:
                self._specs[kid] = spec
        if b" " not in prefix:  # the fast path can only ever look up space-free prefixes
            if self._cache_size >= self.cache_limit:
                for c in self._caches.values():
                    c.clear()
                self._cache_size = 0
            cache[prefix] = kid
            self._cache_size += 1
        return kid


def _complement(n: int, excluded: list[int]) -> np.ndarray:
    """0..n-1 without ``excluded``: the line indices of the fast-path candidates."""
    mask = np.ones(n, dtype=bool)
    mask[excluded] = False
    return np.flatnonzero(mask)


def _canonical_key(prefix: bytes, default_cluster: str | None) -> SeriesKey:
    """The canonical series key of a raw prefix (measurement and tags); raises _Reject."""
    escaped = b"\\" in prefix
    if escaped:
        parts = _split_unescaped(prefix, _COMMA_SPLIT_RE, b",")
        metric_raw = _unescape(parts[0], _MEAS_UNESCAPE_RE)
    else:
        parts = prefix.split(b",")
        metric_raw = parts[0]
    if not metric_raw:
        raise _Reject("empty metric name (measurement)")
    has_ctrl = _CTRL_RE.search(prefix) is not None  # if so, find out where
    if has_ctrl and _CTRL_RE.search(metric_raw):
        raise _Reject(f"metric name {_show(metric_raw)} contains a control character")
    metric = _decode(metric_raw, "metric name")

    tags: dict[bytes, bytes] = {}
    for raw in parts[1:]:
        kv = _split_unescaped(raw, _EQ_SPLIT_RE, b"=") if escaped else raw.split(b"=")
        if len(kv) == 1:
            if not raw:
                raise _Reject("empty tag (stray ',' in the tag set)")
            raise _Reject(f"tag {_show(raw)} has no '='")
        k = _unescape(kv[0], _TAG_UNESCAPE_RE) if escaped else kv[0]
        if not k:
            raise _Reject(f"empty tag key in {_show(raw)}")
        if len(kv) > 2:
            raise _Reject(f"unescaped '=' in the value of tag {_show(k)}")
        v = _unescape(kv[1], _TAG_UNESCAPE_RE) if escaped else kv[1]
        if not v:
            raise _Reject(f"tag {_show(k)} has an empty value")
        if k in tags:
            raise _Reject(f"duplicate tag {_show(k)}")
        if has_ctrl:
            if _CTRL_RE.search(k):
                raise _Reject(f"tag key {_show(k)} contains a control character")
            if _CTRL_RE.search(v) and k not in (b"cluster", b"hostname", b"host"):
                raise _Reject(f"tag {_show(k)} has a value with a control character")
        tags[k] = v

    raw_cluster = tags.get(b"cluster")
    if raw_cluster is not None:
        cluster = _decode(raw_cluster, "tag 'cluster'")
    elif default_cluster is not None:
        cluster = default_cluster
    else:
        raise _Reject("no cluster tag and no ?cluster= parameter")
    _check_path_name(cluster, "cluster")

    raw_host = tags.get(b"hostname")
    host_tag = "hostname"
    if raw_host is None:
        raw_host = tags.get(b"host")
        host_tag = "host"
    if raw_host is None:
        raise _Reject("missing hostname tag")
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
            raise _Reject(f"unknown scope {_show(scope)} in tag 'type' (expected one of {known})")
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
        raise _Reject("tag 'stype-id' without tag 'stype'")
    elif (raw_dev := tags.get(b"device")) is not None:
        stype, stype_id = "device", _decode(raw_dev, "tag 'device'")
    elif (raw_fs := tags.get(b"filesystem")) is not None:
        stype, stype_id = "filesystem", _decode(raw_fs, "tag 'filesystem'")
    else:
        stype = stype_id = ""
    # interned: thousands of series share these few strings, and a worker keeps every key it saw
    return SeriesKey(*map(sys.intern, (cluster, host, metric, scope, type_id, stype, stype_id)))
