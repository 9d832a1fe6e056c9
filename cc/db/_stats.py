"""Aggregates and listings behind the GraphQL API: job statistics, histograms, node states.

Semantics follow cc-backend's ``repository/stats.go`` and ``node.go`` (the column
formulas, bin layouts and rounding are theirs), with the visibility of
:mod:`cc.db._filters` applied to every query.  Where cc-backend has an obvious slip
we do the evident intent instead; each such place says so.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

import orjson

from cc.db._filters import FilterError, Viewer, Where, _string, build_where, footprint_expr
from cc.db._model import SELECT_JOB, Job

GROUP_COLUMNS = {"USER": "job.hpc_user", "PROJECT": "job.project", "CLUSTER": "job.cluster",
                 "SUBCLUSTER": "job.subcluster"}
SORT_FIELDS = {"TOTALWALLTIME": "totalWalltime", "TOTALJOBS": "totalJobs", "TOTALUSERS": "totalUsers",
               "TOTALNODES": "totalNodes", "TOTALNODEHOURS": "totalNodeHours", "TOTALCORES": "totalCores",
               "TOTALCOREHOURS": "totalCoreHours", "TOTALACCS": "totalAccs", "TOTALACCHOURS": "totalAccHours"}
STAT_FIELDS = ("totalJobs", "totalUsers", "totalWalltime", "totalNodes", "totalNodeHours", "totalCores",
               "totalCoreHours", "totalAccs", "totalAccHours", "runningJobs", "shortJobs")
# numDurationBins -> (bin count, bin width in seconds); "24h" is cc-backend's default: 24 one-hour bins
DURATION_BINS = {"1m": (60, 60), "10m": (72, 600), "1h": (48, 3600), "6h": (12, 21600), "12h": (14, 43200),
                 "24h": (24, 3600)}
METRIC_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _duration(now: int) -> str:
    """A running job's duration is how long it has run so far (the stored value lags)."""
    return f"(CASE WHEN job.job_state = 'running' THEN {int(now)} - job.start_time ELSE job.duration END)"


def _columns(now: int, short: int, fields: set[str] | None) -> list[str]:
    dur = _duration(now)
    exprs = {
        "totalJobs": "COUNT(*)",
        "totalUsers": "COUNT(DISTINCT job.hpc_user)",
        "totalWalltime": f"CAST(ROUND(SUM({dur}) / 3600.0) AS INT)",
        "totalNodes": "CAST(SUM(job.num_nodes) AS INT)",
        "totalNodeHours": f"CAST(ROUND(SUM({dur} * job.num_nodes) / 3600.0) AS INT)",
        "totalCores": "CAST(SUM(job.num_hwthreads) AS INT)",
        "totalCoreHours": f"CAST(ROUND(SUM({dur} * job.num_hwthreads) / 3600.0) AS INT)",
        "totalAccs": "CAST(SUM(job.num_acc) AS INT)",
        "totalAccHours": f"CAST(ROUND(SUM({dur} * job.num_acc) / 3600.0) AS INT)",
        "runningJobs": "COUNT(CASE WHEN job.job_state = 'running' THEN 1 END)",
        "shortJobs": f"COUNT(CASE WHEN {dur} < {int(short)} THEN 1 END)",
    }
    return [f"{exprs[f] if fields is None or f in fields or f == 'totalJobs' else '0'} AS {f}" for f in STAT_FIELDS]


