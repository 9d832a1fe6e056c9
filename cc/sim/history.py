"""History generator: weeks of finished jobs in the job archive and the database, in seconds.

The simulated scheduler runs over the past ``days`` in virtual time (the live
scheduler's code, without time compression), so jobs never overlap on exclusive nodes
and the cluster looks as busy as the live one.  Every finished job gets metric data from
the same model the live simulator uses (its profile's phases over its whole run, for all
of its nodes at once), then what the archiver would compute: series statistics,
``statisticsSeries``, job statistics, footprint and energy (cc/jobdata's functions).
Jobs are written with :meth:`JobArchive.write` by worker processes and inserted into
the database in one transaction.

What is archived: node scope for every metric, socket / memory domain / accelerator
scope always, core and hardware-thread scope for jobs of at most ``DETAIL_MAX_HWTHREADS``
threads (small shared-node jobs).  Long jobs are stored at a coarser timestep (at most
``MAX_POINTS`` per series) to keep the archive small.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cc import jobdata
from cc.archive import JobArchive, job_meta
from cc.clusters import Cluster
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job, Tag, connect, migrate
from cc.db import _jobs as db_jobs
from cc.db import _tags as db_tags
from cc.sim.hardware import Hardware
from cc.sim.profiles import (
    IDLE,
    PARAMS,
    cpu_metrics,
    gpu_metrics,
    idle_phases,
    natural_of,
    node_metrics,
    phases,
    to_scope,
)
from cc.sim.scheduler import Running, Scheduler
from cc.sim.workload import job_script, slurm_info

MAX_POINTS = 120
DETAIL_MAX_HWTHREADS = 16
STEP = 60  # seconds of virtual time per scheduler step


class HistoryNoise:
    """Smooth noise along the time axis (axis 0): a moving average of white noise."""

    def __init__(self, rng: np.random.Generator, width: int = 3):
        self.rng = rng
        self.width = width

    def __call__(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        w = self.width
        if not shape or shape[0] < w:
            return self.rng.standard_normal(shape)
        e = self.rng.standard_normal((shape[0] + w - 1, *shape[1:]))
        c = np.cumsum(e, axis=0)
        c = np.concatenate([np.zeros((1, *shape[1:])), c])
        return (c[w:] - c[:-w]) / math.sqrt(w)

    def lag(self, key: str, target: np.ndarray) -> np.ndarray:
        out = target.copy()
        for i in range(1, len(out)):  # T <= MAX_POINTS steps of small arrays
            out[i] = out[i - 1] + 0.35 * (target[i] - out[i - 1])
        return out


def _active_mask(threads: np.ndarray, active: float, first_node: bool, H: int) -> np.ndarray:
    mask = np.zeros(H, dtype=bool)
    if active <= 0:
        n = 1 if first_node else 0
    else:
        n = max(1, round(active * len(threads)))
    if n:
        mask[threads[np.unique(np.linspace(0, len(threads) - 1, n).round().astype(np.int64))]] = True
    return mask


def job_data(r: Running, hw: Hardware, metrics: dict[str, Any], base_step: int,
             rng: np.random.Generator) -> dict[str, Any]:
    """data.json of a finished job: the model over its whole run, at the scopes the archiver keeps."""
    run = max(1, r.spec.runtime)
    k = max(1, math.ceil(run / (base_step * MAX_POINTS)))
    step = base_step * k
    T = max(3, math.ceil(run / step))
    e = np.arange(T) * float(step)
    P1 = {p: np.array([IDLE[p], r.spec.params.get(p, IDLE[p])]) for p in PARAMS}
    ph1 = phases(e[:, None], np.full((T, 1), float(run)), float(base_step), {p: v[1] for p, v in P1.items()})
    idle = idle_phases((T,))
    ph = {key: np.stack([idle[key], ph1[key][:, 0]], axis=1) for key in ph1}  # [T, 2]
    n, H, A = len(r.alloc.nodes), hw.hwthreads, len(hw.accelerators)
    mine = np.zeros((n, H), dtype=bool)
    active = np.zeros((n, H), dtype=bool)
    acc_mine = np.zeros((n, A), dtype=bool)
    for j, (threads, accs) in enumerate(zip(r.alloc.hwthreads, r.alloc.accs, strict=True)):
        mine[j, threads] = True
        active[j] = _active_mask(np.asarray(threads), r.spec.params.get("active", 1.0), j == 0, H)
        if accs:
            acc_mine[j, accs] = True
    idx = active.astype(np.int64)
    X = {key: P1[key][idx] for key in ("busy", "flops_eff", "dp_frac", "bw_eff", "ipc", "clock_lvl", "power_int")}
    X = {key: np.broadcast_to(v, (T, n, H)) for key, v in X.items()}
    X["cpu"] = ph["cpu"][:, idx]
    X["flops"] = ph["flops"][:, idx]
    noise = HistoryNoise(rng)
    raw = cpu_metrics(hw, X, noise)
    share = mine.sum(axis=1) / H
    multi = 1.0 if n > 1 else 0.0
    N = {"mem": ph["mem"][:, 1:2] * share, "io_read": ph["io_read"][:, 1:2] * share + IDLE["io_bps"] / 2,
         "io_write": ph["io_write"][:, 1:2] * share + IDLE["io_bps"] / 2, "mpi": ph["mpi"][:, 1:2] * share * multi}
    raw.update(node_metrics(hw, raw["_busy"], N, noise))
    if A and acc_mine.any():
        aidx = acc_mine.astype(np.int64)
        G = {key: np.broadcast_to(P1[key][aidx], (T, n, A)) for key in ("gpu_util", "gpu_mem", "gpu_int",
                                                                           "gpu_mem_util")}
        G["gpu"] = ph["gpu"][:, aidx]
        ramp = np.minimum(1.0, ph["mem"][:, 1] / max(P1["mem_frac"][1], 1e-9))
        G["mem_ramp"] = np.where(aidx > 0, ramp[:, None, None], 1.0)
        raw.update(gpu_metrics(hw, G, noise, noise.lag))
    hosts = [res["hostname"] for res in r.alloc.resources]
    small = int(mine.sum()) <= DETAIL_MAX_HWTHREADS
    sockets_mine = (mine.astype(float) @ hw.groups["socket"]) > 0      # [n, S]
    domains_mine = (mine.astype(float) @ hw.groups["memoryDomain"]) > 0
    out: dict[str, Any] = {}
    for name, m in metrics.items():
        nat = natural_of(name)
        if nat is None or nat[0] not in raw:
            continue
        model, natural, agg = nat
        values = raw[model]
        per_scope: dict[str, Any] = {}
        scopes = ["node"]
        if m.scope in ("socket", "memoryDomain", "accelerator") or (m.scope in ("core", "hwthread") and small):
            scopes.append(m.scope)
        for scope in scopes:
            if natural == "hwthread":
                v = to_scope(hw, values, natural, agg, scope, mine.astype(float))
                keep = mine if scope == "hwthread" else ((mine.astype(float) @ hw.groups[scope]) > 0
                                                         if scope != "node" else np.ones((n, 1), bool))
            elif natural == "socket" and scope == "node":
                v = (values * sockets_mine).sum(axis=-1, keepdims=True)
                keep = np.ones((n, 1), bool)
            elif natural == "accelerator":
                if not acc_mine.any():
                    continue
                if scope == "node":
                    s = (values * acc_mine).sum(axis=-1, keepdims=True)
                    v = s if agg == "sum" else s / np.maximum(acc_mine.sum(axis=-1, keepdims=True), 1)
                    keep = np.ones((n, 1), bool)
                else:
                    v, keep = to_scope(hw, values, natural, agg, scope), acc_mine
            else:
                v = to_scope(hw, values, natural, agg, scope)
                keep = {"socket": sockets_mine, "memoryDomain": domains_mine}.get(scope, np.ones((n, 1), bool))
            if v is None:
                continue
            per_scope[scope] = _series(round_sig(np.maximum(v, 0.0)), keep, hosts, hw, scope,
                                       jobdata.unit_of(m.unit), step)
        if per_scope:
            out[name] = per_scope
    return out


def round_sig(v: np.ndarray, digits: int = 4) -> np.ndarray:
    """Round to ``digits`` significant digits so that the shortest float repr is short (smaller archive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log10(np.abs(v))) - (digits - 1)
    e = np.where(np.isfinite(e), e, 0.0)
    up = 10.0 ** np.maximum(e, 0)
    down = 10.0 ** np.maximum(-e, 0)
    return np.where(e < 0, np.round(v * down) / down, np.round(v / up) * up)


