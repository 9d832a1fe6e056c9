"""cc-agent sinks against the real supervisor: HTTP buffering across a server restart, the
WebSocket sink end to end (acks, resume after killing ingest workers), and the server side
of ``/api/ws`` (auth, errors naming lines, pipelining).

The agent runs in-process on the live machine; a second sink (``stdout`` into a file)
records every line the agent produced, and the test finds each of them in the store.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest
import trio
import trio_websocket

from cc.agent.agent import Agent
from cc.agent.config import parse_agent_config
from cc.agent.sinks import HttpSink, WebsocketSink
from tests.helpers import Installation, free_port, running, small_cluster

KEEP = "name in ['cpu_load', 'mem_used', 'cpu_user', 'net_bw']"  # metrics small_cluster() knows


def agent_for(inst: Installation, tmp: Path, sink: dict, host: str) -> tuple[Agent, Path]:
    record = tmp / f"{host}.lp"
    cfg = parse_agent_config({
        "main": {"interval": "1s", "hostname": host},
        "collectors": {"cpustat": {}, "loadavg": {}, "memstat": {}, "netstat": {}},
        "router": {"cluster": "c1", "process_messages": {"drop_messages_if": [f"!({KEEP})"],
                                                          "delete_tags_if": [{"if": "true", "key": "unit"}]}},
        "sinks": {"store": sink, "record": {"type": "stdout", "output_file": str(record)}},
    })
    return Agent(cfg), record


def recorded(path: Path) -> dict[tuple[str, str, str], dict[int, float]]:
    """(metric, host, type-id) -> {timestamp: value} from line protocol written by the agent."""
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    for line in path.read_text().splitlines():
        head, value, ts = line.split(" ")
        name, *tags = head.split(",")
        t = dict(x.split("=", 1) for x in tags)
        v = value.removeprefix("value=").removesuffix("i")
        out.setdefault((name, t["hostname"], t.get("type-id", "")), {})[int(ts)] = float(v)
    return out


def assert_all_stored(inst: Installation, points: dict[tuple[str, str, str], dict[int, float]]) -> int:
    t_lo = min(min(v) for v in points.values())
    t_hi = max(max(v) for v in points.values()) + 1
    n = 0
    for (metric, host, tid), series in sorted(points.items()):
        q = {"metric": metric, "host": host}
        if tid:
            q.update({"type": "hwthread", "type-ids": [tid]})
        r = inst.query({"cluster": "c1", "from": t_lo, "to": t_hi, "with-stats": False, "with-padding": False,
                        "queries": [q]})
        assert r.status_code == 200, r.text
        [s] = r.json()["results"][0]
        for ts, v in series.items():
            idx = (ts - s["from"]) // s["resolution"]
            assert 0 <= idx < len(s["data"]) and s["data"][idx] == pytest.approx(v), (metric, host, tid, ts)
            n += 1
    return n


async def wait_for(pred, timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def test_http_sink_buffers_across_a_server_restart(tmp_path, caplog):
    web, ingest = free_port(), free_port()
    inst = Installation(tmp_path / "inst", ingest_workers=1, clusters={"c1": small_cluster(timestep=1)},
                        extra_config={"main": {"addr": f"127.0.0.1:{web}"},
                                      "metric-store": {"ingest-addr": f"127.0.0.1:{ingest}"}})
    try:
        await trio.to_thread.run_sync(inst.start)
        agent, record = agent_for(inst, tmp_path, {
            "type": "http", "url": f"http://127.0.0.1:{ingest}/api/write?cluster=c1", "jwt": inst.token(),
            "batch_size": 7, "timeout": "2s", "retry_max_delay": "300ms"}, "httpnode")
        sink = agent.sinks[0]
        assert isinstance(sink, HttpSink)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.run, shutdown)
            await wait_for(lambda: agent.rounds >= 2 and sink.sent_points > 0, 20, "first deliveries")
            await trio.to_thread.run_sync(inst.stop)
            rounds_at_stop = agent.rounds
            await wait_for(lambda: agent.rounds >= rounds_at_stop + 3, 20, "rounds during the outage")
            assert sink.failures > 0 and sink.pending() > 0  # points wait in the buffer
            await trio.to_thread.run_sync(inst.start)
            await wait_for(lambda: sink.pending() == 0 and agent.rounds >= rounds_at_stop + 5, 30, "catching up")
            shutdown.set()
        assert sink.buffer.dropped_total == 0
        assert any("cannot reach" in r.getMessage() for r in caplog.records)
        points = recorded(record)
        assert {"cpu_load", "mem_used", "cpu_user"} <= {k[0] for k in points}  # + net_bw where there is a NIC
        assert len({ts for s in points.values() for ts in s}) >= 6
        n = await trio.to_thread.run_sync(assert_all_stored, inst, points)
        assert n == sum(len(s) for s in points.values()) == sink.sent_points
    finally:
        await trio.to_thread.run_sync(inst.stop)


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("agentws"), ingest_workers=2,
                 clusters={"c1": small_cluster(timestep=1)}) as i:
        yield i


def ws_url(inst: Installation, query: str = "cluster=c1") -> str:
    return inst.ingest.replace("http://", "ws://") + "/api/ws?" + query


def auth(inst: Installation, **kw) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {inst.token(**kw)}".encode())]


async def test_ws_handshake_follows_the_write_auth_rules(inst):
    with pytest.raises(trio_websocket.ConnectionRejected) as e:
        async with trio_websocket.open_websocket_url(ws_url(inst)):
            pass
    assert e.value.status_code == 401 and b"JWT" in e.value.body
    with pytest.raises(trio_websocket.ConnectionRejected) as e:
        async with trio_websocket.open_websocket_url(ws_url(inst), extra_headers=auth(inst, roles=["user"])):
            pass
    assert e.value.status_code == 403 and b"api" in e.value.body
    with pytest.raises(trio_websocket.ConnectionRejected) as e:
        async with trio_websocket.open_websocket_url(ws_url(inst, "precision=h"), extra_headers=auth(inst)):
            pass
    assert e.value.status_code == 400
    r = httpx.get(inst.ingest + "/api/ws")
    assert r.status_code == 426 and r.headers["upgrade"] == "websocket"
    r = httpx.post(inst.ingest + "/api/ws")
    assert r.status_code == 405


async def test_ws_batches_acks_errors_and_pipelining(inst):
    t = int(time.time()) - 30
    good = "\n".join(f"cpu_load,hostname=wsp,type=node value={i} {t + i}" for i in range(5))
    async with trio_websocket.open_websocket_url(ws_url(inst), extra_headers=auth(inst)) as ws:
        # three batches before reading any answer: answered in order
        await ws.send_message(b"1\n" + good.encode())
        await ws.send_message(b"2 gzip\n" + gzip.compress(f"mem_used,hostname=wsp,type=node value=7 {t}".encode()))
        await ws.send_message(f"3\ncpu_load,hostname=wsp,type=node value=99 {t + 10}\ngarbage here\n"
                              f"nope_metric,hostname=wsp value=1 {t}\n")  # a text message works too
        answers = [orjson.loads(await ws.get_message()) for _ in range(3)]
        assert [a["seq"] for a in answers] == [1, 2, 3]
        assert answers[0]["status"] == "ok" and answers[0]["written"] == 5
        assert answers[1]["status"] == "ok" and answers[1]["written"] == 1
        bad = answers[2]
        assert bad["status"] == "error" and bad["written"] == 1 and bad["unknown_metric"] == 1
        assert bad["errors"][0]["line"] == 2 and "line 2" in bad["error"]
        await ws.send_message(b"4 gzip\nnot gzip at all")
        a = orjson.loads(await ws.get_message())
        assert a["seq"] == 4 and a["status"] == "error" and "gzip" in a["error"]
        await ws.send_message(b"no header line")
        a = orjson.loads(await ws.get_message())
        assert "seq" not in a and "header" in a["error"]
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await ws.get_message()
        assert closed.value.reason.code == 1002
    q = inst.query({"cluster": "c1", "from": t, "to": t + 11, "with-stats": False, "queries": [
        {"metric": "cpu_load", "host": "wsp"}, {"metric": "mem_used", "host": "wsp"}]}).json()["results"]
    assert q[0][0]["data"] == [0, 1, 2, 3, 4, None, None, None, None, None, 99]
    assert q[1][0]["data"][0] == 7


async def test_ws_sink_end_to_end_into_the_store(inst, tmp_path):
    agent, record = agent_for(inst, tmp_path, {"type": "websocket", "url": ws_url(inst), "jwt": inst.token(),
                                               "batch_size": 5}, "wsnode")
    sink = agent.sinks[0]
    assert isinstance(sink, WebsocketSink)
    await agent.run(max_rounds=3)
    assert sink.pending() == 0 and sink.connects == 1 and sink.errors_reported == 0
    assert sink.acks >= 3 and sink.resent_points == 0
    points = recorded(record)
    n = await trio.to_thread.run_sync(assert_all_stored, inst, points)
    assert n == sink.sent_points > 0


async def test_ws_sink_resumes_after_ingest_workers_are_killed(tmp_path, caplog):
    with running(tmp_path / "inst", ingest_workers=2, clusters={"c1": small_cluster(timestep=1)}) as inst:
        agent, record = agent_for(inst, tmp_path, {"type": "websocket", "url": ws_url(inst), "jwt": inst.token(),
                                                   "ack_timeout": "20s", "retry_max_delay": "200ms"}, "resume")
        sink = agent.sinks[0]
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.run, shutdown)
            await wait_for(lambda: sink.acks >= 2, 20, "first acknowledgements")
            # Freeze both workers so the next batch stays unacknowledged, then kill them.
            pids = [inst.pid_of("ingest-0"), inst.pid_of("ingest-1")]
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                await wait_for(lambda: len(sink.inflight) > 0, 10, "a batch in flight")
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
            unacked = sink.pending()
            await trio.to_thread.run_sync(inst.wait_ready, 30)
            await wait_for(lambda: sink.connects >= 2 and sink.pending() == 0, 30, "resume")
            rounds = agent.rounds
            await wait_for(lambda: agent.rounds >= rounds + 1 and sink.pending() == 0, 10, "one more round")
            shutdown.set()
        assert unacked > 0 and sink.resent_points > 0  # the unacknowledged batch went again
        assert sink.buffer.dropped_total == 0
        assert any("connection to" in r.getMessage() and "lost" in r.getMessage() for r in caplog.records)
        points = recorded(record)
        n = await trio.to_thread.run_sync(assert_all_stored, inst, points)
        assert n == sum(len(s) for s in points.values())
        assert {p["name"]: p["crashes"] for p in inst.status()["processes"]}["ingest-0"] >= 1


def test_ws_peer_vanishing_mid_stream_leaves_the_worker_serving(inst):
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, Request

    before = {p["name"]: (p["pid"], p["crashes"]) for p in inst.status()["processes"]}
    host, port = inst.ingest.split("//")[1].split(":")
    t = int(time.time()) - 30
    body = "\n".join(f"cpu_load,hostname=gone{i % 50},type=node value={i} {t}" for i in range(2000)).encode()
    for _ in range(3):
        c = WSConnection(ConnectionType.CLIENT)
        sock = socket.create_connection((host, int(port)))
        sock.sendall(c.send(Request(host=host, target="/api/ws?cluster=c1",
                                    extra_headers=[(b"authorization", f"Bearer {inst.token()}".encode())])))
        accepted = False
        while not accepted:
            c.receive_data(sock.recv(65536))
            accepted = any(isinstance(e, AcceptConnection) for e in c.events())
        sock.sendall(b"".join(c.send(BytesMessage(data=f"{k}\n".encode() + body)) for k in range(20)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset: unanswered batches, answers with nowhere to go
    time.sleep(1.0)
    after = {p["name"]: (p["pid"], p["crashes"]) for p in inst.status()["processes"]}
    assert after == before
    assert httpx.get(inst.ingest + "/api/healthz").status_code == 200


async def test_ws_connection_ends_with_its_token(inst):
    async with trio_websocket.open_websocket_url(ws_url(inst), extra_headers=auth(inst, max_age=2)) as ws:
        t = int(time.time()) - 30
        await ws.send_message(f"1\ncpu_load,hostname=exp,type=node value=1 {t}".encode())
        assert orjson.loads(await ws.get_message())["status"] == "ok"
        with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await ws.get_message()
        assert closed.value.reason.code == 1008 and "token expired" in closed.value.reason.reason
