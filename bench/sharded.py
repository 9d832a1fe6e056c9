"""A sharded deployment's cost per component, and the query latency of an external store vs the built-in one.

Deployment (default shape): 1000 nodes x 20 node-scope metrics at 60 s, split over two clusters of 500 nodes
(``ca``, ``cb``), each held by its own store installation (``cc-supervise run``, 1 ingest worker) subscribed
to its cluster's subject on one nats-server (``hpc.ca``, ``hpc.cb``, ``cluster-tag``); one front installation
(job database, UI, archiver, 1 ingest worker) has ``metric-store-external`` naming both stores.  Collectors
are simulated by this script: first ``--history`` of points per series published on the cluster's subject
(``--transport http``: posted to the store's ``/api/write``), then, during the ``--steady`` phase, one point
per series every timestep.  During
the steady phase a "user" asks the front every ``--view-every`` seconds for a job view (GraphQL ``jobMetrics``
of a 64-node job on ``ca``, all 20 metrics) and a node list page (``nodeMetricsList`` of ``cb``, 50 nodes,
20 metrics, the last hour).

Reported per component and process: RSS, private memory (``Pss - Pss_Shmem`` + page tables, as
``bench/memory.py``), shared memory of the installation (``/dev/shm``), and CPU over the steady phase
(utime + stime from ``/proc/PID/stat``, as % of one core).

Latency, same front, same run: after the steady phase the front's own built-in store gets a third cluster
``cz`` of the same shape (written to the front's ingest address) with a 64-node job on it; then ``--reps``
interleaved rounds of the same GraphQL ``jobMetrics`` request for the ``ca`` job (metrics from store-ca over
HTTP) and for the ``cz`` job (metrics from the front's shared memory).  The figure is the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import orjson  # noqa: E402

from bench._common import (  # noqa: E402
    RawHTTP,
    add_set_option,
    cluster_doc,
    header,
    installation,
    median,
    parse_settings,
    percentile,
    run_main,
    wait_children_up,
)
from tests.graphql_helpers import add_users  # noqa: E402
from tests.nats_server import NatsServer  # noqa: E402

BATCH = 5000
NATS_BATCH = 1000  # lines per NATS message (~50 KB, well below the server's 1 MB max_payload)
JOB_NODES = 64
JOB_METRICS = ("query($id: ID!, $m: [String!]) { jobMetrics(id: $id, metrics: $m, scopes: [node]) "
               "{ name metric { series { hostname data } } } }")
NODE_LIST = ("query($from: Time!, $to: Time!) { nodeMetricsList(cluster: \"cb\", subCluster: \"\", "
             "stateFilter: \"all\", nodeFilter: \"\", from: $from, to: $to, page: {itemsPerPage: 50, page: 1}) "
             "{ totalNodes items { host metrics { name metric { series { data } } } } } }")


def hosts_of(cluster: str, n: int) -> list[str]:
    return [f"{cluster[-1]}{i:04d}" for i in range(1, n + 1)]


def value(h: int, m: int, ts: int) -> float:
    return float((h * 31 + m * 7 + ts // 60) % 1000) / 4.0


def lines_for(cluster: str | None, hosts: list[str], metrics: list[str], stamps: list[int]) -> list[bytes]:
    """Node-scope line protocol; without ``cluster`` no cluster tag (a NATS subscription's cluster-tag adds it)."""
    tag = f",cluster={cluster}" if cluster else ""
    return [f"{m}{tag},hostname={h},type=node value={value(hi, mi, ts)} {ts}".encode()
            for ts in stamps for hi, h in enumerate(hosts) for mi, m in enumerate(metrics)]


def publish_all(url: str, subject: str, rows: list[bytes]) -> float:
    """Publish ``rows`` on ``subject`` in messages of NATS_BATCH lines; seconds until the server has them all."""
    import trio

    from cc.nats import NatsClient, parse_nats

    async def run() -> None:
        async with NatsClient(parse_nats({"address": url}), name="bench-collectors") as nc:
            if not await nc.wait_connected(10):
                raise RuntimeError(f"no connection to {url}")
            await nc.publish_many(subject, [b"\n".join(rows[i:i + NATS_BATCH])
                                            for i in range(0, len(rows), NATS_BATCH)], flush_timeout=60)

    t = time.perf_counter()
    trio.run(run)
    return time.perf_counter() - t


def written(inst) -> int:
    r = httpx.get(inst.web + "/api/debug", headers={"Authorization": f"Bearer {inst.token()}"}, timeout=30)
    return int(r.json()["counters"]["points_written"])


def wait_written(inst, n: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while (got := written(inst)) < n:
        if time.time() > deadline:
            raise RuntimeError(f"{inst.web}: {got:,} of {n:,} points written after {timeout:.0f} s")
        time.sleep(0.2)


def post_all(inst, rows: list[bytes]) -> float:
    """POST ``rows`` to the installation's ingest address in batches; seconds taken."""
    host, port = inst.ingest.removeprefix("http://").rsplit(":", 1)
    token = inst.token("collector", ["api"])
    conn = RawHTTP(host, int(port))
    t = time.perf_counter()
    try:
        for i in range(0, len(rows), BATCH):
            req = RawHTTP.build("POST", host, int(port), "/api/write", b"\n".join(rows[i:i + BATCH]),
                                {"Authorization": f"Bearer {token}"})
            status, body = conn.roundtrip(req)
            if status != 200:
                raise RuntimeError(f"ingest into {inst.ingest}: HTTP {status}: {body[:300]!r}")
    finally:
        conn.close()
    return time.perf_counter() - t


# -- per-process figures -------------------------------------------------------------------

def processes(inst) -> list[tuple[str, int]]:
    st = wait_children_up(inst)
    return [("supervisor", int(st["supervisor"]["pid"]))] + [(p["name"], int(p["pid"])) for p in st["processes"]]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> tuple[int, int]:
    """(RSS, private = Pss - Pss_Shmem + page tables) in bytes."""
    roll = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Rss", "Pss", "Pss_Shmem"):
            roll[k] = int(v.split()[0]) * 1024
    pte = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmPTE:"):
            pte = int(line.split()[1]) * 1024
    return roll["Rss"], roll["Pss"] - roll["Pss_Shmem"] + pte


def shm_bytes(inst) -> int:
    return sum(os.stat(p).st_blocks * 512 for p in Path("/dev/shm").glob(f"cc-{inst.instance}-*"))


# -- the deployment ------------------------------------------------------------------------

def gql(client: httpx.Client, token: str, query: str, variables: dict) -> tuple[float, float]:
    """(round trip s, server time ms) of one GraphQL request that must succeed."""
    t = time.perf_counter()
    r = client.post("/query", content=orjson.dumps({"query": query, "variables": variables}),
                    headers={"Authorization": f"Bearer {token}"})
    dt = time.perf_counter() - t
    doc = r.json()
    if r.status_code != 200 or doc.get("errors"):
        raise RuntimeError(f"GraphQL failed: {r.status_code} {r.text[:500]}")
    server = float(r.headers.get("server-timing", "app;dur=0").split("dur=")[1])
    return dt, server


def start_job(front, job_id: int, cluster: str, hosts: list[str], start: int) -> int:
    r = httpx.post(front.web + "/api/jobs/start_job/", headers={"Authorization": f"Bearer {front.token('adapter', ['api'])}"},
                   content=orjson.dumps({"jobId": job_id, "user": "alice", "project": "p1", "cluster": cluster,
                                         "partition": "main", "numNodes": len(hosts), "numHwthreads": 8 * len(hosts),
                                         "startTime": start, "walltime": 86400,
                                         "resources": [{"hostname": h} for h in hosts]}), timeout=60)
    if r.status_code != 201:
        raise RuntimeError(f"start_job: {r.status_code} {r.text}")
    return r.json()["id"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000, help="nodes in all (half per store)")
    ap.add_argument("--metrics", type=int, default=20, help="node-scope metrics per node")
    ap.add_argument("--timestep", type=int, default=60, help="seconds between points of a series")
    ap.add_argument("--history", type=int, default=2, help="hours of points written before the steady phase")
    ap.add_argument("--steady", type=int, default=180, help="seconds of steady ingest and viewing")
    ap.add_argument("--view-every", type=float, default=5.0, help="seconds between the user's views")
    ap.add_argument("--reps", type=int, default=20, help="rounds of the latency comparison")
    ap.add_argument("--transport", choices=("nats", "http"), default="nats", help="how collectors reach the stores")
    add_set_option(ap)
    args = ap.parse_args(argv)
    header("sharded deployment: 2 store installations + 1 front (metric-store-external)")
    step = args.timestep
    metrics = [f"m{i:02d}" for i in range(args.metrics)]
    shape = [(m, "node", "avg") for m in metrics]
    docs = {c: cluster_doc(c, shape, sockets=2, cores_per_socket=4, timestep=step) for c in ("ca", "cb", "cz")}
    per_store = args.nodes // 2
    hosts = {c: hosts_of(c, per_store) for c in docs}
    retention = f"{args.history + 2}h"
    settings = parse_settings(args.set)
    now = int(time.time())
    stamps = list(range((now - args.history * 3600) // step * step, now // step * step + 1, step))
    print(f"   shape: {args.nodes} nodes x {args.metrics} metrics at {step} s ({args.nodes * args.metrics:,} series), "
          f"{args.history} h history ({len(stamps)} points per series), retention {retention}")

    tmp = Path(tempfile.mkdtemp(prefix="ccbench-nats-"))
    srv = NatsServer(tmp).start() if args.transport == "nats" else None

    def store_settings(c: str) -> dict:
        if srv is None:
            return settings
        return {**settings, "nats": {"address": srv.url},
                "metric-store.nats-subscriptions": [{"subscribe-to": f"hpc.{c}", "cluster-tag": c}]}

    try:
        return run(args, docs, hosts, metrics, stamps, retention, settings, store_settings, srv)
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, docs, hosts, metrics, stamps, retention, settings, store_settings, srv) -> int:
    step = args.timestep

    def deliver(c: str, inst, stamps_: list[int]) -> tuple[int, float]:
        if srv is None:
            rows = lines_for(c, hosts[c], metrics, stamps_)
            return len(rows), post_all(inst, rows)
        rows = lines_for(None, hosts[c], metrics, stamps_)
        return len(rows), publish_all(srv.url, f"hpc.{c}", rows)

    with installation(clusters={"ca": docs["ca"]}, retention=retention, settings=store_settings("ca")) as sa, \
            installation(clusters={"cb": docs["cb"]}, retention=retention, settings=store_settings("cb")) as sb:
        stores = {"ca": sa, "cb": sb}
        ext = [{"scope": c, "url": s.web, "token": s.token("front", ["api"])} for c, s in stores.items()]
        with installation(clusters=docs, retention=retention,
                          settings={**settings, "metric-store-external": ext}) as front:
            add_users(front)
            for c, s in stores.items():
                t = time.perf_counter()
                n, _ = deliver(c, s, stamps)
                wait_written(s, n)
                dt = time.perf_counter() - t
                print(f"   history into store-{c} ({args.transport}): {n:,} points in {dt:.1f} s "
                      f"({n / dt:,.0f} points/s)")
            job_ca = start_job(front, 1, "ca", hosts["ca"][:JOB_NODES], stamps[0])
            token = front.token("admin", ["admin", "api"])
            comps = {"store-ca": sa, "store-cb": sb, "front": front}
            procs = {name: processes(inst) for name, inst in comps.items()}
            if srv is not None:
                procs["nats"] = [("nats-server", srv.proc.pid)]
            cpu0 = {(c, p): cpu_seconds(pid) for c, plist in procs.items() for p, pid in plist}
            views: list[tuple[float, float]] = []
            lists: list[tuple[float, float]] = []
            stop = threading.Event()
            errors: list[BaseException] = []

            def collectors() -> None:
                try:
                    nxt = (int(time.time()) // step + 1) * step
                    while not stop.is_set():
                        if stop.wait(max(0.0, nxt - time.time())):
                            return
                        for c, s in stores.items():
                            deliver(c, s, [nxt])
                        nxt += step
                except BaseException as e:  # noqa: BLE001 - reported by the main thread
                    errors.append(e)

            def user() -> None:
                try:
                    with httpx.Client(base_url=front.web, timeout=120) as client:
                        while not stop.is_set():
                            t = time.time()
                            views.append(gql(client, token, JOB_METRICS, {"id": str(job_ca), "m": metrics}))
                            lists.append(gql(client, token, NODE_LIST, {"from": int(t) - 3600, "to": int(t)}))
                            stop.wait(max(0.0, args.view_every - (time.time() - t)))
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=collectors), threading.Thread(target=user)]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            time.sleep(args.steady)
            stop.set()
            for th in threads:
                th.join()
            wall = time.perf_counter() - t0
            if errors:
                raise errors[0]
            print(f"   steady phase: {wall:.0f} s, {len(views)} job views (p50 {median([v[0] for v in views]) * 1000:.0f} ms)"
                  f" and node lists (p50 {median([v[0] for v in lists]) * 1000:.0f} ms) on the front")
            print("   | component | process | RSS MiB | private MiB | CPU % of a core |")
            print("   |---|---|---|---|---|")
            for c, plist in procs.items():
                tot_rss = tot_priv = tot_cpu = 0.0
                for p, pid in plist:
                    rss, priv = memory(pid)
                    cpu = (cpu_seconds(pid) - cpu0[c, p]) / wall * 100
                    tot_rss += rss
                    tot_priv += priv
                    tot_cpu += cpu
                    print(f"   | {c} | {p} | {rss / 2**20:.1f} | {priv / 2**20:.1f} | {cpu:.2f} |")
                if c not in comps:
                    continue
                shm = shm_bytes(comps[c])
                print(f"   | **{c}** | all ({len(plist)}) + shm {shm / 2**20:.1f} MiB | {tot_rss / 2**20:.1f} | "
                      f"{tot_priv / 2**20:.1f} (+ shm = {(tot_priv + shm) / 2**20:.1f}) | {tot_cpu:.2f} |")

            # -- latency: external (store-ca) vs built-in (the front's own cz) -----------------
            rows = lines_for("cz", hosts["cz"], metrics, stamps)
            dt = post_all(front, rows)
            print(f"   history into the front's built-in store (cz): {len(rows):,} points in {dt:.1f} s")
            job_cz = start_job(front, 2, "cz", hosts["cz"][:JOB_NODES], stamps[0])
            ext_t: list[tuple[float, float]] = []
            own_t: list[tuple[float, float]] = []
            with httpx.Client(base_url=front.web, timeout=120) as client:
                for jid in (job_ca, job_cz):  # warm-up: caches, connections
                    gql(client, token, JOB_METRICS, {"id": str(jid), "m": metrics})
                for _ in range(args.reps):
                    ext_t.append(gql(client, token, JOB_METRICS, {"id": str(job_ca), "m": metrics}))
                    own_t.append(gql(client, token, JOB_METRICS, {"id": str(job_cz), "m": metrics}))
            n_series = JOB_NODES * len(metrics)
            print(f"   jobMetrics of a {JOB_NODES}-node job, {len(metrics)} metrics ({n_series} series x {len(stamps)} "
                  f"points), {args.reps} interleaved rounds:")
            for label, xs in (("external (store-ca over HTTP)", ext_t), ("built-in (front's shm)", own_t)):
                rt = [x[0] * 1000 for x in xs]
                print(f"     {label:<30} p50 {median(rt):7.1f} ms  p90 {percentile(rt, 90):7.1f} ms  "
                      f"server p50 {median([x[1] for x in xs]):7.1f} ms")
            ratio = median([x[0] for x in ext_t]) / median([x[0] for x in own_t])
            print(f"   external / built-in (p50 round trip): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    run_main(main)
