"""The web process: REST and query APIs (and, later, the UI) served by Quart on Trio.

This module only wires things together; each concern lives in its own module.
"""

from __future__ import annotations

import functools
import logging
import socket
import sqlite3
import time
from http import HTTPStatus

import httpx
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from quart import Response, g, has_request_context, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from cc import proc
from cc.clusters import MetricCatalog, load_clusters
from cc.db import SCHEMA_VERSION, Database, check_version
from cc.db._jobs import footprint_indexes, unindexed_footprint_keys
from cc.jwtauth import TokenVerifier, load_public_key
from cc.metricsource import BuiltinSource, MetricSourceError, MetricSources
from cc.netacl import IPAllowList, ProxyTrust
from cc.shm import Store
from cc.tls import PemPair, TLSError, pinned_client_context, read_pair, server_context
from cc.webd import (
    admin_api,
    config_api,
    jobs_api,
    live,
    login,
    logs_api,
    machine_state,
    metrics_api,
    metricstore_api,
    pages,
    session_api,
    sessions,
    tagger_api,
    tags_api,
    userapi,
)
from cc.webd import graphql as graphql_api
from cc.webd.auth import LoginLimiter, request_is_secure
from cc.webd.context import WebContext
from cc.webd.errors import APIError, error_response, internal_error, json_response
from cc.webd.redirect import redirect_app
from cc.webd.sitelogin import build_site_logins

log = logging.getLogger("web")


class WebApp(QuartTrio):
    def log_exception(self, exc_info) -> None:
        """Unexpected errors are logged once, with their request id, by :func:`internal_error`."""


