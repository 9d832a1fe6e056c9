"""``cc-adapter``: cc-slurm-adapter's command line (``-config``, ``-daemon``, ``-debug``).

Without ``-daemon`` it is the slurmctld Prolog/Epilog hook, which must start fast and
never fail, so the daemon's modules (Trio, httpx) are only imported in daemon mode.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from cc.adapter.config import AdapterConfigError, load_adapter_config, log_warnings

# cc-slurm-adapter's -debug levels: 0 fatal, 1 error, 2 warning (default), 3 info, 4+ debug
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cc-adapter", description="Slurm -> ClusterCockpit job adapter "
                                "(cc-slurm-adapter compatible). Without -daemon: slurmctld Prolog/Epilog hook.")
    p.add_argument("-config", "--config", dest="config", default=None,
                   help="configuration file (default /etc/cc-slurm-adapter/config.json)")
    p.add_argument("-daemon", "--daemon", dest="daemon", action="store_true", help="run the daemon")
    p.add_argument("-debug", "--debug", dest="debug", type=int, default=2,
                   help="log level: 0 fatal, 1 error, 2 warning (default), 3 info, 4-5 debug")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = _LEVELS.get(args.debug, logging.DEBUG if args.debug > 3 else logging.CRITICAL)
    if not args.daemon:
        from cc.adapter.hook import hook_main

        try:
            cfg = load_adapter_config(args.config, daemon=False)
        except AdapterConfigError as e:
            print(f"cc-adapter: {e}", file=sys.stderr)
            return 0
        return hook_main(cfg.prep_sock_connect_path)
    if os.environ.get("CC_CHILD_NAME"):  # run by the supervisor: the common format of var/log/*.log
        from cc.logformat import configure

        configure(os.environ["CC_CHILD_NAME"], level)
    else:
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s cc-adapter: %(message)s")
    log = logging.getLogger("cc-adapter")
    for noisy in ("httpx", "httpcore"):  # one line per request/connection event is too much even for -debug
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        cfg = load_adapter_config(args.config, daemon=True)
    except AdapterConfigError as e:
        print(f"cc-adapter: {e}", file=sys.stderr)
        return 2
    log_warnings(cfg, log)
    from cc.adapter.daemon import Daemon, DaemonError
    from cc.proc import run

    daemon = Daemon(cfg)
    failure: list[str] = []

    async def body(nursery, shutdown) -> None:
        try:
            await daemon.run(shutdown)
        except DaemonError as e:
            failure.append(str(e))

    run(body, log)
    if failure:
        print(f"cc-adapter: {failure[0]}", file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
