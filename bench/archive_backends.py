"""archive-backends: write and read the same jobs on the file, SQLite and S3 stores, in one run.

Each job is a finished 2-node job with 6 node-scope metrics of 120 points (meta.json about
1.5 KB, data.json.gz about 9 KB: above the gzip threshold, as almost every real job).
Per store, with ``--threads`` writer/reader threads (the archiver writes one job at a
time; the web process reads from several threads):

* write: ``JobArchive.write`` of every job (file: fsync'ed rename-into-place; SQLite: one
  transaction per job; S3: two PUTs per job on a local moto server);
* list: every job key (init-db's walk);
* read: ``load_meta`` + ``load_data`` of every job with the cache off (what a job view costs).

S3 runs against ``moto_server`` (moto[server], the test extra) on 127.0.0.1: it measures
the client side and the protocol round trips, not a production object store.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench._common import header  # noqa: E402
from cc.archive import JobArchive  # noqa: E402
from cc.archive._storage import FileStore, S3Store, SqliteStore  # noqa: E402

METRICS = ("cpu_load", "mem_used", "flops_any", "mem_bw", "ipc", "cpu_power")


def make_job(i: int, rng: np.random.Generator, points: int) -> tuple[dict, dict]:
    start = 1_700_000_000 + 60 * i
    hosts = [f"n{(i + k) % 512:04d}" for k in range(2)]
    meta = {"jobId": 100_000 + i, "cluster": "bench", "subCluster": "main", "user": f"user{i % 40}",
            "project": f"proj{i % 9}", "startTime": start, "duration": 120 * points, "walltime": 86400,
            "jobState": "completed", "numNodes": 2, "numHwthreads": 128, "exclusive": 1, "smt": 1,
            "monitoringStatus": 3, "resources": [{"hostname": h} for h in hosts], "tags": [],
            "statistics": {m: {"unit": {"base": ""}, "avg": 1.0, "min": 0.0, "max": 2.0} for m in METRICS}}
    data = {}
    for m in METRICS:
        series = []
        for h in hosts:
            v = np.round(rng.gamma(2.0, 40.0, points), 2)
            series.append({"hostname": h, "statistics": {"avg": round(float(v.mean()), 2), "min": float(v.min()),
                                                         "max": float(v.max())}, "data": v.tolist()})
        data[m] = {"node": {"unit": {"base": ""}, "timestep": 60, "series": series}}
    return meta, data


def run_store(name: str, archive: JobArchive, jobs: list[tuple[dict, dict]], threads: int) -> dict[str, float]:
    archive.init_version()
    out: dict[str, float] = {}
    with ThreadPoolExecutor(threads) as pool:
        t = time.perf_counter()
        list(pool.map(lambda j: archive.write(*j), jobs))
        out["write"] = time.perf_counter() - t
        t = time.perf_counter()
        keys = list(archive.job_keys())
        out["list"] = time.perf_counter() - t
        assert len(keys) == len(jobs), (name, len(keys))

        def read(j):
            m = j[0]
            meta = archive.load_meta(m["cluster"], m["jobId"], m["startTime"])
            data = archive.load_data(m["cluster"], m["jobId"], m["startTime"])
            assert meta["jobId"] == m["jobId"] and len(data) == len(METRICS)

        t = time.perf_counter()
        list(pool.map(read, jobs))
        out["read"] = time.perf_counter() - t
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=120)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--stores", default="file,sqlite,s3")
    args = ap.parse_args(argv)
    header(f"archive-backends: {args.jobs:,} jobs written and read on {args.stores}, {args.threads} threads")
    rng = np.random.default_rng(1)
    jobs = [make_job(i, rng, args.points) for i in range(args.jobs)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-archive-backends-"))
    server = None
    try:
        results = {}
        for kind in args.stores.split(","):
            if kind == "file":
                archive = JobArchive(FileStore(tmp / "files"), cache_bytes=0)
            elif kind == "sqlite":
                archive = JobArchive(SqliteStore(tmp / "archive.db"), cache_bytes=0)
            elif kind == "s3":
                from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server

                server = S3Server(tmp / "moto").start()
                bucket = server.bucket("bench-archive")
                archive = JobArchive(S3Store(endpoint=server.endpoint, bucket=bucket, access_key=ACCESS_KEY,
                                             secret_key=SECRET_KEY, region="us-east-1", use_path_style=True),
                                     cache_bytes=0)
            else:
                raise SystemExit(f"unknown store {kind!r}")
            res = results[kind] = run_store(kind, archive, jobs, args.threads)
            archive.close()
            print(f"   {kind:<7} write {args.jobs / res['write']:>8,.0f} jobs/s ({res['write']:6.1f} s)   "
                  f"list {res['list']:6.2f} s   read {args.jobs / res['read']:>8,.0f} jobs/s ({res['read']:6.1f} s)",
                  flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
