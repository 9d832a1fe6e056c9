"""The job archive, laid out exactly as ClusterCockpit's (archive version 3).

``version.txt``, ``<cluster>/cluster.json`` and per job
``<cluster>/<jobId // 1000>/<jobId % 1000 as %03d>/<startTime>/`` holding ``meta.json``
and ``data.json`` (``data.json.gz`` above 2000 bytes, as cc-backend) - in a directory, a
SQLite file or an S3 bucket (:mod:`cc.archive._storage`; each store says how a job is
replaced without a reader or a crash seeing half of it).  Every key component that comes
from a job (cluster name, ids) is checked first, so no document can steer a write
outside the archive.
"""

from __future__ import annotations

import os
import sys
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from cc.archive._storage import DATA_NAMES, FileStore, Store, make_job_key, split_job_key
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job

ARCHIVE_VERSION = 3
GZIP_THRESHOLD = 2000  # bytes of JSON; cc-backend compresses data.json above this size
# Bytes of parsed documents (estimated in-memory size, see memory_size) the cache holds at
# most; cc-backend's metric data cache has the same 128 MiB.
DEFAULT_CACHE_BYTES = 128 << 20
_NUMBER = sys.getsizeof(1.0)  # a float object; lists hold a pointer (counted by getsizeof) to each


class ArchiveError(Exception):
    """The archive is missing, of another version, or a job in it is unreadable."""


class ArchivePathError(ValueError):
    """A cluster name or id that must not become part of a path."""


def check_cluster_name(cluster: Any) -> str:
    if not isinstance(cluster, str) or not cluster or "/" in cluster or "\\" in cluster or ".." in cluster \
            or cluster.startswith(".") or "\x00" in cluster or len(cluster) > 255:
        raise ArchivePathError(f"cluster name {cluster!r} cannot be an archive directory "
                               "(empty, or contains '/', '\\', '..', a leading '.' or NUL)")
    return cluster


