"""A real installation with ``archive.kind`` sqlite and s3 (moto): a job started and stopped over REST is
archived into the store, served back by the web process, registered again by init-db, and the archive
CLI (info, validate, convert, retention --dry-run) works on it."""

from __future__ import annotations

import sqlite3
import time

import httpx
import orjson
import pytest

from cc.archive import open_archive, validate
from cc.db import _jobs as jobs
from cc.db import connect
from tests import s3_server
from tests.helpers import running, wait_for

SPAN = 300
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server.S3Server(tmp_path_factory.mktemp("moto")) as srv:
        yield srv



def archive_config(kind, s3, root) -> dict:
    base = {"retry-delay": "1s", "max-attempts": 4,
            "retention": {"policy": "delete", "age": 1, "include-db": False}}
    if kind == "sqlite":
        return {**base, "kind": "sqlite", "db-path": "./var/job-archive.db"}
    return {**base, "kind": "s3", **s3.settings(s3.bucket(f"site-{root.name.lower().replace('_', '-')[-40:]}"))}


@pytest.mark.parametrize("kind", ["sqlite", "s3"])
def test_job_through_archiver_web_init_db_and_cli(kind, s3, tmp_path):
    with running(tmp_path, ingest_workers=1, extra_config={"archive": archive_config(kind, s3, tmp_path)}) as inst:
        assert inst.cfg.archive.kind == kind
        t0 = (int(time.time()) // 10) * 10 - SPAN - 10
        lines = [f"cpu_load,cluster=c1,hostname=x1,type=node value={100 + k} {t0 + 10 * k}" for k in range(SPAN // 10)]
        assert inst.write("\n".join(lines)).status_code == 200
        auth = {"Authorization": f"Bearer {inst.token()}"}
        start = {"jobId": 7001, "user": "alice", "project": "p1", "cluster": "c1", "subCluster": "main",
                 "startTime": t0, "numNodes": 1, "walltime": 3600, "resources": [{"hostname": "x1"}]}
        r = httpx.post(inst.web + "/api/jobs/start_job/", content=orjson.dumps(start), headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        db_id = r.json()["id"]
        r = httpx.post(inst.web + "/api/jobs/stop_job/", headers=auth, timeout=30, content=orjson.dumps(
            {"jobId": 7001, "cluster": "c1", "startTime": t0, "stopTime": t0 + SPAN, "jobState": "completed"}))
        assert r.status_code == 200, r.text

        def archived():
            conn = connect(inst.cfg.db_path)
            try:
                return jobs.find_job(conn, db_id).monitoring_status == 3
            finally:
                conn.close()

        wait_for(archived, what="archiving")
        archive = open_archive(inst.cfg.archive, cache_bytes=0)
        assert archive.kind == kind
        meta = archive.load_meta("c1", 7001, t0)
        data = archive.load_data("c1", 7001, t0)
        validate("job-meta", meta)
        validate("job-data", data)
        assert data["cpu_load"]["node"]["series"][0]["data"] == [100.0 + k for k in range(SPAN // 10)]
        # nothing in the local archive directory but the cluster.json copies
        assert not list(inst.cfg.archive_path.glob("c1/*/"))
        assert archive.cluster_config("c1") == (inst.cfg.archive_path / "c1" / "cluster.json").read_bytes()

        r = httpx.get(f"{inst.web}/api/jobs/{db_id}", params={"all-metrics": "true"}, headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        served = r.json()["Data"]["cpu_load"]["node"]["series"][0]["data"]
        assert served == [100.0 + k for k in range(SPAN // 10)]

        info = inst.cli("archive", "info", "--json")
        assert info.returncode == 0, info.stderr
        assert orjson.loads(info.stdout)["clusters"]["c1"]["jobs"] == 1
        val = inst.cli("archive", "validate", "-q")
        assert val.returncode == 0, val.stdout + val.stderr
        dry = inst.cli("archive", "retention", "--dry-run")
        assert dry.returncode == 0 and "(would) retention delete" in dry.stdout, dry.stdout + dry.stderr
        conv = inst.cli("archive", "convert", "--to", "file", "--path", str(tmp_path / "copy"))
        assert conv.returncode == 0 and "verified: all 1 jobs" in conv.stdout, conv.stdout + conv.stderr
        assert (tmp_path / "copy" / "c1" / "7" / "001" / str(t0) / "meta.json").is_file()

        r = inst.cli("init-db", "--force")
        assert r.returncode == 0 and "1 jobs" in r.stdout, r.stdout + r.stderr
        conn = sqlite3.connect(inst.cfg.db_path)
        try:
            assert conn.execute("SELECT job_id, monitoring_status FROM job").fetchall() == [(7001, 3)]
        finally:
            conn.close()
        archive.close()
