"""``memory-cap``: free whole hosts, those without a running job first, before the cap bites.

Writers never allocate past the cap: a series that does not fit is refused and counted
(``memory_cap_rejected``), so allocated bytes never exceed ``memory-cap``.  This module
makes room before and after that happens: when the rows handed out reach ``HIGH`` of the
cap, or writers were refused since the last look, the store process frees hosts that no
running job uses, least recently reporting first, until usage is at ``LOW`` of the cap.
Hosts of running jobs are never freed here; if they alone fill the cap it says so.

Running jobs come from the job database (``config.db_path``, table ``job``: ``cluster``,
``job_state``, ``resources`` = JSON list of ``{"hostname": ...}``), opened read-only.  A
missing file or table means no job uses any host.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

import numpy as np
import orjson

from cc.shm import _layout as L
from cc.shm._store import Store

log = logging.getLogger("store.memcap")

HIGH = 0.95
LOW = 0.85


def running_job_hosts(db_path: Path) -> set[tuple[str, str]]:
    """(cluster, hostname) of every running job; empty if the database or table does not exist yet."""
    path = Path(db_path)
    if not path.exists():
        return set()
    try:
        con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as e:
        log.warning("cannot open job database %s read-only: %s; treating all hosts as unused", path, e)
        return set()
    out: set[tuple[str, str]] = set()
    try:
        rows = con.execute("SELECT cluster, resources FROM job WHERE job_state = 'running'").fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):
            log.warning("job database %s: %s; treating all hosts as unused", path, e)
        return out
    finally:
        con.close()
    for cluster, resources in rows:
        try:
            res = orjson.loads(resources) if isinstance(resources, (str, bytes)) else []
        except orjson.JSONDecodeError:
            continue
        for r in res if isinstance(res, list) else []:
            if isinstance(r, dict) and isinstance(r.get("hostname"), str):
                out.add((str(cluster), r["hostname"]))
    return out


class MemoryCap:
    """Decides when and which hosts to free (called from a thread of the store process)."""

    def __init__(self, store: Store, db_path: Path, slot: int | None = None, archiver=None):
        self.store = store
        self.db_path = Path(db_path)
        self.slot = slot
        self.archiver = archiver
        self.cap = int(store.hdr[L.H_MEMCAP_BYTES])
        self._rejected_seen = self._rejected()

    def _rejected(self) -> int:
        return int(self.store.counters[:, L.COUNTER_INDEX["memory_cap_rejected"]].sum())

    def needed(self) -> bool:
        """Cheap check (two header reads): usage at the high-water mark or writers refused."""
        return int(self.store.hdr[L.H_ALLOC_BYTES]) >= HIGH * self.cap or self._rejected() != self._rejected_seen

    def host_usage(self) -> dict[tuple[str, str], tuple[int, int, list[int]]]:
        """(cluster, host) -> (bytes, newest timestamp, live series ids)."""
        store = self.store
        out: dict[tuple[str, str], tuple[int, int, list[int]]] = {}
        for ch, arr in store.series_by_host().items():
            last = store.last_bins(arr)
            live = last >= 0
            if not live.any():
                continue
            arr, last = arr[live], last[live]
            freqs = store.frequencies_of(arr)
            caps = np.array([store.pools[int(p)].cap for p in store._reg_pool[arr]], dtype=np.int64)
            out[ch] = (int((caps * 8).sum()), int((last * freqs).max()), arr.tolist())
        return out

    def enforce(self) -> dict[str, object]:
        """Free hosts without running jobs until usage is at LOW of the cap; returns what was done."""
        rejected = self._rejected()
        refused, self._rejected_seen = rejected != self._rejected_seen, rejected
        used = int(self.store.hdr[L.H_ALLOC_BYTES])
        if used < HIGH * self.cap and not refused:
            return {"freed_hosts": [], "freed_bytes": 0}
        jobs = running_job_hosts(self.db_path)
        usage = self.host_usage()
        candidates = sorted((newest, ch) for ch, (_, newest, _) in usage.items() if ch not in jobs)
        target = LOW * self.cap
        freed_hosts: list[str] = []
        freed_bytes = freed_series = 0
        for _, ch in candidates:
            if used - freed_bytes <= target:
                break
            nbytes, _, sids = usage[ch]
            if self.archiver is not None:
                self.archiver.archive_before_free(np.asarray(sids))
            n = self.store.release(sids, counter_slot=self.slot)
            freed_series += n
            freed_bytes += nbytes
            freed_hosts.append(f"{ch[0]}/{ch[1]}")
        if self.slot is not None and freed_series:
            self.store.counters[self.slot, L.COUNTER_INDEX["memcap_freed_series"]] += freed_series
        now_used = int(self.store.hdr[L.H_ALLOC_BYTES])
        job_bytes = sum(b for ch, (b, _, _) in usage.items() if ch in jobs)
        if freed_hosts:
            shown = ", ".join(freed_hosts[:20]) + (f" and {len(freed_hosts) - 20} more" if len(freed_hosts) > 20 else "")
            log.warning("memory cap %.1f MB reached (%.1f MB in use): freed %d series of %d hosts without a running "
                        "job (%.1f MB): %s; now %.1f MB", self.cap / 1e6, used / 1e6, freed_series, len(freed_hosts),
                        freed_bytes / 1e6, shown, now_used / 1e6)
        if now_used > target:
            log.error("memory cap %.1f MB: %.1f MB still in use, %.1f MB of it by hosts of running jobs (%d hosts); "
                      "new series are refused until jobs end (raise metric-store.memory-cap?)",
                      self.cap / 1e6, now_used / 1e6, job_bytes / 1e6, len(jobs))
        return {"freed_hosts": freed_hosts, "freed_bytes": freed_bytes, "freed_series": freed_series,
                "used_bytes": now_used, "job_host_bytes": job_bytes}
