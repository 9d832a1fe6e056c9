"""``cc-supervise archive ...``: the archive manager (validate, convert, remove, info) and retention.

All subcommands work on the archive config.json names (``archive.kind`` file, sqlite or
s3); ``convert`` takes the target on the command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
import time

from cc.archivecfg import ArchiveConfigError, ArchiveSettings, parse_s3


def _fmt(ts: int | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _source(args):
    from cc.archive import ArchiveError, open_archive
    from supervisor.cli import _load

    cfg = _load(args)
    try:
        archive = open_archive(cfg.archive, cache_bytes=0)
        archive.version()
    except (ArchiveError, OSError, sqlite3.Error) as e:
        raise SystemExit(f"error: {e}") from None
    return cfg, archive


def cmd_validate(args) -> int:
    from cc.archive.dbsync import ProgressBar
    from cc.archive.manage import validate_archive

    _, archive = _source(args)
    bar = ProgressBar(sys.stderr, what="jobs") if not args.quiet else None
    bad = 0
    for msg in validate_archive(archive, progress=bar):
        if bar is not None:
            bar.clear_line()
        print(msg)
        bad += 1
    n = sum(1 for _ in archive.job_keys())
    print(f"{n} jobs checked in {archive.location()}: " + (f"{bad} bad files" if bad else "all files valid"),
          file=sys.stderr)
    return 1 if bad else 0


def _target(args, cfg) -> ArchiveSettings:
    """The conversion target from --path / --db-path / --endpoint ... (relative to the working directory)."""
    from pathlib import Path

    out = ArchiveSettings(kind=args.to, path=cfg.archive_path)
    try:
        if args.to == "file":
            if not args.path:
                raise ArchiveConfigError("--path is required for --to file")
            out.path = Path(args.path).resolve()
        elif args.to == "sqlite":
            if not args.db_path:
                raise ArchiveConfigError("--db-path is required for --to sqlite")
            out.db_path = Path(args.db_path).resolve()
        else:
            out.s3 = parse_s3({"endpoint": args.endpoint, "bucket": args.bucket, "access-key": args.access_key,
                               "secret-key": args.secret_key, "region": args.region,
                               "use-path-style": args.use_path_style}, "target")
    except ArchiveConfigError as e:
        raise SystemExit(f"error: {e}") from None
    return out


def cmd_convert(args) -> int:
    from cc.archive import open_archive
    from cc.archive.dbsync import ProgressBar
    from cc.archive.manage import convert

    cfg, src = _source(args)
    target = _target(args, cfg)
    try:
        dst = open_archive(target, cache_bytes=0)
    except (OSError, sqlite3.Error) as e:
        raise SystemExit(f"error: target: {e}") from None
    if dst.location() == src.location():
        raise SystemExit("error: the target is the configured archive itself")
    try:
        res = convert(src, dst, progress=ProgressBar(sys.stderr, what="jobs"))
    except (OSError, sqlite3.Error) as e:
        raise SystemExit(f"error: conversion stopped (run it again to resume): {e}") from None
    finally:
        dst.close()
    print(f"{res.copied} jobs copied, {res.skipped} already there, {res.clusters} cluster.json files "
          f"-> {dst.location()}")
    if res.missing:
        print(f"error: {len(res.missing)} jobs missing in the target after the copy, e.g. {res.missing[0]}",
              file=sys.stderr)
        return 1
    print(f"verified: all {res.total} jobs of the source are in the target")
    return 0


def _parse_date(text: str) -> int:
    """``YYYY-MM-DD`` (local midnight), ``YYYY-MM-DDTHH:MM[:SS]`` or a Unix timestamp."""
    if text.isdigit():
        return int(text)
    try:
        return int(dt.datetime.fromisoformat(text).timestamp())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD[THH:MM[:SS]] or a Unix timestamp") from None


def cmd_remove(args) -> int:
    from cc.archive.dbsync import ProgressBar
    from cc.archive.manage import remove_before

    _, archive = _source(args)
    removed = remove_before(archive, args.before, dry_run=args.dry_run,
                            progress=None if args.dry_run else ProgressBar(sys.stderr, what="jobs"))
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed)} jobs that started before {_fmt(args.before)} from {archive.location()}")
    return 0


def cmd_info(args) -> int:
    import orjson

    from cc.archive.manage import info, store_size

    _, archive = _source(args)
    per = info(archive)
    if args.json:
        print(orjson.dumps({"archive": archive.location(), "kind": archive.kind,
                            "clusters": {k: vars(v) for k, v in per.items()}}, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{archive.kind} archive {archive.location()}")
    print(f"{'cluster':<20} {'jobs':>10} {'MB':>12}  {'oldest':<16}  {'newest':<16}")
    total_jobs = total_bytes = 0
    oldest = newest = None
    for name, ci in sorted(per.items()):
        print(f"{name:<20} {ci.jobs:>10,} {ci.bytes / 2**20:>12.2f}  {_fmt(ci.oldest):<16}  {_fmt(ci.newest):<16}")
        total_jobs += ci.jobs
        total_bytes += ci.bytes
        if ci.oldest is not None:
            oldest = ci.oldest if oldest is None else min(oldest, ci.oldest)
            newest = ci.newest if newest is None else max(newest, ci.newest or 0)
    print(f"{'TOTAL':<20} {total_jobs:>10,} {total_bytes / 2**20:>12.2f}  {_fmt(oldest):<16}  {_fmt(newest):<16}")
    size = store_size(archive)
    if size is not None:
        print(f"SQLite file: {size / 2**20:.2f} MB")
    return 0


def cmd_retention(args) -> int:
    from cc.archive import retention
    from cc.archive.dbsync import ProgressBar
    from cc.db import MigrationError, migrate

    cfg, archive = _source(args)
    if cfg.archive.retention is None:
        raise SystemExit("error: archive.retention is not configured in config.json")
    try:
        migrate(cfg.db_path)
    except MigrationError as e:
        raise SystemExit(f"error: {cfg.db_path}: {e}") from None
    try:
        report = retention.run(cfg.archive.retention, archive, cfg.db_path, var_dir=cfg.var_dir,
                               dry_run=args.dry_run, progress=None if args.dry_run else ProgressBar(sys.stderr))
    except (OSError, sqlite3.Error) as e:
        raise SystemExit(f"error: retention: {e}") from None
    print(report.summary())
    for f in report.files:
        print(f"wrote {f}")
    for msg in report.errors:
        print(f"error: {msg}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_compress(args) -> int:
    from cc.archive import compress
    from cc.archive.dbsync import ProgressBar

    cfg, archive = _source(args)
    days = args.age if args.age is not None else cfg.archive.compression_days
    if days is None:
        raise SystemExit("error: give --age DAYS or set archive.compression in config.json")
    try:
        report = compress.compress_before(archive, cfg.db_path, days, dry_run=args.dry_run,
                                          progress=ProgressBar(sys.stderr))
    except (OSError, sqlite3.Error) as e:
        raise SystemExit(f"error: compression: {e}") from None
    print(report.summary())
    for msg in report.errors:
        print(f"error: {msg}", file=sys.stderr)
    return 1 if report.errors else 0


def register(sub, add_common) -> None:
    """The ``archive`` command group (called from supervisor.cli.build_parser)."""
    ap = sub.add_parser("archive", help="check, convert, prune and describe the job archive; run retention",
                        description="archive manager: validate, convert, remove, info, retention, compress")
    add_common(ap)
    asub = ap.add_subparsers(dest="archive_command", metavar="ACTION", required=True)

    def add(name, fn, help_):
        sp = asub.add_parser(name, help=help_, description=help_)
        add_common(sp)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("validate", cmd_validate, "schema-check every cluster.json, meta.json and data.json; one line per bad "
                                       "file naming the field (exit code 1 if any)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp = add("convert", cmd_convert, "copy the archive into another store, file for file; resumable (jobs already "
                                     "in the target are skipped), counts verified at the end")
    sp.add_argument("--to", required=True, choices=("file", "sqlite", "s3"), help="kind of the target")
    sp.add_argument("--path", help="target directory (--to file)")
    sp.add_argument("--db-path", help="target SQLite file (--to sqlite)")
    sp.add_argument("--endpoint", help="S3 endpoint URL, e.g. http://127.0.0.1:9000 (--to s3)")
    sp.add_argument("--bucket", help="S3 bucket (--to s3; must exist)")
    sp.add_argument("--access-key")
    sp.add_argument("--secret-key")
    sp.add_argument("--region")
    sp.add_argument("--use-path-style", action="store_true", help="path-style S3 URLs (MinIO, Ceph, moto)")
    sp = add("remove", cmd_remove, "delete every job that started before a date from the archive (not from the "
                                   "database)")
    sp.add_argument("--before", required=True, type=_parse_date, metavar="DATE",
                    help="YYYY-MM-DD (local midnight), YYYY-MM-DDTHH:MM or a Unix timestamp")
    sp.add_argument("--dry-run", action="store_true", help="only count")
    sp = add("info", cmd_info, "jobs, size and oldest/newest start per cluster")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = add("retention", cmd_retention, "run archive.retention once now (it also runs daily in the archiver)")
    sp.add_argument("--dry-run", action="store_true", help="report what would be done, change nothing")
    sp = add("compress", cmd_compress, "gzip the data.json of archived jobs older than archive.compression days "
                                       "(it also runs daily in the archiver)")
    sp.add_argument("--age", type=float, metavar="DAYS", help="instead of archive.compression")
    sp.add_argument("--dry-run", action="store_true", help="only count")
