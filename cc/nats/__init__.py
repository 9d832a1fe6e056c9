"""NATS for every process that talks it (ingest workers, web, agent, adapter, demo).

The client is nats-py, run on an asyncio loop in a dedicated thread and used from Trio
(:mod:`cc.nats._bridge`); settings and their validation are in :mod:`cc.nats._settings`;
cc-backend's event message format in :mod:`cc.nats._events`.

The bridge (and with it nats-py) is imported on first use only: every process reads the
``nats`` settings with the configuration, but only those that connect pay for the client.
"""

from __future__ import annotations

import importlib
from typing import Any

from cc.nats._settings import NatsConfigError, NatsSettings, check_seed_file, parse_nats, parse_servers

_LAZY = {
    **dict.fromkeys(("CLOSED", "CONNECTED", "CONNECTING", "DISCONNECTED", "AsyncioThread", "Msg", "NatsClient",
                     "NatsError", "PullConsumer", "Subscription", "probe"), "cc.nats._bridge"),
    **dict.fromkeys(("Event", "decode_events", "encode_event"), "cc.nats._events"),
    "StateReporter": "cc.nats._report",
}

__all__ = ["NatsConfigError", "NatsSettings", "check_seed_file", "parse_nats", "parse_servers", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'cc.nats' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