def job_statistics(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None, viewer: Viewer | None, *,
                   group_by: str | None = None, sort_by: str | None = None, page: dict[str, Any] | None = None,
                   fields: set[str] | None = None, short: int = 300,
                   now: float | None = None) -> list[dict[str, Any]]:
    """cc-backend's JobsStats / JobsStatsGrouped: totals per group (or one row over all jobs).

    ``fields`` limits the aggregates computed (the others read 0); sorting by a
    ``SortByAggregate`` is descending, as in cc-backend.  Unlike cc-backend's ungrouped
    variant, totalNodes/totalCores/totalAccs are filled in there too.
    """
    now = int(time.time() if now is None else now)
    where = build_where(filters, viewer, now)
    cols = _columns(now, short, fields)
    if group_by is None:
        row = conn.execute(f"SELECT {', '.join(cols)} FROM job{where.sql()}", where.params).fetchone()
        out = {"id": "", "name": ""}
        out.update({f: int(v or 0) for f, v in zip(STAT_FIELDS, row, strict=True)})
        return [out]
    if group_by not in GROUP_COLUMNS:
        raise FilterError(f"groupBy: expected one of {', '.join(GROUP_COLUMNS)}")
    col = GROUP_COLUMNS[group_by]
    sql = f"SELECT {col}, {', '.join(cols)} FROM job{where.sql()} GROUP BY {col}"
    if sort_by is not None:
        if sort_by not in SORT_FIELDS:
            raise FilterError(f"sortBy: expected one of {', '.join(SORT_FIELDS)}")
        sql += f" ORDER BY {SORT_FIELDS[sort_by]} DESC, {col}"
    else:
        sql += f" ORDER BY {col}"
    params = list(where.params)
    if page and page.get("itemsPerPage", -1) != -1:
        per, num = int(page["itemsPerPage"]), int(page.get("page", 1))
        if per < 1 or num < 1:
            raise FilterError("page: itemsPerPage and page must be >= 1 (or itemsPerPage -1 for all)")
        sql += " LIMIT ? OFFSET ?"
        params += [per, (num - 1) * per]
    stats = []
    for row in conn.execute(sql, params):
        if row[0] is None:
            continue
        d = {"id": str(row[0]), "name": ""}
        d.update({f: int(v or 0) for f, v in zip(STAT_FIELDS, row[1:], strict=True)})
        stats.append(d)
    if group_by == "USER" and stats:
        names = user_names(conn, [s["id"] for s in stats])
        for s in stats:
            s["name"] = names.get(s["id"], "")
    return stats


def user_names(conn: sqlite3.Connection, usernames: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(usernames), 500):
        chunk = usernames[start:start + 500]
        rows = conn.execute(f"SELECT username, name FROM hpc_user WHERE username IN ({','.join('?' * len(chunk))})",
                            chunk)
        out.update({u: n or "" for u, n in rows})
    return out


def users_by_name(conn: sqlite3.Connection, usernames: list[str]) -> dict[str, dict[str, str]]:
    """GraphQL ``User`` objects (username, name, email) of those that exist."""
    out: dict[str, dict[str, str]] = {}
    names = sorted(set(usernames))
    for start in range(0, len(names), 500):
        chunk = names[start:start + 500]
        rows = conn.execute(f"SELECT username, name, email FROM hpc_user WHERE username IN "
                            f"({','.join('?' * len(chunk))})", chunk)
        out.update({u: {"username": u, "name": n or "", "email": e or ""} for u, n, e in rows})
    return out


# -- histograms --------------------------------------------------------------------------------

def _grouped(conn: sqlite3.Connection, value: str, where: Where) -> list[tuple[int, int]]:
    sql = f"SELECT {value} AS value, COUNT(*) FROM job{where.sql()} GROUP BY value ORDER BY value"
    return [(int(v or 0), int(c)) for v, c in conn.execute(sql, where.params)]


def histograms(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None, viewer: Viewer | None,
               duration_bins: str = "1h", now: float | None = None) -> dict[str, list[dict[str, int]]]:
    """histDuration (zero-padded bins of ``duration_bins``), histNumNodes, histNumCores, histNumAccs."""
    if duration_bins not in DURATION_BINS:
        raise FilterError(f"numDurationBins: {duration_bins!r} is not one of {', '.join(DURATION_BINS)}")
    now = int(time.time() if now is None else now)
    count, size = DURATION_BINS[duration_bins]
    where = build_where(filters, viewer, now)
    # bin n (value n*size) holds durations in [(n-1)*size, n*size)
    found = dict(_grouped(conn, f"{_duration(now)} / {size} + 1", where))
    hist_duration = [{"value": n * size, "count": found.get(n, 0)} for n in range(1, count + 1)]

    def points(col: str) -> list[dict[str, int]]:
        return [{"value": v, "count": c} for v, c in _grouped(conn, f"COALESCE({col}, 0)", where)]

    return {"histDuration": hist_duration, "histNumNodes": points("job.num_nodes"),
            "histNumCores": points("job.num_hwthreads"), "histNumAccs": points("job.num_acc")}


def metric_bins(peak: float, bins: int) -> list[dict[str, int]]:
    """Empty bins 1..bins over [0, peak] with cc-backend's integer bounds."""
    step = int(peak) // bins
    return [{"bin": i, "count": 0, "min": step * (i - 1), "max": step * i} for i in range(1, bins + 1)]


