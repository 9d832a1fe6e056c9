"""WebSocket ingest (``GET /api/ws``, upgraded): acknowledged line-protocol batches.

Why: an agent with one persistent connection pays the HTTP and TLS handshakes once,
can keep several batches in flight, and learns exactly which batches were stored, so
after a broken connection it resends only what was not acknowledged.

Handshake: same rules as ``POST /api/write`` (``main.api-allowed-ips``; a JWT with the
``api`` role in ``Authorization: Bearer`` or ``X-Auth-Token``; ``?cluster=`` and
``?precision=`` apply to every batch of the connection).  Refusals are plain HTTP answers
(401, 403, 400) before any upgrade.

Messages from the client (binary or text): a header line ``<seq>[ gzip]\\n``, then the
line-protocol body (gzip-compressed if the header says so).  ``seq`` is any non-negative
integer the client chooses; we echo it.  Each batch goes the same way as an HTTP write
(``IngestApp._ingest`` in a worker thread, the WAL append, the fsync wait), one batch at a
time per connection, and is answered once its points are durable (the next batch is
written meanwhile, so several can share one WAL fsync), in order, with a JSON text message:

* ``{"seq": N, "status": "ok", "lines": .., "written": .., ...}`` -- stored (same counters
  as the HTTP answer);
* ``{"seq": N, "status": "error", "error": "2 of 9 lines malformed (line 4: ...)",
  "errors": [{"line": 4, "error": ...}], ...}`` -- the valid lines are stored, the named
  ones never will be; do not resend;
* ``{"seq": N, "status": "retry", "error": ...}`` -- nothing acknowledged (e.g. the WAL
  could not be written); resend later;
* ``{"status": "error", "error": ...}`` without ``seq`` -- a message without a valid
  header; the connection is closed (code 1002).

Resending is harmless: a point lands in the slot of its timestep and overwrites what
is there.  A connection idle for ``IDLE_TIMEOUT`` is closed (code 1001; clients ping), and
so is one whose token expires (code 1008): a token is checked once, at the handshake.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

import orjson
import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

from cc.ingestd._http import BodyTooLarge, Request, Response
from cc.jwtauth import AuthError, token_from_headers
from cc.shm import COUNTER_INDEX, HIST_INDEX
from cc.wal import WalError

if TYPE_CHECKING:
    from cc.ingestd.app import IngestApp

log = logging.getLogger("ingest.ws")

IDLE_TIMEOUT = 600.0
QUEUE = 4          # batches read ahead of the one being written (TCP backpressure beyond that)
RECV_CHUNK = 1 << 18
CLOSE_GRACE = 2.0  # after our close frame, how long the peer has to answer it
_HEADER_RE = re.compile(rb"(\d{1,20})( gzip)?")


def _is_upgrade(req: Request) -> bool:
    conn = {t.strip().lower() for t in req.headers.get("connection", "").split(",")}
    return req.headers.get("upgrade", "").lower() == "websocket" and "upgrade" in conn


async def upgrade(app: IngestApp, req: Request) -> Response:
    """Check an upgrade request; the 101 answer carries the session to run on the connection."""
    if req.method != "GET":
        return Response.error(405, f"{req.method} not allowed on /api/ws (a WebSocket upgrade is a GET)")
    if not _is_upgrade(req):
        return Response(426, orjson.dumps({"status": "Upgrade Required", "error":
                                           "/api/ws speaks WebSocket only (send Upgrade: websocket)"}),
                        [("upgrade", "websocket"), ("content-type", "application/json")])
    if req.headers.get("sec-websocket-version") != "13":
        return Response(426, b'{"error": "WebSocket version 13 required"}',
                        [("sec-websocket-version", "13"), ("content-type", "application/json")])
    key = req.headers.get("sec-websocket-key", "")
    if not key:
        return Response.error(400, "missing Sec-WebSocket-Key header")
    if not app.allow.allows(req.peer):
        return Response.error(403, f"address {req.peer} is not in main.api-allowed-ips")
    expires = None
    if app.verifier is not None:
        denied, expires = _check_token(app, req)
        if denied is not None:
            return denied
    precision = req.arg("precision")
    if precision is not None and precision not in ("s", "ms", "us", "ns"):
        return Response.error(400, f"precision={precision!r}: expected s, ms, us or ns")
    headers = [("upgrade", "websocket"), ("connection", "Upgrade"),
               ("sec-websocket-accept", generate_accept_token(key.encode()).decode())]
    session = _Session(app, req.arg("cluster"), precision, req.peer, expires)
    return Response(101, b"", headers, upgrade=session.run)


def _check_token(app: IngestApp, req: Request) -> tuple[Response | None, float | None]:
    """(refusal, None) for a missing, invalid or role-less JWT (counted as for /api/write),
    else (None, the token's expiry): the connection ends when its token does."""
    denied, exp = _token_problem(app, req)
    if denied is not None:
        app.counters[COUNTER_INDEX["auth_failures"]] += 1
    return denied, exp


def _token_problem(app: IngestApp, req: Request) -> tuple[Response | None, float | None]:
    token = token_from_headers(req.headers)
    if not token:
        return Response.error(401, "missing JWT (send 'Authorization: Bearer <token>' or 'X-Auth-Token')"), None
    try:
        claims = app.verifier.verify(token)  # type: ignore[union-attr]
    except AuthError as e:
        return Response.error(401, str(e)), None
    if "api" not in claims.roles:
        return Response.error(403, f"token of user {claims.user!r} lacks the 'api' role"), None
    return None, float(claims.exp)


class _Session:
    """One upgraded connection: a reader task feeding batches, this task writing and answering."""

    def __init__(self, app: IngestApp, cluster: str | None, precision: str | None, peer: str,
                 expires: float | None = None):
        self.app = app
        self.expires = expires
        self.cluster = cluster
        self.precision = precision
        self.peer = peer
        self.ws = Connection(ConnectionType.SERVER)
        self.send_lock = trio.Lock()
        self.batches = 0

    async def run(self, stream: trio.SocketStream, initial: bytes) -> None:
        send, recv = trio.open_memory_channel[bytes](QUEUE)
        # Nothing may escape but cancellation: an exception here would end the whole worker.
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, stream, initial, send)
                if self.expires is not None:
                    nursery.start_soon(self._expire, stream, nursery.cancel_scope)
                await self._writer(stream, recv)
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away (or the writer stopped reading after a bad header)
        except* Exception as eg:
            log.error("websocket session from %s failed", self.peer, exc_info=eg)
        log.debug("websocket from %s closed after %d batches", self.peer, self.batches)

    async def _expire(self, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        """Close the connection when its token expires, as /api/write would refuse the next request."""
        await trio.sleep(max(0.0, self.expires - time.time()))  # type: ignore[operator]
        log.info("websocket from %s: token expired, closing", self.peer)
        await self._close(stream, 1008, "token expired; reconnect with a valid one")
        await trio.sleep(CLOSE_GRACE)
        scope.cancel()

    async def _send(self, stream: trio.SocketStream, event: object) -> None:
        if self.ws.state is not ConnectionState.OPEN and not isinstance(event, CloseConnection):
            return  # the peer is closing: answers can no longer be sent (it will resend)
        data = self.ws.send(event)  # type: ignore[arg-type]
        async with self.send_lock:
            await stream.send_all(data)

    async def _close(self, stream: trio.SocketStream, code: int, reason: str) -> None:
        if self.ws.state is ConnectionState.OPEN:
            await self._send(stream, CloseConnection(code=code, reason=reason))

    async def _reader(self, stream: trio.SocketStream, initial: bytes,
                      send: trio.MemorySendChannel[bytes]) -> None:
        limit = self.app.max_body + 64
        parts: list[bytes] = []
        size = 0
        async with send:
            if initial:
                self.ws.receive_data(initial)
            while True:
                for ev in self.ws.events():
                    if isinstance(ev, Message) and self.ws.state is ConnectionState.OPEN:
                        data = ev.data.encode() if isinstance(ev, TextMessage) else bytes(ev.data)
                        size += len(data)
                        if size > limit:
                            await self._close(stream, 1009, f"message exceeds {self.app.max_body} bytes")
                            return
                        parts.append(data)
                        if ev.message_finished:
                            await send.send(b"".join(parts))
                            parts, size = [], 0
                    elif isinstance(ev, Ping):
                        await self._send(stream, ev.response())
                    elif isinstance(ev, CloseConnection):
                        if self.ws.state is not ConnectionState.CLOSED:
                            await self._send(stream, ev.response())
                        return
                with trio.move_on_after(IDLE_TIMEOUT) as idle:
                    data = await stream.receive_some(RECV_CHUNK)
                if idle.cancelled_caught:
                    await self._close(stream, 1001, f"idle for {IDLE_TIMEOUT:g} s")
                    return
                if not data:
                    return
                self.ws.receive_data(data)

    async def _writer(self, stream: trio.SocketStream, recv: trio.MemoryReceiveChannel[bytes]) -> None:
        """Write batch after batch; answers go through ``_acker`` so the next batch is parsed and
        written while the previous one waits for its WAL fsync (which many then share)."""
        acks, ack_recv = trio.open_memory_channel[tuple[dict, int]](QUEUE)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._acker, stream, ack_recv)
            async with acks, recv:
                async for payload in recv:
                    head, nl, body = payload.partition(b"\n")
                    m = _HEADER_RE.fullmatch(head.rstrip(b"\r"))
                    if not nl or not m:
                        await acks.send(({"status": "error", "error":
                                          f"message {self.batches + 1}: expected a header line "
                                          f"'<seq>[ gzip]' before the line protocol, got {head[:40]!r}"}, -1))
                        return
                    self.batches += 1
                    await acks.send(await self._ingest(int(m.group(1)), body, "gzip" if m.group(2) else None))

    async def _acker(self, stream: trio.SocketStream, ack_recv: trio.MemoryReceiveChannel[tuple[dict, int]]) -> None:
        """Answer in order, each once its points are durable (``wal_seq`` -1: answer, then close)."""
        syncer = self.app.syncer
        async with ack_recv:
            async for doc, wal_seq in ack_recv:
                if wal_seq > 0 and syncer is not None:
                    try:
                        await syncer.wait_synced(wal_seq)
                    except WalError as e:
                        doc = {"seq": doc["seq"], "status": "retry", "error": f"points not made durable, resend: {e}"}
                await self._answer(stream, doc)
                if wal_seq < 0:
                    await self._close(stream, 1002, "bad batch header")
                    return

    async def _answer(self, stream: trio.SocketStream, doc: dict) -> None:
        await self._send(stream, TextMessage(data=orjson.dumps(doc).decode()))

    async def _ingest(self, seq: int, body: bytes, encoding: str | None) -> tuple[dict, int]:
        t0 = time.perf_counter()
        try:
            return await self._ingest_message(seq, body, encoding)
        finally:
            self.app.store.observe(self.app.slot, HIST_INDEX["ingest_ws"], time.perf_counter() - t0, len(body))

    async def _ingest_message(self, seq: int, body: bytes, encoding: str | None) -> tuple[dict, int]:
        """The path of ``POST /api/write``: parse and write in a thread, WAL append.  Returns the
        answer and the WAL record to wait for before sending it."""
        app = self.app
        app.counters[COUNTER_INDEX["requests"]] += 1
        app.counters[COUNTER_INDEX["bytes_received"]] += len(body)
        try:
            result = await trio.to_thread.run_sync(app._ingest, body, encoding, self.cluster, self.precision,
                                                   limiter=app.limiter)
        except BodyTooLarge as e:
            return {"seq": seq, "status": "error", "error": str(e)}, 0
        except WalError as e:
            log.error("%s", e)
            return {"seq": seq, "status": "retry", "error": f"points not made durable, resend: {e}"}, 0
        except ValueError as e:
            return {"seq": seq, "status": "error", "error": str(e)}, 0
        doc = {"seq": seq, "status": "ok", **result.as_dict()}
        if result.malformed:
            first = result.errors[0] if result.errors else None
            msg = f"{result.malformed} of {result.lines} lines malformed"
            if first:
                msg += f" (line {first['line']}: {first['error']})"
            doc["status"] = "error"
            doc["error"] = msg + "; the valid lines were stored"
        return doc, result.wal_seq
