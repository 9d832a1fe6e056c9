"""The configuration the BMC-polling receivers (``redfish``, ``ipmi``) share.

Global keys apply to every device, ``client_config`` entries override them for the hosts
of their ``host_list`` (a list, or a hostlist expression such as ``n[1,2-4]``);
``endpoint`` may name the host as ``%h``.  Devices are polled every ``interval``, at most
``fanout`` at a time; one failing BMC is logged (1st, 2nd, 4th... failure) and never
stops the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import trio

from cc.adapter.slurmjson import SlurmFormatError, expand_hostlist
from cc.agent.collectors._base import AgentConfigError
from cc.agent.message import Message
from cc.agent.receivers._base import Emit, Receiver
from cc.agent.sinks._base import duration_option

__all__ = ["Device", "BmcReceiver", "describe"]


@dataclass
class Device:
    hostname: str
    endpoint: str
    username: str | None
    password: str | None
    exclude: frozenset[str]
    options: dict[str, Any] = field(default_factory=dict)
    failures: int = 0


def describe(e: BaseException) -> str:
    """``Type: message`` of ``e`` and its causes (httpx's connection errors carry theirs there)."""
    parts, seen = [], set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen and len(parts) < 4:
        seen.add(id(cur))
        text = str(cur).strip()
        parts.append(f"{type(cur).__name__}: {text}" if text else type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return " <- ".join(parts)


class BmcReceiver(Receiver):
    """Polls every configured device each ``interval``; subclasses read one device."""

    device_keys: set[str] = {"username", "password", "endpoint", "exclude_metrics"}
    default_fanout = 64

    def __init__(self, name: str, cfg: dict[str, Any]):
        self.options = self.options | self.device_keys | {"client_config", "interval", "fanout"}
        super().__init__(name, cfg)
        self.interval = duration_option(cfg, "interval", "30s", self.where, 0.05)
        self.fanout = cfg.get("fanout", self.default_fanout)
        if isinstance(self.fanout, bool) or not isinstance(self.fanout, int) or self.fanout < 1:
            raise AgentConfigError(f"{self.where}.fanout: expected a positive integer, got {self.fanout!r}")
        clients = cfg.get("client_config")
        if not isinstance(clients, list) or not clients:
            raise AgentConfigError(f"{self.where}.client_config: expected a list of {{host_list, ...}} objects")
        self.devices: list[Device] = []
        for i, cc in enumerate(clients):
            w = f"{self.where}.client_config[{i}]"
            if not isinstance(cc, dict):
                raise AgentConfigError(f"{w}: expected an object with host_list")
            for k in cc:
                if k not in self.device_keys | {"host_list"}:
                    raise AgentConfigError(f"{w}: unknown key {k!r} (known: {', '.join(sorted(self.device_keys | {'host_list'}))})")
            hosts = self._hosts(cc.get("host_list"), f"{w}.host_list")
            merged = {**{k: cfg[k] for k in self.device_keys if k in cfg}, **cc}
            endpoint = merged.get("endpoint")
            if not isinstance(endpoint, str) or not endpoint:
                raise AgentConfigError(f"{w}.endpoint: expected the device URL (global or per client, %h = host)")
            for key in ("username", "password"):
                if merged.get(key) is not None and not isinstance(merged[key], str):
                    raise AgentConfigError(f"{w}.{key}: expected a string")
            excl = merged.get("exclude_metrics", [])
            if not isinstance(excl, list) or not all(isinstance(x, str) for x in excl):
                raise AgentConfigError(f"{w}.exclude_metrics: expected a list of metric names")
            opts = self.device_options(merged, w)
            for h in hosts:
                self.devices.append(Device(h, endpoint.replace("%h", h), merged.get("username"),
                                           merged.get("password"), frozenset(excl), opts))

    def _hosts(self, v: Any, where: str) -> list[str]:
        if isinstance(v, str):
            try:
                hosts = expand_hostlist(v)
            except SlurmFormatError as e:
                raise AgentConfigError(f"{where}: {e}") from None
        elif isinstance(v, list) and all(isinstance(x, str) and x for x in v):
            hosts = list(v)
        else:
            raise AgentConfigError(f"{where}: expected a list of host names or a host list such as 'n[1-4]'")
        if not hosts:
            raise AgentConfigError(f"{where}: no hosts")
        return hosts

    def device_options(self, merged: dict[str, Any], where: str) -> dict[str, Any]:
        """Subclass hook: check and return the per-device options of ``merged``."""
        return {}

    async def read_device(self, dev: Device) -> list[Message]:
        raise NotImplementedError

    async def setup(self) -> None:
        """Subclass hook, run once before the first poll (e.g. open an HTTP client)."""

    async def teardown(self) -> None:
        """Subclass hook, run when the receiver stops."""

    async def poll(self, emit: Emit) -> None:
        limiter = trio.CapacityLimiter(self.fanout)

        async def one(dev: Device) -> None:
            async with limiter:
                try:
                    msgs = await self.read_device(dev)
                except Exception as e:  # one broken BMC must not stop the others
                    dev.failures += 1
                    if dev.failures & (dev.failures - 1) == 0:
                        self.log.error("%s: reading %s (%s) failed (%d times in a row): %s", self.where,
                                       dev.hostname, dev.endpoint, dev.failures, describe(e))
                    return
                if dev.failures:
                    self.log.info("%s: %s answers again after %d failures", self.where, dev.hostname, dev.failures)
                dev.failures = 0
                self.deliver(emit, [m for m in msgs if m.name not in dev.exclude])

        async with trio.open_nursery() as n:
            for dev in self.devices:
                n.start_soon(one, dev)

    async def run(self, emit: Emit, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.setup()
        try:
            task_status.started()
            while True:
                t0 = time.monotonic()
                await self.poll(emit)
                await trio.sleep(max(0.0, self.interval - (time.monotonic() - t0)))
        finally:
            with trio.CancelScope(shield=True):
                await self.teardown()
