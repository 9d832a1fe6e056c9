"""The NATS bridge (nats-py on an asyncio thread, used from Trio) against a real nats-server."""

from __future__ import annotations

import logging

import pytest
import trio

from cc.nats import (
    CONNECTED,
    DISCONNECTED,
    NatsClient,
    NatsConfigError,
    NatsError,
    decode_events,
    encode_event,
    parse_nats,
    probe,
)
from tests.nats_server import NatsServer


@pytest.fixture
def server(tmp_path):
    with NatsServer(tmp_path / "nats", jetstream=True) as s:
        yield s


def test_settings_validation(tmp_path):
    s = parse_nats({"address": "nats://a:4222, b:5000"})
    assert s.servers == ("nats://a:4222", "nats://b:5000")
    assert parse_nats({"address": "host"}).servers == ("nats://host:4222",)
    bad = [
        ({}, "nats.address is required"),
        ({"address": "tls://a:1"}, "nats.address"),
        ({"address": "nats://a:99999"}, "nats.address"),
        ({"address": "nats://a:1", "username": "u"}, "nats.username and nats.password"),
        ({"address": "nats://a:1", "creds-file-path": "/nonexistent"}, "nats.creds-file-path"),
        ({"address": "nats://a:1", "token": "x"}, "nats.token: unknown key"),
    ]
    for raw, msg in bad:
        with pytest.raises(NatsConfigError, match=msg):
            parse_nats(raw)
    seed = tmp_path / "seed"
    seed.write_text("not a seed")
    with pytest.raises(NatsConfigError, match="nats.nkey-seed-file"):
        parse_nats({"address": "nats://a:1", "nkey-seed-file": str(seed)})


def test_event_lines_round_trip():
    payload = '{"jobId": 1, "user": "a \\"quoted\\" b", "path": "c:\\\\x", "note": "x y,z=w"}'
    line = encode_event("job", {"function": "start_job", "hostname": "ctl"}, payload, 1700000000)
    events, errors = decode_events(line + b"garbage\n" + b'nodestate event="{}" 5\n')
    assert errors and errors[0][0] == 2
    assert events[0].measurement == "job" and events[0].tags["function"] == "start_job"
    assert events[0].fields["event"] == payload and events[0].timestamp == 1700000000
    assert events[1].measurement == "nodestate" and events[1].fields["event"] == "{}"


async def test_probe_errors_name_the_key(tmp_path):
    with NatsServer(tmp_path / "auth", user="u", password="right") as srv:
        good = parse_nats({"address": srv.url, "username": "u", "password": "right"})
        assert await probe(good, timeout=2) == srv.url
        with pytest.raises(NatsError, match=r"nats.username/nats.password: .*refused the credentials"):
            await probe(parse_nats({"address": srv.url, "username": "u", "password": "wrong"}), timeout=2)
        port = srv.port
    with pytest.raises(NatsError, match=rf"nats.address: cannot connect to nats://127.0.0.1:{port}"):
        await probe(parse_nats({"address": f"nats://127.0.0.1:{port}"}), timeout=1)


async def test_publish_subscribe_queue_group_and_reconnect(server, caplog):
    caplog.set_level(logging.INFO)
    settings = parse_nats({"address": server.url})
    states: list[str] = []
    async with NatsClient(settings, name="a", on_state=states.append) as a, \
            NatsClient(settings, name="b") as b, NatsClient(settings, name="c") as c:
        for cl in (a, b, c):
            assert await cl.wait_connected(5)
        s1 = await b.subscribe("t.x", queue="q")
        s2 = await c.subscribe("t.x", queue="q")
        await b.flush()
        await c.flush()
        await a.publish_many("t.x", [str(i).encode() for i in range(200)], flush_timeout=5)
        got: list[bytes] = []

        async def drain(sub):
            while True:
                batch = await sub.next_batch()
                got.extend(m.data for m in batch)

        per_sub: dict[int, int] = {}
        async with trio.open_nursery() as n:
            for k, sub in enumerate((s1, s2)):
                async def one(sub=sub, k=k):
                    while True:
                        batch = await sub.next_batch()
                        per_sub[k] = per_sub.get(k, 0) + len(batch)
                        got.extend(m.data for m in batch)
                n.start_soon(one)
            with trio.fail_after(10):
                while len(got) < 200:
                    await trio.sleep(0.02)
            n.cancel_scope.cancel()
        assert sorted(int(x) for x in got) == list(range(200))  # each message once across the group
        assert per_sub.get(0) and per_sub.get(1)  # and both members got some

        # the server goes away and comes back: a warning, then the client is connected again
        await trio.to_thread.run_sync(server.stop)
        with trio.fail_after(10):
            while a.state != DISCONNECTED:
                await trio.sleep(0.05)
        await trio.to_thread.run_sync(server.start)
        assert await a.wait_connected(15)
        assert states[:3] == [CONNECTED, DISCONNECTED, CONNECTED]
    text = caplog.text
    assert text.count("NATS connection to") >= 1 and "reconnected" in text


