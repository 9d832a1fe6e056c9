"""Job filters (GraphQL ``JobFilter`` semantics), visibility by role, ordering and paging → SQL.

Every value reaches SQL as a bound parameter; column names come from fixed tables
here, never from the request.  LIKE patterns escape ``%`` and ``_``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cc.db._model import JOB_STATES, SHARED

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # SQLite INTEGER; a larger Python int raises OverflowError
RANGES = {"last6h": 6 * 3600, "last24h": 24 * 3600, "last7d": 7 * 86400, "last30d": 30 * 86400}

STRING_COLUMNS = {
    "jobId": "job.job_id",
    "user": "job.hpc_user",
    "project": "job.project",
    "cluster": "job.cluster",
    "subCluster": "job.subcluster",
    "partition": "job.cluster_partition",
}
INT_RANGE_COLUMNS = {
    "duration": "job.duration",
    "numNodes": "job.num_nodes",
    "numAccelerators": "job.num_acc",
    "numHWThreads": "job.num_hwthreads",
}
SORT_COLUMNS = {  # GraphQL/camelCase names (cc-backend snake-cases them onto job columns)
    "id": "job.id",
    "startTime": "job.start_time",
    "duration": "job.duration",
    "walltime": "job.walltime",
    "numNodes": "job.num_nodes",
    "numHWThreads": "job.num_hwthreads",
    "numHwthreads": "job.num_hwthreads",
    "numAcc": "job.num_acc",
    "numAccelerators": "job.num_acc",
    "energy": "job.energy",
    "jobId": "job.job_id",
    "arrayJobId": "job.array_job_id",
    "submitTime": "job.submit_time",
    "user": "job.hpc_user",
    "project": "job.project",
    "cluster": "job.cluster",
    "subCluster": "job.subcluster",
    "partition": "job.cluster_partition",
    "state": "job.job_state",
    "jobState": "job.job_state",
    "monitoringStatus": "job.monitoring_status",
    "shared": "job.shared",
}


class FilterError(ValueError):
    """A filter, ordering or page request is malformed; the message names the field."""


def sql_int(value: Any, name: str) -> int:
    """An integer that SQLite can bind (signed 64 bits), else FilterError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FilterError(f"{name}: expected an integer, got {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise FilterError(f"{name}: {value} is out of range ({INT64_MIN}..{INT64_MAX})")
    return value


@dataclass
class Where:
    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(f"({c})" for c in self.clauses)) if self.clauses else ""


@dataclass
class Viewer:
    """Who is asking: decides which jobs are visible (cc-backend's SecurityCheck)."""

    username: str
    roles: tuple[str, ...]
    projects: tuple[str, ...] = ()

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def sees_all(self) -> bool:
        return self.roles == ("api",) or self.has("admin", "support")


def visibility(viewer: Viewer | None, where: Where) -> None:
    """Restrict ``where`` to the jobs ``viewer`` may see (None = internal caller, sees all)."""
    if viewer is None or viewer.sees_all:
        return
    if viewer.has("manager") and viewer.projects:
        marks = ",".join("?" * len(viewer.projects))
        where.add(f"job.project IN ({marks}) OR job.hpc_user = ?", *viewer.projects, viewer.username)
    elif viewer.has("manager", "user"):
        where.add("job.hpc_user = ?", viewer.username)
    else:
        where.add("0")  # no known role: nothing


def like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _string(expr: str, cond: Any, where: Where, name: str) -> None:
    if not isinstance(cond, dict):
        raise FilterError(f"{name}: expected an object like {{eq: ...}}")
    for op, value in cond.items():
        if value is None:
            continue
        if op == "in":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FilterError(f"{name}.in: expected a list of strings")
            if not value:
                where.add("0")
                continue
            where.add(f"{expr} IN ({','.join('?' * len(value))})", *value)
            continue
        if not isinstance(value, str):
            raise FilterError(f"{name}.{op}: expected a string")
        if op == "eq":
            where.add(f"{expr} = ?", value)
        elif op == "neq":
            where.add(f"{expr} IS NOT ?", value)
        elif op == "contains":
            where.add(f"{expr} LIKE ? ESCAPE '\\'", f"%{like_escape(value)}%")
        elif op == "startsWith":
            where.add(f"{expr} LIKE ? ESCAPE '\\'", f"{like_escape(value)}%")
        elif op == "endsWith":
            where.add(f"{expr} LIKE ? ESCAPE '\\'", f"%{like_escape(value)}")
        else:
            raise FilterError(f"{name}: unknown operator {op!r} (eq, neq, contains, startsWith, endsWith, in)")


