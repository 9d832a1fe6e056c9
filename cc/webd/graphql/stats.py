"""``jobsStatistics``: totals (optionally per user/project/cluster/subcluster) and histograms.

Only what the query selects is computed, as in cc-backend.  Metric histograms come
from the jobs' footprints; with a filter of exactly ``state: [running]`` they come from
the live data instead (the footprint is only written when a job is archived).
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from cc.db import FilterError
from cc.db import _stats as statsdb
from cc.webd.graphql.context import (
    GQLContext,
    check_filters,
    check_page,
    filter_error,
    gctx,
    resolver,
    selected,
)
from cc.webd.graphql.metrics import _monitored, analysis_jobs, job_averages

HISTOGRAMS = ("histDuration", "histNumNodes", "histNumCores", "histNumAccs")
MAX_RUNNING_JOBS_FOR_HISTOGRAMS = 5000  # cc-backend's limit for live metric histograms
DEFAULT_METRIC_BINS = 10


def _only_running(filters: list[dict[str, Any]]) -> bool:
    return any(f.get("state") == ["running"] for f in filters)


def metric_spec(c: GQLContext, metric: str, filters: list[dict[str, Any]]) -> tuple[float, str, str]:
    """(peak, unit, footprint stat) of a metric: of the filtered cluster, else the largest peak anywhere."""
    peak, unit, stat = 0.0, "", ""
    for f in filters:
        eq = (f.get("cluster") or {}).get("eq")
        cluster = c.web.clusters.get(eq) if eq else None
        if cluster is not None and metric in cluster.metrics:
            raw = cluster.metrics[metric].raw
            unit_doc = raw.get("unit") or {}
            return float(raw.get("peak") or 0), (unit_doc.get("prefix") or "") + (unit_doc.get("base") or ""), \
                raw.get("footprint") or ""
    for cluster in c.web.clusters.values():
        m = cluster.metrics.get(metric)
        if m is None:
            continue
        peak = max(peak, float(m.raw.get("peak") or 0))
        unit_doc = m.raw.get("unit") or {}
        unit = unit or (unit_doc.get("prefix") or "") + (unit_doc.get("base") or "")
        stat = stat or m.raw.get("footprint") or ""
    return peak, unit, stat


def _hidden_everywhere(c: GQLContext, metric: str) -> bool:
    return all(metric in c.restricted(name) for name in c.web.clusters) if c.web.clusters else False


async def _metric_histograms(c: GQLContext, filters: list[dict[str, Any]], metrics: list[str],
                             bins: int) -> list[dict[str, Any]]:
    if bins < 1:
        raise GraphQLError("argument 'numMetricBins': must be >= 1")
    metrics = [m for m in metrics if not _hidden_everywhere(c, m)]
    out = []
    if _only_running(filters):
        found = await analysis_jobs(c, filters, limit=MAX_RUNNING_JOBS_FOR_HISTOGRAMS)
        averages = [await job_averages(c, j, metrics) for j in found if _monitored(j)]
        for i, m in enumerate(metrics):
            peak, unit, _ = metric_spec(c, m, filters)
            points = statsdb.metric_bins(peak, bins)
            for row in averages:
                v = row[i]
                for p in points:
                    if v == v and p["min"] <= int(v) < p["max"]:
                        p["count"] += 1
            out.append({"metric": m, "unit": unit, "stat": None, "data": points})
        return out
    viewer = c.viewer
    for m in metrics:
        peak, unit, stat = metric_spec(c, m, filters)
        try:
            points = await c.read(statsdb.footprint_histogram, filters, viewer, f"{m}_{stat}", peak, bins)
        except FilterError as e:
            raise GraphQLError(f"argument 'metrics': {e}") from None
        out.append({"metric": m, "unit": unit, "stat": stat or None, "data": points})
    return out


@resolver("Query", "jobsStatistics")
async def resolve_jobs_statistics(_: Any, info: GraphQLResolveInfo, filter: list | None = None,
                                  metrics: list[str] | None = None, page: dict | None = None,
                                  sortBy: str | None = None, groupBy: str | None = None,  # noqa: N803
                                  numDurationBins: str | None = None,  # noqa: N803
                                  numMetricBins: int | None = None) -> list[dict[str, Any]]:  # noqa: N803
    c = gctx(info)
    filters = check_filters(filter)
    check_page(page)
    want = selected(info)
    fields = {f for f in statsdb.STAT_FIELDS if f in want}
    if sortBy is not None:
        fields.add(statsdb.SORT_FIELDS[sortBy])
    viewer, now, short = c.viewer, c.now, c.short_threshold
    try:
        stats = await c.read(lambda conn: statsdb.job_statistics(
            conn, filters, viewer, group_by=groupBy, sort_by=sortBy, page=page, fields=fields, short=short, now=now))
    except FilterError as e:
        raise filter_error(e, "groupBy" if str(e).startswith("groupBy") else "filter") from None
    if any(h in want for h in HISTOGRAMS):
        if groupBy is not None:
            raise GraphQLError("histograms are only available without the 'groupBy' argument")
        try:
            hists = await c.read(statsdb.histograms, filters, viewer, numDurationBins or "1h", now)
        except FilterError as e:
            raise GraphQLError(f"argument 'numDurationBins': {str(e).removeprefix('numDurationBins: ')}") from None
        stats[0].update(hists)
    if "histMetrics" in want:
        if groupBy is not None:
            raise GraphQLError("metric histograms are only available without the 'groupBy' argument")
        stats[0]["histMetrics"] = await _metric_histograms(c, filters, metrics or [],
                                                           DEFAULT_METRIC_BINS if numMetricBins is None else numMetricBins)
    return stats
