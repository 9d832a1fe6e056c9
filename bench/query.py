"""Query latency of a whole job's data, against a plain numpy copy of the same data.

Shape (default): a 64-node job, 10 metrics at hwthread scope, 72 hwthreads per node
(2 sockets x 36 cores, SMT 1), 24 h at 60 s = 1,440 points per series: 46,080 series,
66 M points.  The rings (retention 24 h) are filled through the shared-memory API.

Two requests, each with one query per host and metric (640 queries), answered in-process by
``cc.query.execute(parse_request(doc), store, clusters, catalog, numpy_data=True)`` on an
attached store (what the web process runs in its worker thread, without HTTP and JSON):

* node scope: no ``type`` -> the 72 hwthread series of each host/metric are combined (sum or avg);
* hwthread scope: ``type: hwthread``, all 72 ``type-ids``, ``aggreg: false`` -> 72 entries per query.

Baseline, in the same run and interleaved with the queries: ``pool.data[rows, a:b]`` copies of
exactly the rows and ring slots the requests read (two copies where the window wraps around the
ring), i.e. the cost of only getting the data out of shared memory.  Both requests read all
46,080 series over the whole 24 h, so the baseline is the same for both.

Extra: the same two requests end to end through HTTP ``POST /api/query`` on the running web
process (authentication, JSON encoding on the server, transfer; the client does not decode).
"""

from __future__ import annotations

import argparse
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
    percentile,
    run_main,
)

TARGET_RATIO = 3.0
METRICS = [("cpu_load", "avg"), ("cpu_user", "avg"), ("flops_any", "sum"), ("flops_dp", "sum"),
           ("flops_sp", "sum"), ("ipc", "avg"), ("clock", "avg"), ("mem_bw", "sum"), ("core_power", "sum"),
           ("l3_miss", "sum")]


def slice_copy(pool, rows: np.ndarray, lo: int, width: int) -> list[np.ndarray]:
    """The bins lo .. lo+width-1 of ``rows``, copied with plain slices of the ring."""
    cap = pool.cap
    s = lo % cap
    if s + width <= cap:
        return [pool.data[rows, s:s + width]]
    return [pool.data[rows, s:], pool.data[rows, :width - (cap - s)]]


