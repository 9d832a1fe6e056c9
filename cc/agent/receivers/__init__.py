"""Receivers by ``type`` (cc-metric-collector's receivers.json): ``http``, ``nats``, ``redfish``, ``ipmi``.

A receiver takes metrics from elsewhere (other agents, BMCs) and hands them to the
agent, which passes them through the router's message processing to every sink.
"""

from __future__ import annotations

from typing import Any

from cc.agent.collectors._base import AgentConfigError
from cc.agent.receivers._base import Emit, Receiver
from cc.agent.receivers.http import HttpReceiver
from cc.agent.receivers.ipmi import IpmiReceiver
from cc.agent.receivers.nats import NatsReceiver
from cc.agent.receivers.redfish import RedfishReceiver

__all__ = ["Receiver", "Emit", "make_receiver", "TYPES"]

TYPES: dict[str, type[Receiver]] = {"http": HttpReceiver, "nats": NatsReceiver, "redfish": RedfishReceiver,
                                    "ipmi": IpmiReceiver}


def make_receiver(name: str, cfg: Any) -> Receiver:
    if not isinstance(cfg, dict):
        raise AgentConfigError(f"receivers.{name}: expected an object with a 'type'")
    t = cfg.get("type")
    if t not in TYPES:
        raise AgentConfigError(f"receivers.{name}.type: expected one of {', '.join(TYPES)}, got {t!r}")
    return TYPES[t](name, cfg)
