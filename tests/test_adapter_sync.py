"""cc-adapter's state machine against the real backend (supervisor) and Slurm replayed from recorded 22.05 JSON.

The real-Slurm end-to-end tests are in tests/slurm/; these cover the paths a live
Slurm cannot be steered into on demand: backend outages at given moments, drift,
lost jobs, rejected payloads, hook retries.
"""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from cc.adapter.backend import BackendClient, BackendUnavailable
from cc.adapter.config import load_adapter_config
from cc.adapter.slurm import SlurmError, time_window
from cc.adapter.sync import HookEvent, Syncer, read_last_run
from tests.helpers import Installation, running
from tests.slurm.helpers import RecordedSlurm, adapter_config, slurm_cluster_json

IDS = json.loads((RecordedSlurm().dir / "manifest.json").read_text())["jobs"]
REPORTED = {IDS[k] for k in ("timeout", "simple", "multinode_gpu", "exclusive", "failing", "cancel_running",
                             "running")} | set(IDS["array_tasks"])


@pytest.fixture
def inst(tmp_path):
    with running(tmp_path / "cc", clusters={"ccslurm": slurm_cluster_json()}) as i:
        yield i


def backend_jobs(inst, **params) -> dict[int, dict]:
    r = httpx.get(inst.web + "/api/jobs/", params={"cluster": "ccslurm", "items-per-page": 1000,
                                                   "with-metadata": "true", **params},
                  headers={"X-Auth-Token": inst.token(roles=["api"])}, timeout=30)
    assert r.status_code == 200, r.text
    return {j["jobId"]: j for j in r.json()["jobs"]}


@pytest.fixture
async def make(tmp_path, inst):
    """Factory of (config, replayed Slurm, Syncer) against ``inst``; closes the HTTP clients afterwards
    (an idle keep-alive connection would hold up the backend's graceful stop)."""
    made: list[Syncer] = []

    def factory(slurm=None, **over):
        cfg = load_adapter_config(str(adapter_config(tmp_path / "adapter", inst.web, inst.token(roles=["api"]),
                                                     **over)))
        slurm = slurm or RecordedSlurm()
        s = Syncer(cfg, slurm, BackendClient(cfg.cc_rest_url, cfg.cc_rest_jwt, timeout=10))
        made.append(s)
        return cfg, slurm, s

    yield factory
    for s in made:
        await s.backend.aclose()


async def test_poll_reports_every_job_once(inst, make):
    cfg, slurm, s = make()
    await slurm.discover_clusters()
    assert read_last_run(cfg.last_run_path) == 0
    await s.poll()
    assert abs(read_last_run(cfg.last_run_path) - time.time()) < 5
    jobs = backend_jobs(inst)
    assert set(jobs) == REPORTED  # the job cancelled while pending never ran
    assert jobs[IDS["running"]]["jobState"] == "running"
    assert {jobs[i]["jobState"] for i in IDS["array_tasks"]} == {"completed"}
    assert jobs[IDS["failing"]]["jobState"] == "failed"
    assert jobs[IDS["timeout"]]["jobState"] == "timeout"
    assert jobs[IDS["cancel_running"]]["jobState"] == "cancelled"
    mn = jobs[IDS["multinode_gpu"]]
    assert mn["project"] == "proj2" and mn["numNodes"] == 2 and mn["numAcc"] == 2
    assert mn["resources"] == [
        {"hostname": "node01", "hwthreads": [6, 7], "accelerators": ["00000000:01:00.0"]},
        {"hostname": "node02", "hwthreads": [0, 1, 4, 5], "accelerators": ["00000000:01:00.0"]}]
    meta = jobs[IDS["simple"]]["metaData"]
    assert meta["jobName"] == "simple" and meta["jobScript"].startswith("#!/bin/sh")
    assert "JobId=" in meta["slurmInfo"]
    assert {jobs[i]["arrayJobId"] for i in IDS["array_tasks"]} == {IDS["array"]}
    assert s.stats["started"] == len(REPORTED) and s.stats["stopped"] == len(REPORTED) - 1

    # idempotent: a second poll sends nothing new, a fresh adapter (empty cache) neither duplicates
    await s.poll()
    assert s.stats["started"] == len(REPORTED)
    os.utime(cfg.last_run_path, (0, 0))
    _, _, s2 = make(slurm=slurm)
    await s2.poll()
    assert s2.stats["started"] == 0 and s2.stats["stopped"] == 0
    assert set(backend_jobs(inst)) == REPORTED


async def test_backend_outage_keeps_lastrun_and_catches_up(inst, make):
    cfg, slurm, s = make()
    await slurm.discover_clusters()
    inst.stop()
    with pytest.raises(BackendUnavailable):
        await s.poll()
    assert read_last_run(cfg.last_run_path) == 0  # nothing synced, nothing skipped next time
    inst.start()
    s.backend.url = inst.web
    s.invalidate()
    await s.poll()
    assert set(backend_jobs(inst)) == REPORTED


async def test_slurm_outage_keeps_lastrun(inst, make):
    cfg, slurm, s = make()
    await slurm.discover_clusters()
    slurm.fail = True
    with pytest.raises(SlurmError, match="Unable to contact"):
        await s.poll()
    assert read_last_run(cfg.last_run_path) == 0
    slurm.fail = False
    await s.poll()
    assert set(backend_jobs(inst)) == REPORTED


