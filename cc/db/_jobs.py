"""Job queries and updates.  Every function takes a connection; callers choose the thread."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import orjson

from cc.db._filters import Viewer, build_where, footprint_expr, is_footprint_name, order_clause, page_clause
from cc.db._model import (
    JOB_COLUMNS,
    MONITORING_ARCHIVING_FAILED,
    MONITORING_ARCHIVING_SUCCESSFUL,
    MONITORING_RUNNING_OR_ARCHIVING,
    SELECT_JOB,
    Job,
)

DUPLICATE_WINDOW = 86400  # cc-backend refuses a jobId+cluster started again within a day
INSERT_JOB = (f"INSERT INTO job ({', '.join(JOB_COLUMNS[1:])}) "
              f"VALUES ({', '.join('?' * (len(JOB_COLUMNS) - 1))})")


def insert_job(conn: sqlite3.Connection, job: Job) -> int:
    cur = conn.execute(INSERT_JOB, job.row_values())
    job.id = int(cur.lastrowid)
    return job.id


def insert_jobs(conn: sqlite3.Connection, jobs: Iterable[Job]) -> int:
    """Bulk insert (init-db, import); duplicates of (jobId, cluster, startTime) are skipped."""
    cur = conn.executemany(INSERT_JOB.replace("INSERT INTO", "INSERT OR IGNORE INTO"),
                           (j.row_values() for j in jobs))
    return cur.rowcount


def find_job(conn: sqlite3.Connection, db_id: int, viewer: Viewer | None = None) -> Job | None:
    where = build_where([{"dbId": [db_id]}], viewer)
    row = conn.execute(SELECT_JOB + where.sql(), where.params).fetchone()
    return Job.from_row(row) if row else None


def find_jobs(conn: sqlite3.Connection, job_id: int, cluster: str | None = None,
              start_time: int | None = None) -> list[Job]:
    sql, params = SELECT_JOB + " WHERE job.job_id = ?", [job_id]
    if cluster is not None:
        sql += " AND job.cluster = ?"
        params.append(cluster)
    if start_time is not None:
        sql += " AND job.start_time = ?"
        params.append(start_time)
    return [Job.from_row(r) for r in conn.execute(sql + " ORDER BY job.start_time DESC", params)]


def recent_duplicate(conn: sqlite3.Connection, job: Job) -> Job | None:
    """A job with the same jobId and cluster started less than a day before this one."""
    row = conn.execute(SELECT_JOB + " WHERE job.job_id = ? AND job.cluster = ? AND ? - job.start_time < ?"
                       " ORDER BY job.start_time DESC LIMIT 1",
                       (job.job_id, job.cluster, job.start_time, DUPLICATE_WINDOW)).fetchone()
    return Job.from_row(row) if row else None


def query_jobs(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None, viewer: Viewer | None,
               order: dict[str, Any] | None = None, page: dict[str, Any] | None = None) -> list[Job]:
    where = build_where(filters, viewer)
    limit, lparams = page_clause(page)
    sql = SELECT_JOB + where.sql() + order_clause(order) + limit
    return [Job.from_row(r) for r in conn.execute(sql, where.params + lparams)]


def unindexed_footprint_keys(conn: sqlite3.Connection, keys: Iterable[str]) -> list[str]:
    """The footprint keys of ``keys`` that have no index yet (a read: callers write only if needed)."""
    existing = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job'")}
    return [k for k in sorted(set(keys)) if is_footprint_name(k) and f"jobs_footprint_{k}" not in existing]


def footprint_indexes(conn: sqlite3.Connection, keys: Iterable[str]) -> list[str]:
    """An index per footprint key (``flops_any_avg``...), so job lists sort and filter by it without
    reading every row's JSON; returns the keys indexed now (the others had one already)."""
    made = unindexed_footprint_keys(conn, keys)
    for key in made:
        conn.execute(f'CREATE INDEX IF NOT EXISTS "jobs_footprint_{key}" ON job ({footprint_expr(key, "footprint")})')
    return made


def count_jobs(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None, viewer: Viewer | None) -> int:
    where = build_where(filters, viewer)
    return conn.execute("SELECT count(*) FROM job" + where.sql(), where.params).fetchone()[0]


def stop_job(conn: sqlite3.Connection, db_id: int, state: str, duration: int, monitoring_status: int) -> None:
    conn.execute("UPDATE job SET job_state = ?, duration = ?, monitoring_status = ? WHERE id = ?",
                 (state, duration, monitoring_status, db_id))


def update_running_durations(conn: sqlite3.Connection, now: float | None = None) -> int:
    """cc-backend's duration worker: keep ``duration`` of running jobs current for sorting/filtering."""
    now = int(time.time() if now is None else now)
    return conn.execute("UPDATE job SET duration = ? - start_time WHERE job_state = 'running'", (now,)).rowcount


def edit_meta(conn: sqlite3.Connection, db_id: int, key: str, value: str) -> dict[str, str] | None:
    row = conn.execute("SELECT meta_data FROM job WHERE id = ?", (db_id,)).fetchone()
    if row is None:
        return None
    meta = orjson.loads(row[0]) if row[0] else {}
    meta[key] = value
    conn.execute("UPDATE job SET meta_data = ? WHERE id = ?", (orjson.dumps(meta).decode(), db_id))
    return meta


