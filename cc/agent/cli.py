"""``cc-agent``: run the node agent, or print one round (``--once``) to check a configuration."""

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
        "ClusterCockpit node agent: collects /proc, /sys (and NVML) metrics and sends line protocol."))
    p.add_argument("-config", "--config", dest="config",
                   help="agent configuration (JSON, cc-metric-collector layout); default: all collectors to stdout")
    p.add_argument("-once", "--once", dest="once", action="store_true",
                   help="print one round of line protocol to stdout and exit")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.loglevel, args.logfile)
    try:
        cfg = load_agent_config(args.config) if args.config else AgentConfig()
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
