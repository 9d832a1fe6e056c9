"""``websocket`` sink: one persistent WebSocket to the ingest workers' ``/api/ws``.

Protocol (see ``cc/ingestd/_ws.py`` for the server side): each batch is one binary
message, a header line ``<seq>[ gzip]\\n`` followed by line protocol (gzip-compressed if
the header says so).  The server writes the points and then answers with a JSON text
message carrying the same ``seq``: ``"status": "ok"`` (stored), ``"error"`` (bad lines,
named by line number; the valid ones are stored, so the batch is not sent again) or
``"retry"`` (the server could not make the points durable; we reconnect and resend).

Up to ``max_inflight`` batches travel unacknowledged.  Lines stay in the buffer until
their batch is acknowledged, so after a broken connection -- an ingest worker killed,
a network blip -- everything unacknowledged is resent on the next connection.  A point
that arrives twice lands in the same slot of the metric store, so resending is harmless.

Options: ``url`` (``ws://host:8082/api/ws?cluster=NAME``), ``jwt``, ``gzip`` (default
true), ``batch_size`` (points per message, default 20000), ``max_inflight`` (default 8),
``buffer_size`` (default 500000), ``flush_delay``, ``connect_timeout`` (10s),
``ack_timeout`` (30s), ``retry_max_delay`` (30s), ``keepalive`` (ping when idle, 30s).
"""

from __future__ import annotations

import gzip
import time
from collections import deque
from typing import Any

import orjson
import trio
import trio_websocket

from cc.agent.collectors._base import AgentConfigError
from cc.agent.sinks._base import BufferedSink, duration_option


class _Reconnect(Exception):
    """The session must end; the message says why (logged, then reconnect after a pause)."""


_EXPECTED = (trio_websocket.HandshakeError, trio_websocket.ConnectionClosed, OSError, _Reconnect,
             trio.TooSlowError, trio.BrokenResourceError)


