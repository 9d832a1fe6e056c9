"""Archive manager: check, convert, prune and describe a job archive on any store.

Used by ``cc-supervise archive validate|convert|remove|info`` and at start-up
(:func:`prepare`).  Everything streams job by job: an archive of millions of jobs never
sits in memory.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from cc.archive._jobarchive import ARCHIVE_VERSION, JobArchive, gunzip
from cc.archive._schema import SchemaError, validate
from cc.archive._storage import split_job_key
from cc.fsio import replace_atomically

Progress = Callable[[int, int], None]


def prepare(archive: JobArchive, local_dir: Path) -> list[str]:
    """Ready a SQLite or S3 archive for the processes; returns what it did.

    The processes read cluster descriptions from ``archive.path`` (a local directory), so
    each ``cluster.json`` of the store is copied there (the store's copy wins), and a
    local one the store lacks is uploaded, so the store stays a complete cc-backend
    archive.  A store without jobs and without ``version.txt`` (a new one) gets one.
    """
    done: list[str] = []
    if archive.root is not None:
        return done
    if not archive.store.exists("version.txt") and next(archive.job_keys(), None) is None:
        archive.init_version()
        done.append(f"{archive.location('version.txt')}: created (archive version {ARCHIVE_VERSION})")
    stored = set()
    for name in archive.clusters():
        try:
            raw = archive.cluster_config(name)
        except FileNotFoundError:
            continue
        stored.add(name)
        path = local_dir / name / "cluster.json"
        if not path.exists() or path.read_bytes() != raw:
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(path, raw)
            done.append(f"{path}: copied from {archive.location(name + '/cluster.json')}")
    if local_dir.is_dir():
        for entry in sorted(local_dir.iterdir()):
            path = entry / "cluster.json"
            if entry.name not in stored and not entry.name.startswith(".") and path.is_file():
                archive.put_cluster_config(entry.name, path.read_bytes())
                done.append(f"{archive.location(entry.name + '/cluster.json')}: uploaded from {path}")
    return done


# -- validate ---------------------------------------------------------------------------------

def _doc(raw: bytes, gz: bool) -> object:
    return orjson.loads(gunzip(raw) if gz else raw)


def validate_archive(archive: JobArchive, progress: Progress | None = None) -> Iterator[str]:
    """One message (location: field: problem) per bad file, checked against the v3 schemas."""
    keys = list(archive.job_keys())
    total = len(keys)
    for name in archive.clusters():
        where = archive.location(f"{name}/cluster.json")
        try:
            validate("cluster", orjson.loads(archive.cluster_config(name)))
        except FileNotFoundError:
            yield f"{where}: missing (jobs of cluster {name!r} cannot be registered)"
        except orjson.JSONDecodeError as e:
            yield f"{where}: invalid JSON: {e}"
        except SchemaError as e:
            yield f"{where}: {e}"
    for i, key in enumerate(keys, 1):
        try:
            files = archive.read_raw(key)
        except (OSError, sqlite3.Error) as e:
            yield f"{archive.location(key)}: cannot read: {e}"
            continue
        cluster, job_id, start = split_job_key(key)
        for name, raw in files.items():
            where = archive.location(f"{key}/{name}")
            try:
                doc = _doc(raw, name.endswith(".gz"))
            except (orjson.JSONDecodeError, Exception) as e:  # zlib.error or JSON
                yield f"{where}: unreadable: {e}"
                continue
            try:
                validate("job-meta" if name == "meta.json" else "job-data", doc)
            except SchemaError as e:
                yield f"{where}: {e}"
                continue
            if name == "meta.json" and isinstance(doc, dict) and \
                    (doc.get("cluster"), doc.get("jobId"), doc.get("startTime")) != (cluster, job_id, start):
                yield (f"{where}: cluster/jobId/startTime ({doc.get('cluster')}, {doc.get('jobId')}, "
                       f"{doc.get('startTime')}) do not match its place {key}")
        if len(files) < 2:
            yield f"{archive.location(key)}: no data.json or data.json.gz"
        if progress is not None:
            progress(i, total)
    if progress is not None and not total:
        progress(0, 0)


# -- convert ----------------------------------------------------------------------------------

@dataclass
class ConvertResult:
    copied: int = 0
    skipped: int = 0  # already in the target (a resumed conversion)
    clusters: int = 0
    missing: list[str] = field(default_factory=list)  # source jobs the target lacks at the end

    @property
    def total(self) -> int:
        return self.copied + self.skipped


def convert(src: JobArchive, dst: JobArchive, progress: Progress | None = None) -> ConvertResult:
    """Copy every file of ``src`` into ``dst`` unchanged; jobs already there are skipped (resumable).

    A job counts as there when its ``meta.json`` is: every store writes it last or in the
    same transaction as the data.  At the end every source job is looked up in the target.
    """
    src.version()
    res = ConvertResult()
    dst.store.put("version.txt", src.store.read("version.txt"))
    for name in src.clusters():
        try:
            dst.put_cluster_config(name, src.cluster_config(name))
            res.clusters += 1
        except FileNotFoundError:
            pass
    keys = list(src.job_keys())
    for i, key in enumerate(keys, 1):
        if dst.store.exists(f"{key}/meta.json"):
            res.skipped += 1
        else:
            dst.write_raw(key, src.read_raw(key))
            res.copied += 1
        if progress is not None:
            progress(i, len(keys))
    if progress is not None and not keys:
        progress(0, 0)
    have = set(dst.job_keys())
    res.missing = [k for k in keys if k not in have]
    return res


# -- remove -----------------------------------------------------------------------------------

def remove_before(archive: JobArchive, before: int, *, dry_run: bool = False,
                  progress: Progress | None = None) -> list[str]:
    """Delete every job that started before ``before`` (Unix time); returns their keys."""
    doomed = [k for k in archive.job_keys() if split_job_key(k)[2] < before]
    for i, key in enumerate(doomed, 1):
        if not dry_run:
            archive.delete(*split_job_key(key))
        if progress is not None:
            progress(i, len(doomed))
    return doomed


# -- info -------------------------------------------------------------------------------------

@dataclass
class ClusterInfo:
    jobs: int = 0
    bytes: int = 0
    oldest: int | None = None
    newest: int | None = None

    def add(self, start: int, size: int) -> None:
        self.jobs += 1
        self.bytes += size
        self.oldest = start if self.oldest is None else min(self.oldest, start)
        self.newest = start if self.newest is None else max(self.newest, start)


def info(archive: JobArchive) -> dict[str, ClusterInfo]:
    """Jobs, bytes and oldest/newest start time per cluster (every cluster, also those without jobs)."""
    out = {name: ClusterInfo() for name in archive.clusters()}
    for key in archive.job_keys():
        cluster, _, start = split_job_key(key)
        out.setdefault(cluster, ClusterInfo()).add(start, archive.store.job_size(key))
    return out


def store_size(archive: JobArchive) -> int | None:
    """Bytes of the SQLite file (with its WAL), None for other stores."""
    path = getattr(archive.store, "db_path", None)
    if path is None:
        return None
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if os.path.exists(p))