def stats(xs: list[float]) -> str:
    return f"p50 {median(xs) * 1e3:8.1f} ms  p99 {percentile(xs, 99) * 1e3:8.1f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=64)
    ap.add_argument("--hours", type=int, default=24, help="job length (and retention) in hours")
    ap.add_argument("--reps", type=int, default=20, help="in-process repetitions per request (>= 20 for p99)")
    ap.add_argument("--http-reps", type=int, default=3, help="HTTP repetitions per request (0 = skip)")
    add_set_option(ap)
    args = ap.parse_args(argv)
    settings = parse_settings(args.set)
    f = 60
    nbins = args.hours * 3600 // f
    hosts = [f"n{i:04d}" for i in range(args.hosts)]
    nthreads = 72

    header("query: a 64-node job, 10 metrics at hwthread scope, in-process vs numpy slice")
    clusters_doc = {"c1": cluster_doc("c1", [(m, "hwthread", a) for m, a in METRICS], sockets=2,
                                      cores_per_socket=36, timestep=f)}
    data_gb = args.hosts * len(METRICS) * nthreads * (nbins + 1) * 8 / 1e9
    with installation(clusters=clusters_doc, ingest_workers=1, retention=f"{args.hours}h",
                      memory_cap_gb=max(1.0, 2 * data_gb),
                      settings=settings) as inst:
        print(f"   config: {effective_settings(inst)}")
        from cc.clusters import MetricCatalog, load_clusters
        from cc.query import execute, parse_request
        from cc.shm import SeriesKey, Store

        store = Store.attach(inst.instance)
        try:
            keys = [SeriesKey("c1", h, m, "hwthread", str(t)) for h in hosts for m, _ in METRICS
                    for t in range(nthreads)]
            t0 = time.perf_counter()
            sids = store.resolve(keys, [f] * len(keys))
            assert (sids >= 0).all(), "series rejected"
            now = int(time.time())
            b1 = now // f
            lo = b1 - nbins + 1
            bins = np.arange(lo, b1 + 1, dtype=np.int64)
            rng = np.random.default_rng(7)
            chunk = 4096
            for i in range(0, len(sids), chunk):
                s = sids[i:i + chunk]
                vals = np.round(rng.random(len(s) * len(bins)) * 100, 2)  # two decimals, like collectors
                ws = store.write(np.tile(s, len(bins)), np.repeat(bins * f, len(s)), vals, now=now)
                assert ws.written == len(s) * len(bins), ws
            print(f"   {len(sids):,} series x {nbins} points = {len(sids) * nbins / 1e6:.1f} M points "
                  f"({len(sids) * nbins * 8 / 2**20:.0f} MiB) filled through the shared-memory API in "
                  f"{time.perf_counter() - t0:.1f} s")

            clusters = load_clusters(inst.cfg.archive_path)
            catalog = MetricCatalog(clusters, inst.cfg.metrics)
            frm, to = lo * f, (b1 + 1) * f
            node_doc = {"cluster": "c1", "from": frm, "to": to,
                        "queries": [{"metric": m, "host": h} for h in hosts for m, _ in METRICS]}
            ids = [str(t) for t in range(nthreads)]
            hw_doc = {"cluster": "c1", "from": frm, "to": to,
                      "queries": [{"metric": m, "host": h, "type": "hwthread", "type-ids": ids, "aggreg": False}
                                  for h in hosts for m, _ in METRICS]}

            def run(doc):
                return execute(parse_request(doc), store, clusters, catalog, numpy_data=True)

            pidx = set(store.reg["pool"][sids].tolist())
            assert len(pidx) == 1
            pool = store.pools[pidx.pop()]
            rows = store.reg["row"][sids]

            # Correctness against the slice, once (also warms the per-store index cache).
            ref = np.concatenate(slice_copy(pool, rows, lo, nbins), axis=1)
            node = run(node_doc)["results"]
            hw = run(hw_doc)["results"]
            assert len(node) == len(node_doc["queries"]) and all(len(r) == 1 for r in node)
            assert all(len(r) == nthreads for r in hw)
            for q in (0, 1, 2, len(node) - 1):
                block = ref[q * nthreads:(q + 1) * nthreads]
                agg = METRICS[q % len(METRICS)][1]
                want = block.sum(axis=0) / (nthreads if agg == "avg" else 1)
                got = np.asarray(node[q][0]["data"])
                assert got.shape == want.shape and np.allclose(got, want), f"node query {q} differs"
                for t in (0, 35, 71):
                    assert np.array_equal(np.asarray(hw[q][t]["data"]), block[t]), f"hwthread query {q}/{t}"
            print(f"   results checked against the slice: node scope {len(node)} entries, hwthread scope "
                  f"{sum(len(r) for r in hw):,} entries, {nbins} points each")
            del ref, node, hw

            t_node, t_hw, t_slice = [], [], []
            for _ in range(args.reps):
                t = time.perf_counter()
                run(node_doc)
                t_node.append(time.perf_counter() - t)
                t = time.perf_counter()
                slice_copy(pool, rows, lo, nbins)
                t_slice.append(time.perf_counter() - t)
                t = time.perf_counter()
                run(hw_doc)
                t_hw.append(time.perf_counter() - t)
            ms = median(t_slice)
            print(f"   in-process, {args.reps} repetitions each (interleaved):")
            print(f"     numpy slice baseline ({len(rows):,} rows x {nbins} bins):  {stats(t_slice)}")
            ok_n = median(t_node) / ms <= TARGET_RATIO
            ok_h = median(t_hw) / ms <= TARGET_RATIO
            print(f"     node scope     ({len(node_doc['queries'])} queries):  {stats(t_node)}   "
                  f"query/slice {median(t_node) / ms:.2f} (p99/p99 {percentile(t_node, 99) / percentile(t_slice, 99):.2f})"
                  f"  target <= {TARGET_RATIO}: {'met' if ok_n else 'NOT met'}")
            print(f"     hwthread scope ({len(hw_doc['queries'])} queries):  {stats(t_hw)}   "
                  f"query/slice {median(t_hw) / ms:.2f} (p99/p99 {percentile(t_hw, 99) / percentile(t_slice, 99):.2f})"
                  f"  target <= {TARGET_RATIO}: {'met' if ok_h else 'NOT met'}")

            enc = {}
            for name, doc in (("node scope", node_doc), ("hwthread scope", hw_doc)):
                res = run(doc)
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    out = orjson.dumps(res, option=orjson.OPT_SERIALIZE_NUMPY)
                    times.append(time.perf_counter() - t)
                enc[name] = (median(times), len(out))
                del res, out
            print("   JSON encoding of the result in-process (orjson, OPT_SERIALIZE_NUMPY, as the web process "
                  "does; median of 3): " + ", ".join(f"{k} {v[0] * 1e3:.0f} ms for {v[1] / 2**20:.0f} MiB"
                                                      for k, v in enc.items()))

            if args.http_reps:
                headers = {"Authorization": f"Bearer {inst.token()}"}
                print(f"   end to end through HTTP POST /api/query (web process; {args.http_reps} repetitions, "
                      f"first request of each kind not counted):")
                with httpx.Client(timeout=600, trust_env=False) as client:
                    for name, doc in (("node scope", node_doc), ("hwthread scope", hw_doc)):
                        body = orjson.dumps(doc)
                        times, size = [], 0
                        for k in range(args.http_reps + 1):
                            t = time.perf_counter()
                            r = client.post(inst.web + "/api/query", content=body, headers=headers)
                            dt = time.perf_counter() - t
                            if r.status_code != 200:
                                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
                            size = len(r.content)
                            del r
                            if k:
                                times.append(dt)
                        print(f"     {name:<15} {stats(times)}  response {size / 2**20:.0f} MiB of JSON")
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    run_main(main)