def _check_id(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArchivePathError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def job_meta(job: Job, statistics: dict[str, Any] | None) -> dict[str, Any]:
    """``meta.json`` of a job: cc-backend's job JSON plus statistics and tags.

    Left out: the database ids (of the job and its tags) and ``concurrentJobs`` (they
    belong to one database, not to the archive), and fields without value.  Tags are
    sorted by type and name, as the database lists them.  ``monitoringStatus`` is 3: a job
    in the archive is an archived job.
    """
    doc = job.to_json()
    doc.pop("id", None)
    doc.pop("concurrentJobs", None)
    doc["monitoringStatus"] = MONITORING_ARCHIVING_SUCCESSFUL
    doc["tags"] = [{"type": t.type, "name": t.name, "scope": t.scope or "global"}
                   for t in sorted(job.tags, key=lambda t: (t.type, t.name))]
    doc["statistics"] = statistics if statistics is not None else {}
    return {k: v for k, v in doc.items() if v is not None}


def _gzip(raw: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(raw) + c.flush()


def gunzip(blob: bytes) -> bytes:
    """Decompress every gzip member (one for our files, maybe more for concatenated ones)."""
    d = zlib.decompressobj(47)
    out = d.decompress(blob)
    while d.unused_data:
        rest = d.unused_data
        d = zlib.decompressobj(47)
        out += d.decompress(rest)
    if not d.eof:  # zlib returns what it has for a cut-off stream; that is damage, not data
        raise zlib.error("truncated gzip stream (no end of stream)")
    return out


def memory_size(doc: Any) -> int:
    """Estimated bytes of the Python objects of a parsed JSON document.

    Why not the file size: parsed, a ``data.json`` takes about 5x its JSON text (a float is a
    24-byte object plus an 8-byte pointer for ~7 characters), so a cache bounded by JSON bytes
    held five times what it said.  Lists of numbers are charged per element without walking
    them; everything else is walked (a few objects per series, cheap next to parsing).
    """
    size = 0
    stack = [doc]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            size += sys.getsizeof(o)
            for k, v in o.items():
                size += sys.getsizeof(k)
                if v is not None and not isinstance(v, bool):
                    stack.append(v)
        elif isinstance(o, list):
            size += sys.getsizeof(o)
            if o and not isinstance(o[0], (dict, list, str)):
                size += _NUMBER * len(o)
            else:
                stack.extend(o)
        else:
            size += sys.getsizeof(o)
    return size


class JobArchive:
    """One archive (a directory, a SQLite file or an S3 bucket, see :mod:`cc.archive._storage`).

    Thread-safe; loaded documents are cached (LRU, bounded by :func:`memory_size`) and
    revalidated against the file's (change time, size) stamp.  Cached documents are
    shared: callers must not modify what :meth:`load_data` returns.
    """

    def __init__(self, root: Path | str | Store, *, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.store: Store = FileStore(root) if isinstance(root, (str, os.PathLike)) else root
        # the directory of a file archive; other stores have none (job_dir/data_path are file-only)
        self.root = self.store.root if isinstance(self.store, FileStore) else None
        self.cache_bytes = cache_bytes
        # (cluster, job id, start time, 'data' | 'meta') -> ((mtime_ns, size), memory_size, document)
        self._cache: OrderedDict[tuple[str, int, int, str], tuple[tuple[int, int], int, dict]] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return self.store.kind

    def location(self, key: str = "") -> str:
        """Where a key is, for messages (a path, ``s3://bucket/key`` or ``db-path#key``)."""
        return self.store.prefix + key

    # -- layout -------------------------------------------------------------------------------

    def version(self) -> int:
        """The archive version; raises ArchiveError unless it is 3."""
        where = self.location("version.txt")
        try:
            text = self.store.read("version.txt").decode(errors="replace").strip()
        except FileNotFoundError:
            raise ArchiveError(f"{where}: missing (not a job archive; 'cc-supervise init' creates one)") from None
        try:
            version = int(text)
        except ValueError:
            raise ArchiveError(f"{where}: expected a version number, got {text[:40]!r}") from None
        if version != ARCHIVE_VERSION:
            raise ArchiveError(f"{where}: archive version {version} is not supported (need {ARCHIVE_VERSION})")
        return version

    def init_version(self) -> None:
        """Write ``version.txt`` into an empty archive (a new SQLite file or bucket)."""
        if not self.store.exists("version.txt"):
            self.store.put("version.txt", f"{ARCHIVE_VERSION}\n".encode())

    def clusters(self) -> list[str]:
        """Clusters in the archive (file: every non-hidden directory, as cc-backend)."""
        return self.store.clusters()

    def cluster_config(self, cluster: str) -> bytes:
        """The raw ``cluster.json`` of a cluster; FileNotFoundError if there is none."""
        return self.store.read(f"{check_cluster_name(cluster)}/cluster.json")

    def put_cluster_config(self, cluster: str, raw: bytes) -> None:
        self.store.put(f"{check_cluster_name(cluster)}/cluster.json", raw)

    def job_key(self, cluster: str, job_id: int, start_time: int) -> str:
        """``<cluster>/<id // 1000>/<id % 1000>/<start>`` with every component checked."""
        check_cluster_name(cluster)
        _check_id("jobId", job_id)
        _check_id("startTime", start_time)
        return make_job_key(cluster, job_id, start_time)

    def job_dir(self, cluster: str, job_id: int, start_time: int) -> Path:
        key = self.job_key(cluster, job_id, start_time)
        if self.root is None:
            raise ArchiveError(f"a {self.kind} archive has no job directories")
        return self.root / key

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        return self.store.exists(f"{self.job_key(cluster, job_id, start_time)}/meta.json")

    def iter_jobs(self) -> Iterator[Path]:
        """Paths of every ``meta.json`` (cluster, jobId and start-time directories; hidden ones skipped)."""
        return map(Path, self.meta_files())

    def job_keys(self) -> Iterator[str]:
        """Every archived job's key (see :meth:`job_key`)."""
        return self.store.job_keys()

    def meta_files(self) -> Iterator[str]:
        """Locations of every ``meta.json`` (plain strings; for a file archive its paths)."""
        prefix = self.store.prefix
        return (f"{prefix}{k}/meta.json" for k in self.store.job_keys())

    def read_location(self, location: str) -> bytes:
        """The bytes at a location from :meth:`meta_files` (or ``location(key)``)."""
        prefix = self.store.prefix
        if not location.startswith(prefix):
            raise ArchivePathError(f"{location}: not a location in this archive")
        return self.store.read(location[len(prefix):])

    def meta_file(self, cluster: str, job_id: int, start_time: int) -> str:
        """Where the meta.json of a job belongs, as a location string (path components checked)."""
        return f"{self.store.prefix}{self.job_key(cluster, job_id, start_time)}/meta.json"

    # -- writing ------------------------------------------------------------------------------

    def write(self, meta: dict[str, Any], data: dict[str, Any]) -> Path:
        """Write one job (meta.json + data.json[.gz]) atomically, replacing an earlier copy; returns its location."""
        key = self.job_key(meta.get("cluster"), meta.get("jobId"), meta.get("startTime"))
        raw = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
        if len(raw) > GZIP_THRESHOLD:
            name, blob = "data.json.gz", _gzip(raw)
        else:
            name, blob = "data.json", raw
        self.store.put_job(key, {"meta.json": orjson.dumps(meta), name: blob})
        self._forget(meta["cluster"], meta["jobId"], meta["startTime"])
        return self.root / key if self.root is not None else Path(self.location(key))

    def write_raw(self, job_key: str, files: dict[str, bytes]) -> None:
        """Store a job's files unchanged (archive conversion and retention copies)."""
        cluster, job_id, start = split_job_key(job_key)
        self.store.put_job(self.job_key(cluster, job_id, start), files)
        self._forget(cluster, job_id, start)

    def read_raw(self, job_key: str) -> dict[str, bytes]:
        """A job's files as stored: ``meta.json`` and ``data.json`` or ``data.json.gz``."""
        files = {"meta.json": self.store.read(f"{job_key}/meta.json")}
        for name in DATA_NAMES:
            try:
                files[name] = self.store.read(f"{job_key}/{name}")
                break
            except FileNotFoundError:
                continue
        return files

    def update_meta(self, cluster: str, job_id: int, start_time: int, **fields: Any) -> dict[str, Any]:
        """Change top-level fields of an archived meta.json (e.g. ``tags=[...]``); atomic replace.

        Raises FileNotFoundError if the job is not archived.  Identity fields cannot change
        (they are the path).
        """
        for key in ("cluster", "jobId", "startTime"):
            if key in fields:
                raise ValueError(f"{key} of an archived job cannot change (it is part of its path)")
        key = f"{self.job_key(cluster, job_id, start_time)}/meta.json"
        with self._lock:  # one writer per process; the file is replaced atomically for everyone
            meta = orjson.loads(self.store.read(key))
            meta.update(fields)
            self.store.put(key, orjson.dumps(meta))
        self._forget(cluster, job_id, start_time)  # a SQLite stamp has 1 s resolution
        return meta

    def delete(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Remove a job (retention, ``archive remove``, undoing an import whose database insert failed)."""
        gone = self.store.delete_job(self.job_key(cluster, job_id, start_time))
        self._forget(cluster, job_id, start_time)
        return gone

    def close(self) -> None:
        self.store.close()

    # -- reading ------------------------------------------------------------------------------

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        """The job's ``meta.json``; cached like :meth:`load_data` (job lists read 50 at a time)."""
        key = (cluster, job_id, start_time, "meta")
        name = f"{self.job_key(cluster, job_id, start_time)}/meta.json"
        stamp = self.store.stamp(name)
        hit = self._cached_doc(key, stamp)
        if hit is not None:
            return hit
        where = self.location(name)
        raw = self.store.read(name)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ArchiveError(f"{where}: invalid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ArchiveError(f"{where}: top level must be an object")
        stats = doc.get("statistics")
        if stats is not None and (not isinstance(stats, dict) or not all(isinstance(v, dict) for v in stats.values())):
            raise ArchiveError(f"{where}: statistics: must be an object of {{min, avg, max}} objects")
        self._remember(key, stamp, doc)
        return doc

    def data_path(self, cluster: str, job_id: int, start_time: int) -> Path:
        d = self.job_dir(cluster, job_id, start_time)
        gz = d / "data.json.gz"
        return gz if gz.exists() else d / "data.json"

    def load_data(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        """The job's ``data.json`` (decompressed); cached, so treat the result as read-only."""
        key = (cluster, job_id, start_time, "data")
        job_key = self.job_key(cluster, job_id, start_time)
        name, compressed = f"{job_key}/data.json.gz", True
        try:
            stamp = self.store.stamp(name)
        except FileNotFoundError:
            name, compressed = f"{job_key}/data.json", False
            stamp = self.store.stamp(name)
        hit = self._cached_doc(key, stamp)
        if hit is not None:
            return hit
        where = self.location(name)
        blob = self.store.read(name)
        try:
            raw = gunzip(blob) if compressed else blob
            doc = orjson.loads(raw)
        except (zlib.error, orjson.JSONDecodeError) as e:
            raise ArchiveError(f"{where}: unreadable: {e}") from None
        check_job_data(doc, where)
        self._remember(key, stamp, doc)
        return doc

    # -- cache --------------------------------------------------------------------------------

    def _cached_doc(self, key, stamp: tuple[int, int]) -> dict | None:
        """The cached document of ``key`` if the file still has this (mtime, size)."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(key)
                return hit[2]
        return None

    def _remember(self, key, stamp, doc: dict) -> None:
        if self.cache_bytes <= 0:
            return
        size = memory_size(doc)
        if size > self.cache_bytes:
            return
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._cached -= old[1]
            self._cache[key] = (stamp, size, doc)
            self._cached += size
            while self._cached > self.cache_bytes:
                _, (_, s, _) = self._cache.popitem(last=False)
                self._cached -= s

    def _forget(self, cluster: str, job_id: int, start_time: int) -> None:
        with self._lock:
            for kind in ("data", "meta"):
                old = self._cache.pop((cluster, job_id, start_time, kind), None)
                if old is not None:
                    self._cached -= old[1]

    def cache_info(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._cache), "bytes": self._cached, "limit": self.cache_bytes}


_NUMBER_TYPES = frozenset({int, float})
_VALUE_TYPES = frozenset({int, float, type(None)})


def check_job_data(doc: Any, path: Path | str) -> None:
    """Raise ArchiveError naming file and field unless ``doc`` has the shape readers rely on.

    Lenient by design (real cc-backend archives hold values outside the strict schema): only
    what the code indexes is checked - objects where it looks up keys, lists where it
    iterates, numbers or null in ``data`` and ``statistics`` - so any document that passes
    is safe to resample, aggregate and serve.  Cost: one pass over the values in C (about a
    third of what parsing the JSON costs).
    """
    if not isinstance(doc, dict):
        raise ArchiveError(f"{path}: (document): must be an object of metrics")
    for metric, per_scope in doc.items():
        if not isinstance(per_scope, dict):
            raise ArchiveError(f"{path}: {metric}: must be an object of scopes")
        for scope, jm in per_scope.items():
            where = f"{path}: {metric}.{scope}"
            if not isinstance(jm, dict):
                raise ArchiveError(f"{where}: must be an object")
            ts = jm.get("timestep")
            if ts is not None and (type(ts) not in _NUMBER_TYPES or not 0 <= ts < 2**53):
                raise ArchiveError(f"{where}.timestep: must be a non-negative number, got {ts!r:.40}")
            for name in ("unit", "statisticsSeries"):
                if jm.get(name) is not None and not isinstance(jm[name], dict):
                    raise ArchiveError(f"{where}.{name}: must be an object")
            series = jm.get("series")
            if series is None:
                continue
            if not isinstance(series, list):
                raise ArchiveError(f"{where}.series: must be a list")
            for i, se in enumerate(series):
                if not isinstance(se, dict):
                    raise ArchiveError(f"{where}.series[{i}]: must be an object")
                data = se.get("data")
                if not isinstance(data, list) or not set(map(type, data)) <= _VALUE_TYPES:
                    raise ArchiveError(f"{where}.series[{i}].data: must be a list of numbers and nulls")
                st = se.get("statistics")
                if st is not None and (not isinstance(st, dict) or not set(map(type, st.values())) <= _VALUE_TYPES):
                    raise ArchiveError(f"{where}.series[{i}].statistics: must be an object of numbers")
                host = se.get("hostname")
                if host is not None and not isinstance(host, str):
                    raise ArchiveError(f"{where}.series[{i}].hostname: must be a string")

