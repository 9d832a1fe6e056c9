"""The supervisor: owns shared memory and listening sockets, runs and restarts the children.

Children run ``python -m cc.<package>``: the fork server (:mod:`supervisor._forkserver`,
itself started that way) forks them from one process that imported their code already, so
they share its memory and start in milliseconds.  Each gets the listening socket it serves
(so a restarted child finds connections waiting in the backlog, never "connection refused")
and stops when the supervisor is gone (:func:`cc.proc.watch_parent`).  The supervisor
answers ``status``/``stop``/``restart``/``logs`` on ``var/run/supervisor.sock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trio

from cc import ipc, proc
from cc.clusters import load_catalog
from cc.config import Config, split_addr
from cc.shm import (
    ARCHIVER_SLOT,
    INGEST_SLOT_BASE,
    STORE_SLOT,
    WEB_SLOT,
    Layout,
    Store,
    instance_id,
    list_segments,
    unlink_all,
)
from cc.shm import _layout as SL
from cc.storeproc._archive import ring_slack_seconds
from cc.tls import TLSError, open_pair
from supervisor._forking import (
    ForkedProcess,
    ForkServerClient,
    SpawnError,
    become_subreaper,
    reap_orphans,
    socket_pair,
)
from supervisor._privileges import become

log = logging.getLogger("supervisor")

STOP_TIMEOUT = 10.0
MAX_BACKOFF = 10.0
HEALTHY_AFTER = 30.0
LOG_ROTATE_BYTES = 20 << 20
FORKSERVER = "forkserver"
ORPHAN_SWEEP = 10.0


@dataclass
class Child:
    name: str
    module: str  # run as ``python -m module args``
    args: list[str]
    # What the fork server imports ahead for it.  Only worth it for code that several children
    # run (the ingest workers; store and archiver share most of theirs with them): pages a
    # child writes to (reference counts) end up twice, in the child and the fork server, so the
    # web process's and the adapter's own dependencies are measured cheaper imported by them.
    preload: str | None = None
    pass_fds: tuple[int, ...] = ()
    stop_group: int = 0  # lower stops first
    process: trio.Process | ForkedProcess | None = None
    started_at: float = 0.0
    starts: int = 0
    crashes: int = 0
    consecutive_failures: int = 0
    last_exit: str | None = None
    restart_requested: bool = False
    stopping: bool = False
    exited: trio.Event = field(default_factory=trio.Event)
    reported: dict[str, Any] = field(default_factory=dict)  # what the running child told us (``nats`` state)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.returncode is None else None

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def tail_lines(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max(65536, n * 400)))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:] if n > 0 else lines


def bind_listener(addr: str) -> socket.socket:
    host, port = split_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        s.close()
        raise OSError(f"cannot listen on {addr}: {e.strerror}") from None
    s.listen(1024)
    s.set_inheritable(True)
    return s


class Supervisor:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.instance = instance_id(cfg.var_dir)
        self.children: list[Child] = []
        self.started_at = time.time()
        self.shutdown = trio.Event()
        self.clean_stop = False
        self.store: Store | None = None
        self.sockets: dict[str, socket.socket] = {}
        self.addresses: dict[str, str] = {}
        self._pid_fd: int | None = None
        self._forks: ForkServerClient | None = None  # None: children are exec'd, not forked
        self._spawning = trio.Lock()  # no orphan sweep while a fresh child is not registered yet
        self.tls_fds: tuple[int, int] | None = None  # main.https-cert-file / -key-file, opened before dropping root

    # -- setup ------------------------------------------------------------------

    def _lock_pidfile(self) -> None:
        run = self.cfg.run_dir
        run.mkdir(parents=True, exist_ok=True)
        self.cfg.log_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run / "supervisor.pid", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = (run / "supervisor.pid").read_text().strip()
            raise RuntimeError(f"another supervisor (pid {pid}) is running for {self.cfg.var_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._pid_fd = fd

    def _prepare(self) -> None:
        """Everything before the children start; what needs root comes first, then root is dropped."""
        self._lock_pidfile()
        for w in self.cfg.warnings:  # once here, not in every child
            log.warning("%s", w)
        self._bind_sockets()
        if self.cfg.tls_cert is not None:
            try:
                self.tls_fds = open_pair(self.cfg.tls_cert, self.cfg.tls_key)
            except TLSError as e:
                raise RuntimeError(str(e)) from None
        become(self.cfg)  # main.user / main.group; nothing below runs as root
        self._migrate_db()
        self._prepare_archive()
        catalog = load_catalog(self.cfg)
        ms = self.cfg.metric_store
        layout = Layout.compute(ms.retention, catalog.frequencies(), ms.memory_cap_gb,
                                slack_seconds=ring_slack_seconds(ms))
        self.store, fresh = Store.create(self.instance, layout)
        if fresh:
            self._mark_restore_pending()
            log.info("created shared memory (instance %s): %d pools %s, retention %ds, cap %.1f GB",
                     self.instance, len(layout.pools), [p.frequency for p in layout.pools], ms.retention,
                     layout.memory_cap_bytes / 1e9)
        else:
            log.info("re-attached shared memory of instance %s with %d series (data kept)",
                     self.instance, self.store.usage()["series_registered"])
        (self.cfg.run_dir / "ports.json").write_bytes(orjson.dumps(self.addresses))
        self._build_children()

    def _bind_sockets(self) -> None:
        cfg = self.cfg
        self.sockets["web"] = bind_listener(cfg.web_addr)
        self.sockets["ingest"] = bind_listener(cfg.metric_store.ingest_addr)
        # As cc-backend: a plain-HTTP redirect listener unless the web address is port 80 itself.
        if cfg.redirect_http_to and not cfg.web_addr.endswith(":80"):
            self.sockets["redirect"] = bind_listener(cfg.redirect_http_addr)
        for name, s in self.sockets.items():
            host, port = s.getsockname()[:2]
            self.addresses[name] = f"{host}:{port}"

    def _prepare_archive(self) -> None:
        """A SQLite or S3 archive: version.txt when new, cluster.json copies in archive.path (cc.archive.manage)."""
        import sqlite3

        from cc.archive import open_archive
        from cc.archive.manage import prepare

        if self.cfg.archive.kind == "file":
            return
        try:
            archive = open_archive(self.cfg.archive)
            try:
                for line in prepare(archive, self.cfg.archive_path):
                    log.info("job archive: %s", line)
            finally:
                archive.close()
        except (OSError, sqlite3.Error) as e:
            raise RuntimeError(f"job archive ({self.cfg.archive.kind}): {e}") from None

    def _migrate_db(self) -> None:
        """Create or upgrade the job database before any child opens it (web and archiver need the current version)."""
        from cc.db import MigrationError, migrate

        try:
            res = migrate(self.cfg.db_path)
        except MigrationError as e:
            raise RuntimeError(f"job database {self.cfg.db_path}: {e}") from None
        if res.from_version != res.to_version:
            log.info("job database %s: version %s -> %d%s", self.cfg.db_path, res.from_version, res.to_version,
                     f" (backup {res.backup})" if res.backup else "")

    def _build_children(self) -> None:
        common = ["--config", str(self.cfg.path), "--instance", self.instance]
        ingest_fd = self.sockets["ingest"].fileno()
        web_fd = self.sockets["web"].fileno()
        ihost, iport = split_addr(self.addresses["ingest"])
        if ihost in ("0.0.0.0", "::", ""):
            ihost = "127.0.0.1"
        ingest_url = f"{'https' if self.cfg.ingest_tls else 'http'}://{ihost}:{iport}"
        tls_args: list[str] = []
        if self.tls_fds is not None:
            tls_args = ["--tls-cert-fd", str(self.tls_fds[0]), "--tls-key-fd", str(self.tls_fds[1])]
        ingest_tls = self.tls_fds if self.cfg.ingest_tls and self.tls_fds is not None else ()
        self.children.append(Child("store", "cc.storeproc", [*common, "--slot", str(STORE_SLOT)],
                                   preload="cc.storeproc.app", stop_group=2))
        for k in range(self.cfg.metric_store.effective_ingest_workers()):
            self.children.append(Child(
                f"ingest-{k}", "cc.ingestd",
                [*common, "--slot", str(INGEST_SLOT_BASE + k), "--worker", str(k), "--listen-fd", str(ingest_fd),
                 *(tls_args if ingest_tls else [])],
                preload="cc.ingestd.app", pass_fds=(ingest_fd, *ingest_tls), stop_group=0))
        web_args = [*common, "--slot", str(WEB_SLOT), "--listen-fd", str(web_fd), "--ingest-url", ingest_url, *tls_args]
        web_fds = [web_fd, *(self.tls_fds or ())]
        if "redirect" in self.sockets:
            web_args += ["--redirect-fd", str(self.sockets["redirect"].fileno())]
            web_fds.append(self.sockets["redirect"].fileno())
        self.children.append(Child("web", "cc.webd", web_args, pass_fds=tuple(web_fds), stop_group=1))
        self.children.append(Child("archiver", "cc.archiverd", [*common, "--slot", str(ARCHIVER_SLOT)],
                                   preload="cc.archiverd.app", stop_group=1))
        if self.cfg.adapter_config is not None:  # optional: the Slurm adapter next to slurmctld
            self.children.append(Child("adapter", "cc.adapter", ["-daemon", "-config", str(self.cfg.adapter_config)],
                                       stop_group=0))
        if become_subreaper():  # forked children must come back to us when their middle process exits
            preload = ",".join(c.preload for c in self.children if c.preload)
            self.children.insert(0, Child(FORKSERVER, "supervisor._forkserver", ["--preload", preload],
                                          stop_group=3))
        else:
            log.warning("cannot become a child subreaper: children are started one by one, without fork server")

    # -- running children ---------------------------------------------------------

    def _open_log(self, name: str):
        path = self.cfg.log_dir / f"{name}.log"
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > LOG_ROTATE_BYTES:
                path.replace(path.with_suffix(".log.1"))
        return open(path, "ab", buffering=0)  # noqa: SIM115 - handed to the child

    async def _spawn(self, child: Child) -> None:
        env = dict(os.environ, CC_SUPERVISOR_PID=str(os.getpid()), PYTHONUNBUFFERED="1", CC_CHILD_NAME=child.name,
                   CC_SUPERVISOR_SOCK=str(self.cfg.run_dir / "supervisor.sock"))
        logf = self._open_log(child.name)
        try:
            if child.name == FORKSERVER:
                child.process = await self._start_forkserver(child, env, logf)
            elif self._forks is not None:
                async with self._spawning:
                    child.process = await self._forks.spawn(child.name, child.module, child.args, env=env,
                                                            cwd=str(self.cfg.base_dir), log_fd=logf.fileno(),
                                                            pass_fds=child.pass_fds)
            else:
                child.process = await trio.lowlevel.open_process(
                    child.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                    pass_fds=child.pass_fds, env=env, cwd=str(self.cfg.base_dir))
        finally:
            logf.close()
        child.started_at = time.time()
        child.starts += 1
        child.exited = trio.Event()

    async def _start_forkserver(self, child: Child, env: dict[str, str], logf) -> trio.Process:
        """Exec the fork server with a fresh socket pair; requests go to the new one from now on."""
        ours, theirs = socket_pair()
        env = dict(env, OPENBLAS_NUM_THREADS=env.get("OPENBLAS_NUM_THREADS", "1"))  # no threads to fork from
        try:
            process = await trio.lowlevel.open_process(
                [*child.argv, "--socket-fd", str(theirs.fileno())], stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, pass_fds=(theirs.fileno(),), env=env, cwd=str(self.cfg.base_dir))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        if self._forks is not None:
            self._forks.close()
        self._forks = ForkServerClient(ours)
        return process

    async def _sweep_orphans(self) -> None:
        """As subreaper we inherit orphaned grandchildren; reap those that exit."""
        while True:
            await trio.sleep(ORPHAN_SWEEP)
            if self._spawning.locked():
                continue
            known = {c.pid for c in self.children if c.pid}
            for pid in reap_orphans(known):
                log.info("reaped orphaned process %d", pid)

    async def keep_running(self, child: Child) -> None:
        """Start ``child`` and restart it whenever it exits, until shutdown."""
        while not self.shutdown.is_set():
            try:
                await self._spawn(child)
            except SpawnError as e:  # the fork server is restarting: try again shortly
                log.warning("cannot start %s: %s; retrying", child.name, e)
                with trio.move_on_after(0.5):
                    await self.shutdown.wait()
                continue
            log.info("started %s (pid %d)", child.name, child.process.pid)
            code = await child.process.wait()
            child.reported = {}
            child.exited.set()
            child.last_exit = describe_exit(code)
            if self.shutdown.is_set() or child.stopping:
                return
            ran = time.time() - child.started_at
            if child.restart_requested:
                child.restart_requested = False
                log.info("%s stopped for restart (%s)", child.name, child.last_exit)
                continue
            child.crashes += 1
            child.consecutive_failures = 1 if ran > HEALTHY_AFTER else child.consecutive_failures + 1
            delay = min(MAX_BACKOFF, 0.1 * 2 ** (child.consecutive_failures - 1))
            log.warning("%s (pid %d) %s after %.1fs; restarting in %.1fs", child.name, child.process.pid,
                        child.last_exit, ran, delay)
            with trio.move_on_after(delay):
                await self.shutdown.wait()

    async def _terminate(self, child: Child) -> None:
        p = child.process
        if p is None or p.returncode is not None:
            return
        child.stopping = True
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await p.wait()
            return
        log.warning("%s did not stop within %.0fs; killing it", child.name, STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        await p.wait()

    async def stop_children(self) -> None:
        for group in sorted({c.stop_group for c in self.children}):
            async with trio.open_nursery() as n:
                for c in self.children:
                    if c.stop_group == group:
                        n.start_soon(self._terminate, c)

    # -- control socket -------------------------------------------------------------

    def find(self, name: str) -> list[Child]:
        if name == "ingest":
            return [c for c in self.children if c.name.startswith("ingest-")]
        return [c for c in self.children if c.name == name]

    def status(self) -> dict[str, Any]:
        now = time.time()
        procs = []
        for c in self.children:
            pid = c.pid
            procs.append({
                "name": c.name,
                "pid": pid,
                "state": "running" if pid else "restarting",
                "uptime": round(now - c.started_at, 1) if pid else None,
                "restarts": max(0, c.starts - 1),
                "crashes": c.crashes,
                "rss": rss_bytes(pid) if pid else None,
                "last_exit": c.last_exit,
                **({"nats": c.reported.get("nats", "connecting")} if self._uses_nats(c) and pid else {}),
            })
        shm = list_segments(self.instance)
        return {
            "ok": True,
            "supervisor": {"pid": os.getpid(), "uptime": round(now - self.started_at, 1),
                           "rss": rss_bytes(os.getpid()), "config": str(self.cfg.path),
                           "instance": self.instance, "addresses": self.addresses},
            "processes": procs,
            "shared_memory": {"segments": len(shm), "allocated_bytes": sum(s[2] for s in shm)},
        }

    def _uses_nats(self, c: Child) -> bool:
        cfg = self.cfg
        if cfg.nats is None:
            return c.name == "adapter" and "nats" in c.reported
        if c.name.startswith("ingest-"):
            return bool(cfg.metric_store.nats_subscriptions)
        if c.name == "web":
            return cfg.api_subjects is not None
        return "nats" in c.reported

    def _report(self, msg: dict[str, Any]) -> dict[str, Any]:
        """A child's state (``{"cmd": "report", "name", "pid", "nats": "connected"}``), kept while it runs."""
        for c in self.find(str(msg.get("name", ""))):
            if c.pid is not None and c.pid == msg.get("pid"):
                state = msg.get("nats")
                if isinstance(state, str) and len(state) < 32:
                    c.reported["nats"] = state
                return {"ok": True}
        return {"ok": False, "error": "no such running process"}

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        cmd = msg.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "report":
            return self._report(msg)
        if cmd == "stop":
            log.info("stop requested over the control socket")
            self.clean_stop = True
            self.shutdown.set()
            return {"ok": True, "pid": os.getpid()}
        if cmd == "restart":
            targets = self.find(str(msg.get("name", "")))
            if not targets:
                return {"ok": False, "error": f"no process named {msg.get('name')!r} "
                                              f"(one of: {', '.join(c.name for c in self.children)}, ingest)"}
            for c in targets:
                await self._restart(c)
            return {"ok": True, "restarted": [c.name for c in targets]}
        if cmd == "logs":
            name = str(msg.get("name", ""))
            if name != "supervisor" and not self.find(name):
                return {"ok": False, "error": f"no process named {name!r}"}
            files = [name] if name != "ingest" else [c.name for c in self.find(name)]
            n = int(msg.get("lines", 100))
            return {"ok": True, "lines": [ln for f in files for ln in tail_lines(self.cfg.log_dir / f"{f}.log", n)]}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def _restart(self, c: Child) -> None:
        if c.process is None or c.process.returncode is not None:
            return
        old = c.process
        c.restart_requested = True
        log.info("restarting %s (pid %d) on request", c.name, old.pid)
        with contextlib.suppress(ProcessLookupError):
            old.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await old.wait()
        if old.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                old.kill()
        with trio.move_on_after(STOP_TIMEOUT):
            while c.process is old or c.pid is None:
                await trio.sleep(0.02)

    # -- main -------------------------------------------------------------------------

    async def _check_nats(self) -> None:
        """A wrong NATS address or bad credentials is a start-up error naming the key (later
        outages are warnings in the children, which reconnect by themselves)."""
        cfg = self.cfg
        if cfg.nats is not None and not (cfg.metric_store.nats_subscriptions or cfg.api_subjects):
            log.warning("config key 'nats' is set, but neither metric-store.nats-subscriptions nor "
                        "main.api-subjects uses it: no process here connects to %s", cfg.nats.address)
        if cfg.nats is None or not (cfg.metric_store.nats_subscriptions or cfg.api_subjects):
            return
        from cc.nats import NatsError, probe

        try:
            url = await probe(cfg.nats, timeout=5.0)
        except NatsError as e:
            raise RuntimeError(f"{cfg.path}: {e}") from None
        log.info("NATS server %s answers", url)

    async def run(self) -> None:
        await self._check_nats()
        self._prepare()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(ipc.serve, self.cfg.run_dir / "supervisor.sock", self.handle)
                nursery.start_soon(self._watch_signals)
                nursery.start_soon(proc.keep_heap_trimmed)
                nursery.start_soon(self._sweep_orphans)
                await self._start_children(nursery)
                await self.shutdown.wait()
                await self.stop_children()
                if self.clean_stop:
                    await self._final_snapshot()
                nursery.cancel_scope.cancel()
        finally:
            self._cleanup()

    # -- durability: restore before serving, final snapshot at a clean stop ----------------

    def _mark_restore_pending(self) -> None:
        """Fresh segments: the store process must load snapshot + WAL before anyone writes."""
        assert self.store is not None
        self.store.hdr[SL.H_RESTORE] = SL.RESTORE_PENDING

    async def _start_children(self, nursery: trio.Nursery) -> None:
        """Store process first; ingest and web only once it has restored from disk (if it must)."""
        first = [c for c in self.children if c.name in (FORKSERVER, "store")]
        for c in first:
            nursery.start_soon(self.keep_running, c)
            while c.name == FORKSERVER and self._forks is None:  # the store is forked too
                await trio.sleep(0.005)
        assert self.store is not None
        t0, said = time.monotonic(), 0.0
        while int(self.store.hdr[SL.H_RESTORE]) == SL.RESTORE_PENDING and not self.shutdown.is_set():
            if time.monotonic() - t0 > said + 10:
                said = time.monotonic() - t0
                log.info("waiting for the store process to restore from %s (%.0fs so far)",
                         self.cfg.metric_store.checkpoint_dir, said)
            await trio.sleep(0.02)
        if self.shutdown.is_set():
            return
        if time.monotonic() - t0 > 0.1:
            log.info("store restored from disk in %.1fs", time.monotonic() - t0)
        for c in self.children:
            if c not in first:
                nursery.start_soon(self.keep_running, c)
        log.info("supervising %d processes; web on %s, ingest on %s", len(self.children),
                 self.addresses["web"], self.addresses["ingest"])

    async def _final_snapshot(self) -> None:
        """After all children stopped: one last snapshot, so the next start needs no WAL replay.

        If it fails (or the restore never finished, so memory holds less than the disk),
        the segments are kept instead of removed: nothing accepted is lost either way.
        """
        from cc.storeproc._checkpoint import Checkpointer

        store = self.store
        if store is None:
            return
        if int(store.hdr[SL.H_RESTORE]) == SL.RESTORE_PENDING:
            log.warning("restore from disk never finished: no final snapshot; files in %s stay as they are",
                        self.cfg.metric_store.checkpoint_dir)
            return
        try:
            st = await trio.to_thread.run_sync(Checkpointer(store, self.cfg.metric_store).checkpoint, "final")
        except Exception as e:
            log.error("final snapshot failed: %s; keeping shared memory for the next start", e,
                      exc_info=not isinstance(e, OSError))
            self.clean_stop = False
            return
        log.info("final snapshot %s written", st.path)

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
            async for sig in sigs:
                log.info("received %s: stopping", signal.Signals(sig).name)
                self.clean_stop = True
                self.shutdown.set()
                return

    def _cleanup(self) -> None:
        if self._forks is not None:
            self._forks.close()
            self._forks = None
        for s in self.sockets.values():
            s.close()
        for fd in self.tls_fds or ():
            os.close(fd)
        self.tls_fds = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.clean_stop:
            removed = unlink_all(self.instance)
            log.info("stopped; removed %d shared-memory segments", len(removed))
        else:
            log.warning("supervisor exiting without a clean stop: shared memory kept for the next start")
        for name in ("ports.json",):
            with contextlib.suppress(FileNotFoundError):
                (self.cfg.run_dir / name).unlink()
        if self._pid_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.cfg.run_dir / "supervisor.pid").unlink()
            os.close(self._pid_fd)
            self._pid_fd = None
