"""The archiver process: moves finished jobs from their metric source into the job archive.

A job's metrics come from shared memory, or from the external store that
``metric-store-external`` routes its cluster/subcluster to (a front installation
archives the jobs of its store installations that way); a failing external store is
an archiving failure like any other, retried with backoff.

Its work queue is the database itself (stopped jobs with monitoring status 1, see
``cc.db._jobs.archive_queue``), so nothing is lost when this process, the web process or
the whole machine goes down: a job leaves the queue only in the transaction that marks
it archived, after its directory was written atomically.  A failed attempt is recorded
(``job_archive_status``) and retried after 10 s, doubling up to an hour; after
:data:`MAX_ATTEMPTS` the job is marked "archiving failed" (monitoring status 2).  Both are
configurable: ``archive.retry-delay`` (Go duration) and ``archive.max-attempts``.

The web process sends ``{"cmd": "wake"}`` to ``var/run/archiver.sock`` after a
stop_job so archiving starts at once; the queue is also polled every few seconds.
``{"cmd": "status"}`` reports queue length, counters and the last errors.  The process
also runs the maintenance tasks of :mod:`cc.tasks` (duration and footprint workers, stopping jobs
past their walltime, node-state retention); ``status`` includes their last runs.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections import deque
from pathlib import Path
from typing import Any

import trio

from cc import ipc, jobdata, proc, tagger
from cc.archive import ArchiveError, JobArchive, compress, job_meta, open_archive, retention
from cc.clusters import Cluster, MetricCatalog, load_cluster_file
from cc.config import Config, ConfigError, ExternalStore, parse_duration
from cc.db import Database, Job
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.metricsource import BuiltinSource, MetricSource, MetricSourceError, MetricSources
from cc.shm import Store
from cc.shm import _layout as SL
from cc.tasks import TaskRunner, TaskSettings, parse_tasks
from cc.tasks._settings import NODESTATE_RETENTION_INTERVAL
from cc.tasks.footprint import update_running_footprints
from cc.tasks.nodestate import apply_retention
from cc.tasks.walltime import stop_jobs_exceeding_walltime

log = logging.getLogger("archiver")

POLL_INTERVAL = 5.0
BATCH = 16
BASE_BACKOFF = 10
MAX_BACKOFF = 3600
MAX_ATTEMPTS = 10  # 10 s, 20 s, ... 1 h: about 2.4 h of retries before giving up
NATIVE_SCOPE_MAX_NODES = 8  # core/hwthread series are archived for jobs up to this size (cc-backend: core, <= 8)
CHEAP_SCOPES = ("socket", "memoryDomain", "die", "accelerator")  # few series per node: always archived


def backoff(attempts: int, base: float = BASE_BACKOFF) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones (base x 2^(n-1), at most 1 h)."""
    return int(min(MAX_BACKOFF, base * 2 ** max(0, attempts - 1)))


def archive_scopes(native: str, num_nodes: int) -> list[str]:
    """Scopes archived for a metric: node always, plus its native scope when affordable."""
    if native == "node":
        return ["node"]
    if native in CHEAP_SCOPES or num_nodes <= NATIVE_SCOPE_MAX_NODES:
        return ["node", native]
    return ["node"]


class ClusterSet:
    """cluster.json files of the archive, re-read when one changes (so a fixed file takes effect)."""

    def __init__(self, root: Path, metrics):
        self.root = root
        self.metrics = metrics
        self._stamp: tuple | None = None
        self.clusters: dict[str, Cluster] = {}
        self.errors: dict[str, str] = {}
        self.catalog = MetricCatalog({}, metrics)

    def refresh(self) -> None:
        files = []
        try:
            for e in sorted(os.scandir(self.root), key=lambda e: e.name):
                f = Path(e.path) / "cluster.json"
                if e.is_dir() and not e.name.startswith("."):
                    try:
                        st = f.stat()
                        files.append((e.name, st.st_mtime_ns, st.st_size))
                    except FileNotFoundError:
                        pass
        except FileNotFoundError:
            pass
        stamp = tuple(files)
        if stamp == self._stamp:
            return
        clusters, errors = {}, {}
        for name, _, _ in files:
            try:
                clusters[name] = load_cluster_file(self.root / name / "cluster.json")
            except (ConfigError, OSError) as e:
                errors[name] = str(e)
        self.clusters, self.errors, self._stamp = clusters, errors, stamp
        self.catalog = MetricCatalog(clusters, self.metrics)

    def get(self, name: str) -> Cluster:
        c = self.clusters.get(name)
        if c is None:
            raise LookupError(self.errors.get(name) or f"cluster {name!r}: no cluster.json in the job archive "
                              f"({self.root / name / 'cluster.json'})")
        return c


