"""The ingest worker process: line protocol over HTTP (and NATS, ``_nats.py``) into shared memory.

Several of these share one listening socket (handed over by the supervisor).
Each request is parsed and written in a worker thread, then appended to this
process's WAL, then acknowledged: an acknowledged point is in shared memory, which
outlives this process, and in the WAL (fsynced before the answer with
``checkpoints.wal-sync: "always"``), which outlives a reboot.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time

import trio

from cc import proc, promexport
from cc.clusters import load_catalog
from cc.ingestd import _http, _ws
from cc.ingestd._http import Request, Response
from cc.ingestd._pipeline import Ingestor
from cc.jwtauth import AuthError, TokenVerifier, load_public_key, token_from_headers
from cc.netacl import IPAllowList
from cc.shm import COUNTER_INDEX, HIST_INDEX, INGEST_SLOT_BASE, Store
from cc.shm._layout import PR_ACTIVE, PR_NATS_SEQ, PR_PID, PR_REQUESTS, PR_STARTED
from cc.tls import TLSError, read_pair, server_context
from cc.wal import WalError, WalSyncer, WalWriter, wal_dir

log = logging.getLogger("ingest")


class IngestApp:
    def __init__(self, store: Store, ingestor: Ingestor, verifier: TokenVerifier | None, allow: IPAllowList,
                 max_body: int, worker: int, nworkers: int, slot: int, syncer: WalSyncer | None = None):
        self.store = store
        self.ingestor = ingestor
        self.syncer = syncer
        self.verifier = verifier
        self.allow = allow
        self.max_body = max_body
        self.worker = worker
        self.slot = slot
        self.sibling_slots = [INGEST_SLOT_BASE + i for i in range(nworkers) if INGEST_SLOT_BASE + i != slot]
        self.limiter = trio.CapacityLimiter(1)
        self.procs = store.procs
        self._liveness: dict[int, tuple[bool, float]] = {}
        self.counters = store.counters[slot]
        self.scrape: promexport.ScrapeAccess | None = None  # who may GET /metrics (None: anyone)

    def load(self) -> tuple[int, int]:
        mine = int(self.procs[self.slot, PR_ACTIVE])
        others = [int(self.procs[s, PR_ACTIVE]) for s in self.sibling_slots if self._alive(int(self.procs[s, PR_PID]))]
        return mine, (min(others) if others else mine)

    def _alive(self, pid: int) -> bool:
        """A sibling's slot counts only while its process lives (a killed one leaves its pid behind)."""
        if not pid:
            return False
        now = time.monotonic()
        cached = self._liveness.get(pid)
        if cached and now - cached[1] < 0.5:
            return cached[0]
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        self._liveness[pid] = (alive, now)
        if len(self._liveness) > 64:
            self._liveness = {pid: (alive, now)}
        return alive

    def on_conn(self, delta: int) -> None:
        self.procs[self.slot, PR_ACTIVE] += delta

    async def handle(self, req: Request) -> Response:
        self.procs[self.slot, PR_REQUESTS] += 1
        path = req.path.rstrip("/") or "/"
        if path == "/api/healthz":
            return Response.json(200, {"status": "ok", "worker": self.worker, "pid": os.getpid()})
        if path == "/api/ws":
            return await _ws.upgrade(self, req)
        if path == "/metrics":
            return self.metrics(req)
        if path != "/api/write":
            return Response.error(404, f"no such endpoint {req.path!r} on the ingest port (POST /api/write)")
        t0 = time.perf_counter()
        resp = await self.write(req)
        self.store.observe(self.slot, HIST_INDEX["ingest_http"], time.perf_counter() - t0, len(req.body))
        return resp

    def metrics(self, req: Request) -> Response:
        """Prometheus text format: the metric store of the whole installation (all workers' slots summed)."""
        if req.method not in ("GET", "HEAD"):
            return Response.error(405, f"{req.method} not allowed on /metrics (use GET)")
        if self.scrape is not None:
            refused = self.scrape.refusal(req.peer, req.headers)
            if refused is not None:
                return Response.error(*refused)
        body = promexport.render(promexport.store_families(self.store))
        return Response(200, body, [("content-type", promexport.CONTENT_TYPE)])

    async def write(self, req: Request) -> Response:
        if req.method not in ("POST", "PUT"):
            return Response.error(405, f"{req.method} not allowed on /api/write (use POST)")
        if not self.allow.allows(req.peer):
            return Response.error(403, f"address {req.peer} is not in main.api-allowed-ips")
        if self.verifier is not None:
            token = token_from_headers(req.headers)
            if not token:
                self.counters[COUNTER_INDEX["auth_failures"]] += 1
                return Response.error(401, "missing JWT (send 'Authorization: Bearer <token>' or 'X-Auth-Token')")
            try:
                claims = self.verifier.verify(token)
            except AuthError as e:
                self.counters[COUNTER_INDEX["auth_failures"]] += 1
                return Response.error(401, str(e))
            if "api" not in claims.roles:
                self.counters[COUNTER_INDEX["auth_failures"]] += 1
                return Response.error(403, f"token of user {claims.user!r} lacks the 'api' role")
        precision = req.arg("precision")
        if precision is not None and precision not in ("s", "ms", "us", "ns"):
            return Response.error(400, f"precision={precision!r}: expected s, ms, us or ns")
        self.counters[COUNTER_INDEX["requests"]] += 1
        self.counters[COUNTER_INDEX["bytes_received"]] += len(req.body)
        try:
            result = await trio.to_thread.run_sync(
                self._ingest, req.body, req.headers.get("content-encoding"), req.arg("cluster"), precision,
                limiter=self.limiter)
        except _http.BodyTooLarge as e:
            return Response.error(413, str(e))
        except WalError as e:
            log.error("%s", e)
            return Response.error(503, f"points not made durable, retry: {e}")
        except ValueError as e:
            unsupported = str(e).startswith("unsupported Content-Encoding")
            return Response.error(415 if unsupported else 400, str(e))
        if self.syncer is not None and result.wal_seq:
            try:
                await self.syncer.wait_synced(result.wal_seq)
            except WalError as e:
                return Response.error(503, f"points not made durable, retry: {e}")
        doc = result.as_dict()
        if result.malformed:
            first = result.errors[0] if result.errors else None
            msg = f"{result.malformed} of {result.lines} lines malformed"
            if first:
                msg += f" (line {first['line']}: {first['error']})"
            return Response.error(400, msg + "; the valid lines were stored", **doc)
        return Response.json(200, {"status": "ok", **doc})

    def _ingest(self, body: bytes, encoding: str | None, cluster: str | None, precision: str | None):
        body = _http.decode_body(body, encoding, self.max_body)
        return self.ingestor.ingest(body, cluster, precision)

    async def main(self, listen_fd: int, tls: ssl.SSLContext | None = None) -> None:
        self.procs[self.slot, PR_PID] = os.getpid()
        self.procs[self.slot, PR_STARTED] = int(time.time())
        self.procs[self.slot, PR_ACTIVE] = 0
        self.procs[self.slot, PR_NATS_SEQ] = 0  # no JetStream batch yet (see cc/ingestd/_nats.py)
        sock = socket.socket(fileno=listen_fd)
        sock.setblocking(False)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        log.info("ingest worker %d serving on %s (%s)", self.worker, sock.getsockname(), "HTTPS" if tls else "HTTP")
        balancer = _http.AcceptBalancer(self.load) if self.sibling_slots else None
        try:
            await _http.serve(listener, self.handle, max_body=self.max_body, balancer=balancer,
                              on_conn=self.on_conn, tls=tls)
        finally:
            self.procs[self.slot, PR_ACTIVE] = 0
            self.procs[self.slot, PR_PID] = 0