async def test_cache_refresh_repairs_stuck_jobs(inst, make):
    """A job finished in Slurm but running in the backend, and one Slurm never heard of, both get stopped."""
    h = {"X-Auth-Token": inst.token(roles=["api"])}
    sacct = {j["job_id"]: j for j in RecordedSlurm().sacct_doc["jobs"]}
    simple = sacct[IDS["simple"]]
    for job_id, start in ((IDS["simple"], simple["time"]["start"]), (777777, int(time.time()) - 100)):
        r = httpx.post(inst.web + "/api/jobs/start_job/", headers=h, json={
            "jobId": job_id, "user": "root", "cluster": "ccslurm", "startTime": start,
            "resources": [{"hostname": "node01"}]})
        assert r.status_code == 201, r.text
    cfg, slurm, s = make()
    slurm.hidden = set(REPORTED) - {IDS["simple"]}  # keep the sacct window out of it
    await slurm.discover_clusters()
    await s.poll()
    jobs = backend_jobs(inst)
    assert jobs[IDS["simple"]]["jobState"] == "completed"
    assert jobs[IDS["simple"]]["duration"] == simple["time"]["end"] - simple["time"]["start"]
    assert jobs[777777]["jobState"] == "failed"
    assert backend_jobs(inst, state="running") == {}


async def test_job_lost_by_backend_is_started_again_then_stopped(tmp_path, inst, make):
    cfg, slurm, s = make()
    await slurm.discover_clusters()
    await s.poll()
    assert backend_jobs(inst)[IDS["running"]]["jobState"] == "running"
    # the backend loses its database; the cache still says "running"
    await s.backend.aclose()
    inst.stop()
    fresh = Installation(tmp_path / "cc2", clusters={"ccslurm": slurm_cluster_json()})
    fresh.start()
    try:
        s.backend = BackendClient(fresh.web, fresh.token(roles=["api"]), timeout=10)
        run = next(j for j in slurm.sacct_doc["jobs"] if j["job_id"] == IDS["running"])
        run["state"]["current"] = "COMPLETED"
        run["time"]["end"] = run["time"]["start"] + 42
        slurm.hidden = set(REPORTED) - {IDS["running"]}
        s.cache_time = time.time()  # no refresh: the stop has to find out by itself
        await s.poll()
        job = backend_jobs(fresh)[IDS["running"]]
        assert job["jobState"] == "completed" and job["duration"] == 42
        assert job["resources"][0]["hostname"] == "node04"
    finally:
        await s.backend.aclose()
        fresh.stop()


async def test_rejected_job_is_reported_once_and_does_not_block(inst, make, caplog):
    slurm = RecordedSlurm()
    bad = json.loads(json.dumps(next(j for j in slurm.sacct_doc["jobs"] if j["job_id"] == IDS["simple"])))
    bad["job_id"], bad["nodes"] = 99999, "gpu99"  # not a node of the backend's cluster
    slurm.sacct_doc["jobs"].append(bad)
    cfg, slurm, s = make(slurm=slurm)
    await slurm.discover_clusters()
    await s.poll()
    assert s.stats["rejected"] == 1 and "rejected start of job 99999" in caplog.text and "gpu99" in caplog.text
    assert set(backend_jobs(inst)) == REPORTED
    assert read_last_run(cfg.last_run_path) > 0
    await s.poll()
    assert s.stats["rejected"] == 1


async def test_ignore_hosts(inst, make):
    cfg, slurm, s = make(ignoreHosts="^node0[12]$")
    await slurm.discover_clusters()
    await s.poll()
    reported = set(backend_jobs(inst))
    # jobs only on node01/node02 are dropped; the two-node job on node01+node02 too
    assert IDS["multinode_gpu"] not in reported and IDS["exclusive"] in reported and IDS["running"] in reported


async def test_hook_events_retry_until_slurm_shows_the_job(inst, make):
    cfg, slurm, s = make(slurmMaxRetries=2)
    await slurm.discover_clusters()
    await s.refresh_cache()
    slurm.hidden = {IDS["running"]}  # slurmdbd has not recorded it yet
    evs = [HookEvent("ccslurm", IDS["running"], "prolog_slurmctld"),
           HookEvent("ccslurm", IDS["failing"], "epilog_slurmctld"),
           HookEvent("other", 5, "prolog_slurmctld")]
    keep = await s.process_events(evs)
    assert [(e.job_id, e.attempts) for e in keep] == [(IDS["running"], 1)]
    assert backend_jobs(inst)[IDS["failing"]]["jobState"] == "failed"
    slurm.hidden = set()
    assert await s.process_events(keep) == []
    assert backend_jobs(inst)[IDS["running"]]["jobState"] == "running"
    # an event for a job Slurm never shows is given up after slurmMaxRetries
    slurm.hidden = {424242}
    keep = [HookEvent("ccslurm", 424242, "epilog_slurmctld")]
    for _ in range(3):
        keep = await s.process_events(keep)
    assert keep == []


def test_time_window_clamps_and_overlaps():
    now = time.time()
    start, end, clamped = time_window(now - 100, now, 3600)
    assert not clamped and start < end
    assert time.mktime(time.strptime(start, "%Y-%m-%dT%H:%M:%S")) == pytest.approx(now - 101, abs=1)
    _, _, clamped = time_window(0, now, 3600)
    assert clamped
    start, _, _ = time_window(now - 100, now, 3600, overlap=120)  # reaches back for slurmdbd's late records
    assert time.mktime(time.strptime(start, "%Y-%m-%dT%H:%M:%S")) == pytest.approx(now - 220, abs=1)
