"""The agent loop: one round per interval -- collect, route, hand to every sink.

A round runs in a worker thread (collectors read files and may call NVML; encoding is
CPU work), so the sinks keep talking to their servers meanwhile.  Every message of a
round gets the round's timestamp (``interval_timestamp``), which with
``align_interval`` is a multiple of the interval: all nodes of a cluster then write the
same timestamps.  A round that overruns the interval makes the next tick be skipped
(and logged), never two rounds at once.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import trio

from cc.agent.collectors import REGISTRY, Collector, CollectorUnavailable, Context, make_collector
from cc.agent.collectors._base import AgentConfigError
from cc.agent.config import AgentConfig
from cc.agent.message import Message, encode_many
from cc.agent.receivers import Receiver, make_receiver
from cc.agent.router import Router, RouterConfigError
from cc.agent.sinks import Sink, make_sink

__all__ = ["Agent"]

log = logging.getLogger("agent")

DRAIN_TIMEOUT = 5.0


def topology_constants(root: Path) -> dict[str, int]:
    """``numHWThreads``, ``numSockets``, ``numNumaDomains``, ``smtWidth`` for aggregate functions."""
    cpus = root / "sys/devices/system/cpu"
    threads, sockets, cores = 0, set(), set()
    for d in cpus.glob("cpu[0-9]*"):
        if not d.name[3:].isdigit():
            continue
        threads += 1
        try:
            pkg = (d / "topology/physical_package_id").read_text().strip()
            sockets.add(pkg)
            cores.add((pkg, (d / "topology/core_id").read_text().strip()))
        except OSError:
            pass
    numa = len([d for d in (root / "sys/devices/system/node").glob("node[0-9]*")])
    return {"numHWThreads": threads, "numSockets": len(sockets) or 1, "numNumaDomains": numa or 1,
            "smtWidth": threads // len(cores) if cores else 1}


class Agent:
    """Builds collectors, router and sinks from an :class:`AgentConfig` (all checked up front)."""

    def __init__(self, cfg: AgentConfig):
        self.cfg = cfg
        self.ctx = Context(cfg.root, cfg.standard, frozenset(cfg.collectors), duration=cfg.duration)
        self.collectors: list[Collector] = [make_collector(n, c, self.ctx) for n, c in cfg.collectors.items()]
        try:
            self.router = Router(cfg.router, cfg.hostname, constants=topology_constants(cfg.root))
        except RouterConfigError as e:
            raise AgentConfigError(str(e)) from None
        self.sinks: list[Sink] = [make_sink(n, c) for n, c in cfg.sinks.items()]
        self.receivers: list[Receiver] = [make_receiver(n, c) for n, c in cfg.receivers.items()]
        self.active: list[Collector] = []
        self.rounds = 0
        self.skipped = 0
        self.cpu_seconds = 0.0      # thread CPU time of all rounds (collect + route + encode)
        self.last_round_points = 0
        self._read_errors: dict[str, int] = {}

    def start_collectors(self, now: float) -> list[str]:
        """Initialise collectors; those this machine cannot serve are logged and left out."""
        self.active = []
        skipped = []
        order = list(REGISTRY)  # cpufreq before cpufreq_cpuinfo, which defers to it
        for c in sorted(self.collectors, key=lambda c: order.index(c.name)):
            try:
                c.init(now)
            except CollectorUnavailable as e:
                log.info("collector %s not available here: %s", c.name, e)
                skipped.append(c.name)
                continue
            except AgentConfigError:
                raise
            except Exception as e:
                log.error("collector %s failed to start: %s: %s", c.name, type(e).__name__, e)
                skipped.append(c.name)
                continue
            self.active.append(c)
            self.ctx.started.add(c.name)
        log.info("collectors: %s%s", ", ".join(c.name for c in self.active) or "none",
                 f" (not available: {', '.join(skipped)})" if skipped else "")
        return skipped

    def collect(self, ts: float, now: float | None = None) -> list[Message]:
        """One round: read every active collector at ``now``, route, stamp ``ts``."""
        now = time.time() if now is None else now
        msgs: list[Message] = []
        for c in self.active:
            try:
                msgs.extend(c.read(now))
            except Exception as e:
                n = self._read_errors[c.name] = self._read_errors.get(c.name, 0) + 1
                if n & (n - 1) == 0:  # 1st, 2nd, 4th... failure
                    log.error("collector %s failed (%d times so far): %s: %s", c.name, n, type(e).__name__, e)
        return self.router.route(msgs, ts)

    def round(self, ts: float, now: float | None = None) -> list[list[str]]:
        """Collect and encode for every sink (runs in a worker thread); returns lines per sink."""
        t0 = time.thread_time()
        msgs = self.collect(ts, now)
        shared: dict[tuple, list[str]] = {}
        out = []
        for s in self.sinks:
            key = s.encoding_key
            if key is None:
                out.append(s.encode(msgs))
            else:
                if key not in shared:
                    shared[key] = s.encode(msgs)
                out.append(shared[key])
        self.cpu_seconds += time.thread_time() - t0
        self.rounds += 1
        self.last_round_points = len(msgs)
        return out

    def first_tick(self, now: float) -> float:
        iv = self.cfg.interval
        if self.cfg.align:
            return math.ceil((now + 0.1 * iv) / iv) * iv
        return now + iv

    async def run(self, shutdown: trio.Event | None = None, max_rounds: int | None = None,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run rounds until ``shutdown`` is set (or ``max_rounds`` are done), then drain the sinks."""
        if shutdown is None:
            shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            for s in self.sinks:
                await nursery.start(s.run)
            async with trio.open_nursery() as receiving:
                for r in self.receivers:
                    await receiving.start(r.run, self.forward)
                self.start_collectors(time.time())
                task_status.started()
                await self._rounds(shutdown, max_rounds)
                receiving.cancel_scope.cancel()  # stop taking in, then deliver what was taken
            await self.drain()
            nursery.cancel_scope.cancel()

    async def _rounds(self, shutdown: trio.Event, max_rounds: int | None) -> None:
        iv = self.cfg.interval
        tick = self.first_tick(time.time())
        done = 0
        while max_rounds is None or done < max_rounds:
            with trio.move_on_after(max(0.0, tick - time.time())):
                await shutdown.wait()
            if shutdown.is_set():
                break
            per_sink = await trio.to_thread.run_sync(self.round, tick)
            for s, lines in zip(self.sinks, per_sink, strict=True):
                s.accept(lines)
            done += 1
            tick += iv
            now = time.time()
            if tick <= now:
                missed = math.floor((now - tick) / iv) + 1
                self.skipped += missed
                log.warning("round took longer than the interval (%g s); skipping %d round(s)", iv, missed)
                tick += missed * iv

    def forward(self, msgs: list[Message]) -> None:
        """A receiver's messages: through the router's processing to every sink (Trio thread)."""
        msgs = self.router.forward(msgs)
        if msgs:
            for s in self.sinks:
                s.submit(msgs)

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Give the sinks ``timeout`` seconds to deliver what they hold, then report what is left."""
        with trio.move_on_after(timeout):
            for s in self.sinks:
                await s.drain()
        for s in self.sinks:
            s.close()
        for c in self.active:
            c.close()

    async def once(self) -> list[str]:
        """Start the collectors, wait ``duration`` (rates need two readings), return one round's lines."""
        self.start_collectors(time.time())
        await trio.sleep(min(self.cfg.duration, self.cfg.interval))
        now = time.time()
        lines = encode_many(await trio.to_thread.run_sync(self.collect, now, now))
        for c in self.active:
            c.close()
        return lines
