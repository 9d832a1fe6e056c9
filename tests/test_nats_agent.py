"""cc-agent's ``nats`` sink across a NATS outage, into a real installation reading the subject."""

from __future__ import annotations

import logging

import pytest
import trio

from cc.agent.collectors._base import AgentConfigError
from cc.agent.sinks import NatsSink, make_sink
from tests.helpers import Installation, small_cluster
from tests.nats_server import NatsServer
from tests.test_agent_sinks import agent_for, assert_all_stored, recorded, wait_for

pytestmark = pytest.mark.slow


def test_sink_options_as_upstream(tmp_path):
    s = make_sink("n", {"type": "nats", "host": "h", "database": "metrics", "port": 4333})
    assert isinstance(s, NatsSink) and s.subject == "metrics" and s.settings.servers == ("nats://h:4333",)
    for cfg, msg in (({"host": "h"}, "sinks.n.subject"), ({"subject": "x"}, "sinks.n.host"),
                     ({"host": "h", "subject": "x", "user": "u"}, "user and password"),
                     ({"host": "h", "subject": "x", "nkey_file": str(tmp_path / "no")}, "sinks.n.nkey_file"),
                     ({"host": "h", "subject": "x", "port": "http"}, "sinks.n.host/port")):
        with pytest.raises(AgentConfigError, match=msg):
            make_sink("n", {"type": "nats", **cfg})


async def test_nats_sink_keeps_points_through_an_outage(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    # JetStream on the ingest side: what the server accepted while the workers reconnect is kept
    srv = NatsServer(tmp_path / "nats", jetstream=True).start()
    inst = Installation(tmp_path / "inst", ingest_workers=1, clusters={"c1": small_cluster(timestep=1)},
                        extra_config={"nats": {"address": srv.url}, "metric-store": {"nats-subscriptions": [
                            {"subscribe-to": "agent.c1", "cluster-tag": "c1", "stream": "AGENT"}]}})
    try:
        await trio.to_thread.run_sync(inst.start)
        agent, record = agent_for(inst, tmp_path, {
            "type": "nats", "host": "127.0.0.1", "port": str(srv.port), "subject": "agent.c1",
            "flush_delay": "200ms", "batch_size": 50, "retry_max_delay": "300ms"}, "natsnode")
        sink = agent.sinks[0]
        assert isinstance(sink, NatsSink)
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.run, shutdown)
            await wait_for(lambda: agent.rounds >= 2 and sink.sent_points > 0, 20, "first deliveries")
            await trio.to_thread.run_sync(srv.stop)
            at_stop = agent.rounds
            await wait_for(lambda: agent.rounds >= at_stop + 3, 20, "rounds during the outage")
            assert sink.pending() > 0  # waiting in the buffer, nothing published into the void
            await trio.to_thread.run_sync(srv.start)
            await wait_for(lambda: sink.pending() == 0 and agent.rounds >= at_stop + 5, 30, "catching up")
            shutdown.set()
        assert sink.buffer.dropped_total == 0
        assert any("NATS connection to" in r.getMessage() and "lost" in r.getMessage() for r in caplog.records)
        points = recorded(record)
        assert len({ts for s in points.values() for ts in s}) >= 6

        async def stored() -> int:
            with trio.fail_after(30):
                while True:
                    try:
                        return await trio.to_thread.run_sync(assert_all_stored, inst, points)
                    except AssertionError:
                        await trio.sleep(0.5)

        n = await stored()
        assert n == sum(len(s) for s in points.values())
    finally:
        await trio.to_thread.run_sync(inst.stop)
        srv.stop()
