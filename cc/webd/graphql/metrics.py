"""Metric data of jobs: ``jobMetrics``, ``jobStats``, ``scopedJobStats`` and the many-job analyses
(``jobsMetricStats``, ``jobsFootprints``, ``rooflineHeatmap``).

The data comes from :func:`cc.webd.jobview.job_data` (the job's metric source -- shared
memory or an external store -- while it runs or waits for the archiver, the archive
afterwards), as for the REST API.
"""

from __future__ import annotations

import math
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from cc.db import (
    MONITORING_ARCHIVING_FAILED,
    MONITORING_ARCHIVING_SUCCESSFUL,
    MONITORING_DISABLED,
    FilterError,
    Job,
)
from cc.db import _stats as statsdb
from cc.db._filters import build_where, order_clause
from cc.metricsource import MetricSourceError
from cc.webd.graphql.context import (
    MAX_JOBS_FOR_ANALYSIS,
    GQLContext,
    check_filters,
    filter_error,
    gctx,
    resolver,
)
from cc.webd.graphql.jobs import visible_job
from cc.webd.jobview import attach_statistics, job_data

NAN = float("nan")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def job_metric_names(c: GQLContext, job: Job, metrics: list[str] | None) -> list[str] | None:
    """The requested metrics minus those restricted for the caller (None = all the job's cluster has)."""
    hidden = c.restricted(job.cluster, job.subcluster)
    if metrics is None:
        if not hidden:
            return None
        cluster = c.web.clusters.get(job.cluster)
        metrics = list(cluster.metrics) if cluster is not None else []
    return [m for m in metrics if m not in hidden]


