"""archive.retention: delete, move and copy to a file tree and to S3 (moto), JSON and Parquet targets,
include-db on and off, tagged jobs kept with omit-tagged."""

from __future__ import annotations

import gzip
import io
import sqlite3

import orjson
import pyarrow.parquet as pq
import pytest

from cc.archive import JobArchive
from cc.archive import retention as ret
from cc.archive._storage import FileStore, S3Store
from cc.archive.dbsync import init_db, load_archive_clusters
from cc.archivecfg import parse_retention
from cc.db import migrate
from tests import s3_server
from tests.test_archive_backends import all_files, fill

N = 12
NOW = 1_600_000_000 + 37 * 6 + 86400 * 10  # ten days after job 6 started: jobs 0..5 are "older than 10 days"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server.S3Server(tmp_path_factory.mktemp("moto")) as srv:
        yield srv


_buckets = iter(range(10_000))


def setup(tmp_path, tagged=()):
    """A file archive of N jobs registered in a job DB; jobs with index in ``tagged`` get a tag."""
    archive = JobArchive(FileStore(tmp_path / "arch"))
    metas = fill(archive, N)
    for i, m in enumerate(metas):
        m["tags"] = [{"type": "bug", "name": "keep", "scope": "global"}] if i in tagged else []
        archive.update_meta("c1", m["jobId"], m["startTime"], tags=m["tags"])
    db = tmp_path / "job.db"
    migrate(db)
    clusters, _ = load_archive_clusters(archive)
    assert init_db(db, archive, clusters).jobs == N
    return archive, db, metas


def db_jobs(db) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT job_id FROM job")}
    finally:
        conn.close()


def archived(archive) -> set[int]:
    return {orjson.loads(archive.read_raw(k)["meta.json"])["jobId"] for k in archive.job_keys()}


def settings(tmp_path, s3, policy, *, target="file", fmt="json", include_db=True, omit_tagged="none"):
    d = {"policy": policy, "age": 10, "include-db": include_db, "omit-tagged": omit_tagged, "format": fmt,
         "target-kind": target}
    if target == "file":
        d["target-path"] = str(tmp_path / "target")
    else:
        bucket = s3.bucket(f"retention-{next(_buckets)}")
        d.update({"target-endpoint": s3.endpoint, "target-bucket": bucket, "target-access-key": s3_server.ACCESS_KEY,
                  "target-secret-key": s3_server.SECRET_KEY, "target-region": "us-east-1",
                  "target-use-path-style": True})
    return parse_retention(d, tmp_path)


def target_of(s) -> JobArchive:
    return ret.target_archive(s)


@pytest.mark.parametrize("include_db", [True, False])
def test_delete(tmp_path, s3, include_db):
    archive, db, metas = setup(tmp_path)
    s = settings(tmp_path, s3, "delete", include_db=include_db)
    dry = ret.run(s, archive, db, var_dir=tmp_path, now=NOW, dry_run=True)
    assert (dry.selected, dry.removed_archive) == (6, 6)
    assert len(archived(archive)) == N
    rep = ret.run(s, archive, db, var_dir=tmp_path, now=NOW)
    old = {m["jobId"] for m in metas[:6]}
    assert rep.errors == [] and rep.removed_archive == 6
    assert archived(archive) == {m["jobId"] for m in metas} - old
    assert db_jobs(db) == ({m["jobId"] for m in metas} - old if include_db else {m["jobId"] for m in metas})
    assert rep.removed_db == (6 if include_db else 0)


def test_delete_omit_tagged_keeps_tagged_jobs(tmp_path, s3):
    archive, db, metas = setup(tmp_path, tagged={1, 3})
    rep = ret.run(settings(tmp_path, s3, "delete", omit_tagged="all"), archive, db, var_dir=tmp_path, now=NOW)
    assert rep.removed_archive == 4 and rep.removed_db == 4
    kept = {metas[1]["jobId"], metas[3]["jobId"]}
    assert kept <= archived(archive) and kept <= db_jobs(db)
    assert metas[0]["jobId"] not in archived(archive)


@pytest.mark.parametrize("target", ["file", "s3"])
@pytest.mark.parametrize("include_db", [True, False])
def test_move_json(tmp_path, s3, target, include_db):
    archive, db, metas = setup(tmp_path)
    before = all_files(archive)
    s = settings(tmp_path, s3, "move", target=target, include_db=include_db)
    rep = ret.run(s, archive, db, var_dir=tmp_path, now=NOW)
    assert rep.errors == [] and (rep.transferred, rep.removed_archive) == (6, 6)
    moved = target_of(s)
    old = {m["jobId"] for m in metas[:6]}
    assert archived(moved) == old
    assert archived(archive) == {m["jobId"] for m in metas} - old
    moved_files = all_files(moved)  # byte for byte what the archive held, with version.txt and cluster.json
    assert all(before[k] == v for k, v in moved_files.items())
    assert moved.version() == 3 and moved.clusters() == ["c1"]
    assert (db_jobs(db) & old == set()) == include_db


