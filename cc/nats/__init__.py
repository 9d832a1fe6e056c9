"""NATS for every process that talks it (ingest workers, web, agent, adapter, demo).

The client is nats-py, run on an asyncio loop in a dedicated thread and used from Trio
(:mod:`cc.nats._bridge`); settings and their validation are in :mod:`cc.nats._settings`;
cc-backend's event message format in :mod:`cc.nats._events`.
"""

from cc.nats._bridge import (
    CLOSED,
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    AsyncioThread,
    Msg,
    NatsClient,
    NatsError,
    PullConsumer,
    Subscription,
    probe,
)
from cc.nats._events import Event, decode_events, encode_event
from cc.nats._settings import NatsConfigError, NatsSettings, check_seed_file, parse_nats, parse_servers

__all__ = [
    "CLOSED", "CONNECTED", "CONNECTING", "DISCONNECTED", "AsyncioThread", "Event", "Msg", "NatsClient",
    "NatsConfigError", "NatsError", "NatsSettings", "PullConsumer", "Subscription", "check_seed_file",
    "decode_events", "encode_event", "parse_nats", "parse_servers", "probe",
]
