"""cc-metric-store's REST API served from shared memory: query, free, debug, healthcheck, write.

These are the built-in store's own endpoints (what a front installation's
``metric-store-external`` asks), so they never forward to an external store.

``/api/write`` on the web port is forwarded to the ingest workers so collectors set
up for cc-backend's built-in store keep working; the ingest port scales better.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import orjson
import trio
from quart import Blueprint, Response, current_app, request

from cc import ipc
from cc.metricsource import health_of_host
from cc.query import QueryError, execute, parse_request
from cc.shm import Store
from cc.webd.auth import api_route
from cc.webd.errors import APIError, error_response, json_response
from cc.webd.health import MAX_NAME, is_node_state_body, update_node_states
from cc.webd.params import field_str, json_body, only_fields, query_int, query_list, query_str

log = logging.getLogger("web.metricstore")
bp = Blueprint("metricstore", __name__)

def _ctx():
    return current_app.config["CC"]


@bp.route("/api/query", methods=["GET", "POST"])
@bp.route("/api/query/", methods=["GET", "POST"])
@api_route("api")
async def query() -> Response:
    ctx = _ctx()
    try:
        req = parse_request(await json_body("any"))
    except QueryError as e:
        raise APIError(400, str(e)) from None
    resampling = ctx.cfg.main.get("resampling") or {}
    minimum = int(resampling.get("minimum-points", 1000) or 1000)
    def run() -> bytes:  # encoding a large answer takes long: not on the event loop
        result = execute(req, ctx.store, ctx.clusters, ctx.catalog, minimum_points=minimum, numpy_data=True)
        return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)

    try:
        body = await trio.to_thread.run_sync(run, limiter=ctx.query_limiter)
    except QueryError as e:
        raise APIError(400, str(e)) from None
    return Response(body, mimetype="application/json")


@bp.route("/api/free", methods=["POST"])
@bp.route("/api/free/", methods=["POST"])
@api_route("api")
async def free() -> Response:
    if request.args.get("to") is None:
        raise APIError(400, "'to' is a required query parameter (unix seconds)")
    to = query_int("to", required=True)
    selectors = await json_body("any")
    if not isinstance(selectors, list) or not all(isinstance(s, list) and s and all(isinstance(x, str) for x in s)
                                                  for s in selectors):
        raise APIError(400, "body must be a list of selectors (non-empty lists of strings), e.g. [[\"cluster\", \"host\"]]")
    reply = await _store_request({"cmd": "free", "to": to, "selectors": selectors})
    if not reply.get("ok"):
        raise APIError(400, reply.get("error", "free failed"))
    # cc-metric-store answers with a line of text; keep that for scripts that read it.
    return Response(f"buffers freed: {reply['released']}\n", mimetype="text/plain")


async def _store_request(msg: dict[str, Any], attempts: int = 40) -> dict[str, Any]:
    """Ask the store process; it may be restarting, so retry for a few seconds."""
    path = _ctx().store_socket
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return await ipc.request(path, msg, timeout=30)
        except (ipc.IPCError, OSError, trio.TooSlowError) as e:
            last = e
            await trio.sleep(0.1)
    raise APIError(503, f"store process not reachable: {last}")


def _series_info(store: Store, sid: int, now: float) -> dict[str, Any]:
    key = store.key_of(sid)
    freq = store.frequency_of(sid)
    last = int(store.last_bins([sid])[0])
    name = key.metric
    scope = "node" if key.type == "node" else key.type + key.type_id
    if key.stype:
        scope += ":" + key.stype + key.stype_id
    info: dict[str, Any] = {"metric": name, "scope": scope, "frequency": freq}
    if last >= 0:
        info["last"] = last * freq
        info["age"] = int(now) - last * freq
    return info


@bp.route("/api/debug", methods=["GET", "POST"])
@bp.route("/api/debug/", methods=["GET", "POST"])
@api_route("api")
async def debug() -> Response:
    """Counters, memory use, and what the store holds under ``?selector=cluster[:host]``."""
    ctx = _ctx()
    store = ctx.store
    raw = request.args.get("selector", "")
    sel = [s for s in raw.split(":") if s] if raw else []
    now = time.time()
    doc: dict[str, Any] = {"counters": store.counter_totals(), "store": store.usage()}
    if not sel:
        doc["clusters"] = {c: {"hosts": len(store.hosts(c))} for c in store.clusters()}
        return json_response(doc)
    cluster = sel[0]
    if cluster not in store.clusters():
        raise APIError(404, f"cluster {cluster!r} has no data in the metric store")
    hosts = [sel[1]] if len(sel) > 1 else store.hosts(cluster)
    tree: dict[str, Any] = {}
    for host in hosts:
        series = store.series_of_host(cluster, host)
        if not series and len(sel) > 1:
            raise APIError(404, f"host {host!r} of cluster {cluster!r} has no data in the metric store")
        tree[host] = {m: [_series_info(store, s, now) for s in sids] for m, sids in sorted(series.items())}
    doc["data"] = {cluster: tree}
    return json_response(doc)


@bp.route("/api/healthcheck", methods=["GET", "POST"])
@bp.route("/api/healthcheck/", methods=["GET", "POST"])
@api_route("api")
async def healthcheck() -> Response:
    """Per host: which configured metrics are missing or stale.

    Body (as cc-metric-store): ``{"cluster": ..., "nodes": [...], "metric-names": [...]}``;
    query parameters ``cluster``, ``node`` (repeatable) and ``metric`` (repeatable) work too.
    Without nodes, every host the store knows for the cluster; without metrics, every
    metric configured for the cluster.
    """
    ctx = _ctx()
    body = await json_body("any", required=False)
    if is_node_state_body(body):  # cc-backend's form: the scheduler's node states
        return json_response(await update_node_states(ctx, body))
    body = body or {}
    if not isinstance(body, dict):
        raise APIError(400, "body must be an object {cluster, nodes, metric-names}")
    only_fields(body, ("cluster", "nodes", "metric-names"))
    cluster = field_str(body, "cluster", max_length=MAX_NAME) or query_str("cluster", max_length=MAX_NAME)
    if not cluster:
        raise APIError(400, "'cluster' is required (body field or query parameter)")
    lists = {}
    for key, param in (("nodes", "node"), ("metric-names", "metric")):
        value = body.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= MAX_NAME
                                                                          for v in value)):
            raise APIError(400, f"'{key}' must be a list of strings of at most {MAX_NAME} characters "
                                "(or, for node states, of node objects)")
        lists[key] = value or query_list(param, max_length=MAX_NAME)
    nodes = lists["nodes"] or ctx.store.hosts(cluster)
    metrics = lists["metric-names"] or sorted(ctx.catalog.metrics_of(cluster))
    now = time.time()
    return json_response({h: health_of_host(ctx.store, cluster, h, metrics, now) for h in nodes})


@bp.route("/api/write", methods=["POST", "PUT"])
@bp.route("/api/write/", methods=["POST", "PUT"])
async def write() -> Response:
    """Forward to the ingest workers (they authenticate, parse and store)."""
    ctx = _ctx()
    if not ctx.allow.allows(request.remote_addr or ""):
        raise APIError(403, f"address {request.remote_addr} is not in main.api-allowed-ips")
    body = await request.get_data()
    headers = {k: v for k, v in request.headers.items()
               if k.lower() in ("authorization", "x-auth-token", "content-encoding", "content-type")}
    client: httpx.AsyncClient = current_app.config["INGEST_CLIENT"]
    try:
        r = await client.post(ctx.ingest_url + "/api/write", params=request.args, content=body, headers=headers)
    except httpx.HTTPError as e:
        return error_response(503, f"ingest workers not reachable: {e}")
    return Response(r.content, status=r.status_code, mimetype=r.headers.get("content-type", "application/json"))
