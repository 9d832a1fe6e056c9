"""``likwid``: the "no counters" path on this VM, and a script printing recorded ``likwid-perfctr -O`` output.

The recorded node has 2 sockets x 2 hwthreads; socket-scope counters (MBOX: memory controller)
are reported on each socket's first hwthread, as LIKWID does.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from cc.agent.agent import Agent
from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, make_collector
from cc.agent.config import parse_agent_config
from tests.agent_hw import T1, T2, fake_command, key, table, write

FLOPS = {"events": {"PMC0": "FP_ARITH_INST_RETIRED_SCALAR_DOUBLE", "PMC1": "FP_ARITH_INST_RETIRED_128B_PACKED_DOUBLE"},
         "metrics": [{"name": "dp_mflops", "calc": "1.0E-06*(PMC0+PMC1*2.0)/time", "type": "hwthread",
                      "publish": False},
                     {"name": "vectorization_ratio", "calc": "100*PMC1/(PMC0+PMC1)", "type": "hwthread",
                      "publish": True, "unit": "%"}]}
MEM = {"events": {"MBOX0C0": "CAS_COUNT_RD", "MBOX0C1": "CAS_COUNT_WR", "FIXC1": "CPU_CLK_UNHALTED_CORE"},
       "metrics": [{"name": "mem_bw", "calc": "1.0E-09*(MBOX0C0+MBOX0C1)*64.0/time", "type": "socket",
                    "publish": True, "unit": "GB/s"},
                   {"name": "cycles_ghz", "calc": "FIXC1*inverseClock", "type": "hwthread", "publish": True,
                    "send_socket_total_values": True, "send_node_total_values": True,
                    "send_core_total_values": True}]}
GLOBAL = [{"name": "flops_any", "calc": "dp_mflops*2", "type": "hwthread", "publish": True, "unit": "MFLOP/s"}]

HEAD = """STRUCT,Info,3,,,
CPU name:,Intel(R) Xeon(R) Platinum 8360Y CPU @ 2.40GHz,,,,
CPU type:,Intel Icelake SP processor,,,,
CPU clock:,2.40 GHz,,,,
TABLE,Group 1 Raw,Custom,{n},,
Event,Counter,HWThread 0,HWThread 1,HWThread 2,HWThread 3
Runtime (RDTSC) [s],TSC,2.000000e+00,2.000000e+00,2.000000e+00,2.000000e+00
"""
STAT = "TABLE,Group 1 Raw STAT,Custom,5,,\nEvent,Counter,Sum,Min,Max,Avg\nX STAT,PMC0,1,1,1,1\n"
FLOPS_OUT = HEAD.format(n=3) + ("FP_ARITH_INST_RETIRED_SCALAR_DOUBLE,PMC0,1000000,3000000,0,0\n"
                                "FP_ARITH_INST_RETIRED_128B_PACKED_DOUBLE,PMC1,1000000,1000000,0,nan\n") + STAT
MEM_OUT = HEAD.format(n=4) + ("CAS_COUNT_RD,MBOX0C0,10000000,0,30000000,0\n"
                              "CAS_COUNT_WR,MBOX0C1,5000000,0,1250000,0\n"
                              "CPU_CLK_UNHALTED_CORE,FIXC1,4800000000,2400000000,0,1200000000\n") + STAT


def node(root: Path) -> None:
    for cpu in range(4):
        t = f"sys/devices/system/cpu/cpu{cpu}/topology"
        write(root, {f"{t}/core_id": f"{cpu % 2}\n", f"{t}/physical_package_id": f"{cpu // 2}\n"})


@pytest.fixture
def perfctr(tmp_path: Path) -> Path:
    node(tmp_path)
    write(tmp_path, {"flops.csv": FLOPS_OUT, "mem.csv": MEM_OUT, "fail": ""})
    (tmp_path / "fail").unlink()
    return fake_command(tmp_path, "likwid-perfctr", f"""\
