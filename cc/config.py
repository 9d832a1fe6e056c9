"""Loading and validating ``config.json`` and ``.env``.

Every process reads the same file, so this module is the single place that knows
ClusterCockpit's key names (``main``, ``metric-store``, ``archive``, ``auth``,
``clusters``, ``metrics``) and our few additions (``metric-store.ingest-addr``,
``metric-store.ingest-workers``, ``checkpoints.wal``/``wal-sync``/``wal-sync-interval``,
``cleanup.interval``).  Relative paths are resolved against the
directory that holds ``config.json`` so that the processes do not depend on the
working directory they were started from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cc.archivecfg import ArchiveConfigError, ArchiveSettings, parse_archive
from cc.authconfig import AuthConfigError, AuthSettings, parse_auth
from cc.configkeys import audit
from cc.nats._settings import NatsConfigError, NatsSettings, parse_nats

DEFAULT_WEB_ADDR = "127.0.0.1:8080"
DEFAULT_INGEST_ADDR = "127.0.0.1:8082"


class ConfigError(Exception):
    """A configuration file is missing, unreadable or has a wrong value (message names it)."""


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def parse_duration(text: str | int | float, *, what: str = "duration") -> float:
    """Parse a Go-style duration (``"48h"``, ``"1h30m"``, ``"500ms"``) into seconds.

    A bare number is taken as seconds, as several ClusterCockpit keys allow that.
    """
    if isinstance(text, bool):
        raise ConfigError(f"{what}: expected a duration like '48h', got {text!r}")
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    if s in ("0", ""):
        return 0.0
    try:
        return float(s)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ConfigError(f"{what}: cannot parse duration {text!r} (use e.g. '48h', '90m', '30s')")
    return total


def parse_env_file(path: Path) -> dict[str, str]:
    """Read a ``.env`` file (KEY="value" lines, # comments) without touching os.environ."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"{path}:{lineno}: expected KEY=value, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


# Set by a supervisor that read .env before dropping root (main.user) and passed its values in the
# environment: its children may then find .env unreadable (it stays root's), which is fine.
SECRETS_FROM_PARENT = "CC_SECRETS_FROM_PARENT"


def _read_env(path: Path) -> dict[str, str]:
    try:
        return parse_env_file(path)
    except PermissionError:
        if os.environ.get(SECRETS_FROM_PARENT) == "1":
            return {}
        raise ConfigError(f"{path}: cannot read the file (permission denied)") from None


@dataclass(frozen=True)
class MetricSpec:
    """How the metric store keeps one metric: its timestep and how scopes combine."""

    frequency: int
    aggregation: str | None  # "sum", "avg" or None (no cross-scope aggregation)


@dataclass(frozen=True)
class NatsSubscription:
    """One ``metric-store.nats-subscriptions`` entry; ``stream`` set = JetStream mode (ours)."""

    subject: str
    cluster_tag: str | None = None
    stream: str | None = None
    durable: str | None = None
    ack_wait: float = 30.0
    where: str = "metric-store.nats-subscriptions[0]"


@dataclass(frozen=True)
class ApiSubjects:
    """``main.api-subjects``: where the web process takes job and node-state events from."""

    job_event: str
    node_state: str


_NATS_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_SUBJECT_RE = re.compile(r"^[^\s]+$")


def _subject(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v or not _SUBJECT_RE.match(v) or v.startswith(".") or v.endswith(".") \
            or ".." in v:
        raise ConfigError(f"{where}: expected a NATS subject like 'hpc.metrics' (wildcards * and > allowed), got {v!r}")
    return v


def _parse_subscriptions(subs: Any, w: str, retention: int) -> list[NatsSubscription]:
    if not isinstance(subs, list):
        raise ConfigError(f"{w}.nats-subscriptions must be a list of {{subscribe-to, cluster-tag}}")
    out = []
    for i, sub in enumerate(subs):
        where = f"{w}.nats-subscriptions[{i}]"
        if not isinstance(sub, dict):
            raise ConfigError(f"{where}: expected an object with 'subscribe-to'")
        subject = _subject(sub.get("subscribe-to"), f"{where}.subscribe-to")
        tag = sub.get("cluster-tag") or None
        if tag is not None and (not isinstance(tag, str) or "/" in tag or ".." in tag):
            raise ConfigError(f"{where}.cluster-tag: expected a cluster name, got {tag!r}")
        stream, durable = sub.get("stream") or None, sub.get("durable") or None
        for key, v in (("stream", stream), ("durable", durable)):
            if v is not None and (not isinstance(v, str) or not _NATS_NAME_RE.match(v)):
                raise ConfigError(f"{where}.{key}: expected a name of letters, digits, '-' and '_', got {v!r}")
        if durable and not stream:
            raise ConfigError(f"{where}.durable needs {where}.stream (the JetStream stream the consumer reads)")
        if "ack-wait" in sub and not stream:
            raise ConfigError(f"{where}.ack-wait needs {where}.stream (acks exist only in JetStream mode)")
        ack_wait = parse_duration(sub.get("ack-wait", "30s"), what=f"{where}.ack-wait")
        if ack_wait < 1:
            raise ConfigError(f"{where}.ack-wait must be at least 1s, got {sub.get('ack-wait')!r}")
        out.append(NatsSubscription(subject, tag, stream, durable, ack_wait, where))
    return out


def _parse_api_subjects(raw: Any) -> ApiSubjects | None:
    if raw is None:
        return None
    w = "main.api-subjects"
    if not isinstance(raw, dict):
        raise ConfigError(f"{w} must be an object with 'subject-job-event' and 'subject-node-state'")
    for k in ("subject-job-event", "subject-node-state"):
        if k not in raw:
            raise ConfigError(f"{w}.{k} is required (upstream's schema requires both)")
    for k in ("job-concurrency", "node-concurrency"):
        v = raw.get(k, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{w}.{k}: expected a positive integer, got {v!r}")
    return ApiSubjects(_subject(raw["subject-job-event"], f"{w}.subject-job-event"),
                       _subject(raw["subject-node-state"], f"{w}.subject-node-state"))


@dataclass
class MetricStoreConfig:
    retention: int = 48 * 3600
    memory_cap_gb: float = 100.0
    checkpoint_dir: Path = Path("var/checkpoints")
    checkpoint_format: str = "wal"
    checkpoint_interval: int = 12 * 3600
    max_wal_size: int = 0
    wal_enabled: bool = True
    wal_sync: str = "always"
    wal_sync_interval: float = 1.0
    cleanup_mode: str = "delete"
    cleanup_dir: Path | None = None
    cleanup_interval: int = 3600
    num_workers: int = 0
    ingest_addr: str = DEFAULT_INGEST_ADDR
    ingest_workers: int = 0
    max_body_bytes: int = 256 * 1024 * 1024
    nats_subscriptions: list[NatsSubscription] = field(default_factory=list)

    def effective_ingest_workers(self) -> int:
        return self.ingest_workers if self.ingest_workers > 0 else (os.cpu_count() or 1)

    def effective_num_workers(self) -> int:
        """Threads for checkpoint and archive I/O; 0 = min(cores/2 + 1, 10), as cc-backend."""
        return self.num_workers if self.num_workers > 0 else min((os.cpu_count() or 1) // 2 + 1, 10)


@dataclass(frozen=True)
class ExternalStore:
    """One entry of ``metric-store-external``: metric loads of ``scope`` go to ``url``'s ``/api/query``.

    ``scope`` is a cluster name, ``<cluster>-<subcluster>``, or ``*`` (every cluster no
    other entry claims), as cc-backend's metricdispatch matches it.
    """

    scope: str
    url: str
    token: str


@dataclass
class Config:
    """The parsed configuration shared by all processes."""

    path: Path
    base_dir: Path
    raw: dict[str, Any]
    env: dict[str, str]
    web_addr: str
    var_dir: Path
    run_dir: Path
    log_dir: Path
    archive_path: Path
    db_path: Path
    api_allowed_ips: list[str]
    jwt_max_age: int
    session_max_age: int
    metric_store: MetricStoreConfig
    metrics: dict[str, MetricSpec]
    cluster_settings: dict[str, dict[str, Any]]
    adapter_config: Path | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)  # site logins: LDAP, OpenID Connect, JWT
    metric_store_external: list[ExternalStore] = field(default_factory=list)
    nats: NatsSettings | None = None  # top-level ``nats``: the server every NATS user here connects to
    api_subjects: ApiSubjects | None = None
    warnings: list[str] = field(default_factory=list)  # keys that do nothing here (cc.configkeys)
    trusted_proxies: list[str] = field(default_factory=list)  # main.trusted-proxies (ours)
    metrics_allowed_ips: list[str] = field(default_factory=list)  # main.metrics-allowed-ips (ours): /metrics without JWT
    tls_cert: Path | None = None   # main.https-cert-file
    tls_key: Path | None = None    # main.https-key-file
    ingest_tls: bool = False       # metric-store.ingest-tls (ours): the ingest listener serves HTTPS too
    redirect_http_to: str | None = None  # main.redirect-http-to
    redirect_http_addr: str = ":80"      # main.redirect-http-addr (ours): where that redirect listens
    run_as_user: str | None = None   # main.user
    run_as_group: str | None = None  # main.group
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)  # archive.kind and its store, retention
    machine_state_dir: Path | None = None  # main.machine-state-dir: /api/machine_state/ files

    @property
    def main(self) -> dict[str, Any]:
        return self.raw.get("main", {})

    def secret(self, name: str) -> str | None:
        """A secret from the environment, falling back to ``.env`` (environment wins, as in cc-backend)."""
        return os.environ.get(name) or self.env.get(name) or None


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{name}' must be an object, got {type(value).__name__}")
    return value


def _int(d: dict[str, Any], key: str, default: int, where: str, minimum: int = 0) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise ConfigError(f"config key '{where}.{key}' must be an integer, got {v!r}")
    if v < minimum:
        raise ConfigError(f"config key '{where}.{key}' must be >= {minimum}, got {v!r}")
    return int(v)


def parse_metric_spec(name: str, spec: Any, where: str) -> MetricSpec:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}.{name}: expected an object with 'frequency' and 'aggregation'")
    freq = spec.get("frequency", spec.get("timestep"))
    if isinstance(freq, bool) or not isinstance(freq, (int, float)) or freq <= 0 or int(freq) != freq:
        raise ConfigError(f"{where}.{name}.frequency: expected a positive integer (seconds), got {freq!r}")
    agg = spec.get("aggregation")
    if agg not in (None, "sum", "avg"):
        raise ConfigError(f"{where}.{name}.aggregation: expected 'sum', 'avg' or null, got {agg!r}")
    return MetricSpec(int(freq), agg)


def _parse_metric_store(d: dict[str, Any], base: Path) -> MetricStoreConfig:
    w = "metric-store"
    ms = MetricStoreConfig()
    ms.retention = int(parse_duration(d.get("retention-in-memory", "48h"), what=f"{w}.retention-in-memory"))
    if ms.retention <= 0:
        raise ConfigError(f"{w}.retention-in-memory must be positive")
    cap = d.get("memory-cap", 100)
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap < 0:
        raise ConfigError(f"{w}.memory-cap: expected a number of GB >= 0, got {cap!r}")
    ms.memory_cap_gb = float(cap)
    cp = d.get("checkpoints") or {}
    if not isinstance(cp, dict):
        raise ConfigError(f"{w}.checkpoints must be an object")
    ms.checkpoint_dir = _resolve(base, cp.get("directory", "./var/checkpoints"))
    ms.checkpoint_format = cp.get("file-format", "wal")
    if ms.checkpoint_format not in ("wal", "json"):
        raise ConfigError(f"{w}.checkpoints.file-format: expected 'wal' or 'json', got {ms.checkpoint_format!r}")
    ms.max_wal_size = _int(cp, "max-wal-size", 0, f"{w}.checkpoints")
    wal = cp.get("wal", True)
    if not isinstance(wal, bool):
        raise ConfigError(f"{w}.checkpoints.wal: expected true or false, got {wal!r}")
    ms.wal_enabled = wal
    ms.wal_sync = cp.get("wal-sync", "always")
    if ms.wal_sync not in ("always", "interval", "off"):
        raise ConfigError(f"{w}.checkpoints.wal-sync: expected 'always', 'interval' or 'off', got {ms.wal_sync!r}")
    ms.wal_sync_interval = parse_duration(cp.get("wal-sync-interval", "1s"), what=f"{w}.checkpoints.wal-sync-interval")
    if ms.wal_sync_interval <= 0:
        raise ConfigError(f"{w}.checkpoints.wal-sync-interval must be positive")
    ms.checkpoint_interval = int(
        parse_duration(d.get("checkpoint-interval", cp.get("interval", "12h")), what=f"{w}.checkpoint-interval")
    )
    if ms.checkpoint_interval <= 0:
        raise ConfigError(f"{w}.checkpoint-interval must be positive")
    cl = d.get("cleanup") or {}
    if not isinstance(cl, dict):
        raise ConfigError(f"{w}.cleanup must be an object")
    ms.cleanup_mode = cl.get("mode", "delete")
    if ms.cleanup_mode not in ("delete", "archive"):
        raise ConfigError(f"{w}.cleanup.mode: expected 'delete' or 'archive', got {ms.cleanup_mode!r}")
    ms.cleanup_interval = int(parse_duration(cl.get("interval", "1h"), what=f"{w}.cleanup.interval"))
    if ms.cleanup_interval <= 0:
        raise ConfigError(f"{w}.cleanup.interval must be positive")
    ms.cleanup_interval = min(ms.cleanup_interval, ms.retention)
    if ms.cleanup_mode == "archive":
        if not cl.get("directory"):
            raise ConfigError(f"{w}.cleanup.directory is required when cleanup.mode is 'archive'")
        ms.cleanup_dir = _resolve(base, cl["directory"])
    ms.num_workers = _int(d, "num-workers", 0, w)
    ms.ingest_addr = str(d.get("ingest-addr", DEFAULT_INGEST_ADDR))
    _split_addr(ms.ingest_addr, f"{w}.ingest-addr")
    ms.ingest_workers = _int(d, "ingest-workers", 0, w)
    ms.max_body_bytes = _int(d, "max-body-bytes", ms.max_body_bytes, w, minimum=1024)
    ms.nats_subscriptions = _parse_subscriptions(d.get("nats-subscriptions") or [], w, ms.retention)
    return ms


def _parse_external(value: Any) -> list[ExternalStore]:
    """``metric-store-external``: a list of ``{scope, url, token}`` (cc-backend's schema: all three required)."""
    w = "metric-store-external"
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{w}: expected a non-empty list of {{\"scope\", \"url\", \"token\"}} objects")
    out: list[ExternalStore] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        where = f"{w}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected an object with 'scope', 'url' and 'token', got {item!r}")
        for key in ("scope", "url", "token"):
            if key not in item:
                raise ConfigError(f"{where}.{key}: is required")
            if not isinstance(item[key], str):
                raise ConfigError(f"{where}.{key}: must be a string, got {item[key]!r}")
        scope, url, token = item["scope"].strip(), item["url"].strip(), item["token"]
        if not scope:
            raise ConfigError(f"{where}.scope: must be a cluster name, '<cluster>-<subcluster>' or '*'")
        if scope in seen:
            raise ConfigError(f"{where}.scope: {scope!r} is already routed by {w}[{seen[scope]}]")
        seen[scope] = i
        m = re.fullmatch(r"(https?)://([^/?#\s]+)(/[^?#\s]*)?", url)
        if m is None:
            raise ConfigError(f"{where}.url: expected http(s)://HOST[:PORT][/PATH] (the store's base URL, "
                              f"'/api/query' is appended), got {url!r}")
        if (m.group(3) or "").rstrip("/").endswith("/api/query"):
            raise ConfigError(f"{where}.url: give the store's base URL without '/api/query', got {url!r}")
        if any(c.isspace() for c in token):
            raise ConfigError(f"{where}.token: must not contain whitespace (a JWT, or \"\" for none)")
        out.append(ExternalStore(scope, url.rstrip("/"), token))
    return out


def _machine_state_dir(main: dict[str, Any], base: Path) -> Path | None:
    """``main.machine-state-dir``: where ``PUT /api/machine_state/<cluster>/<host>`` keeps its files."""
    value = main.get("machine-state-dir")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"main.machine-state-dir must be a directory path (string), got {value!r}")
    path = _resolve(base, value)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"main.machine-state-dir: {path} exists and is not a directory")
    return path