@pytest.mark.parametrize("target", ["file", "s3"])
def test_copy_json_is_incremental(tmp_path, s3, target):
    archive, db, metas = setup(tmp_path, tagged={2})
    s = settings(tmp_path, s3, "copy", target=target, omit_tagged="all")
    rep = ret.run(s, archive, db, var_dir=tmp_path, now=NOW)
    assert rep.errors == [] and rep.transferred == 5 and rep.removed_archive == 0
    copied = target_of(s)
    assert archived(copied) == {m["jobId"] for i, m in enumerate(metas[:6]) if i != 2}
    assert archived(archive) == {m["jobId"] for m in metas}  # copy deletes nothing
    assert db_jobs(db) == {m["jobId"] for m in metas}
    again = ret.run(s, archive, db, var_dir=tmp_path, now=NOW + 37 * 2)  # two more jobs became old
    assert again.selected == 2 and again.transferred == 2
    assert len(archived(copied)) == 7


@pytest.mark.parametrize("target", ["file", "s3"])
def test_move_parquet(tmp_path, s3, target):
    archive, db, metas = setup(tmp_path)
    originals = {m["jobId"]: archive.read_raw(archive.job_key("c1", m["jobId"], m["startTime"])) for m in metas}
    s = settings(tmp_path, s3, "move", target=target, fmt="parquet")
    rep = ret.run(s, archive, db, var_dir=tmp_path, now=NOW)
    assert rep.errors == [] and rep.transferred == 6 and len(rep.files) == 1
    out = target_of(s)
    name = rep.files[0][len(out.location()):]
    assert name.startswith("c1/cc-archive-") and name.endswith("-001.parquet")
    table = pq.read_table(io.BytesIO(out.store.read(name)))
    assert table.column_names == list(ret.PARQUET_COLUMNS)
    rows = table.to_pylist()
    assert sorted(r["job_id"] for r in rows) == sorted(m["jobId"] for m in metas[:6])
    for r in rows:
        raw = originals[r["job_id"]]
        data = raw.get("data.json") or gzip.decompress(raw["data.json.gz"])
        assert orjson.loads(gzip.decompress(r["metric_data_gz"])) == orjson.loads(data)
        meta = orjson.loads(raw["meta.json"])
        assert orjson.loads(r["resources_json"]) == meta["resources"]
        assert orjson.loads(r["statistics_json"]) == meta["statistics"]
        assert r["cluster"] == "c1" and r["start_time"] == meta["startTime"] and r["user"] == meta["user"]
    assert out.cluster_config("c1") == archive.cluster_config("c1")
    assert len(archived(archive)) == N - 6


def test_parquet_files_split_at_max_size_and_never_overwrite(tmp_path, s3):
    s = settings(tmp_path, s3, "copy", fmt="parquet")
    files = ret._ParquetFiles(target_of(s), 3000, ret.RetentionReport("copy", 0))
    for i in range(4):
        files.add({c: None for c in ret.PARQUET_COLUMNS} | {"cluster": "c1", "sub_cluster": "", "project": "",
                                                              "start_time": i, "job_id": i,
                                                              "resources_json": b"[]", "metric_data_gz": b"x" * 2000})
    files.close()
    assert [f.rsplit("-", 1)[1] for f in files.report.files] == ["001.parquet", "002.parquet", "003.parquet",
                                                                  "004.parquet"]
    more = ret._ParquetFiles(target_of(s), 3000, ret.RetentionReport("copy", 0))
    more.add({c: None for c in ret.PARQUET_COLUMNS} | {"cluster": "c1", "sub_cluster": "", "project": "",
                                                         "start_time": 9, "job_id": 9, "resources_json": b"[]",
                                                         "metric_data_gz": b""})
    more.close()
    assert more.report.files[0].endswith("-005.parquet")


def test_next_run_is_daily_at_the_policy_hour():
    import datetime as dt

    s = parse_retention({"policy": "delete", "age": 1}, __import__("pathlib").Path("."))
    base = dt.datetime(2026, 1, 5, 2, 30).timestamp()
    assert ret.seconds_until_next_run(s, base) == 1800
    assert ret.seconds_until_next_run(s, base + 3600) == 86400 - 1800


def test_s3_store_class_is_used_for_s3_targets(tmp_path, s3):
    s = settings(tmp_path, s3, "move", target="s3")
    assert isinstance(target_of(s).store, S3Store)


@pytest.mark.parametrize("policy,fmt,steps", [("move", "json", 12), ("move", "parquet", 12), ("delete", "json", 6)])
def test_progress_counts_copies_and_deletions(tmp_path, s3, policy, fmt, steps):
    """The CLI's progress bar: each of the 6 old jobs counts once per copy and once per deletion."""
    archive, db, _ = setup(tmp_path)
    calls = []
    ret.run(settings(tmp_path, s3, policy, fmt=fmt), archive, db, var_dir=tmp_path, now=NOW,
            progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (steps, steps)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and {t for _, t in calls} == {steps}