async def load_data(c: GQLContext, job: Job, metrics: list[str] | None, scopes: list[str],
                    resolution: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    names = job_metric_names(c, job, metrics)
    if names == []:
        return {}
    try:
        return await job_data(c.web, job, names, scopes, resolution, minimum_points=c.minimum_points)
    except (LookupError, ValueError, OSError, MetricSourceError) as e:
        raise GraphQLError(f"loading metric data of job {job.id} failed: {e}") from None


def _node_stats(series: list[dict[str, Any]]) -> dict[str, float]:
    """A job's statistics from its per-node ones: mean of averages, min of minima, max of maxima."""
    stats = [s.get("statistics") or {} for s in series]
    avgs = [s["avg"] for s in stats if _finite(s.get("avg"))]
    mins = [s["min"] for s in stats if _finite(s.get("min"))]
    maxs = [s["max"] for s in stats if _finite(s.get("max"))]
    return {"avg": round(sum(avgs) / len(avgs), 2) if avgs else 0.0, "min": round(min(mins), 2) if mins else 0.0,
            "max": round(max(maxs), 2) if maxs else 0.0}


async def job_statistics(c: GQLContext, job: Job, metrics: list[str] | None) -> dict[str, dict[str, float]]:
    """metric -> {avg, min, max}: from the archived meta.json of finished jobs, else from the live data."""
    names = job_metric_names(c, job, metrics)
    if job.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL and c.web.archive is not None:
        await attach_statistics(c.web, [job])
        if job.statistics is not None:
            wanted = names if names is not None else list(job.statistics)
            zero = {"avg": 0.0, "min": 0.0, "max": 0.0}
            return {m: {k: float(job.statistics.get(m, zero).get(k) or 0.0) for k in zero} for m in wanted}
    data = await load_data(c, job, names, ["node"])
    out = {m: _node_stats(scoped.get("node", {}).get("series") or []) for m, scoped in data.items()}
    for m in names or ():
        out.setdefault(m, {"avg": 0.0, "min": 0.0, "max": 0.0})
    return out


@resolver("Query", "jobMetrics")
async def resolve_job_metrics(_: Any, info: GraphQLResolveInfo, id: str, metrics: list[str] | None = None,
                              scopes: list[str] | None = None, resolution: int | None = None) -> list[dict]:
    c = gctx(info)
    if resolution is not None and resolution < 0:
        raise GraphQLError("argument 'resolution': must be >= 0 (seconds; 0 = the metric's timestep)")
    job = await visible_job(c, id)
    res = c.resolution_default if resolution is None else resolution
    data = await load_data(c, job, metrics, scopes or ["node"], res)
    return [{"name": name, "scope": scope, "metric": jm} for name, scoped in data.items()
            for scope, jm in scoped.items()]


@resolver("Query", "jobStats")
async def resolve_job_stats(_: Any, info: GraphQLResolveInfo, id: str, metrics: list[str] | None = None) -> list[dict]:
    c = gctx(info)
    job = await visible_job(c, id)
    stats = await job_statistics(c, job, metrics)
    return [{"name": m, "data": s} for m, s in stats.items()]


@resolver("Query", "scopedJobStats")
async def resolve_scoped_job_stats(_: Any, info: GraphQLResolveInfo, id: str, metrics: list[str] | None = None,
                                   scopes: list[str] | None = None) -> list[dict]:
    c = gctx(info)
    job = await visible_job(c, id)
    data = await load_data(c, job, metrics, scopes or ["node"])
    out = []
    for name, scoped in data.items():
        for scope, jm in scoped.items():
            stats = []
            for s in jm.get("series") or []:
                st = s.get("statistics") or {}
                stats.append({"hostname": s.get("hostname"), "id": s.get("id"),
                              "data": {k: round(float(st[k]), 2) if _finite(st.get(k)) else 0.0
                                       for k in ("avg", "min", "max")}})
            out.append({"name": name, "scope": scope, "stats": stats})
    return out


# -- many jobs -------------------------------------------------------------------------------------

async def analysis_jobs(c: GQLContext, filters: list | None, order: dict | None = None,
                        limit: int = MAX_JOBS_FOR_ANALYSIS) -> list[Job]:
    """The matching jobs, refusing more than ``limit`` (analyses load data for each)."""
    filters = check_filters(filters)
    viewer, now = c.viewer, c.now
    order_sql = order_clause(order)

    def query(conn) -> list[Job]:
        return statsdb.jobs_page(conn, build_where(filters, viewer, now), order_sql, limit + 1, 0)

    try:
        found = await c.read(query)
    except FilterError as e:
        raise filter_error(e, "filter") from None
    if len(found) > limit:
        raise GraphQLError(f"argument 'filter': too many jobs matched (max: {limit}); narrow the filter")
    return found


def _monitored(job: Job) -> bool:
    return job.monitoring_status not in (MONITORING_DISABLED, MONITORING_ARCHIVING_FAILED)


async def job_averages(c: GQLContext, job: Job, metrics: list[str]) -> list[float]:
    """Per metric the job's average: its footprint (cheap, in the row), archived statistics, else live data."""
    hidden = c.restricted(job.cluster, job.subcluster)
    values: dict[str, float] = {}
    finished = job.state != "running"
    rest = [m for m in metrics if m not in hidden]
    if finished and job.footprint:
        for m in rest:
            v = job.footprint.get(f"{m}_avg")
            if _finite(v):
                values[m] = float(v)
        rest = [m for m in rest if m not in values]
    archived = job.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL
    if rest and finished and archived and c.web.archive is not None:
        await attach_statistics(c.web, [job])
        for m in rest:
            st = (job.statistics or {}).get(m)
            if st and _finite(st.get("avg")):
                values[m] = float(st["avg"])
    elif rest and not archived:  # running, or waiting for the archiver: from shared memory
        data = await load_data(c, job, rest, ["node"])
        for m, scoped in data.items():
            avgs = [(s.get("statistics") or {}).get("avg") for s in scoped.get("node", {}).get("series") or []]
            avgs = [a for a in avgs if _finite(a)]
            if avgs:
                values[m] = sum(avgs) / len(avgs)
    return [values.get(m, NAN) for m in metrics]


@resolver("Query", "jobsFootprints")
async def resolve_jobs_footprints(_: Any, info: GraphQLResolveInfo, metrics: list[str],
                                  filter: list | None = None) -> dict[str, Any]:
    """Per-job averages and time weights for the analysis view's histograms and scatter plots."""
    c = gctx(info)
    found = [j for j in await analysis_jobs(c, filter) if _monitored(j)]
    columns: list[list[float]] = [[] for _ in metrics]
    weights: dict[str, list[float]] = {"nodeHours": [], "accHours": [], "coreHours": []}
    for job in found:
        for col, v in zip(columns, await job_averages(c, job, metrics), strict=True):
            col.append(v)
        minutes = job.current_duration(c.now) / 60.0  # cc-backend's "hours" are duration/60
        weights["nodeHours"].append(minutes * job.num_nodes)
        weights["accHours"].append(minutes * job.num_acc if job.num_acc > 0 else 1.0)
        weights["coreHours"].append(minutes * job.num_hwthreads if job.num_hwthreads > 0 else 1.0)
    return {"timeWeights": weights,
            "metrics": [{"metric": m, "data": col} for m, col in zip(metrics, columns, strict=True)]}


@resolver("Query", "jobsMetricStats")
async def resolve_jobs_metric_stats(_: Any, info: GraphQLResolveInfo, filter: list | None = None,
                                    metrics: list[str] | None = None) -> list[dict[str, Any]]:
    """Statistics of each matching job, oldest first (the job comparison view)."""
    c = gctx(info)
    out = []
    for job in await analysis_jobs(c, filter, {"field": "startTime", "type": "col", "order": "ASC"}):
        try:
            stats = await job_statistics(c, job, metrics)
        except GraphQLError:
            continue  # cc-backend skips jobs whose data cannot be loaded
        out.append({"id": job.id, "jobId": str(job.job_id), "startTime": job.start_time,
                    "duration": job.current_duration(c.now), "cluster": job.cluster, "subCluster": job.subcluster,
                    "numNodes": job.num_nodes, "numHWThreads": job.num_hwthreads, "numAccelerators": job.num_acc,
                    "stats": [{"name": m, "data": s} for m, s in stats.items()]})
    return out


@resolver("Query", "rooflineHeatmap")
async def resolve_roofline(_: Any, info: GraphQLResolveInfo, filter: list, rows: int, cols: int, minX: float,  # noqa: N803
                           minY: float, maxX: float, maxY: float) -> list[list[float]]:  # noqa: N803
    """Counts of (arithmetic intensity, flop rate) points of all matching jobs on a log-log grid."""
    c = gctx(info)
    if rows < 1 or cols < 1 or rows * cols > 1_000_000:
        raise GraphQLError("arguments 'rows'/'cols': must be >= 1 (and rows*cols at most 1,000,000)")
    if min(minX, minY, maxX, maxY) <= 0 or minX >= maxX or minY >= maxY:
        raise GraphQLError("arguments 'minX'..'maxY': need 0 < minX < maxX and 0 < minY < maxY (log axes)")
    lx0, ly0, lx1, ly1 = math.log10(minX), math.log10(minY), math.log10(maxX), math.log10(maxY)
    tiles = [[0.0] * cols for _ in range(rows)]
    for job in await analysis_jobs(c, filter):
        if not _monitored(job):
            continue
        data = await load_data(c, job, ["flops_any", "mem_bw"], ["node"])
        flops = (data.get("flops_any") or {}).get("node")
        membw = (data.get("mem_bw") or {}).get("node")
        if not flops or not membw:
            continue
        for fs, ms in zip(flops.get("series") or [], membw.get("series") or [], strict=False):
            for f, m in zip(fs.get("data") or [], ms.get("data") or [], strict=False):
                if not _finite(f) or not _finite(m) or f <= 0 or m <= 0:
                    continue
                x, y = math.log10(f / m), math.log10(f)
                if x < lx0 or x >= lx1 or y < ly0 or y > ly1:
                    continue
                xi, yi = int((x - lx0) / (lx1 - lx0) * cols), int((y - ly0) / (ly1 - ly0) * rows)
                if 0 <= xi < cols and 0 <= yi < rows:
                    tiles[yi][xi] += 1
    return tiles
