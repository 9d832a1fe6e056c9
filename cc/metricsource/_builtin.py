"""The built-in store: the query engine over this installation's shared memory, in worker threads."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import trio

from cc.clusters import MetricCatalog
from cc.query import QueryRequest, execute
from cc.shm import Store

MAX_MISSING_POINTS = 5  # a series is stale after this many missing timesteps (as cc-metric-store)


def health_of_host(store: Store, cluster: str, host: str, metrics: list[str], now: float) -> dict[str, Any]:
    """cc-metric-store's rule: missing = no series; degraded = a series older than 5 timesteps."""
    series = store.series_of_host(cluster, host)
    missing, degraded = [], []
    for m in metrics:
        sids = series.get(m)
        if not sids:
            missing.append(m)
            continue
        lasts = store.last_bins(sids)
        freq = store.frequency_of(sids[0])
        ends = (lasts + 1) * freq
        if (lasts < 0).any() or (now - ends > MAX_MISSING_POINTS * freq).any():
            degraded.append(m)
    healthy = len(metrics) - len(missing) - len(degraded)
    if not series:
        state = "failed"
    elif not missing and not degraded:
        state = "full"
    elif healthy == 0:
        state = "failed"
    else:
        state = "partial"
    return {
        "State": state,
        "HealthMetrics": orjson.dumps({"missing": missing, "degraded": degraded}).decode(),
        "missing": missing,
        "degraded": degraded,
    }


class BuiltinSource:
    """Shared memory of this installation.

    ``catalog`` is called for every request, so a process that re-reads its cluster.json
    files (the archiver) always queries with the current topology; the catalog's
    ``clusters`` are the topologies the engine derives scopes from.
    """

    name = "built-in store"

    def __init__(self, store: Store, catalog: Callable[[], MetricCatalog], limiter: trio.CapacityLimiter | None = None):
        self.store = store
        self.catalog = catalog
        self.limiter = limiter

    async def query(self, req: QueryRequest, *, minimum_points: int = 1000,
                    numpy_data: bool = False) -> dict[str, Any]:
        catalog = self.catalog()
        return await trio.to_thread.run_sync(
            lambda: execute(req, self.store, catalog.clusters, catalog, minimum_points=minimum_points,
                            numpy_data=numpy_data),
            limiter=self.limiter)

    async def hosts(self, cluster: str, metric: str = "") -> list[str]:
        return await trio.to_thread.run_sync(self.store.hosts, cluster)

    async def health(self, cluster: str, nodes: list[str], metrics: list[str]) -> dict[str, dict[str, Any]]:
        now = time.time()
        return await trio.to_thread.run_sync(
            lambda: {h: health_of_host(self.store, cluster, h, metrics, now) for h in nodes})

    async def aclose(self) -> None:
        pass  # the store's segments belong to the process, which closes them at exit
