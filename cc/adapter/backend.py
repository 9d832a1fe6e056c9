"""Talking to cc-backend's REST job API exactly as cc-slurm-adapter does.

``POST /api/jobs/start_job/`` (201 created, 422 already there), ``POST /api/jobs/stop_job/``
(200 stopped, 422 already stopped, 404 unknown), ``GET /api/jobs/?state=running``; the
token goes in ``X-Auth-Token``.  Outcomes are classified so the sync can tell "try again
later" (backend down, 5xx, auth) from "this job will never be accepted" (400).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import httpx
import orjson

log = logging.getLogger("cc-adapter")


class BackendUnavailable(Exception):
    """cc-backend cannot be reached or answers with a transient error; everything is retried later."""


class Outcome(enum.Enum):
    DONE = "done"  # 201 / 200: created / stopped
    EXISTS = "exists"  # 422 on start (already started) or stop (already stopped)
    NOT_FOUND = "not_found"  # 404 on stop: the backend does not know the job
    REJECTED = "rejected"  # other 4xx: the backend will never take this payload


def _error_text(r: httpx.Response) -> str:
    try:
        doc = r.json()
        if isinstance(doc, dict) and doc.get("error"):
            return str(doc["error"])
    except ValueError:
        pass
    return r.text[:300]


class BackendClient:
    """One keep-alive HTTP client for the daemon's lifetime."""

    def __init__(self, url: str, jwt: str, *, timeout: float = 30):
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=timeout, trust_env=False, headers={
            "X-Auth-Token": jwt, "Accept": "application/json", "Content-Type": "application/json"})

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            r = await self.http.request(method, self.url + path, **kw)
        except httpx.HTTPError as e:
            raise BackendUnavailable(f"{method} {path}: {type(e).__name__}: {e}") from None
        if r.status_code >= 500 or r.status_code in (401, 403, 408, 429):
            raise BackendUnavailable(f"{method} {path}: HTTP {r.status_code}: {_error_text(r)}")
        return r

    async def start_job(self, payload: dict[str, Any]) -> tuple[Outcome, str]:
        r = await self._request("POST", "/api/jobs/start_job/", content=orjson.dumps(payload))
        if r.status_code in (200, 201):
            return Outcome.DONE, ""
        if r.status_code == 422:
            return Outcome.EXISTS, _error_text(r)
        if r.status_code == 404:
            # the endpoint itself is missing: a backend without the job API; retry later
            raise BackendUnavailable(f"POST /api/jobs/start_job/: HTTP 404: {_error_text(r)}")
        return Outcome.REJECTED, f"HTTP {r.status_code}: {_error_text(r)}"

    async def stop_job(self, payload: dict[str, Any], partition: str = "") -> tuple[Outcome, str]:
        """(``partition`` only matters for the NATS announcement, cc.adapter.natspub.)"""
        r = await self._request("POST", "/api/jobs/stop_job/", content=orjson.dumps(payload))
        if r.status_code == 200:
            return Outcome.DONE, ""
        if r.status_code == 422:
            return Outcome.EXISTS, _error_text(r)
        if r.status_code == 404:
            return Outcome.NOT_FOUND, _error_text(r)
        return Outcome.REJECTED, f"HTTP {r.status_code}: {_error_text(r)}"

    async def node_states(self, cluster: str, nodes: list[dict[str, Any]]) -> None:
        """``POST /api/nodestate/`` (cc-slurm-adapter's node-state sync); a refusal is logged, not retried."""
        r = await self._request("POST", "/api/nodestate/", content=orjson.dumps({"cluster": cluster, "nodes": nodes}))
        if r.status_code != 200:
            log.error("cc-backend refused the node states of %s: HTTP %d: %s", cluster, r.status_code, _error_text(r))

    async def running_jobs(self, cluster: str, per_page: int = 1000) -> list[dict[str, Any]]:
        """All jobs cc-backend lists as running on a cluster (paged)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            r = await self._request("GET", "/api/jobs/", params={
                "state": "running", "cluster": cluster, "items-per-page": per_page, "page": page,
                "with-metadata": "false"})
            if r.status_code != 200:
                raise BackendUnavailable(f"GET /api/jobs/: HTTP {r.status_code}: {_error_text(r)}")
            try:
                doc = r.json()
            except ValueError:
                raise BackendUnavailable(f"GET /api/jobs/: answer is not JSON: {r.text[:200]!r}") from None
            jobs = doc.get("jobs") if isinstance(doc, dict) else None
            if not isinstance(jobs, list):
                raise BackendUnavailable(f"GET /api/jobs/: answer has no 'jobs' list: {r.text[:200]!r}")
            out.extend(j for j in jobs if isinstance(j, dict))
            if len(jobs) < per_page or page >= 10000:
                return out
            page += 1
