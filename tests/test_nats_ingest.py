"""Metric ingest from a real nats-server into a real installation: core NATS (queue group) and JetStream."""

from __future__ import annotations

import os
import signal
import time

import httpx
import orjson
import pytest
import trio

from cc.nats import NatsClient, parse_nats
from cc.shm import COUNTER_INDEX, INGEST_SLOT_BASE, Store
from tests.helpers import Installation, running
from tests.nats_server import NatsServer

pytestmark = pytest.mark.slow


def now10() -> int:
    return (int(time.time()) // 10) * 10


def nats_config(url: str, subs: list[dict], **main) -> dict:
    return {"nats": {"address": url}, "metric-store": {"nats-subscriptions": subs}, **main}


async def publish(url: str, subject: str, payloads: list[bytes], *, jetstream: bool = False) -> None:
    async with NatsClient(parse_nats({"address": url}), name="test-publisher") as nc:
        assert await nc.wait_connected(10)
        if jetstream:
            await nc.js_publish(subject, payloads)
        else:
            await nc.publish_many(subject, payloads, flush_timeout=10)


def debug(inst: Installation) -> dict:
    r = httpx.get(inst.web + "/api/debug", headers={"Authorization": f"Bearer {inst.token()}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def node_series(inst: Installation, host: str, t0: int, t1: int, metric: str = "cpu_load") -> list:
    q = inst.query({"cluster": "c1", "from": t0, "to": t1, "queries": [{"metric": metric, "host": host}]})
    assert q.status_code == 200, q.text
    res = q.json()["results"][0]
    return res[0]["data"] if res else []


async def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await trio.to_thread.run_sync(pred)
        if got:
            return got
        await trio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def counters_by_worker(inst: Installation, name: str, workers: int = 2) -> list[int]:
    store = Store.attach(inst.instance)
    try:
        return [int(store.counters[INGEST_SLOT_BASE + k, COUNTER_INDEX[name]]) for k in range(workers)]
    finally:
        store.close()


async def test_core_nats_queue_group_bad_messages_and_status(tmp_path):
    with NatsServer(tmp_path / "nats") as srv, \
            running(tmp_path / "inst", extra_config=nats_config(srv.url, [
                {"subscribe-to": "hpc.c1", "cluster-tag": "c1"}])) as inst:
        st = inst.status()
        await wait_for(lambda: all(p.get("nats") == "connected" for p in inst.status()["processes"]
                                   if p["name"].startswith("ingest-")), 20, "ingest workers connected")
        assert "nats" not in next(p for p in st["processes"] if p["name"] == "archiver")
        out = inst.cli("status")
        assert "NATS" in out.stdout and "connected" in out.stdout
        t = now10() - 300
        # 200 messages of 3 lines (one message per host and time): no cluster tag, cluster-tag fills it
        payloads = []
        for h in range(20):
            for k in range(10):
                ts = t + 10 * k
                payloads.append(f"cpu_load,hostname=n{h:02d},type=node value={h + k} {ts}\n"
                                f"mem_used,hostname=n{h:02d} value={k} {ts}\n"
                                f"net_bw,hostname=n{h:02d} value=1.5 {ts}".encode())
        bad = [b"this is not line protocol", b"cpu_load,hostname=x value=notanumber 1",
               b"\xff\xfe binary", b""]
        await publish(srv.url, "hpc.c1", payloads[:100] + bad + payloads[100:])
        for h in (0, 7, 19):
            data = await wait_for(lambda h=h: (d := node_series(inst, f"n{h:02d}", t, t + 100)) and
                                  None not in d and d, 20, f"points of n{h:02d}")
            assert data == [h + k for k in range(10)]
        d = debug(inst)
        assert d["counters"]["nats_messages"] >= 204
        assert d["counters"]["lines"] >= 600 and d["counters"]["malformed_lines"] >= 3
        # the queue group spread the messages over both workers, each message went to one of them
        per_worker = counters_by_worker(inst, "nats_messages")
        assert sum(per_worker) == 204 and min(per_worker) > 0, per_worker
        log = "\n".join(inst.cli("logs", "ingest", "-n", "200").stdout.splitlines())
        assert "NATS hpc.c1" in log and "malformed" in log


async def test_jetstream_kill9_worker_and_nats_restart_lose_nothing(tmp_path):
    with NatsServer(tmp_path / "nats", jetstream=True) as srv, \
            running(tmp_path / "inst", extra_config=nats_config(srv.url, [
                {"subscribe-to": "js.c1", "cluster-tag": "c1", "stream": "CCM", "ack-wait": "2s"}])) as inst:
        await wait_for(lambda: all(p.get("nats") == "connected" for p in inst.status()["processes"]
                                   if p["name"].startswith("ingest-")), 20, "workers connected")
        t = now10() - 3000
        hosts, steps = 40, 60

        def payload(h: int, k: int) -> bytes:
            return (f"cpu_load,hostname=j{h:02d} value={h * 1000 + k} {t + 10 * k}\n"
                    f"net_bw,hostname=j{h:02d} value={k} {t + 10 * k}\n").encode()

        msgs = [payload(h, k) for k in range(steps) for h in range(hosts)]  # 2400 messages, 4800 points
        third = len(msgs) // 3
        await publish(srv.url, "js.c1", msgs[:third], jetstream=True)
        # kill -9 a worker while it is taking messages
        os.kill(inst.pid_of("ingest-0"), signal.SIGKILL)
        await publish(srv.url, "js.c1", msgs[third:2 * third], jetstream=True)
        # the NATS server restarts mid-stream (JetStream state on disk)
        await trio.to_thread.run_sync(srv.restart)
        await publish(srv.url, "js.c1", msgs[2 * third:], jetstream=True)

        def complete() -> bool:
            return all(node_series(inst, f"j{h:02d}", t, t + 10 * steps) ==
                       [h * 1000 + k for k in range(steps)] for h in (0, 13, 39))

        try:
            await wait_for(complete, 60, "every point after kill -9 and restart")
        except AssertionError:
            missing = {h: node_series(inst, f"j{h:02d}", t, t + 10 * steps).count(None) for h in range(hosts)}
            raise AssertionError(f"missing points per host {missing}; counters {debug(inst)['counters']}") from None
        for h in range(hosts):
            assert node_series(inst, f"j{h:02d}", t, t + 10 * steps) == [h * 1000 + k for k in range(steps)]
        d = debug(inst)["counters"]
        total = 2 * hosts * steps
        # no point is counted twice; what a killed delivery did not count shows up as redelivered
        assert d["points_written"] <= total, d
        assert d["points_written"] + d["nats_redelivered_points"] >= total, d


async def test_jetstream_stop_start_loses_nothing_published_meanwhile(tmp_path):
    with NatsServer(tmp_path / "nats", jetstream=True) as srv:
        inst = Installation(tmp_path / "inst", extra_config=nats_config(srv.url, [
            {"subscribe-to": "js.c1", "cluster-tag": "c1", "stream": "CCS"}]))
        try:
            inst.start()
            t = now10() - 600
            await publish(srv.url, "js.c1", [f"cpu_load,hostname=s1 value={k} {t + 10 * k}".encode()
                                             for k in range(20)], jetstream=True)
            await wait_for(lambda: node_series(inst, "s1", t, t + 200) == list(range(20)), 30, "first half")
            inst.stop()
            # published while the installation is down: kept by the stream, delivered after the start
            await publish(srv.url, "js.c1", [f"cpu_load,hostname=s1 value={k} {t + 10 * k}".encode()
                                             for k in range(20, 40)], jetstream=True)
            inst.start()
            await wait_for(lambda: node_series(inst, "s1", t, t + 400) == list(range(40)), 30, "both halves")
        finally:
            inst.stop()


def test_wrong_nats_address_or_credentials_is_a_startup_error(tmp_path):
    dead = f"nats://127.0.0.1:{_unused_port()}"
    inst = Installation(tmp_path / "a", extra_config=nats_config(dead, [{"subscribe-to": "x", "cluster-tag": "c1"}]))
    with pytest.raises(RuntimeError, match=r"nats\.address: cannot connect to nats://127\.0\.0\.1"):
        inst.start()
    inst.stop()
    with NatsServer(tmp_path / "nats", user="u", password="secret") as srv:
        cfg = nats_config(srv.url, [{"subscribe-to": "x"}])
        cfg["nats"].update(username="u", password="wrong")
        inst = Installation(tmp_path / "b", extra_config=cfg)
        with pytest.raises(RuntimeError, match=r"nats\.username/nats\.password: .*refused the credentials"):
            inst.start()
        inst.stop()
    bad = Installation.__new__(Installation)  # a config mistake is named before anything starts
    del bad
    root = tmp_path / "c"
    inst = Installation(root)
    cfg = orjson.loads((root / "config.json").read_bytes())
    cfg["metric-store"]["nats-subscriptions"] = [{"subscribe-to": "x"}]
    (root / "config.json").write_bytes(orjson.dumps(cfg))
    r = inst.cli("status")
    assert r.returncode != 0 and "needs the top-level 'nats' key" in r.stderr + r.stdout


def _unused_port() -> int:
    from tests.helpers import free_port

    return free_port()