async def test_jetstream_pull_consumer_redelivers_unacked(server):
    settings = parse_nats({"address": server.url})
    async with NatsClient(settings, name="js") as cl:
        assert await cl.wait_connected(5)
        pc = await cl.pull_consumer("m.js", "MJS", "dur", ack_wait=1.0, create_stream_max_age=3600)
        await cl.publish_many("m.js", [b"a", b"b"], flush_timeout=5)
        first = []
        with trio.fail_after(10):
            while len(first) < 2:
                first += await pc.fetch(10, 1.0)
        assert [m.delivered for m in first] == [1, 1]
        again: dict[bytes, object] = {}
        with trio.fail_after(10):
            while len(again) < 2:  # not acked: delivered again after ack-wait
                for m in await pc.fetch(10, 1.0):
                    if m.delivered >= 2:
                        again[m.data] = m
        assert sorted(again) == [b"a", b"b"]
        await pc.ack(list(again.values()))
        with trio.fail_after(15):  # copies already in flight before the ack may come once more; then quiet
            while late := await pc.fetch(10, 2.5):
                await pc.ack(late)


def test_config_keys_are_validated_naming_the_key(tmp_path):
    import orjson

    from cc.config import ConfigError, load_config
    from supervisor._init import init_directory

    init_directory(tmp_path, [], "127.0.0.1:0", "127.0.0.1:0", memory_cap_gb=0.1)
    base = orjson.loads((tmp_path / "config.json").read_bytes())

    def load(**over):
        doc = orjson.loads(orjson.dumps(base))
        for k, v in over.items():  # "section__key" sets doc[section][key], "section" sets doc[section]
            sec, _, key = k.partition("__")
            if key:
                doc.setdefault(sec, {})[key] = v
            else:
                doc[sec] = v
        (tmp_path / "config.json").write_bytes(orjson.dumps(doc))
        return load_config(tmp_path / "config.json")

    ok = load(nats={"address": "nats://127.0.0.1:4222"},
              **{"metric-store__nats-subscriptions": [{"subscribe-to": "a.b", "cluster-tag": "c1"},
                                                      {"subscribe-to": "x.>", "stream": "S", "ack-wait": "5s"}],
                 "main__api-subjects": {"subject-job-event": "j", "subject-node-state": "n"}})
    subs = ok.metric_store.nats_subscriptions
    assert subs[0].cluster_tag == "c1" and subs[0].stream is None
    assert subs[1].stream == "S" and subs[1].ack_wait == 5.0 and ok.api_subjects.node_state == "n"
    assert not [w for w in ok.warnings if "nats" in w or "api-subjects" in w]
    bad = [
        ({"metric-store__nats-subscriptions": [{"subscribe-to": "a"}]}, "needs the top-level 'nats' key"),
        ({"nats": {"address": "nats://h:1"}, "metric-store__nats-subscriptions": [{"cluster-tag": "c"}]},
         r"nats-subscriptions\[0\].subscribe-to"),
        ({"nats": {"address": "nats://h:1"}, "metric-store__nats-subscriptions": [{"subscribe-to": "a", "durable": "d"}]},
         r"nats-subscriptions\[0\].durable needs"),
        ({"nats": {"address": "nats://h:1"}, "metric-store__nats-subscriptions": [{"subscribe-to": "a", "bogus": 1}]},
         r"unknown config key 'metric-store.nats-subscriptions\[\].bogus'"),
        ({"nats": {"address": "nats://h:1"}, "main__api-subjects": {"subject-job-event": "j"}},
         "main.api-subjects.subject-node-state is required"),
        ({"nats": {"address": "nats://h:1", "passwort": "x"}}, "unknown config key 'nats.passwort'"),
    ]
    for over, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            load(**over)


def _user_seed() -> tuple[str, str]:
    import os as _os

    import nkeys

    seed = nkeys.encode_seed(_os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode(), nkeys.from_seed(bytearray(seed)).public_key.decode()


async def test_nkey_seed_file_authenticates(tmp_path):
    seed, public = _user_seed()
    other, _ = _user_seed()
    conf = f"authorization {{ users = [ {{ nkey: {public} }} ] }}\n"
    with NatsServer(tmp_path / "nk", extra_conf=conf) as srv:
        (tmp_path / "good.seed").write_text(seed + "\n")
        (tmp_path / "bad.seed").write_text(other + "\n")
        good = parse_nats({"address": srv.url, "nkey-seed-file": str(tmp_path / "good.seed")})
        assert await probe(good, timeout=2) == srv.url
        async with NatsClient(good, name="nk") as nc:
            assert await nc.wait_connected(5)
        with pytest.raises(NatsError, match="nats.nkey-seed-file: the NATS server .* refused the credentials"):
            await probe(parse_nats({"address": srv.url, "nkey-seed-file": str(tmp_path / "bad.seed")}), timeout=2)
