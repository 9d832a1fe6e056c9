"""The job archive on disk: layout, atomic writes, compression threshold, cache, meta updates."""

from __future__ import annotations

import gzip
import json
import os
import random
import threading

import orjson
import pytest

from cc.archive import (
    ARCHIVE_VERSION,
    ArchiveError,
    ArchivePathError,
    JobArchive,
    job_meta,
    validate,
)
from cc.clusters import parse_cluster
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job, Tag
from tests.archive_gen import init_archive, job_data, make_job
from tests.helpers import small_cluster


@pytest.fixture
def archive(tmp_path):
    init_archive(tmp_path / "arch", {"c1": small_cluster()})
    return JobArchive(tmp_path / "arch")


def small_meta(job_id=1403244, start=1608923076, cluster="c1") -> dict:
    job = Job(job_id=job_id, cluster=cluster, user="u", project="p", start_time=start, duration=600,
              state="completed", resources=[{"hostname": "n1"}], num_nodes=1, subcluster="main")
    return job_meta(job, {})


def test_layout_matches_clustercockpit(archive):
    assert archive.job_dir("c1", 1403244, 1608923076) == archive.root / "c1" / "1403" / "244" / "1608923076"
    assert archive.job_dir("c1", 7, 5) == archive.root / "c1" / "0" / "007" / "5"
    assert archive.version() == ARCHIVE_VERSION == 3
    d = archive.write(small_meta(), {})
    assert d == archive.root / "c1" / "1403" / "244" / "1608923076"
    assert sorted(p.name for p in d.iterdir()) == ["data.json", "meta.json"]
    assert archive.exists("c1", 1403244, 1608923076)
    assert not archive.exists("c1", 1403244, 1608923077)
    assert archive.clusters() == ["c1"]
    assert list(archive.iter_jobs()) == [d / "meta.json"]


@pytest.mark.parametrize("cluster", ["", "a/b", "..", "a..b", "a\\b", ".hidden", "x\x00y", 5])
def test_path_components_are_checked(archive, cluster):
    with pytest.raises(ArchivePathError):
        archive.job_dir(cluster, 1, 1)
    with pytest.raises(ArchivePathError):
        archive.write(small_meta(cluster=cluster), {})
    assert not any(p.name.startswith(".tmp") for p in archive.root.rglob("*"))


@pytest.mark.parametrize("job_id, start", [(-1, 1), (1, -5), (True, 1), ("12", 1), (1, 1.5)])
def test_ids_must_be_non_negative_integers(archive, job_id, start):
    with pytest.raises(ArchivePathError):
        archive.job_dir("c1", job_id, start)


def test_version_errors(tmp_path):
    a = JobArchive(tmp_path)
    with pytest.raises(ArchiveError, match="version.txt: missing"):
        a.version()
    (tmp_path / "version.txt").write_text("2\n")
    with pytest.raises(ArchiveError, match="archive version 2 is not supported"):
        a.version()
    (tmp_path / "version.txt").write_text("three")
    with pytest.raises(ArchiveError, match="expected a version number"):
        a.version()


def test_gzip_threshold(archive):
    small = {"cpu_load": {"node": {"unit": {"base": ""}, "timestep": 60, "series": []}}}
    d = archive.write(small_meta(job_id=1), small)
    assert (d / "data.json").exists() and not (d / "data.json.gz").exists()
    assert len(orjson.dumps(small)) <= 2000
    big = job_data(["n1", "n2"], {"cpu_load": ""}, 200)
    d = archive.write(small_meta(job_id=2), big)
    assert (d / "data.json.gz").exists() and not (d / "data.json").exists()
    assert json.loads(gzip.decompress((d / "data.json.gz").read_bytes())) == big  # plain gzip reads it
    assert archive.load_data("c1", 2, 1608923076) == big
    assert archive.load_data("c1", 1, 1608923076) == small


