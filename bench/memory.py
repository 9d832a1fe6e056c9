"""RAM per point held at full retention (float64 values), for the whole installation.

Shape (default): 1000 hosts x (8 node metrics + 3 hwthread metrics x 64 hwthreads) = 200,000
series at a 60 s timestep with 48 h retention (cc-backend's default), i.e. 2,881 ring slots per
series; the rings are filled completely.

Measurement:

* every process of the installation (supervisor and its children, pids from
  ``cc-supervise status --json``): ``Pss - Pss_Shmem`` from ``/proc/PID/smaps_rollup`` plus
  the page tables (``VmPTE`` of ``/proc/PID/status``);
* plus the bytes really allocated in ``/dev/shm`` (``st_blocks * 512`` of every
  ``/dev/shm/cc-<instance>-*`` segment), which counts shared memory once whoever maps it;
* divided by the number of points held, counted as non-NaN values read back through
  ``Store.read`` (in chunks).

Fill: a few thousand points go through HTTP first (to every ingest worker), then the rings are
filled **directly through the shared-memory API** (``Store.resolve`` / ``Store.write`` in
vectorised batches, bypassing HTTP, which would take hours at this volume).  The web process
answers a query and the store process runs a sweep, so that both hold their registry index as
in steady state.  Two states are measured:

* **A** - ingest workers have seen only the warm-up series;
* **B** - steady state: every ingest worker has also received one point of every series over
  HTTP (in a real installation collectors reconnect and reach every worker), so each worker
  holds its prefix index for all series, and the burst of registrations is over (a worker
  returns the temporaries of such a burst to the kernel a few seconds later; **B0** is the
  same measurement right after the burst).  B is the figure compared to the target.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._common import (  # noqa: E402
    RawHTTP,
    add_set_option,
    cluster_doc,
    effective_settings,
    header,
    installation,
    json_body,
    open_connections,
    parse_settings,
    process_tree,
    run_main,
)

TARGET = 8.5
TRIM_WAIT = 15
NODE_METRICS = ["cpu_load", "mem_used", "net_bw", "ib_bw", "file_bw", "cpu_power", "mem_power", "disk_free"]
HW_METRICS = ["cpu_user", "flops_any", "ipc"]


def parse_duration(s: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(float(s[:-1]) * units[s[-1]]) if s[-1] in units else int(s)


def proc_private(pid: int) -> dict[str, int]:
    """Pss, Pss_Shmem (from smaps_rollup) and VmPTE of one process, in bytes."""
    out = {"Pss": 0, "Pss_Shmem": 0, "VmPTE": 0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Pss", "Pss_Shmem"):
            out[k] = int(v.split()[0]) * 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmPTE:"):
            out["VmPTE"] = int(line.split()[1]) * 1024
    return out


def shm_breakdown(instance: str) -> dict[str, int]:
    groups = {"data": 0, "meta": 0, "registry": 0, "other": 0}
    for path in Path("/dev/shm").glob(f"cc-{instance}-*"):
        part = path.name.split("-", 2)[2]
        b = os.stat(path).st_blocks * 512
        if part.endswith("-data"):
            groups["data"] += b
        elif part.endswith(("-meta", "-free")):
            groups["meta"] += b
        elif part in ("reg", "keys"):
            groups["registry"] += b
        else:
            groups["other"] += b
    return groups


def count_points(store, sids: np.ndarray, chunk: int = 4096) -> int:
    n = 0
    to = int(time.time()) + 3600
    for i in range(0, len(sids), chunk):
        rr = store.read(sids[i:i + chunk], 0, to)
        n += int(np.count_nonzero(~np.isnan(rr.values)))
    return n


def measure(inst, store, sids: np.ndarray, label: str) -> dict:
    procs = process_tree(inst)
    per = {}
    pte = 0
    for name, pid in procs:
        m = proc_private(pid)
        per[name] = m["Pss"] - m["Pss_Shmem"] + m["VmPTE"]
        pte += m["VmPTE"]
    shm = shm_breakdown(inst.instance)
    t = time.perf_counter()
    points = count_points(store, sids)
    count_s = time.perf_counter() - t
    private = sum(per.values())
    total = private + sum(shm.values())
    print(f"   state {label}: {points:,} points held ({points / len(sids):.1f} per series; counted through "
          f"Store.read in {count_s:.1f} s)")
    print(f"     shared memory  data {shm['data'] / 2**20:9.1f} MiB  {shm['data'] / points:6.3f} B/point")
    reg = shm["registry"] + shm["meta"] + shm["other"]
    print(f"     shared memory  registry+keys {shm['registry'] / 2**20:.1f} MiB, row meta+free "
          f"{shm['meta'] / 2**20:.1f} MiB, header+locks {shm['other'] / 2**20:.1f} MiB  "
          f"{reg / points:6.3f} B/point")
    print(f"     process private (Pss - Pss_Shmem + page tables) {private / 2**20:.1f} MiB  "
          f"{private / points:6.3f} B/point:  "
          + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in per.items()) + f" MiB (page tables {pte / 2**20:.1f} MiB)")
    bpp = total / points
    print(f"     total {total / 2**20:.1f} MiB / {points:,} points = {bpp:.3f} B/point")
    return {"points": points, "bpp": bpp, "private": private, "shm": shm, "per": per}


def http_lines(hosts: list[str], ts: int) -> list[bytes]:
    out = []
    for h in hosts:
        for m in NODE_METRICS:
            out.append(f"{m},cluster=c1,hostname={h},type=node value=1.5 {ts}".encode())
        for m in HW_METRICS:
            out.extend(f"{m},cluster=c1,hostname={h},type=hwthread,type-id={t} value=2.25 {ts}".encode()
                       for t in range(64))
    return out


def push(conns: list[RawHTTP], reqs: list[bytes]) -> int:
    """Send every request over every connection (so each ingest worker sees all of them)."""
    written = 0
    for c in conns:
        for r in reqs:
            status, body = c.roundtrip(r)
            doc = json_body(body)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
            written += doc["written"]
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000, help="hosts (200 series each)")
    ap.add_argument("--retention", default="48h", help="retention-in-memory (s, m, h, d)")
    ap.add_argument("--timestep", type=int, default=60, help="metric timestep in seconds")
    ap.add_argument("--workers", type=int, default=2, help="metric-store.ingest-workers")
    ap.add_argument("--chunk", type=int, default=2000, help="series per Store.write call during the fill")
    add_set_option(ap)
    args = ap.parse_args(argv)
    settings = parse_settings(args.set)
    retention = parse_duration(args.retention)
    f = args.timestep
    cap = math.ceil(retention / f) + 1
    per_host = len(NODE_METRICS) + 64 * len(HW_METRICS)
    nseries = args.hosts * per_host
    data_bytes = nseries * cap * 8
    if data_bytes > 8e9:
        ap.error(f"{data_bytes / 1e9:.1f} GB of ring buffers: more than the 8 GB this benchmark may use here")

    header("memory: bytes of RAM per point held at full retention")
    print(f"   shape: {args.hosts} hosts x {per_host} series = {nseries:,} series (float64), timestep {f} s, "
          f"retention {retention} s -> {cap} slots per series, {data_bytes / 2**30:.2f} GiB of rings; "
          f"{args.workers} ingest workers")
    hosts = [f"n{i:04d}" for i in range(args.hosts)]
    clusters = {"c1": cluster_doc("c1", [(m, "node", "avg") for m in NODE_METRICS]
                                  + [(m, "hwthread", "sum") for m in HW_METRICS],
                                  sockets=2, cores_per_socket=32, timestep=f)}
    memcap = max(1.0, data_bytes * 1.2 / 1e9)
    with installation(clusters=clusters, ingest_workers=args.workers, retention=args.retention,
                      memory_cap_gb=memcap,
                      settings=settings) as inst:
        print(f"   config: {effective_settings(inst)}")
        from cc import ipc
        from cc.shm import SeriesKey, Store

        host, port = inst.ingest.removeprefix("http://").rsplit(":", 1)
        auth = {"Authorization": f"Bearer {inst.token()}"}
        hello = RawHTTP.build("GET", host, int(port), "/api/healthz")
        conns, who, _ = open_connections(host, int(port), args.workers, hello, args.workers)
        now = int(time.time())
        b1 = now // f
        warm = http_lines(hosts[:20], b1 * f)[:3000]
        reqs = [RawHTTP.build("POST", host, int(port), "/api/write?precision=s", b"\n".join(warm), auth)]
        n = push(conns, reqs)
        for c in conns:
            c.close()
        print(f"   HTTP warm-up: {len(warm)} points sent to each ingest worker {who} ({n} acknowledged)")

        store = Store.attach(inst.instance)
        try:
            t0 = time.perf_counter()
            keys = []
            for h in hosts:
                keys.extend(SeriesKey("c1", h, m, "node", "") for m in NODE_METRICS)
                keys.extend(SeriesKey("c1", h, m, "hwthread", str(t)) for m in HW_METRICS for t in range(64))
            sids = store.resolve(keys, [f] * len(keys))
            if (sids < 0).any():
                raise RuntimeError(f"{int((sids < 0).sum())} series rejected by resolve()")
            del keys
            t_res = time.perf_counter() - t0
            rng = np.random.default_rng(1)
            lo = b1 - cap + 1
            first_ts = max(lo * f, now - retention)  # older points are rejected as too old
            bins = np.arange(-(-first_ts // f), b1 + 1, dtype=np.int64)
            written = 0
            for i in range(0, len(sids), args.chunk):
                chunk = sids[i:i + args.chunk]
                s = np.tile(chunk, len(bins))
                ts = np.repeat(bins * f, len(chunk))
                ws = store.write(s, ts, rng.random(len(s)) * 100, now=now)
                written += ws.written
                if ws.written != len(s):
                    raise RuntimeError(f"fill: {ws.written} of {len(s)} written ({ws})")
            t_fill = time.perf_counter() - t0 - t_res
            print(f"   fill through the shared-memory API (bypassing HTTP): {len(sids):,} series resolved in "
                  f"{t_res:.1f} s, {written:,} points written in {t_fill:.1f} s "
                  f"({written / t_fill / 1e6:.1f} M points/s)", flush=True)

            # Steady-state indexes in the web and store processes.
            q = inst.query({"cluster": "c1", "from": now - 3600, "to": now, "queries": [
                {"metric": m, "host": h} for h in hosts[:10] for m in NODE_METRICS + HW_METRICS]})
            if q.status_code != 200:
                raise RuntimeError(f"query: HTTP {q.status_code}: {q.text[:300]}")
            sweep = ipc.request_sync(inst.cfg.run_dir / "store.sock", {"cmd": "sweep"}, timeout=120)
            if not sweep.get("ok") or sweep.get("released"):
                raise RuntimeError(f"store sweep: {sweep}")
            a = measure(inst, store, sids, "A (ingest workers saw only the warm-up)")

            t = time.perf_counter()
            lines = http_lines(hosts, b1 * f)
            reqs = [RawHTTP.build("POST", host, int(port), "/api/write?precision=s",
                                  b"\n".join(lines[i:i + 5000]), auth) for i in range(0, len(lines), 5000)]
            conns, who, _ = open_connections(host, int(port), args.workers, hello, args.workers)
            n = push(conns, reqs)
            for c in conns:
                c.close()
            print(f"   HTTP: one point of every series sent to every ingest worker ({n:,} acknowledged, "
                  f"{time.perf_counter() - t:.1f} s)")
            registered = store.usage()["series_registered"]
            if registered != len(sids):
                raise RuntimeError(f"{registered} series registered, expected {len(sids)}: HTTP keys differ")
            b0 = measure(inst, store, sids, "B0 (right after that burst)")
            time.sleep(TRIM_WAIT)
            print(f"   waited {TRIM_WAIT} s: an ingest worker trims its heap once a burst of new series is over "
                  "(cc.proc.keep_heap_trimmed, 5-10 s after the last one)")
            b = measure(inst, store, sids, "B (steady state: every ingest worker saw every series)")
        finally:
            store.close()
    met = "met" if b["bpp"] <= TARGET else "NOT met"
    print(f"   result: {b['bpp']:.3f} B/point in steady state (B), {b0['bpp']:.3f} right after the burst (B0), "
          f"{a['bpp']:.3f} B/point in state A; "
          f"target <= {TARGET} B/point: {met}; ring slots alone cost 8 x {cap}/{b['points'] / len(sids):.0f} = "
          f"{8 * cap / (b['points'] / len(sids)):.3f} B/point")
    return 0


if __name__ == "__main__":
    run_main(main)