def main(argv: list[str] | None = None) -> None:
    parser = proc.child_args("Ingest worker: accepts ClusterCockpit line protocol on /api/write.",
                             listen=True, worker=True)
    parser.add_argument("--tls-cert-fd", type=int, help="main.https-cert-file, opened by the supervisor")
    parser.add_argument("--tls-key-fd", type=int, help="main.https-key-file, opened by the supervisor")
    args = parser.parse_args(argv)
    cfg, instance = proc.load(args)
    logger = proc.setup_logging(f"ingest-{args.worker}")
    tls = None
    if cfg.ingest_tls:  # metric-store.ingest-tls: the web listener's certificate
        try:
            tls = server_context(read_pair(cfg.tls_cert, cfg.tls_key, args.tls_cert_fd, args.tls_key_fd),
                                 alpn=("http/1.1",))
        except TLSError as e:
            raise SystemExit(f"error: {e}") from None
    store = Store.attach(instance)
    verifier = None
    if not cfg.main.get("disable-authentication"):
        pub = cfg.secret("JWT_PUBLIC_KEY")
        if not pub:
            logger.error("JWT_PUBLIC_KEY is not set (in .env or the environment); refusing to accept "
                         "unauthenticated writes. Set it or main.disable-authentication=true.")
            raise SystemExit(2)
        verifier = TokenVerifier(load_public_key(pub))
    ms = cfg.metric_store
    wal = syncer = None
    if ms.wal_enabled:
        wal = WalWriter(wal_dir(ms.checkpoint_dir), store, args.slot, args.worker, sync=ms.wal_sync,
                        max_size=ms.max_wal_size)
        syncer = WalSyncer(wal, ms.wal_sync_interval)
    app = IngestApp(store, Ingestor(store, load_catalog(cfg), args.slot, wal), verifier,
                    IPAllowList(cfg.api_allowed_ips), ms.max_body_bytes, args.worker,
                    ms.effective_ingest_workers(), args.slot, syncer)
    app.scrape = promexport.ScrapeAccess(cfg.metrics_allowed_ips, verifier, app.allow)

    subscriber = None
    if cfg.nats is not None and ms.nats_subscriptions:
        from cc.ingestd._nats import NatsIngest

        subscriber = NatsIngest(app, cfg, instance, args.worker)

    async def run_app(nursery: trio.Nursery, shutdown: trio.Event) -> None:
        if syncer is not None:
            nursery.start_soon(syncer.run)
        nursery.start_soon(app.main, args.listen_fd, tls)
        if subscriber is not None:
            nursery.start_soon(subscriber.run)
        await shutdown.wait()
        if subscriber is not None:  # ack what was taken before the WAL closes (the rest is redelivered)
            await subscriber.drain(3.0)

    try:
        # Registering new series leaves freed parser and registry temporaries in the heap.
        proc.run(run_app, logger, heap_progress=lambda: app.ingestor.registered)
    finally:
        if wal is not None:
            wal.close()