class Archiver:
    def __init__(self, db: Database, store: Store, archive: JobArchive, clusters: ClusterSet, *,
                 minimum_points: int = jobdata.DEFAULT_MINIMUM_POINTS, retry_delay: float = BASE_BACKOFF,
                 max_attempts: int = MAX_ATTEMPTS, external: list[ExternalStore] | None = None,
                 taggers: tagger.Taggers | None = None):
        self.db = db
        self.taggers = taggers  # main.enable-job-taggers: job classes once the statistics exist
        self.store = store
        # where each job's metrics are read: the built-in store, or its metric-store-external entry
        self.sources = MetricSources(BuiltinSource(store, lambda: clusters.catalog), external or ())
        self.archive = archive
        self.clusters = clusters
        self.minimum_points = minimum_points
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.next_due: float | None = None  # earliest retry time of a failure seen by this process
        self.wake = trio.Event()
        self.archived = 0
        self.archive_seconds = 0.0  # time spent on the jobs archived (data load, statistics, write)
        self.last_archive_seconds: float | None = None
        self.failed_attempts = 0
        self.given_up = 0
        self.busy: int | None = None
        self.last_errors: deque[dict[str, Any]] = deque(maxlen=20)
        self.last_pass: float | None = None
        self.tasks: TaskRunner | None = None  # the maintenance tasks this process runs (status shows them)

    # -- one job ------------------------------------------------------------------------------

    def source_of(self, job: Job) -> MetricSource:
        cluster = self.clusters.get(job.cluster)
        return self.sources.for_subcluster(job.cluster, jobdata.subcluster_of(job, cluster).name)

    async def build(self, job: Job) -> dict[str, Any]:
        """Load (from the job's metric source), compute and write one job's archive directory."""
        await trio.to_thread.run_sync(self.archive.version)
        cluster = self.clusters.get(job.cluster)
        sc = jobdata.subcluster_of(job, cluster)
        source = self.sources.for_subcluster(job.cluster, sc.name)
        by_scopes: dict[tuple[str, ...], list[str]] = {}
        for name, m in sc.metrics.items():
            by_scopes.setdefault(tuple(archive_scopes(m.scope, job.num_nodes)), []).append(name)
        data: dict[str, Any] = {}
        errors: list[str] = []
        for scopes, metrics in by_scopes.items():
            data.update(await jobdata.load_running_from(source, job, cluster, metrics, list(scopes), 0,
                                                        minimum_points=self.minimum_points, errors=errors,
                                                        statistics_series=False))
        if errors:
            log.info("job %d (%s): %d selections failed, e.g. %s", job.id, job.job_id, len(errors), errors[0])
        return await trio.to_thread.run_sync(self._write, job, cluster, data)

    def _write(self, job: Job, cluster: Cluster, data: dict[str, Any]) -> dict[str, Any]:
        """Statistics, footprint, energy and the atomic write of the job directory (blocking)."""
        jobdata.add_statistics_series(data)
        stats = jobdata.job_statistics(data, job, cluster)
        job.footprint = jobdata.footprint(job, cluster, stats)
        job.energy, job.energy_footprint = jobdata.energy(job, cluster, stats)
        meta = job_meta(job, stats)
        self.archive.write(meta, data)
        return meta

    async def archive_one(self, job: Job) -> bool:
        self.busy = job.id
        started = time.monotonic()
        try:
            job.tags = await self.db.read(tags.job_tags, job.id, None)
            meta = await self.build(job)
            await self.db.write(jobs.mark_archived, job.id, meta.get("footprint") or {},
                                meta.get("energyFootprint") or {}, float(meta.get("energy") or 0.0))
        except Exception as e:  # every failure is recorded and retried; the loop must go on
            await self._failed(job, e)
            return False
        finally:
            self.busy = None
        self.archived += 1
        self.last_archive_seconds = time.monotonic() - started
        self.archive_seconds += self.last_archive_seconds
        if self.taggers is not None:
            await self._classify(job, meta)
        log.info("archived job %d (jobId %d, %s, %d nodes) in %.2fs", job.id, job.job_id, job.cluster, job.num_nodes,
                 time.monotonic() - started)
        return True

    async def _classify(self, job: Job, meta: dict[str, Any]) -> None:
        """Job-class tags and hints; a failure is logged, the job stays archived."""
        try:
            found = await self.db.write(self.taggers.tag_stop, job, meta.get("statistics"),
                                        self.clusters.clusters.get(job.cluster))
        except Exception as e:  # the job is archived; a tagger problem must not stop the loop
            log.error("job %d (jobId %d): job classification failed: %s", job.id, job.job_id, e,
                      exc_info=not isinstance(e, (sqlite3.Error, ValueError)))
            return
        if found:
            log.info("job %d (jobId %d): job classes %s", job.id, job.job_id, ", ".join(found))

    async def _failed(self, job: Job, exc: Exception) -> None:
        expected = isinstance(exc, (LookupError, ValueError, OSError, ArchiveError, MetricSourceError))
        msg = f"{type(exc).__name__}: {exc}" if not expected or isinstance(exc, OSError) else str(exc)
        now = int(time.time())

        def record(conn: sqlite3.Connection) -> tuple[int, int | None]:
            st = jobs.archive_status(conn, job.id)
            attempts = (st["attempts"] if st else 0) + 1
            nxt = None if attempts >= self.max_attempts else now + max(1, backoff(attempts, self.retry_delay))
            jobs.mark_archive_failure(conn, job.id, msg, nxt, now)
            return attempts, nxt

        try:
            attempts, nxt = await self.db.write(record)
        except sqlite3.Error as e:
            log.error("job %d: archiving failed (%s) and recording the failure failed too: %s", job.id, msg, e)
            return
        self.failed_attempts += 1
        if nxt is not None:
            self.next_due = nxt if self.next_due is None else min(self.next_due, nxt)
        self.last_errors.append({"id": job.id, "jobId": job.job_id, "cluster": job.cluster, "error": msg,
                                 "attempts": attempts, "time": now, "nextAttempt": nxt})
        if nxt is None:
            self.given_up += 1
            log.error("archiving job %d (jobId %d) failed %d times, giving up: %s", job.id, job.job_id, attempts, msg)
        else:
            log.error("archiving job %d (jobId %d) failed (attempt %d, next in %ds): %s", job.id, job.job_id,
                      attempts, nxt - now, msg, exc_info=not expected)

    # -- loops --------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self.wake = trio.Event()  # a wake-up arriving while we work is kept for the next round
            try:
                await trio.to_thread.run_sync(self.clusters.refresh)
                queue = await self.db.read(jobs.archive_queue, None, BATCH)
            except sqlite3.Error as e:
                log.warning("reading the archive queue failed: %s; retrying", e)
                queue = []
            self.last_pass = time.time()
            if queue and self._restore_pending():
                waiting = [j for j in queue if self._from_builtin(j)]
                if waiting:
                    log.info("the store process is still restoring metric data from disk; archiving of %d "
                             "jobs waits", len(waiting))
                queue = [j for j in queue if j not in waiting]
            for job in queue:
                await self.archive_one(job)
            if len(queue) == BATCH:
                continue
            wait = POLL_INTERVAL
            if self.next_due is not None:  # wake up for a retry that falls due before the next poll
                wait = min(wait, max(0.05, self.next_due - time.time()))
                if self.next_due <= time.time() + wait:
                    self.next_due = None
            with trio.move_on_after(wait):
                await self.wake.wait()

    def _from_builtin(self, job: Job) -> bool:
        try:
            return self.source_of(job) is self.sources.builtin
        except (LookupError, ValueError):
            return True  # its archiving fails anyway, with the reason; no need to hurry it

    def _restore_pending(self) -> bool:
        """Fresh shared memory that the store process has not refilled yet would archive holes."""
        return int(self.store.hdr[SL.H_RESTORE]) == SL.RESTORE_PENDING

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        cmd = msg.get("cmd")
        if cmd == "wake":
            self.wake.set()
            return {"ok": True}
        if cmd == "status":
            try:
                queue = await self.db.read(jobs.queue_length)
            except sqlite3.Error as e:
                queue = None
                log.warning("status: cannot count the queue: %s", e)
            return {"ok": True, "pid": os.getpid(), "queue": queue, "busy": self.busy, "archived": self.archived,
                    "archiveSeconds": round(self.archive_seconds, 6), "lastArchiveSeconds": self.last_archive_seconds,
                    "failedAttempts": self.failed_attempts, "givenUp": self.given_up, "lastPass": self.last_pass,
                    "lastErrors": list(self.last_errors), "tasks": self.tasks.state() if self.tasks else []}
        if cmd == "run-task" and self.tasks is not None:
            try:
                return {"ok": True, "task": await self.tasks.run_once(str(msg.get("name")))}
            except KeyError:
                return {"ok": False, "error": f"no task {msg.get('name')!r} (tasks: {', '.join(self.tasks.names())})"}
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        return {"ok": False, "error": f"unknown command {cmd!r} (wake, status, run-task, ping)"}


