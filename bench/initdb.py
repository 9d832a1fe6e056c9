"""init-db: rebuild the job tables from an archive of generated jobs (cc-backend: ~2,200 jobs/s).

A temporary archive of ``--jobs`` finished jobs (default 100,000) on one cluster with the
test cluster's 7 metrics: 1-8 nodes, some shared nodes and GPUs, 0-2 tags, statistics,
footprint and energy.  Measured: ``cc.archive.dbsync.init_db`` on a freshly migrated
database, with the default number of parse workers and with one (all in this process),
and once through ``cc-supervise init-db`` (process start, migration and progress bar
included).  Every run validates each meta.json against the job-meta schema.
Target: >= 10,000 jobs/s.  ClusterCockpit's documentation reports 3,936 jobs in 1.79 s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import header  # noqa: E402
from cc.archive import JobArchive  # noqa: E402
from cc.archive.dbsync import init_db  # noqa: E402
from cc.db import migrate  # noqa: E402
from tests.archive_gen import generate, init_archive  # noqa: E402
from tests.helpers import Installation, small_cluster  # noqa: E402

TARGET = 10_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3, help="runs per configuration (best and median reported)")
    args = ap.parse_args(argv)
    header(f"initdb: {args.jobs:,} archived jobs -> job database")
    tmp = Path(tempfile.mkdtemp(prefix="bench-initdb-"))
    try:
        inst = Installation(tmp / "inst")
        clusters = init_archive(inst.cfg.archive_path, {"c1": small_cluster()})
        t = time.perf_counter()
        generate(inst.cfg.archive_path, clusters["c1"], args.jobs)
        size = sum(p.stat().st_size for p in inst.cfg.archive_path.rglob("meta.json"))
        print(f"   generated {args.jobs:,} meta.json files ({size / args.jobs:.0f} bytes each) in "
              f"{time.perf_counter() - t:.1f} s")
        archive = JobArchive(inst.cfg.archive_path)
        results: dict[str, list[float]] = {}
        for workers, label in ((None, "default workers"), (1, "1 process")):
            for _ in range(args.reps):
                db = tmp / f"run-{time.monotonic_ns()}.db"
                migrate(db)
                res = init_db(db, archive, clusters, workers=workers)
                assert res.jobs == args.jobs and not res.errors, res.errors[:3]
                results.setdefault(label, []).append(res.rate)
                phases = ", ".join(f"{k} {v:.2f} s" for k, v in res.phases.items())
                print(f"   {label}: {res.seconds:.2f} s = {res.rate:,.0f} jobs/s  ({phases})")
                db.unlink()
                for extra in db.parent.glob(db.name + "-*"):
                    extra.unlink()
        for label, rates in results.items():
            rates.sort()
            print(f"   init_db, {label:<16} best {rates[-1]:>9,.0f} jobs/s   median {rates[len(rates) // 2]:>9,.0f}"
                  f" jobs/s   ({args.jobs / rates[-1]:.2f} s)")
        t = time.perf_counter()
        r = inst.cli("init-db", timeout=600)
        wall = time.perf_counter() - t
        assert r.returncode == 0, r.stderr[-2000:]
        print(f"   cc-supervise init-db: {r.stdout.strip()}; wall {wall:.2f} s incl. process start "
              f"= {args.jobs / wall:,.0f} jobs/s")
        best = max(results["default workers"])
        print(f"   target >= {TARGET:,} jobs/s: {'met' if best >= TARGET else 'NOT met'} "
              f"({best / 2200:.1f}x cc-backend's documented ~2,200 jobs/s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
