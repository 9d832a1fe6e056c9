"""A sharded deployment end to end: one nats-server, two store installations each subscribed to its own
cluster's subject, and one front installation (job database, UI, archive) whose metric-store-external names
both stores.  A job on each cluster shows its plots through the front (GraphQL jobMetrics, REST
/api/jobs/{id}) and is archived with its data."""

from __future__ import annotations

import pytest
import trio

from cc.archive import JobArchive
from cc.db import connect
from cc.nats import NatsClient, parse_nats
from tests.graphql_helpers import add_users
from tests.helpers import running, small_cluster
from tests.nats_server import NatsServer
from tests.test_external_store import JOB_METRICS, T0, gql, lines, rest, start, stop, wait_for

pytestmark = pytest.mark.slow

CLUSTERS = {"ca": ("a01", "a02"), "cb": ("b01",)}
BASE = {"ca": 100, "cb": 500}


async def publish(url: str, subject: str, rows: list[str], per_message: int = 50) -> None:
    """What the cluster's collectors do: line protocol on the cluster's subject (no cluster tag)."""
    payloads = ["\n".join(rows[i:i + per_message]).encode() for i in range(0, len(rows), per_message)]
    async with NatsClient(parse_nats({"address": url}), name="collectors") as nc:
        assert await nc.wait_connected(10)
        await nc.publish_many(subject, payloads, flush_timeout=10)


def points_in(inst, cluster: str, host: str) -> int:
    r = inst.query({"cluster": cluster, "from": T0, "to": T0 + 199, "queries": [{"metric": "cpu_load", "host": host}]})
    res = r.json()["results"][0] if r.status_code == 200 else []
    return sum(v is not None for v in res[0]["data"]) if res else 0


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """nats-server; store-ca, store-cb (each: its own cluster.json and subject) and the front."""
    root = tmp_path_factory.mktemp("sharded")

    def store(name: str):
        return running(root / f"store-{name}", ingest_workers=1, clusters={name: small_cluster(name)},
                       extra_config={"nats": {"address": srv.url}, "metric-store": {
                           "nats-subscriptions": [{"subscribe-to": f"hpc.{name}", "cluster-tag": name}]}})

    with NatsServer(root / "nats") as srv, store("ca") as sa, store("cb") as sb:
        stores = {"ca": sa, "cb": sb}
        for name, inst in stores.items():
            rows = [row.replace(f",cluster={name}", "") for i, host in enumerate(CLUSTERS[name])
                    for row in lines(name, host, BASE[name] + 10 * i)]
            wait_for(lambda inst=inst, name=name: all(p.get("nats") == "connected" for p in inst.status()["processes"]
                                                      if p["name"].startswith("ingest-")), 30, f"store-{name} on NATS")
            trio.run(publish, srv.url, f"hpc.{name}", rows)
        for name, inst in stores.items():
            for host in CLUSTERS[name]:
                wait_for(lambda inst=inst, name=name, host=host: points_in(inst, name, host) == 20, 30,
                         f"the points of {host} in store-{name}")
        ext = [{"scope": name, "url": inst.web, "token": inst.token("front", ["api"])} for name, inst in stores.items()]
        with running(root / "front", ingest_workers=1, clusters={n: small_cluster(n) for n in CLUSTERS},
                     extra_config={"metric-store-external": ext}) as front:
            add_users(front)
            front.stores = stores
            front.ids = {"ca": start(front, 10, "ca", "a01"), "cb": start(front, 20, "cb", "b01")}
            r = rest(front, "POST", "/api/jobs/start_job/", {
                "jobId": 11, "user": "alice", "project": "p1", "cluster": "ca", "partition": "main", "numNodes": 2,
                "numHwthreads": 16, "startTime": T0, "walltime": 86400,
                "resources": [{"hostname": h} for h in CLUSTERS["ca"]]}, user="adapter")
            assert r.status_code == 201, r.text
            front.ids["ca2"] = r.json()["id"]
            yield front


def plots(front, key: str) -> dict:
    doc = gql(front, JOB_METRICS, {"id": str(front.ids[key]), "m": ["cpu_load", "flops_any", "mem_bw"],
                                   "s": ["node"]})
    assert not doc.get("errors"), doc["errors"]
    return {m["name"]: {s["hostname"]: s["data"][:20] for s in m["metric"]["series"]} for m in doc["data"]["jobMetrics"]}


def expected(base: float) -> dict:
    return {"cpu_load": [base + k for k in range(20)], "flops_any": [sum(base + hw for hw in range(8))] * 20,
            "mem_bw": [base * 3] * 20}


def test_each_cluster_plots_through_the_front(site):
    a, b, a2 = plots(site, "ca"), plots(site, "cb"), plots(site, "ca2")
    assert {m: s["a01"] for m, s in a.items()} == expected(100)
    assert {m: s["b01"] for m, s in b.items()} == expected(500)
    assert {m: s["a02"] for m, s in a2.items()} == expected(110) and set(a2["cpu_load"]) == {"a01", "a02"}
    r = rest(site, "GET", f"/api/jobs/{site.ids['cb']}?all-metrics=true")
    assert r.status_code == 200 and r.json()["Data"]["cpu_load"]["node"]["series"][0]["data"][0] == 500.0
    r = rest(site, "POST", f"/api/jobs/{site.ids['ca2']}", ["mem_bw"])
    assert r.status_code == 200
    series = r.json()["Data"][0]["metric"]["series"]
    assert {s["hostname"]: s["data"][0] for s in series} == {"a01": 300.0, "a02": 330.0}
    # the front's own store holds nothing: every point came from the store installations
    assert rest(site, "GET", "/api/debug").json()["clusters"] == {}


def test_finished_jobs_are_archived_from_their_stores(site):
    live = {k: plots(site, k) for k in site.ids}
    stop(site, 10, "ca", T0 + 200)
    stop(site, 11, "ca", T0 + 200)
    stop(site, 20, "cb", T0 + 200)

    def archived() -> bool:
        conn = connect(site.cfg.db_path)
        try:
            marks = ",".join("?" * len(site.ids))
            rows = conn.execute(f"SELECT monitoring_status FROM job WHERE id IN ({marks})", list(site.ids.values()))
            return all(s == 3 for (s,) in rows)
        finally:
            conn.close()

    wait_for(archived, timeout=90, what="the archiver of the front")
    arch = JobArchive(site.cfg.archive_path)
    assert arch.load_data("cb", 20, T0)["cpu_load"]["node"]["series"][0]["data"] == expected(500)["cpu_load"]
    meta = arch.load_meta("ca", 11, T0)
    assert meta["statistics"]["cpu_load"]["avg"] == pytest.approx((109.5 + 119.5) / 2)
    assert meta["footprint"]["flops_any_avg"] == pytest.approx((sum(100 + hw for hw in range(8))
                                                               + sum(110 + hw for hw in range(8))) / 2)
    # now served from the front's archive: the same plots as while the jobs ran, even with a store gone
    site.stores["cb"].stop()
    assert {k: plots(site, k) for k in site.ids} == live
