"""Node-state retention ``move`` to S3 against a real S3-protocol server (moto_server, started here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import trio
from pyarrow import fs

from cc.db import Database, connect, migrate, transaction
from cc.db._nodes import NodeStateUpdate, add_node_states
from cc.tasks import parse_tasks
from cc.tasks.nodestate import apply_retention
from tests.helpers import env_without_proxy, free_port

NOW = 1_800_000_000
MOTO = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")


@pytest.fixture
def s3_server(tmp_path):
    if MOTO is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]', part of the test extra)")
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=env_without_proxy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("moto_server did not start: " + (tmp_path / "moto.log").read_text())
            time.sleep(0.1)
        assert httpx.put(f"{url}/node-states", timeout=10).status_code == 200
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_move_to_s3(tmp_path, s3_server):
    settings = parse_tasks({"main": {"nodestate-retention": {
        "policy": "move", "age": 24, "target-kind": "s3", "target-endpoint": s3_server,
        "target-bucket": "node-states", "target-access-key": "test", "target-secret-key": "test",
        "target-region": "us-east-1", "target-use-path-style": True}}}, tmp_path)
    migrate(tmp_path / "job.db")
    conn = connect(tmp_path / "job.db")
    transaction(conn, add_node_states, [NodeStateUpdate("n1", "c1", "main", NOW - 30 * 3600, "down", "failed"),
                                        NodeStateUpdate("n2", "c1", "main", NOW - 25 * 3600, "idle", "full"),
                                        NodeStateUpdate("n1", "c1", "main", NOW - 3600, "idle", "full")])
    conn.close()
    db = Database(tmp_path / "job.db")
    try:
        res = trio.run(apply_retention, db, settings.nodestate, NOW)
        again = trio.run(apply_retention, db, settings.nodestate, NOW + 48 * 3600)
        left = db.read_sync(lambda c: c.execute("SELECT count(*) FROM node_state").fetchone()[0])
    finally:
        db.close()
    assert res["moved"] == 2 and res["target"] == "s3://node-states" and len(res["files"]) == 1
    assert again["moved"] == 1 and again["files"][0] != res["files"][0]  # a new object, not an overwrite
    assert left == 0
    s3 = fs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1", scheme="http",
                         endpoint_override=s3_server.removeprefix("http://"))
    names = sorted(i.base_name for i in s3.get_file_info(fs.FileSelector("node-states")))
    assert names == sorted(res["files"] + again["files"])
    table = pq.read_table(f"node-states/{res['files'][0]}", filesystem=s3).to_pylist()
    assert [(r["hostname"], r["time_stamp"], r["node_state"]) for r in table] == [
        ("n1", NOW - 30 * 3600, "down"), ("n2", NOW - 25 * 3600, "idle")]
