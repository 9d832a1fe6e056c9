"""``cc-supervise``: set up, run and operate a ClusterCockpit installation."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from cc import ipc
from cc.config import ConfigError, load_config
from cc.shm import instance_id, list_segments, unlink_all
from supervisor import _cmd_tagger

EPILOG = """\
commands:
  init [DIR]            create config.json, .env (fresh Ed25519 keys) and var/ in DIR
  run                   run all processes in the foreground (Ctrl-C stops cleanly)
  start                 run in the background; returns when the processes are up
  stop                  stop a running supervisor (removes its shared memory)
  status                pid, uptime, restarts, memory (and NATS connection) of every process; the
                        maintenance tasks' last runs and errors
  restart NAME          restart one process (store, web, archiver, forkserver, ingest-N, or 'ingest' for all)
  logs NAME [-n N]      last lines of a process log (or 'supervisor')
  jwt USER [--roles R]  print a JWT signed with JWT_PRIVATE_KEY (roles from the database by default)
  add-user N:R:PW       add a local user (roles comma-separated: user,manager,support,admin,api)
  del-user NAME         delete a user (their web sessions end with it)
  end-sessions NAME     log a user out everywhere (their web sessions end at once)
  sync-ldap             add the users of the LDAP directory (auth.ldap) and, with sync-del-old-users, remove
                        LDAP users it no longer has (local users are never touched)
  migrate-db            create or upgrade the job database (cc-backend versions 10 and 11 too)
  init-db               rebuild the job and tag tables from the job archive
  import-job M:D[,...]  import finished jobs (meta.json:data.json pairs) into the archive and database
  checkpoint-info FILE  what a WAL or snapshot file holds: time range, counts, checksum errors
  revert-db             one migration of the job database down (after a backup copy)
  optimize-db           VACUUM and ANALYZE the job database
  cleanup-checkpoints   remove metric-store checkpoint/WAL files not needed any more (--dry-run lists them)
  archive ACTION        job archive: validate, convert --to file|sqlite|s3, remove --before DATE, info,
                        retention [--dry-run], compress [--age DAYS]
  apply-tags            tag every job: applications (job scripts) and job classes (archived statistics)
  report JOBID          a job's efficiency (CPU, memory, GPU, flops, bandwidth, energy) with advice;
                        --user U --since 7d for a table of a user's jobs, --json for scripts
