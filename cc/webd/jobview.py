"""A job as the API returns it: database row + archived statistics + metric data from its source or the archive."""

from __future__ import annotations

import logging
from typing import Any

import trio

from cc import ipc
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job
from cc.query import QueryError

log = logging.getLogger("web.jobs")


def job_json(job: Job, *, with_meta: bool = True) -> dict[str, Any]:
    return job.to_json(with_meta=with_meta)


def load_statistics(ctx, found: list[Job]) -> None:
    """Archived jobs carry their statistics in meta.json (cc-backend reads them from there too).

    Blocking (file reads on a cache miss): call it from a worker thread.
    """
    if ctx.archive is None:
        return
    for j in found:
        if j.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL:
            try:
                j.statistics = ctx.archive.load_meta(j.cluster, j.job_id, j.start_time).get("statistics")
            except (OSError, ValueError) as e:
                log.warning("archived meta.json of job %d unreadable: %s", j.id, e)


async def attach_statistics(ctx, found: list[Job]) -> None:
    """:func:`load_statistics` off the event loop."""
    if ctx.archive is not None and any(j.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL for j in found):
        await trio.to_thread.run_sync(load_statistics, ctx, found)


async def job_data(ctx, job: Job, metrics: list[str] | None, scopes: list[str], resolution: int = 0, *,
                   minimum_points: int | None = None) -> dict:
    """cc's JobData for a job: from its metric source while it runs or waits for the archiver, else the archive.

    The source is the built-in store, or the external store ``metric-store-external``
    routes the job's cluster/subcluster to (a failing one raises MetricSourceError).
    Series shorter than ``minimum_points`` are never resampled (default: cc-lib's 1000).
    """
    from cc import jobdata

    points = jobdata.DEFAULT_MINIMUM_POINTS if minimum_points is None else minimum_points
    cluster = ctx.clusters.get(job.cluster)
    if cluster is None:
        raise LookupError(f"cluster {job.cluster!r} of job {job.id} is not configured")
    try:
        if job.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL:
            return await trio.to_thread.run_sync(
                lambda: jobdata.load_archived(ctx.archive, job, metrics, scopes, resolution, minimum_points=points),
                limiter=ctx.query_limiter)
        source = ctx.sources.for_subcluster(job.cluster, jobdata.subcluster_of(job, cluster).name)
        return await jobdata.load_running_from(source, job, cluster, metrics, scopes, resolution,
                                               minimum_points=points, limiter=ctx.query_limiter)
    except QueryError as e:  # e.g. a job running for years: more points than one answer may hold
        raise JobDataError(f"job {job.id}: {e}") from None


class JobDataError(ValueError):
    """A job's data cannot be answered as asked (the message says why); callers make it a 4xx or a GraphQL error."""


async def notify_archiver(ctx) -> None:
    """Wake the archiver so a stopped job is archived now; if it is down, its queue poll finds the job."""
    try:
        await ipc.request(ctx.cfg.run_dir / "archiver.sock", {"cmd": "wake"}, timeout=5)
    except (ipc.IPCError, OSError, trio.TooSlowError) as e:
        log.info("archiver not reachable (%s); it will pick the job up from its queue", e)
