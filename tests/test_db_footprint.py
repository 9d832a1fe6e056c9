"""Footprint indexes: job lists sorted or filtered by a footprint value use them (a real SQLite file)."""

from __future__ import annotations

import pytest

from cc.db import Job, Viewer, connect, migrate, transaction
from cc.db import _jobs as jobs
from cc.db._filters import FilterError, footprint_expr, order_clause

ADMIN = Viewer("admin", ("admin",), ())


@pytest.fixture
def conn(tmp_path):
    migrate(tmp_path / "job.db", backup=False)
    c = connect(tmp_path / "job.db")
    rows = []
    for k in range(300):
        fp = None if k % 10 == 0 else {"flops_any_avg": float((k * 37) % 101), "mem_bw_avg": float(k)}
        rows.append(Job(job_id=1000 + k, cluster="c1", subcluster="main", user="u", project="p", start_time=10_000 + k,
                        resources=[{"hostname": "n01"}], num_nodes=1, partition="main", duration=60, walltime=600,
                        state="completed", num_hwthreads=8, smt=1, monitoring_status=3, footprint=fp))
    transaction(c, jobs.insert_jobs, rows)
    yield c
    c.close()


def plan(conn, order) -> str:
    sql = "EXPLAIN QUERY PLAN SELECT job.id FROM job" + order_clause(order) + " LIMIT 10"
    return " ".join(str(r[-1]) for r in conn.execute(sql))


def test_sorting_by_a_footprint_value_uses_its_index(conn):
    order = {"field": "flops_any_avg", "type": "foot", "order": "DESC"}
    assert "jobs_footprint_flops_any_avg" not in plan(conn, order)
    assert transaction(conn, jobs.footprint_indexes, ["flops_any_avg", "mem_bw_avg", "bad key'); DROP TABLE job"]) == [
        "flops_any_avg", "mem_bw_avg"]
    assert transaction(conn, jobs.footprint_indexes, ["flops_any_avg"]) == []  # idempotent
    assert jobs.unindexed_footprint_keys(conn, ["flops_any_avg", "ipc_avg", "x'"]) == ["ipc_avg"]
    for direction in ("DESC", "ASC"):
        order = {"field": "flops_any_avg", "type": "foot", "order": direction}
        assert "USING INDEX jobs_footprint_flops_any_avg" in plan(conn, order), direction
        found = jobs.query_jobs(conn, None, ADMIN, order, {"itemsPerPage": 300, "page": 1})
        values = [j.footprint.get("flops_any_avg") if j.footprint else None for j in found]
        present = [v for v in values if v is not None]
        assert present == sorted(present, reverse=direction == "DESC")
        assert values[len(present):] == [None] * 30  # jobs without the value come last either way


def test_footprint_filter_and_bad_names(conn):
    transaction(conn, jobs.footprint_indexes, ["mem_bw_avg"])
    found = jobs.query_jobs(conn, [{"metricStats": [{"metricName": "mem_bw_avg", "range": {"from": 100, "to": 110}}]}],
                            ADMIN, None, None)
    assert sorted(j.footprint["mem_bw_avg"] for j in found) == [101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0,
                                                                 108.0, 109.0]
    with pytest.raises(FilterError, match="footprint name"):
        footprint_expr('x"); DROP TABLE job; --')
    with pytest.raises(FilterError, match="footprint name"):
        jobs.query_jobs(conn, None, ADMIN, {"field": "a b", "type": "foot", "order": "ASC"}, None)