def footprint_histogram(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None, viewer: Viewer | None,
                        key: str, peak: float, bins: int) -> list[dict[str, int]]:
    """Jobs per bin of a footprint value (``<metric>_<stat>``) normalised to ``peak``.

    Values above peak (or missing) are not counted; a value equal to peak lands in the
    last bin (cc-backend's rule).
    """
    if not METRIC_NAME.match(key):
        raise FilterError(f"metrics: {key!r} is not a metric name")
    if bins < 1:
        raise FilterError("numMetricBins: must be >= 1")
    points = metric_bins(peak, bins)
    if peak <= 0:
        return points
    where = build_where(filters, viewer)
    v = footprint_expr(key)
    where.add(f"{v} IS NOT NULL AND {v} <= ?", peak)
    sql = (f"SELECT CAST((CASE WHEN {v} = ? THEN ? * 0.999999999 ELSE {v} END) / ? * ? AS INTEGER) + 1 AS bin, "
           f"COUNT(*) FROM job{where.sql()} GROUP BY bin")
    for b, c in conn.execute(sql, [peak, peak, peak, bins, *where.params]):
        if 1 <= b <= bins:
            points[b - 1]["count"] = c
    return points


# -- jobs ------------------------------------------------------------------------------------------

def concurrent_jobs(conn: sqlite3.Connection, job: Job, viewer: Viewer | None, now: float | None = None,
                    slack: int = 200) -> list[tuple[int, int]]:
    """(db id, jobId) of other jobs on any of this job's hosts overlapping its run by more than ``slack`` s.

    cc-backend's FindConcurrentJobs, except that the job itself is not listed and every
    host counts (cc-backend looks at the first host only).
    """
    now = int(time.time() if now is None else now)
    stop = now if job.state == "running" else job.start_time + job.duration
    hosts = job.hosts
    if not hosts:
        return []
    where = build_where(None, viewer)
    where.add("job.cluster = ?", job.cluster)
    where.add("job.id != ?", job.id)
    where.add(f"EXISTS (SELECT 1 FROM json_each(job.resources) AS r WHERE json_extract(r.value, '$.hostname') IN "
              f"({','.join('?' * len(hosts))}))", *hosts)
    where.add("(job.job_state = 'running' AND job.start_time <= ?) OR (job.job_state != 'running' AND "
              "job.start_time < ? AND job.start_time + job.duration > ?)",
              stop - slack, stop - slack, job.start_time + slack)
    sql = f"SELECT job.id, job.job_id FROM job{where.sql()} ORDER BY job.start_time, job.id"
    return [(r[0], r[1]) for r in conn.execute(sql, where.params)]


def partitions(conn: sqlite3.Connection, cluster: str) -> list[str]:
    rows = conn.execute("SELECT DISTINCT cluster_partition FROM job WHERE cluster = ? AND cluster_partition IS NOT "
                        "NULL ORDER BY 1", (cluster,))
    return [r[0] for r in rows]


def allocated_nodes(conn: sqlite3.Connection, cluster: str) -> dict[str, set[str]]:
    """Subcluster -> hosts with at least one running job."""
    out: dict[str, set[str]] = {}
    rows = conn.execute("SELECT subcluster, resources FROM job WHERE job_state = 'running' AND cluster = ?",
                        (cluster,))
    for sub, raw in rows:
        hosts = out.setdefault(sub, set())
        for r in orjson.loads(raw or "[]"):
            hosts.add(r.get("hostname"))
    return out


def jobs_page(conn: sqlite3.Connection, sql_where: Where, order: str, limit: int | None,
              offset: int) -> list[Job]:
    sql = SELECT_JOB + sql_where.sql() + order
    params = list(sql_where.params)
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    return [Job.from_row(r) for r in conn.execute(sql, params)]


# -- nodes -----------------------------------------------------------------------------------------

NODE_STRING_COLUMNS = {"hostname": "node.hostname", "cluster": "node.cluster", "subCluster": "node.subcluster"}
_LATEST = ("FROM node JOIN node_state AS s ON s.node_id = node.id WHERE s.id = (SELECT s2.id FROM node_state AS s2 "
           "WHERE s2.node_id = node.id ORDER BY s2.time_stamp DESC, s2.id DESC LIMIT 1)")


