"""A job's metric data in ClusterCockpit's ``JobData`` shape, from a metric source or the archive.

``{metric: {scope: {"unit", "timestep", "series": [{"hostname", "id"?, "statistics":
{"min", "avg", "max"}, "data": [...]}], "statisticsSeries"?: {...}}}}``

Missing points are ``None`` (JSON null) in every document this module returns, so any
JSON encoder writes them the way ClusterCockpit does; no NaN ever leaves it.

Queries follow cc-backend's ``buildQueries``/``BuildScopeQueries``: the scope of a
result is the coarser of the metric's native scope and the requested one, restricted to
the job's resources (its hardware threads per host, all of the node's when absent, and
its accelerators).  On a node the job shares, node scope aggregates only the job's
hardware threads (or the cores/sockets they touch).  Series ids are the scope ids
(hardware thread number, core/socket/memory-domain index, accelerator id).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from cc.archive import JobArchive
from cc.clusters import Cluster, MetricCatalog, SubCluster, Topology, footprint_key
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job
from cc.query import Query, QueryRequest, execute, resample
from cc.shm import Store

# cc-lib's scope granularity: larger is coarser; accelerators rank below hardware threads,
# so that max(native, requested) never turns a CPU metric into an accelerator one.
GRANULARITY = {"node": 10, "socket": 5, "die": 4.5, "memoryDomain": 4, "llc": 3.5, "core": 3, "hwthread": 2,
               "accelerator": 1}
STATS_SERIES_MIN_SERIES = 8  # cc-backend adds statisticsSeries to a scope with this many series or more
PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
DEFAULT_MINIMUM_POINTS = 1000


def unit_of(raw: dict[str, Any] | None) -> dict[str, str]:
    """A unit as the schemas want it: ``base`` always, ``prefix`` only when set."""
    raw = raw or {}
    out = {"base": str(raw.get("base") or "")}
    if raw.get("prefix"):
        out["prefix"] = str(raw["prefix"])
    return out


def subcluster_of(job: Job, cluster: Cluster) -> SubCluster:
    """The job's subcluster (by name, else by its first host); ValueError names what is missing."""
    sc = cluster.subcluster(job.subcluster) if job.subcluster else None
    if sc is None and job.resources and not job.subcluster:
        sc = cluster.subcluster_for_host(job.resources[0].get("hostname", ""))
    if sc is None:
        raise ValueError(f"subCluster {job.subcluster!r} is not defined in cluster.json of cluster {cluster.name!r}")
    return sc


# -- building the queries ---------------------------------------------------------------------

@dataclass
class _Want:
    metric: str
    scope: str
    host: str
    id: str | None


def _touched(topo: Topology, scope: str, hw: set[int]) -> list[int]:
    return [i for i, g in enumerate(topo.groups(scope)) if hw.intersection(g)]


def _native_ids(topo: Topology, native: str, hw: list[int]) -> list[str]:
    if native == "hwthread":
        return [str(t) for t in hw]
    return [str(i) for i in _touched(topo, native, set(hw))]


def _host_queries(metric: str, native: str, scope: str, res: dict[str, Any], topo: Topology,
                  resolution: int) -> list[tuple[Query, _Want]]:
    host = res["hostname"]
    hw = list(res.get("hwthreads") or topo.node)
    accs = [str(a) for a in res.get("accelerators") or ()]

    def q(type_: str | None, ids: list[str], aggreg: bool = False) -> Query:
        return Query(metric=metric, host=host, type=type_, type_ids=ids, aggreg=aggreg, resolution=resolution)

    if native == "accelerator":
        if scope == "accelerator":
            return [(q("accelerator", [a]), _Want(metric, scope, host, a)) for a in accs]
        if scope == "node" and accs:
            return [(q("accelerator", accs, True), _Want(metric, scope, host, None))]
        return []
    if scope == "node":
        whole = not res.get("hwthreads") or set(hw) >= set(topo.node)
        if native == "node" or whole:
            return [(q(None, []), _Want(metric, scope, host, None))]
        ids = _native_ids(topo, native, hw)
        return [(q(native, ids, True), _Want(metric, scope, host, None))] if ids else []
    if scope == "hwthread":
        return [(q("hwthread", [str(t)]), _Want(metric, scope, host, str(t))) for t in hw]
    return [(q(scope, [str(i)]), _Want(metric, scope, host, str(i))) for i in _touched(topo, scope, set(hw))]


