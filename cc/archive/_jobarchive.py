"""The job archive on disk, laid out exactly as ClusterCockpit's (archive version 3).

``<root>/version.txt``, ``<root>/<cluster>/cluster.json`` and one directory per job,
``<root>/<cluster>/<jobId // 1000>/<jobId % 1000 as %03d>/<startTime>/`` holding
``meta.json`` and ``data.json`` (``data.json.gz`` above 2000 bytes, as cc-backend).

Writes are atomic: a job directory is assembled under a hidden temporary name in the
same parent and renamed into place, so a reader (or a crash) sees the old job, the
new job or no job, never half of one.  Every path component that comes from a job
(cluster name, ids) is checked first, so no document can steer a write outside the
archive.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job
from cc.fsio import fsync_dir, replace_atomically, write_all

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


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


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
    """One archive root.  Thread-safe; loaded documents are cached (LRU, bounded by :func:`memory_size`).

    Cached documents are shared: callers must not modify what :meth:`load_data` returns.
    """

    def __init__(self, root: Path | str, *, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.root = Path(root)
        self.cache_bytes = cache_bytes
        # (cluster, job id, start time, 'data' | 'meta') -> ((mtime_ns, size), memory_size, document)
        self._cache: OrderedDict[tuple[str, int, int, str], tuple[tuple[int, int], int, dict]] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()

    # -- layout -------------------------------------------------------------------------------

    def version(self) -> int:
        """The archive version; raises ArchiveError unless it is 3."""
        path = self.root / "version.txt"
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            raise ArchiveError(f"{path}: missing (not a job archive; 'cc-supervise init' creates one)") from None
        try:
            version = int(text)
        except ValueError:
            raise ArchiveError(f"{path}: expected a version number, got {text[:40]!r}") from None
        if version != ARCHIVE_VERSION:
            raise ArchiveError(f"{path}: archive version {version} is not supported (need {ARCHIVE_VERSION})")
        return version

    def clusters(self) -> list[str]:
        """Clusters with a directory in the archive (as cc-backend: every non-hidden directory)."""
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []

    def job_dir(self, cluster: str, job_id: int, start_time: int) -> Path:
        check_cluster_name(cluster)
        _check_id("jobId", job_id)
        _check_id("startTime", start_time)
        return self.root / cluster / str(job_id // 1000) / f"{job_id % 1000:03d}" / str(start_time)

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        return (self.job_dir(cluster, job_id, start_time) / "meta.json").is_file()

    def iter_jobs(self) -> Iterator[Path]:
        """Paths of every ``meta.json`` (cluster, jobId and start-time directories; hidden ones skipped)."""
        return map(Path, self.meta_files())

    def meta_files(self) -> Iterator[str]:
        """:meth:`iter_jobs` as plain strings (pathlib costs more than reading the file in init-db)."""
        root = str(self.root)
        for cluster in self.clusters():
            for lvl1 in _subdirs(os.path.join(root, cluster)):
                for lvl2 in _subdirs(lvl1):
                    for start in _subdirs(lvl2):
                        yield os.path.join(start, "meta.json")

    def meta_file(self, cluster: str, job_id: int, start_time: int) -> str:
        """Where the meta.json of a job belongs, as a string (path components checked)."""
        check_cluster_name(cluster)
        _check_id("jobId", job_id)
        _check_id("startTime", start_time)
        return os.path.join(str(self.root), cluster, str(job_id // 1000), f"{job_id % 1000:03d}", str(start_time),
                            "meta.json")

    # -- writing ------------------------------------------------------------------------------

    def write(self, meta: dict[str, Any], data: dict[str, Any]) -> Path:
        """Write one job (meta.json + data.json[.gz]) atomically, replacing an earlier copy; returns its directory."""
        target = self.job_dir(meta.get("cluster"), meta.get("jobId"), meta.get("startTime"))
        raw = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
        if len(raw) > GZIP_THRESHOLD:
            name, blob = "data.json.gz", _gzip(raw)
        else:
            name, blob = "data.json", raw
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".tmp-{target.name}-*"):  # left by a writer killed mid-way
            shutil.rmtree(stale, ignore_errors=True)
        for stale in parent.glob(f".old-{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = parent / f".tmp-{target.name}-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            _write_file(tmp / "meta.json", orjson.dumps(meta))
            _write_file(tmp / name, blob)
            fsync_dir(tmp)
            old = None
            if target.exists():
                old = parent / f".old-{target.name}-{uuid.uuid4().hex[:12]}"
                os.rename(target, old)
            os.rename(tmp, target)
            fsync_dir(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._forget(meta["cluster"], meta["jobId"], meta["startTime"])
        return target

    def update_meta(self, cluster: str, job_id: int, start_time: int, **fields: Any) -> dict[str, Any]:
        """Change top-level fields of an archived meta.json (e.g. ``tags=[...]``); atomic replace.

        Raises FileNotFoundError if the job is not archived.  Identity fields cannot change
        (they are the path).
        """
        for key in ("cluster", "jobId", "startTime"):
            if key in fields:
                raise ValueError(f"{key} of an archived job cannot change (it is part of its path)")
        path = self.job_dir(cluster, job_id, start_time) / "meta.json"
        with self._lock:  # one writer per process; the file is replaced atomically for everyone
            meta = orjson.loads(path.read_bytes())
            meta.update(fields)
            replace_atomically(path, orjson.dumps(meta))
        return meta

    def delete(self, cluster: str, job_id: int, start_time: int) -> bool:
        """Remove a job directory (used to undo an import whose database insert failed)."""
        d = self.job_dir(cluster, job_id, start_time)
        if not d.exists():
            return False
        gone = d.parent / f".del-{d.name}-{uuid.uuid4().hex[:12]}"
        os.rename(d, gone)
        shutil.rmtree(gone, ignore_errors=True)
        self._forget(cluster, job_id, start_time)
        return True

    # -- reading ------------------------------------------------------------------------------

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        """The job's ``meta.json``; cached like :meth:`load_data` (job lists read 50 at a time)."""
        key = (cluster, job_id, start_time, "meta")
        path = self.job_dir(cluster, job_id, start_time) / "meta.json"
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cached_doc(key, stamp)
        if hit is not None:
            return hit
        raw = path.read_bytes()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ArchiveError(f"{path}: invalid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ArchiveError(f"{path}: top level must be an object")
        stats = doc.get("statistics")
        if stats is not None and (not isinstance(stats, dict) or not all(isinstance(v, dict) for v in stats.values())):
            raise ArchiveError(f"{path}: statistics: must be an object of {{min, avg, max}} objects")
        self._remember(key, stamp, doc)
        return doc

    def data_path(self, cluster: str, job_id: int, start_time: int) -> Path:
        d = self.job_dir(cluster, job_id, start_time)
        gz = d / "data.json.gz"
        return gz if gz.exists() else d / "data.json"

    def load_data(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        """The job's ``data.json`` (decompressed); cached, so treat the result as read-only."""
        key = (cluster, job_id, start_time, "data")
        d = self.job_dir(cluster, job_id, start_time)
        path, compressed = d / "data.json.gz", True
        try:
            st = os.stat(path)
        except FileNotFoundError:
            path, compressed = d / "data.json", False
            st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._cached_doc(key, stamp)
        if hit is not None:
            return hit
        with open(path, "rb") as f:
            blob = f.read()
        try:
            raw = gunzip(blob) if compressed else blob
            doc = orjson.loads(raw)
        except (zlib.error, orjson.JSONDecodeError) as e:
            raise ArchiveError(f"{path}: unreadable: {e}") from None
        check_job_data(doc, path)
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


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return [e.path for e in sorted(it, key=lambda e: e.name) if not e.name.startswith(".") and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
