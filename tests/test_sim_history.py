"""The history generator: valid archive, consistent statistics, database rows that init-db reproduces."""

from __future__ import annotations

import collections
import sqlite3

import orjson
import pytest

from cc import jobdata
from cc.archive import JobArchive, validate
from cc.archive.dbsync import init_db, load_archive_clusters
from cc.db import connect, job_from_json
from cc.sim import history
from cc.sim.cli import write_clusters
from supervisor._init import init_directory

END = 1_700_000_000
DAYS = 1.5


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    init_directory(root, [], "127.0.0.1:0", "127.0.0.1:0", memory_cap_gb=0.1)
    archive = root / "var" / "job-archive"
    write_clusters(archive, 4, 2, 10)
    clusters, errors = load_archive_clusters(archive)
    assert not errors
    planned = {}
    res = history.generate(archive, root / "var" / "job.db", clusters, days=DAYS, end=END, seed=3, workers=2,
                           on_planned=lambda ids, n: planned.update(ids=ids, n=n))
    _, runs = history.finished_jobs(clusters, END - int(DAYS * 86400), END, seed=3)  # the same jobs again
    return root, clusters, res, planned, {(r.spec.cluster, r.spec.job_id): r for r in runs}


def rows(root) -> list[sqlite3.Row]:
    conn = connect(root / "var" / "job.db")
    try:
        return conn.execute("SELECT * FROM job ORDER BY cluster, job_id").fetchall()
    finally:
        conn.close()


def test_jobs_are_spread_over_the_period(generated):
    root, _, res, planned, runs = generated
    assert res.jobs == planned["n"] == len(runs) > 80
    assert planned["ids"] == res.next_ids
    db = rows(root)
    assert len(db) == res.jobs
    starts = [r["start_time"] for r in db]
    assert min(starts) < END - DAYS * 86400 + 6 * 3600 and max(starts) > END - 6 * 3600
    assert all(r["start_time"] + r["duration"] <= END for r in db)
    assert {r["cluster"] for r in db} == {"fritz", "alex"}
    users = collections.Counter(r["hpc_user"] for r in db)
    assert users["alice"] > 0 and len(users) >= 6
    assert all(r["monitoring_status"] == 3 for r in db)
    for c in ("fritz", "alex"):  # job ids continue where the history stops
        assert max(r["job_id"] for r in db if r["cluster"] == c) < res.next_ids[c]


def test_archive_validates_and_statistics_match_data(generated):
    root, clusters, _, _, _ = generated
    archive = JobArchive(root / "var" / "job-archive")
    n = 0
    for path in archive.iter_jobs():
        meta = orjson.loads(path.read_bytes())
        validate("job-meta", meta)
        data = archive.load_data(meta["cluster"], meta["jobId"], meta["startTime"])
        validate("job-data", data)
        job = job_from_json(meta)
        cluster = clusters[meta["cluster"]]
        assert meta["statistics"] == jobdata.job_statistics(data, job, cluster)
        assert meta["footprint"] == jobdata.footprint(job, cluster, meta["statistics"])
        energy, per = jobdata.energy(job, cluster, meta["statistics"])
        assert meta["energy"] == energy and meta["energyFootprint"] == per
        for per_scope in data.values():
            for scope, jm in per_scope.items():
                for s in jm["series"]:
                    assert s["hostname"] in job.hosts
                    vals = [v for v in s["data"] if v is not None]
                    assert min(vals) == s["statistics"]["min"] or abs(min(vals) - s["statistics"]["min"]) < 0.01
                if scope == "accelerator":
                    assert {s["id"] for s in jm["series"]} <= {a for r in job.resources
                                                                for a in r.get("accelerators", ())}
        n += 1
    assert n > 80


def test_profiles_show_in_the_footprints(generated):
    root, _, _, _, runs = generated
    by_profile = collections.defaultdict(list)
    for r in rows(root):
        run = runs[(r["cluster"], r["job_id"])]
        if run.spec.runtime > 1800 and r["cluster"] == "fritz":
            by_profile[(run.spec.profile, r["shared"])].append(orjson.loads(r["footprint"]))
    avg = {p: {k: sum(f[k] for f in fs) / len(fs) for k in fs[0]} for p, fs in by_profile.items()}
    compute, memory = avg[("compute", "none")], avg[("memory", "none")]
    assert compute["flops_any_avg"] > 3 * memory["flops_any_avg"]
    assert memory["mem_bw_avg"] > 1.5 * compute["mem_bw_avg"]
    assert compute["cpu_load_avg"] > 50 and memory["cpu_load_avg"] > 50
    assert avg[("idle", "multi_user")]["cpu_load_avg"] < 3  # one spinning thread


def test_init_db_round_trip(generated, tmp_path):
    """Rebuilding the database from the archive gives the rows the generator inserted."""
    root, clusters, res, _, _ = generated
    db2 = tmp_path / "job.db"
    from cc.db import migrate

    migrate(db2)
    out = init_db(db2, JobArchive(root / "var" / "job-archive"), clusters)
    assert not out.errors and out.jobs == res.jobs
    cols = ("job_id", "cluster", "subcluster", "start_time", "duration", "hpc_user", "project", "job_state",
            "num_nodes", "num_hwthreads", "num_acc", "shared", "energy", "footprint", "energy_footprint",
            "resources", "array_job_id", "walltime", "submit_time")
    conn = connect(db2)
    try:
        again = {(r["cluster"], r["job_id"]): r for r in conn.execute("SELECT * FROM job")}
        tags = conn.execute("SELECT count(*) FROM jobtag").fetchone()[0]
    finally:
        conn.close()
    for r in rows(root):
        r2 = again[(r["cluster"], r["job_id"])]
        for c in cols:
            a, b = r[c], r2[c]
            if c in ("footprint", "energy_footprint", "resources"):
                a, b = orjson.loads(a), orjson.loads(b)
            assert a == b, (c, a, b)
    assert tags == res.jobs  # one app tag per job


def test_history_is_deterministic(generated, tmp_path):
    _, clusters, _, _, runs = generated
    _, again = history.finished_jobs(clusters, END - int(DAYS * 86400), END, seed=3)
    assert [(r.spec.cluster, r.spec.job_id, r.start, r.spec.runtime) for r in again] == \
        [(k[0], k[1], v.start, v.spec.runtime) for k, v in runs.items()]
