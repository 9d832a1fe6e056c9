"""cc-agent's influxdb and prometheus sinks against real peers: influxd 1.x and an HTTP scrape."""

from __future__ import annotations

import httpx
import pytest
import trio

from cc.agent.collectors import AgentConfigError
from cc.agent.message import Message
from cc.agent.sinks import InfluxSink, PrometheusSink, make_sink
from tests import influx_server
from tests.helpers import free_port


async def wait_for(pred, timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


def _round(ts: float, n: int = 3) -> list[Message]:
    return [Message("cpu_load", {"hostname": f"n{i}", "type": "node", "cluster": "c1"},
                    {"unit": "load", "group": "CPU"}, float(i) + ts / 1000, ts) for i in range(n)]


@pytest.mark.skipif(not influx_server.available(), reason="influxd (Debian package influxdb) not installed")
async def test_influxdb_sink_buffers_until_influxd_is_up_and_writes_in_batches(tmp_path):
    srv = influx_server.InfluxServer(tmp_path / "influx")
    sink = make_sink("influx", {"type": "influxdb", "host": "127.0.0.1", "port": str(srv.port),
                                "database": "ccmetrics", "batch_size": 4, "retry_max_delay": "200ms",
                                "meta_as_tags": ["unit"], "precision": "s"})
    assert isinstance(sink, InfluxSink)
    assert sink.url == f"http://127.0.0.1:{srv.port}/write?db=ccmetrics&precision=s"
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(sink.run)
            for ts in (1000.0, 1010.0, 1020.0):
                sink.submit(_round(ts))
            await wait_for(lambda: sink.failures > 0, 30, "a failed attempt while influxd is down")
            assert sink.pending() == 9
            await trio.to_thread.run_sync(srv.start)
            await trio.to_thread.run_sync(srv.query, "CREATE DATABASE ccmetrics")
            await wait_for(lambda: sink.pending() == 0, 60, "delivery after influxd started")
            nursery.cancel_scope.cancel()
        doc = await trio.to_thread.run_sync(srv.query, "SELECT * FROM cpu_load ORDER BY time", "ccmetrics")
        series = doc["results"][0]["series"][0]
        cols = series["columns"]
        rows = [
            dict(zip(cols, r, strict=True)) for r in series["values"]]
        assert len(rows) == 9 and sink.sent_points == 9 and sink.buffer.dropped_total == 0
        got = sorted((r["time"], r["hostname"], r["value"], r["unit"], r["cluster"]) for r in rows)
        assert got[0] == ("1970-01-01T00:16:40Z", "n0", 1.0, "load", "c1")
        assert got[-1] == ("1970-01-01T00:17:00Z", "n2", 3.02, "load", "c1")
    finally:
        await trio.to_thread.run_sync(srv.stop)


@pytest.mark.parametrize(("cfg", "error"), [
    ({"database": ""}, "sinks.i.database: expected the database name"),
    ({"database": "d", "port": "80a"}, "sinks.i.port: expected a port number"),
    ({"database": "d", "ssl": "yes"}, "sinks.i.ssl: expected true or false"),
    ({"database": "d", "user": "u"}, "sinks.i: basic authentication needs both user and password"),
    ({"database": "d", "url": "http://x"}, "sinks.i: unknown key 'url' for a influxdb sink"),
])
def test_influxdb_sink_config_errors(cfg, error):
    with pytest.raises(AgentConfigError) as e:
        make_sink("i", {"type": "influxdb", **cfg})
    assert error in str(e.value)


def test_influxdb_sink_url_with_ssl_org_and_auth():
    s = make_sink("i", {"type": "influxdb", "host": "db.example.com", "port": "8086", "database": "m x",
                        "organization": "org", "ssl": True, "user": "u", "password": "p", "precision": "ms",
                        "meta_as_tags": True})
    assert s.url == "https://db.example.com:8086/write?db=m%20x&precision=ms&org=org"
    assert s.auth == ("u", "p") and s.meta_as_tags == ("unit", "source", "group")


def test_influxasync_sink_from_upstreams_sinks_json():
    s = make_sink("influxdb", {  # cc-metric-collector's own sinks.json
        "type": "influxasync", "database": "Bucket", "host": "localhost", "port": "8086", "user": "",
        "password": "9GQv2m099okVndYbhkZT_lcMsH2XMcjlGkJT59D-fJyytowDwTNgiG8FJli1YI6HSvjaJOf_xtF2cZZis7CbJQ==",
        "organization": "myorg", "ssl": False, "batch_size": 200, "retry_interval": "1s",
        "retry_exponential_base": 2, "max_retries": 20, "max_retry_time": "168h", "meta_as_tags": []})
    assert isinstance(s, InfluxSink) and s.url == "http://localhost:8086/write?db=Bucket&precision=s&org=myorg"
    assert s.headers["authorization"].startswith("Token 9GQv2m") and s.auth is None
    assert (s.batch_size, s.retry_first, s.retry_base, s.give_up_retries, s.give_up_after) == (
        200, 1.0, 2.0, 20, 168 * 3600.0)


async def test_influxdb_sink_max_retries_drops_a_batch_and_says_so(caplog):
    sink = make_sink("i", {"type": "influxdb", "host": "127.0.0.1", "port": str(free_port()), "database": "d",
                           "retry_interval": "10ms", "max_retries": 2, "batch_size": 100})
    async with trio.open_nursery() as nursery:
        await nursery.start(sink.run)
        sink.submit(_round(1.0))
        await wait_for(lambda: sink.pending() == 0, 30, "the batch given up")
        nursery.cancel_scope.cancel()
    assert "dropping a batch of 3 points after 3 failed attempts" in caplog.text


async def test_prometheus_sink_serves_the_newest_values_on_its_path():
    port = free_port()
    sink = make_sink("prom", {"type": "prometheus", "host": "127.0.0.1", "port": str(port), "path": "metrics",
                              "group_as_namespace": True, "meta_as_tags": ["unit"],
                              "process_messages": {"drop_messages": ["secret"]}})
    assert isinstance(sink, PrometheusSink)
    async with trio.open_nursery() as nursery:
        await nursery.start(sink.run)
        sink.submit(_round(1000.0, 2) + [Message("secret", {"type": "node"}, {}, 1.0, 1000.0)])
        sink.submit([Message("mem_used", {"hostname": "n0", "type": "socket", "type-id": "1"}, {}, 42, 1010.0),
                     Message("cpu_load", {"hostname": "n0", "type": "node", "cluster": "c1"},
                             {"unit": "load", "group": "CPU"}, 7.5, 1010.0)])
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/metrics")
            missing = await client.get(f"http://127.0.0.1:{port}/other")
        nursery.cancel_scope.cancel()
    assert r.status_code == 200 and missing.status_code == 404
    lines = [x for x in r.text.splitlines() if x and not x.startswith("#")]
    assert lines == [
        'cpu_cpu_load{cluster="c1",hostname="n0",type="node",unit="load"} 7.5',
        'cpu_cpu_load{cluster="c1",hostname="n1",type="node",unit="load"} 2.0',
        'mem_used{hostname="n0",type="socket",type_id="1"} 42.0',
    ]
    assert "# TYPE cpu_cpu_load gauge" in r.text


def test_prometheus_sink_config_errors():
    with pytest.raises(AgentConfigError, match=r"sinks.p.port: expected a port number"):
        make_sink("p", {"type": "prometheus", "port": "http"})
    with pytest.raises(AgentConfigError, match=r"sinks.p.group_as_namespace: expected true or false"):
        make_sink("p", {"type": "prometheus", "group_as_namespace": 1})
