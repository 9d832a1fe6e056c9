"""The store process: owner of the shared metric store's housekeeping.

Ingest workers write and the web process reads the segments directly; this
process repairs what killed processes leave behind, releases series that stopped
reporting, and executes ``free`` requests that other processes send over its Unix
socket (``var/run/store.sock``).
"""

from __future__ import annotations

import logging
import os
import time

import trio

from cc import ipc, proc
from cc.shm import Store
from cc.shm._layout import PR_PID, PR_STARTED

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
    def __init__(self, store: Store, slot: int, sweep_interval: float):
        self.store = store
        self.slot = slot
        self.sweep_interval = sweep_interval

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
            released, cleared = await trio.to_thread.run_sync(self.store.free, sids, to, self.slot)
            log.info("free to=%d: %d series released, %d values cleared", to, released, cleared)
            return {"ok": True, "released": released, "cleared": cleared, "series": len(sids)}
        if cmd == "sweep":
            return {"ok": True, **self.sweep()}
        if cmd == "stats":
            return {"ok": True, "usage": self.store.usage(), "counters": self.store.counter_totals()}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def sweep(self) -> dict[str, int]:
        """Release series whose newest point left the retention window (hosts that stopped reporting)."""
        stale = self.store.stale_series()
        n = self.store.release(stale, counter_slot=self.slot) if stale else 0
        if n:
            log.info("released %d series that stopped reporting", n)
        return {"released": n}

    async def sweeper(self) -> None:
        while True:
            await trio.sleep(self.sweep_interval)
            await trio.to_thread.run_sync(self.sweep)


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
    sp = StoreProcess(store, args.slot, sweep_interval=min(600.0, max(5.0, cfg.metric_store.retention / 10)))
    logger.info("store attached: %d series, %.1f MB in use",
                store.usage()["series_registered"], store.usage()["allocated_bytes"] / 1e6)

    async def run_app(nursery: trio.Nursery, shutdown: trio.Event) -> None:
        nursery.start_soon(sp.sweeper)
        await nursery.start(ipc.serve, cfg.run_dir / "store.sock", sp.handle)
        await shutdown.wait()

    proc.run(run_app, logger)
