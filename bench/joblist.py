"""REST job list over 1,000,000 jobs: ``GET /api/jobs/`` against the same query in raw sqlite3.

The jobs are bulk-inserted straight into the installation's SQLite database with ``cc.db``
(200 users in 50 projects, start times over a year, 1 % running, footprints on the finished
ones, every 20th job tagged; ``ANALYZE`` afterwards, as a long-running database has it).  The
finished jobs of the pages asked for get a ``meta.json`` in the job archive, because the API
serves an archived job's statistics from there (the first request of a case reads them, the
archive's in-process cache serves the rest, as in production).

Each case is ``GET /api/jobs/?cluster=c1&state=completed&start-time=FROM-TO&items-per-page=50
&page=P`` as an admin (every job visible), sorted by start time (the API's order).  The baseline,
measured in the same run and interleaved with the API requests, is the same selection in raw
sqlite3 on its own connection to the same file::

    SELECT * FROM job WHERE cluster = ? AND job_state = ? AND start_time BETWEEN ? AND ?
    ORDER BY start_time DESC LIMIT 50 OFFSET ?

with all rows fetched.  Reported: the API's round trip (httpx, keep-alive) and its server
time (``Server-Timing``: authentication, SQL, tags, statistics, JSON) against the raw query,
p50 and p90.  Target: API p50 <= 1.5x the raw query.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench._common import finish_load, header, installation, median, percentile  # noqa: E402
from cc.db import Job, connect, transaction  # noqa: E402
from cc.db._jobs import insert_jobs  # noqa: E402
from cc.db._users import add_user  # noqa: E402
from tests.archive_gen import write_meta  # noqa: E402
from tests.helpers import small_cluster  # noqa: E402

TARGET_RATIO = 1.5
PER_PAGE = 50
RAW_SQL = ("SELECT * FROM job WHERE cluster = ? AND job_state = ? AND start_time BETWEEN ? AND ? "
           "ORDER BY start_time DESC LIMIT ? OFFSET ?")
STATES = ("completed", "completed", "completed", "failed", "cancelled", "timeout")


def job_chunks(n: int, now: int, chunk: int = 20_000):
    """Generated jobs in chunks (1,000,000 Job objects at once would take gigabytes)."""
    rng = random.Random(42)
    for base in range(0, n, chunk):
        jobs = []
        for k in range(base, min(n, base + chunk)):
            user = rng.randrange(200)
            nodes = rng.choice((1, 1, 1, 2, 4, 8, 16))
            start = now - rng.randrange(365 * 86400)
            running = rng.random() < 0.01
            jobs.append(Job(
                job_id=2_000_000 + k, cluster="c1", subcluster="main", user=f"u{user}", project=f"p{user % 50}",
                start_time=start, resources=[{"hostname": f"n{rng.randrange(1, 1000):04d}"} for _ in range(nodes)],
                num_nodes=nodes, partition="main", duration=0 if running else rng.randrange(60, 86400),
                walltime=86400, state="running" if running else rng.choice(STATES),
                meta_data={"jobName": f"run-{k % 977}"}, num_hwthreads=8 * nodes, smt=1, submit_time=start - 60,
                monitoring_status=1 if running else 3, energy=0.0 if running else rng.random() * 100,
                footprint=None if running else {"cpu_load_avg": rng.random() * 100,
                                                "flops_any_avg": rng.random() * 100,
                                                "mem_bw_avg": rng.random() * 100}))
        yield jobs


def load(db_path: Path, n: int, now: int) -> float:
    t0 = time.perf_counter()
    conn = connect(db_path)
    try:
        transaction(conn, add_user, "admin", ["admin"], "pw-admin", "Admin")
        for jobs in job_chunks(n, now):
            transaction(conn, insert_jobs, jobs)
        finish_load(conn)
    finally:
        conn.close()
    return time.perf_counter() - t0


def write_archive_metas(raw: sqlite3.Connection, archive: Path, params: tuple) -> int:
    """meta.json (with statistics) for the archived jobs of one page, where the API looks for them."""
    cols = [d[0] for d in raw.execute(RAW_SQL, params).description]
    n = 0
    for row in raw.execute(RAW_SQL, params).fetchall():
        r = dict(zip(cols, row, strict=True))
        if r["monitoring_status"] != 3:
            continue
        stats = {m: {"unit": {"base": ""}, "avg": 50.0, "min": 10.0, "max": 90.0}
                 for m in ("cpu_load", "flops_any", "mem_bw")}
        write_meta(archive, {"jobId": r["job_id"], "cluster": r["cluster"], "startTime": r["start_time"],
                             "user": r["hpc_user"], "project": r["project"], "statistics": stats})
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=40, help="timed requests per case (after 5 warm-up)")
    args = ap.parse_args(argv)
    header(f"REST job list: GET /api/jobs/ over {args.jobs:,} jobs vs raw sqlite3")
    now = int(time.time())
    cases = [  # (label, start-time range in days, page)
        ("cluster + completed + last 7 days, page 1", 7, 1),
        ("cluster + completed + last 30 days, page 1", 30, 1),
        ("cluster + completed + last 30 days, page 20", 30, 20),
    ]
    ok = True
    with installation(clusters={"c1": small_cluster()}) as inst:
        secs = load(inst.cfg.db_path, args.jobs, now)
        print(f"   loaded {args.jobs:,} jobs into {inst.cfg.db_path.name} in {secs:.1f} s")
        raw = sqlite3.connect(f"file:{inst.cfg.db_path}?mode=ro", uri=True)
        token = inst.token("admin", ["admin"])
        try:
            with httpx.Client(base_url=inst.web, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
                for label, days, page in cases:
                    frm = now - days * 86400
                    params = ("c1", "completed", frm, now, PER_PAGE, (page - 1) * PER_PAGE)
                    metas = write_archive_metas(raw, inst.cfg.archive_path, params)
                    url = (f"/api/jobs/?cluster=c1&state=completed&start-time={frm}-{now}"
                           f"&items-per-page={PER_PAGE}&page={page}")
                    want = [r[0] for r in raw.execute(RAW_SQL, params).fetchall()]
                    got = client.get(url)
                    got.raise_for_status()
                    ids = [j["id"] for j in got.json()["jobs"]]
                    assert ids == want, f"{label}: the API returned other jobs than the raw query"
                    assert all(j.get("statistics") for j in got.json()["jobs"]), "statistics missing"
                    t_api, t_srv, t_raw = [], [], []
                    for rep in range(args.repeat + 5):
                        t = time.perf_counter()
                        r = client.get(url)
                        dt_api = time.perf_counter() - t
                        assert r.status_code == 200, r.text
                        srv = float(r.headers["Server-Timing"].split("dur=")[1]) / 1000
                        t = time.perf_counter()
                        rows = raw.execute(RAW_SQL, params).fetchall()
                        dt_raw = time.perf_counter() - t
                        assert len(rows) == len(want)
                        if rep >= 5:
                            t_api.append(dt_api)
                            t_srv.append(srv)
                            t_raw.append(dt_raw)
                    m_raw = median(t_raw)
                    ratio, sratio = median(t_api) / m_raw, median(t_srv) / m_raw
                    ok &= ratio <= TARGET_RATIO
                    print(f"   {label}: {len(want)} rows ({metas} archived meta.json), {args.repeat} requests")
                    print(f"     raw sqlite3          p50 {m_raw * 1000:7.2f} ms  p90 {percentile(t_raw, 90) * 1000:7.2f} ms")
                    print(f"     API server time      p50 {median(t_srv) * 1000:7.2f} ms  p90 "
                          f"{percentile(t_srv, 90) * 1000:7.2f} ms   server/raw {sratio:.2f}")
                    print(f"     API round trip       p50 {median(t_api) * 1000:7.2f} ms  p90 "
                          f"{percentile(t_api, 90) * 1000:7.2f} ms   round trip/raw {ratio:.2f}  "
                          f"[target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}]")
        finally:
            raw.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
