"""``cron.footprint-worker``: footprints (and energy) of running jobs, kept current in the database.

The archiver computes a job's footprint once, when it archives the job; without this
worker a running job has none, so footprint filters and sorting would skip every running
job.  Each run reads the node-scope statistics of the footprint and energy metrics of
every running job from its metric source and stores them exactly as the archiver will
(:func:`cc.jobdata.job_statistics`, :func:`cc.jobdata.footprint`, :func:`cc.jobdata.energy`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

import orjson

from cc import jobdata
from cc.clusters import footprint_key
from cc.db import Database, Job
from cc.db._model import SELECT_JOB
from cc.metricsource import MetricSourceError, MetricSources

log = logging.getLogger("tasks")


def running_jobs(conn: sqlite3.Connection) -> list[Job]:
    return [Job.from_row(r) for r in conn.execute(SELECT_JOB + " WHERE job.job_state = 'running' ORDER BY job.id")]


def store_footprints(conn: sqlite3.Connection, rows: list[tuple[int, dict, dict, float]]) -> int:
    """Write (id, footprint, energy footprint, energy) of jobs still running (a job stopped meanwhile is
    the archiver's)."""
    n = 0
    for db_id, fp, efp, energy in rows:
        n += conn.execute("UPDATE job SET footprint = ?, energy_footprint = ?, energy = ? "
                          "WHERE id = ? AND job_state = 'running'",
                          (orjson.dumps(fp).decode(), orjson.dumps(efp).decode(), energy, db_id)).rowcount
    return n


async def update_running_footprints(db: Database, clusters: Any, sources: MetricSources, *,
                                    minimum_points: int = jobdata.DEFAULT_MINIMUM_POINTS) -> dict[str, int]:
    """One run over all running jobs; ``clusters`` is the archiver's ClusterSet (``get(name)``)."""
    jobs = await db.read(running_jobs)
    now = int(time.time())
    rows: list[tuple[int, dict, dict, float]] = []
    skipped = 0
    for job in jobs:
        try:
            cluster = clusters.get(job.cluster)
            sc = jobdata.subcluster_of(job, cluster)
            metrics = [n for n, m in sc.metrics.items() if footprint_key(m) or m.raw.get("energy")]
            if not metrics:
                continue
            source = sources.for_subcluster(job.cluster, sc.name)
            data = await jobdata.load_running_from(source, job, cluster, metrics, ["node"], 0, now=now,
                                                   minimum_points=minimum_points, statistics_series=False)
        except (LookupError, ValueError, MetricSourceError) as e:
            skipped += 1
            log.info("footprint worker: job %d (jobId %d): %s", job.id, job.job_id, e)
            continue
        job.duration = max(0, now - job.start_time)
        stats = jobdata.job_statistics(data, job, cluster)
        energy, per_metric = jobdata.energy(job, cluster, stats)
        rows.append((job.id, jobdata.footprint(job, cluster, stats), per_metric, energy))
    updated = await db.write(store_footprints, rows) if rows else 0
    if skipped and not updated:
        raise RuntimeError(f"no footprint could be computed ({skipped} running jobs failed; see the log)")
    return {"running": len(jobs), "updated": updated, "skipped": skipped}
