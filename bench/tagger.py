"""apply-tags: the app tagger and the job classifier over 100,000 archived jobs.

A temporary archive of ``--jobs`` generated finished jobs (``tests.archive_gen``: the test
cluster's 7 metrics with random statistics, so some jobs fall into every job class whose
metrics it has), registered with ``init_db``; every job gets one of the test job scripts
(21 applications, each script also carrying ``#SBATCH`` lines and comments).  Measured:
``cc.tagger.apply_all`` with both taggers (jobs/s, and the share of the time spent in the
job classifier including reading each ``meta.json``), then a second run (idempotent: no
new tags), then ``cc-supervise apply-tags`` (process start and progress bar included).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import header  # noqa: E402
from cc.archive import JobArchive  # noqa: E402
from cc.archive.dbsync import init_db  # noqa: E402
from cc.db import connect, migrate  # noqa: E402
from cc.tagger import Taggers, apply_all  # noqa: E402
from tests.archive_gen import generate, init_archive  # noqa: E402
from tests.helpers import Installation, small_cluster  # noqa: E402
from tests.test_tagger import HEADER, SCRIPTS  # noqa: E402


def tag_rows(db: Path) -> int:
    conn = connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM jobtag").fetchone()[0])
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000)
    args = ap.parse_args(argv)
    header(f"tagger: apply-tags over {args.jobs:,} archived jobs")
    tmp = Path(tempfile.mkdtemp(prefix="bench-tagger-"))
    try:
        inst = Installation(tmp / "inst")
        clusters = init_archive(inst.cfg.archive_path, {"c1": small_cluster()})
        t = time.perf_counter()
        generate(inst.cfg.archive_path, clusters["c1"], args.jobs)
        db = inst.cfg.db_path
        migrate(db)
        res = init_db(db, JobArchive(inst.cfg.archive_path), clusters)
        assert res.jobs == args.jobs, res.errors[:3]
        scripts = [orjson.dumps({"jobScript": HEADER + s}).decode() for s in SCRIPTS.values()]
        conn = connect(db)
        conn.execute("BEGIN")
        conn.executemany("UPDATE job SET meta_data = ? WHERE id = ?",
                         ((scripts[i % len(scripts)], i) for i in range(1, args.jobs + 1)))
        conn.execute("COMMIT")
        conn.close()
        before = tag_rows(db)
        print(f"   generated and registered {args.jobs:,} jobs ({before:,} tags from the archive) in "
              f"{time.perf_counter() - t:.1f} s")
        taggers = Taggers(None)
        print(f"   rules: {len(taggers.rules.apps)} apps, {len(taggers.rules.classes)} job classes")
        for label in ("first run", "second run"):
            conn = connect(db)
            try:
                r = apply_all(conn, taggers, JobArchive(inst.cfg.archive_path), clusters)
            finally:
                conn.close()
            rows = tag_rows(db)
            print(f"   apply_all, {label}: {r.seconds:.2f} s = {r.rate:,.0f} jobs/s; app tagger {r.app_seconds:.2f} s "
                  f"({r.app_seconds / r.seconds:.0%}), job classes {r.class_seconds:.2f} s "
                  f"({r.class_seconds / r.seconds:.0%}, meta.json reads included); {r.app_tags:,} app and "
                  f"{r.class_tags:,} job-class matches; job-tag rows {before:,} -> {rows:,}")
            before = rows
        t = time.perf_counter()
        out = inst.cli("apply-tags", timeout=1800)
        wall = time.perf_counter() - t
        assert out.returncode == 0, out.stderr[-2000:]
        print(f"   cc-supervise apply-tags: {out.stdout.strip()}; wall {wall:.2f} s = {args.jobs / wall:,.0f} jobs/s")
        assert tag_rows(db) == before, "apply-tags is not idempotent"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
