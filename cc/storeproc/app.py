"""The store process: owner of the shared metric store's housekeeping.

Ingest workers write and the web process reads the segments directly; this
process repairs what killed processes leave behind, releases series that stopped
reporting, and executes ``free`` requests that other processes send over its Unix
socket (``var/run/store.sock``).  It also owns durability: on fresh shared memory it
restores snapshot + WAL before the supervisor starts anyone else, writes periodic
snapshots (rotating the WAL), archives aged-out data to Parquet (archive mode), and
keeps the store under its memory cap.
"""

from __future__ import annotations

import logging
import os
import time

import trio

from cc import ipc, proc
from cc.shm import Store
from cc.shm import _layout as L
from cc.shm._layout import PR_PID, PR_STARTED
from cc.storeproc._archive import Archiver
from cc.storeproc._checkpoint import Checkpointer, restore_if_pending
from cc.storeproc._memcap import MemoryCap

log = logging.getLogger("store")


def match_selector(store: Store, selector: list[str]) -> list[int]:
    """Series ids under a cc-metric-store selector ``[cluster, host, "<type><id>", "<stype><id>"]``."""
    if not selector or not all(isinstance(x, str) for x in selector):
        raise ValueError("a selector is a non-empty list of strings: [cluster, host, type+id, stype+id]")
    cluster = selector[0]
    hosts = [selector[1]] if len(selector) > 1 else store.hosts(cluster)
    out: list[int] = []
    for host in hosts:
        for sids in store.series_of_host(cluster, host).values():
            for sid in sids:
                key = store.key_of(sid)
                if len(selector) > 2 and key.type + key.type_id != selector[2]:
                    continue
                if len(selector) > 3 and key.stype + key.stype_id != selector[3]:
                    continue
                out.append(sid)
    return out


class StoreProcess:
    def __init__(self, store: Store, slot: int, sweep_interval: float, *, checkpointer: Checkpointer | None = None,
                 checkpoint_interval: float = 12 * 3600, archiver: Archiver | None = None,
                 cleanup_interval: float = 3600, memcap: MemoryCap | None = None):
        self.store = store
        self.slot = slot
        self.sweep_interval = sweep_interval
        self.checkpointer = checkpointer
        self.checkpoint_interval = checkpoint_interval
        self.archiver = archiver
        self.cleanup_interval = cleanup_interval
        self.memcap = memcap
        self.maint = trio.Lock()  # sweep, free, archive and memory cap never run at the same time
        self._checkpoint_reason: str | None = None
        self._last_checkpoint = time.time()

    async def handle(self, msg: dict) -> dict:
        cmd = msg.get("cmd")
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "free":
            to = msg.get("to")
            selectors = msg.get("selectors")
            if not isinstance(to, int) or not isinstance(selectors, list):
                return {"ok": False, "error": "free needs 'to' (integer seconds) and 'selectors' (list)"}
            try:
                sids: list[int] = []
                for sel in selectors:
                    sids.extend(match_selector(self.store, sel))
            except ValueError as e:
                return {"ok": False, "error": str(e)}
            async with self.maint:
                released, cleared = await trio.to_thread.run_sync(self._free, sids, to)
            log.info("free to=%d: %d series released, %d values cleared", to, released, cleared)
            return {"ok": True, "released": released, "cleared": cleared, "series": len(sids)}
        if cmd == "sweep":
            async with self.maint:
                return {"ok": True, **await trio.to_thread.run_sync(self.sweep)}
        if cmd == "stats":
            return {"ok": True, "usage": self.store.usage(), "counters": self.store.counter_totals()}
        if cmd == "checkpoint":
            if self.checkpointer is None:
                return {"ok": False, "error": "checkpoints are not configured"}
            st = await trio.to_thread.run_sync(self.checkpointer.checkpoint, "requested")
            self._last_checkpoint = time.time()
            return {"ok": True, **st.as_dict()}
        if cmd == "archive":
            if self.archiver is None:
                return {"ok": False, "error": "metric-store.cleanup.mode is not 'archive'"}
            async with self.maint:
                n = await trio.to_thread.run_sync(self.archiver.run)
            return {"ok": True, "archived_points": n}
        if cmd == "memcap":
            if self.memcap is None:
                return {"ok": False, "error": "no memory cap"}
            async with self.maint:
                return {"ok": True, **await trio.to_thread.run_sync(self.memcap.enforce)}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def _free(self, sids: list[int], to: int) -> tuple[int, int]:
        if self.archiver is not None:
            self.archiver.archive_before_free(sids, to)
        return self.store.free(sids, to, self.slot)

    def sweep(self) -> dict[str, int]:
        """Release series whose newest point left the retention window (hosts that stopped reporting).

        In archive mode only what the archiver has written already is released.
        """
        now = None
        if self.archiver is not None:
            now = self.archiver.release_horizon()
            if now is None:
                return {"released": 0}
        stale = self.store.stale_series(now=now)
        n = self.store.release(stale, counter_slot=self.slot) if stale else 0
        if n:
            log.info("released %d series that stopped reporting", n)
        return {"released": n}

    async def sweeper(self) -> None:
        while True:
            await trio.sleep(self.sweep_interval)
            async with self.maint:
                await trio.to_thread.run_sync(self.sweep)

    def request_checkpoint(self, reason: str) -> None:
        self._checkpoint_reason = reason

    async def checkpoints(self) -> None:
        """Snapshot every checkpoint-interval, and when a WAL file passed max-wal-size."""
        cp = self.checkpointer
        assert cp is not None
        self._last_checkpoint = cp.newest_snapshot_time() or time.time()
        seen = int(self.store.hdr[L.H_CHECKPOINT_REQ])
        failures = 0
        while True:
            await trio.sleep(1.0 if not failures else min(300.0, 5.0 * 2 ** failures))
            req = int(self.store.hdr[L.H_CHECKPOINT_REQ])
            reason = self._checkpoint_reason
            if reason is None and req != seen:
                reason = "max-wal-size"
            if reason is None and time.time() >= self._last_checkpoint + self.checkpoint_interval:
                reason = "interval"
            if reason is None:
                continue
            seen = req
            try:
                await trio.to_thread.run_sync(cp.checkpoint, reason)
                failures = 0
                self._checkpoint_reason = None
                self._last_checkpoint = time.time()
            except Exception as e:
                failures += 1
                log.error("snapshot failed (%s): %s; retrying", reason, e, exc_info=not isinstance(e, OSError))

    async def archiving(self) -> None:
        assert self.archiver is not None
        while True:
            try:
                async with self.maint:
                    await trio.to_thread.run_sync(self.archiver.run)
            except Exception as e:
                log.error("archive run failed: %s; retrying at the next interval", e, exc_info=not isinstance(e, OSError))
            await trio.sleep(self.cleanup_interval)

    async def memory_cap(self) -> None:
        assert self.memcap is not None
        while True:
            await trio.sleep(1.0)
            if self.memcap.needed():
                try:
                    async with self.maint:
                        await trio.to_thread.run_sync(self.memcap.enforce)
                except Exception as e:
                    log.error("memory-cap enforcement failed: %s", e, exc_info=True)


