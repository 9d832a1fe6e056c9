"""``make demo DEMO_ARGS=--nats``: the simulated cluster's metrics, job events and node states through a nats-server."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from cc.config import load_config
from cc.jwtauth import load_private_key, sign_token
from cc.shm import instance_id, list_segments, unlink_all
from tests.helpers import ROOT, env_without_proxy
from tests.test_demo import ARGS, running_with_data, stop, wait_for

pytestmark = pytest.mark.slow


def test_demo_with_nats(tmp_path):
    d = tmp_path / "demo"
    log = tmp_path / "demo.out"
    args = list(ARGS)
    args[args.index("--history-days") + 1] = "0"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "supervisor.demo", "--dir", str(d), *args, "--nats"], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env=env_without_proxy())
    inst = None
    try:
        wait_for(lambda: "demo is up" in log.read_text(), 90, "the banner", proc, log)
        assert "NATS:      nats://127.0.0.1:" in log.read_text()
        cfg = load_config(d / "config.json")
        inst = instance_id(cfg.var_dir)
        assert cfg.nats is not None and cfg.api_subjects is not None and cfg.metric_store.nats_subscriptions
        ports = orjson.loads((cfg.run_dir / "ports.json").read_bytes())
        token = sign_token(load_private_key(cfg.secret("JWT_PRIVATE_KEY")), "tester", ["api", "admin"], 3600)
        jobs = wait_for(lambda: running_with_data(f"http://{ports['web']}", token), 60, "running jobs with data",
                        proc, log)
        assert {j["cluster"] for j in jobs} <= {"fritz", "alex"}
        st = subprocess.run([sys.executable, "-m", "supervisor", "--config", str(cfg.path), "status", "--json"],
                            capture_output=True, text=True, timeout=30)
        procs = {p["name"]: p for p in orjson.loads(st.stdout)["processes"]}
        assert procs["web"]["nats"] == "connected" and procs["ingest-0"]["nats"] == "connected"
        web_log = (cfg.log_dir / "web.log").read_text()
        assert "NATS cc.job.event: start_job of job" in web_log  # the jobs came as NATS events
        stop(proc, log)
        assert not list_segments(inst)
        # a later run without --nats takes the NATS keys out again
        cfg_doc = orjson.loads((d / "config.json").read_bytes())
        assert "nats" in cfg_doc
        from supervisor.demo import configure_nats

        configure_nats(d, None)
        cfg = load_config(d / "config.json")
        assert cfg.nats is None and not cfg.metric_store.nats_subscriptions and cfg.api_subjects is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if inst:
            unlink_all(inst)
