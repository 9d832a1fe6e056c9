"""cc-agent collectors against fixture copies of /proc and /sys (exact values), and the live machine.

The fixture tree (tests/fixtures/agent, see its README) is copied to a temporary
directory, read once at t=1000, the ``round2`` files are copied over it, and read again at
t=1010, so every rate has an exact expected value.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cc.agent.agent import Agent
from cc.agent.collectors import REGISTRY, AgentConfigError, CollectorUnavailable, Context, make_collector
from cc.agent.collectors.nvidia import NvidiaCollector
from cc.agent.config import parse_agent_config
from cc.agent.message import Message, encode

FIX = Path(__file__).parent / "fixtures" / "agent"
T0, T1 = 1000.0, 1010.0
CLK = os.sysconf("SC_CLK_TCK")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    shutil.copytree(FIX / "root", r)
    return r


def advance(root: Path) -> None:
    shutil.copytree(FIX / "round2", root, dirs_exist_ok=True)


def run(root: Path, name: str, cfg: dict | None = None, *, standard: bool = True,
        started: set[str] | None = None) -> list[Message]:
    ctx = Context(root, standard, frozenset({name}), set(started or ()))
    c = make_collector(name, cfg, ctx)
    c.init(T0)
    advance(root)
    return c.read(T1)


def by_key(msgs: list[Message]) -> dict[tuple, Message]:
    out = {}
    for m in msgs:
        key = (m.name, tuple(sorted((k, v) for k, v in m.tags.items() if k != "unit")))
        assert key not in out, f"duplicate {key}"
        out[key] = m
    return out


def val(msgs: dict, name: str, **tags: str) -> float:
    tags = {k.replace("_", "-") if k in ("type_id", "stype_id") else k: v for k, v in tags.items()}
    return msgs[(name, tuple(sorted(tags.items())))].value


def pct(ticks: int) -> float:
    return ticks / CLK / (T1 - T0) * 100.0


def test_cpustat_per_hwthread_and_node(root):
    got = run(root, "cpustat")
    assert all(m.time == T1 and m.meta["source"] == "CpustatCollector" for m in got)
    assert all(m.tags["unit"] == "Percent" for m in got if m.name != "num_cpus")
    m = by_key(got)
    hw = {"type": "hwthread"}
    assert val(m, "cpu_user", **hw, type_id="0") == pytest.approx(pct(500))
    assert val(m, "cpu_system", **hw, type_id="0") == pytest.approx(pct(100))
    assert val(m, "cpu_idle", **hw, type_id="0") == pytest.approx(pct(350))
    assert val(m, "cpu_iowait", **hw, type_id="0") == pytest.approx(pct(50))
    assert val(m, "cpu_used", **hw, type_id="0") == pytest.approx(pct(650))
    assert val(m, "cpu_used", **hw, type_id="1") == pytest.approx(pct(1000))
    assert val(m, "cpu_idle", **hw, type_id="2") == pytest.approx(pct(1000))
    assert val(m, "cpu_used", **hw, type_id="2") == 0.0
    # guest time is part of user time: cpu_used does not count it twice
    assert val(m, "cpu_guest", **hw, type_id="3") == pytest.approx(pct(100))
    assert val(m, "cpu_used", **hw, type_id="3") == pytest.approx(pct(800))
    assert val(m, "cpu_user", type="node") == pytest.approx(pct(1650))
    assert val(m, "cpu_used", type="node") == pytest.approx(pct(2450))
    assert val(m, "num_cpus", type="node") == 4
    assert len(got) == 5 * 11 + 1


def test_cpustat_exclude_metrics(root):
    got = run(root, "cpustat", {"exclude_metrics": ["cpu_idle", "cpu_guest", "cpu_guest_nice", "num_cpus"]})
    names = {m.name for m in got}
    assert "cpu_idle" not in names and "num_cpus" not in names
    assert "cpu_used" in names  # still derived from idle, which is only not sent
    assert by_key(got)[("cpu_used", (("type", "hwthread"), ("type-id", "0")))].value == pytest.approx(pct(650))


def test_cpufreq_sysfs_one_per_core_and_clock_per_hwthread(root):
    m = by_key(run(root, "cpufreq"))
    cf = {k: x for k, x in m.items() if k[0] == "cpufreq"}
    assert sorted(dict(k[1])["type-id"] for k in cf) == ["0", "2"]  # hyperthread siblings skipped
    x = m[("cpufreq", (("package_id", "0"), ("type", "hwthread"), ("type-id", "2")))]
    assert x.value == 1200000 and x.meta["unit"] == "kHz"
    assert [val(m, "clock", type="hwthread", type_id=str(i)) for i in range(4)] == [2500.5, 2500.5, 1200.0, 1200.0]
    assert m[("clock", (("type", "hwthread"), ("type-id", "0")))].meta["unit"] == "MHz"


def test_cpufreq_cpuinfo_and_its_deference_to_sysfs(root):
    m = by_key(run(root, "cpufreq_cpuinfo"))
    assert val(m, "cpufreq", type="hwthread", type_id="0", package_id="0") == 2500.5
    assert val(m, "cpufreq", type="hwthread", type_id="2", package_id="0") == 1200.0
    assert ("cpufreq", (("package_id", "0"), ("type", "hwthread"), ("type-id", "1"))) not in m
    assert [val(m, "clock", type="hwthread", type_id=str(i)) for i in range(4)] == [2500.5, 2500.5, 1200.0, 1200.0]
    with pytest.raises(CollectorUnavailable, match="cpufreq"):
        run(root, "cpufreq_cpuinfo", started={"cpufreq"})


def test_schedstat_load_per_hwthread(root):
    m = by_key(run(root, "schedstat"))
    assert [val(m, "cpu_load_core", type="hwthread", type_id=str(i)) for i in range(4)] == \
        pytest.approx([0.6, 1.1, 0.0, 0.3])


def test_loadavg_and_cpu_load(root):
    m = by_key(run(root, "loadavg"))
    assert val(m, "load_one", type="node") == 1.5 == val(m, "cpu_load", type="node")
    assert val(m, "load_five", type="node") == 1.25 and val(m, "load_fifteen", type="node") == 1.0
    assert val(m, "proc_run", type="node") == 3 and val(m, "proc_total", type="node") == 412
    assert isinstance(val(m, "proc_total", type="node"), int)


def test_memstat_node_and_numa(root):
    got = run(root, "memstat", {"numa_stats": True})
    m = by_key(got)
    assert val(m, "mem_total", type="node") == 16000000
    assert m[("mem_total", (("type", "node"),))].meta["unit"] == "kB"
    assert val(m, "mem_shared", type="node") == 1000000
    assert val(m, "mem_hugepages_total", type="node") == 16  # no unit column, still read
    # 16000000 - 6000000 free - 500000 buffers - (3000000 cached - 1000000 shmem) kB, in GB
    assert val(m, "mem_used", type="node") == pytest.approx(7.5)
    assert m[("mem_used", (("type", "node"),))].meta["unit"] == "GB"
    assert val(m, "mem_used", type="memoryDomain", type_id="0") == pytest.approx(5.0)
    assert val(m, "mem_used", type="memoryDomain", type_id="1") == pytest.approx(4.0)
    assert val(m, "mem_total", type="memoryDomain", type_id="1") == 8000000
    assert not any(x.name == "mem_direct_mapped_4m" for x in got)  # not in the file: not sent


def test_memstat_upstream_units_without_standard_metrics(root):
    m = by_key(run(root, "memstat", {"exclude_metrics": ["mem_free"]}, standard=False))
    assert val(m, "mem_used", type="node") == 7500000
    assert m[("mem_used", (("type", "node"),))].meta["unit"] == "kB"
    assert ("mem_free", (("type", "node"),)) not in m


def test_numastats_counters_and_rates(root):
    m = by_key(run(root, "numastats", {"send_derived_values": True}))
    md = {"type": "memoryDomain"}
    assert val(m, "numastats_numa_hit", **md, type_id="0") == 2000
    assert val(m, "numastats_numa_hit_rate", **md, type_id="0") == 100.0
    assert val(m, "numastats_numa_hit_rate", **md, type_id="1") == 200.0
    assert val(m, "numastats_other_node_rate", **md, type_id="1") == 0.5
    assert ("numastats_numa_hit_rate", (("type", "memoryDomain"), ("type-id", "0"))) not in by_key(
        run(root, "numastats"))  # rates only when asked for


def test_netstat_devices_rates_and_standard_bandwidths(root):
    got = run(root, "netstat", {"send_derived_values": True})
    m = by_key(got)
    devs = {x.tags.get("stype-id") for x in got} - {None}
    assert devs == {"eth0", "ib0"}  # lo and docker0 have no hardware behind them
    eth = {"type": "node", "stype": "network", "stype_id": "eth0"}
    assert val(m, "net_bytes_in", **eth) == 1500000
    assert val(m, "net_bytes_in_bw", **eth) == 50000.0
    assert m[("net_bytes_in_bw", (("stype", "network"), ("stype-id", "eth0"), ("type", "node")))].meta["unit"] \
        == "bytes/sec"
    assert val(m, "net_pkts_out_bw", type="node", stype="network", stype_id="ib0") == 2000.0
    assert val(m, "net_bw", type="node") == 50000 + 10000 + 100000000 / 10 + 50000000 / 10
    assert val(m, "eth_read_bw", type="node") == 50000 and val(m, "eth_write_bw", type="node") == 10000
    assert val(m, "ic_read_bw", type="node") == 1e7 and val(m, "ic_write_bw", type="node") == 5e6


def test_netstat_include_devices_and_aliases(root):
    got = run(root, "netstat", {"include_devices": ["docker0", "eth9"], "interface_aliases": {"eth9": ["eth0"]},
                                "send_abs_values": False})
    m = by_key(got)
    assert {x.tags.get("stype-id") for x in got if "stype-id" in x.tags} == set()
    # docker0 (in and out 1000000 bytes in 10 s) and eth0 (the alias of eth9: 500000 and 100000)
    assert val(m, "net_bw", type="node") == (2 * 1000000 + 500000 + 100000) / 10
    assert val(m, "eth_read_bw", type="node") == (1000000 + 500000) / 10
    assert ("ic_read_bw", (("type", "node"),)) not in m  # no InfiniBand device measured
    with pytest.raises(CollectorUnavailable, match="no network devices"):
        run(root, "netstat", {"include_devices": ["nope0"]})


def test_iostat_deltas_and_file_bw(root):
    got = run(root, "iostat", {"exclude_devices": ["sda1"], "exclude_metrics": ["io_flushes"]})
    m = by_key(got)
    assert {x.tags.get("device") for x in got} - {None} == {"sda", "nvme0n1", "dm-0"}  # loop0 never
    assert val(m, "io_read_sectors", type="node", device="sda") == 20000
    assert val(m, "io_writes", type="node", device="sda") == 400
    assert not any(x.name == "io_flushes" for x in got)
    # whole physical disks only: sda (20000 + 40000 sectors) and nvme0n1 (2000), not sda1 or dm-0
    assert val(m, "file_bw", type="node") == (20000 + 40000 + 2000) * 512 / 10


def test_diskstat_with_measured_file_systems(root):
    sizes = {"": (100_000_000, 50_000_000), "scratch": (1_000_000_000, 100_000_000),
             "mnt/with space": (10, 5)}

    def fake_statvfs(path: str):
        rel = str(Path(path).relative_to(root)).strip(".")
        blocks, free = sizes[rel]
        return SimpleNamespace(f_blocks=blocks, f_bfree=free, f_bsize=4096)

    c = make_collector("diskstat", {"exclude_mounts": ["slurm-tmpfs"]}, Context(root))
    c.statvfs = fake_statvfs
    c.init(T0)
    m = by_key(c.read(T1))
    assert val(m, "disk_total", type="node", device="/dev/sda1") == 409
    assert val(m, "disk_free", type="node", device="/dev/sda1") == 204
    assert val(m, "disk_total", type="node", device="/dev/nvme0n1") == 4096
    assert val(m, "disk_total", type="node", device="/dev/sdc1") == 0
    assert val(m, "part_max_used", type="node") == 100 * (4096 - 409) // 4096
    assert not any(k[1] and dict(k[1]).get("device") in ("/dev/sda2", "/dev/loop0", "/dev/sdb1") for k in m)


class FakeNVML:
    """A stand-in for the pynvml module (third-party library), with one GPU."""

    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_CLOCK_VIDEO = range(4)

    def __init__(self):
        self.energy = 1_000_000
        self.shut = False

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"gpu{i}"

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(domain=0, bus=0x3B, device=0)

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=40 * 2**30, used=8 * 10**9, free=0)

    def nvmlDeviceGetPowerUsage(self, h):
        return 250_500

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self.energy += 2_500_000
        return self.energy

    def nvmlDeviceGetClockInfo(self, h, c):
        return 1410 if c == self.NVML_CLOCK_SM else 1000

    def nvmlDeviceGetTemperature(self, h, sensor):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    def __getattr__(self, name):  # everything else: not supported on this "GPU"
        def unsupported(*a):
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return unsupported

    def nvmlShutdown(self):
        self.shut = True


def test_nvidia_through_nvml_with_standard_names(root):
    fake = FakeNVML()
    c = make_collector("nvidia", {"use_pci_info_as_type_id": True}, Context(root))
    c.loader = lambda: fake
    c.init(T0)
    c.read(T0)
    m = by_key(c.read(T1))
    acc = {"type": "accelerator", "type_id": "00000000:3B:00.0"}
    assert val(m, "nv_util", **acc) == 87.0 and val(m, "acc_used", **acc) == 87.0
    assert val(m, "nv_fb_mem_used", **acc) == pytest.approx(8e9 / 2**20)
    assert val(m, "acc_mem_used", **acc) == 8.0
    assert val(m, "acc_power", **acc) == 250.5 == val(m, "nv_power_usage", **acc)
    assert val(m, "nv_sm_clock", **acc) == 1410.0
    assert val(m, "nv_energy", **acc) == 2500.0 and val(m, "nv_average_power", **acc) == 250.0
    assert not any(x.name == "nv_temp" for x in m.values())  # unsupported by this GPU: left out
    c.close()
    assert fake.shut


def test_nvidia_skipped_cleanly_without_pynvml(root, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *a, **kw):
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    with pytest.raises(CollectorUnavailable, match="pynvml"):
        NvidiaCollector({}, Context(root)).init(T0)


def test_missing_files_make_collectors_unavailable_and_bad_options_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("cpustat", "cpufreq", "cpufreq_cpuinfo", "schedstat", "loadavg", "memstat", "numastats",
                 "netstat", "iostat", "diskstat"):
        with pytest.raises(CollectorUnavailable):
            make_collector(name, {}, Context(empty)).init(T0)
    with pytest.raises(AgentConfigError, match=r"collectors\.cpustat: unknown key 'exclude'"):
        make_collector("cpustat", {"exclude": []}, Context(empty))
    with pytest.raises(AgentConfigError, match=r"collectors\.memstat\.numa_stats: expected true or false"):
        make_collector("memstat", {"numa_stats": "yes"}, Context(empty))
    with pytest.raises(AgentConfigError, match=r"collectors\.netstat\.include_devices: expected a list of strings"):
        make_collector("netstat", {"include_devices": [1]}, Context(empty))
    with pytest.raises(AgentConfigError, match="unknown collector"):
        make_collector("perfmon", {}, Context(empty))


def test_agent_round_over_the_fixture_tree(root):
    cfg = parse_agent_config({"root": str(root), "hostname": "fx01", "interval": "10s",
                              "router": {"cluster": "c1"}, "sinks": {"out": {"type": "stdout"}}})
    agent = Agent(cfg)
    next(c for c in agent.collectors if c.name == "nvidia").loader = FakeNVML  # the stand-in library
    agent.start_collectors(T0)
    # what the fixture tree serves (no RAPL, InfiniBand port counters, hwmon, file system clients...)
    assert {c.name for c in agent.active} == {"cpustat", "cpufreq", "schedstat", "loadavg", "memstat", "numastats",
                                              "netstat", "iostat", "diskstat", "nvidia"}
    advance(root)
    msgs = agent.collect(1020.0, now=T1)
    assert {m.time for m in msgs} == {1020.0}  # one timestamp per interval
    assert all(m.tags["hostname"] == "fx01" and m.tags["cluster"] == "c1" for m in msgs)
    names = {m.name for m in msgs}
    assert {"cpu_load", "cpu_user", "mem_used", "net_bw", "file_bw", "clock", "acc_used", "acc_power"} <= names
    [lines] = agent.round(1020.0, now=T1 + 10)
    assert lines[0].startswith("cpu_user,cluster=c1,hostname=fx01,type=node,unit=Percent value=")
    assert lines[0].endswith(" 1020")


def test_live_machine_sanity():
    """The real /proc and /sys of this machine: names, scopes and plausible values."""
    ctx = Context(Path("/"), True, frozenset(REGISTRY))
    started = {}
    t0 = time.time()
    for name in [n for n in REGISTRY if n != "likwid"]:  # likwid needs event sets (its live test: test_agent_collectors_likwid)
        c = make_collector(name, {"numa_stats": True} if name == "memstat" else {}, ctx)
        try:
            c.init(t0)
        except CollectorUnavailable:
            continue
        started[name] = c
        ctx.started.add(name)
    assert {"cpustat", "loadavg", "memstat", "iostat"} <= set(started)
    time.sleep(0.5)
    t1 = time.time()
    msgs = [m for c in started.values() for m in c.read(t1)]
    m = {}
    for x in msgs:
        m.setdefault(x.name, []).append(x)
        assert encode(x) is not None and x.time == t1
    ncpu = os.cpu_count()
    user = {x.tags.get("type-id"): x.value for x in m["cpu_user"] if x.tags["type"] == "hwthread"}
    # jiffies over half a second: a tick or two of quantisation either way
    assert len(user) == ncpu and all(0 <= v <= 110 for v in user.values())
    node_used = [x.value for x in m["cpu_used"] if x.tags["type"] == "node"][0]
    assert 0 <= node_used <= 110 * ncpu
    assert m["num_cpus"][0].value == ncpu
    assert 0 <= m["cpu_load"][0].value < 50 * ncpu
    mem = [x for x in m["mem_used"] if x.tags["type"] == "node"][0]
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    assert mem.meta["unit"] == "GB" and 0 < mem.value <= total_gb * 1.1
    assert all(x.tags["type"] == "memoryDomain" for x in m["mem_used"] if x is not mem)
    assert m["file_bw"][0].value >= 0 and m["file_bw"][0].tags == {"type": "node"}
    clocks = m.get("clock", [])
    if clocks:
        assert len(clocks) == ncpu and all(100 < x.value < 10000 for x in clocks)
    if "netstat" in started:
        assert m["net_bw"][0].value >= 0
