"""The series registry in shared memory: keys, their rows, and how processes find them.

Entries are appended under the registry lock and published by one aligned store of
the entry count, so a reader never sees a half-registered series; entries are never
rewritten except for the ``released`` flag.  Every entry carries 64-bit hashes of its
key and of its (cluster, host); lookups scan those columns with numpy.  No process
keeps a dictionary of all series: what it caches is per host and bounded, so memory
per process does not grow with the number of series.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from cc.shm import _layout as L

REJECT_MEMCAP = -3
REJECT_REGISTRY_FULL = -4
REJECT_UNKNOWN_FREQUENCY = -5
HOST_CACHE_SIZE = 4096


class SeriesKey(NamedTuple):
    """One series: (cluster, host, metric, scope type, type id, sub type, sub type id)."""

    cluster: str
    host: str
    metric: str
    type: str = "node"
    type_id: str = ""
    stype: str = ""
    stype_id: str = ""

    def encode(self) -> bytes:
        return "\x1f".join(self).encode()

    @classmethod
    def decode(cls, raw: bytes) -> SeriesKey:
        return cls(*raw.decode().split("\x1f"))


def _h64(raw: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def key_hash(encoded_key: bytes) -> int:
    return _h64(encoded_key)


def host_hash(cluster: str, host: str) -> int:
    return _h64(f"{cluster}\x1f{host}".encode())


def _shm_free_bytes() -> int:
    """Room left in /dev/shm minus a safety margin: writing past it would SIGBUS every process."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return 1 << 62
    return st.f_bavail * st.f_frsize - (64 << 20)