def _series(v: np.ndarray, keep: np.ndarray, hosts: list[str], hw: Hardware, scope: str, unit: dict[str, str],
            step: int) -> dict[str, Any]:
    avg, mn, mx = v.mean(axis=0), v.min(axis=0), v.max(axis=0)
    ids = hw.scope_ids(scope) if scope != "node" else [None]
    series = []
    for j, host in enumerate(hosts):
        for k in np.flatnonzero(keep[j]):
            s: dict[str, Any] = {"hostname": host}
            if ids[k] is not None:
                s["id"] = ids[k]
            s["statistics"] = {"avg": round(float(avg[j, k]), 2), "min": round(float(mn[j, k]), 2),
                               "max": round(float(mx[j, k]), 2)}
            s["data"] = v[:, j, k].tolist()
            series.append(s)
    return {"unit": unit, "timestep": step, "series": series}


def build_job(r: Running, cluster: Cluster, hw: Hardware, rng: np.random.Generator) -> tuple[Job, dict, dict]:
    """(Job with footprint and energy, meta.json, data.json) of a finished job."""
    s = r.spec
    sc = cluster.subcluster(hw.subcluster)
    metrics = sc.metrics if sc else cluster.metrics
    base_step = min((m.timestep for m in metrics.values()), default=60)
    data = job_data(r, hw, metrics, base_step, rng)
    job = Job(job_id=s.job_id, cluster=s.cluster, subcluster=hw.subcluster, user=s.user, project=s.project,
              start_time=r.start, resources=r.alloc.resources, num_nodes=len(r.alloc.resources),
              partition=s.partition, array_job_id=s.array_job_id, submit_time=s.submit_time, duration=s.runtime,
              walltime=s.walltime, state=s.outcome, smt=1, shared=r.alloc.shared,
              num_hwthreads=r.alloc.num_hwthreads, num_acc=r.alloc.num_acc,
              monitoring_status=MONITORING_ARCHIVING_SUCCESSFUL,
              meta_data={"jobName": s.name, "jobScript": job_script(s, hw.hwthreads),
                         "slurmInfo": slurm_info(s, r.alloc.resources, r.start, hw.hwthreads)},
              tags=[Tag(0, "app", s.app, "global")])
    stats = jobdata.job_statistics(data, job, cluster)
    job.statistics = stats
    job.footprint = jobdata.footprint(job, cluster, stats)
    job.energy, job.energy_footprint = jobdata.energy(job, cluster, stats)
    jobdata.add_statistics_series(data)
    return job, job_meta(job, stats), data


