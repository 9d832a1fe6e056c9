"""The archiver in a real installation: stop a job, find it archived with the values that were ingested;
kill -9 the archiver while it works through a queue; failed archiving is retried with backoff."""

from __future__ import annotations

import gzip
import os
import signal
import time

import httpx
import orjson
import pytest

from cc import ipc
from cc.archive import JobArchive, validate
from cc.db import Job, connect, transaction
from cc.db import _jobs as jobs
from tests.helpers import running, small_cluster, wait_for

GPU0 = "00000000:01:00.0"
SPAN = 300


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("archiver"),
                 extra_config={"archive": {"retry-delay": "1s", "max-attempts": 4}}) as i:
        yield i


@pytest.fixture(scope="module")
def t0(inst):
    """Start of a 300 s window of known metric values on hosts x1 and x2 (ingested over HTTP)."""
    t0 = (int(time.time()) // 10) * 10 - SPAN - 10
    lines = []
    for k in range(SPAN // 10):
        t = t0 + 10 * k
        for h, hv in (("x1", 100), ("x2", 200)):
            lines.append(f"cpu_load,cluster=c1,hostname={h},type=node value={hv + k} {t}")
            lines.append(f"mem_used,cluster=c1,hostname={h},type=node value={hv} {t}")
            for hw in range(8):
                lines.append(f"flops_any,cluster=c1,hostname={h},type=hwthread,type-id={hw} value={hw + k} {t}")
            for s in range(2):
                lines.append(f"mem_bw,cluster=c1,hostname={h},type=socket,type-id={s} value={s + 1} {t}")
            lines.append(f"acc_power,cluster=c1,hostname={h},type=accelerator,type-id={GPU0} value=250 {t}")
    r = inst.write("\n".join(lines))
    assert r.status_code == 200, r.text
    return t0


def db(inst):
    return connect(inst.cfg.db_path)



def insert_stopped(inst, job_id: int, start: int, cluster: str = "c1", hosts=("x1", "x2")) -> int:
    job = Job(job_id=job_id, cluster=cluster, user="u", project="p", start_time=start, duration=SPAN,
              state="completed", resources=[{"hostname": h} for h in hosts], num_nodes=len(hosts), subcluster="main")
    conn = db(inst)
    try:
        return transaction(conn, jobs.insert_job, job)
    finally:
        conn.close()


def status_of(inst, db_id: int) -> Job:
    conn = db(inst)
    try:
        return jobs.find_job(conn, db_id)
    finally:
        conn.close()


def archiver(inst, cmd: str) -> dict:
    return ipc.request_sync(inst.cfg.run_dir / "archiver.sock", {"cmd": cmd})


def test_stopped_job_is_archived_with_the_ingested_values(inst, t0):
    auth = {"Authorization": f"Bearer {inst.token()}"}
    start = {"jobId": 5001, "user": "alice", "project": "p1", "cluster": "c1", "subCluster": "main",
             "startTime": t0, "numNodes": 2, "numAcc": 1, "walltime": 3600,
             "resources": [{"hostname": "x1", "accelerators": [GPU0]}, {"hostname": "x2"}],
             "tags": [{"type": "app", "name": "lammps"}]}
    r = httpx.post(inst.web + "/api/jobs/start_job/", content=orjson.dumps(start), headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    db_id = r.json()["id"]
    r = httpx.post(inst.web + "/api/jobs/stop_job/", headers=auth, timeout=30, content=orjson.dumps(
        {"jobId": 5001, "cluster": "c1", "startTime": t0, "stopTime": t0 + SPAN, "jobState": "completed"}))
    assert r.status_code == 200, r.text
    job = wait_for(lambda: (j := status_of(inst, db_id)).monitoring_status == 3 and j, what="archiving")
    archive = JobArchive(inst.cfg.archive_path)
    d = archive.job_dir("c1", 5001, t0)
    assert (d / "data.json.gz").exists()
    meta = orjson.loads((d / "meta.json").read_bytes())
    data = orjson.loads(gzip.decompress((d / "data.json.gz").read_bytes()))
    validate("job-meta", meta)
    validate("job-data", data)
    n = SPAN // 10
    assert meta["jobState"] == "completed" and meta["duration"] == SPAN and meta["monitoringStatus"] == 3
    assert meta["tags"] == [{"type": "app", "name": "lammps", "scope": "global"}]
    cl = {s["hostname"]: s for s in data["cpu_load"]["node"]["series"]}
    assert cl["x1"]["data"] == [100.0 + k for k in range(n)] and cl["x2"]["data"] == [200.0 + k for k in range(n)]
    flops = {s["hostname"]: s["data"] for s in data["flops_any"]["node"]["series"]}
    assert flops["x1"] == [28.0 + 8 * k for k in range(n)]
    assert len(data["flops_any"]["hwthread"]["series"]) == 16  # native scope archived (2 nodes <= 8)
    assert sorted(s["id"] for s in data["mem_bw"]["socket"]["series"]) == ["0", "0", "1", "1"]
    assert [s["hostname"] for s in data["acc_power"]["accelerator"]["series"]] == ["x1"]  # the job's GPU only
    assert "statisticsSeries" in data["flops_any"]["hwthread"]
    stats = meta["statistics"]
    assert stats["cpu_load"]["avg"] == round((100 + 200 + 2 * (n - 1) / 2) / 2, 2)
    assert stats["cpu_load"]["min"] == 100.0 and stats["cpu_load"]["max"] == 200.0 + n - 1
    assert stats["mem_used"] == {"unit": {"base": ""}, "avg": 150.0, "min": 100.0, "max": 200.0}
    assert job.footprint == meta["footprint"] == {"cpu_load_avg": stats["cpu_load"]["avg"],
                                                  "flops_any_avg": stats["flops_any"]["avg"],
                                                  "mem_bw_avg": stats["mem_bw"]["avg"]}
    # acc_power: 250 W on x1, none on x2 -> node average 125 W x 2 nodes x 300 s
    assert job.energy == meta["energy"] == round(125 * 2 * SPAN / 3600 / 1000, 2)
    assert archiver(inst, "status")["archived"] >= 1


def test_killed_archiver_resumes_and_loses_no_job(inst, t0):
    total = 150
    ids = [insert_stopped(inst, 10_000 + i, t0) for i in range(total)]
    pid = inst.pid_of("archiver")
    archiver(inst, "wake")

    def archived() -> int:
        conn = db(inst)
        try:
            return conn.execute(f"SELECT count(*) FROM job WHERE monitoring_status = 3 AND id IN "
                                f"({','.join(map(str, ids))})").fetchone()[0]
        finally:
            conn.close()

    wait_for(lambda: archived() >= 3, what="first jobs archived")
    os.kill(pid, signal.SIGKILL)
    at_kill = archived()
    assert at_kill < total, "the archiver finished before it could be killed"
    wait_for(lambda: inst.pid_of("archiver") not in (None, pid), what="archiver restart")
    wait_for(lambda: archived() == total, timeout=120, what="all jobs archived after the restart")
    archive = JobArchive(inst.cfg.archive_path)
    for i in range(total):
        meta = archive.load_meta("c1", 10_000 + i, t0)
        validate("job-meta", meta)
        assert meta["jobId"] == 10_000 + i
    assert not [p for p in inst.cfg.archive_path.rglob(".*")]  # no temporary directories left behind
    proc = next(p for p in inst.status()["processes"] if p["name"] == "archiver")
    assert proc["crashes"] >= 1 and proc["last_exit"] == "killed by SIGKILL"
    assert archiver(inst, "status")["queue"] == 0


def test_failed_archiving_is_retried_with_backoff(inst, t0):
    fixed = insert_stopped(inst, 20_001, t0, cluster="c2")  # no cluster.json yet
    hopeless = insert_stopped(inst, 20_002, t0, cluster="c3")
    archiver(inst, "wake")

    def attempts(db_id, n):
        conn = db(inst)
        try:
            st = jobs.archive_status(conn, db_id)
        finally:
            conn.close()
        return st if st and st["attempts"] >= n else None

    st = wait_for(lambda: attempts(fixed, 1), what="first failure")
    assert "no cluster.json" in st["lastError"] and "c2" in st["lastError"]
    assert st["nextAttempt"] - st["lastAttempt"] == 1
    st = wait_for(lambda: attempts(fixed, 2), what="second failure")
    assert st["nextAttempt"] - st["lastAttempt"] == 2  # doubled
    errors = archiver(inst, "status")["lastErrors"]
    assert any(e["id"] == fixed and "cluster.json" in e["error"] for e in errors)
    assert status_of(inst, fixed).monitoring_status == 1  # still queued
    d = inst.cfg.archive_path / "c2"
    d.mkdir(exist_ok=True)
    (d / "cluster.json").write_bytes(orjson.dumps(small_cluster("c2")))
    wait_for(lambda: status_of(inst, fixed).monitoring_status == 3, what="archiving after the fix")
    conn = db(inst)
    assert jobs.archive_status(conn, fixed) is None
    conn.close()
    wait_for(lambda: status_of(inst, hopeless).monitoring_status == 2, timeout=30, what="giving up")
    st = attempts(hopeless, 4)
    assert st is not None and st["nextAttempt"] is None
