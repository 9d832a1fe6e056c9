"""What receivers share: the configuration check, per-receiver message processing, hand-off."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.message import Message
from cc.agent.router import MessageProcessor, RouterConfigError

__all__ = ["Receiver", "Emit", "port_option"]

Emit = Callable[[list[Message]], None]


def port_option(cfg: dict, key: str, default: str, where: str) -> int:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not str(v).isdigit() or not 0 <= int(str(v)) < 65536:
        raise AgentConfigError(f"{where}.{key}: expected a port number such as \"{default}\", got {v!r}")
    return int(str(v))


class Receiver:
    type: ClassVar[str] = ""
    options: ClassVar[set[str]] = set()
    common: ClassVar[set[str]] = {"type", "process_messages"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        self.name = name
        self.where = f"receivers.{name}"
        self.log = logging.getLogger(f"agent.receiver.{name}")
        for k in cfg:
            if k not in self.options | self.common:
                known = ", ".join(sorted(self.options | self.common))
                raise AgentConfigError(f"{self.where}: unknown key {k!r} for a {self.type} receiver (known: {known})")
        self.processor: MessageProcessor | None = None
        if cfg.get("process_messages"):
            try:
                self.processor = MessageProcessor(cfg["process_messages"], f"{self.where}.process_messages")
            except RouterConfigError as e:
                raise AgentConfigError(str(e)) from None
        self.received = 0
        self.rejected_lines = 0

    def _str(self, cfg: dict, key: str, default: str | None = None, required: bool = False) -> str | None:
        v = cfg.get(key, default)
        if v is None and not required:
            return None
        if not isinstance(v, str) or (required and not v):
            raise AgentConfigError(f"{self.where}.{key}: expected a string, got {v!r}")
        return v

    def deliver(self, emit: Emit, msgs: list[Message]) -> None:
        if self.processor is not None:
            msgs = self.processor.process_many(msgs)
        if msgs:
            self.received += len(msgs)
            emit(msgs)

    async def run(self, emit: Emit, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive until cancelled, handing each batch to ``emit`` (in the Trio thread)."""
        raise NotImplementedError
