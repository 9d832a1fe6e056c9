"""``archive.compression``: gzip the ``data.json`` of archived jobs older than N days.

cc-backend's key (an integer, days) and meaning: a daily task turns every old job's plain
``data.json`` into ``data.json.gz``.  Our archiver already writes large data files
compressed (above :data:`GZIP_THRESHOLD`); this catches the small ones and archives imported
from elsewhere.  Each job is rewritten through the store's ``put_job`` (file store: a new
directory renamed into place), so a crash leaves either the old or the new files, never half;
readers find ``data.json.gz`` first.  Runs in the archiver (daily, 05:00 local time, as
upstream schedules it) and as ``cc-supervise archive compress [--dry-run]``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cc.archive._jobarchive import JobArchive, _gzip, gunzip
from cc.archive._storage import make_job_key
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, connect

log = logging.getLogger("cc.archive.compress")

RUN_HOUR = 5  # local time


@dataclass
class CompressReport:
    candidates: int = 0        # archived jobs older than the cut-off
    compressed: int = 0        # of them rewritten as data.json.gz (or would be, with dry_run)
    bytes_before: int = 0
    bytes_after: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would compress" if self.dry_run else "compressed"
        saved = (f", {self.bytes_before / 2**20:.2f} -> {self.bytes_after / 2**20:.2f} MiB"
                 if self.compressed and not self.dry_run else "")
        errs = f", {len(self.errors)} errors" if self.errors else ""
        return (f"archive compression: {verb} {self.compressed} of {self.candidates} jobs older than the "
                f"cut-off{saved}{errs}")


def seconds_until_next_run(now: float | None = None) -> float:
    now_dt = dt.datetime.fromtimestamp(time.time() if now is None else now)
    at = now_dt.replace(hour=RUN_HOUR, minute=0, second=0, microsecond=0)
    if at <= now_dt:
        at += dt.timedelta(days=1)
    return (at - now_dt).total_seconds()


def archived_jobs_before(db_path: Path, before: int) -> list[tuple[str, int, int]]:
    """(cluster, jobId, startTime) of the jobs the archiver wrote that started before ``before``."""
    conn = connect(db_path, readonly=True)
    try:
        return conn.execute("SELECT cluster, job_id, start_time FROM job WHERE start_time < ? AND "
                            "monitoring_status = ? ORDER BY start_time", (before, MONITORING_ARCHIVING_SUCCESSFUL)
                            ).fetchall()
    finally:
        conn.close()


def compress_before(archive: JobArchive, db_path: Path, age_days: float, *, now: float | None = None,
                    dry_run: bool = False, progress: Callable[[int, int], None] | None = None) -> CompressReport:
    """Compress the plain ``data.json`` of every archived job that started ``age_days`` ago or earlier."""
    before = int((time.time() if now is None else now) - age_days * 86400)
    report = CompressReport(dry_run=dry_run)
    jobs = archived_jobs_before(db_path, before)
    report.candidates = len(jobs)
    for i, (cluster, job_id, start) in enumerate(jobs, 1):
        key = make_job_key(cluster, job_id, start)
        try:
            files = archive.read_raw(key)
            plain = files.get("data.json")
            if plain is not None:
                if not dry_run:
                    packed = _gzip(plain)
                    if gunzip(packed) != plain:  # never replace data by something that does not read back
                        raise ValueError("compressed data does not read back")
                    archive.write_raw(key, {"meta.json": files["meta.json"], "data.json.gz": packed})
                    report.bytes_before += len(plain)
                    report.bytes_after += len(packed)
                report.compressed += 1
        except FileNotFoundError:
            report.errors.append(f"{archive.location(key)}: in the database but not in the archive")
        except (OSError, sqlite3.Error, ValueError) as e:
            report.errors.append(f"{archive.location(key)}: {e}")
        if progress is not None:
            progress(i, len(jobs))
    return report
