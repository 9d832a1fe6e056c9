"""``nats`` receiver: line protocol from a NATS subject, forwarded to the sinks.

cc-metric-collector's keys: ``address`` (default ``localhost``), ``port`` (default
``"4222"``), ``subject`` (older configurations: ``database``), ``user``/``password``,
``nkey_file``.  The connection goes through :mod:`cc.nats` (nats-py in its asyncio thread),
which reconnects forever and re-subscribes.  Timestamps are read by their magnitude (s, ms,
us or ns).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.lineproto import parse_lines
from cc.agent.receivers._base import Emit, Receiver, port_option
from cc.nats import NatsConfigError, NatsSettings, parse_servers


class NatsReceiver(Receiver):
    type = "nats"
    options = {"address", "port", "subject", "database", "user", "password", "nkey_file"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        address = self._str(cfg, "address", "localhost") or "localhost"
        address = address.removeprefix("nats://")
        port = port_option(cfg, "port", "4222", self.where)
        subject = cfg.get("subject", cfg.get("database"))
        if not isinstance(subject, str) or not subject or " " in subject:
            raise AgentConfigError(f"{self.where}.subject: the subject to subscribe to is required "
                                   "(older configurations call it 'database')")
        self.subject = subject
        try:
            servers = parse_servers(f"nats://{address}:{port}", f"{self.where}.address/port")
        except NatsConfigError as e:
            raise AgentConfigError(str(e)) from None
        user, password = cfg.get("user") or None, cfg.get("password") or None
        if bool(user) != bool(password):
            raise AgentConfigError(f"{self.where}: user and password go together")
        seed = None
        if cfg.get("nkey_file"):
            seed = Path(str(cfg["nkey_file"]))
            if not seed.is_file():
                raise AgentConfigError(f"{self.where}.nkey_file: {seed} does not exist")
        self.settings = NatsSettings(servers, user if not seed else None, password if not seed else None,
                                     None, seed, self.where)

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
