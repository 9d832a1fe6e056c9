"""Daemon mode: PID file, the Prolog/Epilog socket, the poll schedule and hook event batching.

Three tasks in one nursery: the socket server queues hook events; the event task syncs
those jobs ``slurmQueryDelay`` after the first one arrives (retrying until Slurm shows
the job started/finished, at most ``slurmMaxRetries`` times); the poll task runs a full
sync every ``slurmPollInterval``.  A lock makes syncs take turns, so the cache is only
ever changed by one of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import time
from pathlib import Path

import orjson
import trio

from cc.adapter.backend import BackendClient, BackendUnavailable
from cc.adapter.config import AdapterConfig, AdapterConfigError, parse_sock_addr
from cc.adapter.natspub import NatsJobs, nats_settings
from cc.adapter.slurm import SlurmClient, SlurmError
from cc.adapter.sync import HookEvent, Syncer, read_last_run, write_last_run

log = logging.getLogger("cc-adapter")

MAX_MESSAGE = 1 << 20


class DaemonError(Exception):
    """The daemon cannot start (another instance runs, a path is not writable); message names it."""


def claim_pid_file(path: str) -> None:
    """Write our PID, refusing when the PID in an existing file belongs to a live process."""
    p = Path(path)
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(p.read_text().strip())
        if pid != os.getpid() and Path(f"/proc/{pid}").exists():
            raise DaemonError(f"another cc-adapter daemon is running with PID {pid} (pid file {path})")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(str(os.getpid()))
    except OSError as e:
        raise DaemonError(f"cannot write pid file {path}: {e.strerror}") from None


def check_last_run(path: str) -> None:
    """Fail at start, not hours later, when lastRunPath cannot be written."""
    try:
        write_last_run(path, read_last_run(path))
    except OSError as e:
        raise DaemonError(f"lastRunPath {path} is not writable: {e.strerror}") from None


async def open_listener(address: str) -> trio.SocketListener:
    """Listen on a Unix path (replacing a stale socket, mode 0666 so slurmctld's user may connect) or TCP."""
    kind, addr = parse_sock_addr(address)
    if kind == "tcp":
        host, port = addr
        listeners = await trio.open_tcp_listeners(port, host=host or None)
        return listeners[0]
    path = Path(addr)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
        else:
            raise DaemonError(f"prepSockListenPath {path} exists and is not a socket")
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(path))
        os.chmod(path, 0o666)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise DaemonError(f"cannot listen on {path}: {e.strerror}") from None
    return trio.SocketListener(sock)


def parse_event(data: bytes) -> HookEvent:
    """A hook message (cc-slurm-adapter's JSON of SLURM_* variables) -> event; ValueError names the problem."""
    try:
        env = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e}): {data[:100]!r}") from None
    if not isinstance(env, dict):
        raise ValueError("expected a JSON object of SLURM_* variables")
    jid = str(env.get("SLURM_JOB_ID", "")).strip()
    if not jid.isdigit():
        raise ValueError(f"SLURM_JOB_ID is not an integer: {jid!r}")
    ctx = str(env.get("SLURM_SCRIPT_CONTEXT", ""))
    if ctx not in ("prolog_slurmctld", "epilog_slurmctld"):
        raise ValueError(f"SLURM_SCRIPT_CONTEXT {ctx!r} is not prolog_slurmctld or epilog_slurmctld")
    return HookEvent(cluster=str(env.get("SLURM_CLUSTER_NAME", "")), job_id=int(jid), context=ctx)


