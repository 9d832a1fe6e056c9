"""``cc-supervise apply-tags``: run the job taggers over every job of the database (upstream's -apply-tags)."""

from __future__ import annotations

import sys
from typing import Any

KINDS = ("AppTagger", "JobClassTagger")  # cc.tagger.KINDS, without importing it for --help


def add_arguments(sp: Any) -> None:
    sp.add_argument("--only", choices=KINDS, help="run just this tagger (default: both)")


def cmd_apply_tags(args) -> int:
    from cc.archive.dbsync import ProgressBar
    from cc.db import connect
    from cc.tagger import Taggers, apply_all, site_dir
    from supervisor.cli import _archive_setup, _load

    cfg = _load(args)
    archive, clusters = _archive_setup(cfg)
    taggers = Taggers(site_dir(cfg))
    for e in taggers.rules.errors:
        print(f"error: {e} (rule skipped)", file=sys.stderr)
    kinds = (args.only,) if args.only else KINDS
    conn = connect(cfg.db_path)
    try:
        bar = ProgressBar(sys.stderr)
        res = apply_all(conn, taggers, archive, clusters, kinds=kinds, progress=bar)
    finally:
        conn.close()
    for e in res.errors[:20]:
        print(f"error: {e}", file=sys.stderr)
    share = res.class_seconds / res.seconds * 100 if res.seconds else 0.0
    print(f"{res.jobs} jobs tagged in {res.seconds:.2f}s ({res.rate:,.0f} jobs/s): {res.app_tags} app tags, "
          f"{res.class_tags} job-class tags ({len(taggers.rules.apps)} apps, {len(taggers.rules.classes)} job classes; "
          f"job classes took {share:.0f}% of the time)" + (f"; {len(res.errors)} errors" if res.errors else ""))
    return 1 if res.errors or taggers.rules.errors else 0
