"""``archive.retention``: age jobs out of the archive (delete), or out to a second place (move, copy).

cc-backend's semantics: the jobs are taken from the job database, finished jobs that
started more than ``age`` days ago (``omit-tagged``: ``all`` skips every tagged job,
``user`` those with tags other than the automatic app/jobClass ones).

* ``delete`` removes them from the archive, and with ``include-db`` from the database.
* ``move`` copies them to the target first, then deletes as ``delete`` does.
* ``copy`` copies what became old since the last run (a marker holds the cut-off of the
  last run: ``<target-path>/.copy-marker``, for S3 in ``var/``), deleting nothing.

The target (``target-kind`` file or s3) receives either a job archive (``format: json``:
the same files, byte for byte, plus ``version.txt`` and each ``cluster.json``) or Parquet
files (``format: parquet``): ``<cluster>/cc-archive-<YYYY-MM-DD>-<NNN>.parquet``, one row
per job, files of about ``max-file-size-mb``, schema :data:`PARQUET_SCHEMA` (README).

Runs daily in the archiver process (:func:`seconds_until_next_run`) and as
``cc-supervise archive retention [--dry-run]``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cc.archive._jobarchive import JobArchive, _gzip, gunzip
from cc.archive._storage import FileStore, make_job_key
from cc.archivecfg import RetentionSettings
from cc.db import connect
from cc.fsio import replace_atomically

log = logging.getLogger("cc.archive.retention")

RUN_HOUR = {"delete": 3, "copy": 4, "move": 5}  # local time, as cc-backend schedules them

_TAGGED = {
    "none": "",
    "all": " AND NOT EXISTS (SELECT 1 FROM jobtag WHERE jobtag.job_id = job.id)",
    "user": (" AND NOT EXISTS (SELECT 1 FROM jobtag JOIN tag ON tag.id = jobtag.tag_id WHERE "
             "jobtag.job_id = job.id AND tag.tag_type NOT IN ('app', 'jobClass'))"),
}


def _parquet_schema():
    import pyarrow as pa

    return pa.schema([
        ("job_id", pa.int64()), ("cluster", pa.string()), ("sub_cluster", pa.string()),
        ("partition", pa.string()), ("project", pa.string()), ("user", pa.string()),
        ("job_state", pa.string()), ("start_time", pa.int64()), ("duration", pa.int32()),
        ("walltime", pa.int64()), ("num_nodes", pa.int32()), ("num_hwthreads", pa.int32()),
        ("num_acc", pa.int32()), ("exclusive", pa.int32()), ("energy", pa.float64()), ("smt", pa.int32()),
        ("resources_json", pa.binary()), ("statistics_json", pa.binary()), ("tags_json", pa.binary()),
        ("meta_data_json", pa.binary()), ("footprint_json", pa.binary()),
        ("energy_footprint_json", pa.binary()), ("metric_data_gz", pa.binary()),
    ])


PARQUET_COLUMNS = ("job_id", "cluster", "sub_cluster", "partition", "project", "user", "job_state", "start_time",
                   "duration", "walltime", "num_nodes", "num_hwthreads", "num_acc", "exclusive", "energy", "smt",
                   "resources_json", "statistics_json", "tags_json", "meta_data_json", "footprint_json",
                   "energy_footprint_json", "metric_data_gz")


@dataclass
class RetentionReport:
    policy: str
    cutoff: int
    dry_run: bool = False
    selected: int = 0
    transferred: int = 0
    removed_archive: int = 0
    removed_db: int = 0
    files: list[str] = field(default_factory=list)   # what was written to the target
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would" if self.dry_run else "did"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.cutoff))
        parts = [f"retention {self.policy} (jobs started before {when}): {self.selected} jobs selected"]
        if self.policy != "delete":
            parts.append(f"{self.transferred} {'to copy' if self.dry_run else 'copied'}")
        if self.policy != "copy":
            parts.append(f"{self.removed_archive} {'to remove' if self.dry_run else 'removed'} from the archive")
            parts.append(f"{self.removed_db} {'to remove' if self.dry_run else 'removed'} from the database")
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        return f"({verb}) " + ", ".join(parts) if self.dry_run else ", ".join(parts)


def seconds_until_next_run(settings: RetentionSettings, now: float | None = None) -> float:
    """Seconds to the next daily run of this policy (03:00 delete, 04:00 copy, 05:00 move, local time)."""
    now_dt = dt.datetime.fromtimestamp(time.time() if now is None else now)
    at = now_dt.replace(hour=RUN_HOUR[settings.policy], minute=0, second=0, microsecond=0)
    if at <= now_dt:
        at += dt.timedelta(days=1)
    return (at - now_dt).total_seconds()


def select_jobs(db_path: Path, after: int, before: int, omit_tagged: str) -> list[tuple[int, str, int, int]]:
    """(db id, cluster, jobId, startTime) of finished jobs with ``after <= start_time < before``."""
    conn = connect(db_path, readonly=True)
    try:
        return conn.execute("SELECT id, cluster, job_id, start_time FROM job WHERE start_time >= ? AND "
                            "start_time < ? AND job_state <> 'running'" + _TAGGED[omit_tagged]
                            + " ORDER BY cluster, job_id, start_time", (after, before)).fetchall()
    finally:
        conn.close()


def _marker_path(settings: RetentionSettings, var_dir: Path) -> Path:
    if settings.target_kind == "s3":
        assert settings.target_s3 is not None
        return var_dir / f"retention-copy-marker-{settings.target_s3.bucket}"
    assert settings.target_path is not None
    return settings.target_path / ".copy-marker"


def _read_marker(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def target_archive(settings: RetentionSettings) -> JobArchive:
    if settings.target_kind == "s3":
        from cc.archive import s3_store

        return JobArchive(s3_store(settings.target_s3), cache_bytes=0)
    assert settings.target_path is not None
    return JobArchive(FileStore(settings.target_path), cache_bytes=0)


def run(settings: RetentionSettings, archive: JobArchive, db_path: Path, *, var_dir: Path,
        now: float | None = None, dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None) -> RetentionReport:
    """One retention pass; never raises for a single bad job (it is reported and kept).

    ``progress(done, total)`` counts jobs copied and jobs deleted (a move counts each job twice)."""
    cutoff = int((time.time() if now is None else now) - settings.age_days * 86400)
    report = RetentionReport(policy=settings.policy, cutoff=cutoff, dry_run=dry_run)
    after = 0
    marker = None
    if settings.policy == "copy":
        marker = _marker_path(settings, var_dir)
        after = _read_marker(marker)
    jobs = select_jobs(db_path, after, cutoff, settings.omit_tagged)
    report.selected = len(jobs)
    steps = len(jobs) * (2 if settings.policy == "move" else 1)
    done_steps = 0

    def tick() -> None:
        nonlocal done_steps
        done_steps += 1
        if progress is not None:
            progress(done_steps, steps)

    if dry_run:
        present = [j for j in jobs if archive.exists(j[1], j[2], j[3])]
        if settings.policy != "delete":
            report.transferred = len(present)
        if settings.policy != "copy":
            report.removed_archive = len(present)
            report.removed_db = len(jobs) if settings.include_db else 0
        return report
    done = jobs
    if settings.policy in ("move", "copy") and jobs:
        done = _transfer(settings, archive, jobs, report, tick)
    if settings.policy in ("delete", "move"):
        for _, cluster, job_id, start in done:
            try:
                if archive.delete(cluster, job_id, start):
                    report.removed_archive += 1
            except (OSError, sqlite3.Error) as e:
                report.errors.append(f"{archive.location(make_job_key(cluster, job_id, start))}: cannot delete: {e}")
            tick()
        if settings.include_db and done:
            report.removed_db = _delete_from_db(db_path, [j[0] for j in done])
    if marker is not None and not report.errors:
        marker.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(marker, str(cutoff).encode())
    if progress is not None and steps:
        progress(steps, steps)  # jobs that failed to copy are not deleted: the bar still ends
    return report


def _delete_from_db(db_path: Path, ids: list[int]) -> int:
    conn = connect(db_path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        n = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            n += conn.execute(f"DELETE FROM job WHERE id IN ({', '.join('?' * len(chunk))})", chunk).rowcount
        conn.execute("COMMIT")
        return n
    finally:
        conn.close()


def _transfer(settings: RetentionSettings, archive: JobArchive, jobs: list, report: RetentionReport,
              tick: Callable[[], None]) -> list:
    """Copy the jobs to the target; returns those now safely there (only they may be deleted)."""
    target = target_archive(settings)
    try:
        if settings.format == "parquet":
            return _to_parquet(settings, archive, target, jobs, report, tick)
        return _to_archive(archive, target, jobs, report, tick)
    finally:
        target.close()


def _copy_clusters(archive: JobArchive, put, clusters: set[str], report: RetentionReport) -> None:
    for name in sorted(clusters):
        try:
            put(name, archive.cluster_config(name))
        except FileNotFoundError:
            report.errors.append(f"{archive.location(name + '/cluster.json')}: missing, not copied")


def _to_archive(archive: JobArchive, target: JobArchive, jobs: list, report: RetentionReport,
                tick: Callable[[], None]) -> list:
    if not target.store.exists("version.txt"):
        target.store.put("version.txt", archive.store.read("version.txt"))
    _copy_clusters(archive, target.put_cluster_config, {j[1] for j in jobs}, report)
    done = []
    for job in jobs:
        tick()
        key = make_job_key(*job[1:])
        try:
            target.write_raw(key, archive.read_raw(key))
        except FileNotFoundError:
            report.errors.append(f"{archive.location(key)}: in the database but not in the archive")
            continue
        except (OSError, sqlite3.Error) as e:
            report.errors.append(f"{archive.location(key)}: copy to {target.location(key)} failed: {e}")
            continue
        report.transferred += 1
        done.append(job)
    if done:
        report.files.append(target.location())
    return done


def parquet_row(meta: dict[str, Any], data_gz: bytes) -> dict[str, Any]:
    """One job as a row of :data:`PARQUET_COLUMNS` (JSON columns as UTF-8 bytes, data gzipped)."""
    def js(key: str) -> bytes | None:
        v = meta.get(key)
        return None if v is None else orjson.dumps(v)

    return {
        "job_id": meta["jobId"], "cluster": meta["cluster"], "sub_cluster": meta.get("subCluster", ""),
        "partition": meta.get("partition"), "project": meta.get("project", ""), "user": meta.get("user", ""),
        "job_state": meta.get("jobState", ""), "start_time": meta["startTime"],
        "duration": int(meta.get("duration", 0)), "walltime": int(meta.get("walltime", 0) or 0),
        "num_nodes": int(meta.get("numNodes", 0)), "num_hwthreads": int(meta.get("numHwthreads", 0) or 0),
        "num_acc": int(meta.get("numAcc", 0) or 0), "exclusive": int(meta.get("exclusive", 1)),
        "energy": float(meta.get("energy", 0.0) or 0.0), "smt": int(meta.get("smt", 0) or 0),
        "resources_json": orjson.dumps(meta.get("resources", [])), "statistics_json": js("statistics"),
        "tags_json": js("tags"), "meta_data_json": js("metaData"), "footprint_json": js("footprint"),
        "energy_footprint_json": js("energyFootprint"), "metric_data_gz": data_gz,
    }


class _ParquetFiles:
    """Per-cluster batches flushed to ``<cluster>/cc-archive-<date>-<NNN>.parquet`` at about ``max_bytes``."""

    def __init__(self, target: JobArchive, max_bytes: int, report: RetentionReport):
        self.target, self.max_bytes, self.report = target, max_bytes, report
        self.rows: dict[str, list[dict]] = {}
        self.sizes: dict[str, int] = {}
        self.date = time.strftime("%Y-%m-%d")

    def add(self, row: dict) -> None:
        cluster = row["cluster"]
        size = 200 + sum(len(v) for v in row.values() if isinstance(v, (bytes, str)))
        if self.rows.get(cluster) and self.sizes[cluster] + size > self.max_bytes:
            self.flush(cluster)
        self.rows.setdefault(cluster, []).append(row)
        self.sizes[cluster] = self.sizes.get(cluster, 0) + size

    def flush(self, cluster: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = sorted(self.rows.pop(cluster, []), key=lambda r: (r["sub_cluster"], r["project"], r["start_time"]))
        self.sizes[cluster] = 0
        if not rows:
            return
        table = pa.Table.from_pylist(rows, schema=_parquet_schema())
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        n = 1
        while self.target.store.exists(name := f"{cluster}/cc-archive-{self.date}-{n:03d}.parquet"):
            n += 1  # never overwrite the file of an earlier run of the same day
        self.target.store.put(name, sink.getvalue().to_pybytes())
        self.report.files.append(self.target.location(name))

    def close(self) -> None:
        for cluster in list(self.rows):
            self.flush(cluster)


def _to_parquet(settings: RetentionSettings, archive: JobArchive, target: JobArchive, jobs: list,
                report: RetentionReport, tick: Callable[[], None]) -> list:
    _copy_clusters(archive, target.put_cluster_config, {j[1] for j in jobs}, report)
    files = _ParquetFiles(target, settings.max_file_size_mb << 20, report)
    done = []
    for job in jobs:
        tick()
        key = make_job_key(*job[1:])
        try:
            raw = archive.read_raw(key)
            meta = orjson.loads(raw["meta.json"])
            data = raw.get("data.json.gz")
            if data is None:
                data = _gzip(raw["data.json"])
            else:
                gunzip(data)  # a damaged file is reported, not moved into the Parquet archive
            files.add(parquet_row(meta, data))
        except FileNotFoundError:
            report.errors.append(f"{archive.location(key)}: in the database but not in the archive")
            continue
        except (OSError, sqlite3.Error, ValueError, KeyError, TypeError) as e:
            report.errors.append(f"{archive.location(key)}: cannot convert to Parquet: {e}")
            continue
        report.transferred += 1
        done.append(job)
    files.close()
    return done