"""

ROLES = ("user", "manager", "support", "admin", "api")


def _load(args):
    try:
        return load_config(args.config)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None


def cmd_init(args) -> int:
    from supervisor._init import init_directory

    target = Path(args.dir).resolve()
    try:
        created = init_directory(target, args.cluster or [], args.web_addr, args.ingest_addr, args.memory_cap,
                                 force=args.force)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in created:
        print(f"created {p.relative_to(target) if p.is_relative_to(target) else p}")
    if not args.cluster:
        print("note: no cluster.json yet; add var/job-archive/<cluster>/cluster.json "
              "(or re-run with --cluster NAME for a template of this machine)")
    print(f"next: cd {target} && cc-supervise run")
    return 0


def cmd_run(args) -> int:
    from cc.logformat import configure
    from supervisor._manager import Supervisor

    cfg = _load(args)
    configure("supervisor", logging.INFO)
    sup = Supervisor(cfg)
    try:
        trio.run(sup.run)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _sock(cfg) -> Path:
    return cfg.run_dir / "supervisor.sock"


def _ask(cfg, msg: dict, timeout: float = 30) -> dict | None:
    try:
        return ipc.request_sync(_sock(cfg), msg, timeout=timeout)
    except (ipc.IPCError, OSError):
        return None


def cmd_start(args) -> int:
    cfg = _load(args)
    if _ask(cfg, {"cmd": "status"}, timeout=2):
        print("already running")
        return 0
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    logf = open(cfg.log_dir / "supervisor.log", "ab")  # noqa: SIM115 - inherited by the daemon
    p = subprocess.Popen([sys.executable, "-m", "supervisor", "run", "--config", str(cfg.path)],
                         stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                         cwd=str(cfg.base_dir))
    logf.close()
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        st = _ask(cfg, {"cmd": "status"}, timeout=2)
        if st and all(pr["pid"] for pr in st["processes"]):
            print(f"started (pid {p.pid}); web {st['supervisor']['addresses']['web']}, "
                  f"ingest {st['supervisor']['addresses']['ingest']}")
            return 0
        if p.poll() is not None:
            break
        time.sleep(0.2)
    print("error: supervisor did not come up; last log lines:", file=sys.stderr)
    from supervisor._manager import tail_lines

    for line in tail_lines(cfg.log_dir / "supervisor.log", 20):
        print("  " + line, file=sys.stderr)
    return 1


def cmd_stop(args) -> int:
    cfg = _load(args)
    reply = _ask(cfg, {"cmd": "stop"})
    if not reply:
        inst = instance_id(cfg.var_dir)
        stale = unlink_all(inst)
        msg = "not running"
        if stale:
            msg += f"; removed {len(stale)} stale shared-memory segments"
        print(msg)
        return 0
    pid = reply["pid"]
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        if not supervisor_alive(cfg):
            print("stopped")
            return 0
        time.sleep(0.1)
    print(f"error: supervisor (pid {pid}) still running after {args.timeout:.0f}s", file=sys.stderr)
    return 1


def supervisor_alive(cfg) -> bool:
    """True while a supervisor holds the lock on var/run/supervisor.pid (works for zombies too)."""
    try:
        fd = os.open(cfg.run_dir / "supervisor.pid", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _fmt_age(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def cmd_status(args) -> int:
    cfg = _load(args)
    st = _ask(cfg, {"cmd": "status"}, timeout=5)
    if not st:
        segs = list_segments(instance_id(cfg.var_dir))
        print("not running" + (f" ({len(segs)} shared-memory segments left; 'stop' removes them)" if segs else ""))
        return 3
    from supervisor._cmd_maint import print_tasks, task_state

    st["tasks"] = task_state(cfg)
    if args.json:
        import orjson

        print(orjson.dumps(st, option=orjson.OPT_INDENT_2).decode())
        return 0
    s = st["supervisor"]
    print(f"supervisor pid {s['pid']}  up {_fmt_age(s['uptime'])}  rss {_fmt_bytes(s['rss'])}  "
          f"web {s['addresses']['web']}  ingest {s['addresses']['ingest']}")
    print(f"shared memory: {st['shared_memory']['segments']} segments, "
          f"{_fmt_bytes(st['shared_memory']['allocated_bytes'])} in use")
    nats = any("nats" in p for p in st["processes"])
    col = f" {'NATS':<12}" if nats else ""
    print(f"{'NAME':<12} {'PID':>7} {'STATE':<10} {'UPTIME':>8} {'RESTARTS':>8} {'RSS':>10}{col}  LAST EXIT")
    for p in st["processes"]:
        col = f" {p.get('nats', '-'):<12}" if nats else ""
        print(f"{p['name']:<12} {p['pid'] or '-':>7} {p['state']:<10} {_fmt_age(p['uptime']):>8} "
              f"{p['restarts']:>8} {_fmt_bytes(p['rss']):>10}{col}  {p['last_exit'] or '-'}")
    print_tasks(st["tasks"])
    return 0


def cmd_restart(args) -> int:
    cfg = _load(args)
    reply = _ask(cfg, {"cmd": "restart", "name": args.name}, timeout=60)
    if not reply:
        print("error: supervisor not running", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"error: {reply.get('error')}", file=sys.stderr)
        return 1
    print("restarted " + ", ".join(reply["restarted"]))
    return 0


def cmd_logs(args) -> int:
    cfg = _load(args)
    reply = _ask(cfg, {"cmd": "logs", "name": args.name, "lines": args.lines})
    if reply is None:
        from supervisor._manager import tail_lines

        path = cfg.log_dir / f"{args.name}.log"
        if not path.exists():
            print(f"error: supervisor not running and no log file {path}", file=sys.stderr)
            return 1
        lines = tail_lines(path, args.lines)
    elif not reply.get("ok"):
        print(f"error: {reply.get('error')}", file=sys.stderr)
        return 1
    else:
        lines = reply["lines"]
    for line in lines:
        print(line)
    return 0


def _as_service_user(cfg) -> None:
    """Run as root with main.user set: become that user first, so no file we write belongs to root."""
    from supervisor._privileges import PrivilegeError, become

    try:
        become(cfg, strict=False)
    except (PrivilegeError, OSError) as e:
        raise SystemExit(f"error: {e}") from None


def _migrated(cfg) -> None:
    """Create or upgrade the job database; an error ends the command with its message."""
    from cc.db import MigrationError, migrate

    _as_service_user(cfg)
    try:
        migrate(cfg.db_path)
    except MigrationError as e:
        raise SystemExit(f"error: {cfg.db_path}: {e}") from None


def _db(cfg):
    """A connection to the migrated job database (created on first use)."""
    from cc.db import connect

    _migrated(cfg)
    return connect(cfg.db_path)


def cmd_jwt(args) -> int:
    from cc.db._users import get_user
    from cc.jwtauth import AuthError, load_private_key, sign_token

    cfg = _load(args)
    if args.roles is not None:
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    else:
        conn = _db(cfg)
        user = get_user(conn, args.user)
        conn.close()
        if user is None:
            print(f"error: no user {args.user!r} in the database (add it with add-user, or give --roles)",
                  file=sys.stderr)
            return 1
        roles = user.roles
    bad = [r for r in roles if r not in ROLES]
    if bad:
        print(f"error: unknown role(s) {', '.join(bad)} (valid: {', '.join(ROLES)})", file=sys.stderr)
        return 1
    priv = cfg.secret("JWT_PRIVATE_KEY")
    if not priv:
        print("error: JWT_PRIVATE_KEY is not set (in .env or the environment)", file=sys.stderr)
        return 1
    max_age = cfg.jwt_max_age or 2000 * 3600
    try:
        print(sign_token(load_private_key(priv), args.user, roles, max_age))
    except AuthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_add_user(args) -> int:
    from cc.db import UserError, transaction
    from cc.db._users import add_user

    cfg = _load(args)
    parts = args.spec.split(":", 2)
    if len(parts) != 3 or not parts[0]:
        print("error: expected NAME:ROLES:PASSWORD, e.g. alice:user,manager:secret (empty password = no login)",
              file=sys.stderr)
        return 1
    name, roles_s, password = parts
    roles = [r.strip() for r in roles_s.split(",") if r.strip()] or ["user"]
    conn = _db(cfg)
    try:
        transaction(conn, add_user, name, roles, password or None)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"added user {name} with roles {', '.join(roles)}")
    return 0


def cmd_del_user(args) -> int:
    from cc.db import transaction
    from cc.db._users import delete_user

    cfg = _load(args)
    conn = _db(cfg)
    try:
        gone = transaction(conn, delete_user, args.name)
    finally:
        conn.close()
    if not gone:
        print(f"error: no user {args.name!r}", file=sys.stderr)
        return 1
    print(f"deleted user {args.name}")
    return 0


def cmd_end_sessions(args) -> int:
    from cc.db import transaction
    from cc.db._users import end_sessions, get_user

    cfg = _load(args)
    conn = _db(cfg)
    try:
        if get_user(conn, args.name) is None:
            print(f"error: no user {args.name!r}", file=sys.stderr)
            return 1
        n = transaction(conn, end_sessions, args.name)
    finally:
        conn.close()
    print(f"ended {n} web session(s) of {args.name}")
    return 0


def cmd_sync_ldap(args) -> int:
    from cc.db import UserError, transaction
    from cc.progress import ProgressBar
    from cc.webd.ldapauth import LdapDirectory, LdapUnavailable, sync_users

    cfg = _load(args)
    if cfg.auth.ldap is None:
        print("error: auth.ldap is not configured in config.json", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    directory = LdapDirectory(cfg.auth.ldap, cfg.secret("LDAP_ADMIN_PASSWORD"))
    conn = _db(cfg)
    try:
        result = sync_users(directory, lambda fn, *a: transaction(conn, fn, *a), ProgressBar(sys.stderr, what="users"))
    except (LdapUnavailable, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"LDAP sync: {len(result.added)} added" + (f" ({', '.join(result.added)})" if result.added else "")
          + f", {len(result.removed)} removed" + (f" ({', '.join(result.removed)})" if result.removed else "")
          + ("" if cfg.auth.ldap.sync_del_old_users else " (auth.ldap.sync-del-old-users is off)"))
    return 0


def cmd_migrate_db(args) -> int:
    from cc.db import MigrationError, migrate
    from cc.progress import ProgressBar

    cfg = _load(args)
    _as_service_user(cfg)
    try:
        res = migrate(cfg.db_path, progress=ProgressBar(sys.stderr, what="statements"))
    except MigrationError as e:
        print(f"error: {cfg.db_path}: {e}", file=sys.stderr)
        return 1
    if res.from_version == res.to_version:
        print(f"{cfg.db_path} is already at version {res.to_version}")
    elif res.from_version is None:
        print(f"created {cfg.db_path} at version {res.to_version}")
    else:
        print(f"migrated {cfg.db_path} from version {res.from_version} to {res.to_version}; "
              f"backup copy: {res.backup}")
    return 0


def _archive_setup(cfg):
    """Migrated database, the job archive and its clusters (unreadable cluster.json files reported)."""
    import sqlite3

    from cc.archive import ArchiveError, open_archive
    from cc.archive.dbsync import load_archive_clusters
    from cc.archive.manage import prepare

    _migrated(cfg)
    try:
        archive = open_archive(cfg.archive)
        prepare(archive, cfg.archive_path)
        archive.version()
    except (ArchiveError, OSError, sqlite3.Error) as e:
        raise SystemExit(f"error: {e}") from None
    clusters, errors = load_archive_clusters(archive)
    for msg in errors:
        print(f"error: {msg} (jobs of this cluster are skipped)", file=sys.stderr)
    return archive, clusters


def cmd_init_db(args) -> int:
    from cc.archive.dbsync import ProgressBar, init_db, non_archived_jobs

    cfg = _load(args)
    archive, clusters = _archive_setup(cfg)
    pending = non_archived_jobs(cfg.db_path)
    if pending and not args.force:
        print(f"error: {pending} jobs in {cfg.db_path} are running or not yet archived; init-db replaces all jobs "
              "with the archived ones and would drop them (use --force to do it anyway)", file=sys.stderr)
        return 1
    bar = ProgressBar(sys.stderr)

    def report(msg: str) -> None:
        bar.clear_line()
        print(f"error: {msg} (skipped)", file=sys.stderr)

    res = init_db(cfg.db_path, archive, clusters, validate_schema=not args.no_validate, progress=bar,
                  on_error=report)
    for msg in res.deviations.warnings():
        print(f"warning: {msg}", file=sys.stderr)
    print(f"{res.jobs} jobs and {res.tags} tags registered in {res.seconds:.2f}s ({res.rate:,.0f} jobs/s)"
          + (f"; {len(res.errors)} jobs skipped" if res.errors else ""))
    return 1 if res.errors else 0


def cmd_import_job(args) -> int:
    from cc.archive.dbsync import import_jobs, parse_pairs
    from cc.progress import ProgressBar

    cfg = _load(args)
    try:
        pairs = parse_pairs(args.spec)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    archive, clusters = _archive_setup(cfg)
    bar = ProgressBar(sys.stderr)

    def report(msg: str) -> None:
        bar.clear_line()
        print(f"error: {msg} (skipped)", file=sys.stderr)

    res = import_jobs(cfg.db_path, archive, clusters, pairs, validate_schema=not args.no_validate,
                      on_error=report, progress=bar)
    for msg in res.deviations.warnings():
        print(f"warning: {msg}", file=sys.stderr)
    print(f"imported {res.jobs} of {len(pairs)} jobs" + (f" (database ids {', '.join(map(str, res.ids))})"
                                                          if res.ids else ""))
    return 1 if res.errors else 0


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f" ({int(t)})"


def checkpoint_info(path: Path) -> dict:
    """Summary of a WAL or snapshot file (kind detected from its first bytes)."""
    from cc import wal
    from cc.shm import _snapshot

    with open(path, "rb") as f:
        head = f.read(8)
    if head == wal.MAGIC or path.suffix == ".wal":
        st = wal.wal_info(path)
        return {"file": str(path), "kind": "wal", "format": "WAL (binary)", "epoch": st.epoch,
                "worker": st.header.get("worker"), "pid": st.header.get("pid"), "created": st.header.get("created"),
                "records": st.records, "keys": st.keys, "points": st.points,
                "received_from": st.first_received, "received_to": st.last_received,
                "points_from": st.min_ts, "points_to": st.max_ts, "bad_records": st.bad_records,
                "bad_bytes": st.bad_bytes, "errors": [st.error] if st.error else []}
    sn = _snapshot.snapshot_info(path)
    return {"file": str(path), "kind": "snapshot", "format": f"snapshot ({sn.format})", "epoch": sn.epoch,
            "created": sn.created, "retention": sn.retention, "series": sn.series, "points": sn.points,
            "chunks": sn.chunks, "bytes": sn.bytes, "points_from": sn.min_ts, "points_to": sn.max_ts,
            "errors": sn.errors}


def cmd_checkpoint_info(args) -> int:
    path = Path(args.file)
    try:
        info = checkpoint_info(path)
    except OSError as e:
        print(f"error: {path}: {e.strerror}", file=sys.stderr)
        return 1
    if args.json:
        import orjson

        print(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
        return 1 if info["errors"] else 0
    print(f"file:      {info['file']}")
    print(f"format:    {info['format']}, epoch {info['epoch']}")
    print(f"created:   {_fmt_time(info.get('created'))}")
    if info["kind"] == "wal":
        print(f"writer:    ingest worker {info['worker']}, pid {info['pid']}")
        print(f"records:   {info['records']} ({info['keys']} series keys, {info['points']} points)")
        print(f"received:  {_fmt_time(info['received_from'])} .. {_fmt_time(info['received_to'])}")
    else:
        print(f"contents:  {info['series']} series, {info['points']} points in {info['chunks']} chunks, "
              f"{_fmt_bytes(info['bytes'])} on disk"
              + (f" ({info['bytes'] / info['points']:.2f} bytes/point)" if info["points"] else ""))
        print(f"retention: {info['retention']} s")
    print(f"points:    {_fmt_time(info['points_from'])} .. {_fmt_time(info['points_to'])}")
    if info["errors"]:
        extra = f" ({info['bad_records']} bad record(s), {info['bad_bytes']} bytes skipped)" \
            if info["kind"] == "wal" else ""
        print(f"checksums: DAMAGED{extra}: {'; '.join(info['errors'])}")
        return 1
    print("checksums: ok")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cc-supervise", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-config", "--config", default="config.json", help="path of config.json (default: ./config.json)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("-config", "--config", default=argparse.SUPPRESS, help="path of config.json")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("init", cmd_init, "create a working directory: config.json, .env with fresh keys, var/")
    sp.add_argument("dir", nargs="?", default=".", help="directory to initialise (default: .)")
    sp.add_argument("--cluster", action="append", help="also write a cluster.json template for this machine "
                                                        "(repeatable)")
    sp.add_argument("--web-addr", default="127.0.0.1:8080", help="main.addr (default 127.0.0.1:8080)")
    sp.add_argument("--ingest-addr", default="127.0.0.1:8082", help="metric-store.ingest-addr (default 127.0.0.1:8082)")
    sp.add_argument("--memory-cap", type=float, default=8.0, help="metric-store.memory-cap in GB (default 8)")
    sp.add_argument("--force", action="store_true", help="overwrite an existing config.json/.env")
    add("run", cmd_run, "run all processes in the foreground; Ctrl-C stops cleanly")
    sp = add("start", cmd_start, "start in the background and wait until every process runs")
    sp.add_argument("--timeout", type=float, default=60)
    sp = add("stop", cmd_stop, "stop the running supervisor and its processes")
    sp.add_argument("--timeout", type=float, default=60)
    sp = add("status", cmd_status, "show every process (pid, uptime, restarts, RSS) and the maintenance tasks "
                                   "(last run, duration, result or error)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = add("restart", cmd_restart, "restart a process: store, web, archiver, forkserver, ingest-N, or ingest (all workers)")
    sp.add_argument("name")
    sp = add("logs", cmd_logs, "print the last lines of a process log")
    sp.add_argument("name", help="store, web, ingest-N, ingest or supervisor")
    sp.add_argument("-n", "--lines", type=int, default=100)
    sp = add("jwt", cmd_jwt, "print a JWT for USER signed with JWT_PRIVATE_KEY (expiry: auth.jwts.max-age)")
    sp.add_argument("user")
    sp.add_argument("--roles", default=None,
                    help=f"comma-separated roles from {', '.join(ROLES)} (default: the user's roles in the database)")
    sp = add("add-user", cmd_add_user, "add a local user: NAME:ROLES:PASSWORD (roles comma-separated)")
    sp.add_argument("spec", metavar="NAME:ROLES:PASSWORD")
    sp = add("del-user", cmd_del_user, "delete a user")
    sp.add_argument("name")
    sp = add("end-sessions", cmd_end_sessions, "end all web sessions of a user (logged out in every browser)")
    sp.add_argument("name")
    add("sync-ldap", cmd_sync_ldap, "add the users of the LDAP directory (auth.ldap); with sync-del-old-users also "
                                    "remove LDAP users that left it (never local users)")
    add("migrate-db", cmd_migrate_db, "create the job database or upgrade it (also a cc-backend job.db of "
                                      "version 10 or 11, after a backup copy)")
    sp = add("init-db", cmd_init_db, "rebuild the job, tag and jobtag tables from the job archive "
                                     "(exit code 1 if jobs were skipped)")
    sp.add_argument("--force", action="store_true", help="also when the database holds running or unarchived jobs "
                                                         "(they are dropped)")
    sp.add_argument("--no-validate", action="store_true", help="skip the JSON-schema check of meta.json")
    sp = add("import-job", cmd_import_job, "import finished jobs into the archive and the database "
                                           "(exit code 1 if jobs were skipped)")
    sp.add_argument("spec", metavar="META:DATA[,META:DATA...]", help="meta.json:data.json pairs (data may be .gz)")
    sp.add_argument("--no-validate", action="store_true", help="skip the JSON-schema checks")
    sp = add("checkpoint-info", cmd_checkpoint_info,
             "print what a WAL or snapshot file holds (format, time range, counts, checksum errors)")
    sp.add_argument("file", help="a .wal file or a snapshot-*.bin/.json file from metric-store.checkpoints.directory")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    from supervisor import _cmd_maint as maint

    add("revert-db", lambda a: maint.cmd_revert_db(a, _load(a)),
        "revert the job database by one migration (after a backup copy; the installation must be stopped)")
    add("optimize-db", lambda a: maint.cmd_optimize_db(a, _load(a)), "VACUUM and ANALYZE the job database")
    sp = add("cleanup-checkpoints", lambda a: maint.cmd_cleanup_checkpoints(a, _load(a)),
             "remove snapshot and WAL files of metric-store.checkpoints.directory that a restore does not need "
             "(points older than retention-in-memory; with cleanup.mode archive only archived ones)")
    sp.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    from supervisor._cmd_archive import register as register_archive

    register_archive(sub, lambda sp: sp.add_argument("-config", "--config", default=argparse.SUPPRESS,
                                                     help="path of config.json"))
    sp = add("apply-tags", _cmd_tagger.cmd_apply_tags, "run the job taggers (applications from job scripts, job "
                                                        "classes from archived statistics) over every job; idempotent")
    _cmd_tagger.add_arguments(sp)
    from supervisor._cmd_report import add_parser as add_report

    add_report(add)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    rc = args.fn(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
