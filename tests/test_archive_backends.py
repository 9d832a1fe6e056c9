"""The three archive stores (file, SQLite, S3 on a real moto server): reads, writes, init-db, the archive
manager (validate, convert round trip, remove, info) and the configuration keys."""

from __future__ import annotations

import random
import sqlite3

import orjson
import pytest

from cc.archive import JobArchive, job_meta, manage, open_archive
from cc.archive._storage import FileStore, S3Store, SqliteStore
from cc.archive.dbsync import init_db, load_archive_clusters
from cc.archivecfg import ArchiveConfigError, parse_archive
from cc.db import migrate
from tests import s3_server
from tests.archive_gen import init_archive, job_data, make_job
from tests.helpers import small_cluster


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server.S3Server(tmp_path_factory.mktemp("moto")) as srv:
        yield srv


_buckets = iter(range(10_000))


def new_s3(s3) -> S3Store:
    name = s3.bucket(f"archive-{next(_buckets)}")
    return S3Store(endpoint=s3.endpoint, bucket=name, access_key=s3_server.ACCESS_KEY,
                   secret_key=s3_server.SECRET_KEY, region="us-east-1", use_path_style=True)


def new_store(kind, tmp_path, s3):
    if kind == "file":
        return FileStore(tmp_path / "files")
    if kind == "sqlite":
        return SqliteStore(tmp_path / "archive.db")
    return new_s3(s3)


def fill(archive: JobArchive, n: int, seed: int = 1) -> list[dict]:
    """version.txt, cluster c1 and ``n`` finished jobs with data (some above the gzip threshold)."""
    archive.init_version()
    archive.put_cluster_config("c1", orjson.dumps(small_cluster("c1")))
    clusters, _ = load_archive_clusters(archive)
    rng = random.Random(seed)
    metas = []
    for i in range(n):
        job, stats = make_job(clusters["c1"], i, rng)
        job.resources = [{"hostname": "x1"}]
        job.num_nodes, job.num_acc, job.num_hwthreads = 1, 0, 8
        meta = job_meta(job, stats)
        archive.write(meta, job_data(["x1"], {"cpu_load": ""}, 5 if i % 2 else 400, seed=i))
        metas.append(meta)
    return metas


def all_files(archive: JobArchive) -> dict[str, bytes]:
    out = {"version.txt": archive.store.read("version.txt")}
    for c in archive.clusters():
        out[f"{c}/cluster.json"] = archive.cluster_config(c)
    for key in archive.job_keys():
        for name, blob in archive.read_raw(key).items():
            out[f"{key}/{name}"] = blob
    return out


@pytest.mark.parametrize("kind", ["file", "sqlite", "s3"])
def test_store_reads_writes_updates_deletes(kind, tmp_path, s3):
    archive = JobArchive(new_store(kind, tmp_path, s3))
    metas = fill(archive, 4)
    assert archive.version() == 3
    assert archive.clusters() == ["c1"]
    assert len(list(archive.job_keys())) == 4
    m = metas[0]
    assert archive.exists("c1", m["jobId"], m["startTime"])
    assert archive.load_meta("c1", m["jobId"], m["startTime"])["jobId"] == m["jobId"]
    data = archive.load_data("c1", m["jobId"], m["startTime"])  # 400 points: gzipped
    assert len(data["cpu_load"]["node"]["series"][0]["data"]) == 400
    assert "data.json.gz" in archive.read_raw(archive.job_key("c1", m["jobId"], m["startTime"]))
    archive.update_meta("c1", m["jobId"], m["startTime"], tags=[{"type": "t", "name": "n", "scope": "global"}])
    assert archive.load_meta("c1", m["jobId"], m["startTime"])["tags"][0]["name"] == "n"
    archive.write(m, {"cpu_load": {}})  # replacing gzipped data by small data leaves one data file
    files = archive.read_raw(archive.job_key("c1", m["jobId"], m["startTime"]))
    assert set(files) == {"meta.json", "data.json"}
    assert archive.load_data("c1", m["jobId"], m["startTime"]) == {"cpu_load": {}}
    assert archive.delete("c1", m["jobId"], m["startTime"])
    assert not archive.exists("c1", m["jobId"], m["startTime"])
    assert not archive.delete("c1", m["jobId"], m["startTime"])
    with pytest.raises(FileNotFoundError):
        archive.load_meta("c1", m["jobId"], m["startTime"])
    assert len(list(archive.job_keys())) == 3


@pytest.mark.parametrize("kind", ["sqlite", "s3"])
def test_init_db_from_store(kind, tmp_path, s3):
    archive = JobArchive(new_store(kind, tmp_path, s3))
    metas = fill(archive, 30)
    clusters, errors = load_archive_clusters(archive)
    assert errors == [] and set(clusters) == {"c1"}
    db = tmp_path / "job.db"
    migrate(db)
    res = init_db(db, archive, clusters, workers=4)
    assert res.errors == [] and res.jobs == 30
    conn = sqlite3.connect(db)
    got = {r[0] for r in conn.execute("SELECT job_id FROM job")}
    conn.close()
    assert got == {m["jobId"] for m in metas}