def create_app(ctx: WebContext) -> QuartTrio:
    app = WebApp(__name__)
    app.config["CC"] = ctx
    app.config["MAX_CONTENT_LENGTH"] = ctx.cfg.metric_store.max_body_bytes
    app.register_blueprint(metricstore_api.bp)
    app.register_blueprint(jobs_api.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(config_api.bp)  # settings page administration (session cookie)
    app.register_blueprint(tagger_api.bp)  # /config/taggers/: list and run the job taggers (admins)
    app.register_blueprint(login.bp)
    app.register_blueprint(graphql_api.bp)
    app.register_blueprint(pages.bp)  # web UI pages and static files
    app.register_blueprint(live.bp)  # live plot data over WebSocket
    app.register_blueprint(session_api.bp)  # listing and ending users' sessions (admins)
    app.register_blueprint(metrics_api.bp)  # Prometheus /metrics and request timing
    app.register_blueprint(logs_api.bp)  # the processes' logs: Logs page and /frontend/logs/ (admins)
    app.register_blueprint(userapi.bp)  # /userapi/jobs/... (user tokens) and POST /frontend/configuration/
    app.register_blueprint(tags_api.bp)  # DELETE /api/tags/
    app.register_blueprint(machine_state.bp)  # /api/machine_state/<cluster>/<host> (main.machine-state-dir)
    sessions.init_app(app, ctx.cfg.secret("SESSION_KEY"), ctx.cfg.session_max_age)

    @app.errorhandler(APIError)
    async def on_api_error(e: APIError) -> Response:
        return error_response(e.status, e.message)

    @app.errorhandler(MetricSourceError)
    async def on_source_error(e: MetricSourceError) -> Response:
        return error_response(502, str(e))  # an external store failed: its URL and why, no traceback

    @app.errorhandler(404)
    async def on_404(e) -> Response:
        if has_request_context() and not pages.wants_json_404(request.path):
            return await pages.not_found_page()
        return error_response(404, "no such endpoint")

    @app.errorhandler(405)
    async def on_405(e) -> Response:
        resp = error_response(405, "method not allowed on this endpoint")
        if getattr(e, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(sorted(e.valid_methods))
        return resp

    @app.errorhandler(HTTPException)
    async def on_http_error(e: HTTPException) -> Response:
        """Errors Quart raises itself (body too large, bad form data ...) in our JSON shape, not HTML."""
        if e.code is None or e.code >= 500:
            return internal_error(getattr(e, "original_exception", None) or e)
        return error_response(e.code, e.description or HTTPStatus(e.code).phrase)

    @app.errorhandler(500)
    async def on_500(e) -> Response:
        return internal_error(getattr(e, "original_exception", None) or e)

    @app.before_request
    async def start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def finish_request(resp: Response) -> Response:
        """Handler time as ``Server-Timing`` (auth, SQL, JSON; for clients and benchmarks), then read
        what a handler left unread of the request body (refused before reading it, or not needed).

        Otherwise the next request on the same keep-alive connection can hang: the server
        still has the old body to hand to an application that will never take it.
        """
        if "started" in g:
            resp.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - g.started) * 1000:.2f}"
        if request_is_secure():  # browsers that saw HTTPS here never try plain HTTP again
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        try:
            await request.get_data(cache=False)
        except HTTPException:  # too large or too slow: do not keep this connection
            resp.headers["Connection"] = "close"
        return resp

    @app.route("/api/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.before_serving
    async def open_clients() -> None:
        # The supervisor hands us the ingest workers' plain-HTTP address: no proxy from the
        # environment applies, and no TLS context is built (loading the CA bundle into one
        # costs ~8 MB in every web process for connections that never use it).
        # With metric-store.ingest-tls they serve our own certificate, which names no loopback address.
        verify = pinned_client_context(ctx.tls_cert_pem) if ctx.ingest_url.startswith("https:") else False
        app.config["INGEST_CLIENT"] = httpx.AsyncClient(timeout=60, verify=verify, trust_env=False)

    @app.after_serving
    async def close_clients() -> None:
        await app.config["INGEST_CLIENT"].aclose()
        await ctx.sources.aclose()
        ctx.db.close()

    return app


def build_context(cfg, instance: str, slot: int, ingest_url: str, tls_cert_pem: bytes | None = None) -> WebContext:
    store = Store.attach(instance)
    clusters = load_clusters(cfg.archive_path)
    verifier = None
    if not cfg.main.get("disable-authentication"):
        pub = cfg.secret("JWT_PUBLIC_KEY")
        if not pub:
            raise SystemExit("JWT_PUBLIC_KEY is not set (in .env or the environment)")
        verifier = TokenVerifier(load_public_key(pub))
    if not cfg.secret("SESSION_KEY"):
        raise SystemExit("SESSION_KEY is not set (in .env or the environment)")
    version = check_version(cfg.db_path)
    if version != SCHEMA_VERSION:
        raise SystemExit(f"job database {cfg.db_path} has version {version}, expected {SCHEMA_VERSION}: "
                         "run 'cc-supervise migrate-db'")
    catalog = MetricCatalog(clusters, cfg.metrics)
    limiter = trio.CapacityLimiter(4)
    sources = MetricSources(BuiltinSource(store, lambda: catalog, limiter), cfg.metric_store_external)
    for line in sources.describe():
        log.info("metric-store-external: %s", line)
    return WebContext(cfg=cfg, store=store, clusters=clusters, catalog=catalog,
                      verifier=verifier, allow=IPAllowList(cfg.api_allowed_ips), ingest_url=ingest_url,
                      slot=slot, query_limiter=limiter, db=Database(cfg.db_path),
                      archive=open_archive(cfg), login_limiter=LoginLimiter(), sources=sources,
                      logins=build_site_logins(cfg), proxies=ProxyTrust(cfg.trusted_proxies), tls_cert_pem=tls_cert_pem)


async def index_footprints(ctx: WebContext) -> None:
    """Indexes for the footprint keys of the configured clusters, in the background of every start.

    Sorting or filtering a job list by a footprint value would otherwise read the JSON of
    every job; on a large existing database the first start spends a few seconds here.
    """
    keys: set[str] = set()
    for cluster in ctx.clusters.values():
        keys |= cluster.footprint_keys()
    if not keys:
        return
    try:
        if not await ctx.db.read(unindexed_footprint_keys, keys):
            return  # the usual case: no write transaction at every start
        made = await ctx.db.write(footprint_indexes, keys)
    except sqlite3.Error as e:
        log.warning("could not index the footprint values: %s", e)
        return
    if made:
        log.info("indexed footprint values for sorting and filtering: %s", ", ".join(made))


def open_archive(cfg):
    """The job archive (finished jobs are served from it)."""
    from cc.archive import open_archive as open_store

    return open_store(cfg.archive)


class _TLSConfig(HyperConfig):
    """Hypercorn serving TLS with a context we built (hypercorn itself only loads files by path)."""

    def __init__(self, context) -> None:
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_ssl_context(self):
        return self._context


def _hypercorn(listen_fd: int, tls=None) -> HyperConfig:
    hc = _TLSConfig(tls) if tls is not None else HyperConfig()
    hc.bind = [f"fd://{listen_fd}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")  # our handler and format (cc.logformat), not its own
    hc.graceful_timeout = 5
    hc.keep_alive_timeout = 75
    return hc


def _sockname(fd: int):
    sock = socket.socket(fileno=fd)
    try:
        return sock.getsockname()
    finally:
        sock.detach()  # the descriptor stays open for hypercorn


def main(argv: list[str] | None = None) -> None:
    parser = proc.child_args("Web process: REST, query and UI.", listen=True)
    parser.add_argument("--ingest-url", required=True, help="base URL of the ingest workers")
    parser.add_argument("--tls-cert-fd", type=int, help="main.https-cert-file, opened by the supervisor")
    parser.add_argument("--tls-key-fd", type=int, help="main.https-key-file, opened by the supervisor")
    parser.add_argument("--redirect-fd", type=int, help="listening socket for main.redirect-http-to")
    args = parser.parse_args(argv)
    cfg, instance = proc.load(args)
    logger = proc.setup_logging("web")
    pair: PemPair | None = None
    tls = None
    if cfg.tls_cert is not None:
        try:
            pair = read_pair(cfg.tls_cert, cfg.tls_key, args.tls_cert_fd, args.tls_key_fd)
            tls = server_context(pair)
        except TLSError as e:
            raise SystemExit(f"error: {e}") from None
    ctx = build_context(cfg, instance, args.slot, args.ingest_url, pair.cert if pair else None)
    app = create_app(ctx)
    hc = _hypercorn(args.listen_fd, tls)
    logger.info("web serving on %s (%s)", _sockname(args.listen_fd), "HTTPS" if tls else "HTTP")

    events = None
    if cfg.nats is not None and cfg.api_subjects is not None:
        from cc.webd.natsapi import NatsEvents

        events = NatsEvents(app, cfg)

    async def run_app(nursery: trio.Nursery, shutdown: trio.Event) -> None:
        nursery.start_soon(index_footprints, ctx)
        nursery.start_soon(sessions.purge_expired, ctx.db)
        if args.redirect_fd is not None and cfg.redirect_http_to:
            logger.info("redirecting plain HTTP on %s to %s", _sockname(args.redirect_fd), cfg.redirect_http_to)
            nursery.start_soon(functools.partial(serve, redirect_app(cfg.redirect_http_to),
                                                 _hypercorn(args.redirect_fd), shutdown_trigger=shutdown.wait))
        if events is not None:  # after the app serves: stop_job needs its nursery (archiver wake-up)
            async def start_events() -> None:
                while getattr(app, "nursery", None) is None:
                    await trio.sleep(0.05)
                await events.run()

            nursery.start_soon(start_events)
        await serve(app, hc, shutdown_trigger=shutdown.wait)

    proc.run(run_app, logger)