def build_tasks(archiver: Archiver, db: Database, settings: TaskSettings) -> TaskRunner:
    """cc-backend's task manager, as far as it concerns this process (see :mod:`cc.tasks`)."""
    runner = TaskRunner()

    async def durations() -> dict[str, int]:
        return {"updated": await db.write(jobs.update_running_durations)}

    runner.add("duration-worker", settings.duration_interval, durations)
    if settings.walltime_grace is not None:
        grace = settings.walltime_grace

        async def walltime() -> dict[str, Any]:
            ids = await db.write(stop_jobs_exceeding_walltime, grace)
            if ids:
                log.info("stopped %d jobs running past their walltime (+%ds) as timeout: ids %s", len(ids), grace,
                         ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else ""))
                archiver.wake.set()
            return {"stopped": len(ids)}

        runner.add("stop-jobs-exceeding-walltime", settings.duration_interval, walltime)

    async def footprints() -> dict[str, int]:  # cluster.json files: as the archive loop last refreshed them
        return await update_running_footprints(db, archiver.clusters, archiver.sources,
                                               minimum_points=archiver.minimum_points)

    runner.add("footprint-worker", settings.footprint_interval, footprints)
    if settings.nodestate is not None:
        ns = settings.nodestate
        runner.add("nodestate-retention", NODESTATE_RETENTION_INTERVAL, lambda: apply_retention(db, ns),
                   first_delay=0)
    return runner