def test_sqlite_layout_is_cc_backends(tmp_path):
    archive = JobArchive(SqliteStore(tmp_path / "a.db"))
    metas = fill(archive, 2)
    conn = sqlite3.connect(tmp_path / "a.db")
    rows = conn.execute("SELECT job_id, cluster, start_time, data_compressed, meta_json FROM jobs "
                        "ORDER BY job_id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(m["jobId"], "c1", m["startTime"]) for m in metas]
    assert [bool(r[3]) for r in rows] == [True, False]  # 400 points gzipped, 5 points plain
    assert orjson.loads(rows[0][4])["jobId"] == metas[0]["jobId"]
    assert conn.execute("SELECT value FROM metadata WHERE key = 'version'").fetchone() == ("3",)
    assert conn.execute("SELECT name FROM clusters").fetchall() == [("c1",)]
    conn.close()


def test_convert_round_trip_file_sqlite_s3_file(tmp_path, s3):
    src = JobArchive(FileStore(tmp_path / "src"))
    init_archive(tmp_path / "src", {"c1": small_cluster("c1")})
    fill(src, 25)
    original = all_files(src)
    sq = JobArchive(SqliteStore(tmp_path / "a.db"))
    res = manage.convert(src, sq)
    assert (res.copied, res.skipped, res.missing, res.clusters) == (25, 0, [], 1)
    bucket = JobArchive(new_s3(s3))
    assert manage.convert(sq, bucket).copied == 25
    back = JobArchive(FileStore(tmp_path / "back"))
    assert manage.convert(bucket, back).copied == 25
    assert all_files(back) == original
    again = manage.convert(bucket, back)  # resumable: everything already there
    assert (again.copied, again.skipped, again.missing) == (0, 25, [])


def test_convert_resumes_after_interruption(tmp_path):
    src = JobArchive(FileStore(tmp_path / "src"))
    fill(src, 10)
    dst = JobArchive(SqliteStore(tmp_path / "a.db"))
    seen = []

    def stop_at_4(done, total):
        seen.append(done)
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        manage.convert(src, dst, progress=stop_at_4)
    res = manage.convert(src, dst)
    assert (res.copied, res.skipped, res.missing) == (6, 4, [])
    assert all_files(dst) == all_files(src)


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_validate_names_file_and_field(kind, tmp_path, s3):
    archive = JobArchive(new_store(kind, tmp_path, s3))
    metas = fill(archive, 3)
    assert list(manage.validate_archive(archive)) == []
    m = dict(metas[1])
    del m["resources"]
    key = archive.job_key("c1", m["jobId"], m["startTime"])
    archive.store.put(f"{key}/meta.json", orjson.dumps(m))
    bad = list(manage.validate_archive(archive))
    assert len(bad) == 1
    assert bad[0].startswith(archive.location(f"{key}/meta.json")) and "resources" in bad[0]


@pytest.mark.parametrize("kind", ["file", "sqlite", "s3"])
def test_remove_before_and_info(kind, tmp_path, s3):
    archive = JobArchive(new_store(kind, tmp_path, s3))
    metas = fill(archive, 10)  # start times 1_600_000_000 + 37 i
    cut = metas[4]["startTime"]
    per = manage.info(archive)
    assert per["c1"].jobs == 10 and per["c1"].oldest == metas[0]["startTime"]
    assert per["c1"].newest == metas[9]["startTime"] and per["c1"].bytes > 0
    assert len(manage.remove_before(archive, cut, dry_run=True)) == 4
    assert len(list(archive.job_keys())) == 10
    removed = manage.remove_before(archive, cut)
    assert len(removed) == 4
    assert manage.info(archive)["c1"].oldest == cut
    assert manage.info(archive)["c1"].jobs == 6


def test_prepare_copies_cluster_json_both_ways(tmp_path):
    archive = JobArchive(SqliteStore(tmp_path / "a.db"))
    local = tmp_path / "clusters"
    (local / "c2").mkdir(parents=True)
    (local / "c2" / "cluster.json").write_bytes(orjson.dumps(small_cluster("c2")))
    archive.put_cluster_config("c1", orjson.dumps(small_cluster("c1")))
    done = manage.prepare(archive, local)
    assert len(done) == 3  # version.txt created, c1 copied down, c2 uploaded
    assert archive.version() == 3
    assert (local / "c1" / "cluster.json").read_bytes() == archive.cluster_config("c1")
    assert archive.cluster_config("c2") == (local / "c2" / "cluster.json").read_bytes()
    assert manage.prepare(archive, local) == []


def test_config_keys_validated(tmp_path):
    base = tmp_path
    assert parse_archive({"kind": "sqlite", "db-path": "x.db"}, base).db_path == (base / "x.db").resolve()
    s = parse_archive({"kind": "s3", "endpoint": "http://127.0.0.1:9000", "bucket": "jobarchive",
                       "use-path-style": True}, base)
    assert s.s3 is not None and s.s3.bucket == "jobarchive" and s.s3.use_path_style
    for doc, key in [({"kind": "tape"}, "archive.kind"),
                     ({"kind": "sqlite"}, "archive.db-path"),
                     ({"kind": "file", "db-path": "x.db"}, "archive.db-path"),
                     ({"kind": "file", "bucket": "jobarchive"}, "archive.bucket"),
                     ({"kind": "s3", "bucket": "jobarchive"}, "archive.endpoint"),
                     ({"kind": "s3", "endpoint": "ftp://x", "bucket": "jobarchive"}, "archive.endpoint"),
                     ({"kind": "s3", "endpoint": "x:1", "bucket": "A/b"}, "archive.bucket"),
                     ({"kind": "s3", "endpoint": "x:1", "bucket": "jobs", "use-path-style": "yes"},
                      "archive.use-path-style"),
                     ({"retention": {"policy": "shred", "age": 1}}, "archive.retention.policy"),
                     ({"retention": {"policy": "delete", "age": -1}}, "archive.retention.age"),
                     ({"retention": {"policy": "move", "age": 1}}, "archive.retention.target-path"),
                     ({"retention": {"policy": "copy", "age": 1, "target-path": "x", "format": "csv"}},
                      "archive.retention.format"),
                     ({"retention": {"policy": "delete", "age": 1, "omit-tagged": "some"}},
                      "archive.retention.omit-tagged"),
                     ({"retention": {"policy": "move", "age": 1, "target-kind": "s3"}},
                      "archive.retention.target-endpoint"),
                     ({"retention": {"policy": "move", "age": 1, "target-path": "x", "max-file-size-mb": "big"}},
                      "archive.retention.max-file-size-mb")]:
        with pytest.raises(ArchiveConfigError, match=key.replace(".", r"\.")):
            parse_archive(doc, base)
    r = parse_archive({"retention": {"policy": "move", "age": 365, "location": "./old"}}, base).retention
    assert r is not None and r.target_path == (base / "old").resolve() and r.omit_tagged == "none"
    assert parse_archive({"retention": {"policy": "delete", "age": 1, "omit-tagged": True}},
                         base).retention.omit_tagged == "all"


def test_open_archive_follows_kind(tmp_path):
    a = open_archive(parse_archive({"kind": "sqlite", "db-path": "a.db"}, tmp_path))
    assert a.kind == "sqlite" and a.location().startswith(str(tmp_path / "a.db"))
    a.close()
    assert open_archive(parse_archive({}, tmp_path)).kind == "file"


@pytest.mark.parametrize("kind", ["sqlite", "s3"])
def test_import_job_into_store(kind, tmp_path, s3):
    from cc.archive.dbsync import import_jobs

    archive = JobArchive(new_store(kind, tmp_path, s3))
    fill(archive, 0)
    clusters, _ = load_archive_clusters(archive)
    job, stats = make_job(clusters["c1"], 7, random.Random(3))
    meta = job_meta(job, stats)
    data = job_data([r["hostname"] for r in meta["resources"]], {"cpu_load": ""}, 300)
    (tmp_path / "m.json").write_bytes(orjson.dumps(meta))
    (tmp_path / "d.json").write_bytes(orjson.dumps(data))
    db = tmp_path / "job.db"
    migrate(db)
    res = import_jobs(db, archive, clusters, [(tmp_path / "m.json", tmp_path / "d.json")] * 2)
    assert res.jobs == 1 and "already" in res.errors[0]
    assert archive.load_data("c1", meta["jobId"], meta["startTime"]) == data
    assert archive.load_meta("c1", meta["jobId"], meta["startTime"])["jobId"] == meta["jobId"]


def test_sqlite_store_pools_connections_across_threads(tmp_path):
    """Threads come and go (Trio retires idle workers): connections are pooled, not kept per thread."""
    import threading

    from cc.archive._storage import POOL_SIZE

    store = SqliteStore(tmp_path / "a.db")
    archive = JobArchive(store, cache_bytes=0)
    metas = fill(archive, 2)
    m = metas[0]
    for _ in range(3):
        threads = [threading.Thread(target=archive.load_data, args=("c1", m["jobId"], m["startTime"]))
                   for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert 1 <= len(store._idle) <= POOL_SIZE
    store.close()
    assert store._idle == []
