"""The simulated scheduler: placement never double-books, states and payloads are what cc-backend expects."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from cc.archive import validate
from cc.clusters import parse_cluster
from cc.db import JOB_STATES
from cc.jobcheck import check_start_payload
from cc.sim.hardware import demo_clusters, hardware_of
from cc.sim.placement import NodePool
from cc.sim.scheduler import Scheduler, start_payload, stop_payload
from cc.sim.workload import JobSpec, Workload

T0 = 1_700_000_000
DAY = 86400


def clusters(cpu: int = 8, gpu: int = 4):
    return {n: parse_cluster(d, n) for n, d in demo_clusters(cpu, gpu, 10).items()}


def check_pool(pool: NodePool, allocs: list) -> None:
    """Every thread and GPU belongs to at most one job; an exclusive node to exactly one."""
    owners: dict[tuple[str, str, int], int] = {}
    jobs_on: collections.Counter = collections.Counter()
    whole: set[str] = set()
    for k, a in enumerate(allocs):
        for r, threads, accs in zip(a.resources, a.hwthreads, a.accs, strict=True):
            host = r["hostname"]
            jobs_on[host] += 1
            if a.whole:
                assert host not in whole
                whole.add(host)
            for t in threads:
                assert owners.setdefault((host, "hw", int(t)), k) == k, f"{host} thread {t} booked twice"
            for g in accs:
                assert owners.setdefault((host, "acc", g), k) == k, f"{host} GPU {g} booked twice"
            if "hwthreads" in r:
                assert r["hwthreads"] == [int(t) for t in threads]
    for host in whole:
        assert jobs_on[host] == 1, f"exclusive node {host} shared"
    for node in pool.nodes:  # the pool's own view agrees
        used = {t for (h, kind, t) in owners if h == node.host and kind == "hw"}
        assert set(np.flatnonzero(~node.free_hw).tolist()) == used
        assert node.jobs == jobs_on[node.host]


@pytest.mark.parametrize("seed", range(6))
def test_placement_never_double_books(seed):
    cl = clusters(6, 3)
    rng = np.random.default_rng(seed)
    for name, cluster in cl.items():
        pool = NodePool(name, hardware_of(cluster))
        wl = Workload(name, pool.partitions, time_scale=1)
        live: list = []
        for _ in range(400):
            if live and rng.random() < 0.45:
                pool.release(live.pop(int(rng.integers(len(live)))))
            else:
                for spec in wl.draw(rng, T0):
                    a = pool.allocate(spec)
                    if a is not None:
                        live.append(a)
            check_pool(pool, live)
        for a in live:
            pool.release(a)
        assert pool.load() == 0


def test_gpu_jobs_get_gpus_and_their_cores():
    cl = clusters(0, 4)  # two A100 nodes, two A40 nodes
    pool = NodePool("alex", hardware_of(cl["alex"]))
    spec = JobSpec(cluster="alex", partition="a100", user="u", project="p", app="pytorch", name="n", profile="gpu",
                   params={}, kind="gpus", nodes=1, units=2, walltime=3600, runtime=60, outcome="completed",
                   submit_time=T0, seed=1)
    a = pool.allocate(spec)
    r = a.resources[0]
    ids = [x["id"] for x in cl["alex"].subcluster("a100").topology.accelerators]
    assert r["accelerators"] == ids[:2]
    assert r["hwthreads"] == list(range(16))  # 64 threads / 8 GPUs: the first two blocks
    assert a.shared == "multi_user" and a.num_acc == 2
    b = pool.allocate(spec)
    assert b.resources[0]["accelerators"] == ids[2:4] and b.resources[0]["hostname"] == r["hostname"]
    whole = JobSpec(**{**spec.__dict__, "units": 8, "nodes": 1})
    c = pool.allocate(whole)  # the other node is still free
    assert c.whole and c.shared == "none" and c.resources[0]["hostname"] != r["hostname"]
    assert pool.allocate(whole) is None


def test_node_states_report_allocations_as_slurm_does():
    cl = clusters(0, 4)
    pool = NodePool("alex", hardware_of(cl["alex"]))
    spec = JobSpec(cluster="alex", partition="a100", user="u", project="p", app="pytorch", name="n", profile="gpu",
                   params={}, kind="gpus", nodes=1, units=2, walltime=3600, runtime=60, outcome="completed",
                   submit_time=T0, seed=1)
    shared = pool.allocate(spec)
    whole = pool.allocate(JobSpec(**{**spec.__dict__, "units": 8}))
    states = {s["hostname"]: s for s in pool.node_states()}
    s1, s2 = states[shared.resources[0]["hostname"]], states[whole.resources[0]["hostname"]]
    mem_mb = pool.nodes[pool.by_host[whole.resources[0]["hostname"]]].hw.mem_gb * 1024  # MB of one a100 node
    assert s1["states"] == ["mixed"] and s1["cpusAllocated"] == 16 and s1["gpusAllocated"] == 2
    assert s2["states"] == ["allocated"] and s2["gpusAllocated"] == 8 and s2["jobsRunning"] == 1
    assert s2["memoryAllocated"] == int(mem_mb)  # an exclusive job has the whole node's memory
    assert s1["memoryAllocated"] == int(mem_mb * 16 / 64)  # a shared one its CPUs' share
    idle = [s for s in states.values() if s["jobsRunning"] == 0]
    assert idle and all(s["states"] == ["idle"] and s["memoryAllocated"] == 0 for s in idle)


@pytest.fixture(scope="module")
def week():
    """A week of the scheduler in virtual time on the demo clusters."""
    sched = Scheduler(clusters(8, 4), time_scale=1, seed=11)
    done = []
    for t in range(T0, T0 + 7 * DAY, 60):
        f, _ = sched.step(t)
        done += f
    return sched, done


def test_jobs_never_overlap_in_time(week):
    _, done = week
    by_host: dict[tuple[str, str], list] = collections.defaultdict(list)
    for r in done:
        for res, threads, accs in zip(r.alloc.resources, r.alloc.hwthreads, r.alloc.accs, strict=True):
            by_host[(r.spec.cluster, res["hostname"])].append((r.start, r.end, r.alloc.whole, set(threads.tolist()),
                                                               set(accs)))
    for host, jobs in by_host.items():
        jobs.sort(key=lambda x: x[0])
        for i, (_s1, e1, w1, h1, a1) in enumerate(jobs):
            for s2, _e2, w2, h2, a2 in jobs[i + 1:]:
                if s2 >= e1:
                    break
                assert not (w1 or w2), f"exclusive job overlaps another on {host}"
                assert not (h1 & h2) and not (a1 & a2), f"threads or GPUs shared on {host}"


def test_states_durations_and_stop_payloads(week):
    _, done = week
    assert len(done) > 300
    states = collections.Counter(r.spec.outcome for r in done)
    assert set(states) <= set(JOB_STATES) - {"running"}
    assert states["completed"] > len(done) / 2
    assert all(states[s] for s in ("failed", "cancelled", "timeout", "out_of_memory"))
    for r in done:
        s = r.spec
        assert 0 < s.runtime <= s.walltime
        if s.outcome == "timeout":
            assert s.runtime == s.walltime
        if s.outcome == "out_of_memory":
            assert s.params["oom"] == 1
        assert r.start >= s.submit_time
        p = stop_payload(r)
        assert p == {"jobId": s.job_id, "cluster": s.cluster, "startTime": r.start, "stopTime": r.start + s.runtime,
                     "jobState": s.outcome}


def test_workload_is_mostly_small_with_arrays(week):
    _, done = week
    small = sum(1 for r in done if len(r.alloc.resources) == 1 and (r.spec.kind != "gpus" or r.spec.units <= 2))
    assert small > 0.6 * len(done)
    assert max(len(r.alloc.resources) for r in done) >= 2
    arrays = collections.defaultdict(list)
    for r in done:
        if r.spec.array_job_id:
            arrays[(r.spec.cluster, r.spec.array_job_id)].append(r.spec)
    assert arrays
    for (_, first), tasks in arrays.items():
        ids = sorted(t.job_id for t in tasks)
        assert ids[0] == first and {t.name for t in tasks} == {tasks[0].name}
    assert len({r.spec.user for r in done}) >= 8 and "alice" in {r.spec.user for r in done}
    assert {r.spec.profile for r in done if r.spec.cluster == "alex"} <= {"gpu", "gpu_idle"}
    assert {"compute", "memory", "io", "idle"} <= {r.spec.profile for r in done if r.spec.cluster == "fritz"}


def test_start_payloads_are_accepted(week):
    sched, done = week
    cl = sched.clusters
    for r in done[:200]:
        hw = sched.hw_of(r.spec.cluster, r.alloc.subcluster)
        p = start_payload(r, hw)
        validate("job-start", p)
        job = check_start_payload(p, cl)  # what POST /api/jobs/start_job/ checks
        assert job.subcluster == r.alloc.subcluster
        assert job.num_nodes == len(r.alloc.resources)
        meta = p["metaData"]
        assert meta["jobScript"].startswith("#!/bin/bash") and "#SBATCH --time=" in meta["jobScript"]
        assert f"JobId={r.spec.job_id}" in meta["slurmInfo"] and "NodeList=" in meta["slurmInfo"]
        if r.alloc.whole:
            assert p["shared"] == "none" and all("hwthreads" not in x for x in p["resources"])
        else:
            assert p["shared"] == "multi_user" and all(x["hwthreads"] for x in p["resources"])
        if r.spec.cluster == "alex":
            assert p["numAcc"] == sum(len(x["accelerators"]) for x in p["resources"])


def test_fill_and_time_compression():
    now = float(T0)
    sched = Scheduler(clusters(8, 4), time_scale=10, target_load=0.8, seed=2)
    started = sched.fill(now - 600, now)
    assert started
    assert all(now - 600 <= r.start <= now and r.spec.submit_time <= r.start for r in started)
    assert all(r.spec.walltime <= 24 * 3600 / 10 for r in started)
    loads = sched.load()
    assert min(loads.values()) >= 0.5
    assert sum(r.end > now for r in started) > len(started) / 2  # mostly still running
    sched2 = Scheduler(clusters(8, 4), time_scale=1, seed=2)
    assert sched2.rate["fritz"] < sched.rate["fritz"] / 5  # 10x shorter jobs: ~10x more of them


def test_restore_books_running_jobs_again(week):
    sched, _ = week
    running = list(sched.running.values())
    assert running
    fresh = Scheduler(sched.clusters, time_scale=1, seed=12)
    for r in running:
        fresh.restore(r.to_json())
    for c, pool in fresh.pools.items():
        check_pool(pool, [r.alloc for r in fresh.running.values() if r.spec.cluster == c])
    with pytest.raises(AssertionError):
        fresh.restore(running[0].to_json())  # its resources are taken
