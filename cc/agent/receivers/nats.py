"""``nats`` receiver: line protocol from a NATS subject, forwarded to the sinks.

cc-metric-collector's keys: ``address`` (default ``localhost``), ``port`` (default
``"4222"``), ``subject`` (older configurations: ``database``), ``user``/``password``,
``nkey_file``.  The connection goes through :mod:`cc.nats` (nats-py in its asyncio thread),
which reconnects forever and re-subscribes.  Timestamps are read by their magnitude (s, ms,
us or ns).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from cc.agent.lineproto import parse_lines
from cc.agent.natsopts import nats_settings, nats_subject
from cc.agent.receivers._base import Emit, Receiver, port_option


class NatsReceiver(Receiver):
    type = "nats"
    options = {"address", "port", "subject", "database", "user", "password", "nkey_file"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        address = self._str(cfg, "address", "localhost") or "localhost"
        address = address.removeprefix("nats://")
        port = port_option(cfg, "port", "4222", self.where)
        self.subject = nats_subject(cfg, self.where, "subscribe to")
        self.settings = nats_settings(cfg, self.where, address, port, "address")

    async def run(self, emit: Emit, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from cc.nats import NatsClient

        async with NatsClient(self.settings, name=f"cc-agent receiver {self.name}",
                              log=logging.getLogger(f"agent.receiver.{self.name}")) as nc:
            task_status.started()  # the agent runs while NATS is away; we subscribe once it is there
            await nc.wait_connected()
            sub = await nc.subscribe(self.subject)
            self.log.info("%s: subscribed to %r", self.where, self.subject)
            async for batch in sub:
                msgs = []
                for m in batch:
                    try:
                        got, errors = parse_lines(m.data.decode())
                    except UnicodeDecodeError:
                        got, errors = [], ["not UTF-8"]
                    msgs.extend(got)
                    if errors:
                        self.rejected_lines += len(errors)
                        self.log.warning("%s: %d bad line(s) on %s, e.g. %s", self.where, len(errors),
                                         m.subject, errors[0])
                self.deliver(emit, msgs)
