"""Run every benchmark of bench/ with its default options, one after the other (``make bench``).

Each benchmark starts and stops its own installation; their output goes to stdout, and a
summary of exit codes and durations is printed at the end.  Options: ``--only NAME`` (repeatable)
and ``--skip NAME`` (repeatable).  Figures are collected by hand into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCHES = ["ingest", "memory", "query", "restart", "wal_ingest", "snapshot", "restart_disk", "initdb", "joblist", "archive_load",
           "joblist_graphql", "agent", "ui", "nats_ingest", "sharded", "web_memory", "soak"]
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=BENCHES, help="run only this benchmark (repeatable)")
    ap.add_argument("--skip", action="append", choices=BENCHES, default=[], help="skip this benchmark")
    args = ap.parse_args(argv)
    names = [b for b in (args.only or BENCHES) if b not in args.skip]
    summary = []
    for name in names:
        t = time.perf_counter()
        try:
            rc = subprocess.call([sys.executable, str(HERE / f"{name}.py")], cwd=HERE.parent)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        summary.append((name, rc, time.perf_counter() - t))
        print(flush=True)
    print("== summary")
    for name, rc, dt in summary:
        print(f"   {name:<12} {'ok' if rc == 0 else f'FAILED (exit {rc})':<18} {dt:6.0f} s")
    return 0 if all(rc == 0 for _, rc, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