# -- running it ----------------------------------------------------------------------------------

@dataclass
class HistoryResult:
    jobs: int = 0
    seconds: float = 0.0
    next_ids: dict[str, int] = field(default_factory=dict)
    by_state: dict[str, int] = field(default_factory=dict)
    first: int = 0
    last: int = 0


_ctx: dict[str, Any] = {}


def _write_chunk(items: list[tuple[int, Running]]) -> list[Job]:
    archive: JobArchive = _ctx["archive"]
    out = []
    for seed, r in items:
        cluster = _ctx["clusters"][r.spec.cluster]
        hw = _ctx["sched"].hw_of(r.spec.cluster, r.alloc.subcluster)
        job, meta, data = build_job(r, cluster, hw, np.random.default_rng(seed))
        archive.write(meta, data)
        out.append(job)
    return out


def finished_jobs(clusters: dict[str, Cluster], start: int, end: int, *, seed: int = 1,
                  next_ids: dict[str, int] | None = None,
                  hosts: dict[str, dict[str, list[str]]] | None = None) -> tuple[Scheduler, list[Running]]:
    """Run the scheduler over [start, end] in virtual time; the jobs that finished by ``end``."""
    sched = Scheduler(clusters, time_scale=1.0, seed=seed, next_ids=next_ids, min_runtime=60, hosts=hosts)
    rng = np.random.default_rng(seed + 1)
    done: list[Running] = []
    for t in range(start, end - STEP, STEP):
        f, _ = sched.step(t, lambda s, t=t: t + int(rng.integers(0, STEP)))
        done.extend(f)
    done.extend(sched.finish(end))
    return sched, done


