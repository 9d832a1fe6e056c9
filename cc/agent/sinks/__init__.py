"""Sinks by ``type``: ``http``, ``websocket`` (alias ``ws``), ``nats``, ``stdout``, ``influxdb``, ``prometheus``."""

from __future__ import annotations

from typing import Any

from cc.agent.collectors._base import AgentConfigError
from cc.agent.sinks._base import LineBuffer, Sink
from cc.agent.sinks.http import HttpSink
from cc.agent.sinks.influx import InfluxSink
from cc.agent.sinks.nats import NatsSink
from cc.agent.sinks.prometheus import PrometheusSink
from cc.agent.sinks.stdout import StdoutSink
from cc.agent.sinks.ws import WebsocketSink

__all__ = ["Sink", "LineBuffer", "HttpSink", "NatsSink", "WebsocketSink", "StdoutSink", "InfluxSink", "PrometheusSink",
           "make_sink"]

TYPES: dict[str, type[Sink]] = {"http": HttpSink, "websocket": WebsocketSink, "ws": WebsocketSink,
                                "nats": NatsSink, "stdout": StdoutSink, "influxdb": InfluxSink,
                                "influxasync": InfluxSink,
                                "prometheus": PrometheusSink}


def make_sink(name: str, cfg: Any) -> Sink:
    if not isinstance(cfg, dict):
        raise AgentConfigError(f"sinks.{name}: expected an object with a 'type'")
    t = cfg.get("type")
    if t not in TYPES:
        raise AgentConfigError(f"sinks.{name}.type: expected one of {', '.join(TYPES)}, got {t!r}")
    return TYPES[t](name, cfg)
