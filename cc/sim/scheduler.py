"""The simulated batch scheduler: submissions arrive, wait in a queue, run on free nodes, end.

:class:`Scheduler` is pure bookkeeping over time stamps, so the live simulator (real
time, durations compressed by ``time_scale``) and the history generator (weeks of
virtual time in seconds) run the very same code.  :meth:`Scheduler.step` advances to
a time: jobs whose end has come finish, arrivals of the past interval join the queue
(a Poisson process sized so the cluster is about ``target_load`` busy), and queued jobs
start where they fit -- first come first served with backfill of smaller jobs, and a
reservation (no more backfill in that partition) once the head of the queue has waited
too long, so big jobs do run.

:func:`start_payload` and :func:`stop_payload` turn a job into cc-backend's REST
``start_job`` / ``stop_job`` bodies, the way cc-slurm-adapter fills them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cc.clusters import Cluster
from cc.sim.hardware import Hardware, hardware_of
from cc.sim.placement import Allocation, NodePool
from cc.sim.workload import HOUR, JobSpec, Workload, job_script, slurm_info

FIRST_JOB_ID = 1_000_000
StartOf = Callable[[JobSpec], float]  # when a job that can start now starts (history: jitter)
BACKFILL_WINDOW = 64


@dataclass
class Running:
    spec: JobSpec
    alloc: Allocation
    start: int

    @property
    def key(self) -> str:
        return f"{self.spec.cluster}/{self.spec.job_id}"

    @property
    def end(self) -> int:
        return self.start + self.spec.runtime

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.to_json(), "resources": self.alloc.resources, "whole": self.alloc.whole,
                "start": self.start}


class Scheduler:
    """Queue, placement and job life cycle for a set of clusters."""

    def __init__(self, clusters: dict[str, Cluster], *, time_scale: float = 1.0, target_load: float = 0.85,
                 seed: int = 0, next_ids: dict[str, int] | None = None, min_runtime: int = 60,
                 hosts: dict[str, dict[str, list[str]]] | None = None):
        self.rng = np.random.default_rng(seed)
        self.time_scale = time_scale
        self.clusters = clusters
        self.hardware: dict[str, list[Hardware]] = {}
        self.pools: dict[str, NodePool] = {}
        self.workloads: dict[str, Workload] = {}
        self.rate: dict[str, float] = {}          # submissions per second
        self.next_arrival: dict[str, float] = {}
        self.pending: dict[str, list[JobSpec]] = {}
        self.running: dict[str, Running] = {}
        self.next_id = dict(next_ids or {})
        self.max_wait = 6 * HOUR / time_scale
        self.target_load = target_load
        for name, cluster in clusters.items():
            hws = [h for h in hardware_of(cluster, (hosts or {}).get(name)) if h.hosts]
            if not hws:
                continue
            self.hardware[name] = hws
            pool = self.pools[name] = NodePool(name, hws)
            wl = self.workloads[name] = Workload(name, pool.partitions, time_scale=time_scale,
                                                 min_runtime=min_runtime)
            demand = wl.mean_demand(np.random.default_rng(seed + 7))
            self.rate[name] = target_load * len(pool.nodes) / max(demand, 1.0)
            self.pending[name] = []
            self.next_id.setdefault(name, FIRST_JOB_ID)

    def hw_of(self, cluster: str, subcluster: str) -> Hardware:
        return next(h for h in self.hardware[cluster] if h.subcluster == subcluster)

    # -- arrivals -------------------------------------------------------------------------------

    def _submit(self, cluster: str, t: float) -> list[JobSpec]:
        specs = self.workloads[cluster].draw(self.rng, int(t))
        first = self.next_id[cluster]
        for i, s in enumerate(specs):
            s.job_id = first + i
            s.array_job_id = first if s.array_size else 0
        self.next_id[cluster] = first + len(specs)
        self.pending[cluster].extend(specs)
        return specs

    def arrivals(self, now: float) -> int:
        n = 0
        for c, rate in self.rate.items():
            t = self.next_arrival.get(c)
            if t is None:
                t = self.next_arrival[c] = now + self.rng.exponential(1 / rate)
            while t <= now:
                if len(self.pending[c]) < 3 * len(self.pools[c].nodes):  # users hold back when the queue is long
                    n += len(self._submit(c, t))
                t += self.rng.exponential(1 / rate)
            self.next_arrival[c] = t
        return n

    # -- life cycle -----------------------------------------------------------------------------

    def finish(self, now: float) -> list[Running]:
        """Jobs whose end has come (by end time), released from their nodes."""
        done = sorted((r for r in self.running.values() if r.end <= now), key=lambda r: (r.end, r.key))
        for r in done:
            del self.running[r.key]
            self.pools[r.spec.cluster].release(r.alloc)
        return done

    def schedule(self, now: float, start_of: StartOf | None = None, only: str | None = None) -> list[Running]:
        """Start queued jobs that fit; ``start_of(spec)`` may choose a start time (default ``now``)."""
        started = []
        for c, queue in self.pending.items():
            if only is not None and c != only:
                continue
            pool = self.pools[c]
            blocked: set[str] = set()
            kept: list[JobSpec] = []
            for i, spec in enumerate(queue):
                if i >= BACKFILL_WINDOW or spec.partition in blocked:
                    kept.append(spec)
                    continue
                alloc = pool.allocate(spec)
                if alloc is None:
                    kept.append(spec)
                    if now - spec.submit_time > self.max_wait:
                        blocked.add(spec.partition)  # reserve: nothing jumps this job any more
                    continue
                start = int(now if start_of is None else start_of(spec))
                r = Running(spec, alloc, max(start, spec.submit_time))
                self.running[r.key] = r
                started.append(r)
            self.pending[c] = kept
        return started

    def step(self, now: float, start_of: StartOf | None = None) -> tuple[list[Running], list[Running]]:
        """Advance to ``now``: (finished, started)."""
        finished = self.finish(now)
        self.arrivals(now)
        return finished, self.schedule(now, start_of)

    def fill(self, t0: float, t1: float) -> list[Running]:
        """A cluster already at work: submit until the target load is reached; jobs started within
        [t0, t1] (the simulator backfills their metrics) and mostly still running at ``t1``."""
        started: list[Running] = []

        def start_of(spec: JobSpec) -> float:
            return t1 - float(self.rng.uniform(0, min(t1 - t0, 0.9 * spec.runtime)))

        for c, pool in self.pools.items():
            for _ in range(400):
                if pool.load() >= self.target_load:
                    break
                self._submit(c, t0 - float(self.rng.uniform(0, 900 / self.time_scale)))
                started += self.schedule(t1, start_of, only=c)
        return started

    def restore(self, doc: dict[str, Any]) -> Running:
        """A running job from :meth:`Running.to_json` (after a restart)."""
        spec = JobSpec.from_json(doc["spec"])
        alloc = self.pools[spec.cluster].restore(doc["resources"], doc["whole"])
        r = Running(spec, alloc, int(doc["start"]))
        self.running[r.key] = r
        return r

    def load(self) -> dict[str, float]:
        return {c: p.load() for c, p in self.pools.items()}


# -- REST payloads --------------------------------------------------------------------------------

def start_payload(r: Running, hw: Hardware) -> dict[str, Any]:
    """``POST /api/jobs/start_job/`` body, as cc-slurm-adapter sends it."""
    s = r.spec
    p: dict[str, Any] = {
        "jobId": s.job_id, "user": s.user, "project": s.project, "cluster": s.cluster,
        "subCluster": r.alloc.subcluster, "partition": s.partition, "numNodes": len(r.alloc.resources),
        "numHwthreads": r.alloc.num_hwthreads, "shared": r.alloc.shared, "startTime": r.start,
        "submitTime": s.submit_time, "walltime": s.walltime, "jobState": "running", "smt": 1,
        "resources": r.alloc.resources,
        "metaData": {"jobName": s.name, "jobScript": job_script(s, hw.hwthreads),
                     "slurmInfo": slurm_info(s, r.alloc.resources, r.start, hw.hwthreads)},
    }
    if r.alloc.num_acc:
        p["numAcc"] = r.alloc.num_acc
    if s.array_job_id:
        p["arrayJobId"] = s.array_job_id
    return p


def stop_payload(r: Running) -> dict[str, Any]:
    """``POST /api/jobs/stop_job/`` body: the planned end and final state."""
    return {"jobId": r.spec.job_id, "cluster": r.spec.cluster, "startTime": r.start, "stopTime": r.end,
            "jobState": r.spec.outcome}
