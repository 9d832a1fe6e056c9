"""``cleanup.mode = "archive"``: aged-out points go to Parquet before memory is reused.

Each run at time T writes, per cluster, ``<cleanup.directory>/<cluster>/<T>.parquet``
(zstd; columns cluster, hostname, metric, scope, scope_id, timestamp, frequency, value;
sorted by cluster, hostname, metric, timestamp, scope, scope_id) with every stored point
in the bins ``[cut(T_prev), cut(T))``, where ``cut(T) = (T - retention - margin) // f``.
Bins below ``cut(T)`` can no longer be written (writers reject points older than the
retention window; ``margin`` covers requests whose receive time precedes T), so a bin is
archived exactly once: runs cover adjacent half-open ranges, and the watermark T is
stored in ``.archive-state.json`` only after the files are durable.  A run interrupted
by a crash is marked ``in_progress``; its partial files are deleted and the range is
archived again by the next run.

Why the rings get slack slots in archive mode (``ring_slack_seconds``): a ring
overwrites its oldest slot when a newer bin arrives, so bins must stay in memory until
the next run has written them: ``interval + margin`` plus the 10 minutes writers accept
into the future plus a minute for the run itself.

Series that stop reporting are released only once everything they hold is archived
(``release_horizon``); the memory cap and ``/api/free`` archive what they drop first.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from cc.config import MetricStoreConfig
from cc.fsio import fsync_dir, replace_atomically
from cc.shm import _layout as L
from cc.shm._snapshot import live_series
from cc.shm._store import MAX_FUTURE_SECONDS, Store

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("store.archive")

STATE_FILE = ".archive-state.json"
READ_CHUNK_POINTS = 4 << 20


def schema() -> pa.Schema:
    """The Parquet columns (pyarrow is imported only where archiving happens: it is slow to import)."""
    import pyarrow as pa

    return pa.schema([("cluster", pa.string()), ("hostname", pa.string()), ("metric", pa.string()),
                      ("scope", pa.string()), ("scope_id", pa.string()), ("timestamp", pa.int64()),
                      ("frequency", pa.int64()), ("value", pa.float64())])


def margin_seconds(retention: int) -> int:
    """How long a request may take between its receive time and its shared-memory write."""
    return int(min(60, max(1, retention // 10)))


def ring_slack_seconds(ms: MetricStoreConfig) -> int:
    """Extra ring length for archive mode (0 in delete mode); see the module docstring."""
    if ms.cleanup_mode != "archive":
        return 0
    return ms.cleanup_interval + margin_seconds(ms.retention) + MAX_FUTURE_SECONDS + 60


class Archiver:
    """Writes aged-out points to Parquet; one per store process (thread-safe via an internal lock)."""

    def __init__(self, store: Store, directory: Path, retention: int, slot: int | None = None):
        self.store = store
        self.dir = Path(directory)
        self.retention = retention
        self.margin = margin_seconds(retention)
        self.slot = slot
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.archived_to: int | None = None
        self._recover()

    # -- state -------------------------------------------------------------------------

    def _recover(self) -> None:
        path = self.dir / STATE_FILE
        try:
            state = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as e:
            raise RuntimeError(f"{path}: unreadable archive state ({e}); fix or remove it") from None
        self.archived_to = state.get("archived_to")
        partial = state.get("in_progress")
        if partial is not None:
            for f in self.dir.glob(f"*/{partial}.parquet"):
                log.warning("removing %s: written by an archive run that did not finish", f)
                f.unlink(missing_ok=True)
            self._save(None)
        if self.archived_to is not None:
            self.store.hdr[L.H_ARCHIVED_TO] = self.archived_to

    def _save(self, in_progress: int | None) -> None:
        replace_atomically(self.dir / STATE_FILE,
                           orjson.dumps({"archived_to": self.archived_to, "in_progress": in_progress}))

    def cut(self, t: int, frequency: int) -> int:
        return (t - self.retention - self.margin) // frequency

    def release_horizon(self) -> float | None:
        """``now`` for ``Store.stale_series``: series older than this are fully archived (None = none yet)."""
        return None if self.archived_to is None else float(self.archived_to - self.margin)

    # -- runs --------------------------------------------------------------------------------

    def run(self, now: float | None = None) -> int:
        """Archive every point that aged out since the previous run; returns the number of points."""
        with self._lock:
            t = int(time.time() if now is None else now)
            if self.archived_to is not None and t <= self.archived_to:
                return 0
            ranges = {}
            for p, pool in enumerate(self.store.pools):
                f = pool.frequency
                lo = None if self.archived_to is None else self.cut(self.archived_to, f)
                ranges[p] = (lo, self.cut(t, f))
            n = self._write_run(t, ranges, None)
            self.archived_to = t
            self._save(None)
            self.store.hdr[L.H_ARCHIVED_TO] = t
            return n

    def archive_before_free(self, sids: np.ndarray, to: int | None = None) -> int:
        """Archive what releasing/freeing ``sids`` (all bins, or those before ``to``) would drop."""
        sids = np.asarray(sids, dtype=np.int64)
        if not len(sids):
            return 0
        with self._lock:
            t = int(time.time())
            if self.archived_to is not None:
                t = max(t, self.archived_to + 1)
            while any(self.dir.glob(f"*/{t}.parquet")):
                t += 1
            ranges = {}
            for p, pool in enumerate(self.store.pools):
                f = pool.frequency
                lo = None if self.archived_to is None else self.cut(self.archived_to, f)
                ranges[p] = (lo, None if to is None else to // f)
            n = self._write_run(t, ranges, sids)
            self._save(None)
            return n

    def _write_run(self, t: int, ranges: dict[int, tuple[int | None, int | None]], only: np.ndarray | None) -> int:
        """One archive run, timed and its failures counted for /metrics."""
        t0 = time.perf_counter()
        try:
            n = self._write_tables(t, ranges, only)
        except Exception:
            if self.slot is not None:
                self.store.counters[self.slot, L.COUNTER_INDEX["parquet_archive_errors"]] += 1
            raise
        if self.slot is not None:
            self.store.observe(self.slot, L.HIST_INDEX["parquet_archive"], time.perf_counter() - t0)
        return n

    def _write_tables(self, t: int, ranges: dict[int, tuple[int | None, int | None]], only: np.ndarray | None
                      ) -> int:
        import pyarrow as pa

        self._save(t)
        per_cluster: dict[str, list[pa.Table]] = {}
        total = lost = 0
        for p, (lo, hi) in ranges.items():
            tables, n, nlost = self._collect(p, lo, hi, only)
            total += n
            lost += nlost
            for cluster, tab in tables:
                per_cluster.setdefault(cluster, []).append(tab)
        for cluster, tabs in per_cluster.items():
            table = pa.concat_tables(tabs).sort_by([("cluster", "ascending"), ("hostname", "ascending"),
                                                    ("metric", "ascending"), ("timestamp", "ascending"),
                                                    ("scope", "ascending"), ("scope_id", "ascending")])
            _write_parquet(self.dir / cluster / f"{t}.parquet", table)
        if self.slot is not None and total:
            self.store.counters[self.slot, L.COUNTER_INDEX["archived_points"]] += total
        if total:
            log.info("archived %d points of %d clusters to %s/*/%d.parquet", total, len(per_cluster), self.dir, t)
        if lost:
            log.error("%d bins were overwritten in memory before they could be archived (was the store process "
                      "down for longer than cleanup.interval?)", lost)
        return total

    def _collect(self, p: int, lo: int | None, hi: int | None, only: np.ndarray | None
                 ) -> tuple[list[tuple[str, pa.Table]], int, int]:
        import pyarrow as pa

        store = self.store
        pool = store.pools[p]
        f = pool.frequency
        sids, rows, _ = live_series(store, p)
        if only is not None:
            keep = np.isin(sids, only)
            sids, rows = sids[keep], rows[keep]
        if not len(sids):
            return [], 0, 0
        last = pool.meta[rows, L.M_LAST]
        first = pool.meta[rows, L.M_FIRST]
        lost = 0
        if lo is not None:
            oldest = last - pool.cap + 1
            lost = int(np.maximum(0, oldest - np.maximum(lo, first))[(first >= 0) & (last >= 0)].sum())
        frm = 0 if lo is None else lo * f
        to = (int(last.max()) + 1) * f if hi is None else hi * f
        if to <= frm:
            return [], 0, lost
        step = max(1, READ_CHUNK_POINTS // max(1, min(pool.cap, (to - frm) // f)))
        out: dict[str, list[pa.Table]] = {}
        total = 0
        for a in range(0, len(sids), step):
            part = sids[a:a + step]
            res = store.read(part, frm, to)
            if not res.values.size:
                continue
            mask = ~np.isnan(res.values)
            which, col = np.nonzero(mask)
            if not len(which):
                continue
            keys = [store.key_of(int(s)) for s in part.tolist()]
            cols = {
                "cluster": np.array([k.cluster for k in keys], dtype=object),
                "hostname": np.array([k.host for k in keys], dtype=object),
                "metric": np.array([k.metric for k in keys], dtype=object),
                "scope": np.array([k.stype or k.type for k in keys], dtype=object),
                "scope_id": np.array([k.stype_id if k.stype else k.type_id for k in keys], dtype=object),
            }
            ts = (res.start_bin + col.astype(np.int64)) * f
            tab = pa.table({**{name: pa.array(arr[which], pa.string()) for name, arr in cols.items()},
                            "timestamp": pa.array(ts, pa.int64()),
                            "frequency": pa.array(np.full(len(ts), f, dtype=np.int64), pa.int64()),
                            "value": pa.array(res.values[mask], pa.float64())}, schema=schema())
            total += len(ts)
            clusters = cols["cluster"][which]
            for c in set(cols["cluster"].tolist()):
                sel = clusters == c
                if sel.any():
                    out.setdefault(c, []).append(tab.filter(pa.array(sel)))
        return [(c, pa.concat_tables(t)) for c, t in out.items()], total, lost


def _write_parquet(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