def main(argv: list[str] | None = None) -> None:
    args = proc.child_args("Store process: housekeeping of the shared metric store.").parse_args(argv)
    cfg, instance = proc.load(args)
    logger = proc.setup_logging("store")
    store = Store.attach(instance)
    fixed = store.repair()
    if any(fixed.values()):
        logger.warning("repaired state left by killed processes: %s", fixed)
    store.procs[args.slot, PR_PID] = os.getpid()
    store.procs[args.slot, PR_STARTED] = int(time.time())
    ms = cfg.metric_store
    report = restore_if_pending(store, ms, args.slot)
    archiver = Archiver(store, ms.cleanup_dir, store.retention, args.slot) \
        if ms.cleanup_mode == "archive" and ms.cleanup_dir else None
    sp = StoreProcess(store, args.slot, sweep_interval=min(600.0, max(5.0, ms.retention / 10)),
                      checkpointer=Checkpointer(store, ms, args.slot), checkpoint_interval=ms.checkpoint_interval,
                      archiver=archiver, cleanup_interval=ms.cleanup_interval,
                      memcap=MemoryCap(store, cfg.db_path, args.slot, archiver))
    if report is not None and (report.wal_records or report.damaged_snapshots):
        sp.request_checkpoint("after restore")
    logger.info("store attached: %d series, %.1f MB in use",
                store.usage()["series_registered"], store.usage()["allocated_bytes"] / 1e6)

    async def run_app(nursery: trio.Nursery, shutdown: trio.Event) -> None:
        nursery.start_soon(sp.sweeper)
        nursery.start_soon(sp.checkpoints)
        nursery.start_soon(sp.memory_cap)
        if archiver is not None:
            nursery.start_soon(sp.archiving)
        await nursery.start(ipc.serve, cfg.run_dir / "store.sock", sp.handle)
        await shutdown.wait()

    proc.run(run_app, logger)
