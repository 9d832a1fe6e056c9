"""``nats`` sink: line protocol published on a NATS subject (cc-metric-collector's nats sink).

Options as upstream: ``host``, ``port`` (default ``"4222"``, string or number), ``subject``
(or ``database``, the name cc-lib's documentation uses), ``user``/``password``, ``nkey_file``
(a ``.creds`` file, as upstream, or a bare nkey seed), ``flush_delay`` (default 5s: how long
lines may wait to be batched), ``precision``; plus, as the http sink, ``batch_size`` (lines
per message, default 5000: messages stay below NATS's default 1 MB payload limit) and
``buffer_size`` (lines kept while NATS is away, default 500000).

No loss while the server is away: lines stay in the buffer until a flush (PING/PONG) has
confirmed that the server received the messages carrying them; while disconnected nothing
is published, and after the reconnection everything unconfirmed is published again (a
repeated point overwrites its slot).  Only a full buffer drops the oldest lines, logged.
Core NATS has no end-to-end acknowledgement: a server that received a message delivers it
to the subscribers present (or to a JetStream stream capturing the subject).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.natsopts import nats_settings, nats_subject
from cc.agent.sinks._base import BufferedSink, duration_option

FLUSH_TIMEOUT = 5.0


class NatsSink(BufferedSink):
    type = "nats"
    options = {"host", "port", "subject", "database", "user", "password", "nkey_file", "flush_delay",
               "batch_size", "buffer_size", "retry_max_delay"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        host = cfg.get("host")
        if not isinstance(host, str) or not host:
            raise AgentConfigError(f"{self.where}.host: the NATS server's host name is required")
        port = str(cfg.get("port", "4222"))
        self.subject = nats_subject(cfg, self.where, "publish on")
        self.settings = nats_settings(cfg, self.where, host, port, "host")
        self.flush_delay = duration_option(cfg, "flush_delay", "5s", self.where)
        self.retry_max_delay = duration_option(cfg, "retry_max_delay", "10s", self.where, 0.01)
        self._open_buffer(cfg, 5000)
        self.failures = 0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from cc.nats import NatsClient, NatsError

        async with NatsClient(self.settings, name=f"cc-agent {self.name}",
                              log=logging.getLogger(f"agent.sink.{self.name}")) as nc:
            task_status.started()
            delay = 0.0
            while True:
                await self.buffer.wait_beyond(self.buffer.head)
                if self.flush_delay and len(self.buffer) < self.batch_size:
                    with trio.move_on_after(self.flush_delay):
                        while len(self.buffer) < self.batch_size:
                            await self.buffer.wait_beyond(self.buffer.end)
                await nc.wait_connected()
                start, lines = self.buffer.get(self.buffer.head, 20 * self.batch_size)
                if not lines:
                    continue
                msgs = [("\n".join(lines[k:k + self.batch_size]) + "\n").encode()
                        for k in range(0, len(lines), self.batch_size)]
                try:
                    await nc.publish_many(self.subject, msgs, flush_timeout=FLUSH_TIMEOUT)
                except NatsError as e:
                    self.failures += 1
                    k = self.failures
                    if k & (k - 1) == 0:
                        self.log.error("%s: %s; keeping %d points buffered (%d in the buffer), retry #%d",
                                       self.where, e, len(lines), len(self.buffer), k)
                    delay = min(self.retry_max_delay, max(0.2, delay * 2))
                    await trio.sleep(delay)
                    continue
                self.buffer.release(start + len(lines))
                self.sent_points += len(lines)
                if self.failures:
                    self.log.info("%s: delivering again after %d failed attempts", self.where, self.failures)
                self.failures, delay = 0, 0.0
