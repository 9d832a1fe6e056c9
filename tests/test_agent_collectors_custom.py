"""``self`` (a recorded /proc/self/status plus this process's real rusage) and ``customcmd``."""

from __future__ import annotations

import pytest

from cc.agent.collectors import AgentConfigError, CollectorUnavailable
from cc.agent.collectors.custom import parse_line
from tests.agent_hw import T1, T2, fake_command, key, start, table, write

STATUS = "Name:\tcc-agent\nVmPeak:\t  300000 kB\nVmSize:\t  250000 kB\nVmHWM:\t   40000 kB\nVmRSS:\t   32000 kB\n" \
         "Threads:\t3\n"


def test_self_memory_threads_rusage(tmp_path):
    write(tmp_path, {"proc/self/status": STATUS})
    c = start(tmp_path, "self", {"read_mem_stats": True, "read_goroutines": True, "read_rusage": True,
                                 "exclude_metrics": ["rusage_signals"]})
    got = c.read(T1)
    assert all(m.meta["source"] == "SelfCollector" and m.tags == {"type": "node"} for m in got)
    t = table(got)
    assert t[key("mem_rss", type="node")] == 32000 * 1024 and t[key("mem_rss_peak", type="node")] == 40000 * 1024
    assert t[key("mem_vms", type="node")] == 250000 * 1024
    assert t[key("heap_objects", type="node")] > 1000 and t[key("num_threads", type="node")] >= 1
    assert {k[0] for k in t if k[0].startswith("rusage")} == {
        "rusage_user_time", "rusage_system_time", "rusage_vol_ctx_switch", "rusage_invol_ctx_switch",
        "rusage_major_pgfaults", "rusage_minor_pgfaults"}
    cpu1 = t[key("rusage_user_time", type="node")] + t[key("rusage_system_time", type="node")]
    sum(i * i for i in range(200_000))  # some CPU time
    t2 = table(c.read(T2))
    assert t2[key("rusage_user_time", type="node")] + t2[key("rusage_system_time", type="node")] >= cpu1 > 0
    assert {m.meta.get("unit") for m in got if m.name == "rusage_user_time"} == {"seconds"}


def test_self_config(tmp_path):
    with pytest.raises(CollectorUnavailable, match="none of read_mem_stats"):
        start(tmp_path, "self")
    with pytest.raises(AgentConfigError, match=r"collectors\.self\.read_cgo_calls: this agent is not a Go program"):
        start(tmp_path, "self", {"read_cgo_calls": True, "read_rusage": True})
    assert {m.name for m in start(tmp_path, "self", {"read_rusage": True, "read_cgo_calls": False,
                                                     "only_metrics": ["rusage_minor_pgfaults"]}).read(T1)} \
        == {"rusage_minor_pgfaults"}


def test_parse_line():
    assert parse_line("temp,type=node,sensor=inlet value=21.5 1733450000000000000") == \
        ("temp", {"type": "node", "sensor": "inlet"}, 21.5)
    assert parse_line("jobs_running,type=node value=12i") == ("jobs_running", {"type": "node"}, 12.0)
    assert parse_line(r"disk\ free,type=node,mount=/scratch\ 1 unit=\"GB\",value=3e3") == \
        ("disk free", {"type": "node", "mount": "/scratch 1"}, 3000.0)
    for bad in ("no_fields", "m,type value=1", 'm text="x"', "m value=abc", "m value="):
        assert parse_line(bad) is None, bad


def test_customcmd_commands_and_files(tmp_path, caplog):
    write(tmp_path, {"var/run/site.metrics": "# site metrics\nquota_used,type=node,fs=home value=81.5\n"
                                             "garbage line\nquota_files,type=node,fs=home value=1200i\n"})
    ok = fake_command(tmp_path, "getmetrics", "echo 'gpfs_waiters,type=node value=3'\n"
                                              "echo 'license_free,type=node,feature=matlab value=17'\n")
    broken = fake_command(tmp_path, "broken", "exit 3\n")
    c = start(tmp_path, "customcmd", {"commands": [f"{ok} --all", str(broken)],
                                      "files": ["/var/run/site.metrics", "/var/run/missing.metrics"],
                                      "exclude_metrics": ["license_free"]})
    assert "command" in caplog.text and "broken" in caplog.text and "missing.metrics" in caplog.text
    got = c.read(T1)
    assert table(got) == {key("gpfs_waiters", type="node"): 3.0, key("quota_used", type="node", fs="home"): 81.5,
                          key("quota_files", type="node", fs="home"): 1200.0}
    assert all(m.time == T1 and m.meta["source"] == "CustomCmdCollector" for m in got)
    assert "/var/run/site.metrics: 1 line(s) not in line protocol" in caplog.text
    with pytest.raises(CollectorUnavailable, match="no command or file"):
        start(tmp_path, "customcmd", {"commands": [str(broken)]})


def test_only_metrics_on_every_collector(tmp_path):
    """only_metrics (not upstream) works for the older collectors too."""
    write(tmp_path, {"proc/loadavg": "0.50 0.40 0.30 2/300 4242\n"})
    c = start(tmp_path, "loadavg", {"only_metrics": ["load_one", "proc_total"], "exclude_metrics": ["proc_total"]})
    assert table(c.read(T1)) == {key("load_one", type="node"): 0.5}
    with pytest.raises(AgentConfigError, match=r"collectors\.loadavg\.only_metrics: expected a list of strings"):
        start(tmp_path, "loadavg", {"only_metrics": "load_one"})
