"""The adapter's configuration file: cc-slurm-adapter's keys, defaults and paths.

A config written for ClusterCockpit's cc-slurm-adapter works unchanged (including its
``nats*`` keys, see :mod:`cc.adapter.natspub`), so sites can swap one adapter for the other.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

DEFAULT_CONFIG_PATH = "/etc/cc-slurm-adapter/config.json"



class AdapterConfigError(Exception):
    """The adapter's configuration is missing, unreadable or has a wrong value (message names it)."""


@dataclass
class AdapterConfig:
    cc_rest_url: str = ""
    cc_rest_jwt: str = ""
    pid_file_path: str = "/run/cc-slurm-adapter/daemon.pid"
    prep_sock_listen_path: str = "/run/cc-slurm-adapter/daemon.sock"
    prep_sock_connect_path: str = "/run/cc-slurm-adapter/daemon.sock"
    last_run_path: str = "/var/lib/cc-slurm-adapter/lastrun"
    slurm_poll_interval: float = 60
    slurm_query_delay: float = 1
    slurm_query_max_span: float = 7 * 24 * 3600
    slurm_max_retries: int = 10
    slurm_max_concurrent: int = 10
    cc_poll_interval: float = 6 * 3600
    cc_rest_submit_jobs: bool = True
    gpu_pci_addrs: list[tuple[re.Pattern[str], list[str]]] = field(default_factory=list)
    ignore_hosts: re.Pattern[str] | None = None
    http_timeout: float = 30
    nats_server: str = ""
    nats_port: int = 4222
    nats_subject: str = "jobs"
    nats_user: str = ""
    nats_password: str = ""
    nats_creds_file: str = ""
    nats_nkey_seed_file: str = ""
    nats_node_state_subject: str = ""  # ours: node states over NATS instead of POST /api/nodestate/
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def pci_addresses(self, hostname: str) -> list[str] | None:
        """The ordered GPU PCI addresses of a host: the first ``gpuPciAddrs`` regex that matches wins."""
        for rx, addrs in self.gpu_pci_addrs:
            if rx.search(hostname):
                return addrs
        return None


# key -> (attribute, kind); kind: str, pos (number > 0), nonneg (number >= 0), int, bool
_KEYS: dict[str, tuple[str, str]] = {
    "ccRestUrl": ("cc_rest_url", "str"),
    "ccRestJwt": ("cc_rest_jwt", "str"),
    "pidFilePath": ("pid_file_path", "str"),
    "prepSockListenPath": ("prep_sock_listen_path", "str"),
    "prepSockConnectPath": ("prep_sock_connect_path", "str"),
    "lastRunPath": ("last_run_path", "str"),
    "slurmPollInterval": ("slurm_poll_interval", "pos"),
    "slurmQueryDelay": ("slurm_query_delay", "pos"),
    "slurmQueryMaxSpan": ("slurm_query_max_span", "pos"),
    "slurmMaxRetries": ("slurm_max_retries", "int"),
    "slurmMaxConcurrent": ("slurm_max_concurrent", "int"),
    "ccPollInterval": ("cc_poll_interval", "pos"),
    "ccRestSubmitJobs": ("cc_rest_submit_jobs", "bool"),
    "ccRestTimeout": ("http_timeout", "pos"),
    "natsServer": ("nats_server", "str"),
    "natsPort": ("nats_port", "int"),
    "natsSubject": ("nats_subject", "str"),
    "natsUser": ("nats_user", "str"),
    "natsPassword": ("nats_password", "str"),
    "natsCredsFile": ("nats_creds_file", "str"),
    "natsNKeySeedFile": ("nats_nkey_seed_file", "str"),
    "natsNodeStateSubject": ("nats_node_state_subject", "str"),
}


