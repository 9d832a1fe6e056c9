"""cc-agent: CPU time per collection round, and WebSocket vs HTTP sink throughput.

1. **CPU per round.**  ``Agent.round()`` (read every collector, route, encode for one sink)
   timed with the thread's CPU clock, on this machine's /proc and /sys with the default
   collector set, and on a synthetic tree of a 128-hwthread, 8-NUMA-domain node (generated
   from tests/fixtures/agent, static files: parsing cost, no real rates).  The router runs a
   typical configuration (cluster tag, a rename, a conditional drop, a unit prefix change,
   unit normalisation).

2. **Sink throughput into the real ingest path.**  One installation (``ingest-workers`` 2);
   pre-encoded lines (hosts x 64 hwthreads x timestamps, as bench/ingest.py) are handed to a
   sink at once, and the clock runs until the sink holds nothing unacknowledged: every
   point written to shared memory and the WAL, answered, and released.  Each (run, sink)
   uses its own host names, so every run registers fresh series.  Sinks alternate order
   from run to run; medians over runs.  Also reported: the agent process's CPU seconds per
   million points (encoding to bytes, gzip, framing, answers).
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import cluster_doc, effective_settings, header, installation, percentile  # noqa: E402
from bench.ingest import make_lines  # noqa: E402
from cc.agent.agent import Agent  # noqa: E402
from cc.agent.collectors import DEFAULT_COLLECTORS  # noqa: E402
from cc.agent.config import parse_agent_config  # noqa: E402
from cc.agent.sinks import HttpSink, WebsocketSink  # noqa: E402

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "agent" / "root"
ROUTER = {"cluster": "bench", "process_messages": {
    "rename_messages": {"load_one": "load_1m"},
    "drop_messages_if": ["name matches '^mem_(direct|vmalloc)' || name == 'cpu_guest_nice'"],
    "change_unit_prefix": {"name == 'mem_total'": "G"},
    "normalize_units": True,
}}


def synthetic_node(dst: Path, hwthreads: int = 128, numa: int = 8) -> Path:
    """A /proc + /sys tree for a big node, scaled up from the test fixture (same file formats)."""
    shutil.copytree(FIX, dst)
    stat = (FIX / "proc/stat").read_text().splitlines(keepends=True)
    tail = "".join(ln for ln in stat if not ln.startswith("cpu"))
    cpus = "".join(f"cpu{i} {1000 + i} 25 250 5000 50 0 25 0 0 0\n" for i in range(hwthreads))
    (dst / "proc/stat").write_text(f"cpu  {1000 * hwthreads} 0 0 0 0 0 0 0 0 0\n" + cpus + tail)
    block = (FIX / "proc/cpuinfo").read_text().split("\n\n")[0]
    blocks = []
    for i in range(hwthreads):
        b = re.sub(r"processor\t: \d+", f"processor\t: {i}", block)
        b = re.sub(r"core id\t\t: \d+", f"core id\t\t: {i % (hwthreads // 2)}", b)
        blocks.append(re.sub(r"physical id\t: \d+", f"physical id\t: {i // (hwthreads // 2)}", b))
    (dst / "proc/cpuinfo").write_text("\n\n".join(blocks) + "\n\n")
    sched = ["version 15", "timestamp 1"] + [f"cpu{i} 0 0 1 1 1 1 {10**10} {10**9} 1" for i in range(hwthreads)]
    (dst / "proc/schedstat").write_text("\n".join(sched) + "\n")
    sysc = dst / "sys/devices/system/cpu"
    for i in range(hwthreads):
        (sysc / f"cpu{i}/cpufreq").mkdir(parents=True, exist_ok=True)
        (sysc / f"cpu{i}/topology").mkdir(parents=True, exist_ok=True)
        (sysc / f"cpu{i}/cpufreq/scaling_cur_freq").write_text("2400000\n")
        (sysc / f"cpu{i}/topology/core_id").write_text(f"{i % (hwthreads // 2)}\n")
        (sysc / f"cpu{i}/topology/physical_package_id").write_text(f"{i // (hwthreads // 2)}\n")
    node = dst / "sys/devices/system/node"
    for n in range(numa):
        d = node / f"node{n}"
        if not d.exists():
            shutil.copytree(node / "node0", d)
        d.joinpath("meminfo").write_text((node / "node0/meminfo").read_text().replace("Node 0 ", f"Node {n} "))
    hardware_tree(dst, hwthreads)
    return dst


def hardware_tree(dst: Path, hwthreads: int, sockets: int = 2, jobs: int = 4) -> None:
    """RAPL zones, an InfiniBand HCA, coretemp sensors, Slurm job cgroups (v2), NFS mounts: what the
    rapl, ibstat, tempstat, slurm_cgroup and nfsiostat collectors read on a real node."""
    def put(rel: str, text: str) -> None:
        p = dst / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    rapl = "sys/devices/virtual/powercap/intel-rapl"
    for s in range(sockets):
        for rel, name in ((f"intel-rapl:{s}", f"package-{s}"), (f"intel-rapl:{s}/intel-rapl:{s}:0", "dram")):
            put(f"{rapl}/{rel}/name", name + "\n")
            put(f"{rapl}/{rel}/energy_uj", "123456789\n")
            put(f"{rapl}/{rel}/max_energy_range_uj", "262143328850\n")
    for c in ("port_rcv_data", "port_xmit_data", "port_rcv_packets", "port_xmit_packets"):
        put(f"sys/class/infiniband/mlx5_0/ports/1/counters/{c}", "987654321\n")
    put("sys/class/infiniband/mlx5_0/ports/1/lid", "0x1f\n")
    cores = hwthreads // 2 // sockets
    for s in range(sockets):
        d = f"sys/class/hwmon/hwmon{s}"
        put(f"{d}/name", "coretemp\n")
        put(f"{d}/temp1_label", f"Package id {s}\n")
        put(f"{d}/temp1_input", "45000\n")
        for c in range(cores):
            put(f"{d}/temp{c + 2}_label", f"Core {c}\n")
            put(f"{d}/temp{c + 2}_input", "43000\n")
    put("sys/devices/system/cpu/online", f"0-{hwthreads - 1}\n")
    put("sys/fs/cgroup/cgroup.controllers", "cpuset cpu memory\n")
    per = hwthreads // jobs
    for j in range(jobs):
        d = f"sys/fs/cgroup/system.slice/slurmstepd.scope/job_{1000 + j}"
        for f, v in (("memory.current", "4000000000"), ("memory.peak", "6000000000"), ("memory.max", "max"),
                     ("cpuset.cpus.effective", f"{j * per}-{(j + 1) * per - 1}")):
            put(f"{d}/{f}", v + "\n")
        put(f"{d}/cpu.stat", "usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\n")
    put("proc/self/mountstats", "".join(
        f"device nfs0{i}:/export mounted on /nfs{i} with fstype nfs4 statvers=1.1\n"
        "\topts:\trw,vers=4.2\n\tbytes:\t1000 2000 0 0 1000 2000 10 20\n" for i in range(2)))


def time_rounds(root: Path, rounds: int, extra: dict | None = None) -> dict:
    collectors = {**DEFAULT_COLLECTORS, **(extra or {})}
    cfg = parse_agent_config({"root": str(root), "hostname": "bench01", "interval": "10s", "router": ROUTER,
                              "collectors": collectors,
                              "sinks": {"store": {"type": "http", "url": "http://127.0.0.1:1/api/write"}}})
    agent = Agent(cfg)
    t0 = time.time()
    agent.start_collectors(t0)
    cpu: list[float] = []
    lines = 0
    for i in range(rounds):
        c = time.thread_time()
        [out] = agent.round(t0 + 10 * (i + 1), now=t0 + 10 * (i + 1))
        cpu.append(time.thread_time() - c)
        lines = len(out)
    return {"collectors": [c.name for c in agent.active], "lines": lines, "median": statistics.median(cpu),
            "p95": percentile(cpu, 95)}


async def send_through(sink, lines: list[str]) -> tuple[float, float]:
    """Wall seconds and agent CPU seconds until ``sink`` delivered ``lines``."""
    async with trio.open_nursery() as nursery:
        await nursery.start(sink.run)
        if isinstance(sink, WebsocketSink):  # connect first: the handshake is not throughput
            while sink.connects == 0:
                await trio.sleep(0.01)
        c0, t0 = time.process_time(), time.perf_counter()
        sink.accept(lines)
        while sink.pending():
            await trio.sleep(0.002)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        nursery.cancel_scope.cancel()
    return dt, dc


def make_sink(kind: str, inst, gz: bool, batch: int, total: int):
    host = inst.ingest.split("//", 1)[1]
    common = {"jwt": inst.token(), "gzip": gz, "batch_size": batch, "buffer_size": total + batch}
    if kind == "http":
        return HttpSink("http", {"type": "http", "url": f"http://{host}/api/write?cluster=c1", **common})
    return WebsocketSink("ws", {"type": "websocket", "url": f"ws://{host}/api/ws?cluster=c1", **common})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=200, help="collection rounds timed per tree")
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--timestamps", type=int, default=30, help="timestamps per series (60 s apart, <= 38)")
    ap.add_argument("--batch", type=int, default=5000, help="points per request / message")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--collectors-only", action="store_true", help="only the CPU-per-round part (no installation)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("agent").setLevel(logging.ERROR)  # 'collector X not available here'

    header("cc-agent: CPU per round; WebSocket vs HTTP sink")
    tmp = Path(tempfile.mkdtemp(prefix="ccbench-agent-"))
    try:
        own = {"self": {"read_mem_stats": True, "read_goroutines": True, "read_rusage": True}}
        for label, root, extra in (
                ("this machine (/)", Path("/"), own),
                ("synthetic 128 hwthreads, 8 NUMA domains, 2 sockets, 4 Slurm jobs", synthetic_node(tmp / "big"),
                 {**own, "slurm_cgroup": {}, "ibstat": {"send_derived_values": True, "send_total_values": True},
                  "nfsiostat": {"send_derived_values": True}})):
            r = time_rounds(root, args.rounds, extra)
            print(f"   round CPU, {label}: median {r['median'] * 1e3:.2f} ms, p95 {r['p95'] * 1e3:.2f} ms "
                  f"for {r['lines']} lines ({r['median'] / r['lines'] * 1e6:.1f} µs/line; "
                  f"{r['median'] / 10 * 100:.3f} % of one core at a 10 s interval); "
                  f"collectors: {', '.join(r['collectors'])}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"   bench process peak RSS after the rounds: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.collectors_only:
        return 0

    configs = [(k, gz) for gz in (True, False) for k in ("http", "ws")]
    doc = cluster_doc("c1", [("cpu_load", "hwthread", "avg")], sockets=2, cores_per_socket=32, timestep=60)
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {c: [] for c in configs}
    with installation(clusters={"c1": doc}, ingest_workers=2, memory_cap_gb=1.0) as inst:
        print(f"   installation: {effective_settings(inst)}")
        now = int(time.time())
        n_per = args.hosts * 64 * args.timestamps
        print(f"   load per (run, sink): {args.hosts} hosts x 64 hwthreads x {args.timestamps} timestamps = "
              f"{n_per:,} points, {args.batch} per request/message", flush=True)
        k = 0
        for run in range(args.runs):
            order = configs if run % 2 == 0 else configs[::-1]
            for kind, gz in order:
                k += 1
                raw, _ = make_lines(args.hosts, 64, args.timestamps, 60, now)
                lines = [ln.decode().replace("hostname=n", f"hostname=r{k}n", 1) for ln in raw]
                sink = make_sink(kind, inst, gz, args.batch, len(lines))
                dt, dc = trio.run(send_through, sink, lines)
                assert sink.sent_points == len(lines) and sink.buffer.dropped_total == 0
                assert getattr(sink, "errors_reported", 0) == 0 and getattr(sink, "failures", 0) == 0
                results[(kind, gz)].append((len(lines) / dt, dc / len(lines) * 1e6))
                print(f"   run {run + 1} {kind:<4} gzip={'on ' if gz else 'off'}: {len(lines) / dt:>9,.0f} points/s "
                      f"({dt:.2f} s; agent CPU {dc:.2f} s)", flush=True)
    print("   medians:")
    for gz in (True, False):
        h = statistics.median(p for p, _ in results[("http", gz)])
        w = statistics.median(p for p, _ in results[("ws", gz)])
        hc = statistics.median(c for _, c in results[("http", gz)])
        wc = statistics.median(c for _, c in results[("ws", gz)])
        ratio = statistics.median(wp / hp for (wp, _), (hp, _) in zip(results[("ws", gz)], results[("http", gz)],
                                                                     strict=True))
        print(f"   gzip {'on ' if gz else 'off'}: http {h:>9,.0f} points/s, websocket {w:>9,.0f} points/s "
              f"(median of per-run ratios x{ratio:.2f}); agent CPU per 1M points: http {hc:.2f} s, "
              f"websocket {wc:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
