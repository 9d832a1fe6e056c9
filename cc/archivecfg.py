"""The ``archive`` section of config.json: which store holds the job archive, and its retention.

Key names and meanings are cc-backend's (``kind``, ``path``, ``db-path``, ``endpoint``,
``bucket``, ``access-key``, ``secret-key``, ``region``, ``use-path-style``, ``retention``,
``compression``).
Kept free of heavy imports: :mod:`cc.config` parses with it in every process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("file", "sqlite", "s3")
POLICIES = ("delete", "move", "copy")
FORMATS = ("json", "parquet")
DEFAULT_MAX_FILE_MB = 512
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class ArchiveConfigError(ValueError):
    """A bad ``archive`` key; the message names it."""


@dataclass
class S3Settings:
    endpoint: str
    bucket: str
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    use_path_style: bool = False


@dataclass
class RetentionSettings:
    policy: str
    age_days: float
    include_db: bool = True
    omit_tagged: str = "none"  # none | all | user (cc-backend's; true/false of older configs = all/none)
    format: str = "json"
    target_kind: str = "file"
    target_path: Path | None = None
    target_s3: S3Settings | None = None
    max_file_size_mb: int = DEFAULT_MAX_FILE_MB


@dataclass
class ArchiveSettings:
    kind: str = "file"
    path: Path = field(default_factory=lambda: Path("var/job-archive"))  # file: the archive; else cluster.json copies
    db_path: Path | None = None
    s3: S3Settings | None = None
    retention: RetentionSettings | None = None
    compression_days: int | None = None  # archive.compression: gzip data.json of jobs older than this


def _str(d: dict[str, Any], key: str, where: str, required: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise ArchiveConfigError(f"{where}.{key} is required")
        return None
    if not isinstance(v, str) or (required and not v):
        raise ArchiveConfigError(f"{where}.{key}: expected a non-empty string, got {v!r}")
    return v


def _bool(d: dict[str, Any], key: str, where: str, default: bool) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise ArchiveConfigError(f"{where}.{key}: expected true or false, got {v!r}")
    return v


def parse_s3(d: dict[str, Any], where: str, prefix: str = "") -> S3Settings:
    """S3 keys (``endpoint``...; with ``prefix="target-"`` the retention target's)."""
    endpoint = _str(d, f"{prefix}endpoint", where, required=True)
    assert endpoint is not None
    if "://" in endpoint and endpoint.split("://", 1)[0] not in ("http", "https"):
        raise ArchiveConfigError(f"{where}.{prefix}endpoint: scheme must be http or https, got {endpoint!r}")
    bucket = _str(d, f"{prefix}bucket", where, required=True)
    assert bucket is not None
    if not _BUCKET.fullmatch(bucket):
        raise ArchiveConfigError(f"{where}.{prefix}bucket: {bucket!r} is not an S3 bucket name "
                                 "(3-63 lowercase letters, digits, '.' and '-')")
    return S3Settings(endpoint=endpoint, bucket=bucket, access_key=_str(d, f"{prefix}access-key", where),
                      secret_key=_str(d, f"{prefix}secret-key", where), region=_str(d, f"{prefix}region", where),
                      use_path_style=_bool(d, f"{prefix}use-path-style", where, False))


def _omit_tagged(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "all" if v else "none"
    if v not in ("none", "all", "user"):
        raise ArchiveConfigError(f"{where}.omit-tagged: expected none, all, user (or true/false), got {v!r}")
    return v


def parse_retention(d: Any, base: Path, where: str = "archive.retention") -> RetentionSettings:
    if not isinstance(d, dict):
        raise ArchiveConfigError(f"{where}: expected an object")
    policy = d.get("policy")
    if policy not in POLICIES:
        raise ArchiveConfigError(f"{where}.policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    age = d.get("age")
    if isinstance(age, bool) or not isinstance(age, (int, float)) or age <= 0:
        raise ArchiveConfigError(f"{where}.age: expected a positive number of days, got {age!r}")
    fmt = d.get("format", "json")
    if fmt not in FORMATS:
        raise ArchiveConfigError(f"{where}.format: expected json or parquet, got {fmt!r}")
    kind = d.get("target-kind", "file")
    if kind not in ("file", "s3"):
        raise ArchiveConfigError(f"{where}.target-kind: expected file or s3, got {kind!r}")
    size = d.get("max-file-size-mb", DEFAULT_MAX_FILE_MB)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ArchiveConfigError(f"{where}.max-file-size-mb: expected a non-negative integer, got {size!r}")
    out = RetentionSettings(policy=policy, age_days=float(age), include_db=_bool(d, "include-db", where, True),
                            omit_tagged=_omit_tagged(d.get("omit-tagged", "none"), where), format=fmt, target_kind=kind,
                            max_file_size_mb=size or DEFAULT_MAX_FILE_MB)
    if policy != "delete":
        if kind == "s3":
            out.target_s3 = parse_s3(d, where, "target-")
        else:
            path = _str(d, "target-path", where) or _str(d, "location", where)  # location: older cc-backend
            if not path:
                raise ArchiveConfigError(f"{where}.target-path is required for policy {policy!r}")
            out.target_path = (base / path).resolve()
    return out


def parse_archive(d: dict[str, Any], base: Path) -> ArchiveSettings:
    """Validate the ``archive`` section (relative paths against the config file's directory)."""
    kind = d.get("kind", "file")
    if kind not in KINDS:
        raise ArchiveConfigError(f"archive.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    path = _str(d, "path", "archive") or "./var/job-archive"
    out = ArchiveSettings(kind=kind, path=(base / path).resolve())
    if kind == "sqlite":
        db = _str(d, "db-path", "archive", required=True)
        assert db is not None
        out.db_path = (base / db).resolve()
    elif d.get("db-path") is not None:
        raise ArchiveConfigError(f"archive.db-path: only used with archive.kind 'sqlite' (kind is {kind!r})")
    if kind == "s3":
        out.s3 = parse_s3(d, "archive")
    else:
        for key in ("endpoint", "bucket", "access-key", "secret-key", "region", "use-path-style"):
            if d.get(key) is not None:
                raise ArchiveConfigError(f"archive.{key}: only used with archive.kind 's3' (kind is {kind!r})")
    if d.get("retention") is not None:
        out.retention = parse_retention(d["retention"], base)
    comp = d.get("compression")
    if comp is not None:
        if isinstance(comp, bool) or not isinstance(comp, int) or comp < 0:
            raise ArchiveConfigError(f"archive.compression: expected a number of days (integer >= 0), got {comp!r}")
        out.compression_days = comp or None  # 0: off, as in cc-backend
    return out
