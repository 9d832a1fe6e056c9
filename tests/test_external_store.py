"""metric-store-external: a front installation reads metrics of some clusters/subclusters from another
installation's /api/query (the built-in store serves the rest): job views, node views, REST, live plots,
node health and archiving; clear errors for a wrong token, an unreachable store, a timeout, a bad answer."""

from __future__ import annotations

import functools
import math
import socket
import time

import httpx
import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from cc import ipc
from cc.archive import JobArchive
from cc.clusters import MetricCatalog, load_clusters
from cc.config import ConfigError
from cc.db import connect
from cc.metricsource import BuiltinSource, ExternalSource, MetricSourceError, MetricSources
from cc.query import Query, QueryRequest
from cc.shm import Store
from tests.graphql_helpers import USERS, add_users, cluster_doc
from tests.helpers import Installation, free_port, running, small_cluster, wait_for

NOW = int(time.time())
T0 = (NOW // 10) * 10 - 600  # points at T0 .. T0 + 190
SPAN = {"from": T0, "to": NOW}

JOB_METRICS = ("query($id: ID!, $m: [String!], $s: [MetricScope!]) { jobMetrics(id: $id, metrics: $m, scopes: $s) "
               "{ name scope metric { timestep series { hostname id data statistics { avg min max } } } } }")


def lines(cluster: str, host: str, base: float) -> list[str]:
    out = []
    for k in range(20):
        ts = T0 + 10 * k
        out.append(f"cpu_load,cluster={cluster},hostname={host},type=node value={base + k} {ts}")
        out += [f"flops_any,cluster={cluster},hostname={host},type=hwthread,type-id={hw} value={base + hw} {ts}"
                for hw in range(8)]
        out += [f"mem_bw,cluster={cluster},hostname={host},type=socket,type-id={s} value={base * (s + 1)} {ts}"
                for s in range(2)]
    return out


def ingest(inst: Installation, rows: list[str]) -> None:
    r = inst.write("\n".join(rows), cluster=None)
    assert r.status_code == 200, r.text


def rest(inst: Installation, method: str, path: str, json=None, user: str = "admin") -> httpx.Response:
    return httpx.request(method, inst.web + path, headers={"Authorization": f"Bearer {inst.token(user, USERS[user])}"},
                         content=orjson.dumps(json) if json is not None else None, timeout=60)


def gql(inst: Installation, query: str, variables: dict) -> dict:
    r = rest(inst, "POST", "/query", {"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()


def start(inst: Installation, job_id: int, cluster: str, host: str, start_time: int = T0) -> int:
    r = rest(inst, "POST", "/api/jobs/start_job/", {
        "jobId": job_id, "user": "alice", "project": "p1", "cluster": cluster, "partition": "main", "numNodes": 1,
        "numHwthreads": 8, "startTime": start_time, "walltime": 86400, "resources": [{"hostname": host}]},
        user="adapter")
    assert r.status_code == 201, r.text
    return r.json()["id"]


def stop(inst: Installation, job_id: int, cluster: str, stop_time: int) -> None:
    r = rest(inst, "POST", "/api/jobs/stop_job/", {"jobId": job_id, "cluster": cluster, "stopTime": stop_time,
                                                   "jobState": "completed"}, user="adapter")
    assert r.status_code == 200, r.text



# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [
    ({"scope": "c1"}, r"unknown config key 'metric-store-external\.scope'"),
    ([], r"metric-store-external: expected a non-empty list"),
    ("http://h:1", r"metric-store-external: expected a non-empty list"),
    ([{"scope": "c1", "url": "http://h:1"}], r"metric-store-external\[0\]\.token: is required"),
    ([{"scope": 1, "url": "http://h:1", "token": ""}], r"\[0\]\.scope: must be a string"),
    ([{"scope": " ", "url": "http://h:1", "token": ""}], r"\[0\]\.scope: must be a cluster name"),
    ([{"scope": "c1", "url": "ftp://h:1", "token": ""}], r"\[0\]\.url: expected http\(s\)://"),
    ([{"scope": "c1", "url": "http://h:1/api/query", "token": ""}], r"\[0\]\.url: give the store's base URL"),
    ([{"scope": "c1", "url": "http://h:1", "token": "a b"}], r"\[0\]\.token: must not contain whitespace"),
    ([{"scope": "c1", "url": "http://h:1", "token": ""}, {"scope": "c1", "url": "http://h:2", "token": ""}],
     r"\[1\]\.scope: 'c1' is already routed by metric-store-external\[0\]"),
    ([{"scope": "c1", "url": "http://h:1", "token": "", "timeout": 3}],
     r"unknown config key 'metric-store-external\[\]\.timeout'"),
])
def test_config_errors_name_the_key(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        Installation(tmp_path, extra_config={"metric-store-external": value})


def test_config_accepted(tmp_path):
    inst = Installation(tmp_path, extra_config={"metric-store-external": [
        {"scope": "*", "url": "https://store.example:8082/", "token": "t1"},
        {"scope": "c1-gpu", "url": "http://10.0.0.1:8082/prefix", "token": ""}]})
    got = [(e.scope, e.url, e.token) for e in inst.cfg.metric_store_external]
    assert got == [("*", "https://store.example:8082", "t1"), ("c1-gpu", "http://10.0.0.1:8082/prefix", "")]
    assert not [w for w in inst.cfg.warnings if "metric-store-external" in w]


def test_routing_follows_cc_backend():
    """<cluster>-<subcluster>, then <cluster>, then *, then the built-in store; one client per URL and token."""
    from cc.clusters import parse_cluster
    from cc.config import ExternalStore

    builtin = object()
    c1 = parse_cluster(cluster_doc("c1"), "test")
    plain = MetricSources(builtin, [ExternalStore("c1-gpu", "http://a:1", "t")])
    assert plain.for_host(c1, "g01").url == "http://a:1" and plain.for_host(c1, "n01") is builtin
    assert plain.for_subcluster("c2", "gpu") is builtin
    routes = MetricSources(builtin, [ExternalStore("*", "http://star:1", "t"), ExternalStore("c1", "http://c1:1", "t"),
                                     ExternalStore("c1-gpu", "http://a:1", "t"), ExternalStore("c2", "http://a:1", "t")])
    assert routes.for_subcluster("c1", "gpu").url == "http://a:1"
    assert routes.for_subcluster("c1", "main").url == "http://c1:1"
    assert routes.for_subcluster("c9", "main").url == "http://star:1"
    assert routes.for_subcluster("c2", None) is routes.for_subcluster("c1", "gpu")  # same URL and token
    assert len(routes.external) == 3
    assert [src.url for src, _ in routes.group_hosts(c1, ["n01", "g01", "n02"])] == ["http://c1:1", "http://a:1"]


# -- a store installation and a front reading from it ----------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with running(tmp_path_factory.mktemp("store"), ingest_workers=1,
                 clusters={"c1": cluster_doc("c1"), "c4": cluster_doc("c4")},
                 extra_config={"main": {"resampling": {"minimum-points": 5}}}) as s:
        ingest(s, lines("c1", "n01", 10) + lines("c1", "n02", 20) + lines("c4", "g01", 30)
               + lines("c4", "n05", 99))  # c4 main hosts are the front's: n05 here must never show up there
        yield s


@pytest.fixture(scope="module")
def front(tmp_path_factory, store):
    closed = free_port()  # nothing listens there
    ext = [{"scope": "c1", "url": store.web, "token": store.token("front", ["api"])},
           {"scope": "c4-gpu", "url": store.web, "token": store.token("front", ["api"])},
           {"scope": "c2", "url": store.web, "token": "not-a-jwt"},
           {"scope": "c3", "url": f"http://127.0.0.1:{closed}", "token": ""}]
    clusters = {"c1": cluster_doc("c1"), "c2": small_cluster("c2"), "c3": small_cluster("c3"), "c4": cluster_doc("c4")}
    with running(tmp_path_factory.mktemp("front"), ingest_workers=1, clusters=clusters,
                 extra_config={"metric-store-external": ext,
                               "archive": {"retry-delay": "1s", "max-attempts": 100}}) as f:
        add_users(f)
        ingest(f, lines("c4", "n01", 40))  # the unclaimed subcluster lives in the front's own store
        f.closed_url = f"http://127.0.0.1:{closed}"
        f.ids = {"c1": start(f, 1, "c1", "n01"), "c2": start(f, 2, "c2", "n01"), "c3": start(f, 3, "c3", "n01"),
                 "c4gpu": start(f, 4, "c4", "g01"), "c4main": start(f, 5, "c4", "n01")}
        yield f


def job_series(front, key: str, metrics=("cpu_load",), scopes=("node",)) -> dict:
    doc = gql(front, JOB_METRICS, {"id": str(front.ids[key]), "m": list(metrics), "s": list(scopes)})
    assert not doc.get("errors"), doc["errors"]
    return {(m["name"], m["scope"]): m["metric"] for m in doc["data"]["jobMetrics"]}


def test_job_metrics_come_from_the_routed_store(front):
    got = job_series(front, "c1", ("cpu_load", "flops_any", "mem_bw"), ("node", "socket"))
    load = got["cpu_load", "node"]
    assert load["timestep"] == 10 and load["series"][0]["hostname"] == "n01"
    assert load["series"][0]["data"][:20] == [10.0 + k for k in range(20)]
    assert load["series"][0]["statistics"]["avg"] == 19.5
    assert got["flops_any", "node"]["series"][0]["data"][0] == sum(10.0 + hw for hw in range(8))
    assert [(s["id"], s["data"][0]) for s in got["mem_bw", "socket"]["series"]] == [("0", 10.0), ("1", 20.0)]
    # subcluster scope: c4-gpu from the store, c4's main subcluster from the front's own shared memory
    assert job_series(front, "c4gpu")["cpu_load", "node"]["series"][0]["data"][0] == 30.0
    assert job_series(front, "c4main")["cpu_load", "node"]["series"][0]["data"][0] == 40.0


def test_rest_job_data_from_the_store(front):
    r = rest(front, "GET", f"/api/jobs/{front.ids['c1']}?all-metrics=true")
    assert r.status_code == 200, r.text
    data = r.json()["Data"]
    assert data["cpu_load"]["node"]["series"][0]["data"][:3] == [10.0, 11.0, 12.0]
    assert data["flops_any"]["core"]["series"][0]["data"][0] == 10.0 + 11.0  # hwthreads 0+1 of core 0
    r = rest(front, "GET", f"/api/jobs/metrics/{front.ids['c1']}?metric=mem_bw&scope=node")
    assert r.json()["data"]["jobMetrics"][0]["metric"]["series"][0]["data"][0] == 30.0


def test_store_errors_name_the_url(front, store):
    doc = gql(front, JOB_METRICS, {"id": str(front.ids["c2"]), "m": ["cpu_load"], "s": ["node"]})
    msg = doc["errors"][0]["message"]
    assert f"external metric store {store.web} (/api/query): HTTP 401" in msg and "token" in msg
    doc = gql(front, JOB_METRICS, {"id": str(front.ids["c3"]), "m": ["cpu_load"], "s": ["node"]})
    assert f"external metric store {front.closed_url} (/api/query): not reachable" in doc["errors"][0]["message"]
    r = rest(front, "GET", f"/api/jobs/{front.ids['c3']}?all-metrics=true")
    assert r.status_code == 502 and front.closed_url in r.json()["error"] and "Traceback" not in r.text
    r = rest(front, "GET", f"/api/jobs/metrics/{front.ids['c3']}")  # cc-backend's shape: data null, error message
    assert r.status_code == 200 and r.json()["data"] is None and front.closed_url in r.json()["error"]["message"]
    q = "query($from: Time!, $to: Time!) { nodeMetrics(cluster: \"c3\", from: $from, to: $to) { host } }"
    assert front.closed_url in gql(front, q, SPAN)["errors"][0]["message"]
    assert "not reachable" in (front.root / "var/log/web.log").read_text()  # logged once, as a warning


def test_node_views_from_the_stores(front):
    q = ("query($c: String!, $n: [String!], $from: Time!, $to: Time!) { nodeMetrics(cluster: $c, nodes: $n, "
         "metrics: [\"cpu_load\", \"mem_bw\"], scopes: [\"node\", \"socket\"], from: $from, to: $to) "
         "{ host subCluster metrics { name scope metric { series { id data } } } } }")
    got = {n["host"]: n for n in gql(front, q, {"c": "c1", "n": None, **SPAN})["data"]["nodeMetrics"]}
    assert sorted(got) == ["n01", "n02"]  # the store's hosts (for-all-nodes), front holds none of c1
    m = {(x["name"], x["scope"]): x["metric"] for x in got["n02"]["metrics"]}
    assert m["cpu_load", "node"]["series"][0]["data"][0] == 20.0
    assert [s["data"][0] for s in m["mem_bw", "socket"]["series"]] == [20.0, 40.0]
    # c4: g01 from the store (c4-gpu), n01 from the front; the store's n05 belongs to the front's subcluster
    got = {n["host"]: n for n in gql(front, q, {"c": "c4", "n": None, **SPAN})["data"]["nodeMetrics"]}
    assert sorted(got) == ["g01", "n01"]
    assert got["g01"]["subCluster"] == "gpu"
    first = {h: next(x for x in n["metrics"] if x["name"] == "cpu_load")["metric"]["series"][0]["data"][0]
             for h, n in got.items()}
    assert first == {"g01": 30.0, "n01": 40.0}
    q = ("query($from: Time!, $to: Time!) { nodeMetricsList(cluster: \"c4\", subCluster: \"\", stateFilter: \"all\", "
         "nodeFilter: \"\", metrics: [\"cpu_load\"], from: $from, to: $to) { items { host metrics { name } } } }")
    items = gql(front, q, SPAN)["data"]["nodeMetricsList"]["items"]
    assert {i["host"]: bool(i["metrics"]) for i in items}["g01"] is True
    cm = gql(front, "query($from: Time!, $to: Time!) { clusterMetrics(cluster: \"c1\", metrics: [\"cpu_load\"], "
                    "from: $from, to: $to) { nodeCount metrics { name data } } }", SPAN)["data"]["clusterMetrics"]
    assert cm["nodeCount"] == 2 and cm["metrics"][0]["data"][0] == round((10 + 20) / 1e12, 2)


def test_node_health_from_the_store(front, store):
    ingest(store, [f"cpu_load,cluster=c1,hostname=n01,type=node value=1 {int(time.time())}"])  # fresh: healthy
    r = rest(front, "POST", "/api/nodestate/", {"cluster": "c1", "nodes": [
        {"hostname": "n01", "states": ["allocated"]}, {"hostname": "n09", "states": ["idle"]}]}, user="adapter")
    assert r.status_code == 200, r.text
    r = rest(front, "POST", "/api/nodestate/", {"cluster": "c3", "nodes": [
        {"hostname": "n01", "states": ["allocated"]}]}, user="adapter")
    assert r.status_code == 200, r.text  # the store is down: the state is recorded, health 'failed'
    conn = connect(front.cfg.db_path)
    try:
        rows = conn.execute("SELECT n.cluster, n.hostname, s.health_state, s.health_metrics FROM node n "
                            "JOIN node_state s ON s.node_id = n.id").fetchall()
    finally:
        conn.close()
    health = {(c, h): (st, orjson.loads(m) if m else None) for c, h, st, m in rows}
    state, metrics = health["c1", "n01"]
    assert state == "partial" and "mem_used" in metrics["missing"] and "flops_any" in metrics["degraded"]
    assert "cpu_load" not in metrics["missing"] + metrics["degraded"]
    assert health["c1", "n09"][0] == "failed"  # the store holds nothing of it
    assert health["c3", "n01"] == ("failed", None)


async def test_live_points_from_the_store(front, store):
    cookie = httpx.post(front.web + "/login", json={"username": "alice", "password": "pw-alice"}).cookies["session"]
    url = front.web.replace("http://", "ws://") + "/ws/live"
    headers = [(b"Cookie", f"session={cookie}".encode()), (b"Origin", front.web.encode())]
    async with open_websocket_url(url, extra_headers=headers) as ws:
        await ws.send_message(orjson.dumps({"op": "subscribe", "key": "k", "job": front.ids["c1"],
                                            "metrics": ["cpu_load"], "have": {"cpu_load": 20}}).decode())
        with trio.fail_after(30):
            got = orjson.loads(await ws.get_message())
        assert got["type"] == "points" and got["index"] == 17 and got["series"][0]["data"][:3] == [27.0, 28.0, 29.0]
        t = (int(time.time()) // 10 + 1) * 10
        ingest(store, [f"cpu_load,cluster=c1,hostname=n01,type=node value=77.5 {t}"])
        with trio.fail_after(30):
            while True:
                got = orjson.loads(await ws.get_message())
                if got["type"] == "points" and got["series"][0]["data"][-1] == 77.5:
                    break
        await ws.send_message(orjson.dumps({"op": "subscribe", "key": "down", "job": front.ids["c3"],
                                            "metrics": ["cpu_load"]}).decode())
        with trio.fail_after(30):
            while (got := orjson.loads(await ws.get_message())).get("key") != "down":
                pass
        assert got["type"] == "error" and got["retrying"] is True and front.closed_url in got["message"]


def test_archiving_reads_the_store(front):
    stop(front, 1, "c1", T0 + 200)
    stop(front, 4, "c4", T0 + 200)
    stop(front, 3, "c3", T0 + 200)

    def status(db_id):
        conn = connect(front.cfg.db_path)
        try:
            return conn.execute("SELECT monitoring_status FROM job WHERE id = ?", (db_id,)).fetchone()[0]
        finally:
            conn.close()

    wait_for(lambda: status(front.ids["c1"]) == 3 and status(front.ids["c4gpu"]) == 3, what="archiving")
    arch = JobArchive(front.cfg.archive_path)
    data = arch.load_data("c1", 1, T0)
    assert data["cpu_load"]["node"]["series"][0]["data"] == [10.0 + k for k in range(20)]
    assert data["flops_any"]["hwthread"]["series"][3]["data"][0] == 13.0
    assert arch.load_meta("c1", 1, T0)["statistics"]["cpu_load"]["avg"] == 19.5
    assert arch.load_data("c4", 4, T0)["cpu_load"]["node"]["series"][0]["data"][0] == 30.0

    def failure():
        st = trio.run(ipc.request, front.cfg.run_dir / "archiver.sock", {"cmd": "status"})
        return [e for e in st["lastErrors"] if e["jobId"] == 3]

    err = wait_for(failure, what="a recorded archiving failure")[0]["error"]
    assert front.closed_url in err and "not reachable" in err
    assert status(front.ids["c3"]) == 1  # still queued: retried, not given up


def test_front_store_holds_nothing_of_external_clusters(front):
    doc = rest(front, "GET", "/api/debug").json()
    assert set(doc["clusters"]) == {"c4"} and doc["clusters"]["c4"]["hosts"] == 1


# -- the client alone ------------------------------------------------------------------------

def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


async def test_external_answers_like_the_builtin_store(store):
    """The same requests through HTTP and straight from the store's shared memory give the same answers."""
    shm = Store.attach(store.instance)
    clusters = load_clusters(store.cfg.archive_path)
    builtin = BuiltinSource(shm, lambda: MetricCatalog(clusters, store.cfg.metrics))
    ext = ExternalSource(store.web, store.token("t", ["api"]))
    requests = [
        QueryRequest("c1", T0, NOW, [Query("cpu_load", "n01"), Query("flops_any", "n01", "core", ["0", "1"]),
                                     Query("flops_any", "n02", "socket", ["0", "1"], aggreg=True),
                                     Query("mem_bw", "n01", "node"), Query("cpu_load", "nope")]),
        QueryRequest("c1", T0, NOW, [Query("flops_any", "n01", "hwthread", ["0", "7"], resolution=60)],
                     with_stats=False),
        QueryRequest("c1", T0, NOW, [Query("cpu_load", "n02", resolution=20)], with_padding=False),
        QueryRequest("c1", T0, NOW, for_all_nodes=["cpu_load"], with_data=False),
    ]
    try:
        for req in requests:
            a = await builtin.query(req, minimum_points=5)  # the store's main.resampling.minimum-points
            b = await ext.query(req)
            assert _close(a, b), (req, a, b)
        assert await ext.hosts("c1", "cpu_load") == ["n01", "n02"]
        health = await ext.health("c1", ["n01", "zz"], ["cpu_load", "mem_used"])
        assert health["n01"]["State"] == "partial" and health["zz"]["State"] == "failed"
    finally:
        await ext.aclose()
        shm.close()


async def test_timeouts_and_bad_answers_are_clear_errors():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (kernel backlog), never answers
    silent = f"http://127.0.0.1:{listener.getsockname()[1]}"

    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        body = b'{"results": [[{"data": ["x"]}]]}'
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                              % (len(body), body))
        await stream.aclose()

    req = QueryRequest("c1", T0, NOW, [Query("cpu_load", "n01")])
    try:
        src = ExternalSource(silent, "", timeout=0.5)
        with pytest.raises(MetricSourceError, match=rf"{silent} \(/api/query\): no answer within 0.5 s"):
            await src.query(req)
        await src.aclose()
        async with trio.open_nursery() as nursery:
            servers = await nursery.start(functools.partial(trio.serve_tcp, garbage, 0, host="127.0.0.1"))
            url = f"http://127.0.0.1:{servers[0].socket.getsockname()[1]}"
            src = ExternalSource(url, "")
            with pytest.raises(MetricSourceError, match=r"unexpected answer: results\[0\]: could not convert"):
                await src.query(req)
            with pytest.raises(MetricSourceError, match=r"unexpected answer: 1 results for 2 queries"):
                await src.query(QueryRequest("c1", T0, NOW, [Query("cpu_load", "n01"), Query("cpu_load", "n02")]))
            await src.aclose()
            nursery.cancel_scope.cancel()
    finally:
        listener.close()
