"""cc/tasks without processes: settings validation, walltime rule, node-state retention, the runner."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import trio

from cc.config import ConfigError, load_config
from cc.db import Database, Job, connect, migrate, transaction
from cc.db import _jobs as jobs
from cc.db._nodes import NodeStateUpdate, add_node_states
from cc.tasks import NodeStateRetention, TaskRunner, parse_tasks
from cc.tasks._settings import S3Target
from cc.tasks.nodestate import apply_retention, write_parquet
from cc.tasks.walltime import stop_jobs_exceeding_walltime

NOW = 1_800_000_000


@pytest.mark.parametrize(("raw", "message"), [
    ({"cron": {"footprint-worker": "soon"}}, r"cron\.footprint-worker"),
    ({"cron": {"duration-worker": "0s"}}, r"cron\.duration-worker must be a positive duration"),
    ({"cron": {"commit-job-worker": "x"}}, r"cron\.commit-job-worker"),
    ({"main": {"stop-jobs-exceeding-walltime": -5}}, r"main\.stop-jobs-exceeding-walltime must be seconds"),
    ({"main": {"stop-jobs-exceeding-walltime": "1h"}}, r"main\.stop-jobs-exceeding-walltime must be seconds"),
    ({"main": {"nodestate-retention": {"policy": "archive"}}}, r"main\.nodestate-retention\.policy must be one of"),
    ({"main": {"nodestate-retention": {"policy": "delete", "age": "1d"}}}, r"main\.nodestate-retention\.age"),
    ({"main": {"nodestate-retention": {"policy": "move"}}}, r"main\.nodestate-retention\.target-path is required"),
    ({"main": {"nodestate-retention": {"policy": "move", "target-kind": "s3"}}},
     r"main\.nodestate-retention\.target-endpoint is required for target-kind 's3'"),
    ({"main": {"nodestate-retention": {"policy": "move", "target-kind": "s3", "target-endpoint": "ftp://h:1",
                                       "target-bucket": "b1b"}}}, r"target-endpoint: expected http:// or https://"),
    ({"main": {"nodestate-retention": {"policy": "move", "target-kind": "s3", "target-endpoint": "h:1",
                                       "target-bucket": "Bad_Bucket"}}}, r"target-bucket: not an S3 bucket name"),
    ({"main": {"nodestate-retention": {"policy": "move", "target-kind": "s3", "target-endpoint": "h:1",
                                       "target-bucket": "bkt", "target-access-key": "a"}}},
     r"target-secret-key is required"),
    ({"main": {"nodestate-retention": {"policy": "move", "target-path": "x", "target-bucket": "b"}}},
     r"target-bucket applies to target-kind 's3' only"),
    ({"main": {"nodestate-retention": {"policy": "move", "target-kind": "ftp", "target-path": "x"}}},
     r"target-kind must be one of file, s3"),
])
def test_bad_task_settings_name_the_key(tmp_path, raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_tasks(raw, tmp_path)


def test_task_settings_defaults_and_values(tmp_path):
    st = parse_tasks({}, tmp_path)
    assert (st.duration_interval, st.footprint_interval, st.walltime_grace, st.nodestate) == (60, 600, None, None)
    st = parse_tasks({"cron": {"footprint-worker": "30s"}, "main": {"stop-jobs-exceeding-walltime": 600,
                      "nodestate-retention": {"policy": "move", "target-path": "ns", "age": 48}}}, tmp_path)
    assert st.footprint_interval == 30 and st.walltime_grace == 600
    assert st.nodestate == NodeStateRetention("move", 48, tmp_path / "ns", 128)
    st = parse_tasks({"main": {"nodestate-retention": {
        "policy": "move", "target-kind": "s3", "target-endpoint": "http://127.0.0.1:9000/", "target-bucket": "nodestates",
        "target-access-key": "a", "target-secret-key": "s", "target-use-path-style": True}}}, tmp_path)
    assert st.nodestate.s3 == S3Target("127.0.0.1:9000", "http", "nodestates", "a", "s", "us-east-1", True)
    assert "secret" not in repr(st.nodestate.s3) and "'s'" not in repr(st.nodestate.s3)


def test_load_config_refuses_bad_task_keys(tmp_path):
    (tmp_path / "config.json").write_text('{"cron": {"footprint-worker": "-1m"}}')
    with pytest.raises(ConfigError, match=r"cron\.footprint-worker"):
        load_config(tmp_path / "config.json")


def test_walltime_rule(tmp_path):
    migrate(tmp_path / "job.db")
    conn = connect(tmp_path / "job.db")
    ids = {}
    for name, start, walltime, state in (("over", NOW - 1000, 600, "running"), ("in-grace", NOW - 700, 600, "running"),
                                         ("no-walltime", NOW - 99999, 0, "running"),
                                         ("done", NOW - 5000, 600, "completed")):
        ids[name] = transaction(conn, jobs.insert_job, Job(job_id=len(ids) + 1, cluster="c1", user="u", project="p",
                                                           start_time=start, walltime=walltime, state=state,
                                                           resources=[{"hostname": "h"}], num_nodes=1))
    assert transaction(conn, stop_jobs_exceeding_walltime, 300, NOW) == [ids["over"]]
    over = jobs.find_job(conn, ids["over"])
    assert (over.state, over.duration, over.monitoring_status) == ("timeout", 600, 1)  # 1: into the archive queue
    assert ids["over"] in [j.id for j in jobs.archive_queue(conn, NOW)]
    assert {jobs.find_job(conn, ids[n]).state for n in ("in-grace", "no-walltime")} == {"running"}
    conn.close()


def _node_db(tmp_path, stamps):
    migrate(tmp_path / "job.db")
    conn = connect(tmp_path / "job.db")
    transaction(conn, add_node_states, [NodeStateUpdate(f"n{i % 3}", "c1", "main", t, "idle", "full")
                                        for i, t in enumerate(stamps)])
    conn.close()
    return Database(tmp_path / "job.db")


def test_nodestate_delete_policy(tmp_path):
    db = _node_db(tmp_path, [NOW - 10 * 3600, NOW - 25 * 3600, NOW - 3600])
    res = trio.run(apply_retention, db, NodeStateRetention("delete", 24), NOW)
    assert res == {"policy": "delete", "deleted": 1}
    assert sorted(r[0] for r in db.read_sync(lambda c: c.execute("SELECT time_stamp FROM node_state").fetchall())) \
        == [NOW - 10 * 3600, NOW - 3600]
    db.close()


def test_nodestate_move_splits_files_and_never_overwrites(tmp_path):
    rows = [(NOW - i, "idle", "full", "x" * 4000, 1, 2, 0, 0, f"n{i:03d}", "c1", "main") for i in range(600)]
    first = write_parquet(tmp_path / "out", rows, 1, day="2026-12-06")
    assert len(first) == 3 and first[0] == "cc-nodestate-2026-12-06-001.parquet"
    assert sum(pq.read_metadata(tmp_path / "out" / n).num_rows for n in first) == 600
    second = write_parquet(tmp_path / "out", rows[:1], 1, day="2026-12-06")
    assert second == ["cc-nodestate-2026-12-06-004.parquet"]
    t = pq.read_table(tmp_path / "out" / first[0])
    assert t.schema.field("time_stamp").type == "int64" and t.schema.field("cpus_allocated").type == "int32"


def test_nodestate_move_deletes_only_what_it_wrote(tmp_path):
    db = _node_db(tmp_path, [NOW - 30 * 3600, NOW - 26 * 3600, NOW - 3600])
    cfg = NodeStateRetention("move", 24, tmp_path / "ns")
    res = trio.run(apply_retention, db, cfg, NOW)
    assert res["moved"] == 2 and len(res["files"]) == 1
    assert pq.read_table(tmp_path / "ns" / res["files"][0]).column("time_stamp").to_pylist() == \
        [NOW - 30 * 3600, NOW - 26 * 3600]
    assert trio.run(apply_retention, db, cfg, NOW) == {"policy": "move", "moved": 0, "files": []}
    db.close()


def test_runner_records_failures_and_keeps_going():
    runner = TaskRunner()
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return {"done": len(calls)}

    runner.add("flaky", 5, flaky)

    async def main():
        first = await runner.run_once("flaky")
        second = await runner.run_once("flaky")
        return first, second

    first, second = trio.run(main)
    assert first["last_error"] == "OSError: disk full" and first["failures"] == 1 and first["runs"] == 1
    assert second["last_error"] is None and second["last_result"] == {"done": 2}
    assert second["last_failure"] == "OSError: disk full" and second["runs"] == 2
    assert runner.state()[0]["interval"] == 5
    with pytest.raises(KeyError):
        trio.run(runner.run_once, "nope")
