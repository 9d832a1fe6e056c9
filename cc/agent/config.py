"""``agent.json``: cc-metric-collector's configuration layout, read and checked up front.

::

    {
      "main": {"interval": "10s", "hostname": "n0001"},
      "collectors": {"cpustat": {}, "memstat": {"numa_stats": true}, ...},
      "router": {"cluster": "mycluster", "process_messages": {...}},
      "sinks": {"store": {"type": "websocket", "url": "ws://host:8082/api/ws?cluster=mycluster",
                          "jwt": "..."}}
    }

Each of ``collectors``, ``router``, ``sinks`` may instead be given as ``"<name>-file"`` (a
path, relative to this file), as cc-metric-collector's ``config.json`` does.  ``interval``,
``duration`` and ``hostname`` may also sit at the top level.  Our additions:
``hostname`` (override; default: the short host name), ``root`` (where /proc and /sys are;
default ``/``), ``standard_metrics`` (default true: also send ClusterCockpit's standard
names), ``align_interval`` (default true: rounds start at multiples of the interval, so
all nodes share timestamps).  Without ``collectors`` every collector is tried; without
``sinks`` lines go to stdout.  ``receivers`` (``http``, ``nats``, ``redfish``, ``ipmi``)
forward metrics from elsewhere through the router to the sinks.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cc.agent.collectors import DEFAULT_COLLECTORS, REGISTRY, AgentConfigError
from cc.config import ConfigError, parse_duration

__all__ = ["AgentConfig", "AgentConfigError", "load_agent_config", "parse_agent_config", "UPSTREAM_COLLECTORS"]

log = logging.getLogger("agent")

#: cc-metric-collector's collectors; those missing from REGISTRY are skipped, not refused
UPSTREAM_COLLECTORS = frozenset({
    "beegfs_meta", "beegfs_storage", "cpufreq", "cpufreq_cpuinfo", "cpustat", "customcmd", "diskstat",
    "gpfs", "ibstat", "ibstat_perfquery", "iostat", "ipmistat", "likwid", "loadavg", "lustrestat", "memstat",
    "netstat", "nfs3stat", "nfs4stat", "nfsiostat", "numastats", "nvidia", "rapl", "rocm_smi", "schedstat",
    "self", "slurm_cgroup", "smartmon", "tempstat", "topprocs",
})


_TOP = {"main", "interval", "duration", "hostname", "root", "standard_metrics", "align_interval",
        "collectors", "collectors-file", "router", "router-file", "sinks", "sinks-file",
        "receivers", "receivers-file"}
_MAIN = {"interval", "duration", "hostname", "root", "standard_metrics", "align_interval"}


@dataclass
class AgentConfig:
    interval: float = 10.0
    duration: float = 1.0
    hostname: str = field(default_factory=lambda: short_hostname())
    root: Path = Path("/")
    standard: bool = True
    align: bool = True
    collectors: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_COLLECTORS))
    router: dict[str, Any] = field(default_factory=dict)
    sinks: dict[str, dict[str, Any]] = field(default_factory=lambda: {"stdout": {"type": "stdout"}})
    receivers: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None


def short_hostname() -> str:
    return socket.gethostname().split(".", 1)[0]


def _load_json(path: Path, what: str) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise AgentConfigError(f"{what}: file {path} not found") from None
    except OSError as e:
        raise AgentConfigError(f"{what}: cannot read {path}: {e}") from None
    except orjson.JSONDecodeError as e:
        raise AgentConfigError(f"{what}: {path} is not valid JSON: {e}") from None


def _component(raw: dict, name: str, base: Path) -> Any:
    if name in raw and f"{name}-file" in raw:
        raise AgentConfigError(f"give either '{name}' or '{name}-file', not both")
    if f"{name}-file" in raw:
        p = raw[f"{name}-file"]
        if not isinstance(p, str) or not p:
            raise AgentConfigError(f"{name}-file: expected a path")
        path = Path(p) if os.path.isabs(p) else base / p
        return _load_json(path, f"{name}-file")
    return raw.get(name)


def parse_agent_config(raw: Any, base: Path = Path("."), path: Path | None = None) -> AgentConfig:
    """Check a parsed configuration document; every error names the offending key."""
    if not isinstance(raw, dict):
        raise AgentConfigError("the configuration must be a JSON object")
    for k in raw:
        if k not in _TOP:
            raise AgentConfigError(f"unknown key {k!r} (known: {', '.join(sorted(_TOP))})")
    main = raw.get("main") or {}
    if not isinstance(main, dict):
        raise AgentConfigError("main: expected an object")
    for k in main:
        if k not in _MAIN:
            raise AgentConfigError(f"main: unknown key {k!r} (known: {', '.join(sorted(_MAIN))})")
    opts = {k: raw[k] for k in _MAIN if k in raw}
    for k, v in main.items():
        if k in opts:
            raise AgentConfigError(f"{k!r} is given both at the top level and in 'main'")
        opts[k] = v
    cfg = AgentConfig(path=path)
    try:
        cfg.interval = parse_duration(opts.get("interval", "10s"), what="main.interval")
        cfg.duration = parse_duration(opts.get("duration", "1s"), what="main.duration")
    except ConfigError as e:
        raise AgentConfigError(str(e)) from None
    if cfg.interval < 0.05:
        raise AgentConfigError(f"main.interval: must be at least 50ms, got {opts.get('interval')!r}")
    host = opts.get("hostname") or short_hostname()
    if not isinstance(host, str) or any(c in host for c in " ,=/\\"):
        raise AgentConfigError(f"main.hostname: expected a host name, got {host!r}")
    cfg.hostname = host
    root = opts.get("root", "/")
    if not isinstance(root, str) or not root:
        raise AgentConfigError(f"main.root: expected a directory, got {root!r}")
    cfg.root = Path(root) if os.path.isabs(root) else (base / root).resolve()
    if not cfg.root.is_dir():
        raise AgentConfigError(f"main.root: {cfg.root} is not a directory")
    for key, attr in (("standard_metrics", "standard"), ("align_interval", "align")):
        v = opts.get(key, True)
        if not isinstance(v, bool):
            raise AgentConfigError(f"main.{key}: expected true or false, got {v!r}")
        setattr(cfg, attr, v)
    collectors = _component(raw, "collectors", base)
    if collectors is not None:
        if not isinstance(collectors, dict):
            raise AgentConfigError("collectors: expected an object {name: options}")
        missing = []
        for name, c in collectors.items():
            if name not in REGISTRY and name in UPSTREAM_COLLECTORS:
                missing.append(name)
                continue
            if name not in REGISTRY:
                raise AgentConfigError(f"collectors.{name}: unknown collector (known: {', '.join(sorted(REGISTRY))})")
            if c is not None and not isinstance(c, dict):
                raise AgentConfigError(f"collectors.{name}: expected an object of options")
        if missing:
            log.warning("collectors %s: cc-metric-collector has them, this cc-agent does not; skipping them",
                        ", ".join(missing))
        cfg.collectors = {k: v or {} for k, v in collectors.items() if k not in missing}
    router = _component(raw, "router", base)
    if router is not None:
        if not isinstance(router, dict):
            raise AgentConfigError("router: expected an object")
        cfg.router = router
    sinks = _component(raw, "sinks", base)
    if sinks is not None:
        if not isinstance(sinks, dict) or not sinks:
            raise AgentConfigError("sinks: expected an object {name: {type, ...}} with at least one sink")
        cfg.sinks = sinks
    receivers = _component(raw, "receivers", base)
    if receivers is not None:
        if not isinstance(receivers, dict):
            raise AgentConfigError("receivers: expected an object {name: {type, ...}}")
        cfg.receivers = receivers
    return cfg


def load_agent_config(path: str | os.PathLike[str]) -> AgentConfig:
    p = Path(path).resolve()
    return parse_agent_config(_load_json(p, "configuration"), p.parent, p)
