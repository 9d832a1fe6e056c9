"""Ingest throughput over NATS vs HTTP, same load, same run: core NATS, JetStream, HTTP, 2 ingest workers.

Load: the ingest benchmark's (``bench/ingest.py``): 1000 hosts x 64 hwthreads x 32 timestamps =
2,048,000 points in messages/requests of 5,000 lines, built before timing.

* **http**: ``bench/ingest.py``'s 2 keep-alive clients; time from the first request to the last answer.
* **nats** (core): the messages published on the subscribed subject by one publisher (a
  :class:`cc.nats.NatsClient`); time from the first publish until the store's ``points_written``
  counter (shared memory, polled every 5 ms; plus ``nats_redelivered_points``) reaches the total.
* **jetstream**: the same, into a JetStream stream the workers consume with their durable pull
  consumer (acked after shared memory and the WAL, ``wal-sync: always``).

A fresh installation per run (series registration is timed), configurations interleaved run by run;
medians and per-run ratios to HTTP.  Target: NATS >= 0.8x HTTP points/s with 2 workers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio  # noqa: E402

from bench._common import cluster_doc, header, installation, median, run_main  # noqa: E402
from bench.ingest import make_bodies, make_lines, run_cc  # noqa: E402

TARGET_RATIO = 0.8
SUBJECT = "bench.metrics"


def _points_written(instance: str) -> int:
    from cc.shm import Store

    store = Store.attach(instance)
    try:
        return store.counter_totals()["points_written"]
    finally:
        store.close()


def run_nats(bodies: list[tuple[bytes, int]], workers: int, hwthreads: int, jetstream: bool, srv) -> dict:
    from cc.nats import NatsClient, parse_nats
    from cc.shm import Store

    subject = SUBJECT
    sub = {"subscribe-to": subject}
    if jetstream:  # a fresh stream per run, on its own subject (streams may not share subjects)
        run_id = int(time.time() * 1000) % 10**9
        subject = f"{SUBJECT}.{run_id}"
        sub = {"subscribe-to": subject, "stream": f"BENCH{run_id}"}
    clusters = {"c1": cluster_doc("c1", [("cpu_load", "hwthread", "avg")], sockets=2,
                                  cores_per_socket=hwthreads // 2, timestep=60)}
    total = sum(n for _, n in bodies)
    with installation(clusters=clusters, ingest_workers=workers, retention="1h", memory_cap_gb=1.0,
                      settings={"nats": {"address": srv.url}, "metric-store.nats-subscriptions": [sub]}) as inst:
        deadline = time.time() + 60
        while time.time() < deadline:  # every worker subscribed (consumer bound) before the clock starts
            st = inst.status()
            if st and all(p.get("nats") == "connected" for p in st["processes"] if p["name"].startswith("ingest-")):
                break
            time.sleep(0.1)
        time.sleep(1.0 if jetstream else 0.3)
        store = Store.attach(inst.instance)
        payloads = [b for b, _ in bodies]

        async def go() -> float:
            async with NatsClient(parse_nats({"address": srv.url}), name="bench-publisher") as nc:
                await nc.wait_connected(10)
                t0 = time.perf_counter()
                for k in range(0, len(payloads), 20):
                    await nc.publish_many(subject, payloads[k:k + 20], flush_timeout=30)
                def arrived() -> int:  # a redelivered message's points count apart (cc/ingestd/_nats.py)
                    c = store.counter_totals()
                    return c["points_written"] + c["nats_redelivered_points"]

                while arrived() < total:
                    if time.perf_counter() - t0 > 300:
                        raise RuntimeError(f"only {arrived():,} of {total:,} points arrived within 300 s")
                    await trio.sleep(0.005)
                return time.perf_counter() - t0

        try:
            seconds = trio.run(go)
            c = store.counter_totals()
        finally:
            store.close()
        st = inst.status()
        rss = {p["name"]: p["rss"] for p in st["processes"]} if st else {}
    return {"seconds": seconds, "counters": c, "rss": rss}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--hwthreads", type=int, default=64)
    ap.add_argument("--timestamps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=5000, help="lines per request / message")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    from tests.nats_server import NatsServer

    header("nats_ingest: line protocol over core NATS and JetStream vs HTTP")
    lines, _ = make_lines(args.hosts, args.hwthreads, args.timestamps, 60, int(time.time()))
    bodies = make_bodies(lines, args.batch)
    total = len(lines)
    del lines
    print(f"   load: {total:,} points in {len(bodies)} messages/requests of <= {args.batch} lines "
          f"({sum(len(b) for b, _ in bodies) / 1e6:.0f} MB); {args.workers} ingest workers; nats-server "
          f"(Debian) with JetStream on a free port, state in a temporary directory")
    import tempfile

    results: dict[str, list[float]] = {"http": [], "nats": [], "jetstream": []}
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp), jetstream=True) as srv:
        for r in range(args.runs):
            res = run_cc(bodies, args.workers, 2, args.hwthreads, True, {})
            assert res["points"] == total
            results["http"].append(total / res["seconds"])
            print(f"   run {r + 1} http:      {results['http'][-1]:>10,.0f} points/s ({res['seconds']:.2f} s)",
                  flush=True)
            for kind in ("nats", "jetstream"):
                res = run_nats(bodies, args.workers, args.hwthreads, kind == "jetstream", srv)
                c = res["counters"]
                results[kind].append(total / res["seconds"])
                rss = ", ".join(f"{v / 2**20:.0f}" for k, v in res["rss"].items() if k.startswith("ingest"))
                print(f"   run {r + 1} {kind + ':':<10} {results[kind][-1]:>10,.0f} points/s ({res['seconds']:.2f} s; "
                      f"{c['nats_messages']} messages, {c['nats_redelivered']} redelivered, "
                      f"{c['points_written']:,} points counted; ingest RSS {rss} MiB)", flush=True)
    med = {k: median(v) for k, v in results.items()}
    print(f"   results (median of {args.runs} runs; target: NATS >= {TARGET_RATIO}x HTTP):")
    for k in ("http", "nats", "jetstream"):
        extra = ""
        if k != "http":
            per = [x / y for x, y in zip(results[k], results["http"], strict=True)]
            ok = med[k] / med["http"] >= TARGET_RATIO
            extra = (f"  ratio to http {med[k] / med['http']:.2f} (per run {', '.join(f'{x:.2f}' for x in per)})"
                     f"  [target {'met' if ok else 'NOT met'}]")
        print(f"   {k:<10} {med[k]:>10,.0f} points/s  (runs: {', '.join(f'{x:,.0f}' for x in results[k])}){extra}")
    return 0


if __name__ == "__main__":
    run_main(main)
