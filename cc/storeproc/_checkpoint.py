"""Checkpoints: snapshots of shared memory, WAL rotation, and restore at start.

Files under ``checkpoints.directory``: ``snapshot-<epoch>.bin|json`` and
``wal/<epoch>-w<worker>-<pid>-<n>.wal``.  ``snapshot-E`` contains every point of every WAL
file of an epoch below E.

**Rotation protocol.**  Ingest process *i* owns lock byte ``W_i = LOCK_WAL_BASE + slot``
(an OFD lock: the kernel drops it if the process dies).

* Ingest, per request (``cc.wal.WalWriter.gate``/``append``)::

      lock W_i;  e = hdr[H_WAL_EPOCH];  if e changed: close the old file, open one of epoch e
      write the points to shared memory;  append their record to the file of epoch e
      unlock W_i;  fsync per policy;  answer

* Checkpointer (``Checkpointer.checkpoint``)::

      E = hdr[H_WAL_EPOCH] + 1;  hdr[H_WAL_EPOCH] = E
      for every slot i: lock W_i; unlock W_i                     -- the barrier
      copy shared memory to snapshot-E (temp file, fsync, rename, fsync directory)
      delete snapshots and WAL files of epochs below P, the previous snapshot's epoch

*Claim:* every point in a WAL file of epoch < E is in snapshot-E.  *Why:* such a record
was appended inside one W_i critical section that read ``H_WAL_EPOCH < E``.  Critical
sections that begin after the checkpointer's lock/unlock of W_i read E or later (the
store of E precedes that unlock, and unlock/lock order memory), so this section ended
before the barrier passed W_i, and with it its shared-memory write.  The snapshot starts
after the barrier, so it reads the point, or a newer value of the same slot, which was
acknowledged later and is itself in the snapshot or in a WAL of epoch >= E.

Keeping the WAL since the *previous* snapshot costs disk, but lets a restore fall back to
that snapshot when the newest one is damaged, without losing anything.

**Restore** (store process, fresh shared memory only; the supervisor starts nothing else
before ``H_RESTORE`` says done): newest snapshot that passes its checksums (damaged ones
are logged with file and offset, renamed to ``*.damaged`` and skipped; if none is intact,
the chunks of the damaged ones that still check out are loaded and every WAL file on disk
is replayed), then the WAL files of its epoch and later, merged by receive time, each
request re-applying its own age limits.  Damaged WAL records are skipped (see
:class:`cc.wal.WalReader`); no file's damage, and no unexpected error, stops the restore.  Then
``H_WAL_EPOCH`` is set above every epoch on disk, so new files never mix with old ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cc.config import MetricStoreConfig
from cc.shm import _layout as L
from cc.shm._snapshot import (
    SnapshotError,
    SnapshotStats,
    list_snapshots,
    load_snapshot,
    salvage_snapshot,
    write_snapshot,
)
from cc.shm._store import Store
from cc.wal import WalReader, file_epoch, list_wal_files

log = logging.getLogger("store.checkpoint")

REPLAY_BATCH_POINTS = 1 << 20


@dataclass
class RestoreReport:
    snapshot: str | None = None
    snapshot_series: int = 0
    snapshot_points: int = 0
    damaged_snapshots: list[str] = field(default_factory=list)
    salvaged: list[str] = field(default_factory=list)  # damaged snapshots whose intact chunks were loaded
    wal_files: int = 0
    wal_records: int = 0
    wal_points: int = 0  # points stored by the replay
    wal_too_old: int = 0  # dropped by the same age limits that applied when they were received
    wal_rejected: int = 0  # no pool for the frequency / memory cap
    bad_records: int = 0  # torn tails and checksum failures (skipped, counted)
    bad_bytes: int = 0
    bad_files: list[str] = field(default_factory=list)
    skipped_stale: int = 0
    epoch: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        s = (f"restored {self.snapshot_series} series / {self.snapshot_points} points from "
             f"{self.snapshot or 'no snapshot'}; replayed {self.wal_records} WAL records "
             f"({self.wal_points} points) from {self.wal_files} files in {self.seconds:.2f}s")
        if self.bad_records:
            s += f"; skipped {self.bad_records} bad WAL records ({self.bad_bytes} bytes) in {', '.join(self.bad_files)}"
        if self.damaged_snapshots:
            s += f"; damaged snapshots skipped: {', '.join(self.damaged_snapshots)}"
        if self.salvaged:
            s += f" (intact chunks of {', '.join(self.salvaged)} loaded)"
        if self.wal_rejected:
            s += f"; {self.wal_rejected} WAL points rejected (unknown frequency or memory cap)"
        return s


class Checkpointer:
    """Writes snapshots, rotates and prunes the WAL, restores at start (store process and supervisor)."""

    def __init__(self, store: Store, ms: MetricStoreConfig, slot: int | None = None):
        self.store = store
        self.ms = ms
        self.dir = Path(ms.checkpoint_dir)
        self.fmt = "json" if ms.checkpoint_format == "json" else "binary"
        self.threads = ms.effective_num_workers()
        self.slot = slot
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _dir_lock(self):
        """One checkpoint or restore at a time per directory (store process vs. supervisor)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- snapshots ---------------------------------------------------------------------

    def barrier(self) -> None:
        """Wait until no ingest process is inside a critical section that read an older epoch."""
        for slot in range(L.COUNTER_SLOTS):
            with self.store.locks.hold(L.LOCK_WAL_BASE + slot):
                pass

    def checkpoint(self, reason: str = "interval") -> SnapshotStats:
        """Raise the WAL epoch, wait for the barrier, write snapshot-E, prune older files (timed, for /metrics)."""
        t0 = time.perf_counter()
        try:
            st = self._checkpoint(reason)
        except Exception:
            if self.slot is not None:
                self.store.counters[self.slot, L.COUNTER_INDEX["snapshot_errors"]] += 1
            raise
        if self.slot is not None:
            self.store.observe(self.slot, L.HIST_INDEX["snapshot"], time.perf_counter() - t0, st.bytes)
        return st

    def _checkpoint(self, reason: str) -> SnapshotStats:
        with self._lock, self._dir_lock():
            self._remove_temp_files()
            hdr = self.store.hdr
            epoch = int(hdr[L.H_WAL_EPOCH]) + 1
            hdr[L.H_WAL_EPOCH] = epoch
            self.barrier()
            st = write_snapshot(self.store, self.dir, epoch, fmt=self.fmt, threads=self.threads)
            hdr[L.H_SNAPSHOT_EPOCH] = epoch
            if self.slot is not None:
                self.store.counters[self.slot, L.COUNTER_INDEX["snapshots_written"]] += 1
            removed = self.prune()
        log.info("snapshot %s (%s): %d series, %d points, %.1f MB in %.2fs%s", Path(st.path).name, reason,
                 st.series, st.points, st.bytes / 1e6, st.seconds,
                 f"; removed {removed} old files" if removed else "")
        return st

    def prune(self) -> int:
        """Keep the two newest snapshots and the WAL files since the older of them."""
        snaps = list_snapshots(self.dir)
        if len(snaps) < 2:
            return 0
        keep_from = snaps[1][0]
        n = 0
        for _, path in snaps[2:]:
            path.unlink(missing_ok=True)
            n += 1
        for p in list_wal_files(self.dir):
            if file_epoch(p) < keep_from:
                p.unlink(missing_ok=True)
                n += 1
        return n

    def _remove_temp_files(self) -> None:
        for p in self.dir.glob(".snapshot-*.tmp"):
            p.unlink(missing_ok=True)

    def newest_snapshot_time(self) -> float | None:
        snaps = list_snapshots(self.dir)
        if not snaps:
            return None
        with contextlib.suppress(OSError):
            return snaps[0][1].stat().st_mtime
        return None

    # -- restore ---------------------------------------------------------------------------

    def restore(self, now: float | None = None) -> RestoreReport:
        """Load the newest good snapshot and replay the WAL after it into (fresh) shared memory."""
        t0 = time.perf_counter()
        rep = RestoreReport()
        now = time.time() if now is None else now
        # In delete mode, series that aged out entirely would only be released again;
        # in archive mode they still have to reach Parquet, so everything is loaded.
        keep_from = None if self.ms.cleanup_mode == "archive" else now - self.store.retention
        with self._lock, self._dir_lock():
            self._remove_temp_files()
            snaps = list_snapshots(self.dir)
            base = None
            damaged: list[Path] = []
            for epoch, path in snaps:
                try:
                    st = load_snapshot(self.store, path, keep_from=keep_from, counter_slot=self.slot,
                                       threads=self.threads)
                except Exception as e:  # a damaged file must never stop the restore
                    if isinstance(e, SnapshotError):
                        log.error("skipping damaged snapshot %s: %s", path, e)
                    else:
                        log.exception("skipping snapshot %s: unexpected error while loading it", path)
                    rep.damaged_snapshots.append(path.name)
                    damaged.append(path)
                    continue
                base, rep.snapshot = epoch, path.name
                rep.snapshot_series, rep.snapshot_points, rep.skipped_stale = st.series, st.points, st.skipped_stale
                self._warn_rejected(path, st)
                break
            if base is None and damaged:
                # No intact snapshot: keep what the damaged ones still hold (oldest first, so newer
                # rings win); the WAL replay below then covers every epoch still on disk.
                for path in reversed(damaged):
                    self._salvage(path, keep_from, rep)
            for path in damaged:
                with contextlib.suppress(OSError):
                    path.rename(path.with_name(path.name + ".damaged"))
            files = [p for p in list_wal_files(self.dir) if base is None or file_epoch(p) >= base]
            self.replay(files, rep)
            epochs = [e for e, _ in snaps] + [file_epoch(p) for p in list_wal_files(self.dir)]
            rep.epoch = max(epochs, default=0) + 1
            self.store.hdr[L.H_WAL_EPOCH] = rep.epoch
            self.store.hdr[L.H_SNAPSHOT_EPOCH] = base or 0
        rep.seconds = time.perf_counter() - t0
        return rep

    def _warn_rejected(self, path: Path, st) -> None:
        if st.unknown_frequencies:
            log.warning("snapshot %s: series of frequencies %s have no pool now (metric config changed?)",
                        path.name, sorted(st.unknown_frequencies))
        if st.rejected:
            log.warning("snapshot %s: %d series not restored (no pool for their frequency, or the memory "
                        "cap / registry is full)", path.name, st.rejected)

    def _salvage(self, path: Path, keep_from: float | None, rep: RestoreReport) -> None:
        try:
            st, damage = salvage_snapshot(self.store, path, keep_from=keep_from, counter_slot=self.slot)
        except Exception:
            log.exception("cannot salvage damaged snapshot %s", path)
            return
        rep.snapshot_series += st.series
        rep.snapshot_points += st.points
        rep.salvaged.append(path.name)
        log.warning("salvaged %d series / %d points from damaged snapshot %s; damaged: %s", st.series, st.points,
                    path, "; ".join(damage[:10]) or "footer/structure only")
        self._warn_rejected(path, st)

    def replay(self, files: list[Path], rep: RestoreReport) -> None:
        """Re-apply WAL files: epoch by epoch, records of one epoch merged by receive time."""
        store = self.store
        for _, group in itertools.groupby(files, key=file_epoch):
            readers = [WalReader(p) for p in group]
            try:
                self._replay_epoch(readers, rep)
            except Exception:  # a bug must not stop the restore: the other epochs still count
                log.exception("WAL replay of %s failed", ", ".join(r.path.name for r in readers))
                rep.bad_files.extend(r.path.name for r in readers if r.path.name not in rep.bad_files)
            for r in readers:
                rep.wal_files += 1
                if r.stats.bad_records or r.stats.error:
                    rep.bad_records += max(1, r.stats.bad_records)
                    rep.bad_bytes += r.stats.bad_bytes
                    rep.bad_files.append(r.path.name)
                    log.error("WAL %s: %s; %d bytes skipped (%d good records replayed)", r.path,
                              r.stats.error, r.stats.bad_bytes, r.stats.records)
        if self.slot is not None:
            c = store.counters[self.slot]
            c[L.COUNTER_INDEX["wal_replayed_points"]] += rep.wal_points
            c[L.COUNTER_INDEX["wal_bad_records"]] += rep.bad_records

    def _replay_epoch(self, readers: list[WalReader], rep: RestoreReport) -> None:
        """The records of one epoch's files, merged by receive time, written in batches."""
        maps = [(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)) for _ in readers]
        streams = [_tagged(r, i) for i, r in enumerate(readers)]
        batch: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        size = 0
        for _, i, rec in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
            rep.wal_records += 1
            sids = self._map_kids(readers[i], maps, i, rec.kids)
            ok = sids >= 0
            rep.wal_rejected += int((~ok).sum())
            if not ok.all():
                rec.ts, rec.values, sids = rec.ts[ok], rec.values[ok], sids[ok]
            batch.append((sids, rec.ts, rec.values, np.full(len(sids), rec.received)))
            size += len(sids)
            if size >= REPLAY_BATCH_POINTS:
                self._flush(batch, rep)
                batch, size = [], 0
        self._flush(batch, rep)

    def _map_kids(self, reader: WalReader, maps: list[tuple[np.ndarray, np.ndarray]], i: int, kids: np.ndarray
                  ) -> np.ndarray:
        """Series ids of a record's file-local kids (negative: rejected).

        The map is a sorted (kid, sid) pair of arrays, not an array indexed by kid: kids are
        the writer's ids, which grow over a worker's lifetime (every 1M-prefix cache reset
        hands out new ones), so a file may hold a few kids in the hundreds of millions.
        """
        ks, ss = maps[i]
        if not len(kids):
            return kids
        pos = np.minimum(np.searchsorted(ks, kids), max(len(ks) - 1, 0))
        hit = ks[pos] == kids if len(ks) else np.zeros(len(kids), dtype=bool)
        if not hit.all():
            todo = np.unique(kids[~hit])
            sids_new = np.full(len(todo), -1, dtype=np.int64)  # no KEYS record (never written so): rejected
            known = [j for j, k in enumerate(todo.tolist()) if k in reader.key_of]
            if known:
                keys = [reader.key_of[int(todo[j])][0] for j in known]
                freqs = [reader.key_of[int(todo[j])][1] for j in known]
                sids_new[known] = self.store.resolve(keys, freqs, counter_slot=self.slot)
            at = np.searchsorted(ks, todo)
            maps[i] = ks, ss = np.insert(ks, at, todo), np.insert(ss, at, sids_new)
            pos = np.searchsorted(ks, kids)
        return ss[pos]

    def _flush(self, batch: list, rep: RestoreReport) -> None:
        if not batch:
            return
        sids = np.concatenate([b[0] for b in batch])
        ts = np.concatenate([b[1] for b in batch])
        vals = np.concatenate([b[2] for b in batch])
        now = np.concatenate([b[3] for b in batch])
        ws = self.store.write(sids, ts, vals, now=now)
        rep.wal_points += ws.written
        rep.wal_too_old += ws.too_old + ws.too_far_future
        rep.wal_rejected += ws.rejected


def _tagged(reader: WalReader, i: int):
    """(receive time, file index, record) for heapq.merge (a function, so ``i`` is bound per file)."""
    for rec in reader:
        yield rec.received, i, rec


def restore_if_pending(store: Store, ms: MetricStoreConfig, slot: int) -> RestoreReport | None:
    """The store process's first act on fresh shared memory; marks the store ready afterwards."""
    if int(store.hdr[L.H_RESTORE]) != L.RESTORE_PENDING:
        return None
    rep = Checkpointer(store, ms, slot).restore()
    store.hdr[L.H_RESTORE] = L.RESTORE_DONE
    (log.warning if rep.bad_records or rep.damaged_snapshots else log.info)("%s", rep.summary())
    return rep
