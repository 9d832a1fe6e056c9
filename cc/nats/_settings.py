"""How to reach a NATS server: cc-backend's ``nats`` keys, validated with errors naming the key.

``address`` (``nats://host:port``, several comma-separated for a NATS cluster), ``username``
/ ``password``, ``creds-file-path`` (a ``.creds`` file: user JWT + nkey seed, as cc-lib) and
ours, ``nkey-seed-file`` (a file holding only an nkey seed ``SU...``, for servers configured
with plain nkey authentication).  The same object serves the agent's sink and the Slurm
adapter, whose keys are mapped onto it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HOSTPORT_RE = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$")
NATS_KEYS = ("address", "username", "password", "creds-file-path", "nkey-seed-file")


class NatsConfigError(ValueError):
    """A NATS setting is wrong; the message names the key."""


@dataclass(frozen=True)
class NatsSettings:
    servers: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    creds_file: Path | None = None
    nkey_seed_file: Path | None = None
    where: str = "nats"  # config key prefix, for messages
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def address(self) -> str:
        return ",".join(self.servers)

    def key(self, name: str) -> str:
        """The config key a problem with ``name`` (address, username, ...) should name."""
        return f"{self.where}.{name}"

    def auth_keys(self) -> str:
        if self.creds_file:
            return self.key("creds-file-path")
        if self.nkey_seed_file:
            return self.key("nkey-seed-file")
        if self.username:
            return f"{self.key('username')}/{self.key('password')}"
        return f"{self.where} (no credentials configured)"


def parse_servers(address: Any, where: str) -> tuple[str, ...]:
    """``"nats://a:4222, b:4223"`` -> ``("nats://a:4222", "nats://b:4223")``; NatsConfigError naming ``where``."""
    if not isinstance(address, str) or not address.strip():
        raise NatsConfigError(f"{where}: expected 'nats://HOST:PORT' (several comma-separated), got {address!r}")
    out = []
    for part in address.split(","):
        part = part.strip()
        scheme, sep, rest = part.partition("://")
        if not sep:
            scheme, rest = "nats", part
        if scheme != "nats":
            raise NatsConfigError(f"{where}: scheme {scheme!r} in {part!r} is not supported (use nats://HOST:PORT; "
                                  "TLS is not implemented)")
        if "@" in rest:
            raise NatsConfigError(f"{where}: credentials in the URL {part!r} are not supported; "
                                  "use the username/password keys")
        m = _HOSTPORT_RE.match(rest)
        if not m or (m.group(1) and not 0 < int(m.group(1)) < 65536):
            raise NatsConfigError(f"{where}: expected nats://HOST:PORT, got {part!r}")
        out.append(f"nats://{rest if m.group(1) else rest + ':4222'}")
    return tuple(out)


def _readable(path: Any, key: str, base: Path | None) -> Path:
    if not isinstance(path, str) or not path:
        raise NatsConfigError(f"{key}: expected a file path, got {path!r}")
    p = Path(path)
    if not p.is_absolute() and base is not None:
        p = (base / p).resolve()
    if not p.is_file():
        raise NatsConfigError(f"{key}: {p} does not exist or is not a file")
    if not os.access(p, os.R_OK):
        raise NatsConfigError(f"{key}: {p} is not readable")
    return p


def check_seed_file(path: Path, key: str) -> None:
    """An nkey seed file holds one user seed (``SU...``); say so instead of failing at connect."""
    text = path.read_text(errors="replace").strip()
    if not text.startswith("SU") or len(text.split()) != 1:
        raise NatsConfigError(f"{key}: {path} does not hold an nkey user seed (one line starting with 'SU')")


def is_creds_file(path: Path) -> bool:
    """A ``.creds`` file (user JWT + seed) rather than a bare seed."""
    try:
        return "BEGIN NATS USER JWT" in path.read_text(errors="replace")
    except OSError:
        return False


def parse_nats(raw: Any, *, where: str = "nats", base: Path | None = None) -> NatsSettings:
    """Validate the top-level ``nats`` object of config.json."""
    if not isinstance(raw, dict):
        raise NatsConfigError(f"{where}: expected an object with 'address', got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(NATS_KEYS))
    if unknown:
        raise NatsConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(NATS_KEYS)})")
    if "address" not in raw:
        raise NatsConfigError(f"{where}.address is required (e.g. 'nats://127.0.0.1:4222')")
    servers = parse_servers(raw["address"], f"{where}.address")
    user, password = raw.get("username") or None, raw.get("password") or None
    for k, v in (("username", user), ("password", password)):
        if v is not None and not isinstance(v, str):
            raise NatsConfigError(f"{where}.{k}: expected a string")
    if bool(user) != bool(password):
        raise NatsConfigError(f"{where}.username and {where}.password: set both or neither")
    creds = seed = None
    if raw.get("creds-file-path"):
        creds = _readable(raw["creds-file-path"], f"{where}.creds-file-path", base)
    if raw.get("nkey-seed-file"):
        seed = _readable(raw["nkey-seed-file"], f"{where}.nkey-seed-file", base)
        check_seed_file(seed, f"{where}.nkey-seed-file")
    if creds and seed:
        raise NatsConfigError(f"{where}.creds-file-path and {where}.nkey-seed-file: set only one "
                              "(a .creds file already holds the nkey seed)")
    return NatsSettings(servers, user, password, creds, seed, where)