def _resolve(base: Path, p: str | os.PathLike[str]) -> Path:
    path = Path(p)
    return path if path.is_absolute() else (base / path).resolve()


def _split_addr(addr: str, where: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: expected HOST:PORT, got {addr!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def split_addr(addr: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; an empty host means all interfaces."""
    return _split_addr(addr, "address")


def _security(main: dict[str, Any], ms: dict[str, Any], base: Path) -> dict[str, Any]:
    """TLS, the HTTP redirect, trusted proxies and the user to run as (``main.*``); each error names its key."""
    import grp
    import pwd
    from urllib.parse import urlsplit

    from cc.netacl import parse_networks

    out: dict[str, Any] = {}
    cert, key = main.get("https-cert-file") or None, main.get("https-key-file") or None
    for name, v in (("https-cert-file", cert), ("https-key-file", key)):
        if v is not None and not isinstance(v, str):
            raise ConfigError(f"main.{name}: expected the path of a PEM file, got {v!r}")
    if bool(cert) != bool(key):
        have, missing = ("https-cert-file", "https-key-file") if cert else ("https-key-file", "https-cert-file")
        raise ConfigError(f"main.{have} is set but main.{missing} is not: HTTPS needs both")
    if cert:
        out["tls_cert"], out["tls_key"] = _resolve(base, cert), _resolve(base, key)
    ingest_tls = ms.get("ingest-tls", False)
    if not isinstance(ingest_tls, bool):
        raise ConfigError(f"metric-store.ingest-tls: expected true or false, got {ingest_tls!r}")
    if ingest_tls and not cert:
        raise ConfigError("metric-store.ingest-tls needs main.https-cert-file and main.https-key-file")
    out["ingest_tls"] = ingest_tls
    target = main.get("redirect-http-to") or None
    if target is not None:
        parts = urlsplit(target) if isinstance(target, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"main.redirect-http-to: expected an absolute URL like 'https://monitor.example.org', "
                              f"got {target!r}")
        out["redirect_http_to"] = target.rstrip("/")
    raddr = main.get("redirect-http-addr", ":80")
    if not isinstance(raddr, str):
        raise ConfigError(f"main.redirect-http-addr: expected HOST:PORT, got {raddr!r}")
    _split_addr(raddr, "main.redirect-http-addr")
    out["redirect_http_addr"] = raddr
    proxies = main.get("trusted-proxies", [])
    if not isinstance(proxies, list):
        raise ConfigError("main.trusted-proxies must be a list of addresses or CIDR networks")
    try:
        parse_networks(proxies, "main.trusted-proxies")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    out["trusted_proxies"] = proxies
    scrapers = main.get("metrics-allowed-ips", [])
    if not isinstance(scrapers, list):
        raise ConfigError("main.metrics-allowed-ips must be a list of addresses or CIDR networks (or '*')")
    try:
        parse_networks([e for e in scrapers if e != "*"], "main.metrics-allowed-ips")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    out["metrics_allowed_ips"] = scrapers
    user, group = main.get("user") or None, main.get("group") or None
    if user is not None:
        if not isinstance(user, str):
            raise ConfigError(f"main.user: expected a user name, got {user!r}")
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(f"main.user: no user {user!r} on this machine") from None
        out["run_as_user"] = user
    if group is not None:
        if not isinstance(group, str):
            raise ConfigError(f"main.group: expected a group name, got {group!r}")
        try:
            grp.getgrnam(group)
        except KeyError:
            raise ConfigError(f"main.group: no group {group!r} on this machine") from None
        out["run_as_group"] = group
    return out


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate ``config.json`` (and the ``.env`` beside it)."""
    cfg_path = Path(path).resolve()
    try:
        raw = orjson.loads(cfg_path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{cfg_path}: configuration file not found (create one with 'cc-supervise init')") from None
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"{cfg_path}: invalid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_path}: top level must be a JSON object")
    keys = audit(raw)
    if keys.errors:
        raise ConfigError(f"{cfg_path}: " + "; ".join(keys.errors))
    base = cfg_path.parent
    main = _section(raw, "main")
    archive = _section(raw, "archive")
    auth = _section(raw, "auth")
    jwts_where = "auth.jwts" if auth.get("jwts") else "main.jwts"
    jwts = auth.get("jwts") or main.get("jwts") or {}
    try:
        auth_settings = parse_auth(auth, jwts, jwts_where, base, parse_duration)
    except AuthConfigError as e:
        raise ConfigError(str(e)) from None
    try:
        archive_settings = parse_archive(archive, base)
    except ArchiveConfigError as e:
        raise ConfigError(str(e)) from None
    var_dir = _resolve(base, "var")
    ms = _parse_metric_store(_section(raw, "metric-store"), base)
    metrics: dict[str, MetricSpec] = {}
    for name, spec in _section(raw, "metrics").items():
        metrics[name] = parse_metric_spec(name, spec, "metrics")
    clusters = raw.get("clusters") or []
    if not isinstance(clusters, list):
        raise ConfigError("config key 'clusters' must be a list of {name, filterRanges}")
    cluster_settings: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(clusters):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise ConfigError(f"clusters[{i}]: expected an object with a 'name'")
        cluster_settings[c["name"]] = c
    web_addr = str(main.get("addr", DEFAULT_WEB_ADDR))
    _split_addr(web_addr, "main.addr")
    allowed = main.get("api-allowed-ips", ["*"])
    if not isinstance(allowed, list) or not all(isinstance(x, str) for x in allowed):
        raise ConfigError("main.api-allowed-ips must be a list of strings")
    if not isinstance(main.get("enable-job-taggers", False), bool):
        raise ConfigError(f"main.enable-job-taggers must be true or false, not {main['enable-job-taggers']!r}")
    session_age = main.get("session-max-age", auth.get("session-max-age", "168h"))
    security = _security(main, _section(raw, "metric-store"), base)
    adapter = _section(raw, "slurm-adapter")
    adapter_config = None
    if adapter:
        if not isinstance(adapter.get("config"), str) or not adapter["config"]:
            raise ConfigError("slurm-adapter.config: path of the adapter's JSON configuration is required")
        adapter_config = _resolve(base, adapter["config"])
        if not adapter_config.is_file():
            raise ConfigError(f"slurm-adapter.config: {adapter_config} does not exist")
    nats = None
    if raw.get("nats") is not None:
        try:
            nats = parse_nats(raw["nats"], base=base)
        except NatsConfigError as e:
            raise ConfigError(str(e)) from None
    api_subjects = _parse_api_subjects(main.get("api-subjects"))
    from cc.tasks import parse_tasks  # here, not at the top: cc.tasks imports this module

    parse_tasks(raw, base)  # the archiver process runs the tasks; a bad value stops the start here
    if nats is None:
        for key, used in (("metric-store.nats-subscriptions", ms.nats_subscriptions),
                          ("main.api-subjects", api_subjects)):
            if used:
                raise ConfigError(f"{key} needs the top-level 'nats' key (e.g. {{\"address\": "
                                  "\"nats://127.0.0.1:4222\"}}): no NATS server is configured")
    return Config(
        path=cfg_path,
        base_dir=base,
        raw=raw,
        env=_read_env(base / ".env"),
        web_addr=web_addr,
        var_dir=var_dir,
        run_dir=var_dir / "run",
        log_dir=var_dir / "log",
        archive_path=_resolve(base, archive.get("path", "./var/job-archive")),
        archive=archive_settings,
        db_path=_resolve(base, main.get("db", "./var/job.db")),
        api_allowed_ips=allowed,
        jwt_max_age=int(parse_duration(jwts.get("max-age", "0"), what="auth.jwts.max-age")),
        session_max_age=int(parse_duration(session_age or "0", what="main.session-max-age")),
        metric_store=ms,
        metrics=metrics,
        cluster_settings=cluster_settings,
        adapter_config=adapter_config,
        auth=auth_settings,
        metric_store_external=_parse_external(raw.get("metric-store-external")),
        nats=nats,
        api_subjects=api_subjects,
        warnings=keys.warnings,
        machine_state_dir=_machine_state_dir(main, base),
        **security,
    )
