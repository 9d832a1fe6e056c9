"""Parser for ClusterCockpit line protocol bodies (what collectors POST to ``/api/write``).

A body is InfluxDB line protocol with ClusterCockpit conventions, one point per line::

    cpu_load,cluster=c1,hostname=n0001,type=hwthread,type-id=5 value=1.5 1763600000

:class:`LineParser` turns a body into three aligned numpy arrays (series id, timestamp in
seconds, value) plus counters and a bounded list of per-line errors.  Each distinct
canonical :class:`~cc.shm._store.SeriesKey` gets a persistent small integer id, a "kid".

Two paths produce identical results:

* **Fast path.**  A line that splits on single spaces into exactly ``prefix field
  timestamp`` and whose raw prefix bytes are in the prefix index only has its field and
  timestamp collected; all of them are validated and converted at once with numpy
  (floats and ``i`` integers up to 18 digits; decimal timestamps up to 19 digits).
* **Slow path.**  Everything else (first sight of a prefix, escapes in the separators,
  quoted strings, ``u`` integers, no timestamp, blank and comment lines, NUL bytes,
  anything the bulk checks reject) is parsed line by line with full validation and
  precise error messages (the grammar lives in :mod:`cc.ingestd._lpsyntax`).  The slow
  path defines the semantics; the fast path only accepts lines whose result it computes
  identically and hands everything else back.

The prefix index (:mod:`cc.ingestd._prefixindex`, sorted hashes, 14-16 B per prefix instead of
a dict of the prefix bytes) only ever holds prefixes the slow path resolved completely
(canonical key built, metric looked up), so a hit implies the prefix is valid.  A valid prefix
never ends in a backslash (``\\`` followed by a space escapes the space), so
``line.split(b' ')[0]`` equals an indexed prefix only if it really is the line's prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from cc.config import MetricSpec
from cc.ingestd._lpsyntax import (
    DIGITS_RE,
    INT64_MAX,
    MS_FROM,
    NEG_INT_RE,
    NOT_METRIC_FIELDS,
    NS_FROM,
    PRECISION_DIVISOR,
    PREFIX_RE,
    SCOPE_TYPES,
    US_FROM,
    Reject,
    canonical_key,
    parse_value,
    scan_fields,
    show,
    timestamp_seconds,
)
from cc.ingestd._prefixindex import MISS, PrefixIndex, prefix_hash, prefix_hashes
from cc.shm._registry import SeriesKey

__all__ = ["LineError", "LineParser", "Parsed", "SCOPE_TYPES"]


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
_INT64_MAX_BYTES = str(INT64_MAX).encode()
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
    elif n and t.max() >= MS_FROM:
        t = np.where(
            t < MS_FROM,
            t,
            np.where(t < US_FROM, t // 1_000, np.where(t < NS_FROM, t // 1_000_000, t // 1_000_000_000)),
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
        # raw prefix -> kid (or -1: metric unknown), one index per ?cluster= default.
        self._caches: dict[str | None, PrefixIndex] = {}
        self._cache_size = 0
        # Keys of kids not yet resolved by the caller (see forget()): per-series memory in
        # every worker is kept to the prefix index.
        self._kid_of: dict[SeriesKey, int] = {}
        self._keys: dict[int, SeriesKey] = {}
        self._num_keys = 0

    # --- kids -----------------------------------------------------------------------------
    @property
    def num_keys(self) -> int:
        return self._num_keys

    def key(self, kid: int) -> SeriesKey:
        key = self._keys.get(kid)
        if key is None:
            raise KeyError(f"key of kid {kid} was forgotten (the caller resolved it)")
        return key

    def forget(self, kids) -> None:
        """Drop the keys of kids the caller has resolved to series ids.

        A worker sees every series of the cluster; keeping their keys would cost a few
        hundred bytes per series in every ingest process.  A raw prefix seen later still
        maps to its kid through the prefix index; only a new spelling of a forgotten key
        gets a new kid (which resolves to the same series).
        """
        for kid in kids:
            key = self._keys.pop(kid, None)
            if key is not None and self._kid_of.get(key) == kid:
                del self._kid_of[key]
        # A dict keeps its table when emptied by deletions: start small again.
        if not self._keys:
            self._keys = {}
        if not self._kid_of:
            self._kid_of = {}

    def restore(self, kid: int, key: SeriesKey) -> None:
        """Give a forgotten kid its key back (its series id became invalid)."""
        self._keys[kid] = key

    def frequency_of(self, key: SeriesKey) -> int:
        """Timestep of a key's metric (keys the parser produced always have one)."""
        spec = self._lookup(key.cluster, key.metric)
        if spec is None:
            raise KeyError(f"metric {key.metric!r} of cluster {key.cluster!r} is not configured")
        return spec.frequency

    # --- parsing --------------------------------------------------------------------------
    def parse(self, body: bytes, default_cluster: str | None, now: int,
              precision: str | None = None) -> Parsed:
        if precision is None:
            divisor = None
        else:
            try:
                divisor = PRECISION_DIVISOR[precision]
            except KeyError:
                raise ValueError(f"unknown precision {precision!r} (expected s, ms, us or ns)") from None
        if not default_cluster:
            default_cluster = None
        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
            if body.endswith(b"\r"):
                body = body[:-1]
        lines = body.split(b"\n")
        index = self._caches.get(default_cluster)
        if index is None:
            index = self._caches[default_cluster] = PrefixIndex()
        acc = _Acc(self.max_errors)
        # Fast-path candidates: lines of exactly three space-separated parts.
        other_lines: list[int] = []
        f_pre: list[bytes] = []
        f_fld: list[bytes] = []
        f_ts: list[bytes] = []
        for i, line in enumerate(lines):
            parts = line.split(b" ")
            if len(parts) == 3:
                f_pre.append(parts[0])
                f_fld.append(parts[1])
                f_ts.append(parts[2])
            else:
                other_lines.append(i)
        f_line = None
        if f_pre:
            hashes = prefix_hashes(f_pre)
            kids = index.lookup(hashes)
            missed = np.flatnonzero(kids == MISS)
        else:
            kids = np.zeros(0, dtype=np.int64)
            missed = kids
        # Lines off the fast path, in line order (so kids are numbered by first appearance): the
        # other lines, and candidates whose prefix is not indexed yet unless an earlier line of
        # this body has just resolved it.
        missed_at: dict[int, int] = {}
        if len(missed):
            f_line = _complement(len(lines), other_lines)
            missed_at = dict(zip(f_line[missed].tolist(), missed.tolist(), strict=True))
        slowed: list[int] = []
        for i in sorted(other_lines + list(missed_at)) if missed_at else other_lines:
            j = missed_at.get(i)
            if j is not None:
                kid = index.get(int(hashes[j]))
                if kid is not None:
                    kids[j] = kid
                    continue
                slowed.append(j)
            self._slow_line(lines[i], i, index, default_cluster, now, divisor, acc)
        slow_lines = other_lines
        if slowed:
            slow_lines = sorted(other_lines + f_line[slowed].tolist())
            keep = np.ones(len(f_pre), dtype=bool)
            keep[slowed] = False
            kids, f_line = kids[keep], f_line[keep]
            f_fld = [f for f, k in zip(f_fld, keep.tolist(), strict=True) if k]
            f_ts = [t for t, k in zip(f_ts, keep.tolist(), strict=True) if k]
        del f_pre

        nf = len(f_fld)
        acc.lines += nf
        first_errors = acc.errors
        acc.errors = []
        if nf:
            values, bad = _bulk_values(f_fld)
            ts, bad_ts = _bulk_timestamps(f_ts, divisor)
            bad |= bad_ts
            if b"\x00" in body:  # numpy's fixed-width strings would drop trailing NULs
                for j in range(nf):
                    if b"\x00" in f_fld[j] or b"\x00" in f_ts[j]:
                        bad[j] = True
            if bad.any():
                if f_line is None:
                    f_line = _complement(len(lines), slow_lines)
                acc.lines -= int(bad.sum())
                for j in np.flatnonzero(bad).tolist():
                    i = int(f_line[j])
                    self._slow_line(lines[i], i, index, default_cluster, now, divisor, acc)
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

        index.flush()
        errors = first_errors
        if acc.errors:
            errors = sorted(first_errors + acc.errors)[: self.max_errors]
        return Parsed(kids=kids, ts=ts, values=values, lines=acc.lines, errors=errors,
                      error_count=acc.error_count, unknown_metric=acc.unknown, invalid_name=acc.invalid,
                      not_a_metric=acc.not_metric)

    def _slow_line(self, line: bytes, i: int, cache: PrefixIndex, default_cluster: str | None,
                   now: int, divisor: int | None, acc: _Acc) -> None:
        try:
            outcome = self._parse_line(line, cache, default_cluster, now, divisor)
        except Reject as e:
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

    def _parse_line(self, line: bytes, cache: PrefixIndex, default_cluster: str | None, now: int,
                    divisor: int | None) -> tuple:
        """Full parse of one line: an outcome tuple, or raises Reject."""
        s = line.strip(b" ")
        if not s or s[0] == 0x23:  # blank or '#' comment
            return (_BLANK,)

        # Sections: prefix (measurement and tags), field set, optional timestamp.
        if b"\\" in s:
            m = PREFIX_RE.match(s)
            assert m is not None
            end = m.end()
        else:
            end = s.find(b" ")
            if end < 0:
                end = len(s)
        prefix = s[:end]
        rest = s[end:].lstrip(b" ")
        if not rest:
            raise Reject(f"missing field set after {show(prefix)} (expected ' value=<number>')")
        fields, pos = scan_fields(rest)
        tail = rest[pos:].lstrip(b" ")
        ts_raw = None
        if tail:
            sp = tail.find(b" ")
            if sp >= 0:
                raise Reject(f"unexpected text {show(tail[sp:].lstrip(b' '))} after the timestamp")
            ts_raw = tail
            if not DIGITS_RE.fullmatch(ts_raw):
                if NEG_INT_RE.fullmatch(ts_raw):
                    raise Reject(f"timestamp {show(ts_raw)} is negative")
                raise Reject(f"timestamp {show(ts_raw)} is not an integer")

        # Message kind.
        if len(fields) != 1:
            names = ", ".join(show(k) for k, _ in fields[:5])
            raise Reject(f"metric lines carry exactly one field 'value', found {len(fields)}: {names}")
        fkey, fval = fields[0]
        if fkey != b"value":
            if fkey in NOT_METRIC_FIELDS:
                return (_NOT_METRIC,)
            raise Reject(f"unknown field {show(fkey)} (metric messages carry 'value')")

        kid = self._resolve(prefix, cache, default_cluster)
        value = parse_value(fval)
        if ts_raw is None:
            t = now
        else:
            if len(ts_raw.lstrip(b"0")) > 19:
                raise Reject(f"timestamp {show(ts_raw)} is out of the int64 range")
            t = int(ts_raw)
            if t > INT64_MAX:
                raise Reject(f"timestamp {show(ts_raw)} is out of the int64 range")
            t = timestamp_seconds(t, divisor)
        if kid < 0:
            return (_UNKNOWN,)
        return (_POINT, kid, t, value)

    def _resolve(self, prefix: bytes, cache: PrefixIndex, default_cluster: str | None) -> int:
        """Kid of a raw prefix (-1: unknown metric), via the prefix index; raises Reject."""
        h = prefix_hash(prefix)
        kid = cache.get(h)
        if kid is not None:
            return kid
        key = canonical_key(prefix, default_cluster)
        spec = self._lookup(key.cluster, key.metric)
        if spec is None:
            kid = -1
        else:
            kid = self._kid_of.get(key)
            if kid is None:
                kid = self._num_keys
                self._num_keys += 1
                self._kid_of[key] = kid
                self._keys[kid] = key
        if b" " not in prefix:  # the fast path can only ever look up space-free prefixes
            if self._cache_size >= self.cache_limit:
                for c in self._caches.values():
                    c.clear()
                self._cache_size = 0
            cache.add(h, kid)
            self._cache_size += 1
        return kid


def _complement(n: int, excluded: list[int]) -> np.ndarray:
    """0..n-1 without ``excluded``: the line indices of the fast-path candidates."""
    mask = np.ones(n, dtype=bool)
    mask[excluded] = False
    return np.flatnonzero(mask)
