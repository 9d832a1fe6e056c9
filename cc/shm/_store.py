"""The shared metric store: a series registry and one ring buffer per series.

Concurrency protocol (see also ``cc/shm/README.md``):

* **Registry.**  Entries are appended under the registry lock and published by
  storing the new entry count last (one aligned 8-byte store).  Readers only look
  at entries below the count they read, so they never see a half-registered series.
  Entries are never rewritten, except for the ``released`` flag.
* **Rows.**  Each series owns one row of a pool (one pool per frequency).  Row
  metadata holds ``last`` (newest bin), ``seq`` (a seqlock) and ``gen`` (bumped
  when the row is released, so stale registry entries stop matching).
* **Writers** take the pool lock, make ``seq`` odd, update values and ``last``,
  then make ``seq`` even.  Values are aligned float64 stores, so no slot is ever
  torn.  A writer killed mid-update leaves ``seq`` odd; the next writer or a reader
  that finds the pool lock free repairs it.
* **Readers** take no lock: they read ``seq``, copy the data, read ``seq`` again and
  retry rows whose ``seq`` changed or was odd.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cc.shm import _layout as L
from cc.shm._locks import LockSet
from cc.shm._registry import (
    RegistryMixin,
)
from cc.shm._segments import Segment, segment_exists, segment_name, unlink_all

MAX_FUTURE_SECONDS = 600
GATHER_CHUNK = 32


class LayoutMismatch(RuntimeError):
    pass


@dataclass
class WriteStats:
    written: int = 0
    too_old: int = 0
    too_far_future: int = 0
    rejected: int = 0
    remapped: dict[int, int] = field(default_factory=dict)


@dataclass
class ReadResult:
    """Values of several series of one pool over a common bin range.

    ``values[i, j]`` is series ``i`` at bin ``start_bin + j`` (NaN where empty).
    ``last[i]`` is the newest bin the series holds (-1 if none / released) and
    ``first[i]`` the oldest bin it can still hold data for.
    """

    values: np.ndarray
    start_bin: int
    frequency: int
    last: np.ndarray
    alive: np.ndarray
    first: np.ndarray

    @property
    def start(self) -> int:
        return self.start_bin * self.frequency

    @property
    def end(self) -> int:
        return (self.start_bin + self.values.shape[1]) * self.frequency


class _Pool:
    def __init__(self, index: int, layout: L.PoolLayout, data: Segment, meta: Segment, free: Segment):
        self.index = index
        self.layout = layout
        self.frequency = layout.frequency
        self.cap = layout.capacity
        self.segments = (data, meta, free)
        self.data = data.array(np.float64, (layout.rows_cap, layout.capacity))
        self.flat = self.data.reshape(-1)
        self.meta = meta.array(np.int64, (layout.rows_cap, L.META_WORDS))
        self.free = free.array(np.int64, (layout.rows_cap,))

    def drop_views(self) -> None:
        del self.data, self.flat, self.meta, self.free


def _even_odd_seqs(pool: _Pool, used: int) -> int:
    """Make odd seqlocks (left by killed writers) even; the caller holds the pool lock."""
    odd = np.flatnonzero(pool.meta[:used, L.M_SEQ] & 1)
    if len(odd):
        pool.meta[odd, L.M_SEQ] += 1
    return len(odd)


class Store(RegistryMixin):
    """A process's view of the shared store.  Create with :meth:`create` (supervisor) or :meth:`attach`."""

    def __init__(self, instance: str, hdr: Segment, reg: Segment, blob: Segment, locks: Segment,
                 pools: list[_Pool]):
        self.instance = instance
        self._segments = [hdr, reg, blob, locks]
        self.hdr = hdr.array(np.int64, (L.HEADER_WORDS,))
        self.reg = reg.array(L.ENTRY_DTYPE, (int(self.hdr[L.H_REG_CAP]),))
        self.blob = blob.array(np.uint8, (int(self.hdr[L.H_BLOB_CAP]),))
        self._reg_row = self.reg["row"]
        self._reg_gen = self.reg["gen"]
        self._reg_pool = self.reg["pool"]
        self._reg_flags = self.reg["flags"]
        assert locks.fd is not None
        self.locks = LockSet(locks.fd)
        self.pools = pools
        self.retention = int(self.hdr[L.H_RETENTION])
        self.counters = self.hdr[L.H_COUNTERS:L.H_PROCS].reshape(L.COUNTER_SLOTS, L.COUNTERS_PER_SLOT)
        self.procs = self.hdr[L.H_PROCS:L.H_HISTS].reshape(L.COUNTER_SLOTS, L.PROC_WORDS)
        self.hists = self.hdr[L.H_HISTS:L.HEADER_WORDS].reshape(L.COUNTER_SLOTS, L.MAX_HISTOGRAMS, L.HIST_WORDS)
        self._pool_by_freq = {p.frequency: p.index for p in pools}
        self._reg_khash = self.reg["khash"]
        self._reg_hhash = self.reg["hhash"]
        self._init_registry_caches()

    # -- creation / attachment ------------------------------------------------

    @classmethod
    def create(cls, instance: str, layout: L.Layout) -> tuple[Store, bool]:
        """Attach to the segments of ``instance`` if they match ``layout``, else (re)create them.

        Returns the store and whether it was freshly created (False = data survived).
        """
        hname = segment_name(instance, "hdr")
        if segment_exists(hname):
            try:
                store = cls.attach(instance)
            except (LayoutMismatch, ValueError, OSError):
                store = None
            if store is not None:
                if int(store.hdr[L.H_HASH]) == layout.fingerprint():
                    store.hdr[L.H_BOOT] += 1
                    return store, False
                store.close()
            unlink_all(instance)
        else:
            unlink_all(instance)
        hdr = Segment(hname, L.HEADER_WORDS * 8, create=True)
        h = hdr.array(np.int64, (L.HEADER_WORDS,))
        h[L.H_VERSION] = L.VERSION
        h[L.H_CREATED] = int(time.time())
        h[L.H_REG_CAP] = layout.registry_capacity
        h[L.H_BLOB_CAP] = layout.blob_capacity
        h[L.H_NPOOLS] = len(layout.pools)
        h[L.H_HASH] = layout.fingerprint()
        h[L.H_MEMCAP_BYTES] = layout.memory_cap_bytes
        h[L.H_RETENTION] = layout.retention
        for i, p in enumerate(layout.pools):
            base = L.H_POOLS + i * L.POOL_WORDS
            h[base + L.P_FREQ] = p.frequency
            h[base + L.P_CAP] = p.capacity
            h[base + L.P_ROWS_CAP] = p.rows_cap
        segs = [
            Segment(segment_name(instance, "reg"), layout.registry_capacity * L.ENTRY_DTYPE.itemsize, create=True),
            Segment(segment_name(instance, "keys"), layout.blob_capacity, create=True),
            Segment(segment_name(instance, "locks"), 4096, create=True),
        ]
        for i, p in enumerate(layout.pools):
            segs.append(Segment(segment_name(instance, f"p{i}-data"), p.rows_cap * p.row_bytes, create=True))
            meta = Segment(segment_name(instance, f"p{i}-meta"), p.rows_cap * L.META_WORDS * 8, create=True)
            segs.append(meta)
            segs.append(Segment(segment_name(instance, f"p{i}-free"), p.rows_cap * 8, create=True))
        for s in segs:
            s.close()
        h[L.H_MAGIC] = L.MAGIC  # written last: the store is complete
        del h
        hdr.close()
        return cls.attach(instance), True

    @classmethod
    def attach(cls, instance: str) -> Store:
        hdr = Segment(segment_name(instance, "hdr"), L.HEADER_WORDS * 8, create=False)
        h = hdr.array(np.int64, (L.HEADER_WORDS,))
        if int(h[L.H_MAGIC]) != L.MAGIC or int(h[L.H_VERSION]) != L.VERSION:
            del h
            hdr.close()
            raise LayoutMismatch(f"shared memory of instance {instance} is incomplete or of another version")
        reg_cap, blob_cap, npools = int(h[L.H_REG_CAP]), int(h[L.H_BLOB_CAP]), int(h[L.H_NPOOLS])
        pool_layouts = []
        for i in range(npools):
            base = L.H_POOLS + i * L.POOL_WORDS
            pool_layouts.append(L.PoolLayout(int(h[base + L.P_FREQ]), int(h[base + L.P_CAP]),
                                             int(h[base + L.P_ROWS_CAP])))
        del h
        reg = Segment(segment_name(instance, "reg"), reg_cap * L.ENTRY_DTYPE.itemsize, create=False)
        blob = Segment(segment_name(instance, "keys"), blob_cap, create=False)
        locks = Segment(segment_name(instance, "locks"), 4096, create=False, keep_fd=True)
        pools = []
        for i, pl in enumerate(pool_layouts):
            pools.append(_Pool(
                i, pl,
                Segment(segment_name(instance, f"p{i}-data"), pl.rows_cap * pl.row_bytes, create=False),
                Segment(segment_name(instance, f"p{i}-meta"), pl.rows_cap * L.META_WORDS * 8, create=False),
                Segment(segment_name(instance, f"p{i}-free"), pl.rows_cap * 8, create=False),
            ))
        return cls(instance, hdr, reg, blob, locks, pools)

    def close(self) -> None:
        """Drop every view and unmap (the segments stay; only the supervisor unlinks)."""
        for p in self.pools:
            p.drop_views()
        del self.hdr, self.reg, self.blob, self._reg_row, self._reg_gen, self._reg_pool, self._reg_flags
        del self.counters, self.procs, self.hists
        for p in self.pools:
            for s in p.segments:
                s.close()
        for s in self._segments:
            s.close()
        self.pools = []

    # -- registry ---------------------------------------------------------------

    @property
    def frequencies(self) -> list[int]:
        return [p.frequency for p in self.pools]

    def pool_for_frequency(self, frequency: int) -> int | None:
        return self._pool_by_freq.get(frequency)

    def frequency_of(self, sid: int) -> int:
        return self.pools[int(self._reg_pool[sid])].frequency

    def frequencies_of(self, sids: list[int] | np.ndarray) -> np.ndarray:
        table = np.array([p.frequency for p in self.pools], dtype=np.int64)
        return table[self._reg_pool[np.asarray(sids, dtype=np.int64)]]

    def release(self, sids: list[int] | np.ndarray, counter_slot: int | None = None) -> int:
        """Free the rows of ``sids`` (their data is gone; the keys may register again later)."""
        n = 0
        with self.locks.hold(L.LOCK_REGISTRY):
            by_pool: dict[int, list[int]] = {}
            for sid in np.asarray(sids, dtype=np.int64).tolist():
                if not self._reg_flags[sid] & L.FLAG_RELEASED:
                    by_pool.setdefault(int(self._reg_pool[sid]), []).append(sid)
            for p, plist in by_pool.items():
                pool = self.pools[p]
                pbase = L.H_POOLS + p * L.POOL_WORDS
                with self.locks.hold(L.LOCK_POOL_BASE + p):
                    for sid in plist:
                        row = int(self._reg_row[sid])
                        self._reg_flags[sid] |= L.FLAG_RELEASED
                        if int(pool.meta[row, L.M_GEN]) != int(self._reg_gen[sid]):
                            continue
                        pool.meta[row, L.M_SEQ] |= 1
                        pool.meta[row, L.M_GEN] += 1
                        pool.meta[row, L.M_LAST] = -1
                        pool.meta[row, L.M_FIRST] = -1
                        pool.meta[row, L.M_SID] = -1
                        pool.meta[row, L.M_SEQ] += 1
                        top = int(self.hdr[pbase + L.P_FREE_TOP])
                        pool.free[top] = row
                        self.hdr[pbase + L.P_FREE_TOP] = top + 1
                        self.hdr[L.H_ALLOC_BYTES] -= pool.cap * 8
                        n += 1
        if counter_slot is not None and n:
            self.counters[counter_slot, L.COUNTER_INDEX["series_released"]] += n
        return n

    def free(self, sids: list[int] | np.ndarray, to: int, counter_slot: int | None = None) -> tuple[int, int]:
        """Drop data older than ``to`` (seconds): series with nothing newer are released,
        others get their older slots emptied.  Returns (series released, slots cleared)."""
        sids = np.asarray(sids, dtype=np.int64)
        if not len(sids):
            return 0, 0
        last = self.last_bins(sids)
        freqs = np.array([self.pools[int(p)].frequency for p in self._reg_pool[sids]], dtype=np.int64)
        to_bins = to // freqs
        whole = (last >= 0) & (last < to_bins)
        released = self.release(sids[whole], counter_slot) if whole.any() else 0
        cleared = 0
        part = np.flatnonzero((last >= to_bins) & (last >= 0))
        for p in np.unique(self._reg_pool[sids[part]]).tolist():
            pool = self.pools[p]
            sel = part[self._reg_pool[sids[part]] == p]
            with self.locks.hold(L.LOCK_POOL_BASE + p):
                for i in sel.tolist():
                    row = int(self._reg_row[sids[i]])
                    if int(pool.meta[row, L.M_GEN]) != int(self._reg_gen[sids[i]]):
                        continue
                    cur = int(pool.meta[row, L.M_LAST])
                    lo, hi = cur - pool.cap + 1, int(to_bins[i])  # empty bins [lo, hi)
                    if hi <= lo:
                        continue
                    pool.meta[row, L.M_SEQ] |= 1
                    cols = np.arange(lo, hi) % pool.cap
                    cleared += int(np.count_nonzero(~np.isnan(pool.data[row, cols])))
                    pool.data[row, cols] = np.nan
                    pool.meta[row, L.M_FIRST] = max(int(pool.meta[row, L.M_FIRST]), hi)
                    pool.meta[row, L.M_SEQ] += 1
        return released, cleared

    # -- writing ----------------------------------------------------------------

    def write(self, sids: np.ndarray, timestamps: np.ndarray, values: np.ndarray, *,
              now: float | np.ndarray | None = None, counter_slot: int | None = None) -> WriteStats:
        """Store points (timestamps in seconds).  Idempotent: a repeated point overwrites its slot.

        ``now`` may be one receive time per point (WAL replay re-applies each request's own
        age limits, so exactly the points acknowledged back then are stored again).
        """
        stats = WriteStats()
        sids = np.asarray(sids, dtype=np.int64)
        ts = np.asarray(timestamps, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float64)
        if not len(sids):
            return stats
        now = time.time() if now is None else now
        inow = now.astype(np.int64) if isinstance(now, np.ndarray) else int(now)
        old = ts < inow - self.retention
        fut = ts > inow + MAX_FUTURE_SECONDS
        stats.too_old = int(old.sum())
        stats.too_far_future = int(fut.sum())
        if stats.too_old or stats.too_far_future:
            keep = ~(old | fut)
            sids, ts, vals = sids[keep], ts[keep], vals[keep]
        pools = self._reg_pool[sids]
        upools = np.unique(pools)
        for p in upools.tolist():
            sel = pools == p if len(upools) > 1 else slice(None)
            written, ring_old, stale = self._write_pool(int(p), sids[sel], ts[sel], vals[sel])
            stats.written += written
            stats.too_old += ring_old
            if len(stale):
                self._rewrite_stale(stale, sids[sel], ts[sel], vals[sel], stats, now)
        if counter_slot is not None:
            c = self.counters[counter_slot]
            c[L.COUNTER_INDEX["points_written"]] += stats.written
            c[L.COUNTER_INDEX["too_old"]] += stats.too_old
            c[L.COUNTER_INDEX["too_far_future"]] += stats.too_far_future
        return stats

    def _rewrite_stale(self, stale: np.ndarray, sids, ts, vals, stats: WriteStats, now: float) -> None:
        """Points for series released while a writer still held their id: register again, write once more."""
        ustale = np.unique(stale).tolist()
        keys = [self.key_of(s) for s in ustale]
        freqs = [self.frequency_of(s) for s in ustale]
        new = self.resolve(keys, freqs)
        mapping = dict(zip(ustale, new.tolist(), strict=True))
        stats.remapped.update(mapping)
        mask = np.isin(sids, stale)
        nsids = np.array([mapping[s] for s in sids[mask].tolist()], dtype=np.int64)
        ok = nsids >= 0
        stats.rejected += int((~ok).sum())
        if ok.any():
            p = int(self._reg_pool[nsids[ok][0]])
            written, ring_old, _ = self._write_pool(p, nsids[ok], ts[mask][ok], vals[mask][ok])
            stats.written += written
            stats.too_old += ring_old

    def _write_pool(self, p: int, sids: np.ndarray, ts: np.ndarray, vals: np.ndarray):
        pool = self.pools[p]
        cap = pool.cap
        rows = self._reg_row[sids]
        gens = self._reg_gen[sids]
        bins = ts // pool.frequency
        n = len(rows)
        order = np.lexsort((np.arange(n), bins, rows))
        rows, bins, vals, gens, sids = rows[order], bins[order], vals[order], gens[order], sids[order]
        if n > 1:
            # A later point for the same slot replaces an earlier one (input order).
            keep = np.ones(n, dtype=bool)
            keep[:-1] = (rows[1:] != rows[:-1]) | (bins[1:] != bins[:-1])
            if not keep.all():
                rows, bins, vals, gens, sids = rows[keep], bins[keep], vals[keep], gens[keep], sids[keep]
                n = len(rows)
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        ends = np.r_[starts[1:], n]
        urows = rows[starts]
        bmax = bins[ends - 1]
        stale = np.empty(0, dtype=np.int64)
        with self.locks.hold(L.LOCK_POOL_BASE + p):
            meta = pool.meta
            cur_gen = meta[urows, L.M_GEN]
            good = cur_gen == gens[starts]
            if not good.all():
                stale = sids[np.repeat(~good, ends - starts)]
                ptkeep = np.repeat(good, ends - starts)
                rows, bins, vals = rows[ptkeep], bins[ptkeep], vals[ptkeep]
                lens = (ends - starts)[good]
                urows, bmax = urows[good], bmax[good]
                ends = np.cumsum(lens)
                starts = ends - lens
            if not len(urows):
                return 0, 0, stale
            seq = meta[urows, L.M_SEQ] | 1
            meta[urows, L.M_SEQ] = seq
            last = meta[urows, L.M_LAST]
            new_last = np.maximum(last, bmax)
            # Clear the slots that the ring reuses between the old and the new newest bin.
            adv = (new_last > last) & (last >= 0)
            if adv.any():
                arows, alast = urows[adv], last[adv]
                gap = np.minimum(new_last[adv] - alast, cap)
                full = gap >= cap
                if full.any():
                    pool.data[arows[full]] = np.nan
                part = ~full
                if part.any():
                    g, r0, l0 = gap[part], arows[part], alast[part]
                    total = int(g.sum())
                    offs = np.arange(total) - np.repeat(np.cumsum(g) - g, g)
                    cbins = np.repeat(l0 + 1, g) + offs
                    pool.flat[np.repeat(r0, g) * cap + cbins % cap] = np.nan
            pt_last = np.repeat(new_last, ends - starts)
            fits = bins > pt_last - cap
            if fits.all():
                pool.flat[rows * cap + bins % cap] = vals
                written = len(rows)
            else:
                pool.flat[rows[fits] * cap + bins[fits] % cap] = vals[fits]
                written = int(fits.sum())
            first = meta[urows, L.M_FIRST]
            bmin = bins[starts]
            meta[urows, L.M_FIRST] = np.where(first < 0, bmin, np.minimum(first, bmin))
            meta[urows, L.M_LAST] = new_last
            meta[urows, L.M_SEQ] = seq + 1
        return written, len(rows) - written, stale

    # -- reading ----------------------------------------------------------------

    def read(self, sids: list[int] | np.ndarray, frm: int, to: int) -> ReadResult:
        """Consistent snapshot of series (all of one frequency) for timestamps in [frm, to).

        The bin range is clipped to where any of the series can hold data, so asking
        for "everything since 1970" costs no more than asking for the retention window.
        """
        sids = np.asarray(sids, dtype=np.int64)
        if not len(sids):
            raise ValueError("read() needs at least one series")
        ent = self.reg[sids]
        pidx = ent["pool"]
        p = int(pidx[0])
        if (pidx != p).any():
            raise ValueError("read() series must share one frequency")
        pool = self.pools[p]
        f, cap = pool.frequency, pool.cap
        rows, gens = ent["row"], ent["gen"]
        lo = frm // f
        hi = lo + max(0, math.ceil((to - frm) / f)) - 1
        m = pool.meta[rows]
        last = m[:, L.M_LAST]
        first = np.maximum(m[:, L.M_FIRST], last - cap + 1)
        alive = (m[:, L.M_GEN] == gens) & (last >= 0) & ((ent["flags"] & L.FLAG_RELEASED) == 0)
        if alive.all():
            lo = max(lo, int(first.min()))
            hi = min(hi, int(last.max()))
        elif alive.any():
            lo = max(lo, int(first[alive].min()))
            hi = min(hi, int(last[alive].max()))
        if not alive.any() or hi < lo:
            empty = np.empty((len(sids), 0))
            return ReadResult(empty, max(lo, frm // f), f, np.where(alive, last, -1), alive, first)
        width = hi - lo + 1
        m2, values = self.copy_consistent(p, rows, lambda r: self._gather(pool, r, lo, width), m)
        if m2 is not m:  # a writer was busy with some rows: take their state as copied
            last = m2[:, L.M_LAST]
            first = np.maximum(m2[:, L.M_FIRST], last - cap + 1)
            alive = (m2[:, L.M_GEN] == gens) & (last >= 0) & ((ent["flags"] & L.FLAG_RELEASED) == 0)
        if not ((last >= hi).all() and (first <= lo).all() and alive.all()):
            bins = np.arange(lo, hi + 1)
            valid = (bins[None, :] >= first[:, None]) & (bins[None, :] <= last[:, None]) & alive[:, None]
            values[~valid] = np.nan
        return ReadResult(values, lo, f, np.where(alive, last, -1), alive, first)

    def copy_consistent(self, p: int, rows: np.ndarray, copy: Callable[[np.ndarray], np.ndarray],
                        meta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(meta rows, copy(rows))`` of pool ``p``, each row as one writer left it (the seqlock protocol).

        ``meta`` is the rows' metadata if the caller read it already (before deciding what to
        copy).  Rows whose ``seq`` was odd or changed during the copy are copied again; the
        returned metadata is a new array only if that happened.  Odd ``seq`` values that
        persist (a writer killed mid-update) are repaired once no writer holds the pool lock.
        """
        pool = self.pools[p]
        if meta is None:
            meta = pool.meta[rows]
        out = copy(rows)
        seq2 = pool.meta[rows, L.M_SEQ]
        bad = np.flatnonzero((meta[:, L.M_SEQ] != seq2) | ((meta[:, L.M_SEQ] & 1) != 0))
        if len(bad):
            meta = meta.copy()
        attempts = 0
        while len(bad):
            attempts += 1
            if attempts > 100:
                self._repair_pool_seq(p)
            if attempts > 10_000:
                raise TimeoutError(f"rows of pool {p} stayed locked while being read")
            time.sleep(0)
            r = rows[bad]
            mb = pool.meta[r]
            meta[bad] = mb
            out[bad] = copy(r)
            s2 = pool.meta[r, L.M_SEQ]
            bad = bad[(mb[:, L.M_SEQ] != s2) | ((mb[:, L.M_SEQ] & 1) != 0)]
        return meta, out

    @staticmethod
    def _gather(pool: _Pool, rows: np.ndarray, lo: int, width: int) -> np.ndarray:
        cap = pool.cap
        s = lo % cap
        if width <= cap - s:
            return pool.data[rows, s:s + width]
        if width <= cap:
            # The window wraps around the ring.  Fancy indexing makes a temporary copy of
            # each part; doing it in small row chunks keeps that temporary in the CPU cache,
            # so the second copy costs almost nothing (a whole-array temporary doubled the time).
            out = np.empty((len(rows), width))
            k = cap - s
            for a in range(0, len(rows), GATHER_CHUNK):
                r = rows[a:a + GATHER_CHUNK]
                out[a:a + len(r), :k] = pool.data[r, s:]
                out[a:a + len(r), k:] = pool.data[r, :width - k]
            return out
        return pool.data[rows][:, (lo + np.arange(width)) % cap]

    def last_bins(self, sids: list[int] | np.ndarray) -> np.ndarray:
        """Newest bin of each series (-1 if empty or released); no seqlock needed for one word."""
        sids = np.asarray(sids, dtype=np.int64)
        out = np.full(len(sids), -1, dtype=np.int64)
        for p in np.unique(self._reg_pool[sids]).tolist():
            sel = self._reg_pool[sids] == p
            pool = self.pools[p]
            rows = self._reg_row[sids[sel]]
            alive = pool.meta[rows, L.M_GEN] == self._reg_gen[sids[sel]]
            out[sel] = np.where(alive, pool.meta[rows, L.M_LAST], -1)
        return out

    # -- maintenance ------------------------------------------------------------

    def _repair_pool_seq(self, p: int) -> int:
        """If no writer holds the pool lock, odd seqlocks are leftovers of a killed writer: even them."""
        pool = self.pools[p]
        pbase = L.H_POOLS + p * L.POOL_WORDS
        with self.locks.try_hold(L.LOCK_POOL_BASE + p) as held:
            if not held:
                return 0
            return _even_odd_seqs(pool, int(self.hdr[pbase + L.P_NEXT_ROW]))

    def repair(self) -> dict[str, int]:
        """Undo what killed processes left behind: odd seqlocks and rows allocated but never published."""
        fixed_seq = leaked = 0
        with self.locks.hold(L.LOCK_REGISTRY):
            count = int(self.hdr[L.H_REG_COUNT])
            for p, pool in enumerate(self.pools):
                pbase = L.H_POOLS + p * L.POOL_WORDS
                with self.locks.hold(L.LOCK_POOL_BASE + p):
                    used = int(self.hdr[pbase + L.P_NEXT_ROW])
                    if not used:
                        continue
                    fixed_seq += _even_odd_seqs(pool, used)
                    owned = np.zeros(used, dtype=bool)
                    mine = (self._reg_pool[:count] == p) & ((self._reg_flags[:count] & L.FLAG_RELEASED) == 0)
                    sids = np.flatnonzero(mine)
                    r = self._reg_row[sids]
                    match = pool.meta[r, L.M_GEN] == self._reg_gen[sids]
                    owned[r[match]] = True
                    top = int(self.hdr[pbase + L.P_FREE_TOP])
                    owned[pool.free[:top]] = True
                    lost = np.flatnonzero(~owned)
                    for row in lost.tolist():
                        pool.meta[row, L.M_GEN] += 1
                        pool.meta[row, L.M_LAST] = -1
                        pool.meta[row, L.M_FIRST] = -1
                        pool.meta[row, L.M_SID] = -1
                        pool.free[top] = row
                        top += 1
                    self.hdr[pbase + L.P_FREE_TOP] = top
                    leaked += len(lost)
            live_bytes = 0
            for p, pool in enumerate(self.pools):
                pbase = L.H_POOLS + p * L.POOL_WORDS
                live_bytes += (int(self.hdr[pbase + L.P_NEXT_ROW]) - int(self.hdr[pbase + L.P_FREE_TOP])) * pool.cap * 8
            self.hdr[L.H_ALLOC_BYTES] = live_bytes
        return {"odd_seq_fixed": fixed_seq, "leaked_rows_reclaimed": leaked}

    def stale_series(self, older_than_bin_age: int | None = None, now: float | None = None) -> list[int]:
        """Live series whose newest point has aged out of the retention window."""
        now = time.time() if now is None else now
        count = self.sync()
        out: list[int] = []
        if not count:
            return out
        sids = np.arange(count)
        live = (self._reg_flags[:count] & L.FLAG_RELEASED) == 0
        for p, pool in enumerate(self.pools):
            sel = sids[live & (self._reg_pool[:count] == p)]
            if not len(sel):
                continue
            rows = self._reg_row[sel]
            last = pool.meta[rows, L.M_LAST]
            ok_gen = pool.meta[rows, L.M_GEN] == self._reg_gen[sel]
            cutoff = (int(now) - self.retention) // pool.frequency
            dead = ok_gen & (last < cutoff)
            out.extend(sel[dead].tolist())
        return out

    # -- accounting ---------------------------------------------------------------

    def counter_totals(self) -> dict[str, int]:
        tot = self.counters.sum(axis=0)
        return {name: int(tot[i]) for i, name in enumerate(L.COUNTERS)}

    def observe(self, slot: int, hist: int, seconds: float, nbytes: int = 0) -> None:
        """One observation (a request, an fsync, a snapshot) into histogram ``hist`` of process ``slot``.

        A handful of word increments, no lock: called once per request or batch, never per point.
        """
        h = self.hists[slot, hist]
        h[bisect_left(L.HIST_BOUNDS, seconds)] += 1
        h[L.HIST_COUNT] += 1
        h[L.HIST_SUM_US] += int(seconds * 1e6)
        if nbytes:
            h[L.HIST_BYTES] += nbytes

    def histogram_totals(self) -> dict[str, dict[str, object]]:
        """Every histogram summed over the process slots: cumulative bucket counts (as Prometheus wants).

        The count is the bucket total, so a scrape during an observation still sees buckets that add up.
        """
        tot = self.hists.sum(axis=0)
        out: dict[str, dict[str, object]] = {}
        for i, name in enumerate(L.HISTOGRAMS):
            row = tot[i]
            cum = np.cumsum(row[:L.HIST_BUCKETS])
            out[name] = {"buckets": [(b, int(c)) for b, c in zip(L.HIST_BOUNDS, cum[:-1].tolist(), strict=True)],
                         "count": int(cum[-1]), "sum": int(row[L.HIST_SUM_US]) / 1e6,
                         "bytes": int(row[L.HIST_BYTES])}
        return out

    def pool_slots(self) -> list[dict[str, int]]:
        """Per frequency: rows (series) the pool can hold, in use, on the free list."""
        out = []
        for p, pool in enumerate(self.pools):
            pbase = L.H_POOLS + p * L.POOL_WORDS
            nxt, top = int(self.hdr[pbase + L.P_NEXT_ROW]), int(self.hdr[pbase + L.P_FREE_TOP])
            cap = int(self.hdr[pbase + L.P_ROWS_CAP])
            out.append({"frequency": pool.frequency, "capacity": cap, "used": nxt - top, "free": cap - nxt + top})
        return out

    def usage(self) -> dict[str, object]:
        pools = []
        for p, pool in enumerate(self.pools):
            pbase = L.H_POOLS + p * L.POOL_WORDS
            used = int(self.hdr[pbase + L.P_NEXT_ROW]) - int(self.hdr[pbase + L.P_FREE_TOP])
            pools.append({"frequency": pool.frequency, "slots_per_series": pool.cap, "series": used,
                          "bytes": used * pool.cap * 8})
        return {
            "series_registered": int(self.hdr[L.H_REG_COUNT]),
            "allocated_bytes": int(self.hdr[L.H_ALLOC_BYTES]),
            "memory_cap_bytes": int(self.hdr[L.H_MEMCAP_BYTES]),
            "retention_seconds": self.retention,
            "pools": pools,
        }
