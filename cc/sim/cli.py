"""``cc-sim`` / ``python -m cc.sim``: a simulated cluster for an installation (the demo uses it too).

    cc-sim clusters --cpu-nodes 16 --gpu-nodes 4   # write the demo clusters' cluster.json into the archive
    cc-sim history --days 21                        # weeks of finished jobs into the archive and database
    cc-sim run --time-scale 10                      # live nodes + scheduler against the running supervisor
    cc-sim once                                     # one step of line protocol on stdout (nothing sent)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

import orjson
import trio

from cc.config import ConfigError, load_config
from cc.sim import history as hist
from cc.sim.hardware import demo_clusters
from cc.sim.runner import LiveSim, SimOptions, read_json, sim_dir, write_json


def _cfg(args):
    try:
        return load_config(args.config)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None


def write_clusters(archive: Path, cpu_nodes: int, gpu_nodes: int, timestep: int, force: bool = False) -> list[Path]:
    """The demo cluster.json files in ``archive`` (existing ones kept unless ``force``)."""
    out = []
    for name, doc in demo_clusters(cpu_nodes, gpu_nodes, timestep).items():
        path = archive / name / "cluster.json"
        if path.exists() and not force:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        out.append(path)
    return out


def cmd_clusters(args) -> int:
    cfg = _cfg(args)
    for p in write_clusters(cfg.archive_path, args.cpu_nodes, args.gpu_nodes, args.timestep, args.force):
        print(f"wrote {p}")
    return 0


def _clusters(cfg, names: list[str] | None):
    from cc.clusters import load_clusters

    all_clusters = load_clusters(cfg.archive_path)
    names = names or sorted(all_clusters)
    missing = [n for n in names if n not in all_clusters]
    if missing:
        raise SystemExit(f"error: no cluster.json for {', '.join(missing)} in {cfg.archive_path}")
    return {n: all_clusters[n] for n in names}


def run_history(cfg, *, days: float, end: int | None, seed: int, workers: int | None, names: list[str] | None,
                force: bool = False, quiet: bool = False) -> int:
    """Generate the history once; an interrupted run is resumed with the same jobs (same end and seed)."""
    path = sim_dir(cfg) / "history.json"
    prev = read_json(path)
    if prev.get("done") and not force:
        if not quiet:
            print(f"history already generated ({prev.get('jobs')} jobs); --force makes more")
        return 0
    if prev and not prev.get("done") and not force:
        end, seed, days = prev.get("end", end), prev.get("seed", seed), prev.get("days", days)
    end = int(end or time.time())
    clusters = _clusters(cfg, names)
    next_ids = read_json(sim_dir(cfg) / "state.json").get("next_ids") if force else None
    doc = {"end": end, "days": days, "seed": seed, "done": False}

    def planned(ids: dict[str, int], count: int) -> None:
        doc.update(next_ids=ids, planned=count)
        write_json(path, doc)
        if not quiet:
            print(f"history: {count} jobs over {days:g} days; writing archive and database...", flush=True)

    from cc.archive.dbsync import ProgressBar

    bar = None if quiet else ProgressBar(sys.stderr)
    res = hist.generate(cfg.archive_path, cfg.db_path, clusters, days=days, end=end, seed=seed,
                        next_ids=next_ids, workers=workers, progress=bar, on_planned=planned)
    doc.update(done=True, jobs=res.jobs, seconds=round(res.seconds, 1), states=res.by_state)
    write_json(path, doc)
    if not quiet:
        print(f"history: {res.jobs} jobs in {res.seconds:.1f}s ({', '.join(f'{k} {v}' for k, v in sorted(res.by_state.items()))})")
    return 0


def cmd_history(args) -> int:
    cfg = _cfg(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: worker processes are terminated
    return run_history(cfg, days=args.days, end=args.end, seed=args.seed, workers=args.workers,
                       names=args.cluster, force=args.force, quiet=args.quiet)


def options(args) -> SimOptions:
    return SimOptions(clusters=args.cluster, sink=args.sink, time_scale=args.time_scale, target_load=args.load,
                      backfill=args.backfill, seed=args.seed)


def cmd_run(args) -> int:
    cfg = _cfg(args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    async def main() -> None:
        sim = LiveSim(cfg, options(args))
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.run)
            logging.getLogger("sim").info("simulating %d nodes of %s; jobs via %s, metrics via %s sink",
                                          len(sim.nodes.hosts), ", ".join(sim.clusters), sim.web, args.sink)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                async for _ in sigs:
                    break
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def cmd_once(args) -> int:
    """Fill the cluster as ``run`` does and print one step of line protocol (nothing is sent)."""
    from cc.sim.nodes import NodeSim
    from cc.sim.scheduler import Scheduler

    cfg = _cfg(args)
    clusters = _clusters(cfg, args.cluster)
    nodes = NodeSim(clusters, seed=args.seed)
    sched = Scheduler(clusters, time_scale=args.time_scale, target_load=args.load, seed=args.seed)
    now = time.time()
    for r in sched.fill(now - 600, now):
        nodes.assign(r.key, r.spec.cluster, r.alloc.resources, r.start, r.spec.runtime, r.spec.params)
    step = nodes.step
    sys.stdout.write("\n".join(nodes.lines(int(now // step * step))) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cc-sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, fn, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("-config", "--config", default="config.json", help="config.json of the installation")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("clusters", cmd_clusters, "write the demo cluster.json files (CPU cluster fritz, GPU cluster alex)")
    sp.add_argument("--cpu-nodes", type=int, default=16)
    sp.add_argument("--gpu-nodes", type=int, default=4)
    sp.add_argument("--timestep", type=int, default=10, help="metric timestep in seconds (default 10)")
    sp.add_argument("--force", action="store_true", help="overwrite existing cluster.json files")
    sp = add("history", cmd_history, "fill the job archive and database with weeks of finished jobs")
    sp.add_argument("--days", type=float, default=21)
    sp.add_argument("--end", type=int, default=None, help="end of the history (unix time; default now)")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--workers", type=int, default=None, help="writer processes (default: 2 or fewer cores)")
    sp.add_argument("--cluster", action="append", help="only this cluster (repeatable; default all)")
    sp.add_argument("--force", action="store_true", help="generate again even if done before")
    sp.add_argument("--quiet", action="store_true")
    for name, fn, help_ in (("run", cmd_run, "simulate nodes and scheduler against the running installation"),
                            ("once", cmd_once, "print one step of line protocol of a busy cluster")):
        sp = add(name, fn, help_)
        sp.add_argument("--cluster", action="append", help="only this cluster (repeatable; default all)")
        sp.add_argument("--time-scale", type=float, default=10.0, help="job durations are divided by this (10)")
        sp.add_argument("--load", type=float, default=0.8, help="target fraction of busy nodes (0.8)")
        sp.add_argument("--seed", type=int, default=0)
        if name == "run":
            sp.add_argument("--sink", choices=("websocket", "http"), default="websocket")
            sp.add_argument("--backfill", type=int, default=600, help="seconds of metrics sent at a cold start")
            sp.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
