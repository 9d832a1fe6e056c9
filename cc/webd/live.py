"""Live metric data of running jobs over a WebSocket (``GET /ws/live``), for the job view's plots.

The browser subscribes to (job, metrics, scope); the web process polls the job's metric
source (shared memory, or the external store of ``metric-store-external``) at the
metrics' timestep and pushes only what is new.  Protocol (JSON text frames):

client → server::

    {"op": "subscribe", "key": "k1", "job": <db id>, "metrics": ["cpu_load"], "scope": "node",
     "have": {"cpu_load": 42}}          # points the client already has per metric
    {"op": "unsubscribe", "key": "k1"}

server → client::

    {"type": "points", "key": "k1", "metric": "cpu_load", "scope": "node", "timestep": 10,
     "index": 42, "series": [{"hostname": "n01", "id": null, "data": [1.5, null]}]}
    {"type": "ended", "key": "k1", "state": "completed"}    # the job stopped: no more points
    {"type": "error", "key": "k1", "message": "..."}          # the subscription ended
    {"type": "error", "key": "k1", "message": "...", "retrying": true}  # external store failed; polled again

``index`` counts timesteps from ``floor(startTime / timestep) * timestep``, the first
point of ``jobMetrics`` (native resolution).  Each poll re-reads the last few slots,
because a node may report a slot late; a slot is sent again only when a value in it
changed.  Authentication is the UI's session cookie; the Origin must be this server.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import trio
from quart import Blueprint, current_app, websocket

from cc.clusters import SCOPES, Cluster
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job, Viewer
from cc.db import _jobs as jobsdb
from cc.jobdata import build_queries, subcluster_of
from cc.metricsource import MetricSourceError
from cc.query import QueryRequest
from cc.webd.auth import cross_site_reason, session_viewer
from cc.webd.graphql.context import GQLContext

log = logging.getLogger("web.live")
bp = Blueprint("live", __name__)

LOOKBACK = 3             # slots re-read on every poll (points arriving late)
MAX_SUBSCRIPTIONS = 64   # per connection
MAX_METRICS = 64         # per subscription
STATE_CHECK = 10.0       # seconds between checks whether a job still runs
MIN_INTERVAL = 1.0       # never poll faster than this, whatever the timestep
SOURCE_RETRY = 10.0      # seconds before asking a failed external store again


@dataclass
class Subscription:
    key: str
    job: Job
    cluster: Cluster
    metrics: list[str]
    scope: str
    timesteps: dict[str, int]
    have: dict[str, int]                           # metric -> first index the client lacks
    sent: dict[str, dict[int, tuple]] = field(default_factory=dict)  # metric -> index -> values sent
    next_poll: float = 0.0
    next_state_check: float = 0.0

    @property
    def interval(self) -> float:
        return max(MIN_INTERVAL, float(min(self.timesteps.values())))

    def base(self, metric: str) -> int:
        f = self.timesteps[metric]
        return (self.job.start_time // f) * f


async def _send(msg: dict[str, Any]) -> None:
    await websocket.send(orjson.dumps(msg).decode())


def _series_values(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else v for v in values.tolist()]


async def poll(ctx, sub: Subscription, now: float) -> list[dict[str, Any]]:
    """New or changed points of a subscription since the last poll, from the job's metric source."""
    frm = {m: sub.base(m) + max(0, sub.have[m] - LOOKBACK) * sub.timesteps[m] for m in sub.metrics}
    wants = build_queries(sub.job, sub.cluster, sub.metrics, [sub.scope], 0)
    if not wants:
        return []
    req = QueryRequest(cluster=sub.job.cluster, frm=min(frm.values()), to=int(now), queries=[q for q, _ in wants],
                       with_stats=False)
    source = ctx.sources.for_subcluster(sub.job.cluster, subcluster_of(sub.job, sub.cluster).name)
    resp = await source.query(req, minimum_points=1 << 30, numpy_data=True)
    return await trio.to_thread.run_sync(changes, sub, [w for _, w in wants], resp, limiter=ctx.query_limiter)