def _compile(pattern: Any, where: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise AdapterConfigError(f"{where}: expected a regular expression string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise AdapterConfigError(f"{where}: invalid regular expression {pattern!r}: {e}") from None


def parse_config(raw: Any, *, path: Path | None = None, daemon: bool = True) -> AdapterConfig:
    """Validate a parsed config document; ``daemon`` requires the cc-backend URL and token."""
    where = str(path) if path else "config"
    if not isinstance(raw, dict):
        raise AdapterConfigError(f"{where}: top level must be a JSON object")
    cfg = AdapterConfig(path=path)
    for key, value in raw.items():
        if key in _KEYS:
            attr, kind = _KEYS[key]
            setattr(cfg, attr, _typed(value, kind, f"{where}: '{key}'"))
        elif key == "gpuPciAddrs":
            if not isinstance(value, dict):
                raise AdapterConfigError(f"{where}: 'gpuPciAddrs' must be an object {{hostname regex: [PCI addresses]}}")
            for rx, addrs in value.items():
                if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
                    raise AdapterConfigError(f"{where}: 'gpuPciAddrs' entry {rx!r} must be a list of PCI address strings")
                cfg.gpu_pci_addrs.append((_compile(rx, f"{where}: 'gpuPciAddrs' key"), list(addrs)))
        elif key == "ignoreHosts":
            cfg.ignore_hosts = _compile(value, f"{where}: 'ignoreHosts'") if value else None
        elif key == "ipcSockPath":
            raise AdapterConfigError(f"{where}: 'ipcSockPath' was replaced by 'prepSockListenPath' and "
                                     "'prepSockConnectPath'")
        else:
            cfg.warnings.append(f"{where}: unknown key {key!r} ignored")
    cfg.cc_rest_url = cfg.cc_rest_url.rstrip("/")
    if cfg.slurm_max_retries < 0:
        raise AdapterConfigError(f"{where}: 'slurmMaxRetries' must be >= 0, got {cfg.slurm_max_retries}")
    if cfg.slurm_max_concurrent < 1:
        raise AdapterConfigError(f"{where}: 'slurmMaxConcurrent' must be >= 1, got {cfg.slurm_max_concurrent}")
    for attr, key in (("prep_sock_listen_path", "prepSockListenPath"), ("prep_sock_connect_path", "prepSockConnectPath")):
        try:
            parse_sock_addr(getattr(cfg, attr))
        except ValueError as e:
            raise AdapterConfigError(f"{where}: '{key}': {e}") from None
    if daemon:
        if not cfg.cc_rest_url:
            raise AdapterConfigError(f"{where}: 'ccRestUrl' is required (the cc-backend URL, e.g. https://cc.example)")
        if not re.match(r"^https?://[^/]+", cfg.cc_rest_url):
            raise AdapterConfigError(f"{where}: 'ccRestUrl' must start with http:// or https://, got {cfg.cc_rest_url!r}")
        if not cfg.cc_rest_jwt:
            raise AdapterConfigError(f"{where}: 'ccRestJwt' is required (a token with the 'api' role)")
        if not cfg.cc_rest_submit_jobs and not cfg.nats_server:
            raise AdapterConfigError(f"{where}: 'ccRestSubmitJobs' is false and 'natsServer' is not set: either "
                                     "NATS or REST job submission must be enabled")
    _check_nats(cfg, where)
    return cfg


def _check_nats(cfg: AdapterConfig, where: str) -> None:
    from cc.nats import NatsConfigError, check_seed_file, parse_servers

    if not cfg.nats_server:
        for key, v in (("natsNodeStateSubject", cfg.nats_node_state_subject), ("natsUser", cfg.nats_user),
                       ("natsCredsFile", cfg.nats_creds_file), ("natsNKeySeedFile", cfg.nats_nkey_seed_file)):
            if v:
                raise AdapterConfigError(f"{where}: '{key}' is set but 'natsServer' is not")
        return
    if not 0 < cfg.nats_port < 65536:
        raise AdapterConfigError(f"{where}: 'natsPort' must be a port number, got {cfg.nats_port}")
    try:
        parse_servers(f"{cfg.nats_server}:{cfg.nats_port}", f"{where}: 'natsServer'")
    except NatsConfigError as e:
        raise AdapterConfigError(str(e)) from None
    for key, v in (("natsSubject", cfg.nats_subject), ("natsNodeStateSubject", cfg.nats_node_state_subject)):
        if v and (" " in v or v.startswith(".") or v.endswith(".")):
            raise AdapterConfigError(f"{where}: '{key}' is not a NATS subject: {v!r}")
    if not cfg.nats_subject:
        raise AdapterConfigError(f"{where}: 'natsSubject' must not be empty")
    if bool(cfg.nats_user) != bool(cfg.nats_password):
        raise AdapterConfigError(f"{where}: 'natsUser' and 'natsPassword' go together")
    for key, v in (("natsCredsFile", cfg.nats_creds_file), ("natsNKeySeedFile", cfg.nats_nkey_seed_file)):
        if v and not Path(v).is_file():
            raise AdapterConfigError(f"{where}: '{key}': {v} does not exist")
    if cfg.nats_nkey_seed_file:
        try:
            check_seed_file(Path(cfg.nats_nkey_seed_file), f"{where}: 'natsNKeySeedFile'")
        except NatsConfigError as e:
            raise AdapterConfigError(str(e)) from None


def _typed(value: Any, kind: str, where: str) -> Any:
    if kind == "str":
        if not isinstance(value, str):
            raise AdapterConfigError(f"{where} must be a string, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise AdapterConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AdapterConfigError(f"{where} must be a number, got {value!r}")
    if kind == "int":
        if int(value) != value:
            raise AdapterConfigError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if value <= 0:
        raise AdapterConfigError(f"{where} must be > 0 (seconds), got {value!r}")
    return float(value)


def load_adapter_config(path: str | None, *, daemon: bool = True) -> AdapterConfig:
    """Read the config file; without ``-config`` a missing default file means all defaults (hook mode)."""
    explicit = path is not None
    p = Path(path or DEFAULT_CONFIG_PATH)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        if explicit or daemon:
            raise AdapterConfigError(f"{p}: configuration file not found") from None
        return parse_config({}, daemon=False)
    except OSError as e:
        raise AdapterConfigError(f"{p}: cannot read configuration: {e.strerror}") from None
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise AdapterConfigError(f"{p}: invalid JSON: {e}") from None
    return parse_config(raw, path=p, daemon=daemon)


def parse_sock_addr(s: str) -> tuple[str, Any]:
    """``/path`` or ``unix:/path`` -> ("unix", path); ``tcp:HOST:PORT`` -> ("tcp", (host, port)).

    The same address forms cc-slurm-adapter accepts (``tcp::12345`` = all interfaces).
    """
    if not s:
        raise ValueError("socket address is empty")
    kind, sep, rest = s.partition(":")
    if not sep or kind.startswith("/") or kind.startswith("."):
        return "unix", s
    kind = kind.lower()
    if kind == "unix":
        if not rest:
            raise ValueError(f"unix socket path missing in {s!r}")
        return "unix", rest
    if kind == "tcp":
        host, sep2, port = rest.rpartition(":")
        if not sep2 or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected tcp:HOST:PORT, got {s!r}")
        return "tcp", (host.strip("[]"), int(port))
    raise ValueError(f"unknown socket type {kind!r} in {s!r} (use a path, unix:PATH or tcp:HOST:PORT)")


def log_warnings(cfg: AdapterConfig, log: logging.Logger) -> None:
    for w in cfg.warnings:
        log.warning("%s", w)
