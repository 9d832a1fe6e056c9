"""The interface every metric source offers (cc-metric-store's query and health-check API)."""

from __future__ import annotations

from typing import Any, Protocol

from cc.query import QueryRequest


class MetricSourceError(Exception):
    """An external metric store could not answer; the message names the store's URL and why."""


class MetricSource(Protocol):
    """What readers of metric data need; both implementations answer in cc-metric-store's shapes."""

    name: str  # for messages and logs: "built-in store" or the external store's URL

    async def query(self, req: QueryRequest, *, minimum_points: int = 1000,
                    numpy_data: bool = False) -> dict[str, Any]:
        """``/api/query``'s answer: ``{"results": [[entry, ...] per query], "queries"?: [...]}``.

        Entries hold ``data`` (NaN for missing points; float64 arrays with ``numpy_data``),
        ``from``, ``to``, ``resolution``, ``avg``/``min``/``max`` (NaN when unknown), or an
        ``error`` message.  Raises :class:`cc.query.QueryError` for a refused request and
        :class:`MetricSourceError` when the source itself fails.
        """
        ...

    async def hosts(self, cluster: str, metric: str) -> list[str]:
        """Hosts the source holds data of for ``cluster`` (``metric``: any metric of the cluster)."""
        ...

    async def health(self, cluster: str, nodes: list[str], metrics: list[str]) -> dict[str, dict[str, Any]]:
        """cc-metric-store's health check: per node ``{"State", "HealthMetrics", ...}``."""
        ...

    async def aclose(self) -> None:
        ...