echo "$@" >> {tmp_path}/args
[ -f {tmp_path}/fail ] && {{ echo "ERROR: The selected register PMC0 is in use." >&2; exit 1; }}
[ "$1 $2 $3 $4 $5 $6" = "-C 0,1,2,3 -f -M 0 -g" ] && [ "$8 $9 ${{10}}" = "-S 2000ms -O" ] || exit 2
case "$7" in *PMC0*) cat {tmp_path}/flops.csv ;; *MBOX0C0*) cat {tmp_path}/mem.csv ;; *) exit 3 ;; esac
""")


def start(root: Path, cfg: dict, duration: float = 2.0):
    c = make_collector("likwid", cfg, Context(root, duration=duration))
    c.init(T1)
    return c


def test_counters_formulas_scopes_totals_and_globals(tmp_path, perfctr):
    c = start(tmp_path, {"likwid_perfctr_path": str(perfctr), "eventsets": [FLOPS, MEM], "globalmetrics": GLOBAL,
                         "force_overwrite": True, "access_mode": "direct", "lockfile_path": "/var/run/likwid.lock"})
    got = c.read(T1)
    assert all(m.meta["source"] == "LikwidCollector" for m in got)
    t = table(got)
    hw = lambda i: {"type": "hwthread", "type_id": str(i)}  # noqa: E731
    # vectorization: 100 * PMC1 / (PMC0 + PMC1); hwthread 2 is 0/0 and hwthread 3 NaN: dropped
    assert t[key("vectorization_ratio", **hw(0))] == pytest.approx(50.0)
    assert t[key("vectorization_ratio", **hw(1))] == pytest.approx(25.0)
    assert key("vectorization_ratio", **hw(2)) not in t and key("vectorization_ratio", **hw(3)) not in t
    assert not any(k[0] == "dp_mflops" for k in t)  # publish: false
    # global: 2 x dp_mflops = 2 x 1e-6 (PMC0 + 2 PMC1) / 2 s
    assert t[key("flops_any", **hw(0))] == pytest.approx(3.0) and t[key("flops_any", **hw(1))] == pytest.approx(5.0)
    assert t[key("flops_any", **hw(2))] == 0.0 and key("flops_any", **hw(3)) not in t
    # socket metric from each socket's first hwthread: 64 B per CAS over 2 s
    assert t[key("mem_bw", type="socket", type_id="0")] == pytest.approx(15e6 * 64 / 2 * 1e-9)
    assert t[key("mem_bw", type="socket", type_id="1")] == pytest.approx(31.25e6 * 64 / 2 * 1e-9)
    assert not any(k[0] == "mem_bw" and ("type", "hwthread") in k[1] for k in t)
    # cycles / clock and its totals per core (global core numbering), socket and node
    assert t[key("cycles_ghz", **hw(0))] == pytest.approx(2.0) and t[key("cycles_ghz", **hw(3))] == pytest.approx(0.5)
    assert t[key("cycles_ghz", type="socket", type_id="0")] == pytest.approx(3.0)
    assert t[key("cycles_ghz", type="socket", type_id="1")] == pytest.approx(0.5)
    assert t[key("cycles_ghz", type="core", type_id="3")] == pytest.approx(0.5)
    assert t[key("cycles_ghz", type="node")] == pytest.approx(3.5)
    assert {m.meta.get("unit") for m in got if m.name == "mem_bw"} == {"GB/s"}
    args = (tmp_path / "args").read_text().splitlines()
    assert args[0] == ("-C 0,1,2,3 -f -M 0 -g FP_ARITH_INST_RETIRED_SCALAR_DOUBLE:PMC0,"
                       "FP_ARITH_INST_RETIRED_128B_PACKED_DOUBLE:PMC1 -S 2000ms -O")


def test_invalid_to_zero_and_only_metrics(tmp_path, perfctr):
    c = start(tmp_path, {"likwid_perfctr_path": str(perfctr), "eventsets": [FLOPS, MEM], "invalid_to_zero": True,
                         "force_overwrite": True, "access_mode": "direct", "only_metrics": ["vectorization_ratio"]})
    t = table(c.read(T1))
    assert t[key("vectorization_ratio", type="hwthread", type_id="2")] == 0.0
    assert t[key("vectorization_ratio", type="hwthread", type_id="3")] == 0.0
    assert len(t) == 4


def test_failing_tool_logged_once(tmp_path, perfctr, caplog):
    caplog.set_level(logging.INFO, "agent.likwid")
    c = start(tmp_path, {"likwid_perfctr_path": str(perfctr), "eventsets": [FLOPS], "force_overwrite": True,
                         "access_mode": "direct"})
    write(tmp_path, {"fail": "1"})
    assert c.read(T1) == [] and c.read(T2) == []
    assert caplog.text.count("measuring failed") == 1 and "PMC0 is in use" in caplog.text
    (tmp_path / "fail").unlink()
    assert len(c.read(T2 + 10)) == 2 and "measuring works again" in caplog.text


def test_no_counters_on_this_vm(tmp_path, caplog):
    """What this VM (no likwid, no cpu PMU) does: one clear message, the agent runs on without it."""
    cfg = {"eventsets": [FLOPS]}
    with pytest.raises(CollectorUnavailable, match="no hardware performance counters"):
        start(tmp_path, cfg)
    write(tmp_path, {"sys/bus/event_source/devices/cpu/type": "4\n"})
    with pytest.raises(CollectorUnavailable, match="has hardware counters .*install LIKWID"):
        start(tmp_path, cfg)
    if shutil.which("likwid-perfctr") is None:
        caplog.set_level(logging.INFO, "agent")
        agent = Agent(parse_agent_config({"hostname": "vm", "collectors": {"likwid": cfg, "loadavg": {}},
                                          "sinks": {"out": {"type": "stdout"}}}))
        agent.start_collectors(T1)
        assert [c.name for c in agent.active] == ["loadavg"]
        assert caplog.text.count("collector likwid not available here") == 1
        assert {m.name for m in agent.collect(T2)} >= {"load_one"}


def test_config_errors(tmp_path):
    def bad(cfg: dict, match: str) -> None:
        with pytest.raises(AgentConfigError, match=match):
            make_collector("likwid", cfg, Context(tmp_path))
    bad({}, r"collectors\.likwid\.eventsets: at least one event set")
    bad({"eventsets": [{"events": {"PMC0": "X"}, "metrics": [{"name": "a", "calc": "PMC1", "type": "hwthread"}]}]},
        r"eventsets\[0\]\.metrics\[0\]\.calc: unknown name 'PMC1'")
    bad({"eventsets": [{"events": {"PMC0": "X"}, "metrics": [{"name": "a", "calc": "PMC0", "type": "core"}]}]},
        r"metrics\[0\]\.type: expected 'hwthread' or 'socket'")
    bad({"eventsets": [{"events": {"PMC0": "X"}, "metrics": [{"name": "a", "calc": "__import__('os')",
                                                              "type": "hwthread"}]}]}, "only numbers, names")
    bad({"eventsets": [FLOPS], "globalmetrics": [{"name": "g", "calc": "PMC0", "type": "hwthread"}]},
        r"globalmetrics\[0\]\.calc: unknown name 'PMC0'")
    bad({"eventsets": [FLOPS], "accessdaemon_path": "/usr/sbin"}, r"accessdaemon_path: likwid-perfctr uses")
    bad({"eventsets": [FLOPS], "lockfile_path": "/tmp/l"}, r"lockfile_path: likwid-perfctr always uses")
    bad({"eventsets": [FLOPS], "access_mode": "msr"}, r"access_mode: expected")
    bad({"eventsets": [{"events": []}]}, r"eventsets\[0\]\.events: expected an object")
