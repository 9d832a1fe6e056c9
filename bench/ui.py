"""Web UI in headless Chromium: time from navigation to "all plots drawn".

Two pages against the real product (supervisor, shared memory, GraphQL):

* the job view of a running 64-node job with 10 metrics (1 h at 10 s: 64 series x 360
  points per plot, node scope) -- target < 1 s;
* the job list with 50 running jobs (1-2 nodes, 1 h at 10 s) and 4 metric plots per row
  (200 plots) -- target < 1.5 s.

"All plots drawn" is what the page marks itself: ``document.body.dataset.plotsReadyAt`` =
``performance.now()`` (milliseconds since the navigation started) when the last plot
was drawn.  Each page is loaded ``--runs`` times after one warm-up load (static files
are then revalidated with ETags, as for any returning user); the first load after login
is reported separately.  No resampling is configured, so every point is sent and drawn.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import cluster_doc, header, installation  # noqa: E402
from cc.db import connect, transaction  # noqa: E402
from cc.db._users import add_user  # noqa: E402
from tests.graphql_helpers import rest  # noqa: E402
from tests.ui_helpers import Browser, browser_available, ingest, login, metric_lines  # noqa: E402

METRICS = [("cpu_load", "node", "avg"), ("mem_used", "node", None), ("net_bw", "node", "sum"),
           ("file_bw", "node", "sum"), ("cpu_power", "socket", "sum"), ("mem_bw", "socket", "sum"),
           ("flops_any", "core", "sum"), ("cpu_user", "core", "avg"), ("clock", "core", "avg"),
           ("ipc", "core", "avg")]
LIST_METRICS = ["cpu_load", "flops_any", "mem_bw", "mem_used"]
SPAN = 3600
READY = "return document.body.dataset.plotsReady === '1' ? Number(document.body.dataset.plotsReadyAt) : null"


def start_job(inst, job_id: int, user: str, hosts: list[str], start: int) -> int:
    doc = {"jobId": job_id, "user": user, "project": "bench", "cluster": "bench", "partition": "main",
           "numNodes": len(hosts), "numHwthreads": 4 * len(hosts), "startTime": start, "walltime": 86400,
           "resources": [{"hostname": h} for h in hosts], "metaData": {"jobName": f"bench-{job_id}"}}
    r = rest(inst, "POST", "/api/jobs/start_job/", user="admin", json=doc)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def measure(b: Browser, url: str, runs: int, check: str) -> tuple[float, list[float], dict]:
    times = []
    details = {}
    for i in range(runs + 1):
        b.get(url)
        t = b.wait(READY, timeout=120, what=url)
        details = b.js(check)
        times.append(float(t))
        if i == 0:
            time.sleep(0.5)
    queries = b.js("return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/query'))"
                   ".map((e) => Math.round(e.duration))")
    details["graphql_ms"] = queries
    return times[0], times[1:], details


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="measured loads per page (after one warm-up)")
    ap.add_argument("--list-jobs", type=int, default=50)
    ap.add_argument("--big-nodes", type=int, default=64)
    args = ap.parse_args(argv)
    missing = browser_available()
    if missing:
        print(f"skipped: {missing}")
        return 0
    header("UI: job view (64 nodes x 10 metrics) and job list (50 jobs x 4 plots) in headless Chromium")
    cluster = cluster_doc("bench", METRICS, sockets=2, cores_per_socket=2, timestep=10)
    with installation(clusters={"bench": cluster}, ingest_workers=2, retention="2h", memory_cap_gb=1.0) as inst:
        conn = connect(inst.cfg.db_path)
        try:
            transaction(conn, add_user, "admin", ["admin", "api"], "pw-admin", "Bench Admin")
        finally:
            conn.close()
        now = int(time.time())
        t = time.perf_counter()
        big = [f"b{i:04d}" for i in range(args.big_nodes)]
        lines = metric_lines(cluster, big, now - SPAN, now)
        list_hosts: list[list[str]] = []
        k = 0
        for j in range(args.list_jobs):
            n = 1 + j % 2
            list_hosts.append([f"l{k + i:04d}" for i in range(n)])
            k += n
        lines += metric_lines(cluster, [h for hs in list_hosts for h in hs], now - SPAN, now, metrics=LIST_METRICS,
                              seed=1)
        ingest(inst, lines, "bench", chunk=50000)
        print(f"   ingested {len(lines):,} lines in {time.perf_counter() - t:.1f} s")
        big_id = start_job(inst, 1, "bigjob", big, now - SPAN)
        for j, hosts in enumerate(list_hosts):
            start_job(inst, 100 + j, "lister", hosts, now - SPAN + j)
        b = Browser()
        try:
            login(b, inst.web, "admin", "pw-admin")
            rows = []
            first, times, det = measure(
                b, f"{inst.web}/monitoring/job/{big_id}", args.runs,
                "return {plots: document.querySelectorAll('.plot-card .metric-plot canvas').length,"
                "series: document.querySelector('[data-metric=cpu_load] .metric-plot').ccPlot.series.length,"
                "points: document.querySelector('[data-metric=cpu_load] .metric-plot').ccPlot.length}")
            assert det["plots"] == len(METRICS) and det["series"] == args.big_nodes, det
            rows.append((f"job view, {args.big_nodes} nodes x {len(METRICS)} metrics", first, times, 1000, det))
            first, times, det = measure(
                b, f"{inst.web}/monitoring/jobs/?user=lister", args.runs,
                "return {plots: document.querySelectorAll('[data-job-row] .metric-plot canvas').length,"
                "rows: document.querySelectorAll('[data-job-row]').length}")
            assert det["rows"] == args.list_jobs and det["plots"] == args.list_jobs * len(LIST_METRICS), det
            rows.append((f"job list, {args.list_jobs} jobs x {len(LIST_METRICS)} plots", first, times, 1500, det))
            errors = b.console_errors()
        finally:
            b.quit()
    print(f"   {args.runs} loads per page after a warm-up; times from navigation start to the last plot drawn")
    ok = True
    for label, first, times, target, det in rows:
        med = statistics.median(times)
        ok = ok and med < target
        print(f"   {label:<36} first {first:7.0f} ms   median {med:7.0f} ms   min {min(times):7.0f} ms   "
              f"max {max(times):7.0f} ms   target < {target} ms: {'met' if med < target else 'MISSED'}")
        print(f"      {det['plots']} plots; GraphQL requests of the last load (ms): {det['graphql_ms']}")
    if errors:
        print("   browser console errors:", *errors, sep="\n      ")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