class Daemon:
    """The running adapter; ``run`` until ``shutdown`` is set."""

    def __init__(self, cfg: AdapterConfig, *, slurm: SlurmClient | None = None):
        if not cfg.cc_rest_url or not cfg.cc_rest_jwt:
            raise AdapterConfigError("daemon mode needs 'ccRestUrl' and 'ccRestJwt'")
        self.cfg = cfg
        self.slurm = slurm or SlurmClient(max_concurrent=cfg.slurm_max_concurrent)
        self.backend = BackendClient(cfg.cc_rest_url, cfg.cc_rest_jwt, timeout=cfg.http_timeout)
        settings = nats_settings(cfg)
        if settings is not None:  # job events (and node states) on NATS, see cc/adapter/natspub.py
            self.backend = NatsJobs(cfg, self.backend, settings)
        self.syncer = Syncer(cfg, self.slurm, self.backend)
        self.lock = trio.Lock()
        self.events: list[HookEvent] = []
        self.event_arrived = trio.Event()
        self.last_poll_ok = 0.0

    async def run(self, shutdown: trio.Event, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.cfg
        check_last_run(cfg.last_run_path)
        claim_pid_file(cfg.pid_file_path)
        try:
            listener = await open_listener(cfg.prep_sock_listen_path)
            try:
                async with trio.open_nursery() as n:
                    if isinstance(self.backend, NatsJobs):
                        await self.backend.start()
                        n.start_soon(self.backend.reporter.run)
                        log.info("NATS %s: job events on %r%s%s", self.backend.nats.settings.address,
                                 cfg.nats_subject, " (REST submission off)" if not cfg.cc_rest_submit_jobs else "",
                                 f", node states on {cfg.nats_node_state_subject!r}"
                                 if cfg.nats_node_state_subject else "")
                    n.start_soon(self._serve, listener)
                    n.start_soon(self._event_loop)
                    n.start_soon(self._poll_loop)
                    log.info("cc-adapter daemon running: backend %s, hook socket %s, poll every %gs",
                             cfg.cc_rest_url, cfg.prep_sock_listen_path, cfg.slurm_poll_interval)
                    task_status.started()
                    await shutdown.wait()
                    n.cancel_scope.cancel()
            finally:
                await listener.aclose()
                kind, addr = parse_sock_addr(cfg.prep_sock_listen_path)
                if kind == "unix":
                    with contextlib.suppress(OSError):
                        os.unlink(addr)
        finally:
            with trio.CancelScope(shield=True):
                await self.backend.aclose()
            with contextlib.suppress(OSError):
                if Path(cfg.pid_file_path).read_text().strip() == str(os.getpid()):
                    os.unlink(cfg.pid_file_path)
        log.info("cc-adapter daemon stopped")

    # -- hook socket --------------------------------------------------------------------

    async def _serve(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as n:
            while True:
                stream = await listener.accept()
                n.start_soon(self._handle, stream)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        async with stream:
            data = b""
            with trio.move_on_after(10) as scope:
                while len(data) <= MAX_MESSAGE:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    data += chunk
            if scope.cancelled_caught or len(data) > MAX_MESSAGE:
                log.error("hook connection dropped: message incomplete after 10s or larger than %d bytes", MAX_MESSAGE)
                return
        try:
            ev = parse_event(data)
        except ValueError as e:
            log.error("ignoring hook message: %s", e)
            return
        log.info("hook: job %d (%s) %s", ev.job_id, ev.cluster, ev.context)
        self.events.append(ev)
        self.event_arrived.set()

    async def _event_loop(self) -> None:
        while True:
            await self.event_arrived.wait()
            self.event_arrived = trio.Event()
            # Wait a moment (slurmQueryDelay) for Slurm to record the job; events arriving
            # meanwhile join this batch instead of pushing it further back.
            while self.events:
                await trio.sleep(self.cfg.slurm_query_delay)
                batch, self.events = self.events, []
                async with self.lock:
                    if not self.slurm.clusters:
                        self.events = batch + self.events
                        continue
                    try:
                        keep = await self.syncer.process_events(batch)
                    except SlurmError as e:
                        log.info("Slurm not ready for hook events (%s); retrying", e)
                        keep = []
                        for ev in batch:
                            ev.attempts += 1
                            if ev.attempts <= self.cfg.slurm_max_retries:
                                keep.append(ev)
                    except BackendUnavailable as e:
                        log.warning("cc-backend unavailable for hook events (%s); the next poll retries", e)
                        self.syncer.invalidate()
                        keep = []
                    except Exception:  # the poll covers these jobs too
                        log.exception("hook events failed unexpectedly; leaving them to the next poll")
                        self.syncer.invalidate()
                        keep = []
                self.events = keep + self.events

    # -- polling ------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        # the first poll comes right away (after slurmQueryDelay), then on a fixed rate
        await trio.sleep(self.cfg.slurm_query_delay)
        while True:
            t0 = trio.current_time()
            await self.poll_once()
            await trio.sleep_until(t0 + self.cfg.slurm_poll_interval)

    async def _node_states(self) -> None:
        try:
            n = await self.syncer.sync_node_states()
            log.debug("node states of %d nodes sent", n)
        except (SlurmError, BackendUnavailable) as e:
            log.warning("node states not synced (next poll tries again): %s", e)

    async def poll_once(self) -> bool:
        """One full sync; failures are logged and leave lastrun where it was (next poll catches up)."""
        async with self.lock:
            t = time.monotonic()
            try:
                if not self.slurm.clusters:
                    await self.slurm.discover_clusters()
                    log.info("managing Slurm cluster(s): %s", ", ".join(self.slurm.clusters))
                await self.syncer.poll()
            except SlurmError as e:
                log.error("Slurm unavailable, will retry: %s", e)
                return False
            except BackendUnavailable as e:
                log.error("cc-backend unavailable, will retry: %s", e)
                self.syncer.invalidate()
                return False
            except Exception:  # a bug must not stop the daemon: the next poll starts from lastrun again
                log.exception("poll failed unexpectedly; will retry")
                self.syncer.invalidate()
                return False
            self.last_poll_ok = time.time()
            await self._node_states()
            log.debug("poll done in %.2fs (%s)", time.monotonic() - t, self.syncer.stats)
            return True
