"""``cc-agent check`` and ``--once --collectors``, and a cc-metric-collector configuration set
(written from upstream's documented examples) loading and running unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from cc.agent.agent import Agent
from cc.agent.cli import main as agent_main
from cc.agent.collectors import REGISTRY, AgentConfigError
from cc.agent.config import UPSTREAM_COLLECTORS, load_agent_config
from tests.helpers import free_port


def write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def upstream_set(tmp: Path, http_port: int, influx_port: int, out: Path) -> Path:
    """config.json and its four files as cc-metric-collector's README and component docs show them."""
    write(tmp / "collectors.json", {
        "cpufreq": {}, "cpufreq_cpuinfo": {}, "gpfs": {"exclude_filesystem": ["test_fs"]},
        "loadavg": {"exclude_metrics": ["proc_total"]}, "numastats": {}, "nvidia": {},
        "tempstat": {"tag_override": {"hwmon0": {"type": "socket", "type-id": "0"},
                                      "hwmon1": {"type": "socket", "type-id": "1"}}}})
    write(tmp / "router.json", {
        "num_cache_intervals": 1, "interval_timestamp": True,
        "add_tags": [{"key": "cluster", "value": "testcluster", "if": "*"},
                     {"key": "test", "value": "testing", "if": "name == 'temp_package_id_0'"}],
        "delete_tags": [{"key": "unit", "value": "*", "if": "*"}],
        "interval_aggregates": [{"name": "temp_cores_avg", "if": "match('temp_core_%d+', metric.Name())",
                                 "function": "avg(values)", "tags": {"type": "node"},
                                 "meta": {"group": "IPMI", "unit": "degC", "source": "TempCollector"}},
                                {"name": "load_sum", "if": "match('load_%w+', metric.Name())",
                                 "function": "sum(values)", "tags": {"type": "node"}, "meta": {"unit": "<copy>"}}],
        "drop_metrics": ["not_interesting_metric_at_all"],
        "drop_metrics_if": ["match('temp_core_%d+', metric.Name())"],
        "rename_metrics": {"metric_12345": "mymetric"}})
    write(tmp / "sinks.json", {
        "mystdout": {"type": "stdout", "meta_as_tags": ["unit"], "output_file": str(out)},
        "myinflux": {"type": "influxdb", "meta_as_tags": True, "database": "mymetrics", "host": "127.0.0.1",
                     "port": str(influx_port), "user": "exampleuser", "password": "examplepw",
                     "organization": "myorg", "ssl": False}})
    write(tmp / "receivers.json", {
        "myhttp": {"type": "http", "address": "127.0.0.1", "port": str(http_port), "path": "/write",
                   "idle_timeout": "120s", "username": "myUser", "password": "myPW"}})
    return write(tmp / "config.json", {
        "sinks-file": "sinks.json", "collectors-file": "collectors.json", "receivers-file": "receivers.json",
        "router-file": "router.json", "main": {"interval": "1s", "duration": "1s"}})


async def test_an_upstream_configuration_set_loads_and_runs_unchanged(tmp_path, caplog, capsys):
    out = tmp_path / "metrics.lp"
    http_port = free_port()
    config = upstream_set(tmp_path, http_port, free_port(), out)
    assert agent_main(["check", str(config)]) == 0
    report = capsys.readouterr().out
    lacking = sorted({"gpfs", "tempstat"} - set(REGISTRY))
    for name in lacking:  # collectors upstream has and this agent lacks: reported, then skipped
        assert f"collectors.json: collectors.{name}: cc-metric-collector's {name} collector is not part" in report
    cfg = load_agent_config(config)
    assert set(cfg.collectors) == {"cpufreq", "cpufreq_cpuinfo", "gpfs", "loadavg", "numastats", "nvidia",
                                   "tempstat"} - set(lacking)
    if lacking:
        assert f"collectors {', '.join(lacking)}: cc-metric-collector has them" in caplog.text
    agent = Agent(cfg)
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        await nursery.start(agent.run, shutdown)
        async with httpx.AsyncClient() as c:
            r = await c.post(f"http://127.0.0.1:{http_port}/write", auth=("myUser", "myPW"),
                             content=b"myMetric,hostname=myHost,type=hwthread,type-id=0,unit=Hz value=400000i "
                                     b"1694777161164284635\nmetric_12345,hostname=myHost,type=node value=1 "
                                     b"1694777161\n")
        assert r.status_code == 204
        with trio.move_on_after(60):
            while agent.rounds < 1 or not out.exists() or "load_sum" not in out.read_text():
                await trio.sleep(0.05)
        shutdown.set()
    lines = out.read_text().splitlines()
    # the received lines: hostname kept, router tags added, 'unit' tag deleted by delete_tags, renamed
    assert "myMetric,cluster=testcluster,hostname=myHost,type=hwthread,type-id=0 value=400000i 1694777161" in lines
    assert "mymetric,cluster=testcluster,hostname=myHost,type=node value=1.0 1694777161" in lines
    load = [x for x in lines if x.startswith(("load_one,", "load_five,", "load_fifteen,", "load_sum,"))]
    values = {x.split(",")[0]: float(x.split("value=")[1].split(" ")[0]) for x in load}
    assert abs(values["load_sum"] - (values["load_one"] + values["load_five"] + values["load_fifteen"])) < 1e-6
    assert not any(x.startswith("proc_total,") for x in lines)  # loadavg's exclude_metrics
    assert all("cluster=testcluster" in x for x in lines)
    assert agent.sinks[1].pending() > 0  # the influxdb sink keeps its points: nothing listens there


