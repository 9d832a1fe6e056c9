"""The maintenance tasks in a real installation: a job past its walltime is stopped as timeout and
archived, a running job's footprint reaches the database and GraphQL, old node states move to
Parquet, and ``cc-supervise status`` shows each task's runs."""

from __future__ import annotations

import time

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
import trio

from cc import ipc
from cc.db import _jobs as jobs
from cc.db import connect, migrate, transaction
from cc.db._model import MONITORING_ARCHIVING_SUCCESSFUL
from cc.db._nodes import NodeStateUpdate, add_node_states
from tests.helpers import Installation, wait_for

NOW = int(time.time())
SPAN = 300



@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    i = Installation(root, ingest_workers=1, extra_config={
        "cron": {"duration-worker": "1s", "footprint-worker": "1s"},
        "archive": {"compression": 2},
        "main": {"stop-jobs-exceeding-walltime": 30,
                 "nodestate-retention": {"policy": "move", "age": 2, "target-kind": "file",
                                         "target-path": "var/nodestates"}}})
    migrate(i.cfg.db_path)
    conn = connect(i.cfg.db_path)
    try:  # two rows older than 2 h, one recent: only the old ones move
        transaction(conn, add_node_states, [
            NodeStateUpdate("x1", "c1", "main", NOW - 5 * 3600, "idle", "full", cpus_allocated=0),
            NodeStateUpdate("x2", "c1", "main", NOW - 3 * 3600, "allocated", "partial", '{"x": 1}', 8, 1024, 1, 1),
            NodeStateUpdate("x1", "c1", "main", NOW - 60, "mixed", "full")])
    finally:
        conn.close()
    i.start()
    try:
        yield i
    finally:
        i.stop()


def api(inst, method, path, json=None):
    return httpx.request(method, inst.web + path, content=orjson.dumps(json),
                         headers={"Authorization": f"Bearer {inst.token('adapter', ['api'])}"}, timeout=30)


