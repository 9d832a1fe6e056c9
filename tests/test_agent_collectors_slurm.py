"""``slurm_cgroup`` against cgroup v2 and v1 trees: two jobs on an 8-hwthread node, CPU over two rounds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable, Context, make_collector
from cc.agent.collectors.slurm import parse_cpus
from tests.agent_hw import T0, T1, T2, deny_unreadable, key, start, table, write

V2 = "sys/fs/cgroup/system.slice/slurmstepd.scope"
CLK = os.sysconf("SC_CLK_TCK")
NAMES = ("job_mem_used", "job_max_mem_used", "job_mem_limit", "job_user_cpu", "job_sys_cpu")


def v2_job(job: str, cpus: str, cur: int, peak: int, limit: str, user_us: int, sys_us: int) -> dict:
    d = f"{V2}/job_{job}"
    return {f"{d}/memory.current": cur, f"{d}/memory.peak": peak, f"{d}/memory.max": f"{limit}\n",
            f"{d}/cpu.stat": f"usage_usec {user_us + sys_us}\nuser_usec {user_us}\nsystem_usec {sys_us}\n"
                             "nr_periods 0\n",
            f"{d}/cpuset.cpus.effective": f"{cpus}\n", f"{d}/step_batch/memory.current": 1}


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    write(r, {"sys/devices/system/cpu/online": "0-7\n", "sys/fs/cgroup/cgroup.controllers": "cpuset cpu memory\n",
              f"{V2}/system/memory.current": 1,  # slurmstepd itself, not a job
              **v2_job("4711", "0-3", 4_000_000_000, 6_000_000_000, "8000000000", 10_000_000, 1_000_000),
              **v2_job("4712", "6", 1_000_000, 2_000_000, "max", 0, 0)})
    return r


def test_v2_memory_per_hwthread_and_idle_hwthreads(v2):
    c = start(v2, "slurm_cgroup")
    assert c.v2
    got = c.read(T0)  # same instant: memory, no CPU rates yet
    assert all(m.meta["source"] == "SlurmCgroupCollector" and m.meta["group"] == "SLURM" for m in got)
    t = table(got)
    for cpu in "0123":
        j = {"type": "hwthread", "type_id": cpu, "job_id": "4711"}
        assert t[key("job_mem_used", **j)] == 1e9 and t[key("job_max_mem_used", **j)] == 1.5e9
        assert t[key("job_mem_limit", **j)] == 2e9 and key("job_user_cpu", **j) not in t
    j6 = {"type": "hwthread", "type_id": "6", "job_id": "4712"}
    assert t[key("job_mem_used", **j6)] == 1e6 and key("job_mem_limit", **j6) not in t  # "max": no limit
    for cpu in "457":
        assert {n: t[key(n, type="hwthread", type_id=cpu)] for n in NAMES} == dict.fromkeys(NAMES, 0)
    assert len(t) == 4 * 3 + 2 + 3 * 5
    assert {m.meta["unit"] for m in got if m.name == "job_mem_used"} == {"Bytes"}


def test_v2_cpu_utilisation_across_rounds_and_job_end(v2):
    c = start(v2, "slurm_cgroup", {"exclude_metrics": ["job_mem_limit"]})
    # job 4711: 30 CPU-seconds user, 2 system in 10 s on 4 hwthreads -> 75 % and 5 % each
    write(v2, v2_job("4711", "0-3", 4_000_000_000, 6_000_000_000, "8000000000", 40_000_000, 3_000_000))
    t = table(c.read(T1))
    j = {"type": "hwthread", "type_id": "2", "job_id": "4711"}
    assert t[key("job_user_cpu", **j)] == pytest.approx(75.0)
    assert t[key("job_sys_cpu", **j)] == pytest.approx(5.0)
    assert t[key("job_user_cpu", type="hwthread", type_id="6", job_id="4712")] == 0.0
    assert not any(k[0] == "job_mem_limit" for k in t)
    # job 4712 ends; a new job 4713 gets hwthread 6 and has no CPU rate in its first round
    for f in sorted((v2 / V2 / "job_4712").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    (v2 / V2 / "job_4712").rmdir()
    write(v2, v2_job("4713", "6-7", 0, 0, "max", 500_000, 0))
    t = table(c.read(T2))
    assert key("job_user_cpu", type="hwthread", type_id="6", job_id="4713") not in t
    assert t[key("job_mem_used", type="hwthread", type_id="7", job_id="4713")] == 0.0
    assert not any(("job_id", "4712") in k[1] for k in t)
    assert all(k[0] != "job_user_cpu" or ("job_id", "4713") not in k[1] for k in t)


V1 = "sys/fs/cgroup"


def test_v1_hierarchy(tmp_path):
    r = tmp_path / "root"
    mem, acct, cset = (f"{V1}/{c}/slurm/uid_1000/job_99" for c in ("memory", "cpuacct", "cpuset"))
    write(r, {"sys/devices/system/cpu/online": "0-1\n",
              f"{mem}/memory.usage_in_bytes": 3_000_000, f"{mem}/memory.max_usage_in_bytes": 5_000_000,
              f"{mem}/memory.limit_in_bytes": 9223372036854771712,  # unlimited
              f"{acct}/cpuacct.stat": f"user {10 * CLK}\nsystem {CLK}\n", f"{cset}/cpuset.cpus": "1\n"})
    c = start(r, "slurm_cgroup")
    assert not c.v2
    write(r, {f"{acct}/cpuacct.stat": f"user {15 * CLK}\nsystem {2 * CLK}\n"})
    t = table(c.read(T1))
    j = {"type": "hwthread", "type_id": "1", "job_id": "99"}
    assert t == {key("job_mem_used", **j): 3e6, key("job_max_mem_used", **j): 5e6,
                 key("job_user_cpu", **j): pytest.approx(50.0), key("job_sys_cpu", **j): pytest.approx(10.0),
                 **{key(n, type="hwthread", type_id="0"): 0 for n in NAMES}}


def test_unreadable_job_files(v2, monkeypatch):
    deny_unreadable(monkeypatch)
    (v2 / V2 / "job_4711/memory.current").chmod(0)
    (v2 / V2 / "job_4712/cpuset.cpus.effective").chmod(0)  # no cpuset: the job cannot be placed
    c = start(v2, "slurm_cgroup", {"only_metrics": ["job_mem_used", "job_max_mem_used"]})
    t = table(c.read(T1))
    assert key("job_mem_used", type="hwthread", type_id="0", job_id="4711") not in t
    assert t[key("job_max_mem_used", type="hwthread", type_id="0", job_id="4711")] == 1.5e9
    assert t[key("job_mem_used", type="hwthread", type_id="6")] == 0


def test_parse_cpus_unavailable_and_config_errors(tmp_path):
    assert parse_cpus("0-2,8,10-11\n") == [0, 1, 2, 8, 10, 11] and parse_cpus("") == []
    with pytest.raises(ValueError):
        parse_cpus("0-x")
    with pytest.raises(CollectorUnavailable, match="online CPUs"):
        start(tmp_path, "slurm_cgroup")
    write(tmp_path, {"sys/devices/system/cpu/online": "0\n"})
    with pytest.raises(CollectorUnavailable, match="slurmstepd.scope is not a directory"):
        start(tmp_path, "slurm_cgroup")
    with pytest.raises(AgentConfigError, match=r"collectors\.slurm_cgroup\.cgroup_base: expected a string"):
        make_collector("slurm_cgroup", {"cgroup_base": 1}, Context(tmp_path))
    write(tmp_path, v2_job("1", "0", 5, 5, "max", 0, 0))
    c = start(tmp_path, "slurm_cgroup", {"cgroup_base": "/" + V2})
    assert table(c.read(T1))[key("job_mem_used", type="hwthread", type_id="0", job_id="1")] == 5


@pytest.mark.skipif(shutil.which("sudo") is None, reason="no sudo here")
def test_v2_through_sudo(v2):
    c = start(v2, "slurm_cgroup", {"use_sudo": True, "only_metrics": ["job_mem_used"]})
    t = table(c.read(T1))
    assert t[key("job_mem_used", type="hwthread", type_id="0", job_id="4711")] == 1e9