def delete_job(conn: sqlite3.Connection, db_id: int) -> bool:
    return conn.execute("DELETE FROM job WHERE id = ?", (db_id,)).rowcount > 0


OMIT_TAGGED = ("none", "all", "user")


def delete_jobs_before(conn: sqlite3.Connection, ts: int, omit_tagged: str = "none") -> int:
    """cc-backend's rule: ``all`` keeps every tagged job, ``user`` those with tags other than app/jobClass."""
    sql = "DELETE FROM job WHERE start_time < ?"
    if omit_tagged == "all":
        sql += " AND NOT EXISTS (SELECT 1 FROM jobtag WHERE jobtag.job_id = job.id)"
    elif omit_tagged == "user":
        sql += (" AND NOT EXISTS (SELECT 1 FROM jobtag JOIN tag ON tag.id = jobtag.tag_id WHERE "
                "jobtag.job_id = job.id AND tag.tag_type NOT IN ('app', 'jobClass'))")
    elif omit_tagged != "none":
        raise ValueError(f"omit_tagged must be one of {', '.join(OMIT_TAGGED)}, got {omit_tagged!r}")
    return conn.execute(sql, (ts,)).rowcount


def used_nodes(conn: sqlite3.Connection, ts: int) -> dict[str, list[str]]:
    """Cluster -> hosts of running jobs that started before ``ts``."""
    rows = conn.execute("SELECT DISTINCT job.cluster, json_extract(r.value, '$.hostname') FROM job, "
                        "json_each(job.resources) AS r WHERE job.job_state = 'running' AND job.start_time < ? "
                        "ORDER BY 1, 2", (ts,))
    out: dict[str, list[str]] = {}
    for cluster, host in rows:
        out.setdefault(cluster, []).append(host)
    return out


def running_jobs_on(conn: sqlite3.Connection, cluster: str, host: str) -> list[Job]:
    sql = (SELECT_JOB + " WHERE job.cluster = ? AND job.job_state = 'running' AND EXISTS "
           "(SELECT 1 FROM json_each(job.resources) AS r WHERE json_extract(r.value, '$.hostname') = ?)")
    return [Job.from_row(r) for r in conn.execute(sql, (cluster, host))]


# -- the archiver's queue -------------------------------------------------------------------

def archive_queue(conn: sqlite3.Connection, now: float | None = None, limit: int = 32) -> list[Job]:
    """Stopped jobs waiting to be archived whose retry time has come, oldest stop first."""
    now = int(time.time() if now is None else now)
    sql = (SELECT_JOB + " LEFT JOIN job_archive_status AS s ON s.job_id = job.id "
           "WHERE job.monitoring_status = ? AND job.job_state <> 'running' AND COALESCE(s.next_attempt, 0) <= ? "
           "ORDER BY job.start_time + job.duration LIMIT ?")
    return [Job.from_row(r) for r in conn.execute(sql, (MONITORING_RUNNING_OR_ARCHIVING, now, limit))]


def queue_length(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM job WHERE monitoring_status = ? AND job_state <> 'running'",
                        (MONITORING_RUNNING_OR_ARCHIVING,)).fetchone()[0]


def mark_archived(conn: sqlite3.Connection, db_id: int, footprint: dict[str, float],
                  energy_footprint: dict[str, float], energy: float) -> None:
    conn.execute("UPDATE job SET monitoring_status = ?, footprint = ?, energy_footprint = ?, energy = ? "
                 "WHERE id = ?", (MONITORING_ARCHIVING_SUCCESSFUL, orjson.dumps(footprint).decode(),
                                  orjson.dumps(energy_footprint).decode(), energy, db_id))
    conn.execute("DELETE FROM job_archive_status WHERE job_id = ?", (db_id,))


def mark_archive_failure(conn: sqlite3.Connection, db_id: int, error: str, next_attempt: int | None,
                         now: float | None = None) -> int:
    """Record a failed attempt; ``next_attempt=None`` gives up (monitoring status 'archiving failed')."""
    now = int(time.time() if now is None else now)
    conn.execute("INSERT INTO job_archive_status (job_id, attempts, last_error, last_attempt, next_attempt) "
                 "VALUES (?, 1, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET attempts = attempts + 1, "
                 "last_error = excluded.last_error, last_attempt = excluded.last_attempt, "
                 "next_attempt = excluded.next_attempt", (db_id, error, now, next_attempt or 0))
    if next_attempt is None:
        conn.execute("UPDATE job SET monitoring_status = ? WHERE id = ?", (MONITORING_ARCHIVING_FAILED, db_id))
    return conn.execute("SELECT attempts FROM job_archive_status WHERE job_id = ?", (db_id,)).fetchone()[0]


def archive_status(conn: sqlite3.Connection, db_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT attempts, last_error, last_attempt, next_attempt FROM job_archive_status "
                       "WHERE job_id = ?", (db_id,)).fetchone()
    if row is None:
        return None
    return {"attempts": row[0], "lastError": row[1], "lastAttempt": row[2], "nextAttempt": row[3] or None}
