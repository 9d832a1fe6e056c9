"""init-db (archive -> database) and import-job: round trip, bad files reported and skipped."""

from __future__ import annotations

import json
import os
import random
import shutil

import orjson
import pytest

from cc.archive import JobArchive, dbsync, job_meta
from cc.db import Job, connect, migrate, transaction
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.db._model import SELECT_JOB
from tests.archive_gen import generate, init_archive, job_data, make_job, write_meta
from tests.helpers import Installation, small_cluster


@pytest.fixture
def setup(tmp_path):
    clusters = init_archive(tmp_path / "arch", {"c1": small_cluster()})
    migrate(tmp_path / "job.db")
    return tmp_path / "job.db", JobArchive(tmp_path / "arch"), clusters


def exported(db_path, statistics: dict) -> dict[tuple, dict]:
    """meta.json of every job as the database now describes it (statistics are not in the database)."""
    conn = connect(db_path)
    try:
        found = [Job.from_row(r) for r in conn.execute(SELECT_JOB)]
        by_job = tags.tags_of_jobs(conn, [j.id for j in found], None)
    finally:
        conn.close()
    out = {}
    for j in found:
        j.tags = by_job[j.id]
        key = (j.cluster, j.job_id, j.start_time)
        out[key] = job_meta(j, statistics[key])
    return out