def test_rewrite_replaces_atomically_and_leaves_no_temporaries(archive):
    meta = small_meta()
    archive.write(meta, job_data(["n1"], {"cpu_load": ""}, 300, seed=1))
    first = archive.load_data("c1", 1403244, 1608923076)
    new = job_data(["n1"], {"cpu_load": ""}, 300, seed=2)
    archive.write(meta, new)
    assert archive.load_data("c1", 1403244, 1608923076) == new != first
    leftovers = [p for p in archive.root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_failed_write_leaves_old_job(archive, monkeypatch):
    meta = small_meta()
    archive.write(meta, {"a": {}})
    import cc.archive._storage as st

    real = st._write_new

    def failing(path, data):
        if path.name.startswith("data"):
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(st, "_write_new", failing)
    with pytest.raises(OSError, match="No space"):
        archive.write(meta, {"b": {}})
    assert archive.load_data("c1", 1403244, 1608923076) == {"a": {}}
    assert [p for p in archive.root.rglob("*") if p.name.startswith(".")] == []


def test_readers_never_see_a_partial_job(archive):
    meta = small_meta()
    docs = [job_data(["n1", "n2"], {"cpu_load": ""}, 500, seed=s) for s in range(3)]
    archive.write(meta, docs[0])
    stop = threading.Event()
    seen, errors = [], []

    def reader():
        fresh = JobArchive(archive.root, cache_bytes=0)
        while not stop.is_set():
            try:
                got = fresh.load_data("c1", 1403244, 1608923076)
                seen.append(docs.index(got))
            except FileNotFoundError:
                pass  # between the two renames of a replacement the directory is briefly absent
            except Exception as e:  # a torn file would show up here
                errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(30):
        archive.write(meta, docs[i % 3])
    stop.set()
    t.join()
    assert not errors and seen


def test_cache_returns_same_object_until_rewritten(archive):
    meta = small_meta()
    archive.write(meta, job_data(["n1"], {"cpu_load": ""}, 300))
    a = archive.load_data("c1", 1403244, 1608923076)
    assert archive.load_data("c1", 1403244, 1608923076) is a
    assert archive.cache_info()["entries"] == 1
    other = JobArchive(archive.root)  # another process's view: notices the change by mtime/size
    other.load_data("c1", 1403244, 1608923076)
    new = job_data(["n1"], {"cpu_load": ""}, 400)
    archive.write(meta, new)
    assert archive.load_data("c1", 1403244, 1608923076) == new
    assert other.load_data("c1", 1403244, 1608923076) == new


def test_cache_is_bounded_by_size(archive):
    a = JobArchive(archive.root, cache_bytes=60_000)  # a parsed 400-point series takes ~14 KB
    for j in range(10):
        archive.write(small_meta(job_id=j), job_data(["n1"], {"cpu_load": ""}, 400, seed=j))
        a.load_data("c1", j, 1608923076)
    info = a.cache_info()
    assert info["bytes"] <= 60_000 and 0 < info["entries"] < 10


@pytest.mark.parametrize("kind", ["data", "meta"])
def test_cache_charges_what_a_document_takes_in_memory(kind):
    """The cache limit is memory: a parsed data.json takes ~5x its JSON text, which the old
    accounting by file size missed (a "256 MiB" cache could hold 1.2 GiB of objects)."""
    import tracemalloc

    from cc.archive._jobarchive import memory_size

    if kind == "data":
        doc = job_data([f"n{i}" for i in range(8)], {f"m{i}": "F" for i in range(6)}, 720)
    else:
        doc = small_meta()
        doc["metaData"] = {"jobScript": "#!/bin/sh\n" + "srun ./app --flag value\n" * 200}
    raw = orjson.dumps(doc)
    tracemalloc.start()
    try:
        parsed = orjson.loads(raw)
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    est = memory_size(parsed)
    assert 0.7 * used <= est <= 1.5 * used, (kind, len(raw), used, est)
    if kind == "data":
        assert used > 3 * len(raw)  # why the file size was the wrong measure


def test_cache_limit_counts_parsed_documents_not_files(archive):
    doc = job_data(["n1", "n2"], {"cpu_load": "", "mem_bw": "B/s"}, 2000)
    raw_size = len(orjson.dumps(doc))
    a = JobArchive(archive.root, cache_bytes=4 * raw_size)  # 4 files' worth of JSON, but < 1 document parsed
    archive.write(small_meta(job_id=7), doc)
    a.load_data("c1", 7, 1608923076)
    assert a.cache_info()["entries"] == 0  # too big once parsed: not cached at all
    b = JobArchive(archive.root, cache_bytes=20 * raw_size)
    for j in range(8):
        archive.write(small_meta(job_id=j), job_data(["n1", "n2"], {"cpu_load": "", "mem_bw": "B/s"}, 2000, seed=j))
        b.load_data("c1", j, 1608923076)
    info = b.cache_info()
    assert info["bytes"] <= 20 * raw_size and 1 <= info["entries"] < 8


def test_update_meta_tags_and_errors(archive):
    meta = small_meta()
    archive.write(meta, {})
    tags = [{"type": "app", "name": "vasp", "scope": "global"}]
    out = archive.update_meta("c1", 1403244, 1608923076, tags=tags)
    assert out["tags"] == tags
    assert archive.load_meta("c1", 1403244, 1608923076) == {**meta, "tags": tags}
    with pytest.raises(FileNotFoundError):
        archive.update_meta("c1", 1, 1, tags=[])
    with pytest.raises(ValueError, match="jobId"):
        archive.update_meta("c1", 1403244, 1608923076, jobId=5)


def test_load_errors_name_the_file(archive):
    d = archive.write(small_meta(), {})
    (d / "meta.json").write_text("{broken")
    with pytest.raises(ArchiveError, match=r"meta\.json: invalid JSON"):
        archive.load_meta("c1", 1403244, 1608923076)
    (d / "data.json").unlink()
    (d / "data.json.gz").write_bytes(b"\x1f\x8bnot really")
    with pytest.raises(ArchiveError, match=r"data\.json\.gz: unreadable"):
        archive.load_data("c1", 1403244, 1608923076)
    with pytest.raises(FileNotFoundError):
        archive.load_data("c1", 99, 99)


def test_job_meta_is_valid_and_complete():
    cluster = parse_cluster(small_cluster(), "c1")
    job, stats = make_job(cluster, 1, random.Random(3))
    job.id = 77
    job.tags = [Tag(5, "app", "gromacs", "global")]
    meta = job_meta(job, stats)
    validate("job-meta", meta)
    assert "id" not in meta and "concurrentJobs" not in meta
    assert meta["monitoringStatus"] == MONITORING_ARCHIVING_SUCCESSFUL
    assert meta["tags"] == [{"type": "app", "name": "gromacs", "scope": "global"}]
    assert meta["statistics"] == stats and meta["footprint"] == job.footprint


def test_hidden_and_stray_entries_are_skipped(archive):
    d = archive.write(small_meta(), {})
    (d.parent / ".tmp-123-abc").mkdir()
    (archive.root / "c1" / "notes.txt").write_text("x")
    os.makedirs(archive.root / ".trash" / "1" / "001" / "5")
    assert list(archive.iter_jobs()) == [d / "meta.json"]
