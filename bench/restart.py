"""Recovery time after ``kill -9`` of the store process and of the web process.

Shape (default): 1000 hosts x 20 node-scope metrics at 60 s, 48 h retention, the rings filled
completely through the shared-memory API (20,000 series, 57.6 M points, ~460 MB).  A known
series (host n0500, metric m07, the last 100 minutes) is queried through HTTP
``POST /api/query`` on the web address and its values compared with what was written.

Each round: wait until the store and web processes have run for more than 30 s (the
supervisor's HEALTHY_AFTER, so its restart delay is back at the minimum 0.1 s rather than
the crash-loop backoff), then

* ``kill -9`` the store process; measure the time until the query answers correctly (queries
  do not go through the store process, so this should be immediate) and until the new store
  process answers a ping on ``var/run/store.sock``;
* ``kill -9`` the web process (the one serving queries); measure the time until the query
  answers correctly again.  The listening socket stays open in the supervisor, so requests
  made meanwhile wait in the backlog instead of being refused.

The time at which the supervisor started the replacement (from ``/proc/PID/stat``) splits the
figure into "supervisor noticed and spawned" and "new process ready".
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402

from bench._common import (  # noqa: E402
    add_set_option,
    cluster_doc,
    effective_settings,
    header,
    installation,
    median,
    parse_settings,
    run_main,
    wait_children_up,
)

TARGET = 2.0
HEALTHY_AFTER = 30.0  # supervisor/_manager.py


def value_of(series_index: np.ndarray | int, bins: np.ndarray | int):
    return ((np.asarray(series_index) * 31 + np.asarray(bins)) % 1000) / 4.0


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def proc_start_time(pid: int) -> float | None:
    """Start time of a process in seconds since boot (CLOCK_BOOTTIME; clock-tick resolution)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=20, help="node-scope metrics per host")
    ap.add_argument("--retention", type=int, default=48, help="hours held (and retention)")
    ap.add_argument("--rounds", type=int, default=3, help="kills of each process (median reported)")
    ap.add_argument("--no-wait", action="store_true",
                    help=f"do not wait {HEALTHY_AFTER:.0f} s between kills (then the supervisor's crash backoff "
                         "doubles the restart delay each round)")
    add_set_option(ap)
    args = ap.parse_args(argv)
    settings = parse_settings(args.set)
    f = 60
    retention = args.retention * 3600
    cap = math.ceil(retention / f) + 1
    metrics = [f"m{i:02d}" for i in range(args.metrics)]
    hosts = [f"n{i:04d}" for i in range(args.hosts)]
    nseries = len(hosts) * len(metrics)

    header("restart: kill -9 of the store and the web process, time until /api/query answers correctly")
    clusters = {"c1": cluster_doc("c1", [(m, "node", "avg") for m in metrics], sockets=2, cores_per_socket=2,
                                  timestep=f)}
    with installation(clusters=clusters, ingest_workers=1, retention=f"{args.retention}h",
                      memory_cap_gb=max(1.0, 2 * nseries * cap * 8 / 1e9),
                      settings=settings) as inst:
        print(f"   config: {effective_settings(inst)}")
        from cc import ipc
        from cc.shm import SeriesKey, Store

        store = Store.attach(inst.instance)
        try:
            t0 = time.perf_counter()
            keys = [SeriesKey("c1", h, m, "node", "") for h in hosts for m in metrics]
            sids = store.resolve(keys, [f] * len(keys))
            assert (sids >= 0).all(), "series rejected"
            now = int(time.time())
            b1 = now // f
            bins = np.arange(-(-(now - retention) // f), b1 + 1, dtype=np.int64)
            idx = np.arange(len(sids))
            chunk = 2000
            written = 0
            for i in range(0, len(sids), chunk):
                s = sids[i:i + chunk]
                vals = value_of(np.tile(idx[i:i + chunk], len(bins)), np.repeat(bins, len(s)))
                ws = store.write(np.tile(s, len(bins)), np.repeat(bins * f, len(s)), vals, now=now)
                assert ws.written == len(s) * len(bins), ws
                written += ws.written
            print(f"   {nseries:,} series ({len(hosts)} hosts x {len(metrics)} node metrics, {f} s), "
                  f"{written:,} points held ({args.retention} h), filled through the shared-memory API in "
                  f"{time.perf_counter() - t0:.1f} s")
        finally:
            store.close()

        host, metric = hosts[len(hosts) // 2], metrics[min(7, len(metrics) - 1)]
        k = hosts.index(host) * len(metrics) + metrics.index(metric)
        qb = np.arange(b1 - 99, b1 + 1)
        expected = value_of(k, qb).tolist()
        body = orjson.dumps({"cluster": "c1", "from": int(qb[0] * f), "to": int((qb[-1] + 1) * f),
                             "queries": [{"metric": metric, "host": host}]})
        headers = {"Authorization": f"Bearer {inst.token()}"}

        def answers_correctly() -> bool:
            try:
                r = httpx.post(inst.web + "/api/query", content=body, headers=headers, timeout=10,
                               trust_env=False)
            except httpx.HTTPError:
                return False
            if r.status_code != 200:
                return False
            res = r.json()["results"]
            return bool(res and res[0] and res[0][0].get("data") == expected)

        def wait_correct(t_kill: float, limit: float = 60.0) -> float:
            while not answers_correctly():
                if time.perf_counter() - t_kill > limit:
                    raise RuntimeError(f"/api/query not answering correctly {limit:.0f} s after the kill:\n"
                                       + inst.output())
                time.sleep(0.01)
            return time.perf_counter() - t_kill

        def new_pid(name: str, old: int, limit: float = 60.0) -> int:
            deadline = time.time() + limit
            while time.time() < deadline:
                st = inst.status()
                for p in (st or {}).get("processes", []):
                    if p["name"] == name and p["pid"] and p["pid"] != old:
                        return p["pid"]
                time.sleep(0.05)
            raise RuntimeError(f"no new {name} process after {limit:.0f} s")

        assert answers_correctly(), "the known value does not come back before any kill"
        lat = []
        for _ in range(5):
            t = time.perf_counter()
            answers_correctly()
            lat.append(time.perf_counter() - t)
        print(f"   query {host}/{metric} (100 points) answers correctly; normal latency "
              f"{median(lat) * 1e3:.1f} ms (median of 5, new connection each)")

        store_q, store_back, store_spawn, web_q, web_spawn = [], [], [], [], []
        sock = inst.cfg.run_dir / "store.sock"
        for r in range(args.rounds):
            if not args.no_wait:
                wait_children_up(inst, min_uptime=HEALTHY_AFTER + 1, timeout=300)

            old = inst.pid_of("store")
            t_kill_boot = boottime()
            t_kill = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            store_q.append(wait_correct(t_kill))
            while True:
                try:
                    rep = ipc.request_sync(sock, {"cmd": "ping"}, timeout=2)
                    if rep.get("ok") and rep.get("pid") != old:
                        break
                except (ipc.IPCError, OSError):
                    pass
                if time.perf_counter() - t_kill > 60:
                    raise RuntimeError("store process not back after 60 s:\n" + inst.output())
                time.sleep(0.01)
            store_back.append(time.perf_counter() - t_kill)
            st0 = proc_start_time(rep["pid"])
            store_spawn.append(st0 - t_kill_boot if st0 else float("nan"))

            old = inst.pid_of("web")
            t_kill_boot = boottime()
            t_kill = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            web_q.append(wait_correct(t_kill))
            st0 = proc_start_time(new_pid("web", old))
            web_spawn.append(st0 - t_kill_boot if st0 else float("nan"))
            print(f"   round {r + 1}: store killed -> query correct after {store_q[-1]:.3f} s, new store "
                  f"process answers after {store_back[-1]:.3f} s (spawned +{store_spawn[-1]:.2f} s); "
                  f"web killed -> query correct after {web_q[-1]:.3f} s (spawned +{web_spawn[-1]:.2f} s)",
                  flush=True)
        st = inst.status()
        restarts = {p["name"]: p["restarts"] for p in st["processes"]} if st else {}

    def line(label: str, xs: list[float]) -> str:
        return f"{label}: median {median(xs):.3f} s (runs {', '.join(f'{x:.3f}' for x in xs)})"

    print(f"   results (median of {args.rounds}; target < {TARGET} s):")
    print("     " + line("store kill -> /api/query correct", store_q)
          + f"  [{'met' if median(store_q) < TARGET else 'NOT met'}]")
    print("     " + line("store kill -> new store process answers", store_back)
          + f"  [{'met' if median(store_back) < TARGET else 'NOT met'}]")
    print("     " + line("web kill -> /api/query correct", web_q)
          + f"  [{'met' if median(web_q) < TARGET else 'NOT met'}]"
          + f"  of which until the supervisor spawned the new web process: median {median(web_spawn):.2f} s")
    print(f"     restarts counted by the supervisor: {restarts}")
    return 0


if __name__ == "__main__":
    run_main(main)