def changes(sub: Subscription, wants: list, resp: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages for what is new or changed in ``resp`` (blocking: a first poll covers the whole job)."""
    # metric -> series key -> (first absolute index, values)
    found: dict[str, dict[tuple[str, str | None], tuple[int, np.ndarray]]] = {}
    for want, entries in zip(wants, resp["results"], strict=True):
        for entry in entries:
            data = entry.get("data")
            if "error" in entry or data is None or not len(data):
                continue
            f = sub.timesteps[want.metric]
            first = (int(entry["from"]) - sub.base(want.metric)) // f
            found.setdefault(want.metric, {})[(want.host, want.id)] = (first, np.asarray(data, dtype=np.float64))
    out = []
    for metric, series in found.items():
        start = max(0, sub.have[metric] - LOOKBACK)
        last = -1
        for first, values in series.values():
            idx = np.flatnonzero(np.isfinite(values))
            if len(idx):
                last = max(last, first + int(idx[-1]))
        if last < start:
            continue
        keys = sorted(series)
        columns: dict[int, tuple] = {}
        for i in range(start, last + 1):
            col = []
            for k in keys:
                first, values = series[k]
                j = i - first
                v = float(values[j]) if 0 <= j < len(values) else math.nan
                col.append(v if math.isfinite(v) else None)
            columns[i] = tuple(col)
        first_poll = metric not in sub.sent  # the client's last slots may predate late points: resend them
        sent = sub.sent.setdefault(metric, {})
        changed = [i for i in range(start, last + 1)
                   if first_poll or i >= sub.have[metric] or sent.get(i) != columns[i]]
        if not changed:
            continue
        lo = changed[0]
        out.append({"type": "points", "key": sub.key, "metric": metric, "scope": sub.scope,
                    "timestep": sub.timesteps[metric], "index": lo,
                    "series": [{"hostname": k[0], "id": k[1], "data": [columns[i][n] for i in range(lo, last + 1)]}
                               for n, k in enumerate(keys)]})
        for i in range(lo, last + 1):
            sent[i] = columns[i]
        sub.have[metric] = max(sub.have[metric], last + 1)
        for i in [i for i in sent if i < sub.have[metric] - LOOKBACK - 1]:
            del sent[i]
    return out


class Connection:
    def __init__(self, ctx, viewer: Viewer):
        self.ctx = ctx
        self.viewer = viewer
        self.subs: dict[str, Subscription] = {}
        self.wake = trio.Event()

    async def subscribe(self, msg: dict[str, Any]) -> None:
        key = str(msg.get("key") or "")
        if not key or len(key) > 100:
            raise ValueError("'key' (a short string naming the subscription) is required")
        if key not in self.subs and len(self.subs) >= MAX_SUBSCRIPTIONS:
            raise ValueError(f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        try:
            db_id = int(msg.get("job"))
        except (TypeError, ValueError):
            raise ValueError("'job' must be a job's database id") from None
        scope = msg.get("scope") or "node"
        if scope not in SCOPES:
            raise ValueError(f"'scope': {scope!r} is not one of {', '.join(SCOPES)}")
        metrics = msg.get("metrics")
        if not isinstance(metrics, list) or not metrics or len(metrics) > MAX_METRICS \
                or not all(isinstance(m, str) for m in metrics):
            raise ValueError(f"'metrics' must be a list of 1 to {MAX_METRICS} metric names")
        job = await self.ctx.db.read(jobsdb.find_job, db_id, self.viewer)
        if job is None:
            raise ValueError(f"no job with id {db_id} (or you may not see it)")
        if job.state != "running" or job.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL:
            await _send({"type": "ended", "key": key, "state": job.state})
            return
        cluster = self.ctx.clusters.get(job.cluster)
        if cluster is None:
            raise ValueError(f"cluster {job.cluster!r} is not configured")
        sc = subcluster_of(job, cluster)
        hidden = GQLContext(self.ctx, self.viewer).restricted(job.cluster, sc.name)
        metrics = [m for m in dict.fromkeys(metrics) if m in sc.metrics and m not in hidden]
        if not metrics:
            raise ValueError("none of these metrics exists for this job (or you may not see them)")
        have_raw = msg.get("have") if isinstance(msg.get("have"), dict) else {}
        have = {}
        for m in metrics:
            v = have_raw.get(m, 0)
            have[m] = v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0
        now = time.time()
        self.subs[key] = Subscription(key=key, job=job, cluster=cluster, metrics=metrics, scope=scope,
                                      timesteps={m: max(1, sc.metrics[m].timestep) for m in metrics}, have=have,
                                      next_poll=now, next_state_check=now + STATE_CHECK)
        self.wake.set()

    async def handle(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await _send({"type": "error", "key": None, "message": "message is not JSON"})
            return
        if not isinstance(msg, dict):
            await _send({"type": "error", "key": None, "message": "message must be a JSON object"})
            return
        op = msg.get("op")
        if op == "subscribe":
            try:
                await self.subscribe(msg)
            except ValueError as e:
                await _send({"type": "error", "key": msg.get("key"), "message": str(e)})
        elif op == "unsubscribe":
            self.subs.pop(str(msg.get("key")), None)
        else:
            await _send({"type": "error", "key": msg.get("key"), "message": f"unknown op {op!r} "
                                                                            "(subscribe, unsubscribe)"})

    async def still_running(self, sub: Subscription) -> bool:
        job = await self.ctx.db.read(jobsdb.find_job, sub.job.id, self.viewer)
        if job is None or job.state != "running":
            await _send({"type": "ended", "key": sub.key, "state": job.state if job else "gone"})
            self.subs.pop(sub.key, None)
            return False
        return True

    async def run_polls(self) -> None:
        while True:
            now = time.time()
            for sub in [s for s in self.subs.values() if s.next_poll <= now]:
                sub.next_poll = now + sub.interval
                try:
                    msgs = await poll(self.ctx, sub, now)
                except MetricSourceError as e:  # the external store may come back: keep polling, say why
                    sub.next_poll = now + max(sub.interval, SOURCE_RETRY)
                    await _send({"type": "error", "key": sub.key, "message": str(e), "retrying": True})
                    continue
                except Exception as e:  # a broken subscription must not end the others
                    log.warning("live data of job %s failed: %s", sub.job.id, e)
                    self.subs.pop(sub.key, None)
                    await _send({"type": "error", "key": sub.key, "message": f"loading data failed: {e}"})
                    continue
                for m in msgs:
                    await _send(m)
                if now >= sub.next_state_check:
                    sub.next_state_check = now + STATE_CHECK
                    await self.still_running(sub)
            wait = min((s.next_poll for s in self.subs.values()), default=now + 60) - time.time()
            self.wake = trio.Event()
            with trio.move_on_after(max(0.05, wait)):
                await self.wake.wait()


@bp.websocket("/ws/live")
async def live() -> None:
    if cross_site_reason():
        await websocket.close(1008, "cross-origin WebSocket refused")
        return
    viewer = await session_viewer()
    if viewer is None or not viewer.roles:
        await websocket.close(1008, "not logged in")
        return
    await websocket.accept()
    conn = Connection(current_app.config["CC"], viewer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run_polls)
        while True:
            raw = await websocket.receive()
            await conn.handle(raw)