class RegistryMixin:
    """Registry half of :class:`cc.shm.Store` (the ring buffers are the other half)."""

    def _init_registry_caches(self) -> None:
        self._cache_lock = threading.Lock()
        # (cluster, host) -> (entries scanned, {metric: [sids]}), least recently used first
        self._host_cache: OrderedDict[tuple[str, str], tuple[int, dict[str, list[int]]]] = OrderedDict()
        # hhash -> (cluster, host) for every host seen; per host, not per series
        self._host_names: dict[int, tuple[str, str]] = {}
        self._hosts_scanned = 0

    @property
    def frequencies(self) -> list[int]:
        return [p.frequency for p in self.pools]

    def pool_for_frequency(self, frequency: int) -> int | None:
        return self._pool_by_freq.get(frequency)

    def count(self) -> int:
        """Published registry entries."""
        return int(self.hdr[L.H_REG_COUNT])

    sync = count  # older name: there is no per-process index to bring up to date any more

    def key_of(self, sid: int) -> SeriesKey:
        return SeriesKey.decode(self._key_bytes(sid))

    def _key_bytes(self, sid: int) -> bytes:
        e = self.reg[sid]
        off, n = int(e["key_off"]), int(e["key_len"])
        return self.blob[off:off + n].tobytes()

    def is_alive(self, sid: int) -> bool:
        if self._reg_flags[sid] & L.FLAG_RELEASED:
            return False
        pool = self.pools[int(self._reg_pool[sid])]
        return int(pool.meta[int(self._reg_row[sid]), L.M_GEN]) == int(self._reg_gen[sid])

    def alive_mask(self, sids: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`is_alive`."""
        sids = np.asarray(sids, dtype=np.int64)
        ok = (self._reg_flags[sids] & L.FLAG_RELEASED) == 0
        pools = self._reg_pool[sids]
        for p in np.unique(pools).tolist():
            sel = pools == p
            rows = self._reg_row[sids[sel]]
            ok[sel] &= self.pools[p].meta[rows, L.M_GEN] == self._reg_gen[sids[sel]]
        return ok

    def _find(self, encoded: list[bytes]) -> np.ndarray:
        """Live series id of each encoded key, -1 where there is none."""
        out = np.full(len(encoded), -1, dtype=np.int64)
        count = self.count()
        if not count or not encoded:
            return out
        hashes = np.fromiter((key_hash(e) for e in encoded), dtype=np.int64, count=len(encoded))
        col = self._reg_khash[:count]
        cand = np.flatnonzero(col == hashes[0]) if len(hashes) == 1 else np.flatnonzero(np.isin(col, hashes))
        if not len(cand):
            return out
        cand = cand[self.alive_mask(cand)]
        best: dict[int, int] = {}
        for sid, h in zip(cand.tolist(), col[cand].tolist(), strict=True):
            best[h] = max(best.get(h, -1), sid)  # a re-registered key: the newest entry lives
        for i, h in enumerate(hashes.tolist()):
            sid = best.get(h, -1)
            if sid >= 0 and self._key_bytes(sid) == encoded[i]:  # guard against hash collisions
                out[i] = sid
        return out

    def lookup(self, key: SeriesKey) -> int | None:
        sid = int(self._find([key.encode()])[0])
        return sid if sid >= 0 else None

    def _scan_hosts(self) -> None:
        """Learn the names of hosts registered since the last scan (one key decoded per new host)."""
        count = self.count()
        with self._cache_lock:
            if count <= self._hosts_scanned:
                return
            col = self._reg_hhash[self._hosts_scanned:count]
            uniq, first = np.unique(col, return_index=True)
            for h, i in zip(uniq.tolist(), first.tolist(), strict=True):
                if h not in self._host_names:
                    k = self.key_of(self._hosts_scanned + i)
                    self._host_names[h] = (k.cluster, k.host)
            self._hosts_scanned = count

    def clusters(self) -> list[str]:
        self._scan_hosts()
        return sorted({c for c, _ in self._host_names.values()})

    def hosts(self, cluster: str) -> list[str]:
        self._scan_hosts()
        return sorted(h for c, h in self._host_names.values() if c == cluster)

    def series_of_host(self, cluster: str, host: str) -> dict[str, list[int]]:
        """metric -> live series ids of one host (cached per host, extended with new entries)."""
        count = self.count()
        key = (cluster, host)
        with self._cache_lock:
            scanned, by_metric = self._host_cache.pop(key, (0, {}))
        if scanned < count:
            h = host_hash(cluster, host)
            new = np.flatnonzero(self._reg_hhash[scanned:count] == h) + scanned
            by_metric = {m: list(s) for m, s in by_metric.items()}
            for sid in new.tolist():
                k = self.key_of(sid)
                if k.cluster == cluster and k.host == host:
                    by_metric.setdefault(k.metric, []).append(sid)
        with self._cache_lock:
            self._host_cache[key] = (count, by_metric)
            while len(self._host_cache) > HOST_CACHE_SIZE:
                self._host_cache.popitem(last=False)
        # one liveness check for all of the host's series (a host has hundreds at hwthread scope)
        total = sum(len(s) for s in by_metric.values())
        if not total:
            return {}
        arr = np.fromiter(itertools.chain.from_iterable(by_metric.values()), dtype=np.int64, count=total)
        alive = self.alive_mask(arr)
        if alive.all():
            return {m: list(s) for m, s in by_metric.items()}
        out: dict[str, list[int]] = {}
        pos = 0
        for metric, sids in by_metric.items():
            n = len(sids)
            live = arr[pos:pos + n][alive[pos:pos + n]].tolist()
            pos += n
            if live:
                out[metric] = live
        return out

    def series_by_host(self) -> dict[tuple[str, str], np.ndarray]:
        """(cluster, host) -> live series ids, for every host (vectorised; for housekeeping)."""
        self._scan_hosts()
        count = self.count()
        sids = np.arange(count, dtype=np.int64)
        sids = sids[self.alive_mask(sids)]
        if not len(sids):
            return {}
        hh = self._reg_hhash[sids]
        order = np.argsort(hh, kind="stable")
        hh, sids = hh[order], sids[order]
        cuts = np.flatnonzero(np.r_[True, hh[1:] != hh[:-1]])
        ends = np.r_[cuts[1:], len(hh)]
        return {self._host_names[int(hh[a])]: sids[a:b] for a, b in zip(cuts.tolist(), ends.tolist(), strict=True)}

    def resolve(self, keys: list[SeriesKey], frequencies: list[int], counter_slot: int | None = None) -> np.ndarray:
        """Series ids for ``keys``, registering the missing ones (negative = rejected, see REJECT_*)."""
        encoded = [k.encode() for k in keys]
        out = self._find(encoded)
        missing = np.flatnonzero(out < 0)
        if not len(missing):
            return out
        with self.locks.hold(L.LOCK_REGISTRY):
            again = self._find([encoded[i] for i in missing])
            out[missing] = again
            todo: dict[SeriesKey, list[int]] = {}
            for i in missing[again < 0].tolist():
                todo.setdefault(keys[i], []).append(i)
            if todo:
                new = self._register_locked(list(todo), [frequencies[idx[0]] for idx in todo.values()])
                for sid, idx in zip(new.tolist(), todo.values(), strict=True):
                    out[idx] = sid
                registered = int((new >= 0).sum())
                if counter_slot is not None and registered:
                    self.counters[counter_slot, L.COUNTER_INDEX["series_registered"]] += registered
        return out

    def _register_locked(self, keys: list[SeriesKey], frequencies: list[int]) -> np.ndarray:
        """Append registry entries for new keys (registry lock held); one pass per pool."""
        out = np.full(len(keys), REJECT_UNKNOWN_FREQUENCY, dtype=np.int64)
        by_pool: dict[int, list[int]] = {}
        for i, f in enumerate(frequencies):
            p = self._pool_by_freq.get(f)
            if p is not None:
                by_pool.setdefault(p, []).append(i)
        count = int(self.hdr[L.H_REG_COUNT])
        off = int(self.hdr[L.H_BLOB_USED])
        alloc = int(self.hdr[L.H_ALLOC_BYTES])
        memcap = int(self.hdr[L.H_MEMCAP_BYTES])
        room = _shm_free_bytes()
        for p, idxs in by_pool.items():
            pool = self.pools[p]
            pbase = L.H_POOLS + p * L.POOL_WORDS
            row_bytes = pool.cap * 8
            free_top = int(self.hdr[pbase + L.P_FREE_TOP])
            next_row = int(self.hdr[pbase + L.P_NEXT_ROW])
            rows: list[int] = []
            taken: list[int] = []
            for i in idxs:
                if count + len(taken) >= len(self.reg):
                    out[i] = REJECT_REGISTRY_FULL
                    continue
                if alloc + row_bytes > memcap or room < row_bytes:
                    out[i] = REJECT_MEMCAP
                    continue
                if free_top > 0:
                    free_top -= 1
                    rows.append(int(pool.free[free_top]))
                elif next_row < pool.layout.rows_cap:
                    rows.append(next_row)
                    next_row += 1
                else:
                    out[i] = REJECT_MEMCAP
                    continue
                alloc += row_bytes
                room -= row_bytes
                taken.append(i)
            if not taken:
                continue
            encoded = [keys[i].encode() for i in taken]
            khashes = [key_hash(e) for e in encoded]
            hhashes = [host_hash(keys[i].cluster, keys[i].host) for i in taken]
            lens = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            if off + int(lens.sum()) > len(self.blob):
                for i in taken:
                    out[i] = REJECT_REGISTRY_FULL
                continue
            self.hdr[pbase + L.P_FREE_TOP] = free_top
            self.hdr[pbase + L.P_NEXT_ROW] = next_row
            r = np.asarray(rows, dtype=np.int64)
            new_sids = count + np.arange(len(taken))
            with self.locks.hold(L.LOCK_POOL_BASE + p):
                meta = pool.meta
                meta[r, L.M_SEQ] |= 1
                pool.data[r] = np.nan
                meta[r, L.M_LAST] = -1
                meta[r, L.M_FIRST] = -1
                meta[r, L.M_SID] = new_sids
                gens = meta[r, L.M_GEN]
                meta[r, L.M_SEQ] += 1
            offs = off + np.concatenate(([0], np.cumsum(lens)[:-1]))
            self.blob[off:off + int(lens.sum())] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            ent = self.reg[count:count + len(taken)]
            ent["key_off"] = offs
            ent["row"] = r
            ent["gen"] = gens
            ent["key_len"] = lens
            ent["khash"] = khashes
            ent["hhash"] = hhashes
            ent["pool"] = p
            ent["flags"] = 0
            del ent
            off += int(lens.sum())
            count += len(taken)
            self.hdr[L.H_ALLOC_BYTES] = alloc
            self.hdr[L.H_BLOB_USED] = off
            self.hdr[L.H_REG_COUNT] = count  # publish: readers may now see these entries
            out[taken] = new_sids
        return out