def build_queries(job: Job, cluster: Cluster, metrics: Iterable[str] | None, scopes: Iterable[str] | None,
                  resolution: int = 0) -> list[tuple[Query, _Want]]:
    """The store queries for a job, each with the metric, scope, host and series id it answers."""
    sc = subcluster_of(job, cluster)
    names = list(sc.metrics) if metrics is None else [m for m in metrics if m in sc.metrics]
    wanted_scopes = [s for s in (list(scopes or ()) or ["node"]) if s in GRANULARITY]
    out: list[tuple[Query, _Want]] = []
    for metric in names:
        native = sc.metrics[metric].scope
        if native == "accelerator" and not job.num_acc and not any(r.get("accelerators") for r in job.resources):
            continue
        done: set[str] = set()
        for requested in wanted_scopes:
            scope = native if GRANULARITY.get(native, 10) > GRANULARITY[requested] else requested
            if scope in done:
                continue
            done.add(scope)
            for res in job.resources:
                out.extend(_host_queries(metric, native, scope, res, sc.topology, resolution))
    return out


# -- loading ----------------------------------------------------------------------------------

def _to_list(values: np.ndarray) -> list[float | None]:
    out = values.tolist()
    if np.isnan(values).any():
        out = [None if v != v else v for v in out]
    return out


def _stats(avg: float, mn: float, mx: float) -> dict[str, float]:
    """cc-backend's series statistics: NaN anywhere -> all zero; rounded to 2 decimals."""
    if math.isnan(avg) or math.isnan(mn) or math.isnan(mx):
        return {"avg": 0.0, "min": 0.0, "max": 0.0}
    return {"avg": round(avg, 2), "min": round(mn, 2), "max": round(mx, 2)}


def running_request(job: Job, cluster: Cluster, metrics: list[str] | None, scopes: list[str] | None,
                    resolution: int = 0, *, now: float | None = None,
                    with_stats: bool = True) -> tuple[QueryRequest, list[_Want]] | None:
    """The one ``/api/query`` request for a job's data (None: nothing to ask), with what each query answers.

    The time range is start .. start + duration, or start .. now while the job runs.
    """
    wants = build_queries(job, cluster, metrics, scopes, resolution)
    if not wants:
        return None
    stop = int(time.time() if now is None else now) if job.state == "running" else job.start_time + job.duration
    req = QueryRequest(cluster=job.cluster, frm=job.start_time, to=max(stop, job.start_time),
                       queries=[q for q, _ in wants], with_stats=with_stats)
    return req, [w for _, w in wants]


def assemble(cluster: Cluster, wants: list[_Want], resp: dict[str, Any], *, errors: list[str] | None = None,
             statistics_series: bool = True) -> dict[str, Any]:
    """JobData from the answer to :func:`running_request` (from any metric source).

    Series without any value in the range are left out (as cc-backend leaves out series
    it cannot fetch); messages about failed selections go to ``errors``.
    """
    groups: dict[tuple[str, str], list[tuple[_Want, dict[str, Any]]]] = {}
    for want, entries in zip(wants, resp["results"], strict=True):
        for entry in entries:
            if "error" in entry:
                if errors is not None:
                    errors.append(f"{want.metric} on {want.host}: {entry['error']}")
                continue
            data = entry.get("data")
            if data is None or not len(data) or np.isnan(data).all():
                continue
            groups.setdefault((want.metric, want.scope), []).append((want, entry))
    out: dict[str, Any] = {}
    for (metric, scope), members in groups.items():
        width = max(len(e["data"]) for _, e in members)
        series = []
        for want, entry in members:
            values = np.asarray(entry["data"], dtype=np.float64)
            if len(values) < width:
                values = np.concatenate((values, np.full(width - len(values), np.nan)))
            s: dict[str, Any] = {"hostname": want.host}
            if want.id is not None:
                s["id"] = want.id
            s["statistics"] = _stats(entry["avg"], entry["min"], entry["max"])
            s["data"] = _to_list(values)
            series.append(s)
        out.setdefault(metric, {})[scope] = {
            "unit": unit_of(cluster.metrics[metric].unit),
            "timestep": int(members[0][1]["resolution"]),
            "series": series,
        }
    if statistics_series:
        add_statistics_series(out)
    return out


def load_running(job: Job, cluster: Cluster, store: Store, catalog: MetricCatalog, metrics: list[str] | None,
                 scopes: list[str] | None, resolution: int = 0, *, minimum_points: int = DEFAULT_MINIMUM_POINTS,
                 now: float | None = None, errors: list[str] | None = None,
                 statistics_series: bool = True) -> dict[str, Any]:
    """JobData of a running (or stopped, not yet archived) job from shared memory (blocking)."""
    plan = running_request(job, cluster, metrics, scopes, resolution, now=now)
    if plan is None:
        return {}
    req, wants = plan
    resp = execute(req, store, {cluster.name: cluster}, catalog, minimum_points=minimum_points, numpy_data=True)
    return assemble(cluster, wants, resp, errors=errors, statistics_series=statistics_series)


