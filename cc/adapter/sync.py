"""Keeping cc-backend's job table in step with Slurm: the adapter's state machine.

The cache remembers, per cluster and job id, what cc-backend is believed to hold
(running, stopped, rejected).  A job unknown to the cache is started (201, or 422 when
the backend has it already) and, once Slurm says it is over, stopped.  The time of the
last complete sync is the modification time of ``lastRunPath`` (as in
cc-slurm-adapter, so the file carries over); it only moves forward when every job of
the window reached the backend, so an outage of either side is caught up by the next
sync.  A periodic comparison with cc-backend's running jobs repairs drift.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from cc.adapter.backend import BackendClient, Outcome
from cc.adapter.config import AdapterConfig
from cc.adapter.mapping import (
    JobExtras,
    ignored_by_hosts,
    is_finished,
    never_ran,
    start_payload,
    stop_payload,
)
from cc.adapter.slurm import SlurmClient, time_window
from cc.adapter.slurmjson import SlurmJob

log = logging.getLogger("cc-adapter")

CACHE_EVICT_POLLS = 5  # a stopped job stays cached this many polls (and 2 x SACCT_OVERLAP), so it is not re-sent
SACCT_OVERLAP = 120.0  # seconds each sacct window reaches back before the last sync (slurmdbd records late)
ALIVE = frozenset({"RUNNING", "SUSPENDED", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT"})


# -- lastrun ----------------------------------------------------------------------------


def read_last_run(path: str) -> float:
    """Time of the last complete sync (mtime of the file); 0 when it never ran."""
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def write_last_run(path: str, ts: float) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch(exist_ok=True)
    os.utime(p, (ts, ts))


# -- cache ------------------------------------------------------------------------------


@dataclass
class CacheEntry:
    running: bool
    start_time: int = 0
    stale: bool = False
    age: int = 0
    rejected: bool = False
    done_at: float = 0.0  # when it stopped being running (for eviction)


@dataclass
class HookEvent:
    """A Prolog/Epilog notification waiting for Slurm to show the job in the matching state."""

    cluster: str
    job_id: int
    context: str  # prolog_slurmctld | epilog_slurmctld
    attempts: int = 0


class Syncer:
    """All job traffic between Slurm and cc-backend; callers serialise calls (one sync at a time)."""

    def __init__(self, cfg: AdapterConfig, slurm: SlurmClient, backend: BackendClient,
                 clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.slurm = slurm
        self.backend = backend
        self.clock = clock
        self.cache: dict[str, dict[int, CacheEntry]] = {}
        self.cache_valid = False
        self.cache_time = 0.0
        self.stats = {"started": 0, "stopped": 0, "rejected": 0, "polls": 0}

    @property
    def clusters(self) -> list[str]:
        return self.slurm.clusters

    def entry(self, cluster: str, job_id: int) -> CacheEntry | None:
        return self.cache.get(cluster, {}).get(job_id)

    # -- one batch of jobs ------------------------------------------------------------

    async def sync_jobs(self, cluster: str, jobs: list[SlurmJob]) -> None:
        """Start what the backend lacks, stop what Slurm finished; raises when either side is unavailable."""
        c = self.cache.setdefault(cluster, {})
        jobs = [j for j in jobs if not never_ran(j) and not ignored_by_hosts(j, self.cfg)]
        to_start = [j for j in jobs if j.job_id not in c]
        if to_start:
            await self._start(cluster, to_start)
        for j in jobs:
            e = c.get(j.job_id)
            if is_finished(j) and (e is None or e.running):
                await self._stop(cluster, j)
            if e is not None:
                e.stale = False

    async def _start(self, cluster: str, jobs: list[SlurmJob]) -> None:
        ctl = await self.slurm.controller_jobs(cluster, [j.job_id for j in jobs])
        for j in jobs:
            if j.job_id in ctl:
                j.merge_controller(ctl[j.job_id])
        need = {a.hostname for j in jobs for a in (j.alloc or []) if a.cores_per_socket is None
                or j.threads_per_core is None}
        topology = await self.slurm.node_topology(cluster, need) if need else self.slurm.topology
        extras: dict[int, JobExtras] = {}

        async def fetch(j: SlurmJob) -> None:
            script = await self.slurm.job_script(cluster, j.job_id)
            info = await self.slurm.slurm_info(cluster, j.job_id)
            extras[j.job_id] = JobExtras(script=script, slurm_info=info)

        async with trio.open_nursery() as n:
            for j in jobs:
                if j.alloc is not None:  # only slurmctld has scripts, and only while it knows the job
                    n.start_soon(fetch, j)
        c = self.cache[cluster]
        for j in jobs:
            payload = start_payload(j, self.cfg, topology, extras.get(j.job_id))
            if j.alloc is None:
                log.warning("job %d (%s) is no longer known to slurmctld: reporting it with hostnames only",
                            j.job_id, cluster)
            outcome, msg = await self.backend.start_job(payload)
            if outcome is Outcome.REJECTED:
                log.error("cc-backend rejected start of job %d (%s), it will not be retried: %s", j.job_id,
                          cluster, msg)
                self.stats["rejected"] += 1
                c[j.job_id] = CacheEntry(running=False, start_time=j.start_time, rejected=True, done_at=self.clock())
                continue
            if outcome is Outcome.DONE:
                log.info("started job %d (%s) on %s", j.job_id, cluster, ",".join(j.nodes))
                self.stats["started"] += 1
            else:
                log.debug("job %d (%s) was already started: %s", j.job_id, cluster, msg)
            c[j.job_id] = CacheEntry(running=True, start_time=j.start_time)

    async def _stop(self, cluster: str, job: SlurmJob, *, again: bool = True) -> None:
        c = self.cache[cluster]
        outcome, msg = await self.backend.stop_job(stop_payload(job), partition=job.partition or "")
        if outcome is Outcome.NOT_FOUND and again:
            # the backend lost the job (or never got it): start it afresh, then stop it
            log.warning("cc-backend does not know job %d (%s) (%s); starting it again before stopping",
                        job.job_id, cluster, msg)
            c.pop(job.job_id, None)
            await self._start(cluster, [job])
            if (e := c.get(job.job_id)) is not None and e.running:
                await self._stop(cluster, job, again=False)
            return
        if outcome is Outcome.DONE:
            log.info("stopped job %d (%s): %s", job.job_id, cluster, job.state.lower())
            self.stats["stopped"] += 1
        elif outcome is Outcome.EXISTS:
            log.debug("job %d (%s) was already stopped: %s", job.job_id, cluster, msg)
        else:
            log.error("cc-backend refused to stop job %d (%s), giving up on it: %s", job.job_id, cluster, msg)
            self.stats["rejected"] += 1
        c[job.job_id] = CacheEntry(running=False, start_time=job.start_time, done_at=self.clock())

    # -- the periodic sync ------------------------------------------------------------

    async def poll(self) -> None:
        """One Slurm poll: refresh the cache if due, sync the time window, look for stale jobs."""
        if not self.cache_valid or self.clock() - self.cache_time >= self.cfg.cc_poll_interval:
            await self.refresh_cache()
        last = read_last_run(self.cfg.last_run_path)
        now = self.clock()
        for cluster in self.clusters:
            start, end, clamped = time_window(last, now, self.cfg.slurm_query_max_span, SACCT_OVERLAP)
            if clamped:
                log.warning("last sync was %s; looking back only %.0fs (slurmQueryMaxSpan): jobs that ended "
                            "before %s are not reported", "never" if last <= 0 else time.ctime(last),
                            self.cfg.slurm_query_max_span, start)
            jobs = await self.slurm.jobs_between(cluster, start, end)
            log.debug("sacct %s .. %s: %d jobs", start, end, len(jobs))
            await self.sync_jobs(cluster, jobs)
        write_last_run(self.cfg.last_run_path, now)
        await self.check_stale()
        self.gc()
        self.stats["polls"] += 1

    async def check_stale(self) -> None:
        """Jobs the cache holds as running that slurmctld no longer runs, twice in a row, are re-checked."""
        for cluster in self.clusters:
            c = self.cache.get(cluster, {})
            if not any(e.running for e in c.values()):
                continue
            alive = {i for i, j in (await self.slurm.controller_jobs(cluster)).items() if j.state in ALIVE}
            suspects = []
            for job_id, e in c.items():
                if not e.running or job_id in alive:
                    e.stale = False
                    continue
                if e.stale:
                    suspects.append(job_id)
                else:
                    e.stale = True
            if suspects:
                log.warning("jobs %s (%s) run in cc-backend but not in Slurm; re-checking them", suspects, cluster)
                await self.recheck(cluster, suspects)

    async def recheck(self, cluster: str, job_ids: list[int]) -> None:
        """Sync jobs by id from accounting; jobs Slurm has never heard of are stopped as failed."""
        for k in range(0, len(job_ids), 500):
            chunk = job_ids[k:k + 500]
            found = await self.slurm.jobs_by_id(cluster, chunk)
            await self.sync_jobs(cluster, list(found.values()))
            c = self.cache.setdefault(cluster, {})
            for job_id in chunk:
                e = c.get(job_id)
                if job_id in found or e is None or not e.running:
                    continue
                if not e.stale:
                    e.stale = True
                    continue
                log.warning("job %d (%s) is running in cc-backend but unknown to Slurm: stopping it as failed",
                            job_id, cluster)
                now = int(self.clock())
                outcome, msg = await self.backend.stop_job({
                    "jobId": job_id, "cluster": cluster, "jobState": "failed", "startTime": e.start_time,
                    "stopTime": max(now, e.start_time)})
                if outcome not in (Outcome.DONE, Outcome.EXISTS):
                    log.error("could not stop unknown job %d (%s): %s", job_id, cluster, msg)
                c[job_id] = CacheEntry(running=False, start_time=e.start_time, done_at=self.clock())

    async def refresh_cache(self) -> None:
        """Compare the cache with cc-backend's running jobs and repair both directions."""
        initial = not self.cache_valid and not self.cache
        for cluster in self.clusters:
            listed = await self.backend.running_jobs(cluster)
            backend_running: dict[int, int] = {}
            for j in listed:
                if j.get("cluster", cluster) != cluster or j.get("jobState", "running") != "running":
                    continue
                if isinstance(j.get("jobId"), int):
                    backend_running[j["jobId"]] = int(j.get("startTime") or 0)
            c = self.cache.setdefault(cluster, {})
            new = [i for i in backend_running if i not in c or not c[i].running]
            lost = [i for i, e in c.items() if e.running and i not in backend_running]
            for i in new:
                c[i] = CacheEntry(running=True, start_time=backend_running[i])
            for i in lost:
                del c[i]
            if not initial and (new or lost):
                log.warning("cache out of step with cc-backend (%s): running there but not here %s, running here "
                            "but not there %s; re-syncing them", cluster, new, lost)
            self.cache_valid, self.cache_time = True, self.clock()
            if new or lost:
                await self.recheck(cluster, new + lost)
        log.info("job cache refreshed from cc-backend: %d running jobs",
                 sum(e.running for c in self.cache.values() for e in c.values()))

    def invalidate(self) -> None:
        self.cache_valid = False

    def gc(self) -> None:
        for c in self.cache.values():
            for job_id in [i for i, e in c.items() if not e.running]:
                e = c[job_id]
                e.age += 1
                if e.age > CACHE_EVICT_POLLS and self.clock() - e.done_at > 2 * SACCT_OVERLAP:
                    del c[job_id]

    async def sync_node_states(self) -> int:
        """Slurm's node states (allocated CPUs, memory, GPUs) to the backend, as cc-slurm-adapter does
        every poll; returns how many nodes were sent."""
        sent = 0
        for cluster in self.clusters:
            nodes = [n for n in await self.slurm.node_states(cluster)
                     if not (self.cfg.ignore_hosts and self.cfg.ignore_hosts.search(n["hostname"]))]
            if nodes:
                await self.backend.node_states(cluster, nodes)
                sent += len(nodes)
        return sent

    # -- Prolog/Epilog events ---------------------------------------------------------

    async def process_events(self, events: list[HookEvent]) -> list[HookEvent]:
        """Sync the jobs of hook events; returns the events to try again after ``slurmQueryDelay``."""
        keep: list[HookEvent] = []
        by_cluster: dict[str, list[HookEvent]] = {}
        for ev in events:
            if not ev.cluster and len(self.clusters) == 1:
                ev.cluster = self.clusters[0]
            if self.clusters and ev.cluster not in self.clusters:
                log.warning("hook event for job %d of cluster %r, which this adapter does not manage (%s)",
                            ev.job_id, ev.cluster, self.clusters)
                continue
            by_cluster.setdefault(ev.cluster, []).append(ev)
        for cluster, evs in by_cluster.items():
            found = await self.slurm.jobs_by_id(cluster, [e.job_id for e in evs])
            await self.sync_jobs(cluster, list(found.values()))
            for ev in evs:
                if not self._event_done(cluster, ev, found.get(ev.job_id)):
                    ev.attempts += 1
                    if ev.attempts <= self.cfg.slurm_max_retries:
                        keep.append(ev)
                    else:
                        log.info("job %d (%s) not yet %s in Slurm after %d attempts; the next poll will catch it",
                                 ev.job_id, cluster, "started" if ev.context.startswith("prolog") else "finished",
                                 ev.attempts)
        return keep

    def _event_done(self, cluster: str, ev: HookEvent, job: SlurmJob | None) -> bool:
        if job is None:
            return False
        if never_ran(job) and is_finished(job):
            return True  # cancelled before it ran: nothing to report
        if ignored_by_hosts(job, self.cfg):
            return True
        e = self.entry(cluster, ev.job_id)
        if ev.context.startswith("prolog"):
            return e is not None
        return e is not None and not e.running
