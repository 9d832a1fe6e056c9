"""``make demo`` end to end: a fresh directory comes alive with running jobs that have data, the
history lands in the database, Ctrl-C stops everything without leaving shared memory, and a
second start continues the jobs of the first."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from cc.config import load_config
from cc.db import connect
from cc.jwtauth import load_private_key, sign_token
from cc.shm import instance_id, list_segments, unlink_all
from tests.helpers import ROOT, env_without_proxy

pytestmark = pytest.mark.slow

ARGS = ["--cpu-nodes", "4", "--gpu-nodes", "2", "--history-days", "0.5", "--time-scale", "60", "--backfill", "120",
        "--web-addr", "127.0.0.1:0", "--ingest-addr", "127.0.0.1:0"]


def start(d: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "supervisor.demo", "--dir", str(d), *ARGS], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env=env_without_proxy())


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        if proc.poll() is not None:
            raise AssertionError(f"demo exited ({proc.returncode}) waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def running_with_data(web: str, token: str) -> list[dict] | None:
    """Running jobs, if at least one of them returns metric values with all-metrics=true."""
    h = {"Authorization": f"Bearer {token}"}
    try:
        jobs = httpx.get(f"{web}/api/jobs/", params={"state": "running", "items-per-page": 100, "with-metadata": "true"}, headers=h,
                         timeout=10).json()["jobs"]
        for j in jobs[:5]:
            data = httpx.get(f"{web}/api/jobs/{j['id']}", params={"all-metrics": "true"}, headers=h,
                             timeout=10).json()["Data"] or {}
            values = [v for per_scope in data.values() for jm in per_scope.values() for s in jm["series"]
                      for v in s["data"] if v is not None]
            if "cpu_load" in data and values:
                return jobs
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    return None


def stop(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_demo_lives_and_stops_cleanly(tmp_path):
    d = tmp_path / "demo"
    log = tmp_path / "demo.out"
    t0 = time.time()
    proc = start(d, log)
    inst = None
    try:
        wait_for(lambda: (d / "config.json").exists(), 30, "the demo directory", proc, log)
        cfg = load_config(d / "config.json")
        inst = instance_id(cfg.var_dir)
        wait_for(lambda: "demo is up" in log.read_text(), 60, "the banner", proc, log)
        ports = orjson.loads((cfg.run_dir / "ports.json").read_bytes())
        web = f"http://{ports['web']}"
        token = sign_token(load_private_key(cfg.secret("JWT_PRIVATE_KEY")), "tester", ["api", "admin"], 3600)
        jobs = wait_for(lambda: running_with_data(web, token), 60 - (time.time() - t0), "running jobs with data",
                        proc, log)
        assert time.time() - t0 < 60
        assert {j["cluster"] for j in jobs} <= {"fritz", "alex"}
        assert all(j["user"] and j["metaData"]["jobScript"].startswith("#!/bin/bash") for j in jobs)
        assert list_segments(inst)
        # the history arrives in the background; users exist for logging in
        wait_for(lambda: orjson.loads((cfg.var_dir / "sim" / "history.json").read_bytes()).get("done")
                 if (cfg.var_dir / "sim" / "history.json").exists() else False, 60, "the history", proc, log)
        conn = connect(cfg.db_path)
        try:
            users = {r[0]: orjson.loads(r[1]) for r in conn.execute("SELECT username, roles FROM hpc_user")}
            names = dict(conn.execute("SELECT username, name FROM hpc_user"))
            archived = conn.execute("SELECT count(*) FROM job WHERE hpc_user = 'alice' AND monitoring_status = 3"
                                    ).fetchone()[0]
        finally:
            conn.close()
        assert "admin" in users["demo"] and users["alice"] == ["user"]
        assert names["alice"] == "Alice Anderson" and names["bob"] == "Bob Brown"  # the users list shows names
        assert archived > 0
        stop(proc, log)
        assert not list_segments(inst), "shared memory left behind"
        state = orjson.loads((cfg.var_dir / "sim" / "state.json").read_bytes())
        assert state["running"]

        # a second start reuses the directory and continues the jobs
        proc = start(d, log)
        wait_for(lambda: log.read_text().count("demo is up") == 2, 60, "the second banner", proc, log)
        assert "reusing" in log.read_text()
        ports = orjson.loads((cfg.run_dir / "ports.json").read_bytes())
        jobs = wait_for(lambda: running_with_data(f"http://{ports['web']}", token), 30, "running jobs again",
                        proc, log)
        continued = {j["jobId"] for j in jobs} & {r["spec"]["job_id"] for r in state["running"]}
        ended_meanwhile = [r for r in state["running"] if r["start"] + r["spec"]["runtime"] < time.time()]
        assert continued or len(ended_meanwhile) == len(state["running"])
        stop(proc, log)
        assert not list_segments(inst)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if inst:
            unlink_all(inst)