async def load_running_from(source: Any, job: Job, cluster: Cluster, metrics: list[str] | None,
                            scopes: list[str] | None, resolution: int = 0, *,
                            minimum_points: int = DEFAULT_MINIMUM_POINTS, now: float | None = None,
                            errors: list[str] | None = None, statistics_series: bool = True,
                            limiter: trio.CapacityLimiter | None = None) -> dict[str, Any]:
    """:func:`load_running` from any :class:`cc.metricsource.MetricSource` (shared memory or an external store).

    Raises :class:`cc.metricsource.MetricSourceError` when the source fails as a whole.
    """
    plan = running_request(job, cluster, metrics, scopes, resolution, now=now)
    if plan is None:
        return {}
    req, wants = plan
    resp = await source.query(req, minimum_points=minimum_points, numpy_data=True)
    return await trio.to_thread.run_sync(
        lambda: assemble(cluster, wants, resp, errors=errors, statistics_series=statistics_series), limiter=limiter)


def _filter(data: dict[str, Any], metrics: list[str] | None, scopes: list[str] | None) -> dict[str, Any]:
    """cc-backend's selection from an archived job: wanted metrics; wanted scopes where a metric has several."""
    out: dict[str, Any] = {}
    for metric in (data if metrics is None else metrics):
        per_scope = data.get(metric)
        if not isinstance(per_scope, dict):
            continue
        if scopes and len(per_scope) > 1:
            subset = {s: per_scope[s] for s in scopes if s in per_scope}
            per_scope = subset or per_scope
        out[metric] = dict(per_scope)
    return out


def _matrix(rows: list[list[float | None]]) -> np.ndarray:
    """Series data (lists with None) as one float array, NaN-padded to the longest."""
    width = max((len(r) for r in rows), default=0)
    if all(len(r) == width for r in rows):
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, :len(r)] = np.array(r, dtype=np.float64)
    return out


def _resample_metric(jm: dict[str, Any], resolution: int, minimum_points: int) -> dict[str, Any]:
    series = jm.get("series") or []
    timestep = int(jm.get("timestep") or 0)
    if timestep > 0:  # an archived timestep that does not divide the resolution (found by fuzzing)
        resolution -= resolution % timestep
    if not series or resolution <= timestep:
        return jm
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(series):
        by_len.setdefault(len(s.get("data") or ()), []).append(i)
    new_series = list(series)
    new_step = timestep
    for _, idx in sorted(by_len.items()):
        values, step = resample(_matrix([series[i]["data"] for i in idx]), timestep, resolution, minimum_points)
        if step == timestep:
            continue
        new_step = step
        for row, i in zip(values, idx, strict=True):
            new_series[i] = {**series[i], "data": _to_list(row)}
    if new_step == timestep:
        return jm
    out = {k: v for k, v in jm.items() if k != "statisticsSeries"}  # no longer matches the new time steps
    out["series"] = new_series
    out["timestep"] = new_step
    return out


def load_archived(archive: JobArchive, job: Job, metrics: list[str] | None, scopes: list[str] | None, resolution: int = 0,
                  *, minimum_points: int = DEFAULT_MINIMUM_POINTS, statistics_series: bool = True) -> dict[str, Any]:
    """JobData of an archived job from ``data.json``: selected metrics/scopes, LTTB-downsampled to ``resolution``.

    The archive's cached document is never modified; what changes is copied.
    """
    data = _filter(archive.load_data(job.cluster, job.job_id, job.start_time), metrics, scopes)
    if resolution:
        for per_scope in data.values():  # fresh dicts from _filter: safe to replace entries
            for scope, jm in per_scope.items():
                per_scope[scope] = _resample_metric(jm, resolution, minimum_points)
    if statistics_series:
        add_statistics_series(data)
    return data


def load(job: Job, cluster: Cluster, *, store: Store | None = None, catalog: MetricCatalog | None = None,
         archive: JobArchive | None = None, metrics: list[str] | None = None, scopes: list[str] | None = None,
         resolution: int = 0, minimum_points: int = DEFAULT_MINIMUM_POINTS) -> dict[str, Any]:
    """From the archive once archived, else from shared memory (running, waiting for or failed archiving)."""
    if job.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL and job.state != "running":
        if archive is None:
            raise ValueError(f"job {job.job_id} is archived but no archive was given")
        return load_archived(archive, job, metrics, scopes, resolution, minimum_points=minimum_points)
    if store is None or catalog is None:
        raise ValueError(f"job {job.job_id} is not archived: loading it needs the metric store and catalog")
    return load_running(job, cluster, store, catalog, metrics, scopes or ["node"], resolution,
                        minimum_points=minimum_points)


