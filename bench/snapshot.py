"""Snapshot write time and size, and load time, for 1000 hosts x 20 metrics x 48 h at 60 s.

The data set: 20,000 node-scope series, each a full 48 h ring (2,881 slots at 60 s:
57.6 M points, 461 MB of float64 in shared memory).  Values are a random walk with two
decimals per series, like most collector metrics (load, GB, percent, GHz).  The snapshot
is written by the same code as the store process (``write_snapshot``: zstd level 1 in
``num-workers`` threads, temp file, fsync, rename) and loaded into a second, empty store
(``load_snapshot``: checksum pass, then decompress and copy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import header  # noqa: E402
from cc.shm import Layout, SeriesKey, Store, unlink_all  # noqa: E402
from cc.shm._snapshot import load_snapshot, write_snapshot  # noqa: E402

FREQ = 60
HOUR = 3600


def metric_names(n: int) -> list[str]:
    return [f"metric_{i:02d}" for i in range(n)]


def fill_store(store: Store, hosts: int, metrics: int, hours: float, now: int, *, cluster: str = "c1",
               skip_last_seconds: int = 0, seed: int = 1, chunk_hosts: int = 50) -> dict:
    """Full rings for hosts x metrics, bins in (now - hours, now - skip_last_seconds].

    Returns {key: (timestamps, values)} of a sample of series (every 97th host, first metric), for checks.
    """
    names = metric_names(metrics)
    last = now // FREQ - skip_last_seconds // FREQ
    nb = int(hours * HOUR // FREQ) + 1 - skip_last_seconds // FREQ
    ts = (last - nb + 1 + np.arange(nb)) * FREQ
    sample = {}
    rng = np.random.default_rng(seed)
    for h0 in range(0, hosts, chunk_hosts):
        hs = range(h0, min(hosts, h0 + chunk_hosts))
        keys = [SeriesKey(cluster, f"n{h:04d}", m) for h in hs for m in names]
        sids = store.resolve(keys, [FREQ] * len(keys))
        if (sids < 0).any():
            raise RuntimeError("store full: raise the memory cap")
        vals = random_walks(rng, len(keys), nb)
        store.write(np.repeat(sids, nb), np.tile(ts, len(keys)), vals.reshape(-1), now=now)
        for i, k in enumerate(keys):
            if int(k.host[1:]) % 97 == 0 and k.metric == names[0]:
                sample[k] = (ts, vals[i])
    return sample


def random_walks(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Non-negative random walks with two decimals (what most collector metrics look like)."""
    base = rng.uniform(0, 100, (n, 1))
    return np.round(np.abs(base + np.cumsum(rng.normal(0, 1, (n, length)), axis=1)), 2)


def new_store(hours: float, cap_gb: float) -> tuple[Store, str]:
    inst = "bench" + uuid.uuid4().hex[:8]
    store, _ = Store.create(inst, Layout.compute(int(hours * HOUR), [FREQ], cap_gb))
    return store, inst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--hours", type=float, default=48)
    ap.add_argument("--threads", type=int, default=0, help="compression threads (0 = num-workers default)")
    ap.add_argument("--format", choices=("binary", "json"), default="binary")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir under /tmp)")
    args = ap.parse_args(argv)
    from cc.config import MetricStoreConfig

    threads = args.threads or MetricStoreConfig().effective_num_workers()
    header("snapshot: write and load the whole store")
    now = int(time.time())
    cap = args.hosts * args.metrics * (args.hours * HOUR / FREQ + 2) * 8 / 1e9 * 1.2 + 0.1
    src, i1 = new_store(args.hours, cap)
    dst, i2 = new_store(args.hours, cap)
    try:
        t = time.perf_counter()
        fill_store(src, args.hosts, args.metrics, args.hours, now)
        u = src.usage()
        print(f"   data: {args.hosts} hosts x {args.metrics} metrics x {args.hours:g} h at {FREQ} s = "
              f"{u['series_registered']:,} series, {u['allocated_bytes'] / 1e6:.0f} MB of rings "
              f"(filled in {time.perf_counter() - t:.1f} s, not timed)")
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            st = write_snapshot(src, Path(d), 1, fmt=args.format, threads=threads)
            print(f"   write ({args.format}, {threads} threads): {st.seconds:.2f} s, {st.bytes / 1e6:.1f} MB, "
                  f"{st.points:,} points = {st.bytes / st.points:.2f} bytes/point "
                  f"({st.points / st.seconds / 1e6:.1f} M points/s)")
            t = time.perf_counter()
            ls = load_snapshot(dst, Path(st.path), threads=threads)
            dt = time.perf_counter() - t
            print(f"   load into empty shared memory: {dt:.2f} s ({ls.points:,} points, {ls.series:,} series, "
                  f"{ls.points / dt / 1e6:.1f} M points/s)")
            assert ls.points == st.points
            a = src.read(np.arange(5), now - 3600, now)
            b = dst.read(np.arange(5), now - 3600, now)
            assert np.array_equal(a.values, b.values, equal_nan=True)
    finally:
        for s, i in ((src, i1), (dst, i2)):
            s.close()
            unlink_all(i)
    return 0


if __name__ == "__main__":
    sys.exit(main())
