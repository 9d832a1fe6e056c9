"""Ingest throughput: line protocol over HTTP into the running installation (and InfluxDB 1.x).

Load (as in /work/shared/notes/real-servers.md): 1000 hosts x 64 hwthreads x 32 timestamps =
2,048,000 points, one point per line
``cpu_load,cluster=c1,hostname=nNNNN,type=hwthread,type-id=T value=V TS`` (seconds, 60 s apart,
all within the last 40 minutes), in batches of 5,000 lines, sent by 2 concurrent keep-alive
clients (one thread and one raw socket each, requests pre-built before timing).  Every response
must be 200 and its ``written`` count must add up to the number of points.

Throughput = points / wall time from the first request to the last response.  Each run uses a
fresh installation (series registration is part of the measured time) and, for InfluxDB, a
fresh database.  Configurations are interleaved run by run so that load from other users of the
machine hits all of them alike; medians and ratios are taken over runs.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _influx  # noqa: E402
from bench._common import (  # noqa: E402
    RawHTTP,
    add_set_option,
    cluster_doc,
    effective_settings,
    header,
    installation,
    json_body,
    median,
    open_connections,
    parse_settings,
    run_main,
)

TARGET = 300_000
INFLUX_REFERENCE = 298_000


def make_lines(hosts: int, hwthreads: int, timestamps: int, step: int, now: int) -> tuple[list[bytes], list[int]]:
    """All lines (timestamp-major, as collectors report), and the timestamps used."""
    base = (now // step) * step - 40 * 60
    stamps = [base + step * k for k in range(timestamps)]
    prefixes = [f"cpu_load,cluster=c1,hostname=n{h:04d},type=hwthread,type-id={t} value=".encode()
                for h in range(hosts) for t in range(hwthreads)]
    values = [f"{v / 4:g} ".encode() for v in range(400)]  # 0 .. 99.75
    lines: list[bytes] = []
    nv = len(values)
    for k, ts in enumerate(stamps):
        tail = f"{ts}".encode()
        lines.extend(p + values[(i * 7 + k * 13) % nv] + tail for i, p in enumerate(prefixes))
    return lines, stamps


def make_bodies(lines: list[bytes], batch: int) -> list[tuple[bytes, int]]:
    return [(b"\n".join(lines[i:i + batch]) + b"\n", len(lines[i:i + batch])) for i in range(0, len(lines), batch)]


def send_all(host: str, port: int, requests: list[tuple[bytes, int]], clients: int, kind: str,
             hello: bytes | None = None, spread_over: int = 1) -> dict:
    """Send every pre-built request over ``clients`` keep-alive connections; returns timings and counts."""
    conns, who, attempts = open_connections(host, port, clients, hello, spread_over)
    lock = threading.Lock()
    nxt = [0]
    written = [0] * clients
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        c = conns[k]
        start.wait()
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(requests) or errors:
                    return
                req, n = requests[i]
                status, body = c.roundtrip(req)
                if kind == "cc":
                    if status != 200:
                        errors.append(f"batch {i}: HTTP {status}: {body[:300]!r}")
                        return
                    w = json_body(body)["written"]
                    if w != n:
                        errors.append(f"batch {i}: {w} of {n} points written: {body[:300]!r}")
                        return
                    written[k] += w
                else:
                    if status != 204:
                        errors.append(f"batch {i}: HTTP {status}: {body[:300]!r}")
                        return
                    written[k] += n
        except Exception as e:  # report instead of hanging the main thread
            errors.append(f"client {k}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError("; ".join(errors[:3]))
    return {"seconds": elapsed, "points": sum(written), "per_client": written, "workers_of_conns": who,
            "connect_attempts": attempts}


def run_cc(bodies: list[tuple[bytes, int]], workers: int, clients: int, hwthreads: int, spread: bool,
           settings: dict) -> dict:
    clusters = {"c1": cluster_doc("c1", [("cpu_load", "hwthread", "avg")], sockets=2,
                                  cores_per_socket=hwthreads // 2, timestep=60)}
    with installation(clusters=clusters, ingest_workers=workers, retention="1h", memory_cap_gb=1.0,
                      settings=settings) as inst:
        host, port = inst.ingest.removeprefix("http://").rsplit(":", 1)
        auth = {"Authorization": f"Bearer {inst.token()}"}
        reqs = [(RawHTTP.build("POST", host, int(port), "/api/write?precision=s", b, auth), n) for b, n in bodies]
        hello = RawHTTP.build("GET", host, int(port), "/api/healthz")
        res = send_all(host, int(port), reqs, clients, "cc", hello, spread_over=workers if spread else 1)
        res["config"] = effective_settings(inst)
        st = inst.status()
        res["rss"] = {p["name"]: p["rss"] for p in st["processes"]} if st else {}
        from cc.shm import Store

        store = Store.attach(inst.instance)
        try:
            res["counters"] = store.counter_totals()
        finally:
            store.close()
    return res


def run_influx(srv, db: str, bodies: list[tuple[bytes, int]], clients: int) -> dict:
    srv.query(f"CREATE DATABASE {db}")
    reqs = [(RawHTTP.build("POST", "127.0.0.1", srv.port, f"/write?db={db}&precision=s", b), n) for b, n in bodies]
    res = send_all("127.0.0.1", srv.port, reqs, clients, "influx")
    res["rss"] = srv.rss()
    srv.query(f"DROP DATABASE {db}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--hwthreads", type=int, default=64, help="hwthreads per host (even)")
    ap.add_argument("--timestamps", type=int, default=32, help="timestamps per series (60 s apart)")
    ap.add_argument("--batch", type=int, default=5000, help="lines per request")
    ap.add_argument("--clients", type=int, default=2, help="concurrent keep-alive connections")
    ap.add_argument("--workers", default="1,2", help="comma-separated values of metric-store.ingest-workers")
    ap.add_argument("--runs", type=int, default=3, help="runs per configuration (median reported)")
    ap.add_argument("--no-influx", action="store_true", help="skip the InfluxDB comparison")
    ap.add_argument("--no-spread", action="store_true",
                    help="keep the connections wherever the workers accepted them (by default, connections "
                         "are re-opened until each ingest worker has its share; see RESULTS.md)")
    add_set_option(ap)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                    help="also run every worker count with these extra settings, interleaved with the default "
                         "configuration (repeatable), e.g. --variant nowal:metric-store.checkpoints.wal=false")
    args = ap.parse_args(argv)
    settings = parse_settings(args.set)
    if args.timestamps > 38:
        ap.error("--timestamps: at most 38 (points must stay inside the 1 h retention for the whole run)")
    workers = [int(w) for w in args.workers.split(",")]

    header("ingest: line protocol over HTTP")
    t = time.perf_counter()
    lines, stamps = make_lines(args.hosts, args.hwthreads, args.timestamps, 60, int(time.time()))
    bodies = make_bodies(lines, args.batch)
    total = len(lines)
    del lines
    print(f"   load: {args.hosts} hosts x {args.hwthreads} hwthreads x {args.timestamps} timestamps = "
          f"{total:,} points in {len(bodies)} requests of <= {args.batch} lines "
          f"({sum(len(b) for b, _ in bodies) / 1e6:.0f} MB), {args.clients} keep-alive clients, precision=s; "
          f"generated in {time.perf_counter() - t:.1f} s (not timed)")
    influx = None if args.no_influx else _influx.available()
    if not args.no_influx and influx is None:
        print("   influxd is not installed (Debian package 'influxdb'): no comparison in this run")
    elif influx:
        print(f"   peer: {_influx.version()} ({influx}), fresh database per run")

    variants: list[tuple[str, dict]] = [("", settings)]
    for spec in args.variant:
        name, _, rest = spec.partition(":")
        if not name or not rest:
            ap.error(f"--variant {spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE...]")
        variants.append((name, {**settings, **parse_settings(rest.split(","))}))
    configs = [(w, name, st) for name, st in variants for w in workers]

    def label(w: int, name: str) -> str:
        return f"cc w={w}" + (f" {name}" if name else "")

    results: dict[str, list[float]] = {label(w, name): [] for w, name, _ in configs}
    if influx:
        results["influxdb"] = []
    srv_cm = _influx.running() if influx else None
    srv = srv_cm.__enter__() if srv_cm else None
    try:
        for r in range(args.runs):
            for w, name, st in configs:
                res = run_cc(bodies, w, args.clients, args.hwthreads, not args.no_spread, st)
                if r == 0:
                    print(f"   config of {label(w, name)}: {res['config']}")
                assert res["points"] == total
                pps = total / res["seconds"]
                results[label(w, name)].append(pps)
                c = res["counters"]
                rss = ", ".join(f"{v / 2**20:.0f}" for k, v in res["rss"].items() if k.startswith("ingest"))
                print(f"   run {r + 1} {label(w, name)}: {pps:>10,.0f} points/s ({res['seconds']:.2f} s; "
                      f"connections on workers {res['workers_of_conns']} after {res['connect_attempts']} connects; "
                      f"store counted {c['points_written']:,} written, {c['series_registered']:,} series; "
                      f"ingest RSS {rss} MiB)", flush=True)
            if srv is not None:
                res = run_influx(srv, f"bench{r}", bodies, args.clients)
                pps = total / res["seconds"]
                results["influxdb"].append(pps)
                print(f"   run {r + 1} influxdb: {pps:>10,.0f} points/s ({res['seconds']:.2f} s; "
                      f"server RSS {res['rss'] / 2**20:.0f} MiB)", flush=True)
    finally:
        if srv_cm:
            srv_cm.__exit__(None, None, None)

    print(f"   results (median of {args.runs} runs; target >= {TARGET:,} points/s, "
          f"InfluxDB 1.6 reference on this machine kind ~{INFLUX_REFERENCE:,}):")
    med = {k: median(v) for k, v in results.items()}

    def ratio(k: str, ref: str) -> str:
        per = [x / y for x, y in zip(results[k], results[ref], strict=True)]
        return f"{med[k] / med[ref]:.2f} (per run {', '.join(f'{x:.2f}' for x in per)})"

    for w, name, _ in configs:
        k = label(w, name)
        extra = ""
        if w != workers[0]:
            extra += f"  ratio to w={workers[0]}: {ratio(k, label(workers[0], name))}"
        if name:
            extra += f"  ratio to default config: {ratio(k, label(w, ''))}"
        if "influxdb" in med:
            extra += f"  ours/influx: {ratio(k, 'influxdb')}"
        met = "  [target met]" if med[k] >= TARGET else "  [target NOT met]"
        print(f"   {k:<10} {med[k]:>10,.0f} points/s  (runs: {', '.join(f'{x:,.0f}' for x in results[k])})"
              f"{extra}{met}")
    if "influxdb" in med:
        print(f"   influxdb   {med['influxdb']:>10,.0f} points/s  "
              f"(runs: {', '.join(f'{x:,.0f}' for x in results['influxdb'])})")
    return 0


if __name__ == "__main__":
    run_main(main)
