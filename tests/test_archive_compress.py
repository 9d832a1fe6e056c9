"""archive.compression: old jobs' plain data.json become data.json.gz (file and SQLite stores), the data reads
back the same, new jobs and already compressed ones are left alone, a second run does nothing."""

from __future__ import annotations

import gzip

import pytest

from cc.archive import JobArchive
from cc.archive import compress as comp
from cc.archive._storage import SqliteStore
from cc.archivecfg import ArchiveConfigError, parse_archive
from tests.test_archive_retention import NOW, N
from tests.test_archive_retention import setup as archive_and_db


def data_names(archive: JobArchive) -> dict[str, str]:
    return {k: next(n for n in archive.read_raw(k) if n != "meta.json") for k in archive.job_keys()}


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_old_plain_data_is_compressed_once(tmp_path, kind):
    archive, db, metas = archive_and_db(tmp_path)
    if kind == "sqlite":  # the same jobs in a SQLite archive (the DB rows point at the same keys)
        target = JobArchive(SqliteStore(tmp_path / "archive.db"))
        for key in archive.job_keys():
            target.write_raw(key, archive.read_raw(key))
        archive = target
    names = data_names(archive)
    docs = {m["jobId"]: archive.load_data("c1", m["jobId"], m["startTime"]) for m in metas}
    old = {m["jobId"] for m in metas if m["startTime"] < NOW - 10 * 86400}
    assert 0 < len(old) < N
    plain_old = [k for k, n in names.items() if n == "data.json" and int(k.split("/")[-1]) < NOW - 10 * 86400]
    assert plain_old  # the fixture has small (plain) and large (gzipped) data files among the old jobs

    dry = comp.compress_before(archive, db, 10, now=NOW, dry_run=True)
    assert (dry.candidates, dry.compressed) == (len(old), len(plain_old)) and data_names(archive) == names

    report = comp.compress_before(archive, db, 10, now=NOW)
    assert (report.candidates, report.compressed, report.errors) == (len(old), len(plain_old), [])
    assert report.bytes_after > 0 and "compressed" in report.summary()
    after = data_names(archive)
    for key, name in names.items():
        expect = "data.json.gz" if key in plain_old else name
        assert after[key] == expect, key
    for key in plain_old:
        raw = archive.read_raw(key)
        assert gzip.decompress(raw["data.json.gz"])  # a real gzip stream
    for m in metas:  # every job's data reads back unchanged, through the cache check of each store
        assert archive.load_data("c1", m["jobId"], m["startTime"]) == docs[m["jobId"]]

    again = comp.compress_before(archive, db, 10, now=NOW)
    assert (again.compressed, again.errors) == (0, [])


def test_job_missing_from_archive_is_reported(tmp_path):
    archive, db, metas = archive_and_db(tmp_path)
    victim = min(metas, key=lambda m: m["startTime"])
    archive.delete("c1", victim["jobId"], victim["startTime"])
    report = comp.compress_before(archive, db, 10, now=NOW)
    assert len(report.errors) == 1 and "not in the archive" in report.errors[0]
    assert report.compressed > 0  # the others still done


def test_compression_key_is_validated(tmp_path):
    assert parse_archive({"compression": 7}, tmp_path).compression_days == 7
    assert parse_archive({"compression": 0}, tmp_path).compression_days is None
    assert parse_archive({}, tmp_path).compression_days is None
    for bad in (-1, "7", 1.5, True):
        with pytest.raises(ArchiveConfigError, match="archive.compression"):
            parse_archive({"compression": bad}, tmp_path)


def test_next_run_is_five_in_the_morning():
    import datetime as dt

    base = dt.datetime(2026, 3, 2, 4, 30).timestamp()
    assert comp.seconds_until_next_run(base) == 1800
    assert comp.seconds_until_next_run(base + 3600) == 86400 - 1800