def _node_where(filters: list[dict[str, Any]] | None) -> tuple[str, list[Any]]:
    where = Where()
    for i, f in enumerate(filters or []):
        for key, value in f.items():
            if value is None:
                continue
            if key in NODE_STRING_COLUMNS:
                _string(NODE_STRING_COLUMNS[key], value, where, f"filter[{i}].{key}")
            elif key == "schedulerState":
                where.add("s.node_state = ?", value)
            elif key == "healthState":
                where.add("s.health_state = ?", value)
            elif key == "timeStart":
                where.add("s.time_stamp >= ?", int(value))
            else:
                raise FilterError(f"filter[{i}]: unknown node filter field {key!r}")
    return "".join(f" AND ({c})" for c in where.clauses), where.params


NODE_KEYS = ("id", "hostname", "cluster", "subCluster", "metaData", "timeStamp", "schedulerState", "healthState",
             "healthData", "cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning")


def query_nodes(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None,
                page: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Nodes with their newest state (cc-backend's QueryNodes), by hostname."""
    cond, params = _node_where(filters)
    sql = ("SELECT node.id, node.hostname, node.cluster, node.subcluster, node.meta_data, s.time_stamp, "
           "s.node_state, s.health_state, s.health_metrics, s.cpus_allocated, s.memory_allocated, "
           f"s.gpus_allocated, s.jobs_running {_LATEST}{cond} ORDER BY node.hostname")
    if page and page.get("itemsPerPage", -1) != -1:
        sql += " LIMIT ? OFFSET ?"
        params = params + [int(page["itemsPerPage"]), (int(page["page"]) - 1) * int(page["itemsPerPage"])]
    out = []
    for row in conn.execute(sql, params):
        d = dict(zip(NODE_KEYS, row, strict=True))
        d["metaData"] = _json_or(d["metaData"], None)
        d["healthData"] = _json_or(d["healthData"], None)
        out.append(d)
    return out


def count_nodes(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None) -> int:
    cond, params = _node_where(filters)
    return conn.execute(f"SELECT COUNT(*) {_LATEST}{cond}", params).fetchone()[0]


def count_node_states(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None,
                      column: str) -> list[dict[str, Any]]:
    """Nodes per newest scheduler state (``node_state``) or health state (``health_state``)."""
    if column not in ("node_state", "health_state"):
        raise ValueError(column)
    cond, params = _node_where(filters)
    rows = conn.execute(f"SELECT s.{column}, COUNT(*) {_LATEST}{cond} GROUP BY s.{column} ORDER BY 1", params)
    return [{"state": r[0], "count": r[1]} for r in rows]


def node_state_history(conn: sqlite3.Connection, filters: list[dict[str, Any]] | None,
                       column: str) -> list[dict[str, Any]]:
    """Per state: how many nodes reported it at each timestamp (cc-backend's CountStatesTimed)."""
    if column not in ("node_state", "health_state"):
        raise ValueError(column)
    cond, params = _node_where(filters)
    sql = (f"SELECT s.{column}, s.time_stamp, COUNT(*) FROM node JOIN node_state AS s ON s.node_id = node.id "
           f"WHERE 1{cond} GROUP BY s.{column}, s.time_stamp ORDER BY s.{column}, s.time_stamp")
    out: dict[str, dict[str, Any]] = {}
    for state, ts, n in conn.execute(sql, params):
        d = out.setdefault(state, {"state": state, "counts": [], "times": []})
        d["counts"].append(n)
        d["times"].append(ts)
    return list(out.values())


def node_by_id(conn: sqlite3.Connection, node_id: int) -> dict[str, Any] | None:
    sql = ("SELECT node.id, node.hostname, node.cluster, node.subcluster, node.meta_data, s.time_stamp, "
           "s.node_state, s.health_state, s.health_metrics, s.cpus_allocated, s.memory_allocated, "
           f"s.gpus_allocated, s.jobs_running {_LATEST} AND node.id = ?")
    row = conn.execute(sql, (node_id,)).fetchone()
    if row is None:
        return None
    d = dict(zip(NODE_KEYS, row, strict=True))
    d["metaData"] = _json_or(d["metaData"], None)
    d["healthData"] = _json_or(d["healthData"], None)
    return d


def _json_or(raw: Any, default: Any) -> Any:
    if not raw:
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return default


def hosts_matching(names: list[str], contains: str) -> list[str]:
    """Hosts whose name contains ``contains`` (cc-backend's node list name filter)."""
    return [n for n in names if contains in n] if contains else list(names)
