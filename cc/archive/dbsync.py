"""Filling the job database from the archive: ``init-db`` (rebuild) and ``import-job`` (add).

Both check what they read the way cc-backend's importer does (schema, known cluster
and subcluster, one resource per node) and recompute footprint and energy from the
job's statistics with the subcluster's metric configuration.  A bad job is reported
with its file and field and skipped; the others go in.  Files of real archives that stray
from the schema where it does not matter (say a unit cc-py does not know) are taken, with one
warning per kind of deviation (:mod:`cc.archive._lenient`).

``init_db`` replaces the job, tag and jobtag tables in one transaction (an interrupted
run leaves the old tables), inserting with explicit ids and with the job indexes
dropped and rebuilt afterwards, which is what makes 10,000+ jobs/s possible.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cc import jobdata
from cc.archive import _lenient
from cc.archive._jobarchive import ArchivePathError, JobArchive, gunzip, job_meta
from cc.archive._schema import SchemaError
from cc.clusters import Cluster, load_cluster_file, parse_cluster
from cc.config import ConfigError
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job, connect, job_from_json
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.db._model import JOB_COLUMNS
from cc.progress import ProgressBar as ProgressBar  # the bar's old home; callers import it from here

INSERT_WITH_ID = f"INSERT INTO job ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
TABLES = ("job", "tag", "jobtag")
CHUNK = 2000  # meta.json files per worker task and per insert batch


class JobFileError(ValueError):
    """One job cannot be taken over; the message starts with the file (and names the field)."""


@dataclass
class SyncResult:
    jobs: int = 0
    tags: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    deviations: _lenient.Deviations = field(default_factory=_lenient.Deviations)  # accepted, one warning per kind

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


# -- checking one job -------------------------------------------------------------------------

def _load_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise JobFileError(f"{path}: cannot read: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gunzip(raw)
        except Exception as e:
            raise JobFileError(f"{path}: not a readable gzip file: {e}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise JobFileError(f"{path}: invalid JSON: {e}") from None


def _schema(kind: str, doc: Any, path: Path | str, deviations: list | None = None) -> None:
    """JobFileError if ``doc`` is unusable; tolerated deviations go to ``deviations`` (see cc.archive._lenient)."""
    try:
        devs = _lenient.check(kind, doc)
    except SchemaError as e:
        raise JobFileError(f"{path}: {e}") from None
    if deviations is not None:
        deviations.extend(devs)


def check_job(doc: Any, path: Path | str, clusters: dict[str, Cluster], *, validate_schema: bool = True,
              deviations: list | None = None) -> Job:
    """A finished job from a meta.json document, with footprint and energy recomputed; JobFileError if unusable.

    Schema deviations that leave the job usable are appended to ``deviations`` as (field, message).
    """
    if validate_schema:
        _schema("job-meta", doc, path, deviations)
    elif not isinstance(doc, dict):
        raise JobFileError(f"{path}: (document): must be of type object")
    try:
        job = job_from_json(doc)
    except (KeyError, TypeError, ValueError) as e:
        raise JobFileError(f"{path}: cannot read job fields: {e}") from None
    cluster = clusters.get(job.cluster)
    if cluster is None:
        raise JobFileError(f"{path}: cluster: no cluster.json for cluster {job.cluster!r} in the job archive")
    if job.state == "running":
        raise JobFileError(f"{path}: jobState: 'running' - only finished jobs can be archived")
    if len(job.resources) != job.num_nodes:
        raise JobFileError(f"{path}: numNodes: {job.num_nodes} does not match the {len(job.resources)} "
                           "entries of resources")
    try:
        sc = jobdata.subcluster_of(job, cluster)
        job.subcluster = sc.name
        stats = doc.get("statistics") or {}
        job.footprint = jobdata.footprint(job, cluster, stats)
        job.energy, job.energy_footprint = jobdata.energy(job, cluster, stats)
    except (ValueError, TypeError, AttributeError) as e:
        raise JobFileError(f"{path}: subCluster: {e}") from None
    job.monitoring_status = MONITORING_ARCHIVING_SUCCESSFUL
    job.statistics = doc.get("statistics")
    return job


def _check_location(job: Job, path: str, archive: JobArchive) -> None:
    try:
        expected = archive.meta_file(job.cluster, job.job_id, job.start_time)
    except ArchivePathError as e:
        raise JobFileError(f"{path}: {e}") from None
    if expected != path:
        raise JobFileError(f"{path}: cluster/jobId/startTime ({job.cluster}, {job.job_id}, {job.start_time}) "
                           f"belong in {os.path.dirname(expected)}, not here")


def load_archive_clusters(root: Path | JobArchive) -> tuple[dict[str, Cluster], list[str]]:
    """Every readable ``<cluster>/cluster.json`` of an archive, and an error message per unreadable one."""
    clusters: dict[str, Cluster] = {}
    errors: list[str] = []
    archive = root if isinstance(root, JobArchive) else JobArchive(root)
    for name in archive.clusters():
        if archive.root is not None:
            path = archive.root / name / "cluster.json"
            if not path.exists():
                continue
            try:
                clusters[name] = load_cluster_file(path)
            except (ConfigError, OSError) as e:
                errors.append(str(e))
            continue
        try:
            raw = archive.cluster_config(name)
        except FileNotFoundError:
            continue
        where = archive.location(f"{name}/cluster.json")
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict):
                raise ConfigError(f"{where}: top level must be an object")
            clusters[name] = parse_cluster(doc, where)
        except orjson.JSONDecodeError as e:
            errors.append(f"{where}: invalid JSON: {e}")
        except ConfigError as e:
            errors.append(str(e))
    return clusters, errors


# -- init-db ----------------------------------------------------------------------------------

def non_archived_jobs(db_path: Path) -> int:
    """Jobs in the database that init-db would drop without finding them in the archive again."""
    if not Path(db_path).exists():
        return 0
    conn = connect(db_path)
    try:
        return conn.execute("SELECT count(*) FROM job WHERE monitoring_status <> ?",
                            (MONITORING_ARCHIVING_SUCCESSFUL,)).fetchone()[0]
    finally:
        conn.close()


def init_db(db_path: Path, archive: JobArchive, clusters: dict[str, Cluster], *, validate_schema: bool = True,
            progress: Callable[[int, int], None] | None = None, on_error: Callable[[str], None] | None = None,
            workers: int | None = None) -> SyncResult:
    """Replace jobs, tags and job tags with what the archive holds (the database must be migrated).

    meta.json files are read and checked by ``workers`` processes (default: one per core,
    at most 4) while this one inserts; results are taken in archive order, so ids are
    deterministic.
    """
    started = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # hundreds of thousands of short-lived containers: collection only costs time
    archive.version()
    result = SyncResult()
    paths = list(archive.meta_files())
    result.phases["walk"] = time.perf_counter() - started
    conn = connect(db_path)
    conn.execute("PRAGMA cache_size = -262144")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            indexes = _drop_indexes(conn)
            conn.execute("DELETE FROM job_archive_status")
            for t in ("jobtag", "tag", "job"):
                conn.execute(f"DELETE FROM {t}")
            t = time.perf_counter()
            if workers is None:
                workers = min(4, os.cpu_count() or 1)
            if not archive.store.forkable:  # a SQLite connection or an S3 client must not cross a fork
                workers = 1
            _fill(conn, paths, archive, clusters, validate_schema, result, progress, on_error, workers)
            result.phases["read+insert"] = time.perf_counter() - t
            t = time.perf_counter()
            for sql in indexes:
                conn.execute(sql)
            conn.execute("COMMIT")
            result.phases["indexes+commit"] = time.perf_counter() - t
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA optimize")
    finally:
        conn.close()
        if gc_was_enabled:
            gc.enable()
    result.seconds = time.perf_counter() - started
    return result


def _drop_indexes(conn: sqlite3.Connection) -> list[str]:
    """Drop the explicit indexes of the job tables (rebuilt after the bulk insert); returns their SQL."""
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND "
                        f"tbl_name IN ({', '.join('?' * len(TABLES))})", TABLES).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in rows]


def _parse_one(path: str, archive: JobArchive, clusters: dict[str, Cluster],
               validate_schema: bool) -> tuple[tuple, list[tuple[str, str, str]], list] | str:
    """(row values without id, tags, tolerated deviations) of one meta.json, or the error message."""
    try:
        raw = archive.read_location(path)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise JobFileError(f"{path}: invalid JSON: {e}") from None
        devs: list[tuple[str, str]] = []
        job = check_job(doc, path, clusters, validate_schema=validate_schema, deviations=devs)
        _check_location(job, path, archive)
    except JobFileError as e:
        return str(e)
    except OSError as e:
        return f"{path}: cannot read: {e.strerror or e}"
    except sqlite3.Error as e:
        return f"{path}: cannot read: {e}"
    return job.row_values(), [(t.type, t.name, t.scope or "global") for t in job.tags], devs


_worker_args: tuple | None = None


def _worker_init(args: tuple) -> None:
    global _worker_args
    _worker_args = args
    gc.disable()  # short-lived bulk work: the cyclic collector only costs time here


def _parse_chunk(paths: list[str]) -> list:
    assert _worker_args is not None
    return [_parse_one(p, *_worker_args) for p in paths]


def _parsed(paths: list[str], archive: JobArchive, clusters: dict[str, Cluster], validate_schema: bool,
            workers: int) -> Iterator[list]:
    """Parsed chunks in path order; in worker processes for large archives."""
    size = CHUNK
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield [_parse_one(p, archive, clusters, validate_schema) for p in chunk]
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_worker_init, initargs=((archive, clusters, validate_schema),)) as pool:
        yield from pool.imap(_parse_chunk, chunks)


def _fill(conn: sqlite3.Connection, paths: list[str], archive: JobArchive, clusters: dict[str, Cluster],
          validate_schema: bool, result: SyncResult, progress, on_error, workers: int) -> None:
    tag_ids: dict[tuple[str, str], int] = {}
    rows: list[tuple] = []
    links: list[tuple[int, int]] = []
    new_tags: list[tuple] = []
    next_id = 1
    done, total = 0, len(paths)

    def flush() -> None:
        if new_tags:
            conn.executemany("INSERT INTO tag (id, tag_type, tag_name, tag_scope) VALUES (?, ?, ?, ?)", new_tags)
            new_tags.clear()
        if rows:
            conn.executemany(INSERT_WITH_ID, rows)
            rows.clear()
        if links:
            conn.executemany("INSERT OR IGNORE INTO jobtag (job_id, tag_id) VALUES (?, ?)", links)
            links.clear()

    for chunk in _parsed(paths, archive, clusters, validate_schema, workers):
        for chunk_pos, item in enumerate(chunk):
            if isinstance(item, str):
                result.errors.append(item)
                if on_error is not None:
                    on_error(item)
                continue
            values, job_tags, devs = item
            if devs:
                result.deviations.add(paths[done + chunk_pos], devs)
            rows.append((next_id, *values))
            for t_type, t_name, t_scope in job_tags:
                tid = tag_ids.get((t_type, t_name))
                if tid is None:
                    tid = tag_ids[(t_type, t_name)] = len(tag_ids) + 1
                    new_tags.append((tid, t_type, t_name, t_scope))
                links.append((next_id, tid))
            result.ids.append(next_id)
            next_id += 1
        flush()
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    if progress is not None and not total:
        progress(0, 0)
    result.jobs = next_id - 1
    result.tags = len(tag_ids)


# -- import-job -------------------------------------------------------------------------------

def parse_pairs(spec: str) -> list[tuple[Path, Path]]:
    """``meta.json:data.json[,meta2:data2]`` -> pairs; ValueError for a malformed entry."""
    pairs = []
    for i, item in enumerate(p for p in spec.split(",") if p.strip()):
        parts = item.split(":")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"import entry {i + 1} {item!r}: expected <meta.json>:<data.json>")
        pairs.append((Path(parts[0]), Path(parts[1])))
    return pairs


def import_jobs(db_path: Path, archive: JobArchive, clusters: dict[str, Cluster], pairs: Iterable[tuple[Path, Path]],
                *, validate_schema: bool = True, on_error: Callable[[str], None] | None = None,
                progress: Callable[[int, int], None] | None = None) -> SyncResult:
    """Import finished jobs: validate both files, write them into the archive and the database.

    Each job is all-or-nothing: its archive directory is removed again if the database
    insert fails.  Bad jobs are reported and skipped.
    """
    started = time.perf_counter()
    archive.version()
    result = SyncResult()
    conn = connect(db_path)
    pairs = list(pairs)
    try:
        for n, (meta_path, data_path) in enumerate(pairs, 1):
            try:
                db_id = _import_one(conn, archive, clusters, meta_path, data_path, validate_schema,
                                    result.deviations)
            except JobFileError as e:
                result.errors.append(str(e))
                if on_error is not None:
                    on_error(str(e))
                continue
            else:
                result.jobs += 1
                result.ids.append(db_id)
            finally:
                if progress is not None:
                    progress(n, len(pairs))
    finally:
        conn.close()
    result.seconds = time.perf_counter() - started
    return result


def _import_one(conn: sqlite3.Connection, archive: JobArchive, clusters: dict[str, Cluster], meta_path: Path,
                data_path: Path, validate_schema: bool, deviations: _lenient.Deviations) -> int:
    doc = _load_json(meta_path)
    meta_devs: list[tuple[str, str]] = []
    job = check_job(doc, meta_path, clusters, validate_schema=validate_schema, deviations=meta_devs)
    data = _load_json(data_path)
    data_devs: list[tuple[str, str]] = []
    if validate_schema:
        _schema("job-data", data, data_path, data_devs)
    elif not isinstance(data, dict):
        raise JobFileError(f"{data_path}: (document): must be of type object")
    try:
        exists = archive.exists(job.cluster, job.job_id, job.start_time)
    except ArchivePathError as e:
        raise JobFileError(f"{meta_path}: cluster: {e}") from None
    dup = jobs.find_jobs(conn, job.job_id, job.cluster, job.start_time)
    if dup:
        raise JobFileError(f"{meta_path}: job {job.job_id} on {job.cluster} started at {job.start_time} is already "
                           f"in the database (id {dup[0].id})")
    if exists:
        raise JobFileError(f"{meta_path}: job {job.job_id} on {job.cluster} started at {job.start_time} is already "
                           "in the job archive (init-db registers archived jobs)")
    try:
        archive.write(job_meta(job, job.statistics), data)
    except OSError as e:
        raise JobFileError(f"{meta_path}: writing the archive failed: {e}") from None

    def insert(c: sqlite3.Connection) -> int:
        db_id = jobs.insert_job(c, job)
        for t in job.tags:
            tags.add_tag(c, None, db_id, t.type, t.name, t.scope or "global")
        return db_id

    conn.execute("BEGIN IMMEDIATE")
    try:
        db_id = insert(conn)
        conn.execute("COMMIT")
    except BaseException as e:
        conn.execute("ROLLBACK")
        archive.delete(job.cluster, job.job_id, job.start_time)
        if isinstance(e, sqlite3.Error):
            raise JobFileError(f"{meta_path}: database insert failed: {e}") from None
        raise
    deviations.add(str(meta_path), meta_devs)
    deviations.add(str(data_path), data_devs)
    return db_id