# -- derived values ---------------------------------------------------------------------------

def add_statistics_series(data: dict[str, Any], min_series: int = STATS_SERIES_MIN_SERIES) -> dict[str, Any]:
    """Add ``statisticsSeries`` (min, max, mean, median, percentiles 10..90 per time step) where a
    scope has ``min_series`` series or more and none yet; steps with fewer than 3 values are null.

    The scope entries of ``data`` are replaced, never modified, so the per-scope dicts
    must be the caller's own while the metric documents may be shared.
    """
    for per_scope in data.values():
        if not isinstance(per_scope, dict):
            continue
        for scope, jm in list(per_scope.items()):
            series = jm.get("series") or []
            if "statisticsSeries" in jm or len(series) < min_series:
                continue
            m = _matrix([s.get("data") or [] for s in series])
            if not m.shape[1]:
                continue
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                count = (~np.isnan(m)).sum(axis=0)
                few = count < 3
                pct = _nan_percentiles(m, count, PERCENTILES)
                rows = {"min": np.nanmin(m, axis=0), "max": np.nanmax(m, axis=0), "mean": np.nanmean(m, axis=0),
                        "median": pct[PERCENTILES.index(50)]}
            for v in (*rows.values(), pct):
                v[..., few] = np.nan
            stats = {k: _to_list(v) for k, v in rows.items()}
            stats["percentiles"] = {str(p): _to_list(pct[i]) for i, p in enumerate(PERCENTILES)}
            per_scope[scope] = {**jm, "statisticsSeries": stats}  # a new dict: jm may be shared (archive cache)
    return data


def _nan_percentiles(m: np.ndarray, count: np.ndarray, qs: tuple[int, ...]) -> np.ndarray:
    """Per column, NaN-ignoring percentiles with linear interpolation (numpy's default method),
    vectorised: one sort instead of np.nanpercentile's loop over columns."""
    s = np.sort(m, axis=0)  # NaN sorts last
    cols = np.arange(m.shape[1])
    last = np.maximum(count - 1, 0)
    out = np.empty((len(qs), m.shape[1]))
    for i, q in enumerate(qs):
        pos = last * (q / 100.0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        a, b = s[lo, cols], s[hi, cols]
        out[i] = a + (b - a) * (pos - lo)
    out[:, count == 0] = np.nan
    return out


def job_statistics(data: dict[str, Any], job: Job, cluster: Cluster) -> dict[str, Any]:
    """meta.json ``statistics`` from the node-scope series (as cc-backend's archiver).

    avg = sum of node averages / numNodes, rounded to 2 decimals; min = min of minimums;
    max = max of maximums; unit from cluster.json.  Metrics without node series are left out.
    """
    out: dict[str, Any] = {}
    nodes = max(1, job.num_nodes or len(job.resources))
    for metric, per_scope in data.items():
        node = per_scope.get("node") if isinstance(per_scope, dict) else None
        series = (node or {}).get("series") or []
        if not series:
            continue
        st = [s.get("statistics") or {} for s in series]
        cm = cluster.metrics.get(metric)
        out[metric] = {
            "unit": unit_of(cm.unit if cm is not None else node.get("unit")),
            "avg": round(sum(float(x.get("avg", 0.0)) for x in st) / nodes, 2),
            "min": min(float(x.get("min", 0.0)) for x in st),
            "max": max(float(x.get("max", 0.0)) for x in st),
        }
    return out


def footprint(job: Job, cluster: Cluster, statistics: dict[str, Any]) -> dict[str, float]:
    """``<metric>_<avg|min|max>`` for the metrics marked ``footprint`` in the job's subcluster (0 if no data)."""
    sc = subcluster_of(job, cluster)
    out: dict[str, float] = {}
    for name, m in sc.metrics.items():
        key = footprint_key(m)
        if key:
            out[key] = float((statistics.get(name) or {}).get(m.raw["footprint"], 0.0))
    return out


def energy(job: Job, cluster: Cluster, statistics: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """Total kWh and kWh per metric marked ``energy`` (cc-backend's UpdateEnergy).

    ``power`` metrics: avg node power (W) x numNodes x duration (h) / 1000, rounded to 2
    decimals.  ``energy`` metrics count 0, as in cc-backend (not implemented there).
    """
    sc = subcluster_of(job, cluster)
    per: dict[str, float] = {}
    for name, m in sc.metrics.items():
        kind = m.raw.get("energy")
        if not kind:
            continue
        kwh = 0.0
        if kind == "power":
            avg = float((statistics.get(name) or {}).get("avg", 0.0))
            kwh = round(avg * job.num_nodes * (job.duration / 3600.0) / 1000.0, 2)
        per[name] = kwh
    return round(sum(per.values()), 2), per