def indexes(db_path) -> list[str]:
    conn = connect(db_path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    finally:
        conn.close()


@pytest.mark.parametrize("chunk, workers", [(2000, 1), (40, 2)])
def test_round_trip_archive_database_meta(setup, monkeypatch, chunk, workers):
    db_path, archive, clusters = setup
    monkeypatch.setattr(dbsync, "CHUNK", chunk)
    metas = generate(archive.root, clusters["c1"], 250, seed=chunk)
    assert any(m["tags"] for m in metas) and any(m.get("energy") for m in metas)
    before = indexes(db_path)
    seen = []
    res = dbsync.init_db(db_path, archive, clusters, workers=workers, progress=lambda d, t: seen.append((d, t)))
    assert res.errors == [] and res.jobs == 250 and res.tags > 0
    assert seen[-1] == (250, 250)
    assert indexes(db_path) == before  # dropped for the bulk insert, rebuilt after
    originals = {(m["cluster"], m["jobId"], m["startTime"]): m for m in metas}
    again = exported(db_path, {k: m["statistics"] for k, m in originals.items()})
    assert again.keys() == originals.keys()
    for key, meta in originals.items():
        assert again[key] == meta, key
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM job WHERE monitoring_status = 3").fetchone()[0] == 250
    assert conn.execute("SELECT count(*) FROM jobtag").fetchone()[0] == sum(len(m["tags"]) for m in metas)
    conn.close()
    # a second run replaces everything: same ids, no duplicates
    res2 = dbsync.init_db(db_path, archive, clusters, workers=workers)
    assert res2.jobs == 250 and res2.ids == res.ids
    assert exported(db_path, {k: m["statistics"] for k, m in originals.items()}) == again


def test_bad_meta_files_are_reported_and_skipped(setup):
    db_path, archive, clusters = setup
    metas = generate(archive.root, clusters["c1"], 20)
    rng = random.Random(5)
    bad = {}

    def place(meta: dict, raw: bytes | None = None) -> str:
        path = write_meta(archive.root, meta)
        if raw is not None:
            path.write_bytes(raw)
        return str(path)

    job, stats = make_job(clusters["c1"], 100, rng)
    m = job_meta(job, stats)
    bad["json"] = (place(m, b'{"jobId": 5,'), "invalid JSON")
    job, stats = make_job(clusters["c1"], 101, rng)
    m = job_meta(job, stats)
    del m["user"]
    bad["user"] = (place(m), "user: is required")
    job, stats = make_job(clusters["c1"], 102, rng)
    m = job_meta(job, stats)
    m["resources"][0]["hwthreads"] = ["x"]
    bad["hw"] = (place(m), "resources[0].hwthreads[0]: must be of type integer")
    job, stats = make_job(clusters["c1"], 103, rng)
    m = job_meta(job, stats)
    m["numNodes"] = m["numNodes"] + 1
    bad["nodes"] = (place(m), "numNodes: ")
    job, stats = make_job(clusters["c1"], 104, rng)
    m = job_meta(job, stats)
    path = write_meta(archive.root, m)
    m["startTime"] += 1  # content disagrees with its directory
    path.write_bytes(orjson.dumps(m))
    bad["where"] = (str(path), "belong in")
    job, stats = make_job(clusters["c1"], 105, rng)
    m = job_meta(job, stats)
    m["subCluster"] = "gpu"
    bad["sub"] = (place(m), "subCluster 'gpu' is not defined")
    job, stats = make_job(clusters["c1"], 106, rng)
    m = job_meta(job, stats)
    m["cluster"] = "c9"
    os.makedirs(archive.root / "c9")
    bad["cluster"] = (place(m), "cluster: no cluster.json for cluster 'c9'")
    errors: list[str] = []
    res = dbsync.init_db(db_path, archive, clusters, on_error=errors.append)
    assert res.jobs == len(metas)
    assert len(res.errors) == len(bad) and errors == res.errors
    for path, fragment in bad.values():
        assert any(e.startswith(f"{path}: ") and fragment in e for e in errors), (path, fragment, errors)


def test_init_db_failure_keeps_old_tables(setup, monkeypatch):
    db_path, archive, clusters = setup
    generate(archive.root, clusters["c1"], 10)
    dbsync.init_db(db_path, archive, clusters)
    before = indexes(db_path)

    def boom(*a, **kw):
        raise RuntimeError("disk on fire")

    generate(archive.root, clusters["c1"], 30, seed=9)
    monkeypatch.setattr(dbsync, "_parse_one", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        dbsync.init_db(db_path, archive, clusters, workers=1)
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM job").fetchone()[0] == 10
    conn.close()
    assert indexes(db_path) == before


def test_import_jobs(setup, tmp_path):
    db_path, archive, clusters = setup
    rng = random.Random(11)
    files = []
    for i in range(4):
        job, stats = make_job(clusters["c1"], i, rng)
        meta = job_meta(job, stats)
        data = job_data([r["hostname"] for r in meta["resources"]], {"cpu_load": "", "mem_used": "B"}, 100, seed=i)
        mp, dp = tmp_path / f"meta{i}.json", tmp_path / f"data{i}.json"
        mp.write_bytes(orjson.dumps(meta))
        dp.write_bytes(orjson.dumps(data))
        files.append((mp, dp, meta, data))
    bad_meta = json.loads(files[1][0].read_text())
    bad_meta["resources"] = [{"hostname": "x", "accelerators": [1]}]
    files[1][0].write_text(json.dumps(bad_meta))
    bad_data = dict(files[2][3])
    bad_data["cpu_load"] = {"node": {"unit": {"base": ""}, "timestep": 60}}
    files[2][1].write_bytes(orjson.dumps(bad_data))
    pairs = [(mp, dp) for mp, dp, _, _ in files] + [(tmp_path / "missing.json", files[0][1]), (files[0][0], files[0][1])]
    res = dbsync.import_jobs(db_path, archive, clusters, pairs)
    assert res.jobs == 2
    e = res.errors
    assert e[0].startswith(f"{files[1][0]}: resources[0].accelerators[0]: must be of type string")
    assert e[1] == f"{files[2][1]}: cpu_load.node.series: is required"
    assert e[2].startswith(f"{tmp_path / 'missing.json'}: cannot read")
    assert e[3].startswith(f"{files[0][0]}: job ") and "already in the database" in e[3]
    conn = connect(db_path)
    for _, _, meta, data in (files[0], files[3]):
        found = jobs.find_jobs(conn, meta["jobId"], "c1", meta["startTime"])
        assert len(found) == 1 and found[0].monitoring_status == 3
        assert found[0].footprint == meta["footprint"]
        assert archive.load_data("c1", meta["jobId"], meta["startTime"]) == data
        assert archive.load_meta("c1", meta["jobId"], meta["startTime"]) == meta
        assert [t.name for t in tags.job_tags(conn, found[0].id, None)] == [t["name"] for t in meta["tags"]]
    conn.close()
    assert not archive.exists("c1", files[1][2]["jobId"], files[1][2]["startTime"])  # nothing half-written


def test_import_rolls_back_the_archive_when_the_insert_fails(setup, tmp_path, monkeypatch):
    db_path, archive, clusters = setup
    job, stats = make_job(clusters["c1"], 1, random.Random(1))
    meta = job_meta(job, stats)
    (tmp_path / "m.json").write_bytes(orjson.dumps(meta))
    (tmp_path / "d.json").write_bytes(orjson.dumps({}))
    import sqlite3

    def failing_insert(conn, job):
        raise sqlite3.IntegrityError("constraint failed")

    monkeypatch.setattr(jobs, "insert_job", failing_insert)
    res = dbsync.import_jobs(db_path, archive, clusters, [(tmp_path / "m.json", tmp_path / "d.json")])
    assert res.jobs == 0 and "database insert failed" in res.errors[0]
    assert not archive.exists("c1", meta["jobId"], meta["startTime"])


def test_cli_init_db_and_import_job(tmp_path):
    inst = Installation(tmp_path / "inst")
    archive = JobArchive(inst.cfg.archive_path)
    from cc.clusters import load_clusters

    clusters = load_clusters(inst.cfg.archive_path)
    generate(archive.root, clusters["c1"], 30)
    broken = write_meta(archive.root, {"jobId": 5, "cluster": "c1", "startTime": 7})
    r = inst.cli("init-db")
    assert r.returncode == 1, r.stderr
    assert "30 jobs and" in r.stdout and "1 jobs skipped" in r.stdout
    assert f"error: {broken}: user: is required (skipped)" in r.stderr
    shutil.rmtree(broken.parent)
    conn = connect(inst.cfg.db_path)
    j = Job(job_id=1, cluster="c1", user="u", project="p", start_time=1, resources=[{"hostname": "x"}], num_nodes=1,
            subcluster="main")
    transaction(conn, jobs.insert_job, j)  # a running job that is not in the archive
    conn.close()
    r = inst.cli("init-db")
    assert r.returncode == 1 and "running or not yet archived" in r.stderr
    r = inst.cli("init-db", "--force")
    assert r.returncode == 0, r.stderr
    job, stats = make_job(clusters["c1"], 500, random.Random(2))
    (tmp_path / "m.json").write_bytes(orjson.dumps(job_meta(job, stats)))
    (tmp_path / "d.json").write_bytes(orjson.dumps(job_data(["a"], {"cpu_load": ""}, 10)))
    r = inst.cli("import-job", f"{tmp_path / 'm.json'}:{tmp_path / 'd.json'},{tmp_path / 'm.json'}")
    assert r.returncode == 2 and "expected <meta.json>:<data.json>" in r.stderr
    r = inst.cli("import-job", f"{tmp_path / 'm.json'}:{tmp_path / 'd.json'},{tmp_path / 'x.json'}:{tmp_path / 'd.json'}")
    assert r.returncode == 1 and "imported 1 of 2 jobs" in r.stdout
    assert f"error: {tmp_path / 'x.json'}: cannot read" in r.stderr
