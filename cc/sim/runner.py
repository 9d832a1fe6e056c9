"""The live simulation: scheduler and nodes in real time, talking to a running installation.

Like a real site: the scheduler reports jobs through the REST API as a Slurm adapter
does (``POST /api/jobs/start_job/`` and ``stop_job/`` with an ``api`` token, plus node
states), and the nodes send line protocol through the node agent's own sinks
(WebSocket or HTTP, with JWT).  Time stamps are real; only durations are compressed
(``time_scale``).  On a fresh start the cluster is filled to its usual load at once and
the last ``backfill`` seconds of metrics are sent, so running jobs have data right away.

State (next job ids, running jobs) is saved to ``var/sim/state.json`` every few
seconds and at the end, so a restart continues the jobs that were running; jobs that
should have ended meanwhile are stopped at their planned end.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from cc.agent.sinks import Sink, make_sink
from cc.clusters import Cluster, load_clusters
from cc.config import Config
from cc.fsio import replace_atomically
from cc.jwtauth import load_private_key, sign_token
from cc.sim.nodes import NodeSim
from cc.sim.scheduler import Running, Scheduler, start_payload, stop_payload

log = logging.getLogger("sim")

STATE_VERSION = 1


@dataclass
class SimOptions:
    clusters: list[str] | None = None   # default: every cluster of the archive
    sink: str = "websocket"             # or "http"
    time_scale: float = 10.0
    target_load: float = 0.8
    backfill: int = 600                 # seconds of metrics sent for a cluster that starts up
    seed: int = 0
    sched_interval: float = 5.0
    nodestate_interval: float = 60.0
    state_interval: float = 10.0
    web_url: str | None = None
    ingest_url: str | None = None
    # NATS instead of HTTP/WebSocket: metrics with the agent's nats sink, job events and node states
    # as cc-backend's NATS API messages (the installation's main.api-subjects)
    nats_url: str | None = None
    nats_subjects: tuple[str, str, str] = ("cc.metrics", "cc.job.event", "cc.node.state")


def sim_dir(cfg: Config) -> Path:
    return cfg.var_dir / "sim"


def read_json(path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Atomic replace (the file is read after crashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2), durable=False)


def addresses(cfg: Config, opts: SimOptions) -> tuple[str, str]:
    """Web and ingest base URLs (``var/run/ports.json`` of the running supervisor unless given)."""
    ports = read_json(cfg.run_dir / "ports.json")
    web = opts.web_url or (f"http://{ports['web']}" if "web" in ports else f"http://{cfg.web_addr}")
    ingest = opts.ingest_url or (f"http://{ports['ingest']}" if "ingest" in ports
                                 else f"http://{cfg.metric_store.ingest_addr}")
    return web.rstrip("/"), ingest.rstrip("/")


def api_token(cfg: Config, user: str = "cc-sim") -> str:
    priv = cfg.secret("JWT_PRIVATE_KEY")
    if not priv:
        raise RuntimeError("JWT_PRIVATE_KEY is not set (in .env or the environment)")
    return sign_token(load_private_key(priv), user, ["api"], cfg.jwt_max_age or 2000 * 3600)


class RestOutbox:
    """start/stop calls in order; transient failures are retried (order kept), rejections logged and dropped.

    A stop waits until the sink has delivered every point accepted before it (at most
    ``METRICS_WAIT`` seconds): the archiver reads the job's data as soon as it is stopped.
    """

    METRICS_WAIT = 30.0

    def __init__(self, client: httpx.AsyncClient, sink: Sink, nats: Any = None, subject: str = ""):
        self.client = client
        self.sink = sink
        self.nats = nats  # a connected cc.nats.NatsClient: publish events instead of POSTing
        self.subject = subject
        self.queue: deque[tuple[str, dict[str, Any], int]] = deque()
        self._wake = trio.Event()
        self.sent = {"start": 0, "stop": 0}
        self.rejected = 0

    def _position(self) -> int:
        buf = getattr(self.sink, "buffer", None)
        return buf.end if buf is not None else 0

    def _delivered(self, pos: int) -> bool:
        buf = getattr(self.sink, "buffer", None)
        return buf is None or buf.head >= pos

    def put(self, kind: str, payload: dict[str, Any]) -> None:
        self.queue.append((kind, payload, self._position() if kind == "stop" else 0))
        self._wake.set()

    async def run(self) -> None:
        delay = 0.0
        while True:
            if not self.queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            kind, payload, pos = self.queue[0]
            if not self._delivered(pos):
                with trio.move_on_after(self.METRICS_WAIT):
                    while not self._delivered(pos):
                        await trio.sleep(0.1)
            if self.nats is not None:
                if await self._publish(kind, payload):
                    delay = 0.0
                    self.queue.popleft()
                    self.sent[kind] += 1
                else:
                    delay = min(10.0, max(0.5, delay * 2))
                    await trio.sleep(delay)
                continue
            try:
                r = await self.client.post(f"/api/jobs/{kind}_job/", content=orjson.dumps(payload))
            except httpx.HTTPError as e:
                delay = min(10.0, max(0.5, delay * 2))
                log.warning("%s_job %s: %s; retrying in %.1fs", kind, payload["jobId"], e, delay)
                await trio.sleep(delay)
                continue
            if r.status_code >= 500 or r.status_code in (401, 403, 429):
                delay = min(10.0, max(0.5, delay * 2))
                log.warning("%s_job %s: %s %s; retrying in %.1fs", kind, payload["jobId"], r.status_code,
                            r.text[:200], delay)
                await trio.sleep(delay)
                continue
            delay = 0.0
            self.queue.popleft()
            if r.status_code < 300:
                self.sent[kind] += 1
            elif r.status_code == 422:  # already started / already stopped: a repeat after a restart
                log.debug("%s_job %s: %s", kind, payload["jobId"], r.text[:200])
            else:
                self.rejected += 1
                log.error("%s_job %s rejected: %s %s", kind, payload["jobId"], r.status_code, r.text[:300])

    async def _publish(self, kind: str, payload: dict[str, Any]) -> bool:
        """One event on NATS, confirmed by a flush (the consumer logs what it refuses, e.g. a repeat)."""
        from cc.nats import NatsError, encode_event

        ts = payload.get("startTime" if kind == "start" else "stopTime")
        try:
            await self.nats.publish_many(self.subject, [encode_event(
                "job", {"function": f"{kind}_job", "hostname": "cc-sim"}, orjson.dumps(payload).decode(), ts)],
                flush_timeout=5)
        except NatsError as e:
            log.warning("%s_job %s over NATS: %s; retrying", kind, payload["jobId"], e)
            return False
        return True

    async def drain(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            while self.queue:
                await trio.sleep(0.05)


class LiveSim:
    """Scheduler + node simulator + delivery, for one installation."""

    def __init__(self, cfg: Config, opts: SimOptions, clusters: dict[str, Cluster] | None = None):
        self.cfg = cfg
        self.opts = opts
        all_clusters = clusters if clusters is not None else load_clusters(cfg.archive_path)
        names = opts.clusters or sorted(all_clusters)
        missing = [n for n in names if n not in all_clusters]
        if missing:
            raise RuntimeError(f"no cluster.json for {', '.join(missing)} in {cfg.archive_path}")
        self.clusters = {n: all_clusters[n] for n in names}
        self.state_path = sim_dir(cfg) / "state.json"
        state = read_json(self.state_path)
        history = read_json(sim_dir(cfg) / "history.json")
        next_ids = {**history.get("next_ids", {}), **state.get("next_ids", {})}
        for c, v in history.get("next_ids", {}).items():
            next_ids[c] = max(next_ids.get(c, 0), v)
        self.saved_running = state.get("running", [])
        self.nodes = NodeSim(self.clusters, seed=opts.seed)
        self.sched = Scheduler(self.clusters, time_scale=opts.time_scale, target_load=opts.target_load,
                               seed=opts.seed + int(time.time()) % 100000, next_ids=next_ids,
                               min_runtime=max(30, int(3 * self.nodes.step)))
        self.web, self.ingest = addresses(cfg, opts)
        self.token = api_token(cfg)
        self.sink: Sink = self._sink()
        self.last_tick = 0
        self.ready = trio.Event()
        self.nats: Any = None  # a connected cc.nats.NatsClient while running with opts.nats_url

    def _sink(self) -> Sink:
        host = self.ingest.split("://", 1)[1]
        # room for the backfill and a few minutes of outage
        size = max(500_000, self.nodes.lines_per_step() * int((self.opts.backfill + 600) / self.nodes.step))
        if self.opts.sink == "nats":
            host, _, port = self.opts.nats_url.removeprefix("nats://").rpartition(":")
            return make_sink("sim", {"type": "nats", "host": host, "port": port, "subject": self.opts.nats_subjects[0],
                                     "flush_delay": "0s", "batch_size": 5000, "buffer_size": size})
        if self.opts.sink == "http":
            return make_sink("sim", {"type": "http", "url": f"{self.ingest}/api/write", "jwt": self.token,
                                     "buffer_size": size})
        return make_sink("sim", {"type": "websocket", "url": f"ws://{host}/api/ws", "jwt": self.token,
                                 "buffer_size": size})

    # -- job events -------------------------------------------------------------------------------

    def _started(self, runs: list[Running], outbox: RestOutbox) -> None:
        for r in runs:
            self.nodes.assign(r.key, r.spec.cluster, r.alloc.resources, r.start, r.spec.runtime, r.spec.params)
            outbox.put("start", start_payload(r, self.sched.hw_of(r.spec.cluster, r.alloc.subcluster)))

    def _finished(self, runs: list[Running], outbox: RestOutbox) -> None:
        for r in runs:
            self.nodes.release(r.key)
            outbox.put("stop", stop_payload(r))

    async def _restore(self, client: httpx.AsyncClient, outbox: RestOutbox, now: float) -> bool:
        """Continue the jobs of the last run; stop the backend's running jobs nobody runs any more."""
        restored: list[Running] = []
        for doc in self.saved_running:
            try:
                r = self.sched.restore(doc)
            except (KeyError, ValueError, AssertionError) as e:  # topology changed since
                log.warning("cannot continue job %s: %s", doc.get("spec", {}).get("jobId"), e)
                continue
            restored.append(r)
        self._started(restored, outbox)  # a repeated start is answered 422 and ignored
        known = {(r.spec.cluster, r.spec.job_id) for r in restored}
        for c in self.clusters:
            for job in await self._backend_running(client, c):
                if (job["cluster"], job["jobId"]) not in known:
                    log.info("stopping job %s on %s: running in the backend but not in the simulation",
                             job["jobId"], c)
                    outbox.put("stop", {"jobId": job["jobId"], "cluster": c, "startTime": job["startTime"],
                                        "stopTime": max(job["startTime"], int(now)), "jobState": "failed"})
        if restored:
            log.info("continuing %d jobs of the previous run", len(restored))
        return bool(restored)

    async def _backend_running(self, client: httpx.AsyncClient, cluster: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            try:
                r = await client.get("/api/jobs/", params={"state": "running", "cluster": cluster, "page": page,
                                                           "items-per-page": 500})
            except httpx.HTTPError as e:
                log.warning("listing running jobs failed: %s", e)
                return out
            if r.status_code != 200:
                return out
            jobs = r.json().get("jobs") or []
            out.extend(jobs)
            if len(jobs) < 500:
                return out
            page += 1

    def state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "saved": int(time.time()), "last_tick": self.last_tick,
                "next_ids": dict(self.sched.next_id), "time_scale": self.opts.time_scale,
                "running": [r.to_json() for r in self.sched.running.values()]}

    def save_state(self) -> None:
        write_json(self.state_path, self.state())

    # -- loops ------------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        headers = {"X-Auth-Token": self.token, "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=self.web, headers=headers, timeout=30) as client, \
                contextlib.AsyncExitStack() as stack, trio.open_nursery() as nursery:
            nats = None
            if self.opts.nats_url:
                from cc.nats import NatsClient, parse_nats

                nats = await stack.enter_async_context(NatsClient(parse_nats({"address": self.opts.nats_url}),
                                                                  name="cc-sim events", log=log))
                await nats.wait_connected()
            self.nats = nats
            outbox = RestOutbox(client, self.sink, nats, self.opts.nats_subjects[1])
            await nursery.start(self.sink.run)
            now = time.time()
            if await self._restore(client, outbox, now):
                self._finished(self.sched.finish(now), outbox)  # those that ended while we were away
                if min(self.sched.load().values(), default=1.0) < self.opts.target_load / 2:
                    self._started(self.sched.fill(now, now), outbox)
            else:
                step = self.nodes.step
                t1 = int(now // step * step)
                t0 = t1 - self.opts.backfill
                self._started(self.sched.fill(t0, now), outbox)
                finished = self.sched.finish(now)
                for t in range(t0 + step, t1 + 1, step):
                    self.sink.accept(self.nodes.lines(t))
                self._finished(finished, outbox)
                self.last_tick = t1
                log.info("cluster filled: %d jobs running, %s s of metrics backfilled", len(self.sched.running),
                         self.opts.backfill)
            nursery.start_soon(outbox.run)
            nursery.start_soon(self._metrics_loop)
            nursery.start_soon(self._sched_loop, outbox)
            nursery.start_soon(self._nodestate_loop, client)
            nursery.start_soon(self._state_loop)
            self.ready.set()
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    self.save_state()
                    with trio.move_on_after(3):
                        await outbox.drain(2)
                        await self.sink.drain()
                    self.sink.close()
                nursery.cancel_scope.cancel()

    async def _metrics_loop(self) -> None:
        step = self.nodes.step
        t = max(self.last_tick + step, int(time.time() // step * step))
        while True:
            await trio.sleep(max(0.0, t + 0.2 - time.time()))
            self.sink.accept(self.nodes.lines(t))
            self.last_tick = t
            t += step
            if t < time.time() - 5 * step:  # we were suspended: skip ahead instead of catching up
                t = int(time.time() // step * step)

    async def _sched_loop(self, outbox: RestOutbox) -> None:
        while True:
            await trio.sleep(self.opts.sched_interval)
            finished, started = self.sched.step(time.time())
            self._finished(finished, outbox)
            self._started(started, outbox)

    async def _nodestate_loop(self, client: httpx.AsyncClient) -> None:
        while True:
            for c, pool in self.sched.pools.items():
                if self.nats is not None:
                    from cc.nats import NatsError, encode_event

                    doc = orjson.dumps({"cluster": c, "nodes": pool.node_states()}).decode()
                    with contextlib.suppress(NatsError):
                        await self.nats.publish_many(self.opts.nats_subjects[2], [encode_event("nodestate", {}, doc)],
                                                     flush_timeout=5)
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.post("/api/nodestate/", content=orjson.dumps({"cluster": c,
                                                                                    "nodes": pool.node_states()}))
                    if r.status_code >= 300:
                        log.debug("nodestate %s: %s %s", c, r.status_code, r.text[:200])
            await trio.sleep(self.opts.nodestate_interval)

    async def _state_loop(self) -> None:
        while True:
            await trio.sleep(self.opts.state_interval)
            doc = self.state()  # taken here: the scheduler changes only in this thread
            await trio.to_thread.run_sync(write_json, self.state_path, doc)