def start_job(inst, job_id: int, start: int, walltime: int, host: str) -> int:
    r = api(inst, "POST", "/api/jobs/start_job/", {
        "jobId": job_id, "user": "alice", "project": "p1", "cluster": "c1", "partition": "main", "numNodes": 1,
        "numHwthreads": 8, "startTime": start, "walltime": walltime, "resources": [{"hostname": host}],
        "metaData": {"jobName": f"job{job_id}"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def find(inst, db_id):
    conn = connect(inst.cfg.db_path)
    try:
        return jobs.find_job(conn, db_id)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def ingested(inst):
    t0 = (NOW // 10) * 10 - SPAN
    lines = [f"cpu_load,cluster=c1,hostname={h},type=node value={v} {t0 + 10 * k}"
             for k in range(SPAN // 10) for h, v in (("x1", 4.0), ("x2", 2.0))]
    r = inst.write("\n".join(lines))
    assert r.status_code == 200, r.text
    return t0


def walltime_runs(inst) -> int:
    return next(t["runs"] for t in inst.status()["tasks"] if t["name"] == "stop-jobs-exceeding-walltime")


def test_job_past_walltime_is_stopped_as_timeout_and_archived(inst, ingested):
    db_id = start_job(inst, 501, ingested, 60, "x2")  # walltime ended ~240 s ago, grace 30 s
    job = wait_for(lambda: (j := find(inst, db_id)) and j.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL
                   and j, what="the walltime job archived")
    assert job.state == "timeout" and job.duration == 60
    assert job.footprint.get("cpu_load_avg") == 2.0  # archived with the data of its 60 s
    keep = start_job(inst, 502, NOW - 10, 3600, "x1")  # within its walltime: keeps running
    runs = walltime_runs(inst)
    wait_for(lambda: walltime_runs(inst) >= runs + 2, what="two more walltime checks", timeout=60)
    assert find(inst, keep).state == "running"


def test_running_job_footprint_reaches_db_and_graphql(inst, ingested):
    db_id = start_job(inst, 503, ingested, 7200, "x1")
    job = wait_for(lambda: (j := find(inst, db_id)) and (j.footprint or {}).get("cpu_load_avg") and j,
                   what="the footprint of the running job")
    assert job.state == "running" and job.footprint["cpu_load_avg"] == 4.0
    assert set(job.footprint) >= {"cpu_load_avg", "flops_any_avg", "mem_bw_avg"}
    def running_with_load(lo: float, hi: float) -> dict[int, list]:
        q = ('query($lo: Float!, $hi: Float!) { jobs(filter: [{state: [running]}, {jobId: {eq: "503"}}, '
             '{metricStats: [{metricName: "cpu_load_avg", range: {from: $lo, to: $hi}}]}]) '
             '{ items { id footprint { name stat value } } } }')
        r = httpx.post(inst.web + "/query", content=orjson.dumps({"query": q, "variables": {"lo": lo, "hi": hi}}),
                       timeout=30, headers={"Authorization": f"Bearer {inst.token('admin', ['admin', 'api'])}",
                                            "Content-Type": "application/json"})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return {int(x["id"]): x["footprint"] for x in r.json()["data"]["jobs"]["items"]}

    found = running_with_load(3.5, 5)
    assert list(found) == [db_id]
    assert {"name": "cpu_load", "stat": "avg", "value": 4.0} in found[db_id]
    assert running_with_load(4.5, 5) == {}


def test_node_states_moved_to_parquet(inst):
    target = inst.root / "var" / "nodestates"
    files = wait_for(lambda: sorted(target.glob("cc-nodestate-*.parquet")), what="the node-state parquet file")
    table = pq.read_table(files[0]).to_pylist()
    assert [(r["hostname"], r["node_state"]) for r in table] == [("x1", "idle"), ("x2", "allocated")]
    assert table[1] == {"time_stamp": NOW - 3 * 3600, "node_state": "allocated", "health_state": "partial",
                        "health_metrics": '{"x": 1}', "cpus_allocated": 8, "memory_allocated": 1024,
                        "gpus_allocated": 1, "jobs_running": 1, "hostname": "x2", "cluster": "c1",
                        "subcluster": "main"}
    conn = connect(inst.cfg.db_path)
    try:
        left = [tuple(r) for r in conn.execute("SELECT time_stamp FROM node_state")]
    finally:
        conn.close()
    assert left == [(NOW - 60,)]


def test_status_shows_every_task(inst):
    tasks = wait_for(lambda: (t := [x for x in inst.status()["tasks"] if x["name"] != "archive-compression"])
                     and all(x["runs"] >= 1 for x in t) and t, what="every task run once")
    assert [t["name"] for t in tasks] == ["duration-worker", "stop-jobs-exceeding-walltime", "footprint-worker",
                                          "nodestate-retention"]
    daily = next(t for t in inst.status()["tasks"] if t["name"] == "archive-compression")
    assert daily["interval"] == 86400 and daily["next_run"] > time.time()
    assert all(t["last_error"] is None and t["last_duration"] is not None for t in tasks)
    assert tasks[0]["interval"] == 1.0 and tasks[3]["interval"] == 3600.0
    out = inst.cli("status").stdout
    assert "footprint-worker" in out and "nodestate-retention" in out and "moved 2" in out


def test_compression_task_gzips_old_jobs_data(inst):
    """archive.compression (2 days): a job that started 3 days ago is archived with a small plain data.json;
    the archiver's daily task (run now through its socket) turns it into data.json.gz, the API still serves it."""
    start = NOW - 3 * 86400
    db_id = start_job(inst, 601, start, 3600, "x1")
    r = api(inst, "POST", "/api/jobs/stop_job/", {"jobId": 601, "cluster": "c1", "startTime": start,
                                                  "stopTime": start + 120, "jobState": "completed"})
    assert r.status_code == 200, r.text
    wait_for(lambda: (j := find(inst, db_id)) and j.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL,
             what="the old job archived")
    job_dir = inst.cfg.archive_path / "c1" / "0" / "601" / str(start)
    assert (job_dir / "data.json").exists() and not (job_dir / "data.json.gz").exists()
    before = api(inst, "GET", f"/api/jobs/{db_id}").json()["Data"]
    answer = trio.run(ipc.request, inst.cfg.run_dir / "archiver.sock",
                      {"cmd": "run-task", "name": "archive-compression"})
    assert answer["ok"] and answer["task"]["last_error"] is None, answer
    assert "compressed 1 of 1 jobs" in answer["task"]["last_result"]
    assert (job_dir / "data.json.gz").exists() and not (job_dir / "data.json").exists()
    assert api(inst, "GET", f"/api/jobs/{db_id}").json()["Data"] == before
