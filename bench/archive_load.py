"""archive-load: reading a big archived job's data.json.gz, against plain gzip + json.loads of the same file.

The job is shaped like ClusterCockpit's example job (emmy 1403244): 32 nodes, 9 metrics
at node scope, 1,441 points each at 60 s, values with two decimals, about 9 % nulls,
one metric whose series carry no statistics.  It is written with ``JobArchive.write``
(compact JSON, gzip above 2,000 bytes), then loaded again and again, interleaved:

* baseline: ``json.loads(gzip.decompress(open(path, "rb").read()))`` (standard library);
* ``JobArchive.load_data`` without cache (every call reads, decompresses and parses);
* ``JobArchive.load_data`` with its cache (the web process's case for a job viewed again);
* ``cc.jobdata.load_archived`` with 600 s resolution (LTTB zoom-out of all series), uncached.

Target: uncached load <= 1.2x the baseline.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._common import header, median  # noqa: E402
from cc import jobdata  # noqa: E402
from cc.archive import JobArchive  # noqa: E402
from cc.db import Job  # noqa: E402

TARGET_RATIO = 1.2
METRICS = {"cpu_load": "", "clock": "Hz", "rapl_power": "W", "ipc": "IPC", "mem_bw": "B/s", "flops_sp": "F/s",
           "mem_used": "B", "flops_dp": "F/s", "flops_any": "F/s"}


def make_data(nodes: int, points: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for metric, base in METRICS.items():
        series = []
        for n in range(nodes):
            v = np.round(rng.gamma(2.0, 50.0, points), 2)
            data: list = v.tolist()
            for i in np.flatnonzero(rng.random(points) < 0.09).tolist():
                data[i] = None
            for i in np.flatnonzero(rng.random(points) < 0.1).tolist():
                if data[i] is not None:
                    data[i] = int(data[i])
            s: dict = {"hostname": f"e{n:04d}", "data": data}
            if metric != "ipc":
                s["statistics"] = {"avg": round(float(np.mean(v)), 2), "min": float(v.min()), "max": float(v.max())}
            series.append(s)
        out[metric] = {"node": {"unit": {"base": base}, "timestep": 60, "series": series}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--points", type=int, default=1441)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args(argv)
    header(f"archive-load: {args.nodes} nodes x {len(METRICS)} metrics x {args.points} points from data.json.gz")
    tmp = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    try:
        root = tmp / "archive"
        root.mkdir()
        (root / "version.txt").write_text("3\n")
        data = make_data(args.nodes, args.points)
        start = 1608923076
        job = Job(job_id=1403244, cluster="emmy", user="u", project="p", start_time=start, duration=86486,
                  state="completed", resources=[{"hostname": f"e{n:04d}"} for n in range(args.nodes)],
                  num_nodes=args.nodes, subcluster="haswell", monitoring_status=3)
        writer = JobArchive(root)
        meta = {"jobId": job.job_id, "cluster": job.cluster, "startTime": start}
        t = time.perf_counter()
        d = writer.write(meta, data)
        write_s = time.perf_counter() - t
        path = d / "data.json.gz"
        raw_len = len(gzip.decompress(path.read_bytes()))
        print(f"   data.json.gz {path.stat().st_size / 2**20:.2f} MiB ({raw_len / 2**20:.2f} MiB JSON), "
              f"written in {write_s * 1e3:.0f} ms")
        uncached = JobArchive(root, cache_bytes=0)
        cached = JobArchive(root)
        assert uncached.load_data("emmy", 1403244, start) == data == json.loads(gzip.decompress(path.read_bytes()))

        def baseline():
            with open(path, "rb") as f:
                return json.loads(gzip.decompress(f.read()))

        runs = {"baseline gzip+json.loads": baseline,
                "load_data, no cache": lambda: uncached.load_data("emmy", 1403244, start),
                "load_data, cached": lambda: cached.load_data("emmy", 1403244, start),
                "load_archived 600 s, no cache": lambda: jobdata.load_archived(uncached, job, None, ["node"], 600)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.reps):
            for name, fn in runs.items():
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        base = median(times["baseline gzip+json.loads"])
        for name, xs in times.items():
            m = median(xs)
            print(f"   {name:<32} median {m * 1e3:8.1f} ms   min {min(xs) * 1e3:8.1f} ms   {m / base:5.2f}x baseline")
        ratio = median(times["load_data, no cache"]) / base
        print(f"   target <= {TARGET_RATIO}x baseline: {'met' if ratio <= TARGET_RATIO else 'NOT met'} ({ratio:.2f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
