"""``prometheus`` sink: the newest value of every series on a scrape endpoint.

cc-metric-collector's keys: ``host``, ``port`` (a string), ``path`` (default
``metrics``), ``group_as_namespace`` (metric names become ``<group>_<name>`` when the
meta has a group), ``meta_as_tags``, ``process_messages``.  Every metric is a gauge; its
tags are the labels (``type-id`` becomes ``type_id``: Prometheus label names have no
dashes).  A series not seen for ``series_timeout`` (default three times the longest gap
seen, at least 60 s) disappears from the page, so a removed device does not linger.

Nothing is buffered because nothing is pushed: a scrape reads the table as it is, and a
scrape that misses a round misses it in Prometheus, as with every exporter.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

import trio
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer, make_server, make_wsgi_app

from cc.agent.collectors._base import AgentConfigError
from cc.agent.message import Message
from cc.agent.sinks._base import Sink, duration_option

_BAD = re.compile(r"[^a-zA-Z0-9_:]")


def _metric_name(s: str) -> str:
    s = _BAD.sub("_", s)
    return s if s and not s[0].isdigit() else f"_{s}"


def _label(s: str) -> str:
    s = _BAD.sub("_", s).replace(":", "_")
    return s if s and not s[0].isdigit() else f"_{s}"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


class PrometheusSink(Sink):
    type = "prometheus"
    options = {"host", "port", "path", "group_as_namespace", "series_timeout"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        self.host = cfg.get("host", "localhost")
        if not isinstance(self.host, str) or not self.host:
            raise AgentConfigError(f"{self.where}.host: expected an address to listen on")
        port = cfg.get("port", "8080")
        if isinstance(port, bool) or not str(port).isdigit() or not 0 <= int(str(port)) < 65536:
            raise AgentConfigError(f"{self.where}.port: expected a port number such as \"8080\", got {port!r}")
        self.port = int(str(port))
        path = cfg.get("path", "metrics")
        if not isinstance(path, str) or any(c in path for c in "?# "):
            raise AgentConfigError(f"{self.where}.path: expected a URL path such as 'metrics', got {path!r}")
        self.path = "/" + path.strip("/")
        self.group_ns = cfg.get("group_as_namespace", False)
        if not isinstance(self.group_ns, bool):
            raise AgentConfigError(f"{self.where}.group_as_namespace: expected true or false")
        self.timeout = duration_option(cfg, "series_timeout", "0s", self.where) or None
        # name -> label tuple -> (labels, value, time seen)
        self._table: dict[str, dict[tuple, tuple[dict[str, str], float, float]]] = {}
        self._lock = threading.Lock()
        self._gap = 0.0
        self._last_round = 0.0
        self.bound_port: int | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # the sink takes messages, not lines: it keeps values instead of buffering text
    @property
    def encoding_key(self) -> tuple | None:
        return None

    def encode(self, msgs: list[Message]) -> list[str]:
        if self.processor is not None:
            msgs = [m for m in (x.copy() for x in msgs) if self.processor.process(m)]
        now = time.monotonic()
        with self._lock:
            if self._last_round:
                self._gap = max(self._gap, now - self._last_round)
            self._last_round = now
            for m in msgs:
                if isinstance(m.value, bool) or not isinstance(m.value, (int, float)):
                    continue
                name = m.name
                group = m.meta.get("group")
                if self.group_ns and group:
                    name = f"{group.lower()}_{name}"
                labels = {_label(k): v for k, v in m.tags.items() if k and v}
                for k in self.meta_as_tags:
                    if k in m.meta and _label(k) not in labels:
                        labels[_label(k)] = m.meta[k]
                key = tuple(sorted(labels.items()))
                self._table.setdefault(_metric_name(name), {})[key] = (labels, float(m.value), now)
                self.sent_points += 1
        return []

    def accept(self, lines: list[str]) -> None:
        pass

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Called by prometheus_client on each scrape (in its server thread)."""
        now = time.monotonic()
        limit = self.timeout or max(60.0, 3 * self._gap)
        with self._lock:
            for name in sorted(self._table):
                series = self._table[name]
                for key in [k for k, (_, _, t) in series.items() if now - t > limit]:
                    del series[key]
                if not series:
                    continue
                keys = sorted({k for labels, _, _ in series.values() for k in labels})
                fam = GaugeMetricFamily(name, f"cc-agent metric {name}", labels=keys)
                for labels, value, _ in series.values():
                    fam.add_metric([labels.get(k, "") for k in keys], value)
                yield fam

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        app = make_wsgi_app(self.registry)
        path = self.path

        def routed(environ: dict, start_response: Any) -> Any:
            if environ.get("PATH_INFO", "/").rstrip("/") != path.rstrip("/") and path != "/":
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [f"metrics are at {path}\n".encode()]
            return app(environ, start_response)

        try:
            httpd = make_server(self.host, self.port, routed, ThreadingWSGIServer, handler_class=_Quiet)
        except OSError as e:
            raise AgentConfigError(f"{self.where}: cannot listen on {self.host}:{self.port}: {e}") from None
        self.bound_port = httpd.server_port
        thread = threading.Thread(target=httpd.serve_forever, name=f"prometheus-{self.name}", daemon=True)
        thread.start()
        self.log.info("%s: scrape endpoint http://%s:%d%s", self.where, self.host, self.bound_port, self.path)
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            httpd.shutdown()
            httpd.server_close()
