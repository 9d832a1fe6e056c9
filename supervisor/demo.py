"""``make demo``: a living ClusterCockpit on a laptop -- simulated nodes, scheduler and job history.

First run: ``demo/`` gets a configuration with fresh keys, two simulated clusters (CPU
cluster ``fritz``, GPU cluster ``alex``), the users ``demo``/``demo`` (admin) and
``alice``/``alice`` (user), and -- in a background process at low priority, so the live
cluster is up at once -- weeks of finished jobs in the archive and database.  Every
run then starts the supervisor and the simulation (nodes streaming metrics through the
agent's sink, a scheduler starting and stopping jobs through the REST API) and prints
where to look.  Ctrl-C stops the simulation, then the supervisor (which removes the
shared memory); a second ``make demo`` continues where the first one stopped.

The supervisor runs in its own session, so Ctrl-C reaches only this process, which
stops everything in order; it dies with us (PR_SET_PDEATHSIG) if we are killed.

``--nats`` starts a nats-server (JetStream, state in ``var/nats``) next to the supervisor and
routes the simulated cluster through it: metrics through the agent's ``nats`` sink into a
JetStream stream the ingest workers consume, job start/stop and node states as cc-backend's
NATS API events (``main.api-subjects``).  Without it the demo needs no NATS and the NATS
keys are taken out of ``config.json`` again.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import trio

from cc.config import Config, load_config
from cc.jwtauth import load_private_key, sign_token
from cc.proc import stop_subprocess
from cc.shm import instance_id, unlink_all
from cc.sim.cli import write_clusters
from cc.sim.runner import LiveSim, SimOptions, read_json, sim_dir
from supervisor._init import init_directory
from supervisor._manager import tail_lines

USERS = (("demo", ["admin", "api"], "demo"), ("alice", ["user"], "alice"))
#: Full names of the logins and of the simulated cluster's users (cc.sim.workload.USERS), who get user records
#: without a password (they cannot log in), so the users list shows names as at a site with LDAP.
DEMO_NAMES = {"demo": "Demo Administrator", "alice": "Alice Anderson", "bob": "Bob Brown", "carol": "Carol Clark",
              "dave": "Dave Davis", "erin": "Erin Evans", "frank": "Frank Fischer", "grace": "Grace Green",
              "heidi": "Heidi Hoffmann", "ivan": "Ivan Ivanov", "judy": "Judy Jones", "mallory": "Mallory Miller",
              "oscar": "Oscar Olsen"}
log = logging.getLogger("demo")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _low_priority_child() -> None:
    _die_with_parent()
    os.nice(10)


def setup(target: Path, args: argparse.Namespace) -> None:
    """Create the demo directory: config, keys, clusters, users."""
    init_directory(target, [], args.web_addr, args.ingest_addr, memory_cap_gb=args.memory_cap)
    path = target / "config.json"
    cfg = orjson.loads(path.read_bytes())
    ms = cfg["metric-store"]
    ms["retention-in-memory"] = args.retention
    ms["ingest-workers"] = min(2, os.cpu_count() or 1)
    start = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - (args.history_days + 1) * 86400))
    cfg["clusters"] = [{"name": n, "filterRanges": {"numNodes": {"from": 1, "to": max(8, args.cpu_nodes)},
                                                    "duration": {"from": 0, "to": 86400},
                                                    "startTime": {"from": start, "to": None}}}
                       for n in ("fritz", "alex")]
    path.write_bytes(orjson.dumps(cfg, option=orjson.OPT_INDENT_2) + b"\n")
    write_clusters(target / "var" / "job-archive", args.cpu_nodes, args.gpu_nodes, args.timestep, force=True)
    from cc.db import connect, transaction
    from cc.db._users import add_user, get_user

    conn = connect(target / "var" / "job.db")
    try:
        for name, roles, pw in USERS:
            if get_user(conn, name) is None:
                transaction(conn, add_user, name, roles, pw, DEMO_NAMES.get(name))
        for name, full in DEMO_NAMES.items():
            if get_user(conn, name) is None:
                transaction(conn, add_user, name, ["user"], None, full)
    finally:
        conn.close()


def start_history(cfg: Config, args: argparse.Namespace) -> subprocess.Popen | None:
    """The history generator in the background (nice 10); None if the history is done or not wanted."""
    if args.history_days <= 0 or read_json(sim_dir(cfg) / "history.json").get("done"):
        return None
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    logf = open(cfg.log_dir / "history.log", "ab")  # noqa: SIM115 - handed to the child
    end = int(time.time()) - args.backfill  # the live cluster's backfilled minutes follow the history
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cc.sim", "history", "--config", str(cfg.path), "--days", str(args.history_days),
             "--end", str(end), "--seed", str(args.seed + 1), "--workers", "2"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=cfg.base_dir,
            start_new_session=True, preexec_fn=_low_priority_child)
    finally:
        logf.close()


NATS_SUBJECTS = ("cc.metrics", "cc.job.event", "cc.node.state")


def configure_nats(target: Path, url: str | None) -> None:
    """Put the NATS keys into config.json (``url``) or take them out (None), every run."""
    path = target / "config.json"
    cfg = orjson.loads(path.read_bytes())
    ms, main = cfg.setdefault("metric-store", {}), cfg.setdefault("main", {})
    if url:
        cfg["nats"] = {"address": url}
        ms["nats-subscriptions"] = [{"subscribe-to": NATS_SUBJECTS[0], "stream": "CCDEMO"}]
        main["api-subjects"] = {"subject-job-event": NATS_SUBJECTS[1], "subject-node-state": NATS_SUBJECTS[2]}
    else:
        cfg.pop("nats", None)
        ms.pop("nats-subscriptions", None)
        main.pop("api-subjects", None)
    path.write_bytes(orjson.dumps(cfg, option=orjson.OPT_INDENT_2) + b"\n")


def start_nats(cfg: Config, addr: str, timeout: float = 10) -> tuple[subprocess.Popen, str]:
    """Debian's nats-server with JetStream on ``addr`` (port 0: any free port); dies with us."""
    import shutil
    import socket

    exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(exe).exists():
        raise RuntimeError("nats-server is not installed (Debian package nats-server; 'make system-deps' as root)")
    host, _, port = addr.rpartition(":")
    if port == "0":
        with socket.socket() as sk:
            sk.bind((host, 0))
            port = str(sk.getsockname()[1])
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    logf = open(cfg.log_dir / "nats-server.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen([exe, "-a", host, "-p", port, "-js", "-sd", str(cfg.var_dir / "nats")],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        logf.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited; see {cfg.log_dir / 'nats-server.log'}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return proc, f"nats://{host}:{port}"
        except OSError:
            time.sleep(0.05)
    stop_subprocess(proc, 5)
    raise RuntimeError(f"nats-server did not come up on {host}:{port}")


def start_supervisor(cfg: Config) -> subprocess.Popen:
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "ports.json").unlink(missing_ok=True)
    logf = open(cfg.log_dir / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([sys.executable, "-m", "supervisor", "run", "--config", str(cfg.path)],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=cfg.base_dir,
                                start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        logf.close()


async def wait_ready(cfg: Config, proc: subprocess.Popen, timeout: float = 60) -> dict[str, str]:
    """Addresses once web and ingest answer ``/api/healthz``; RuntimeError if the supervisor gave up."""
    deadline = time.monotonic() + timeout
    ports: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited ({proc.returncode})")
            ports = ports or read_json(cfg.run_dir / "ports.json")
            if ports:
                try:
                    a = await client.get(f"http://{ports['web']}/api/healthz")
                    b = await client.get(f"http://{ports['ingest']}/api/healthz")
                    if a.status_code == b.status_code == 200:
                        return ports
                except httpx.HTTPError:
                    pass
            await trio.sleep(0.1)
    raise RuntimeError(f"the supervisor did not come up within {timeout:.0f}s")


async def wait_planned(cfg: Config, proc: subprocess.Popen | None, timeout: float = 60) -> None:
    """Until the history knows its job ids (the live scheduler numbers on from there)."""
    deadline = time.monotonic() + timeout
    while proc is not None and time.monotonic() < deadline and proc.poll() is None:
        if "next_ids" in read_json(sim_dir(cfg) / "history.json"):
            return
        await trio.sleep(0.1)


def banner(cfg: Config, ports: dict[str, str], args: argparse.Namespace, target: Path, history: bool,
           took: float, sim: LiveSim) -> str:
    rel = os.path.relpath(target)
    rel = rel if not rel.startswith("..") else str(target)
    sizes = ", ".join(f"{c} ({len(p.nodes)} nodes{', GPUs' if any(x.gpus for x in p.partitions) else ''})"
                      for c, p in sim.sched.pools.items())
    hist = read_json(sim_dir(cfg) / "history.json")
    if history:
        h = f"generating {hist.get('planned', 'the')} finished jobs of the last {args.history_days:g} days in the " \
            f"background (log: {rel}/var/log/history.log)"
    elif hist.get("done"):
        h = f"{hist.get('jobs')} finished jobs of earlier weeks in the archive"
    else:
        h = "none"
    return f"""
ClusterCockpit (Python) demo is up ({took:.1f}s): simulated clusters {sizes};
jobs run {args.time_scale:g}x faster than real time.

  Web UI:    http://{ports['web']}/      logins: demo / demo (admin), alice / alice (user)
  Ingest:    http://{ports['ingest']}/api/write   (WebSocket: ws://{ports['ingest']}/api/ws)
  API token: {rel}/demo.jwt (user demo, roles admin+api), e.g.
    curl -H "Authorization: Bearer $(cat {rel}/demo.jwt)" "http://{ports['web']}/api/jobs/?state=running"
  History:   {h}{nats_line(cfg)}
  Logs:      {rel}/var/log/   Status: cd {rel} && {_supervise()} status

Press Ctrl-C to stop (stops the simulation and every process, removes the shared memory).
"""


def nats_line(cfg: Config) -> str:
    if cfg.nats is None:
        return ""
    return (f"\n  NATS:      {cfg.nats.address} (metrics on {NATS_SUBJECTS[0]} into JetStream stream CCDEMO, "
            f"job events on {NATS_SUBJECTS[1]}, node states on {NATS_SUBJECTS[2]})")


def _supervise() -> str:
    exe = Path(sys.executable).with_name("cc-supervise")
    return str(exe) if exe.exists() else f"{sys.executable} -m supervisor"


async def run(cfg: Config, args: argparse.Namespace, target: Path, sup: subprocess.Popen,
              hist: subprocess.Popen | None, t0: float) -> int:
    """Wait for the supervisor, run the simulation, watch the children; returns on Ctrl-C/SIGTERM."""
    stop = trio.Event()
    rc = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, stop)
        try:
            with trio.CancelScope() as startup:
                nursery.start_soon(_cancel_on, stop, startup)
                ports = await wait_ready(cfg, sup)
                await wait_planned(cfg, hist)
                nats_url = cfg.nats.servers[0] if cfg.nats is not None else None
                sim = LiveSim(cfg, SimOptions(sink="nats" if nats_url else args.sink, time_scale=args.time_scale,
                                              target_load=args.load, backfill=args.backfill, seed=args.seed,
                                              web_url=f"http://{ports['web']}",
                                              ingest_url=f"http://{ports['ingest']}", nats_url=nats_url,
                                              nats_subjects=NATS_SUBJECTS))
                await nursery.start(sim.run)
                print(banner(cfg, ports, args, target, hist is not None and hist.poll() is None,
                             time.monotonic() - t0, sim), flush=True)
            while not stop.is_set():
                if sup.poll() is not None:
                    print(f"the supervisor exited ({sup.returncode}); see {cfg.log_dir / 'supervisor.log'}")
                    rc = 1
                    break
                if hist is not None and hist.poll() is not None:
                    h = read_json(sim_dir(cfg) / "history.json")
                    print(f"history ready: {h.get('jobs')} finished jobs ({h.get('seconds')}s)" if h.get("done")
                          else f"history generation failed ({hist.returncode}); see {cfg.log_dir}/history.log",
                          flush=True)
                    hist = None
                with trio.move_on_after(0.5):
                    await stop.wait()
            print("stopping...", flush=True)
        except RuntimeError as e:
            print(f"error: {e}; last lines of {cfg.log_dir / 'supervisor.log'}:", file=sys.stderr)
            for line in tail_lines(cfg.log_dir / "supervisor.log", 15):
                print("  " + line, file=sys.stderr)
            rc = 1
        finally:
            nursery.cancel_scope.cancel()  # the simulation saves its state on the way out
    return rc


async def _watch_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
        async for _ in sigs:
            stop.set()
            return


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def stop_child(proc: subprocess.Popen | None, name: str, timeout: float) -> None:
    if stop_subprocess(proc, timeout):
        print(f"{name} (pid {proc.pid}) did not stop within {timeout:.0f}s; killed it", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Start the demo (created on first use): simulated clusters, "
                                             "scheduler and job history.")
    ap.add_argument("--dir", default="demo")
    ap.add_argument("--cpu-nodes", type=int, default=16, help="nodes of the CPU cluster fritz (first run only)")
    ap.add_argument("--gpu-nodes", type=int, default=4, help="nodes of the GPU cluster alex (first run only)")
    ap.add_argument("--timestep", type=int, default=10, help="metric timestep in seconds (first run only)")
    ap.add_argument("--history-days", type=float, default=21, help="days of finished jobs (first run; 0 = none)")
    ap.add_argument("--time-scale", type=float, default=10, help="job durations are divided by this")
    ap.add_argument("--load", type=float, default=0.8, help="target fraction of busy nodes")
    ap.add_argument("--backfill", type=int, default=600, help="seconds of metrics sent at a cold start")
    ap.add_argument("--sink", choices=("websocket", "http"), default="websocket")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nats", action="store_true", help="start a nats-server and route metrics, job events and "
                                                         "node states through it")
    ap.add_argument("--nats-addr", default="127.0.0.1:0", help="where that nats-server listens (port 0: any free)")
    ap.add_argument("--web-addr", default="127.0.0.1:8080", help="first run only (config.json main.addr)")
    ap.add_argument("--ingest-addr", default="127.0.0.1:8082", help="first run only")
    ap.add_argument("--retention", default="6h", help="metric-store.retention-in-memory (first run only)")
    ap.add_argument("--memory-cap", type=float, default=1.0, help="GB of metric buffers at most (first run only)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.monotonic()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    target = Path(args.dir).resolve()
    if not (target / "config.json").exists():
        setup(target, args)
        print(f"initialised {target}", flush=True)
    else:
        print(f"reusing {target}", flush=True)
    cfg = load_config(target / "config.json")
    from supervisor.cli import supervisor_alive

    if supervisor_alive(cfg):
        print(f"error: a supervisor is already running for {target} (stop it: cd {target} && cc-supervise stop)",
              file=sys.stderr)
        return 1
    nats = None
    if args.nats:
        try:
            nats, url = start_nats(cfg, args.nats_addr)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        configure_nats(target, url)
    elif cfg.nats is not None:
        configure_nats(target, None)
    cfg = load_config(target / "config.json")
    token = sign_token(load_private_key(cfg.secret("JWT_PRIVATE_KEY")), "demo", ["admin", "api"],
                       cfg.jwt_max_age or 2000 * 3600)
    (target / "demo.jwt").write_text(token + "\n")
    hist = start_history(cfg, args)
    sup = start_supervisor(cfg)
    try:
        rc = trio.run(run, cfg, args, target, sup, hist, t0)
    finally:
        stop_child(hist, "history generator", 10)
        stop_child(sup, "supervisor", 60)
        stop_child(nats, "nats-server", 10)
        left = unlink_all(instance_id(cfg.var_dir))  # a supervisor that failed to start may leave them
        if left:
            print(f"removed {len(left)} shared-memory segments left behind (the data is in the WAL/snapshots)")
    if sup.returncode not in (0, None):
        rc = rc or 1
    print("stopped.", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
