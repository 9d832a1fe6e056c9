"""From a request body to points in shared memory and the WAL: parse, resolve series, write, log, count."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from cc.clusters import MetricCatalog
from cc.ingestd.lineproto import LineParser
from cc.shm import COUNTER_INDEX, REJECT_MEMCAP, REJECT_REGISTRY_FULL, SeriesKey, Store
from cc.wal import WalWriter

MAX_REPORTED_ERRORS = 20


@dataclass
class IngestResult:
    lines: int = 0
    written: int = 0
    too_old: int = 0
    too_far_future: int = 0
    unknown_metric: int = 0
    not_a_metric: int = 0
    rejected: int = 0
    malformed: int = 0
    errors: list[dict] = field(default_factory=list)
    wal_seq: int = 0  # WAL record holding these points (0 = none); the answer waits for its fsync per policy

    def as_dict(self) -> dict:
        d = {
            "lines": self.lines,
            "written": self.written,
            "too_old": self.too_old,
            "too_far_future": self.too_far_future,
            "unknown_metric": self.unknown_metric,
            "not_a_metric": self.not_a_metric,
            "rejected": self.rejected,
            "malformed": self.malformed,
        }
        if self.errors:
            d["errors"] = self.errors
        return d


class Ingestor:
    """One per ingest process; not thread-safe (the app runs it in one worker thread at a time)."""

    def __init__(self, store: Store, catalog: MetricCatalog, slot: int, wal: WalWriter | None = None):
        self.store = store
        self.slot = slot
        self.wal = wal
        self.parser = LineParser(catalog.get, max_errors=MAX_REPORTED_ERRORS)
        self.kid_sid = np.full(1024, -1, dtype=np.int32)  # series ids fit: the registry holds < 2**25
        self.counters = store.counters[slot]
        self.registered = 0  # series this worker resolved to ids (drives the heap trim, see app.py)
        self._counting = True

    def _count(self, name: str, n: int) -> None:
        if n and self._counting:
            self.counters[COUNTER_INDEX[name]] += n

    def ingest(self, body: bytes, cluster: str | None, precision: str | None = None,
               now: float | None = None, count: bool = True) -> IngestResult:
        """``count=False``: store the points but leave the line/point counters alone (a JetStream
        redelivery: its first delivery may have been counted already)."""
        now = time.time() if now is None else now
        self._counting = count
        try:
            return self._ingest(body, cluster, precision, now)
        finally:
            self._counting = True

    def _ingest(self, body: bytes, cluster: str | None, precision: str | None, now: float) -> IngestResult:
        parsed = self.parser.parse(body, cluster, int(now), precision)
        res = IngestResult(lines=parsed.lines, unknown_metric=parsed.unknown_metric,
                           not_a_metric=parsed.not_a_metric, malformed=parsed.error_count,
                           errors=[{"line": e.line, "error": e.reason} for e in parsed.errors])
        self._count("lines", parsed.lines)
        self._count("malformed_lines", parsed.error_count)
        self._count("unknown_metric", parsed.unknown_metric)
        self._count("invalid_name", parsed.invalid_name)
        self._count("not_a_metric", parsed.not_a_metric)
        if not len(parsed.kids):
            return res
        nk = self.parser.num_keys
        if nk > len(self.kid_sid):
            grown = np.full(max(nk, 2 * len(self.kid_sid)), -1, dtype=np.int32)
            grown[: len(self.kid_sid)] = self.kid_sid
            self.kid_sid = grown
        sids = self.kid_sid[parsed.kids].astype(np.int64)
        resolved: list[int] = []  # kids whose keys the parser can forget once the WAL has them
        if (sids < 0).any():
            missing = np.unique(parsed.kids[sids < 0])
            keys = [self.parser.key(int(k)) for k in missing]
            freqs = [self.parser.frequency_of(key) for key in keys]
            got = self.store.resolve(keys, freqs, counter_slot=self.slot)
            # Only successes are cached: a series refused for the memory cap may fit later.
            self.kid_sid[missing] = np.where(got >= 0, got, -1)
            resolved = missing[got >= 0].tolist()
            self.registered += len(resolved)
            sids = self.kid_sid[parsed.kids].astype(np.int64)
            if (sids < 0).any():
                lookup = dict(zip(missing.tolist(), got.tolist(), strict=True))
                reasons = np.array([lookup.get(int(k), 0) for k in parsed.kids[sids < 0]])
                self._count("memory_cap_rejected", int(np.isin(reasons, (REJECT_MEMCAP, REJECT_REGISTRY_FULL)).sum()))
        ok = sids >= 0
        res.rejected = int((~ok).sum())
        kids, ts, values = parsed.kids, parsed.ts, parsed.values
        if not ok.all():
            sids, kids, ts, values = sids[ok], kids[ok], ts[ok], values[ok]
        # The WAL gate spans the shared-memory write and the append (rotation protocol:
        # cc/storeproc/_checkpoint.py); the same age limits apply again on replay.
        try:
            with self.wal.gate() if self.wal is not None else contextlib.nullcontext():
                ws = self.store.write(sids, ts, values, now=now, counter_slot=self.slot if self._counting else None)
                if self.wal is not None:
                    res.wal_seq = self.wal.append(kids, ts, values, now, self._describe)
        finally:
            self.parser.forget(resolved)  # after the WAL's key table took them
        if ws.remapped:
            for old, new in ws.remapped.items():
                kids = np.flatnonzero(self.kid_sid == old)
                self.kid_sid[kids] = new if new >= 0 else -1
                if new < 0:  # refused on re-registration: the next request tries again with the key
                    key = self.store.key_of(old)
                    for kid in kids.tolist():
                        self.parser.restore(kid, key)
        res.written = ws.written
        res.too_old = ws.too_old
        res.too_far_future = ws.too_far_future
        res.rejected += ws.rejected
        return res

    def _describe(self, kid: int) -> tuple[SeriesKey, int]:
        """Key and frequency of a kid for the WAL's key table (the parser forgets resolved keys)."""
        try:
            key = self.parser.key(kid)
        except KeyError:
            key = self.store.key_of(int(self.kid_sid[kid]))
        return key, self.parser.frequency_of(key)
