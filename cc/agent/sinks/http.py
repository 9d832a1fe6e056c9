"""``http`` sink: batched POSTs of line protocol (``/api/write``), JWT, gzip, retries.

Options as cc-metric-collector's http sink (``url``, ``jwt``, ``username``/``password``,
``timeout``, ``idle_connection_timeout``, ``flush_delay``, ``max_retries``, ``precision``)
plus ``gzip`` (default true), ``batch_size`` (points per request, default 20000),
``buffer_size`` (points kept while the server is away, default 500000) and
``retry_max_delay`` (default 30s).

Unlike upstream, a failed request does not lose its points: they stay in the buffer and
are retried with exponential backoff until the server takes them; only when the buffer
overflows are the oldest points dropped, and the log says how many.  ``max_retries`` is
accepted for compatibility; retries go on as long as the buffer holds the points.
What counts as delivered: 2xx, and 400 (the server stored the valid lines and names the
bad ones, which a retry would not fix -- logged).  413 halves the batch.  Everything else
(connection errors, 401/403, 5xx...) is retried.
"""

from __future__ import annotations

import gzip as gzip_mod
from typing import Any

import httpx
import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.sinks._base import BufferedSink, duration_option


class HttpSink(BufferedSink):
    type = "http"
    options = {"url", "jwt", "username", "password", "timeout", "idle_connection_timeout", "flush_delay",
               "max_retries", "gzip", "batch_size", "buffer_size", "retry_max_delay"}

    gzip_default = True

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        self.headers = {"content-type": "text/plain; charset=utf-8"}
        self.auth: tuple[str, str] | None = None
        self.url = self._endpoint(cfg)
        self.gzip = cfg.get("gzip", self.gzip_default)
        if not isinstance(self.gzip, bool):
            raise AgentConfigError(f"{self.where}.gzip: expected true or false")
        if self.gzip:
            self.headers["content-encoding"] = "gzip"
        self.timeout = duration_option(cfg, "timeout", "5s", self.where, 0.001)
        self.idle_timeout = duration_option(cfg, "idle_connection_timeout", "120s", self.where)
        self.flush_delay = duration_option(cfg, "flush_delay", "0s", self.where)
        self.retry_max_delay = duration_option(cfg, "retry_max_delay", "30s", self.where, 0.01)
        self._int(cfg, "max_retries", 3, minimum=0)
        self._open_buffer(cfg, 20000)
        self.failures = 0
        # backoff: first delay, factor; a subclass may bound how long one batch is retried
        self.retry_first, self.retry_base = 0.5, 2.0
        self.give_up_retries: int | None = None
        self.give_up_after: float | None = None
        self._failing_since = 0.0

    def _endpoint(self, cfg: dict[str, Any]) -> str:
        """The URL to POST to; sets authentication headers (subclasses address other servers)."""
        url = self._url(cfg, ("http://", "https://"), "http://host:8082/api/write?cluster=NAME")
        jwt = self._jwt(cfg)
        if jwt is not None:
            self.headers["authorization"] = f"Bearer {jwt}"
        self._basic_auth(cfg.get("username"), cfg.get("password"), "username")
        return url

    def _basic_auth(self, user: Any, password: Any, user_key: str) -> None:
        if user or password:
            if not isinstance(user, str) or not user or not isinstance(password, str) or not password:
                raise AgentConfigError(f"{self.where}: basic authentication needs both {user_key} and password "
                                       "(strings)")
            self.auth = (user, password)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=self.idle_timeout)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits, auth=self.auth) as client:
            task_status.started()
            delay = 0.0
            batch = self.batch_size
            while True:
                await self.buffer.wait_beyond(self.buffer.head)
                if self.flush_delay and len(self.buffer) < batch:
                    await trio.sleep(self.flush_delay)
                start, lines = self.buffer.get(self.buffer.head, batch)
                if not lines:
                    continue
                try:
                    outcome = await self._post(client, lines)
                except Exception as e:  # a bug must not end delivery: log it, keep the points, retry
                    self.log.error("%s: sending failed unexpectedly", self.where, exc_info=e)
                    outcome = "retry"
                if outcome == "ok":
                    self.buffer.release(start + len(lines))
                    self.sent_points += len(lines)
                    if self.failures:
                        self.log.info("%s: delivering again after %d failed attempts", self.where, self.failures)
                    self.failures, delay, batch = 0, 0.0, self.batch_size
                elif outcome == "too_large" and len(lines) > 1:
                    batch = max(1, len(lines) // 2)
                elif outcome == "too_large":
                    self.log.error("%s: the server refuses a single line as too large; dropping it: %.200s",
                                   self.where, lines[0])
                    self.buffer.release(start + 1)
                else:
                    if self.failures == 0:
                        self._failing_since = trio.current_time()
                    self.failures += 1
                    if self._give_up(len(lines)):
                        self.buffer.release(start + len(lines))
                        self.failures, delay = 0, 0.0
                        continue
                    delay = min(self.retry_max_delay, max(self.retry_first, delay * self.retry_base))
                    await trio.sleep(delay)

    def _give_up(self, n: int) -> bool:
        """True (and logged) when a configured retry bound for this batch is exhausted."""
        over_count = self.give_up_retries is not None and self.failures > self.give_up_retries
        over_time = self.give_up_after is not None and trio.current_time() - self._failing_since >= self.give_up_after
        if over_count or over_time:
            self.log.error("%s: dropping a batch of %d points after %d failed attempts (max_retries / "
                           "max_retry_time reached)", self.where, n, self.failures)
            return True
        return False

    def _body(self, lines: list[str]) -> bytes:
        body = ("\n".join(lines) + "\n").encode()
        return gzip_mod.compress(body, compresslevel=1) if self.gzip else body

    async def _post(self, client: httpx.AsyncClient, lines: list[str]) -> str:
        body = await trio.to_thread.run_sync(self._body, lines) if len(lines) > 2000 else self._body(lines)
        try:
            r = await client.post(self.url, content=body, headers=self.headers)
        except (httpx.HTTPError, OSError) as e:
            self._complain(f"cannot reach {self.url}: {type(e).__name__}: {e}", len(lines))
            return "retry"
        if 200 <= r.status_code < 300:
            return "ok"
        if r.status_code == 413:
            return "too_large"
        detail = _error_text(r)
        if r.status_code == 400:
            self.log.error("%s: the server stored the valid lines of a batch of %d and rejected others: %s",
                           self.where, len(lines), detail)
            return "ok"
        self._complain(f"{r.status_code} from {self.url}: {detail}", len(lines))
        return "retry"

    def _complain(self, what: str, n: int) -> None:
        # 1st, 2nd, 4th, 8th... failure in a row: enough to notice, not enough to flood the log
        k = self.failures + 1
        if k & (k - 1) == 0:
            self.log.error("%s: %s; keeping %d points buffered (%d in the buffer), retry #%d",
                           self.where, what, n, len(self.buffer), k)


def _error_text(r: httpx.Response) -> str:
    try:
        doc = r.json()
        if isinstance(doc, dict) and "error" in doc:
            return str(doc["error"])
    except ValueError:
        pass
    return r.text[:300] or r.reason_phrase

