"""The task keys of ``config.json`` (``cron``, ``main.stop-jobs-exceeding-walltime``,
``main.nodestate-retention``), validated once so a bad value stops the start, naming the key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc.config import ConfigError, parse_duration

DEFAULT_DURATION_WORKER = "1m"   # ours (cc-backend: 5m); the others are cc-backend's defaults
DEFAULT_FOOTPRINT_WORKER = "10m"
DEFAULT_COMMIT_JOB_WORKER = "2m"
NODESTATE_RETENTION_INTERVAL = 3600.0  # ours: upstream runs it daily; hourly keeps each move small
NODESTATE_POLICIES = ("delete", "move")
NODESTATE_TARGET_KINDS = ("file", "s3")


@dataclass(frozen=True)
class S3Target:
    """``target-kind: s3``: the parquet files go to the top of ``bucket`` (cc-backend's keys)."""

    endpoint: str           # host:port (or a URL: its scheme decides http/https)
    scheme: str             # http | https
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    use_path_style: bool = True


@dataclass(frozen=True)
class NodeStateRetention:
    policy: str             # delete | move
    age_hours: int          # rows older than this many hours go
    target_path: Path | None = None  # move to a directory: where the parquet files go
    max_file_size_mb: int = 128
    s3: S3Target | None = None       # move to S3 instead


@dataclass(frozen=True)
class TaskSettings:
    duration_interval: float
    footprint_interval: float
    walltime_grace: int | None  # seconds past the walltime; None = the task is off
    nodestate: NodeStateRetention | None


def _interval(cron: dict[str, Any], key: str, default: str) -> float:
    value = cron.get(key, default)
    if value in ("", None):
        value = default
    seconds = parse_duration(value, what=f"cron.{key}")
    if seconds <= 0:
        raise ConfigError(f"cron.{key} must be a positive duration, got {value!r}")
    return seconds


def _int(section: dict[str, Any], key: str, where: str, default: int, minimum: int = 0) -> int:
    v = section.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{where}.{key} must be an integer >= {minimum}, got {v!r}")
    return v


def _nodestate(raw: Any, base: Path) -> NodeStateRetention | None:
    where = "main.nodestate-retention"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object with 'policy' ({' or '.join(NODESTATE_POLICIES)}) and 'age'")
    policy = raw.get("policy", "")
    if policy in ("", None):
        return None  # cc-backend: no policy = no retention
    if policy not in NODESTATE_POLICIES:
        raise ConfigError(f"{where}.policy must be one of {', '.join(NODESTATE_POLICIES)}, got {policy!r}")
    age = _int(raw, "age", where, 24) or 24  # hours; cc-backend takes 0 as its default 24
    if policy == "delete":
        return NodeStateRetention("delete", age)
    kind = raw.get("target-kind", "file") or "file"
    if kind not in NODESTATE_TARGET_KINDS:
        raise ConfigError(f"{where}.target-kind must be one of {', '.join(NODESTATE_TARGET_KINDS)}, got {kind!r}")
    size = _int(raw, "max-file-size-mb", where, 128) or 128
    if kind == "s3":
        return NodeStateRetention("move", age, None, size, _s3(raw, where))
    given = [k for k in raw if k.startswith("target-") and k not in ("target-kind", "target-path")]
    if given:
        raise ConfigError(f"{where}.{given[0]} applies to target-kind 's3' only (target-kind is 'file')")
    path = raw.get("target-path")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}.target-path is required for policy 'move' (directory of the parquet files)")
    target = Path(path) if Path(path).is_absolute() else base / path
    return NodeStateRetention("move", age, target, size)


def _s3(raw: dict[str, Any], where: str) -> S3Target:
    def text(key: str, required: bool = True) -> str:
        v = raw.get(key, "")
        if not isinstance(v, str) or (required and not v):
            raise ConfigError(f"{where}.{key} is required for target-kind 's3' (a non-empty string)")
        return v

    endpoint, scheme = text("target-endpoint"), "https"
    if "://" in endpoint:
        scheme, _, endpoint = endpoint.partition("://")
        if scheme not in ("http", "https"):
            raise ConfigError(f"{where}.target-endpoint: expected http:// or https://, got {scheme!r}")
    endpoint = endpoint.rstrip("/")
    if not endpoint or "/" in endpoint:
        raise ConfigError(f"{where}.target-endpoint: expected host:port or a URL without a path, "
                          f"got {raw.get('target-endpoint')!r}")
    bucket = text("target-bucket")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(f"{where}.target-bucket: not an S3 bucket name: {bucket!r}")
    path_style = raw.get("target-use-path-style", True)
    if not isinstance(path_style, bool):
        raise ConfigError(f"{where}.target-use-path-style must be true or false, got {path_style!r}")
    return S3Target(endpoint, scheme, bucket, text("target-access-key"), text("target-secret-key"),
                    text("target-region", required=False) or "us-east-1", path_style)


def parse_tasks(raw: dict[str, Any], base: Path) -> TaskSettings:
    """The validated task settings of a parsed ``config.json`` (``base``: its directory)."""
    cron = raw.get("cron") or {}
    if not isinstance(cron, dict):
        raise ConfigError("config key 'cron' must be an object")
    main = raw.get("main") or {}
    _interval(cron, "commit-job-worker", DEFAULT_COMMIT_JOB_WORKER)  # accepted (warned about), still a duration
    grace = main.get("stop-jobs-exceeding-walltime", 0)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        raise ConfigError(f"main.stop-jobs-exceeding-walltime must be seconds (an integer >= 0), got {grace!r}")
    return TaskSettings(
        duration_interval=_interval(cron, "duration-worker", DEFAULT_DURATION_WORKER),
        footprint_interval=_interval(cron, "footprint-worker", DEFAULT_FOOTPRINT_WORKER),
        walltime_grace=grace or None,
        nodestate=_nodestate(main.get("nodestate-retention"), base),
    )
