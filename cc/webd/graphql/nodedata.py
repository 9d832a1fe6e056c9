"""Metric data of whole nodes from the metric sources (node views: nodeMetrics, nodeMetricsList, clusterMetrics).

Job data has its own loader (cc.webd.jobview.job_data), which also knows which
hardware threads belong to a job; here a node is always the whole node.  Scopes are
chosen as cc-backend's metric store client does: a scope finer than the metric's
native one falls back to the native scope, coarser ones are aggregated through the
subcluster topology by the query engine.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import trio

from cc.clusters import SCOPE_RANK, Cluster
from cc.jobdata import _stats as series_stats  # cc-backend's rule: NaN anywhere -> zeros, rounded
from cc.metricsource import gather
from cc.query import Query, QueryError, QueryRequest

NAN = float("nan")

STATS_SERIES_MIN = 8  # cc-backend adds min/median/max series to metrics with at least this many series


def _ids(cluster: Cluster, host: str, metric: str, scope: str) -> tuple[str, list[str | None]] | None:
    """(scope actually queried, type ids) for one host and metric, or None if it cannot be served."""
    sc = cluster.subcluster_for_host(host)
    cm = (sc.metrics.get(metric) if sc is not None else None) or cluster.metrics.get(metric)
    if cm is None:
        return None
    native = cm.scope
    if scope == "node":
        return "node", [None]
    if SCOPE_RANK.get(scope, 0) > SCOPE_RANK.get(native, 0) or scope == native:
        scope = native
    if (scope == "accelerator") != (native == "accelerator") or sc is None:
        return None  # accelerators and hardware-thread groups do not derive from each other
    topo = sc.topology
    if scope == "node":
        return "node", [None]
    if scope == "accelerator":
        ids: list[str | None] = list(topo.accelerator_ids())
    elif scope == "hwthread":
        ids = [str(t) for t in topo.node]
    else:
        ids = [str(i) for i in range(len(topo.groups(scope)))]
    return (scope, ids) if ids else None


def _resolution(cluster: Cluster, host: str, metric: str, resolution: int) -> int:
    """``resolution`` rounded up to a multiple of the metric's timestep (the query engine needs one), so one
    request can ask for metrics of different timesteps; 0 (native) when it is not coarser than the timestep."""
    sc = cluster.subcluster_for_host(host)
    cm = (sc.metrics.get(metric) if sc is not None else None) or cluster.metrics.get(metric)
    step = int(cm.timestep) if cm is not None and cm.timestep else 0
    if resolution <= 0 or step <= 0 or resolution <= step:
        return 0
    return -(-resolution // step) * step


Where = list[tuple[str, str, str, str | None]]  # (host, metric, scope, id) of each query


def _plan(cluster: Cluster, hosts: list[str], metrics: list[str], scopes: list[str],
          resolution: int) -> tuple[list[Query], Where]:
    queries: list[Query] = []
    where: Where = []
    for host in hosts:
        for metric in metrics:
            res = _resolution(cluster, host, metric, resolution)
            done: set[str] = set()
            for want in scopes:
                got = _ids(cluster, host, metric, want)
                if got is None or got[0] in done:
                    continue
                scope, ids = got
                done.add(scope)
                for tid in ids:
                    if tid is None:
                        queries.append(Query(metric=metric, host=host, resolution=res))
                    else:
                        queries.append(Query(metric=metric, host=host, type=scope, type_ids=[tid], resolution=res))
                    where.append((host, metric, scope, tid))
    return queries, where


def _assemble(cluster: Cluster, where: Where, results: list[list[dict[str, Any]]],
              out: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> None:
    for (host, metric, scope, tid), entries in zip(where, results, strict=True):
        for e in entries:
            if e.get("error"):
                continue
            cm = cluster.metrics[metric]
            jm = out[host].setdefault(metric, {}).setdefault(scope, {
                "unit": {"base": cm.unit.get("base") or "", "prefix": cm.unit.get("prefix")},
                "timestep": int(e.get("resolution") or cm.timestep), "series": [], "statisticsSeries": None})
            jm["series"].append({"hostname": host, "id": tid, "data": e.get("data") or [],
                                 "statistics": series_stats(e.get("avg", NAN), e.get("min", NAN), e.get("max", NAN))})


def _add_statistics_series(out: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> None:
    for per_host in out.values():
        for scoped in per_host.values():
            for jm in scoped.values():
                if len(jm["series"]) >= STATS_SERIES_MIN:
                    jm["statisticsSeries"] = statistics_series(jm["series"])


def statistics_series(series: list[dict[str, Any]]) -> dict[str, list[float]] | None:
    """Per time step the mean, median, min and max over all series (for plots with many lines)."""
    n = min(len(s["data"]) for s in series)
    if n == 0:
        return None
    values = np.array([np.asarray(s["data"][:n], dtype=float) for s in series])
    with np.errstate(all="ignore"), warnings.catch_warnings():  # all-NaN steps are simply null
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"mean": np.nanmean(values, axis=0).tolist(), "median": np.nanmedian(values, axis=0).tolist(),
                "min": np.nanmin(values, axis=0).tolist(), "max": np.nanmax(values, axis=0).tolist()}


async def load_nodes(web: Any, cluster: Cluster, hosts: list[str], metrics: list[str], scopes: list[str], frm: int,
                     to: int, resolution: int, minimum_points: int) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """host -> metric -> scope -> JobMetric (cc's shape) for whole nodes.

    Each host's data comes from the source ``metric-store-external`` routes its
    subcluster to (or the built-in store); several sources are asked at once.
    """
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {h: {} for h in hosts}
    limiter = web.query_limiter

    async def one(source: Any, group: list[str]) -> None:
        queries, where = await trio.to_thread.run_sync(_plan, cluster, group, metrics, scopes, resolution,
                                                       limiter=limiter)
        if not queries:
            return
        req = QueryRequest(cluster=cluster.name, frm=frm, to=to, queries=queries)
        result = await source.query(req, minimum_points=minimum_points)
        await trio.to_thread.run_sync(_assemble, cluster, where, result["results"], out, limiter=limiter)

    await gather(web.sources.group_hosts(cluster, hosts), one)
    await trio.to_thread.run_sync(_add_statistics_series, out, limiter=limiter)
    return out


async def store_hosts(web: Any, cluster: Cluster) -> list[str]:
    """Hosts the metric sources of a cluster hold data of."""
    return await web.sources.hosts(cluster)


__all__ = ["QueryError", "load_nodes", "statistics_series", "store_hosts"]
