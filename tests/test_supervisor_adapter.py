"""The Slurm adapter as an optional child of the supervisor (config key ``slurm-adapter``)."""

from __future__ import annotations

import time

import orjson
import pytest

from cc.config import ConfigError, load_config
from tests.helpers import Installation


def adapter_json(tmp_path) -> dict:
    run = tmp_path / "adapter-run"
    run.mkdir()
    return {"ccRestUrl": "http://127.0.0.1:9", "ccRestJwt": "x.y.z", "pidFilePath": str(run / "pid"),
            "prepSockListenPath": str(run / "sock"), "prepSockConnectPath": str(run / "sock"),
            "lastRunPath": str(run / "lastrun"), "slurmPollInterval": 3600}


def test_adapter_runs_under_the_supervisor(tmp_path):
    (tmp_path / "adapter.json").write_bytes(orjson.dumps(adapter_json(tmp_path)))
    inst = Installation(tmp_path, ingest_workers=1, extra_config={"slurm-adapter": {"config": "adapter.json"}})
    try:
        inst.start()
        procs = {p["name"]: p for p in inst.status()["processes"]}
        assert procs["adapter"]["pid"]
        first = procs["adapter"]["pid"]
        r = inst.cli("restart", "adapter")
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 20
        while time.time() < deadline and inst.pid_of("adapter") in (first, None):
            time.sleep(0.1)
        assert inst.pid_of("adapter") not in (first, None)
        assert inst.cli("stop").returncode == 0
        inst.proc.wait(30)
        assert not (tmp_path / "adapter-run" / "sock").exists()  # the adapter cleaned up on SIGTERM
    finally:
        inst.stop()


def test_adapter_config_must_exist(tmp_path):
    (tmp_path / "config.json").write_bytes(orjson.dumps({"slurm-adapter": {"config": "missing.json"}}))
    with pytest.raises(ConfigError, match="slurm-adapter.config"):
        load_config(tmp_path / "config.json")