def add_retention_task(runner: TaskRunner, cfg: Config, archive: JobArchive) -> None:
    """archive.retention as a daily task (upstream's hours: 03:00 delete, 04:00 copy, 05:00 move)."""
    settings = cfg.archive.retention

    async def run_retention() -> str:
        report = await trio.to_thread.run_sync(
            lambda: retention.run(settings, archive, cfg.db_path, var_dir=cfg.var_dir))
        log.info("%s", report.summary())
        for msg in report.errors[:20]:
            log.warning("archive retention: %s", msg)
        return report.summary()

    runner.add("archive-retention", 86400, run_retention, first_delay=retention.seconds_until_next_run(settings))


def add_compression_task(runner: TaskRunner, cfg: Config, archive: JobArchive) -> None:
    """archive.compression as a daily task (05:00 local time, as cc-backend)."""
    days = cfg.archive.compression_days

    async def run_compression() -> str:
        report = await trio.to_thread.run_sync(lambda: compress.compress_before(archive, cfg.db_path, days))
        log.info("%s", report.summary())
        for msg in report.errors[:20]:
            log.warning("archive compression: %s", msg)
        return report.summary()

    runner.add("archive-compression", 86400, run_compression, first_delay=compress.seconds_until_next_run())


def main(argv: list[str] | None = None) -> None:
    args = proc.child_args("Archiver: moves finished jobs from shared memory into the job archive.").parse_args(argv)
    cfg, instance = proc.load(args)
    logger = proc.setup_logging("archiver")
    store = Store.attach(instance)
    db = Database(cfg.db_path, readers=2)
    res = cfg.main.get("resampling") or {}
    arch = cfg.raw.get("archive") or {}
    archiver = Archiver(db, store, open_archive(cfg.archive), ClusterSet(cfg.archive_path, cfg.metrics),
                        minimum_points=int(res.get("minimum-points") or jobdata.DEFAULT_MINIMUM_POINTS),
                        retry_delay=parse_duration(arch.get("retry-delay", BASE_BACKOFF), what="archive.retry-delay"),
                        max_attempts=int(arch.get("max-attempts", MAX_ATTEMPTS)), external=cfg.metric_store_external,
                        taggers=tagger.for_config(cfg))
    runner = build_tasks(archiver, db, parse_tasks(cfg.raw, cfg.base_dir))
    if cfg.archive.retention is not None:
        add_retention_task(runner, cfg, archiver.archive)
    if cfg.archive.compression_days is not None:
        add_compression_task(runner, cfg, archiver.archive)
    archiver.tasks = runner
    logger.info("archiver started: archive %s, database %s", archiver.archive.location(), cfg.db_path)

    async def run_app(nursery: trio.Nursery, shutdown: trio.Event) -> None:
        await nursery.start(ipc.serve, cfg.run_dir / "archiver.sock", archiver.handle)
        nursery.start_soon(archiver.run)
        nursery.start_soon(runner.run)
        await shutdown.wait()
        await archiver.sources.aclose()

    for line in archiver.sources.describe():
        logger.info("metric-store-external: %s", line)
    try:
        proc.run(run_app, logger)
    finally:
        db.close()
