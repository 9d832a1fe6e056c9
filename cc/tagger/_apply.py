"""Running the taggers over every job in the database (``cc-supervise apply-tags``, ``/config/taggers/run/``).

Jobs are read in batches by id; the app tagger looks at every job with a job script,
the job classifier at archived jobs (statistics from their ``meta.json``).  Tags are
attached with ``INSERT OR IGNORE`` and the message is rewritten only when it changed,
so running twice changes nothing the second time.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cc.archive import ArchiveError, JobArchive
from cc.clusters import Cluster
from cc.db import Job
from cc.db._model import MONITORING_ARCHIVING_SUCCESSFUL, SELECT_JOB
from cc.tagger._taggers import Taggers

BATCH = 1000
KINDS = ("AppTagger", "JobClassTagger")  # upstream's tagger names


@dataclass
class ApplyResult:
    jobs: int = 0
    app_tags: int = 0
    class_tags: int = 0
    seconds: float = 0.0
    app_seconds: float = 0.0
    class_seconds: float = 0.0  # statistics loading included
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


def count_jobs(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM job").fetchone()[0])


def read_batch(conn: sqlite3.Connection, after: int, limit: int = BATCH) -> list[Job]:
    rows = conn.execute(SELECT_JOB + " WHERE job.id > ? ORDER BY job.id LIMIT ?", (after, limit)).fetchall()
    return [Job.from_row(r) for r in rows]


def statistics_of(job: Job, archive: JobArchive) -> dict[str, Any] | None:
    if job.monitoring_status != MONITORING_ARCHIVING_SUCCESSFUL:
        return None
    location = archive.meta_file(job.cluster, job.job_id, job.start_time)  # read past the cache: once per job
    try:
        meta = orjson.loads(archive.read_location(location))
    except orjson.JSONDecodeError as e:
        raise ArchiveError(f"{location}: invalid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ArchiveError(f"job {job.job_id}: meta.json: top level must be an object")
    stats = meta.get("statistics")
    return stats if isinstance(stats, dict) else None


@dataclass
class _Planned:
    job: Job
    stats: dict[str, Any] | None


def apply_batch(conn: sqlite3.Connection, taggers: Taggers, planned: list[_Planned], clusters: dict[str, Cluster],
                kinds: tuple[str, ...], res: ApplyResult) -> None:
    """Tag one batch (inside the caller's transaction)."""
    for p in planned:
        if "AppTagger" in kinds:
            t0 = time.perf_counter()
            res.app_tags += len(taggers.tag_start(conn, p.job))
            res.app_seconds += time.perf_counter() - t0
        if "JobClassTagger" in kinds and p.stats:
            t0 = time.perf_counter()
            res.class_tags += len(taggers.tag_stop(conn, p.job, p.stats, clusters.get(p.job.cluster)))
            res.class_seconds += time.perf_counter() - t0


def plan_batch(batch: list[Job], archive: JobArchive, kinds: tuple[str, ...], res: ApplyResult) -> list[_Planned]:
    """Each job with its archived statistics (only read when the classifier runs)."""
    out = []
    t0 = time.perf_counter()
    for job in batch:
        stats = None
        if "JobClassTagger" in kinds:
            try:
                stats = statistics_of(job, archive)
            except (OSError, ArchiveError) as e:
                res.errors.append(f"job {job.id} (jobId {job.job_id}, {job.cluster}): {e}")
        out.append(_Planned(job, stats))
    res.class_seconds += time.perf_counter() - t0
    return out


def apply_all(conn: sqlite3.Connection, taggers: Taggers, archive: JobArchive, clusters: dict[str, Cluster], *,
              kinds: tuple[str, ...] = KINDS, progress: Callable[[int, int], None] | None = None) -> ApplyResult:
    """Every job of the database through the chosen taggers, one transaction per batch (CLI use)."""
    res = ApplyResult()
    started = time.perf_counter()
    total = count_jobs(conn)
    after = 0
    taggers.refresh(force=True)
    while True:
        batch = read_batch(conn, after)
        if not batch:
            break
        planned = plan_batch(batch, archive, kinds, res)
        conn.execute("BEGIN IMMEDIATE")
        try:
            apply_batch(conn, taggers, planned, clusters, kinds, res)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        after = batch[-1].id or after
        res.jobs += len(batch)
        if progress:
            progress(res.jobs, max(total, res.jobs))
    if progress and res.jobs == 0:
        progress(0, 0)
    res.seconds = time.perf_counter() - started
    return res