def _ids(value: Any, name: str) -> list[int]:
    """Database ids (GraphQL ``ID``: numbers or digit strings)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, str) and v.strip().isdigit())):
            raise FilterError(f"{name}: {v!r} is not a database id")
        out.append(sql_int(int(v), name))
    return out


def _job_id(cond: Any, where: Where) -> None:
    """Job ids are numbers stored as integers: numeric eq/in compare as integers (index), the rest as text."""
    if isinstance(cond, dict):
        rest = dict(cond)
        eq, many = rest.pop("eq", None), rest.pop("in", None)
        if isinstance(eq, str) and eq.strip().isdigit() and int(eq) <= INT64_MAX:
            where.add("job.job_id = ?", int(eq))
        elif eq is not None:
            rest["eq"] = eq
        if isinstance(many, list) and all(isinstance(v, str) and v.strip().isdigit() and int(v) <= INT64_MAX
                                          for v in many):
            where.add(f"job.job_id IN ({','.join('?' * len(many))})" if many else "0", *map(int, many))
        elif many is not None:
            rest["in"] = many
        cond = rest
    _string("CAST(job.job_id AS TEXT)", cond, where, "jobId")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FilterError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, int):
        return sql_int(value, name)
    if value != value:
        raise FilterError(f"{name}: expected a number, got NaN")
    return value


def _range(expr: str, cond: Any, where: Where, name: str) -> None:
    """cc-backend's rule: a bound of 0 means open on that side."""
    if not isinstance(cond, dict):
        raise FilterError(f"{name}: expected {{from, to}}")
    lo = _number(cond.get("from", 0) or 0, f"{name}.from")
    hi = _number(cond.get("to", 0) or 0, f"{name}.to")
    if lo > 0 and hi > 0:
        where.add(f"{expr} BETWEEN ? AND ?", lo, hi)
    elif lo > 0:
        where.add(f"{expr} >= ?", lo)
    elif hi > 0:
        where.add(f"{expr} <= ?", hi)


MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: the largest time RFC 3339 can write


def parse_time(value: Any, name: str) -> int:
    """Unix seconds from an int or an RFC 3339 string (GraphQL ``Time``)."""
    if isinstance(value, bool):
        raise FilterError(f"{name}: expected a time")
    if isinstance(value, float) and value == value and abs(value) < 2**63:
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value <= MAX_TIME:
            raise FilterError(f"{name}: {value} is out of range (0..{MAX_TIME} unix seconds)")
        return value
    if isinstance(value, str) and len(value) <= 64:
        from datetime import datetime

        try:
            return parse_time(int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()), name)
        except (ValueError, OverflowError):
            pass
        if value.isdigit():
            return parse_time(int(value), name)
    raise FilterError(f"{name}: expected unix seconds or an RFC 3339 time, got {value!r}")


def _time(expr: str, cond: Any, where: Where, name: str, now: float) -> None:
    if not isinstance(cond, dict):
        raise FilterError(f"{name}: expected {{from, to, range}}")
    lo, hi, rng = cond.get("from"), cond.get("to"), cond.get("range")
    if lo is not None and hi is not None:
        where.add(f"{expr} BETWEEN ? AND ?", parse_time(lo, f"{name}.from"), parse_time(hi, f"{name}.to"))
    elif lo is not None:
        where.add(f"{expr} >= ?", parse_time(lo, f"{name}.from"))
    elif hi is not None:
        where.add(f"{expr} <= ?", parse_time(hi, f"{name}.to"))
    elif rng:
        if rng not in RANGES:
            raise FilterError(f"{name}.range: {rng!r} is not one of {', '.join(RANGES)}")
        where.add(f"{expr} >= ?", int(now) - RANGES[rng])