def test_check_reports_every_unknown_key_with_file_and_path(tmp_path, capsys):
    write(tmp_path / "collectors.json", {"loadavg": {"exclude_metric": []}, "cpustat": {}, "likwidd": {}})
    write(tmp_path / "router.json", {"add_tags": [{"key": "a", "value": "b", "iff": "*"}], "intervall": 1,
                                     "process_messages": {"drop_message": []},
                                     "interval_aggregates": [{"name": "x", "function": "sum(values)", "tag": {}}]})
    write(tmp_path / "sinks.json", {"s": {"type": "http", "url": "http://h/api/write", "jwt_token": "x",
                                          "process_messages": {"rename_message": {}}},
                                    "p": {"type": "prometheus", "prot": "9"}})
    write(tmp_path / "receivers.json", {"r": {"type": "redfish", "endpoint": "https://%h", "user": "u",
                                              "client_config": [{"host_list": "n1", "pasword": "x"}]}})
    write(tmp_path / "config.json", {"collectors-file": "collectors.json", "router-file": "router.json",
                                     "sinks-file": "sinks.json", "receivers-file": "receivers.json",
                                     "main": {"interval": "10s", "duraton": "1s"}, "extra": 1})
    assert agent_main(["check", str(tmp_path / "config.json")]) == 1
    out = capsys.readouterr().out
    c, r, s, v, m = (str(tmp_path / f) for f in ("collectors.json", "router.json", "sinks.json", "receivers.json",
                                                  "config.json"))
    for expected in [
        f"{m}: (top level): unknown key 'extra'", f"{m}: main: unknown key 'duraton'",
        f"{c}: collectors.loadavg: unknown key 'exclude_metric'", f"{c}: collectors.likwidd: unknown collector",
        f"{r}: router: unknown key 'intervall'", f"{r}: router.add_tags[0]: unknown key 'iff'",
        f"{r}: router.process_messages: unknown key 'drop_message'",
        f"{r}: router.interval_aggregates[0]: unknown key 'tag'",
        f"{s}: sinks.s: unknown key 'jwt_token'", f"{s}: sinks.s.process_messages: unknown key 'rename_message'",
        f"{s}: sinks.p: unknown key 'prot'",
        f"{v}: receivers.r: unknown key 'user'", f"{v}: receivers.r.client_config[0]: unknown key 'pasword'",
    ]:
        assert expected in out, expected
    # a single file of one kind, and a bad value after the keys are right
    write(tmp_path / "sinks-only.json", {"s": {"type": "http", "url": "localhost:8082"}})
    assert agent_main(["check", str(tmp_path / "sinks-only.json")]) == 1
    assert f"{tmp_path / 'sinks-only.json'}: sinks.s.url: expected an http" in capsys.readouterr().out
    write(tmp_path / "router-ok.json", {"hostname_tag": "host"})
    assert agent_main(["check", str(tmp_path / "router-ok.json")]) == 0
    assert capsys.readouterr().out.strip().endswith(": OK")


def test_once_with_collectors_prints_one_round_of_those(tmp_path, capsys):
    config = write(tmp_path / "agent.json", {"main": {"hostname": "dbg", "duration": "100ms"},
                                             "collectors": {"loadavg": {"exclude_metrics": ["proc_total"]},
                                                            "memstat": {}},
                                             "sinks": {"x": {"type": "http", "url": "http://127.0.0.1:9/w"}}})
    assert agent_main(["-config", str(config), "--once", "--collectors", "loadavg"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [x.split(",")[0] for x in lines] == ["load_one", "load_five", "load_fifteen", "proc_run", "cpu_load"]
    assert all(",hostname=dbg,type=node value=" in x for x in lines)
    assert agent_main(["--once", "--collectors", "nope"]) == 2
    assert "--collectors: unknown collector 'nope'" in capsys.readouterr().err


def test_a_collector_name_nobody_has_is_still_an_error(tmp_path, capsys):
    assert {"likwid", "rapl", "ibstat", "slurm_cgroup"} <= UPSTREAM_COLLECTORS
    write(tmp_path / "collectors.json", {"loadavgg": {}})
    assert agent_main(["check", str(tmp_path / "collectors.json")]) == 1
    assert "collectors.loadavgg: unknown collector (known: " in capsys.readouterr().out
    with pytest.raises(AgentConfigError, match="collectors.loadavgg: unknown collector"):
        load_agent_config(write(tmp_path / "c.json", {"collectors": {"loadavgg": {}}}))
