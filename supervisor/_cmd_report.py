"""``cc-supervise report``: a job's efficiency report (or a table of a user's recent jobs)."""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from cc.config import ConfigError, load_config


def cmd_report(args: argparse.Namespace) -> int:
    from cc.report import ReportError, build, find_job, parse_since, render, render_table, user_jobs

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    tty = sys.stdout.isatty() if args.color == "auto" else args.color == "always"
    try:
        if args.user is not None:
            if args.jobid is not None:
                print("error: give either JOBID or --user, not both", file=sys.stderr)
                return 2
            since = parse_since(args.since)
            now = time.time()
            reports, errors = [], []
            for rec in user_jobs(cfg, args.user, since, args.cluster, args.limit, now=now, errors=errors):
                try:
                    reports.append(build(cfg, rec, now))
                except (ReportError, ValueError, OSError) as e:
                    errors.append(f"job {rec.job.job_id} on {rec.job.cluster}: {e}")
            for msg in errors:
                print(f"error: {msg} (left out)", file=sys.stderr)
            if args.json:
                print(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode())
            elif not reports:
                print(f"no jobs of {args.user} started in the last {args.since}")
            else:
                render_table(reports, sys.stdout, tty=tty)
            return 1 if errors else 0
        if args.jobid is None:
            print("error: give a JOBID, or --user USER for a table of their jobs", file=sys.stderr)
            return 2
        rec = find_job(cfg, args.jobid, args.cluster)
        rep = build(cfg, rec)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:  # cluster.json no longer matching the job, unreadable data.json
        print(f"error: job {args.jobid}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode())
    else:
        render(rep, rep["tags"], rep["hints"], rep["source"], sys.stdout, tty=tty)
    return 0


def add_parser(add) -> None:
    """Register ``report`` through cli.build_parser's ``add(name, fn, help)``."""
    sp = add("report", cmd_report, "efficiency report of a job (CPU, memory, GPU, flops and bandwidth against the "
                                   "subcluster's peaks, energy, tags) with advice; --user for a table of jobs")
    sp.add_argument("jobid", nargs="?", type=int, help="the scheduler's job id")
    sp.add_argument("--cluster", help="cluster of the job (needed when the id exists on several clusters)")
    sp.add_argument("--user", help="a table of this user's jobs instead of one job")
    sp.add_argument("--since", default="7d", help="with --user: jobs started within this time (7d, 12h, 2w; "
                                                  "default 7d)")
    sp.add_argument("--limit", type=int, default=100, help="with --user: at most this many jobs (default 100)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                    help="coloured bars: auto = when stdout is a terminal")
