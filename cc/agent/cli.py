"""``cc-agent``: run the node agent, print one round (``--once``), or ``check`` configuration files."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

from cc.agent.agent import Agent
from cc.agent.collectors._base import AgentConfigError
from cc.agent.config import AgentConfig, load_agent_config

log = logging.getLogger("agent")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cc-agent", description=(
        "ClusterCockpit node agent: collects /proc, /sys (and NVML) metrics and sends line protocol. "
        "'cc-agent check FILE...' validates configuration files (config.json, collectors.json, router.json, "
        "sinks.json, receivers.json) and lists every unknown key with its file and path."))
    p.add_argument("-config", "--config", dest="config",
                   help="agent configuration (JSON, cc-metric-collector layout); default: all collectors to stdout")
    p.add_argument("-once", "--once", dest="once", action="store_true",
                   help="print one round of line protocol to stdout and exit (the sinks are not used)")
    p.add_argument("-collectors", "--collectors", dest="collectors", metavar="NAME[,NAME...]",
                   help="run only these collectors (with their options from the configuration, if any)")
    p.add_argument("-loglevel", "--loglevel", dest="loglevel", default=os.environ.get("LOGLEVEL", "info"),
                   help="debug, info, warn, error")
    p.add_argument("-log", "--log", dest="logfile", default="stderr", help="log file (default stderr)")
    return p.parse_args(argv)


def setup_logging(level: str, logfile: str) -> None:
    lvl = {"warn": "WARNING", "err": "ERROR", "crit": "CRITICAL"}.get(level.lower(), level.upper())
    handler: logging.Handler = (logging.StreamHandler(sys.stderr) if logfile == "stderr"
                                else logging.FileHandler(logfile))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, lvl, logging.INFO))


async def _serve(agent: Agent) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        async def signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
                async for sig in sigs:
                    log.info("received %s; delivering what is buffered, then stopping", signal.Signals(sig).name)
                    shutdown.set()
                    return

        nursery.start_soon(signals)
        await agent.run(shutdown)
        nursery.cancel_scope.cancel()


def check_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="cc-agent check", description=(
        "Validate cc-agent / cc-metric-collector configuration files: every unknown key is reported with its "
        "file and path, then the first bad value of each component.  A file's kind comes from its name "
        "(collectors*.json, router*.json, sinks*.json, receivers*.json; anything else is a combined "
        "configuration whose *-file references are followed).  Exit status 1 if anything is wrong."))
    p.add_argument("files", nargs="+", metavar="CONFIG")
    args = p.parse_args(argv)
    from cc.agent.check import check_files

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # building components to check them must not look like running them
    try:
        problems, notes = check_files(args.files)
    finally:
        root.setLevel(level)
    for n in notes:
        print(f"note: {n}")
    for e in problems:
        print(e)
    if not problems:
        print(f"{', '.join(args.files)}: OK")
    return 1 if problems else 0


def select_collectors(cfg: AgentConfig, names: str) -> None:
    """``--collectors a,b``: keep those (configured options, or none), in that order."""
    from cc.agent.collectors import REGISTRY

    wanted = [n.strip() for n in names.split(",") if n.strip()]
    for n in wanted:
        if n not in REGISTRY:
            raise AgentConfigError(f"--collectors: unknown collector {n!r} (known: {', '.join(sorted(REGISTRY))})")
    cfg.collectors = {n: cfg.collectors.get(n, {}) for n in wanted}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return check_main(argv[1:])
    args = parse_args(argv)
    setup_logging(args.loglevel, args.logfile)
    try:
        cfg = load_agent_config(args.config) if args.config else AgentConfig()
        if args.collectors is not None:
            select_collectors(cfg, args.collectors)
        if args.once:
            cfg.receivers = {}  # one round of this node's collectors; nothing listens
        agent = Agent(cfg)
    except AgentConfigError as e:
        print(f"cc-agent: configuration error: {e}", file=sys.stderr)
        return 2
    if args.once:
        lines = trio.run(agent.once)
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
        return 0
    log.info("cc-agent on %s: every %g s to %s", cfg.hostname, cfg.interval,
             ", ".join(f"{s.name} ({s.type})" for s in agent.sinks))
    trio.run(_serve, agent)
    return 0


def entry() -> None:
    sys.exit(main())
