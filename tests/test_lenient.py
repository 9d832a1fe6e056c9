"""Archives from the field: jobs whose files stray from the schema where it does not matter are taken,
with one warning per kind of deviation; unusable files are still skipped."""

from __future__ import annotations

import random

import orjson
import pytest

from cc.archive import JobArchive, dbsync, job_meta
from cc.archive._lenient import Deviations, check
from cc.archive._schema import SchemaError
from cc.db import connect, migrate
from tests.archive_gen import generate, init_archive, job_data, make_job, write_meta
from tests.helpers import Installation, small_cluster


def deviating_meta(cluster, i: int, rng, **changes) -> dict:
    job, stats = make_job(cluster, i, rng)
    m = job_meta(job, stats)
    m["statistics"]["cpu_load"]["unit"] = {"base": "load"}  # what cc-backend archives hold for cpu_load
    for k, v in changes.items():
        m[k] = v
    return m


def test_check_separates_deviations_from_unusable_files(tmp_path):
    clusters = init_archive(tmp_path, {"c1": small_cluster()})
    m = deviating_meta(clusters["c1"], 1, random.Random(1))
    [(fld, message)] = check("job-meta", m)
    assert fld == "statistics.cpu_load.unit.base" and message.startswith('"load" is not one of')
    del m["user"]
    with pytest.raises(SchemaError, match="user: is required"):
        check("job-meta", m)
    m = deviating_meta(clusters["c1"], 2, random.Random(2), jobState="exploded")
    with pytest.raises(SchemaError, match="jobState"):
        check("job-meta", m)  # the database row cannot hold it


def test_deviations_are_counted_once_per_kind():
    d = Deviations()
    d.add("a/meta.json", [("statistics.cpu_load.unit.base", "x"), ("statistics.cpu_load.unit.base", "x")])
    d.add("b/meta.json", [("statistics.cpu_load.unit.base", "x"), ("resources[3].extra", "y")])
    d.add("c/meta.json", [("resources[0].extra", "y")])
    assert d.warnings() == ["a/meta.json: statistics.cpu_load.unit.base: x (accepted: outside the schema, but "
                            "usable; 2 files have this)",
                            "b/meta.json: resources[3].extra: y (accepted: outside the schema, but usable; "
                            "2 files have this)"]


def test_init_db_takes_deviating_jobs_with_one_warning_per_kind(tmp_path):
    clusters = init_archive(tmp_path / "arch", {"c1": small_cluster()})
    archive = JobArchive(tmp_path / "arch")
    migrate(tmp_path / "job.db")
    good = generate(archive.root, clusters["c1"], 10)
    rng = random.Random(7)
    odd = [write_meta(archive.root, deviating_meta(clusters["c1"], 100 + i, rng)) for i in range(3)]
    m = deviating_meta(clusters["c1"], 200, rng)
    m["statistics"]["mem_used"]["unit"] = {"base": "B", "prefix": "Gi"}  # a second kind
    second = write_meta(archive.root, m)
    missing = deviating_meta(clusters["c1"], 300, rng)
    del missing["project"]
    skipped = write_meta(archive.root, missing)
    broken = write_meta(archive.root, deviating_meta(clusters["c1"], 301, rng))
    broken.write_bytes(b'{"jobId": ')
    res = dbsync.init_db(tmp_path / "job.db", archive, clusters, workers=1)
    assert res.jobs == len(good) + 4
    assert len(res.errors) == 2
    assert any(e.startswith(f"{skipped}: project: is required") for e in res.errors)
    assert any(e.startswith(f"{broken}: invalid JSON") for e in res.errors)
    warnings = res.deviations.warnings()
    assert len(warnings) == 2, warnings
    first = min(str(p) for p in odd)
    assert any(w.startswith(f"{first}: statistics.cpu_load.unit.base: ") and "4 files have this" in w
               for w in warnings), warnings
    assert any(w.startswith(f"{second}: statistics.mem_used.unit.prefix: ") for w in warnings), warnings
    conn = connect(tmp_path / "job.db")
    try:
        assert conn.execute("SELECT count(*) FROM job").fetchone()[0] == len(good) + 4
    finally:
        conn.close()
    meta = orjson.loads(odd[0].read_bytes())
    assert archive.load_meta("c1", meta["jobId"], meta["startTime"])["statistics"]["cpu_load"]["unit"] == \
        {"base": "load"}  # the reader serves it as it is


def test_import_job_and_cli_warn_about_deviations(tmp_path):
    inst = Installation(tmp_path / "inst")
    from cc.clusters import load_clusters

    clusters = load_clusters(inst.cfg.archive_path)
    rng = random.Random(3)
    pairs = []
    for i in range(2):
        meta = deviating_meta(clusters["c1"], 400 + i, rng)
        data = job_data([r["hostname"] for r in meta["resources"]], {"cpu_load": "", "mem_used": "B"}, 20, seed=i)
        data["cpu_load"]["node"]["unit"] = {"base": "load"}
        mp, dp = tmp_path / f"m{i}.json", tmp_path / f"d{i}.json"
        mp.write_bytes(orjson.dumps(meta))
        dp.write_bytes(orjson.dumps(data))
        pairs.append(f"{mp}:{dp}")
    r = inst.cli("import-job", ",".join(pairs))
    assert r.returncode == 0, r.stderr
    assert "imported 2 of 2 jobs" in r.stdout
    lines = [x for x in r.stderr.splitlines() if x.startswith("warning: ")]
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith(f"warning: {tmp_path / 'm0.json'}: statistics.cpu_load.unit.base: ")
    assert lines[1].startswith(f"warning: {tmp_path / 'd0.json'}: cpu_load.node.unit.base: ")
    assert all("2 files have this" in x for x in lines)
    r = inst.cli("init-db", "--force")
    assert r.returncode == 0, r.stderr
    assert "2 jobs and" in r.stdout and "warning: " in r.stderr and "statistics.cpu_load.unit.base" in r.stderr
