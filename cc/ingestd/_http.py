"""A small HTTP/1.1 server for the ingest path (Trio + h11).

Why not hypercorn here: several ingest processes share one listening socket, and
we want the least busy process to take each new connection.  Owning the accept
loop makes that a few lines (see :class:`AcceptBalancer`); the ingest path needs
only POST bodies, keep-alive, gzip and hard size limits.
"""

from __future__ import annotations

import logging
import ssl
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11
import orjson
import trio

log = logging.getLogger("ingest.http")

IDLE_TIMEOUT = 75.0  # collectors keep connections 60 s idle by default
TLS_HANDSHAKE_TIMEOUT = 10.0
BODY_TIMEOUT = 120.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    peer: str

    def arg(self, name: str) -> str | None:
        v = self.query.get(name)
        return v[0] if v else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    # 101 only: takes over the connection (stream, bytes already read past the request)
    upgrade: Callable[[trio.SocketStream, bytes], Awaitable[None]] | None = None

    @classmethod
    def json(cls, status: int, doc: object) -> Response:
        return cls(status, orjson.dumps(doc), [("content-type", "application/json")])

    @classmethod
    def error(cls, status: int, message: str, **extra: object) -> Response:
        from http import HTTPStatus

        return cls.json(status, {"status": HTTPStatus(status).phrase, "error": message, **extra})


Handler = Callable[[Request], Awaitable[Response]]


class BodyTooLarge(Exception):
    pass


def decode_body(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding (gzip/deflate) without ever inflating past ``limit`` bytes."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return raw
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    d = zlib.decompressobj(wbits=47 if enc != "deflate" else 15)
    try:
        out = d.decompress(raw, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise BodyTooLarge(f"decompressed body exceeds {limit} bytes")
        out += d.flush()
    except zlib.error as e:
        raise ValueError(f"body is not valid {enc} data: {e}") from None
    if not d.eof:
        raise ValueError(f"truncated {enc} body")
    return out


class AcceptBalancer:
    """Decides whether this process should accept the next connection now.

    ``load()`` gives our open connections and the fewest any live sibling has.  A
    busier process stays out of ``accept()`` while a less busy sibling exists, so that
    sibling gets the next connection (the kernel would otherwise pick at random among
    the processes waiting in accept).  ``max_defer`` bounds the wait in case a sibling
    is alive but stuck.
    """

    def __init__(self, load: Callable[[], tuple[int, int]], max_defer: float = 1.0):
        self.load = load
        self.max_defer = max_defer

    async def wait_turn(self) -> None:
        deadline = trio.current_time() + self.max_defer
        while trio.current_time() < deadline:
            mine, least_other = self.load()
            if mine <= least_other:
                return
            await trio.sleep(0.002)


async def serve(listener: trio.SocketListener, handler: Handler, *, max_body: int,
                balancer: AcceptBalancer | None = None,
                on_conn: Callable[[int], None] | None = None, tls: ssl.SSLContext | None = None) -> None:
    """Accept and serve connections forever (until cancelled); with ``tls``, HTTPS (metric-store.ingest-tls)."""
    async with trio.open_nursery() as nursery:
        while True:
            if balancer is not None:
                await balancer.wait_turn()
            try:
                stream = await listener.accept()
            except OSError as e:  # e.g. EMFILE: back off instead of spinning
                log.warning("accept failed: %s", e)
                await trio.sleep(0.1)
                continue
            if on_conn:  # counted before the next accept, so siblings see it at once
                on_conn(+1)
            nursery.start_soon(_connection, stream, handler, max_body, on_conn, tls)


async def _connection(raw: trio.SocketStream, handler: Handler, max_body: int,
                      on_conn: Callable[[int], None] | None, tls: ssl.SSLContext | None = None) -> None:
    try:
        peer = raw.socket.getpeername()
        peer_s = peer[0] if isinstance(peer, tuple) else str(peer)
    except OSError:
        peer_s = "?"
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    stream: trio.abc.Stream = raw
    try:
        if tls is not None:  # the handshake runs here, per connection, never in the accept loop
            stream = trio.SSLStream(raw, tls, server_side=True, https_compatible=True)
            try:
                with trio.fail_after(TLS_HANDSHAKE_TIMEOUT):
                    await stream.do_handshake()
            except (ssl.SSLError, trio.BrokenResourceError, trio.TooSlowError) as e:
                log.info("TLS handshake with %s failed: %s", peer_s, e)
                await trio.aclose_forcefully(raw)
                return
        async with stream:
            while True:
                req = await _read_request(stream, conn, max_body, peer_s)
                if req is None:
                    return
                if isinstance(req, Response):
                    resp = req
                else:
                    try:
                        resp = await handler(req)
                    except Exception:
                        log.exception("handler failed for %s %s", req.method, req.path)
                        resp = Response.error(500, "internal error while handling the request")
                if resp.upgrade is not None:  # e.g. WebSocket (_ws.py): h11 steps aside
                    await stream.send_all(conn.send(h11.InformationalResponse(status_code=101, headers=resp.headers)))
                    await resp.upgrade(stream, conn.trailing_data[0])
                    return
                await _send_response(stream, conn, resp)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, trio.TooSlowError):
        return
    finally:
        if on_conn:
            on_conn(-1)


async def _next_event(stream: trio.SocketStream, conn: h11.Connection, timeout: float):
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            with trio.fail_after(timeout):
                data = await stream.receive_some(1 << 18)
            conn.receive_data(data)
            continue
        return event


async def _read_request(stream, conn: h11.Connection, max_body: int, peer: str) -> Request | Response | None:
    try:
        event = await _next_event(stream, conn, IDLE_TIMEOUT)
    except h11.RemoteProtocolError as e:
        return _protocol_error(conn, e)
    if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
        return None
    if not isinstance(event, h11.Request):
        return None
    headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_body:
        return Response.error(413, f"request body of {declared} bytes exceeds the limit of {max_body} bytes")
    if headers.get("expect", "").lower() == "100-continue":
        await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
    body = bytearray()
    while True:
        try:
            ev = await _next_event(stream, conn, BODY_TIMEOUT)
        except h11.RemoteProtocolError as e:
            return _protocol_error(conn, e)
        if isinstance(ev, h11.Data):
            body += ev.data
            if len(body) > max_body:
                return Response.error(413, f"request body exceeds the limit of {max_body} bytes")
        elif isinstance(ev, h11.EndOfMessage):
            break
        else:
            return None
    target = urlsplit(event.target.decode("latin-1"))
    return Request(event.method.decode(), target.path, parse_qs(target.query), headers, bytes(body), peer)


def _protocol_error(conn: h11.Connection, e: Exception) -> Response | None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return None
    return Response.error(400, f"malformed HTTP request: {e}")


async def _send_response(stream, conn: h11.Connection, resp: Response) -> None:
    headers = [("content-length", str(len(resp.body))), ("server", "cc-ingest"), *resp.headers]
    if conn.their_state is not h11.DONE:
        headers.append(("connection", "close"))
    data = conn.send(h11.Response(status_code=resp.status, headers=headers))
    if resp.body:
        data += conn.send(h11.Data(data=resp.body))
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)