def apply_filter(f: dict[str, Any], where: Where, now: float | None = None) -> bool:
    """Add one ``JobFilter``'s conditions; returns True if it needs the jobtag join."""
    now = time.time() if now is None else now
    needs_tags = False
    for key, value in f.items():
        if value is None:
            continue
        if key == "jobId":
            _job_id(value, where)
        elif key in STRING_COLUMNS:
            _string(STRING_COLUMNS[key], value, where, key)
        elif key in INT_RANGE_COLUMNS:
            _range(INT_RANGE_COLUMNS[key], value, where, key)
        elif key == "energy":
            _range("job.energy", value, where, key)
        elif key == "startTime":
            _time("job.start_time", value, where, key, now)
        elif key == "state":
            states = value if isinstance(value, list) else [value]
            bad = [s for s in states if s not in JOB_STATES]
            if bad:
                raise FilterError(f"state: {bad[0]!r} is not a job state ({', '.join(JOB_STATES)})")
            if states:
                where.add(f"job.job_state IN ({','.join('?' * len(states))})", *states)
        elif key == "dbId":
            ids = _ids(value, key)
            where.add(f"job.id IN ({','.join('?' * len(ids))})" if ids else "0", *ids)
        elif key == "tags":  # any of the tags (cc-backend: OR)
            ids = _ids(value, key)
            if ids:
                where.add(f"job.id IN (SELECT jobtag.job_id FROM jobtag WHERE jobtag.tag_id IN "
                          f"({','.join('?' * len(ids))}))", *ids)
        elif key == "arrayJobId":
            where.add("job.array_job_id = ?", sql_int(value, "arrayJobId"))
        elif key == "shared":
            if value not in SHARED:
                raise FilterError(f"shared: expected one of {', '.join(SHARED)}")
            where.add("job.shared = ?", value)
        elif key == "jobName":
            _string("json_extract(job.meta_data, '$.jobName')", value, where, key)
        elif key == "schedule":
            if value == "interactive":
                where.add("json_extract(job.meta_data, '$.jobName') = 'interactive'")
            elif value == "batch":
                where.add("json_extract(job.meta_data, '$.jobName') IS NOT 'interactive'")
            else:
                raise FilterError("schedule: expected 'interactive' or 'batch'")
        elif key == "node":
            sub = Where()
            _string("json_extract(r.value, '$.hostname')", value, sub, key)
            if sub.clauses:
                where.add("EXISTS (SELECT 1 FROM json_each(job.resources) AS r WHERE "
                          + " AND ".join(sub.clauses) + ")", *sub.params)
        elif key == "metricStats":
            for i, item in enumerate(value):
                name = item.get("metricName") if isinstance(item, dict) else None
                if not is_footprint_name(name):
                    raise FilterError(f"metricStats[{i}].metricName: expected a metric name")
                _range(footprint_expr(name), item.get("range"), where, f"metricStats[{i}].range")
        elif key == "minRunningFor":
            where.add("job.job_state != 'running' OR job.start_time <= ?",
                      int(now) - min(sql_int(value, "minRunningFor"), int(now)))
        else:
            raise FilterError(f"unknown filter field {key!r}")
    return needs_tags


def build_where(filters: list[dict[str, Any]] | None, viewer: Viewer | None, now: float | None = None) -> Where:
    where = Where()
    visibility(viewer, where)
    for f in filters or []:
        if not isinstance(f, dict):
            raise FilterError("each filter must be an object")
        apply_filter(f, where, now)
    return where


def is_footprint_name(name: Any) -> bool:
    """Footprint keys are ``<metric>_<stat>``: letters, digits and underscores only (they go into SQL text)."""
    return isinstance(name, str) and bool(name) and name.replace("_", "").isalnum() and name.isascii()


def footprint_expr(name: str, column: str = "job.footprint") -> str:
    """The SQL of one footprint value; the per-key indexes (``footprint_indexes``) use the same expression."""
    if not is_footprint_name(name):
        raise FilterError(f"footprint: {name!r} is not a footprint name like 'flops_any_avg'")
    return f"json_extract({column}, '$.\"{name}\"')"


def order_clause(order: dict[str, Any] | None) -> str:
    """``{field, type: col|foot, order: ASC|DESC}`` → ORDER BY (default: start time, newest first)."""
    if not order:
        return " ORDER BY job.start_time DESC, job.id DESC"
    fld, kind = order.get("field"), order.get("type", "col")
    direction = str(order.get("order", "ASC")).upper()
    if direction not in ("ASC", "DESC"):
        raise FilterError("order.order: expected ASC or DESC")
    if kind == "col":
        if fld not in SORT_COLUMNS:
            raise FilterError(f"order.field: cannot sort by {fld!r} (one of {', '.join(SORT_COLUMNS)})")
        expr = SORT_COLUMNS[fld]
    elif kind in ("foot", "footprint"):
        if not is_footprint_name(fld):
            raise FilterError("order.field: expected a footprint name like 'flops_any_avg'")
        # jobs without that footprint value go last either way (cc-backend leaves them out);
        # an index per footprint key serves both directions (cc/db/_jobs.py footprint_indexes)
        expr = footprint_expr(fld)
        return f" ORDER BY {expr} {direction} NULLS LAST, job.id {direction}"
    else:
        raise FilterError("order.type: expected 'col' or 'foot'")
    return f" ORDER BY {expr} {direction}, job.id {direction}"


def page_clause(page: dict[str, Any] | None) -> tuple[str, list[int]]:
    if not page:
        return "", []
    try:
        per, num = int(page.get("itemsPerPage", 50)), int(page.get("page", 1))
    except (TypeError, ValueError, OverflowError):
        raise FilterError("page: itemsPerPage and page must be integers") from None
    if per == -1:
        return "", []
    if per < 1 or num < 1:
        raise FilterError("page: itemsPerPage and page must be >= 1")
    # SQLite binds 64-bit integers; a page that far out is empty anyway
    return " LIMIT ? OFFSET ?", [min(per, INT64_MAX), min((num - 1) * per, INT64_MAX)]
