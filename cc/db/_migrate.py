"""Versioned migrations of the job database (SQL files in ``schemas/sql``).

Version numbers follow cc-backend's (golang-migrate's ``schema_migrations`` table), so
an existing cc-backend ``job.db`` of version 10 or 11 is recognised and upgraded in
place after a backup copy.  Versions 12 (the archiver's queue) and 13 (server-side web
sessions) are ours; every step is idempotent (``IF NOT EXISTS``), so each runs from any
older version.  :func:`revert` goes one of our versions down (``<version>_*.down.sql``); below 12 the
versions are cc-backend's, whose own ``-revert-db`` takes over.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cc.db._conn import connect

SCHEMA_VERSION = 13
OLDEST_CC_VERSION = 10
SQL_DIR = Path(__file__).resolve().parents[2] / "schemas" / "sql"


class MigrationError(Exception):
    pass


@dataclass
class MigrationResult:
    from_version: int | None
    to_version: int
    backup: Path | None


def _sql(name: str) -> str:
    return (SQL_DIR / name).read_text()


def db_version(conn: sqlite3.Connection) -> int | None:
    """The schema version, or None for an empty database."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_migrations" in tables:
        row = conn.execute("SELECT version, dirty FROM schema_migrations LIMIT 1").fetchone()
        if row is None:
            return None if "job" not in tables else 0
        if row[1]:
            raise MigrationError(f"database is marked dirty at version {row[0]} (an earlier migration failed); "
                                 "restore the backup copy and migrate again")
        return int(row[0])
    if "job" in tables:
        raise MigrationError("database has a 'job' table but no schema_migrations table: "
                             "not a cc-backend database of a known version")
    return None


def _set_version(conn: sqlite3.Connection, version: int) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool)")
    conn.execute("DELETE FROM schema_migrations")
    conn.execute("INSERT INTO schema_migrations (version, dirty) VALUES (?, 0)", (version,))


def _backup(path: Path, version: int) -> Path:
    target = path.with_name(f"{path.name}.v{version}-{time.strftime('%Y%m%d-%H%M%S')}.bak")
    src = sqlite3.connect(str(path))
    try:
        dst = sqlite3.connect(str(target))
        with dst:
            src.backup(dst)
        dst.close()
    finally:
        src.close()
    return target


def check_version(path: str | Path) -> int | None:
    """The version of an existing database file (None if it does not exist or is empty)."""
    p = Path(path)
    if not p.exists():
        return None
    conn = connect(p)
    try:
        return db_version(conn)
    finally:
        conn.close()


def migrate(path: str | Path, *, backup: bool = True,
            progress: Callable[[int, int], None] | None = None) -> MigrationResult:
    """Create the database or bring it to :data:`SCHEMA_VERSION` (``progress(done, total)`` per statement)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(p)
    try:
        version = db_version(conn)
        if version == SCHEMA_VERSION:
            return MigrationResult(version, version, None)
        if version is not None and version > SCHEMA_VERSION:
            raise MigrationError(f"database version {version} is newer than this software supports "
                                 f"({SCHEMA_VERSION})")
        if version is not None and version < OLDEST_CC_VERSION:
            raise MigrationError(f"database version {version} is too old: upgrade it to version "
                                 f"{OLDEST_CC_VERSION} or 11 with cc-backend -migrate-db first")
        copy = _backup(p, version) if (version is not None and backup) else None
        conn.execute("BEGIN IMMEDIATE")
        try:
            _apply(conn, version, progress)
            _set_version(conn, SCHEMA_VERSION)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return MigrationResult(version, SCHEMA_VERSION, copy)
    finally:
        conn.close()


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript would commit our transaction)."""
    out, buf = [], []
    for line in script.splitlines():
        stripped = line.split("--", 1)[0]
        buf.append(stripped)
        if stripped.rstrip().endswith(";") and sqlite3.complete_statement("\n".join(buf)):
            stmt = "\n".join(buf).strip()
            if stmt.strip(";").strip():
                out.append(stmt)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        out.append(rest)
    return out


def _plan(version: int | None) -> list[str]:
    """The statements that bring a database of ``version`` (None: new) to the current schema, in order."""
    out: list[str] = []
    if version is None:
        out += _statements(_sql("011_baseline.sql"))
    elif version <= 11:
        # cc-backend keeps running jobs in job_cache until they stop; we keep them in job.
        cols = ("job_id, cluster, subcluster, submit_time, start_time, hpc_user, project, cluster_partition, "
                "array_job_id, duration, walltime, job_state, meta_data, resources, num_nodes, num_hwthreads, "
                "num_acc, smt, shared, monitoring_status, energy, energy_footprint, footprint")
        out += [f"INSERT OR IGNORE INTO job ({cols}) SELECT {cols} FROM job_cache", "DELETE FROM job_cache"]
    if version is None or version < 12:
        out += _statements(_sql("011_indexes.sql")) + _statements(_sql("012_archive_queue.sql"))
    return out + _statements(_sql("013_sessions.sql"))


def _apply(conn: sqlite3.Connection, version: int | None,
           progress: Callable[[int, int], None] | None = None) -> None:
    plan = _plan(version)
    for i, stmt in enumerate(plan, 1):
        conn.execute(stmt)
        if progress is not None:
            progress(i, len(plan))


DOWN = {13: "013_sessions.down.sql", 12: "012_archive_queue.down.sql"}  # version -> script leading to version-1


def revert(path: str | Path, *, backup: bool = True) -> MigrationResult:
    """One migration down (cc-backend's ``-revert-db``), after a backup copy."""
    p = Path(path)
    if not p.exists():
        raise MigrationError("no database to revert")
    conn = connect(p)
    try:
        version = db_version(conn)
        if version is None:
            raise MigrationError("the database is empty: nothing to revert")
        if version not in DOWN:
            raise MigrationError(f"version {version} is cc-backend's: revert it with cc-backend -revert-db"
                                 if version <= 11 else f"no down-migration from version {version}")
        copy = _backup(p, version) if backup else None
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _statements(_sql(DOWN[version])):
                conn.execute(stmt)
            _set_version(conn, version - 1)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return MigrationResult(version, version - 1, copy)
    finally:
        conn.close()
