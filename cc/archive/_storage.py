"""Where archive files live: a directory tree, one SQLite file, or an S3 bucket.

All three hold the same files under the same keys, ``version.txt``,
``<cluster>/cluster.json`` and ``<cluster>/<id // 1000>/<id % 1000 as %03d>/<start>/``
``meta.json`` + ``data.json[.gz]``, so :class:`cc.archive.JobArchive` (parsing, checks,
cache) is the same code on each and a conversion copies bytes unchanged.

* :class:`FileStore` - cc-backend's file archive.  A job directory is assembled under a
  hidden name and renamed into place: a reader or a crash sees the old job, the new one or
  none, never half of one.
* :class:`SqliteStore` - cc-backend's SQLite archive layout (tables ``jobs``, ``clusters``,
  ``metadata``; ``data_json`` gzipped above 2000 bytes with ``data_compressed`` set).  A
  job is one row written in one transaction.
* :class:`S3Store` - cc-backend's S3 layout (the file tree's paths as object keys) through
  pyarrow's S3 filesystem.  S3 has no multi-object transaction: data is put first and
  ``meta.json`` last, so a job is visible (listed, loaded) only once it is complete.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from cc.fsio import fsync_dir, replace_atomically, write_all

META = "meta.json"
DATA_NAMES = ("data.json.gz", "data.json")
POOL_SIZE = 4  # idle SQLite connections kept per store


class Store(Protocol):
    """Byte access to archive files by key (``/``-separated, relative to the archive)."""

    kind: str
    prefix: str      # location of key k is prefix + k (messages; file: the real path)
    forkable: bool   # readers may run in forked processes (init-db workers)

    def read(self, key: str) -> bytes: ...               # FileNotFoundError if absent
    def stamp(self, key: str) -> tuple[int, int]: ...     # (change time, size); FileNotFoundError
    def exists(self, key: str) -> bool: ...
    def put(self, key: str, blob: bytes) -> None: ...     # atomic replace of one file
    def put_job(self, job_key: str, files: dict[str, bytes]) -> None: ...  # replace a job's files at once
    def delete_job(self, job_key: str) -> bool: ...
    def clusters(self) -> list[str]: ...
    def job_keys(self) -> Iterator[str]: ...              # every job directory key with a meta.json
    def job_size(self, job_key: str) -> int: ...          # bytes of the job's files
    def close(self) -> None: ...


def split_job_key(job_key: str) -> tuple[str, int, int]:
    """(cluster, jobId, startTime) of ``<cluster>/<a>/<b>/<start>``; ValueError if malformed."""
    parts = job_key.split("/")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit() or not parts[3].isdigit():
        raise ValueError(f"{job_key!r} is not a job key (<cluster>/<id/1000>/<id%1000>/<startTime>)")
    return parts[0], int(parts[1]) * 1000 + int(parts[2]), int(parts[3])


def make_job_key(cluster: str, job_id: int, start_time: int) -> str:
    return f"{cluster}/{job_id // 1000}/{job_id % 1000:03d}/{start_time}"


# -- file tree --------------------------------------------------------------------------------

def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return [e.path for e in sorted(it, key=lambda e: e.name) if not e.name.startswith(".") and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


class FileStore:
    kind = "file"
    forkable = True

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.prefix = str(self.root) + os.sep

    def path(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> bytes:
        with open(self.prefix + key, "rb") as f:
            return f.read()

    def stamp(self, key: str) -> tuple[int, int]:
        st = os.stat(self.prefix + key)
        return st.st_mtime_ns, st.st_size

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.prefix + key)

    def put(self, key: str, blob: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, blob)

    def put_job(self, job_key: str, files: dict[str, bytes]) -> None:
        target = self.path(job_key)
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".tmp-{target.name}-*"):  # left by a writer killed mid-way
            shutil.rmtree(stale, ignore_errors=True)
        for stale in parent.glob(f".old-{target.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = parent / f".tmp-{target.name}-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        old = None
        try:
            for name, blob in files.items():
                _write_new(tmp / name, blob)
            fsync_dir(tmp)
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

    def delete_job(self, job_key: str) -> bool:
        d = self.path(job_key)
        if not d.exists():
            return False
        gone = d.parent / f".del-{d.name}-{uuid.uuid4().hex[:12]}"
        os.rename(d, gone)
        shutil.rmtree(gone, ignore_errors=True)
        return True

    def clusters(self) -> list[str]:
        """As cc-backend: every non-hidden directory."""
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []

    def job_keys(self) -> Iterator[str]:
        n = len(self.prefix)
        for cluster in self.clusters():
            for lvl1 in _subdirs(self.prefix + cluster):
                for lvl2 in _subdirs(lvl1):
                    for start in _subdirs(lvl2):
                        yield start[n:].replace(os.sep, "/")

    def job_size(self, job_key: str) -> int:
        try:
            with os.scandir(self.prefix + job_key) as it:
                return sum(e.stat().st_size for e in it if e.is_file())
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        pass


# -- SQLite -----------------------------------------------------------------------------------

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    cluster TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    meta_json BLOB NOT NULL,
    data_json BLOB,
    data_compressed BOOLEAN DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE(job_id, cluster, start_time)
);
CREATE INDEX IF NOT EXISTS idx_jobs_cluster ON jobs(cluster);
CREATE INDEX IF NOT EXISTS idx_jobs_start_time ON jobs(start_time);
CREATE INDEX IF NOT EXISTS idx_jobs_lookup ON jobs(cluster, job_id, start_time);
CREATE TABLE IF NOT EXISTS clusters (name TEXT PRIMARY KEY, config_json BLOB NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteStore:
    """The files of an archive as rows of cc-backend's SQLite archive tables.

    A few pooled connections (WAL mode, so the web process reads while the archiver
    writes).  ``updated_at`` is in seconds as upstream's; the cache stamp pairs it with
    the blob length, so a rewrite is noticed unless it has the same size in the same second.
    """

    kind = "sqlite"
    forkable = False

    def __init__(self, db_path: Path | str):
        self.db_path = Path(db_path)
        self.prefix = f"{self.db_path}#"
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._q("SELECT 1")  # create the schema now: a bad path fails at startup, not at the first job

    def _open(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(SQLITE_SCHEMA)
        return conn

    def _run(self, sql: str, params: tuple) -> tuple[list, int]:
        """Rows and row count of one statement on a pooled connection.

        A pool, not one connection per thread: Trio retires idle worker threads and starts
        new ones, and per-thread connections would pile up.
        """
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            cur = conn.execute(sql, params)
            rows, count = cur.fetchall(), cur.rowcount
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()
        return rows, count

    def _q(self, sql: str, params: tuple = ()) -> list:
        return self._run(sql, params)[0]

    def _one(self, sql: str, params: tuple = ()) -> tuple | None:
        rows = self._run(sql, params)[0]
        return rows[0] if rows else None

    def _x(self, sql: str, params: tuple = ()) -> int:
        return self._run(sql, params)[1]

    @staticmethod
    def _parse(key: str) -> tuple[str, tuple, str]:
        """(what, identity, file name) of a key: ('version'|'cluster'|'job', ...)."""
        if key == "version.txt":
            return "version", (), key
        parts = key.split("/")
        if len(parts) == 2 and parts[1] == "cluster.json":
            return "cluster", (parts[0],), parts[1]
        if len(parts) == 5:
            return "job", split_job_key("/".join(parts[:4])), parts[4]
        raise FileNotFoundError(f"{key}: no such file in a SQLite archive")

    def _job_row(self, ident: tuple, columns: str) -> tuple | None:
        cluster, job_id, start = ident
        return self._one(f"SELECT {columns} FROM jobs WHERE job_id = ? AND cluster = ? AND start_time = ?",
                         (job_id, cluster, start))

    def _file(self, key: str) -> tuple[bytes, int]:
        what, ident, name = self._parse(key)
        row: tuple | None
        if what == "version":
            row = self._one("SELECT value, 0 FROM metadata WHERE key = 'version'")
            row = None if row is None else (f"{row[0]}\n".encode(), 0)  # as version.txt reads
        elif what == "cluster":
            row = self._one("SELECT config_json, updated_at FROM clusters WHERE name = ?", ident)
        elif name == META:
            row = self._job_row(ident, "meta_json, updated_at")
        elif name in DATA_NAMES:
            row = self._job_row(ident, "data_json, data_compressed, updated_at")
            if row is None or row[0] is None or bool(row[1]) != (name == "data.json.gz"):
                row = None
            else:
                row = (row[0], row[2])
        else:
            row = None
        if row is None:
            raise FileNotFoundError(f"{self.prefix}{key}: not in the archive")
        blob = row[0] if isinstance(row[0], bytes) else str(row[0]).encode()
        return blob, int(row[1] or 0)

    def read(self, key: str) -> bytes:
        return self._file(key)[0]

    def stamp(self, key: str) -> tuple[int, int]:
        what, ident, name = self._parse(key)
        row = None
        if what == "job" and name == META:
            row = self._job_row(ident, "updated_at, length(meta_json)")
        elif what == "job" and name in DATA_NAMES:
            row = self._job_row(ident, "updated_at, length(data_json), data_compressed")
            if row is not None and (row[1] is None or bool(row[2]) != (name == "data.json.gz")):
                row = None
        else:
            blob, updated = self._file(key)
            return updated, len(blob)
        if row is None:
            raise FileNotFoundError(f"{self.prefix}{key}: not in the archive")
        return int(row[0]), int(row[1])

    def exists(self, key: str) -> bool:
        try:
            self._file(key)
        except FileNotFoundError:
            return False
        return True

    def put(self, key: str, blob: bytes) -> None:
        what, ident, name = self._parse(key)
        now = int(time.time())
        if what == "version":
            self._x("INSERT INTO metadata (key, value) VALUES ('version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (blob.decode().strip(),))
        elif what == "cluster":
            self._x("INSERT INTO clusters (name, config_json, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) "
                    "DO UPDATE SET config_json = excluded.config_json, updated_at = excluded.updated_at",
                    (ident[0], blob, now))
        elif name == META:
            cluster, job_id, start = ident
            n = self._x("UPDATE jobs SET meta_json = ?, updated_at = ? WHERE job_id = ? AND cluster = ? "
                        "AND start_time = ?", (blob, now, job_id, cluster, start))
            if n == 0:
                self._x("INSERT INTO jobs (job_id, cluster, start_time, meta_json, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (job_id, cluster, start, blob, now, now))
        else:
            raise ValueError(f"{key}: job data is written with the job (put_job)")

    def put_job(self, job_key: str, files: dict[str, bytes]) -> None:
        cluster, job_id, start = split_job_key(job_key)
        data_name = next((n for n in DATA_NAMES if n in files), None)
        data = files.get(data_name) if data_name else None
        now = int(time.time())
        self._x(
            "INSERT INTO jobs (job_id, cluster, start_time, meta_json, data_json, data_compressed, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id, cluster, start_time) DO UPDATE SET "
            "meta_json = excluded.meta_json, data_json = excluded.data_json, "
            "data_compressed = excluded.data_compressed, updated_at = excluded.updated_at",
            (job_id, cluster, start, files[META], data, data_name == "data.json.gz", now, now))

    def delete_job(self, job_key: str) -> bool:
        cluster, job_id, start = split_job_key(job_key)
        return self._x("DELETE FROM jobs WHERE job_id = ? AND cluster = ? AND start_time = ?",
                       (job_id, cluster, start)) > 0

    def clusters(self) -> list[str]:
        rows = self._q("SELECT name FROM clusters UNION SELECT DISTINCT cluster FROM jobs")
        return sorted(r[0] for r in rows)

    def job_keys(self) -> Iterator[str]:
        rows = self._q("SELECT cluster, job_id, start_time FROM jobs ORDER BY cluster, job_id, start_time")
        return (make_job_key(*r) for r in rows)

    def job_size(self, job_key: str) -> int:
        cluster, job_id, start = split_job_key(job_key)
        row = self._job_row((cluster, job_id, start), "length(meta_json) + coalesce(length(data_json), 0)")
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()


# -- S3 ---------------------------------------------------------------------------------------

class S3Store:
    """The file tree as objects of one bucket (pyarrow's S3 filesystem: signing, retries, multipart)."""

    kind = "s3"
    forkable = False

    def __init__(self, *, endpoint: str, bucket: str, access_key: str | None, secret_key: str | None,
                 region: str | None, use_path_style: bool):
        from pyarrow import fs

        scheme, host = "https", endpoint
        if "://" in endpoint:
            scheme, host = endpoint.split("://", 1)
        self._fs_mod = fs
        self.fs = fs.S3FileSystem(access_key=access_key, secret_key=secret_key, region=region or "us-east-1",
                                  scheme=scheme, endpoint_override=host.rstrip("/") or None,
                                  force_virtual_addressing=not use_path_style,
                                  connect_timeout=10, request_timeout=60)
        self.bucket = bucket
        self.prefix = f"s3://{bucket}/"

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def read(self, key: str) -> bytes:
        try:
            with self.fs.open_input_stream(self._path(key)) as f:
                return f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.prefix}{key}: not in the archive") from None
        except OSError as e:
            if "NoSuchKey" in str(e) or "does not exist" in str(e):
                raise FileNotFoundError(f"{self.prefix}{key}: not in the archive") from None
            raise

    def stamp(self, key: str) -> tuple[int, int]:
        info = self.fs.get_file_info(self._path(key))
        if info.type != self._fs_mod.FileType.File:
            raise FileNotFoundError(f"{self.prefix}{key}: not in the archive")
        return info.mtime_ns or 0, info.size or 0

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self._path(key)).type == self._fs_mod.FileType.File

    def put(self, key: str, blob: bytes) -> None:
        with self.fs.open_output_stream(self._path(key)) as f:
            f.write(blob)

    def put_job(self, job_key: str, files: dict[str, bytes]) -> None:
        for name, blob in files.items():
            if name != META:
                self.put(f"{job_key}/{name}", blob)
        for name in DATA_NAMES:  # a replaced job may have changed between data.json and data.json.gz
            if name not in files and self.exists(f"{job_key}/{name}"):
                self.fs.delete_file(self._path(f"{job_key}/{name}"))
        self.put(f"{job_key}/{META}", files[META])

    def delete_job(self, job_key: str) -> bool:
        if not self.exists(f"{job_key}/{META}"):
            return False
        self.fs.delete_file(self._path(f"{job_key}/{META}"))  # first: the job is gone for readers at once
        for name in DATA_NAMES:
            if self.exists(f"{job_key}/{name}"):
                self.fs.delete_file(self._path(f"{job_key}/{name}"))
        return True

    def _listing(self) -> list:
        sel = self._fs_mod.FileSelector(self.bucket, recursive=True, allow_not_found=True)
        return self.fs.get_file_info(sel)

    def clusters(self) -> list[str]:
        sel = self._fs_mod.FileSelector(self.bucket, recursive=False, allow_not_found=True)
        n = len(self.bucket) + 1
        return sorted(i.path[n:] for i in self.fs.get_file_info(sel)
                      if i.type == self._fs_mod.FileType.Directory and not i.path[n:].startswith("."))

    def job_keys(self) -> Iterator[str]:
        n = len(self.bucket) + 1
        keys = []
        for info in self._listing():
            key = info.path[n:]
            parts = key.split("/")
            if len(parts) == 5 and parts[4] == META and not any(p.startswith(".") for p in parts):
                keys.append(key[: -len(META) - 1])
        return iter(sorted(keys))

    def job_size(self, job_key: str) -> int:
        total = 0
        for name in (META, *DATA_NAMES):
            info = self.fs.get_file_info(self._path(f"{job_key}/{name}"))
            if info.type == self._fs_mod.FileType.File:
                total += info.size or 0
        return total

    def close(self) -> None:
        pass