def _leaves(e: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[e]``."""
    if isinstance(e, BaseExceptionGroup):
        return [x for sub in e.exceptions for x in _leaves(sub)]
    return [e]


class WebsocketSink(BufferedSink):
    type = "websocket"
    options = {"url", "jwt", "gzip", "batch_size", "buffer_size", "max_inflight", "flush_delay",
               "connect_timeout", "ack_timeout", "retry_max_delay", "keepalive"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        self.url = self._url(cfg, ("ws://", "wss://"), "ws://host:8082/api/ws?cluster=NAME")
        self.headers: list[tuple[bytes, bytes]] = []
        jwt = self._jwt(cfg)
        if jwt is not None:
            self.headers.append((b"authorization", f"Bearer {jwt}".encode()))
        self.gzip = cfg.get("gzip", True)
        if not isinstance(self.gzip, bool):
            raise AgentConfigError(f"{self.where}.gzip: expected true or false")
        self._open_buffer(cfg, 20000)
        self.window = self._int(cfg, "max_inflight", 8)
        self.flush_delay = duration_option(cfg, "flush_delay", "0s", self.where)
        self.connect_timeout = duration_option(cfg, "connect_timeout", "10s", self.where, 0.01)
        self.ack_timeout = duration_option(cfg, "ack_timeout", "30s", self.where, 0.01)
        self.retry_max_delay = duration_option(cfg, "retry_max_delay", "30s", self.where, 0.01)
        self.keepalive = duration_option(cfg, "keepalive", "30s", self.where)
        self.seq = 0
        self.failures = 0  # failed sessions in a row
        self.connects = 0
        self.resent_points = 0
        self.acks = 0
        self.errors_reported = 0
        self.high_water = 0  # end of the furthest line ever sent, to count resent points
        self.inflight: deque[tuple[int, int, int, float]] = deque()  # (seq, start, end, sent at)
        self._room = trio.Event()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        delay = 0.0
        while True:
            try:
                async with trio_websocket.open_websocket_url(
                        self.url, extra_headers=self.headers, connect_timeout=self.connect_timeout,
                        disconnect_timeout=2.0, message_queue_size=64) as ws:
                    self.connects += 1
                    if self.connects > 1:
                        self.log.info("%s: connected again (connection #%d); resending %d unacknowledged points",
                                      self.where, self.connects, len(self.buffer))
                    delay, self.failures = 0.0, 0
                    await self._session(ws)
            except Exception as e:  # whatever ended the session: log, pause, reconnect, resend
                self.failures += 1
                k = self.failures
                if k & (k - 1) == 0:  # 1st, 2nd, 4th, 8th... failure in a row
                    self._complain(e)
            delay = min(self.retry_max_delay, max(0.1, delay * 2))
            await trio.sleep(delay)

    def _complain(self, e: Exception) -> None:
        leaves = _leaves(e)
        x = leaves[0]
        if isinstance(x, trio_websocket.ConnectionRejected):
            body = (x.body or b"").decode("utf-8", "replace")[:300]
            self.log.error("%s: %s refused the connection: %s %s; %d points buffered",
                           self.where, self.url, x.status_code, body, len(self.buffer))
        elif all(isinstance(x, _EXPECTED) for x in leaves):
            self.log.warning("%s: connection to %s lost: %s: %s; %d points buffered (attempt %d)",
                             self.where, self.url, type(x).__name__, x, len(self.buffer), self.failures)
        else:
            self.log.error("%s: session failed; reconnecting", self.where, exc_info=e)

    async def _session(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.inflight.clear()
        self.cursor = self.buffer.head  # resume: everything not acknowledged goes again
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sender, ws)
            nursery.start_soon(self._watchdog, ws)
            await self._receiver(ws)  # returns only by raising

    async def _sender(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            while len(self.inflight) >= self.window:
                if self._room.is_set():
                    self._room = trio.Event()
                await self._room.wait()
            await self.buffer.wait_beyond(self.cursor)
            if self.flush_delay and self.buffer.end - self.cursor < self.batch_size:
                await trio.sleep(self.flush_delay)
            start, lines = self.buffer.get(self.cursor, self.batch_size)
            if not lines:
                continue
            self.seq += 1
            end = start + len(lines)  # start > cursor if lines were dropped for lack of space
            if start < self.high_water:
                self.resent_points += min(end, self.high_water) - start
            self.high_water = max(self.high_water, end)
            body = ("\n".join(lines) + "\n").encode()
            if self.gzip and len(body) > 1 << 18:
                body = await trio.to_thread.run_sync(gzip.compress, body, 1)
            elif self.gzip:
                body = gzip.compress(body, 1)
            header = f"{self.seq}{' gzip' if self.gzip else ''}\n".encode()
            self.inflight.append((self.seq, start, end, time.monotonic()))
            self.cursor = end
            await ws.send_message(header + body)

    async def _receiver(self, ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            raw = await ws.get_message()
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise _Reconnect(f"unreadable answer from the server: {str(raw)[:200]!r}") from None
            seq = doc.get("seq")
            status = doc.get("status")
            if seq is None:
                raise _Reconnect(f"the server reports: {doc.get('error', doc)}")
            if not self.inflight or self.inflight[0][0] != seq:
                expected = self.inflight[0][0] if self.inflight else None
                raise _Reconnect(f"answer for batch {seq}, expected {expected}")
            _, start, end, _ = self.inflight[0]
            if status == "retry":
                raise _Reconnect(f"server asks to resend batch {seq}: {doc.get('error')}")
            if status == "error":
                self._report(doc, start)
            elif status != "ok":
                raise _Reconnect(f"unknown status {status!r} for batch {seq}")
            self.inflight.popleft()
            self.acks += 1
            self.sent_points += end - max(start, self.buffer.head)
            self.buffer.release(end)
            self._room.set()

    def _report(self, doc: dict, start: int) -> None:
        self.errors_reported += 1
        first = (doc.get("errors") or [{}])[0]
        line_text = ""
        if isinstance(first.get("line"), int):
            _, got = self.buffer.get(start + first["line"] - 1, 1)
            if got and start + first["line"] - 1 >= self.buffer.head:
                line_text = f" -- {got[0][:200]}"
        self.log.error("%s: server rejected lines of batch %s: %s%s", self.where, doc.get("seq"),
                       doc.get("error"), line_text)

    async def _watchdog(self, ws: trio_websocket.WebSocketConnection) -> None:
        idle_since = time.monotonic()
        while True:
            await trio.sleep(min(1.0, self.ack_timeout / 4))
            now = time.monotonic()
            if self.inflight:
                idle_since = now
                if now - self.inflight[0][3] > self.ack_timeout:
                    raise _Reconnect(f"no answer for batch {self.inflight[0][0]} within {self.ack_timeout:g} s")
            elif self.keepalive and now - idle_since > self.keepalive:
                idle_since = now
                with trio.fail_after(self.ack_timeout):
                    await ws.ping()
