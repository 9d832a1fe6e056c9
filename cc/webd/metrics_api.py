"""``GET /metrics`` on the web listener, and the web process's request metrics behind it.

Every request is timed into a histogram labelled with its API (``rest``, ``graphql``,
``metricstore``, ``ui``) and its endpoint (the route's function, so the label set stays
bounded whatever paths clients send); job starts and stops are counted from the answers of
their REST routes (NATS job events go through those routes too).  A scrape adds the
supervisor's view of every process and the archiver's queue, both asked over their Unix
sockets.  The metric store's own metrics are on the ingest listener's ``/metrics``.
"""

from __future__ import annotations

import time

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from quart import Blueprint, Response, current_app, g, request

from cc import ipc, promexport
from cc.webd.auth import client_ip
from cc.webd.errors import error_response

bp = Blueprint("metrics_api", __name__)

API_OF_BLUEPRINT = {"graphql": "graphql", "metricstore_api": "metricstore", "jobs_api": "rest",
                    "admin_api": "rest", "session_api": "rest", "config_api": "rest", "metrics_api": "metrics"}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

disable_created_metrics()  # no *_created series: Prometheus 2.x does not use them in the text format
REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_SECONDS = Histogram("cc_web_request_duration_seconds", "Time from request to answer by API and endpoint",
                            ["api", "endpoint"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
REQUESTS = Counter("cc_web_requests", "Requests answered by API and status class", ["api", "code"],
                   registry=REGISTRY)
REQUEST_BYTES = Counter("cc_web_request_bytes", "Bytes of request bodies by API", ["api"], registry=REGISTRY)
JOBS_STARTED = Counter("cc_jobs_started", "Jobs started over the REST API or NATS job events", registry=REGISTRY)
JOBS_STOPPED = Counter("cc_jobs_stopped", "Jobs stopped over the REST API or NATS job events", registry=REGISTRY)
SOCKET_TIMEOUT = 2.0


@bp.before_app_request
async def _start_timer() -> None:
    g.metrics_t0 = time.perf_counter()


@bp.after_app_request
async def _observe(resp: Response) -> Response:
    t0 = g.get("metrics_t0")
    if t0 is None:
        return resp
    endpoint = request.endpoint or "unmatched"
    api = API_OF_BLUEPRINT.get(request.blueprint or "", "ui")
    REQUEST_SECONDS.labels(api, endpoint).observe(time.perf_counter() - t0)
    REQUESTS.labels(api, f"{resp.status_code // 100}xx").inc()
    if request.content_length:
        REQUEST_BYTES.labels(api).inc(request.content_length)
    if endpoint == "jobs_api.start_job" and resp.status_code == 201:
        JOBS_STARTED.inc()
    elif endpoint == "jobs_api.stop_job" and resp.status_code == 200:
        JOBS_STOPPED.inc()
    return resp


async def _ask(path, msg: dict) -> dict | None:
    try:
        with trio.fail_after(SOCKET_TIMEOUT):
            reply = await ipc.request(path, msg, timeout=SOCKET_TIMEOUT)
    except (ipc.IPCError, trio.TooSlowError, OSError, ValueError):
        return None
    return reply if reply.get("ok") else None


@bp.route("/metrics", methods=["GET"])
async def metrics() -> Response:
    ctx = current_app.config["CC"]
    scrape = current_app.config.get("SCRAPE_ACCESS")
    if scrape is None:
        scrape = promexport.ScrapeAccess(ctx.cfg.metrics_allowed_ips, ctx.verifier, ctx.allow)
        current_app.config["SCRAPE_ACCESS"] = scrape
    refused = scrape.refusal(client_ip(), request.headers)
    if refused is not None:
        return error_response(*refused)
    supervisor = await _ask(ctx.cfg.run_dir / "supervisor.sock", {"cmd": "status"})
    archiver = await _ask(ctx.cfg.run_dir / "archiver.sock", {"cmd": "status"})
    body = promexport.render(promexport.process_families(supervisor) + promexport.archiver_families(archiver),
                             REGISTRY)
    return Response(body, status=200, content_type=promexport.CONTENT_TYPE)
