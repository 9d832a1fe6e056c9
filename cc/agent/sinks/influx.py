"""``influxdb`` sink: InfluxDB's v1 write API (``POST /write?db=...``), batched, nothing lost.

cc-metric-collector's keys: ``host``, ``port`` (a string, as upstream writes it),
``database``, ``user``/``password`` (basic authentication; a ``password`` without ``user``
is sent as an InfluxDB 2 token), ``ssl``, ``organization``
(InfluxDB 2's compatibility API takes ``database`` as the bucket; the organisation is sent
as ``org``), ``batch_size``, ``flush_delay``, ``precision``, ``meta_as_tags``.  Upstream
talks to the v2 endpoint (InfluxDB >= 1.8); the v1 endpoint used here also serves 1.x
servers older than that, and 2.x through its v1 compatibility API.

Delivery is the http sink's: points wait in the bounded buffer (``buffer_size``) and are
retried with backoff until the server answers 204; a 400 (``partial write``: some points
were bad) is logged and the rest counts as delivered.  ``gzip`` (default false) compresses
the request bodies.  Upstream's retry keys (also those of its ``influxasync`` sink, an alias
here): ``retry_interval`` (first delay, 1s), ``retry_exponential_base`` (2),
``max_retry_interval`` (the longest delay); ``max_retries`` and ``max_retry_time`` bound the
retries of one batch -- when given, a batch still failing then is dropped and logged, as
upstream does; without them nothing is dropped but by a full buffer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from cc.agent.collectors._base import AgentConfigError
from cc.agent.sinks._base import duration_option
from cc.agent.sinks.http import HttpSink

_PRECISION = {"s": "s", "ms": "ms", "us": "u", "ns": "n"}


class InfluxSink(HttpSink):
    type = "influxdb"
    options = (HttpSink.options - {"url", "jwt", "username", "max_retries"}) | {
        "host", "port", "database", "user", "organization", "ssl", "retry_interval", "retry_exponential_base",
        "max_retry_interval", "max_retries", "max_retry_time"}
    gzip_default = False

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        self.retry_first = duration_option(cfg, "retry_interval", "1s", self.where, 0.001)
        base = cfg.get("retry_exponential_base", 2)
        if isinstance(base, bool) or not isinstance(base, (int, float)) or base < 1:
            raise AgentConfigError(f"{self.where}.retry_exponential_base: expected a number >= 1, got {base!r}")
        self.retry_base = float(base)
        if "max_retry_interval" in cfg:
            if "retry_max_delay" in cfg:
                raise AgentConfigError(f"{self.where}: give max_retry_interval or retry_max_delay, not both")
            self.retry_max_delay = duration_option(cfg, "max_retry_interval", "30s", self.where, 0.001)
        if "max_retries" in cfg:
            self.give_up_retries = self._int(cfg, "max_retries", 0, minimum=0)
        if "max_retry_time" in cfg:
            self.give_up_after = duration_option(cfg, "max_retry_time", "0s", self.where, 0.001)

    def _endpoint(self, cfg: dict[str, Any]) -> str:
        host = cfg.get("host", "localhost")
        if not isinstance(host, str) or not host or any(c in host for c in "/?#@ "):
            raise AgentConfigError(f"{self.where}.host: expected a host name or address, got {host!r}")
        port = cfg.get("port", "8086")
        if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(str(port)) < 65536:
            raise AgentConfigError(f"{self.where}.port: expected a port number such as \"8086\", got {port!r}")
        db = cfg.get("database")
        if not isinstance(db, str) or not db:
            raise AgentConfigError(f"{self.where}.database: expected the database name")
        ssl = cfg.get("ssl", False)
        if not isinstance(ssl, bool):
            raise AgentConfigError(f"{self.where}.ssl: expected true or false")
        params = {"db": db, "precision": _PRECISION[self.precision]}
        org = cfg.get("organization")
        if org is not None:
            if not isinstance(org, str) or not org:
                raise AgentConfigError(f"{self.where}.organization: expected a name")
            params["org"] = org
        user, password = cfg.get("user"), cfg.get("password")
        if not user and isinstance(password, str) and password:  # an InfluxDB 2 token, as upstream's example
            self.headers["authorization"] = f"Token {password}"
        else:
            self._basic_auth(user, password, "user")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{'https' if ssl else 'http'}://{host}:{int(str(port))}/write?{urlencode(params, quote_via=quote)}"
