"""An external cc-metric-store-compatible store: the query request as JSON to its ``/api/query``.

As cc-backend's metric store client: ``GET <url>/api/query?version=v2`` with the request
in the body and ``Authorization: Bearer <token>``; ``GET <url>/api/healthcheck`` for node
health.  The target is another installation of ours (its web address) or a real
cc-metric-store.  Every failure becomes a :class:`MetricSourceError` naming the URL;
the first failure after a good answer is logged as a warning, the recovery once.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import trio

from cc.metricsource._base import MetricSourceError
from cc.query import QueryRequest

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("metricsource")

TIMEOUT = 30.0  # seconds for one request (cc-backend: 10 s; a 1000-node job at native resolution needs more)
NAN = float("nan")


def _float(v: Any) -> float:
    """A statistic from JSON: null (cc-metric-store's NaN) -> NaN."""
    if v is None:
        return NAN
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number or null, got {v!r}")
    return float(v)


def _int(v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{key}: expected an integer, got {v!r}")
    return int(v)


def _entry(raw: Any, req: QueryRequest, numpy_data: bool) -> dict[str, Any]:
    """One result entry in the shape :func:`cc.query.execute` produces."""
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object, got {type(raw).__name__}")
    err = raw.get("error")
    if err is not None:
        return {"error": str(err), "from": req.frm, "to": req.to, "resolution": 0, "avg": NAN, "min": NAN,
                "max": NAN}
    out: dict[str, Any] = {"from": _int(raw.get("from", req.frm), "from"), "to": _int(raw.get("to", req.to), "to"),
                           "resolution": _int(raw.get("resolution") or 0, "resolution"),
                           "avg": _float(raw.get("avg")), "min": _float(raw.get("min")), "max": _float(raw.get("max"))}
    data = raw.get("data")
    if data is not None:
        if not isinstance(data, list):
            raise ValueError(f"data: expected a list, got {type(data).__name__}")
        values = np.array(data, dtype=np.float64)  # null -> NaN; a string or object raises
        if values.ndim != 1:
            raise ValueError("data: expected a flat list of numbers")
        out["data"] = values if numpy_data else values.tolist()
    elif req.with_data:
        out["data"] = np.empty(0) if numpy_data else []
    return out


def decode_answer(body: bytes, req: QueryRequest, numpy_data: bool) -> dict[str, Any]:
    """Check and convert an ``/api/query`` answer; ValueError says what is wrong with it."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ValueError("expected an object with a 'results' list")
    echoed = doc.get("queries") if req.for_all_nodes is not None else None
    if echoed is not None and (not isinstance(echoed, list) or not all(isinstance(q, dict) for q in echoed)):
        raise ValueError("'queries': expected a list of query objects")
    expected = len(req.queries) + len(echoed or ())
    if len(doc["results"]) != expected:
        raise ValueError(f"{len(doc['results'])} results for {expected} queries")
    results = []
    for i, row in enumerate(doc["results"]):
        if row is None:  # Go encodes an empty slice that was never made as null
            row = []
        if not isinstance(row, list):
            raise ValueError(f"results[{i}]: expected a list, got {type(row).__name__}")
        try:
            results.append([_entry(e, req, numpy_data) for e in row])
        except ValueError as e:
            raise ValueError(f"results[{i}]: {e}") from None
    out: dict[str, Any] = {"results": results}
    if echoed is not None:
        out["queries"] = echoed
    return out


def _reason(r: httpx.Response) -> str:
    """The store's own words for a refusal: our ``{"error": ...}``, else the start of its text."""
    text = r.text.strip()
    try:
        doc = orjson.loads(text)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            text = doc["error"]
    except orjson.JSONDecodeError:
        pass
    return f"HTTP {r.status_code} {r.reason_phrase}" + (f": {text[:300]}" if text else "")


class ExternalSource:
    """One ``metric-store-external`` target (several scopes may share one URL, and then one client)."""

    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT):
        self.url = url.rstrip("/")
        self.name = f"external metric store {self.url}"
        self.token = token
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._failing = False

    def _http(self) -> httpx.AsyncClient:
        import httpx  # here, not at the top: the fork server preloads the archiver without needing it

        if self._client is None:
            # No proxy from the environment (stores are on the cluster network; a proxy variable
            # meant for the internet must not capture them); a TLS context only for https.
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False,
                                             verify=self.url.startswith("https:"))
        return self._client

    async def _get(self, path: str, doc: dict[str, Any], params: dict[str, str] | None = None) -> bytes:
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        where = f"{self.name} ({path})"
        started = time.monotonic()
        try:
            r = await self._http().request("GET", self.url + path, params=params, content=orjson.dumps(doc),
                                           headers=headers)
        except httpx.TimeoutException:
            raise self._failed(f"{where}: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise self._failed(f"{where}: not reachable: {type(e).__name__}: {e or 'connection failed'}") from None
        if r.status_code != 200:
            hint = " (check the token in metric-store-external)" if r.status_code in (401, 403) else ""
            raise self._failed(f"{where}: {_reason(r)}{hint}", refused=r.status_code == 400)
        if self._failing:
            self._failing = False
            log.info("%s answers again (%.0f ms)", self.name, (time.monotonic() - started) * 1000)
        return r.content

    def _failed(self, msg: str, refused: bool = False) -> MetricSourceError:
        """A refused request (400) is the caller's problem; anything else is the store's, logged once."""
        if not refused and not self._failing:
            self._failing = True
            log.warning("%s", msg)
        return MetricSourceError(msg)

    async def query(self, req: QueryRequest, *, minimum_points: int = 1000,
                    numpy_data: bool = False) -> dict[str, Any]:
        """``minimum_points`` is the external store's own setting (its ``main.resampling``), not ours."""
        body = await self._get("/api/query", req.to_json(), {"version": "v2"})
        try:
            return await trio.to_thread.run_sync(decode_answer, body, req, numpy_data)
        except ValueError as e:
            raise self._failed(f"{self.name} (/api/query): unexpected answer: {e}") from None

    async def hosts(self, cluster: str, metric: str) -> list[str]:
        """cc-metric-store has no host list; ``for-all-nodes`` echoes one query per host it holds."""
        now = int(time.time())
        req = QueryRequest(cluster=cluster, frm=now, to=now, for_all_nodes=[metric], with_stats=False,
                           with_data=False)
        answer = await self.query(req)
        return sorted({str(q.get("host")) for q in answer.get("queries") or () if q.get("host")})

    async def health(self, cluster: str, nodes: list[str], metrics: list[str]) -> dict[str, dict[str, Any]]:
        body = await self._get("/api/healthcheck", {"cluster": cluster, "nodes": nodes, "metric-names": metrics})
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise self._failed(f"{self.name} (/api/healthcheck): unexpected answer: not JSON: {e}") from None
        if not isinstance(doc, dict) or not all(isinstance(v, dict) and "State" in v for v in doc.values()):
            raise self._failed(f"{self.name} (/api/healthcheck): unexpected answer: expected "
                               "{host: {\"State\", \"HealthMetrics\"}}")
        return doc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
