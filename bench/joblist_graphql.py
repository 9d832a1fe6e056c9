"""Job list latency of the GraphQL API: the first page (50 rows, with footprints) over 100,000 jobs.

The jobs are bulk-inserted straight into the installation's SQLite database with
``cc.db`` functions (200 users in 50 projects, start times over a year, 1 % running,
footprints on the finished ones, a tag on every 20th job).  Each case sends the query
cc-backend's job list view sends (job columns, resources, tags, user name, metadata,
footprint, count, hasNextPage) to the running web process and reports the server's
handler time from the ``Server-Timing`` header (authentication, SQL, GraphQL execution,
JSON encoding), plus the client round trip.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import orjson  # noqa: E402

from bench._common import finish_load, header, installation, median, percentile  # noqa: E402
from cc.db import Job, connect, transaction  # noqa: E402
from cc.db._jobs import insert_jobs  # noqa: E402
from cc.db._users import add_user  # noqa: E402
from tests.helpers import small_cluster  # noqa: E402

QUERY = """
query ($filter: [JobFilter!], $sorting: OrderByInput, $paging: PageRequest) {
  jobs(filter: $filter, order: $sorting, page: $paging) {
    items {
      id jobId user project cluster subCluster startTime duration numNodes numHWThreads numAcc walltime
      resources { hostname } SMT shared partition arrayJobId monitoringStatus state
      tags { id type scope name } userData { name } metaData footprint { name stat value }
    }
    count
    hasNextPage
  }
}
"""
CASES = [  # (label, user, variables)
    ("admin, all jobs, newest first", "admin",
     {"filter": [], "sorting": {"field": "startTime", "type": "col", "order": "DESC"}}),
    ("admin, cluster + state=completed", "admin",
     {"filter": [{"cluster": {"eq": "c1"}}, {"state": ["completed"]}],
      "sorting": {"field": "startTime", "type": "col", "order": "DESC"}}),
    ("admin, sorted by footprint flops_any_avg", "admin",
     {"filter": [], "sorting": {"field": "flops_any_avg", "type": "foot", "order": "DESC"}}),
    ("admin, last 7 days, sorted by duration", "admin",
     {"filter": [{"startTime": {"range": "last7d"}}], "sorting": {"field": "duration", "type": "col",
                                                                  "order": "DESC"}}),
    ("user u7 (own jobs only)", "u7",
     {"filter": [], "sorting": {"field": "startTime", "type": "col", "order": "DESC"}}),
]


def make_jobs(n: int, now: int, rng: random.Random) -> list[Job]:
    jobs = []
    for k in range(n):
        user = f"u{rng.randrange(200)}"
        nodes = rng.choice((1, 1, 1, 2, 4, 8, 16))
        start = now - rng.randrange(365 * 86400)
        running = rng.random() < 0.01
        duration = 0 if running else rng.randrange(60, 86400)
        hosts = [f"n{rng.randrange(1, 1000):04d}" for _ in range(nodes)]
        jobs.append(Job(
            job_id=1_000_000 + k, cluster="c1", subcluster="main", user=user, project=f"p{int(user[1:]) % 50}",
            start_time=start, resources=[{"hostname": h} for h in hosts], num_nodes=nodes, partition="main",
            duration=duration, walltime=86400, state="running" if running else rng.choice(
                ("completed", "completed", "completed", "failed", "cancelled", "timeout")),
            meta_data={"jobName": f"run-{k % 977}"}, num_hwthreads=8 * nodes, smt=1, submit_time=start - 60,
            monitoring_status=1 if running else 3, energy=0.0 if running else rng.random() * 100,
            footprint=None if running else {"cpu_load_avg": rng.random() * 100, "flops_any_avg": rng.random() * 100,
                                            "mem_bw_avg": rng.random() * 100},
        ))
    return jobs


def load(db_path: Path, n: int) -> float:
    rng = random.Random(42)
    now = int(time.time())
    t0 = time.perf_counter()
    conn = connect(db_path)
    try:
        transaction(conn, add_user, "admin", ["admin"], "pw-admin", "Admin")
        for u in range(200):
            transaction(conn, add_user, f"u{u}", ["user"], None, f"User {u}")
        jobs = make_jobs(n, now, rng)
        for start in range(0, n, 10_000):
            transaction(conn, insert_jobs, jobs[start:start + 10_000])

        finish_load(conn)
    finally:
        conn.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=40)
    args = ap.parse_args()
    header(f"GraphQL job list: first page of 50 with footprints over {args.jobs:,} jobs")
    with installation(clusters={"c1": small_cluster()}) as inst:
        secs = load(inst.cfg.db_path, args.jobs)
        print(f"   loaded {args.jobs:,} jobs into {inst.cfg.db_path.name} in {secs:.1f} s")
        with httpx.Client(base_url=inst.web, timeout=60) as client:
            for label, user, variables in CASES:
                token = inst.token(user, ["admin"] if user == "admin" else ["user"])
                body = orjson.dumps({"query": QUERY, "variables": {**variables,
                                                                   "paging": {"itemsPerPage": 50, "page": 1}}})
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                server, total = [], []
                for i in range(args.repeat + 5):
                    t = time.perf_counter()
                    r = client.post("/query", content=body, headers=headers)
                    elapsed = (time.perf_counter() - t) * 1000
                    doc = r.json()
                    if r.status_code != 200 or doc.get("errors"):
                        raise SystemExit(f"{label}: {r.status_code} {r.text[:500]}")
                    if i >= 5:  # warm-up: document cache, SQLite page cache
                        server.append(float(r.headers["server-timing"].split("dur=")[1]))
                        total.append(elapsed)
                rows = len(doc["data"]["jobs"]["items"])
                print(f"   {label:42s} rows {rows:2d} of {doc['data']['jobs']['count']:6d}: server p50 "
                      f"{median(server):6.1f} ms, p90 {percentile(server, 90):6.1f} ms; round trip p50 "
                      f"{median(total):6.1f} ms ({len(r.content) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