def generate(archive_path: Path, db_path: Path, clusters: dict[str, Cluster], *, days: float = 28,
             end: int | None = None, seed: int = 1, next_ids: dict[str, int] | None = None,
             workers: int | None = None, progress: Callable[[int, int], None] | None = None,
             hosts: dict[str, dict[str, list[str]]] | None = None,
             on_planned: Callable[[dict[str, int], int], None] | None = None) -> HistoryResult:
    """Fill the archive and the database with the jobs of the last ``days`` days (ending at ``end``).

    ``on_planned(next_ids, count)`` is called once the jobs are known (after about a
    second), before their data is written: a live scheduler can start numbering there.
    """
    t0 = time.perf_counter()
    end = int(time.time()) if end is None else int(end)
    start = end - int(days * 86400)
    sched, done = finished_jobs(clusters, start, end, seed=seed, next_ids=next_ids, hosts=hosts)
    if on_planned is not None:
        on_planned(dict(sched.next_id), len(done))
    archive = JobArchive(archive_path)
    archive.version()
    migrate(db_path)
    rng = np.random.default_rng(seed + 2)
    items = [(int(rng.integers(1 << 62)), r) for r in done]
    chunks = [items[i:i + 50] for i in range(0, len(items), 50)]
    _ctx.update(archive=archive, clusters=clusters, sched=sched)
    jobs: list[Job] = []
    nworkers = workers if workers is not None else min(2, os.cpu_count() or 1)

    def collect(results) -> None:
        for part in results:
            jobs.extend(part)
            if progress is not None:
                progress(len(jobs), len(items))

    try:
        if nworkers <= 1 or len(chunks) <= 1:
            collect(map(_write_chunk, chunks))
        else:
            with multiprocessing.get_context("fork").Pool(nworkers) as pool:  # terminated on any exit
                collect(pool.imap(_write_chunk, chunks))
    finally:
        _ctx.clear()
    insert_jobs(db_path, jobs)
    res = HistoryResult(jobs=len(jobs), seconds=time.perf_counter() - t0, next_ids=dict(sched.next_id),
                        first=start, last=end)
    for j in jobs:
        res.by_state[j.state] = res.by_state.get(j.state, 0) + 1
    return res


def insert_jobs(db_path: Path, jobs: list[Job]) -> None:
    """Insert finished jobs and their tags in one transaction (jobs already in the database are skipped)."""
    conn = connect(db_path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                if db_jobs.find_jobs(conn, job.job_id, job.cluster, job.start_time):
                    continue
                db_id = db_jobs.insert_job(conn, job)
                for t in job.tags:
                    db_tags.add_tag(conn, None, db_id, t.type, t.name, t.scope)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
