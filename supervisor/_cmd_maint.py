"""Maintenance subcommands: ``revert-db``, ``optimize-db``, ``cleanup-checkpoints`` (cc-backend's flags of
the same names), and the task table of ``status``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from cc import ipc


def _running(cfg) -> bool:
    try:
        return bool(ipc.request_sync(cfg.run_dir / "supervisor.sock", {"cmd": "status"}, timeout=2))
    except (ipc.IPCError, OSError):
        return False


def _refuse_while_running(cfg, what: str) -> bool:
    if _running(cfg):
        print(f"error: the installation is running; stop it first ('cc-supervise stop'), then {what}",
              file=sys.stderr)
        return True
    return False


def cmd_revert_db(args, cfg) -> int:
    from cc.db import MigrationError
    from cc.db._migrate import revert

    if _refuse_while_running(cfg, "revert the database"):
        return 1
    try:
        res = revert(cfg.db_path)
    except MigrationError as e:
        print(f"error: {cfg.db_path}: {e}", file=sys.stderr)
        return 1
    print(f"reverted {cfg.db_path} from version {res.from_version} to {res.to_version}; backup copy: {res.backup} "
          "('cc-supervise migrate-db' upgrades it again)")
    return 0


def optimize_db(path: Path) -> tuple[int, int]:
    """VACUUM and ANALYZE the job database; its size before and after, in bytes."""
    import sqlite3

    before = path.stat().st_size
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("VACUUM")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return before, path.stat().st_size


def cmd_optimize_db(args, cfg) -> int:
    import sqlite3

    if not cfg.db_path.exists():
        print(f"error: {cfg.db_path}: no database", file=sys.stderr)
        return 1
    try:
        before, after = optimize_db(cfg.db_path)
    except sqlite3.Error as e:
        print(f"error: {cfg.db_path}: {e}", file=sys.stderr)
        return 1
    print(f"optimized {cfg.db_path} (VACUUM, ANALYZE): {before:,} -> {after:,} bytes")
    return 0


# -- cleanup-checkpoints ----------------------------------------------------------------------

def checkpoint_cleanup_plan(cfg, now: float | None = None) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, reason) to remove from ``metric-store.checkpoints.directory``, and notes on what is kept.

    Removed: snapshots beyond the two newest and WAL files older than the older of them (what the store
    process prunes after each snapshot), ``*.damaged`` snapshots and temporary files older than the
    retention, and snapshot/WAL files whose newest point is older than ``retention-in-memory`` (a restore
    drops such points anyway).  With ``cleanup.mode: archive`` that last kind goes only once the store
    process has archived the points (its ``.archive-state.json``), so nothing unarchived is lost.
    """
    import orjson

    from cc.shm._snapshot import list_snapshots
    from cc.storeproc._archive import STATE_FILE, margin_seconds
    from cc.wal import file_epoch, list_wal_files
    from supervisor.cli import checkpoint_info

    ms = cfg.metric_store
    d = Path(ms.checkpoint_dir)
    now = time.time() if now is None else now
    horizon = now - ms.retention
    notes: list[str] = []
    if ms.cleanup_mode == "archive":
        archived_to = None
        if ms.cleanup_dir is not None and (Path(ms.cleanup_dir) / STATE_FILE).exists():
            try:
                archived_to = orjson.loads((Path(ms.cleanup_dir) / STATE_FILE).read_bytes()).get("archived_to")
            except (OSError, orjson.JSONDecodeError) as e:
                notes.append(f"cannot read the archive state ({e}): keeping every file with points")
        horizon = (archived_to - ms.retention - margin_seconds(ms.retention)) if archived_to else float("-inf")
        notes.append("cleanup.mode archive: only points already archived to Parquet count as expired")
    out: list[tuple[Path, str]] = []
    snaps = list_snapshots(d)
    keep_from = snaps[1][0] if len(snaps) >= 2 else None
    for _, p in snaps[2:]:
        out.append((p, "older than the two newest snapshots"))
    wal = list_wal_files(d)
    if keep_from is not None:
        out += [(p, "WAL before the older kept snapshot") for p in wal if file_epoch(p) < keep_from]
    for p in [*d.glob("*.damaged"), *d.glob(".snapshot-*.tmp")] if d.is_dir() else []:
        if p.stat().st_mtime < now - ms.retention:
            out.append((p, "damaged or temporary file older than the retention"))
    chosen = {p for p, _ in out}
    for p in [pp for _, pp in snaps[:2]] + [w for w in wal if w not in chosen]:
        try:
            info = checkpoint_info(p)
        except OSError as e:
            notes.append(f"{p.name}: unreadable ({e.strerror}); kept")
            continue
        newest = info.get("points_to")
        if newest is not None and newest < horizon:
            out.append((p, "every point is older than the retention"))
    return out, notes


def cmd_cleanup_checkpoints(args, cfg) -> int:
    if not args.dry_run and _refuse_while_running(cfg, "clean up the checkpoints"):
        return 1
    plan, notes = checkpoint_cleanup_plan(cfg)
    for n in notes:
        print(f"note: {n}")
    freed = 0
    for p, why in plan:
        size = p.stat().st_size if p.exists() else 0
        if not args.dry_run:
            p.unlink(missing_ok=True)
        freed += size
        print(f"{'would remove' if args.dry_run else 'removed'} {p} ({why})")
    print(f"{len(plan)} files, {freed:,} bytes {'would be ' if args.dry_run else ''}freed "
          f"in {cfg.metric_store.checkpoint_dir}")
    return 0


# -- tasks in status --------------------------------------------------------------------------

def task_state(cfg) -> list[dict[str, Any]] | None:
    """The archiver process's tasks (None: it does not answer)."""
    try:
        st = ipc.request_sync(cfg.run_dir / "archiver.sock", {"cmd": "status"}, timeout=3)
    except (ipc.IPCError, OSError):
        return None
    return st.get("tasks") if st.get("ok") else None


def print_tasks(tasks: list[dict[str, Any]] | None) -> None:
    if tasks is None:
        print("tasks: the archiver does not answer")
        return
    print(f"{'TASK':<30} {'EVERY':>7} {'RUNS':>6} {'FAILED':>6} {'LAST RUN':>19} {'TOOK':>8}  RESULT / ERROR")
    for t in tasks:
        last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t["last_start"])) if t["last_start"] else "-"
        took = f"{t['last_duration']:.3f}s" if t["last_duration"] is not None else "-"
        what = f"error: {t['last_error']}" if t["last_error"] else (
            ", ".join(f"{k} {v}" for k, v in t["last_result"].items()) if isinstance(t["last_result"], dict)
            else "-")
        print(f"{t['name']:<30} {int(t['interval']):>6}s {t['runs']:>6} {t['failures']:>6} {last:>19} {took:>8}  "
              f"{what}")
