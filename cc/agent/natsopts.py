"""cc-metric-collector's NATS keys, shared by the ``nats`` sink and the ``nats`` receiver.

Both take ``subject`` (older configurations and cc-lib's documentation: ``database``),
``user``/``password`` and ``nkey_file``; they differ only in how the server is named
(the sink's ``host``, the receiver's ``address``) and what the subject is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cc.agent.collectors._base import AgentConfigError
from cc.nats import NatsConfigError, NatsSettings, parse_servers


def nats_subject(cfg: dict[str, Any], where: str, purpose: str) -> str:
    subject = cfg.get("subject", cfg.get("database"))
    if not isinstance(subject, str) or not subject or " " in subject:
        raise AgentConfigError(f"{where}.subject: the subject to {purpose} is required "
                               "(older configurations call it 'database')")
    return subject


def nats_settings(cfg: dict[str, Any], where: str, host: str, port: str, host_key: str) -> NatsSettings:
    """Connection settings of ``nats://host:port`` with the component's credentials (keys named in errors)."""
    try:
        servers = parse_servers(f"nats://{host}:{port}", f"{where}.{host_key}/port")
    except NatsConfigError as e:
        raise AgentConfigError(str(e)) from None
    user, password = cfg.get("user") or None, cfg.get("password") or None
    if bool(user) != bool(password):
        raise AgentConfigError(f"{where}: user and password go together")
    seed = None
    if cfg.get("nkey_file"):
        seed = Path(str(cfg["nkey_file"]))
        if not seed.is_file():
            raise AgentConfigError(f"{where}.nkey_file: {seed} does not exist")
    return NatsSettings(servers, user if not seed else None, password if not seed else None, None, seed, where)
