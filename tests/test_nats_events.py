"""Job start/stop and node-state events over NATS (``main.api-subjects``) into a real installation."""

from __future__ import annotations

import sqlite3
import time

import httpx
import orjson
import pytest
import trio

from cc.nats import NatsClient, encode_event, parse_nats
from tests.helpers import running
from tests.nats_server import NatsServer

pytestmark = pytest.mark.slow
NOW = int(time.time())


def start_payload(job_id: int, hosts=("n01",), **extra) -> dict:
    d = {"jobId": job_id, "user": "alice", "project": "p1", "cluster": "c1", "partition": "main",
         "numNodes": len(hosts), "numHwthreads": 8 * len(hosts), "startTime": NOW - 600, "walltime": 3600,
         "resources": [{"hostname": h} for h in hosts], "metaData": {"jobName": f"job{job_id}"}}
    d.update(extra)
    return d


def job_event(function: str, payload: dict, **tags) -> bytes:
    return encode_event("job", {"function": function, "hostname": "slurmctl", **tags}, orjson.dumps(payload).decode())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("natsevents")
    with NatsServer(root / "nats") as srv, running(root / "inst", extra_config={
            "nats": {"address": srv.url},
            "main": {"api-subjects": {"subject-job-event": "cc.job.event", "subject-node-state": "cc.node.state"}},
    }) as inst:
        deadline = time.time() + 20
        while time.time() < deadline:
            web = next(p for p in inst.status()["processes"] if p["name"] == "web")
            if web.get("nats") == "connected":
                break
            time.sleep(0.1)
        assert web.get("nats") == "connected", web
        yield srv, inst


async def publish(url: str, subject: str, *payloads: bytes) -> None:
    async with NatsClient(parse_nats({"address": url}), name="test") as nc:
        assert await nc.wait_connected(10)
        await nc.publish_many(subject, list(payloads), flush_timeout=10)


def jobs(inst, **params) -> list[dict]:
    r = httpx.get(inst.web + "/api/jobs/", params={"items-per-page": 100, **params},
                  headers={"Authorization": f"Bearer {inst.token()}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["jobs"]


def web_log(inst) -> str:
    return inst.cli("logs", "web", "-n", "400").stdout


async def until(pred, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await trio.to_thread.run_sync(pred)
        if got:
            return got
        await trio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_start_duplicate_and_stop_like_the_rest_routes(setup):
    srv, inst = setup
    await publish(srv.url, "cc.job.event", job_event("start_job", start_payload(501, hosts=("n01", "n02"))))
    job = (await until(lambda: [j for j in jobs(inst, state="running") if j["jobId"] == 501], "job 501"))[0]
    assert job["numNodes"] == 2 and job["user"] == "alice"
    # the same job again: refused as by POST /api/jobs/start_job/ (422), and logged with the job id
    await publish(srv.url, "cc.job.event", job_event("start_job", start_payload(501, hosts=("n01", "n02"))))
    await until(lambda: "rejected start_job of job 501 (cluster c1)" in web_log(inst), "duplicate logged")
    assert len([j for j in jobs(inst) if j["jobId"] == 501]) == 1
    stop = {"jobId": 501, "cluster": "c1", "startTime": NOW - 600, "stopTime": NOW - 60, "jobState": "completed"}
    await publish(srv.url, "cc.job.event", job_event("stop_job", stop, partition="main"))
    done = await until(lambda: [j for j in jobs(inst, state="completed") if j["jobId"] == 501], "job 501 stopped")
    assert done[0]["duration"] == 540
    # archived by the archiver, which the stop woke (as after the REST route)
    await until(lambda: [j for j in jobs(inst, state="completed") if j["jobId"] == 501
                         and j.get("monitoringStatus") in (0, 2, 3)], "job 501 archived", 30)
    # stopping again: refused (already stopped), logged
    await publish(srv.url, "cc.job.event", job_event("stop_job", stop))
    await until(lambda: "rejected stop_job of job 501" in web_log(inst) and "already been stopped" in web_log(inst),
                "second stop logged")


async def test_bad_messages_are_logged_and_the_subscription_goes_on(setup):
    srv, inst = setup
    await publish(srv.url, "cc.job.event",
                  b"this is not line protocol at all",
                  b'job,function=start_job event="{not json" 1',
                  b'job,function=frobnicate event="{}" 1',
                  job_event("start_job", {}).replace(b"event=", b"payload="),
                  b'job event="{}" 1',
                  job_event("start_job", start_payload(502, numNodes=5)),  # fails validation (400)
                  job_event("start_job", start_payload(503)))  # fine: the subscription still works
    await until(lambda: [j for j in jobs(inst, state="running") if j["jobId"] == 503], "job 503")
    log = web_log(inst)
    for needle in ("is not line protocol", "the 'event' field is not JSON", "unknown function 'frobnicate'",
                   "without the field 'event'", "the tag 'function' is missing",
                   "rejected start_job of job 502 (cluster c1): 'numNodes' is 5"):
        assert needle in log, (needle, log[-3000:])
    assert "NATS cc.job.event: rejected" in log
    assert not [j for j in jobs(inst) if j["jobId"] == 502]


async def test_node_states(setup):
    srv, inst = setup
    doc = {"cluster": "c1", "nodes": [{"hostname": "n01", "states": ["allocated"], "cpusAllocated": 8,
                                       "jobsRunning": 1}, {"hostname": "n03", "states": ["idle"]}]}
    await publish(srv.url, "cc.node.state", encode_event("nodestate", {}, orjson.dumps(doc).decode()),
                  encode_event("nodestate", {}, orjson.dumps({"cluster": "nope", "nodes": []}).decode()))

    def states():
        conn = sqlite3.connect(inst.cfg.db_path)
        try:
            return dict(conn.execute("SELECT n.hostname, s.node_state FROM node_state s JOIN node n "
                                     "ON n.id = s.node_id WHERE n.cluster = 'c1'").fetchall())
        finally:
            conn.close()

    got = await until(lambda: (s := states()) and len(s) >= 2 and s, "node states")
    assert got["n01"] == "allocated" and got["n03"] == "idle"
    await until(lambda: "rejected nodestate of cluster nope: 'cluster': unknown cluster 'nope'" in web_log(inst),
                "unknown cluster logged")
