"""cc-backend's REST job API against the real supervisor: payloads, status codes, roles, sessions."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.graphql_helpers import NOW, USERS
from tests.helpers import Installation, running, small_cluster


def two_subclusters() -> dict:
    c = small_cluster("c1")
    gpu = orjson.loads(orjson.dumps(c["subClusters"][0]))
    gpu["name"], gpu["nodes"] = "gpu", "g[01-04]"
    c["subClusters"][0]["nodes"] = "*"
    c["subClusters"].insert(0, gpu)
    return c


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("rest"), ingest_workers=1, clusters={"c1": two_subclusters()}) as i:
        for name, roles in USERS.items():
            r = i.cli("add-user", f"{name}:{','.join(roles)}:pw-{name}")
            assert r.returncode == 0, r.stderr
        r = api(i, "POST", "/api/user/mgr", "admin", json={"add-project": "p1"})
        assert r.status_code == 200, r.text
        yield i


def api(inst: Installation, method: str, path: str, user: str | None = "adapter", *, json=None, content=None,
        params=None, token: str | None = None) -> httpx.Response:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    elif user is not None:
        headers["Authorization"] = f"Bearer {inst.token(user, USERS[user])}"
    if json is not None:
        content = orjson.dumps(json)
    return httpx.request(method, inst.web + path, headers=headers, content=content, params=params, timeout=30)


def payload(job_id: int, user="alice", project="p1", hosts=("n01",), start=None, **extra) -> dict:
    d = {"jobId": job_id, "user": user, "project": project, "cluster": "c1", "partition": "main",
         "numNodes": len(hosts), "numHwthreads": 8 * len(hosts), "startTime": start or NOW - 600,
         "walltime": 3600, "resources": [{"hostname": h} for h in hosts],
         "metaData": {"jobName": f"job{job_id}", "jobScript": "#!/bin/sh\nsleep 1"}}
    d.update(extra)
    return d


def start(inst, job_id: int, **kw) -> int:
    r = api(inst, "POST", "/api/jobs/start_job/", json=payload(job_id, **kw))
    assert r.status_code == 201, r.text
    assert r.json()["msg"] == "success"
    return r.json()["id"]


def test_start_assigns_subcluster_and_refuses_duplicates(inst):
    db_id = start(inst, 1001, hosts=("g02", "g03"))
    job = api(inst, "GET", f"/api/jobs/{db_id}").json()["Meta"]
    assert job["subCluster"] == "gpu" and job["jobState"] == "running" and job["numNodes"] == 2
    assert job["metaData"]["jobName"] == "job1001"
    assert api(inst, "GET", f"/api/jobs/{start(inst, 1002, hosts=('n07',))}").json()["Meta"]["subCluster"] == "main"
    r = api(inst, "POST", "/api/jobs/start_job/", json=payload(1001, hosts=("g02", "g03"), start=NOW - 300))
    assert r.status_code == 422 and "already exists" in r.json()["error"]
    assert r.json()["status"] == "Unprocessable Entity"
    # a day later the same jobId may start again (ids wrap around on real clusters)
    start(inst, 1001, hosts=("g02",), start=NOW - 600 + 86400 + 10)


@pytest.mark.parametrize("change,needle", [
    ({"jobId": None}, "'jobId' is required"),
    ({"jobId": "12"}, "'jobId' must be an integer"),
    ({"user": ""}, "'user' must not be empty"),
    ({"cluster": "nope"}, "no such cluster 'nope'"),
    ({"cluster": "../x"}, "not a valid cluster name"),
    ({"resources": []}, "'resources' must be a non-empty list"),
    ({"resources": [{"hostname": "a/../b"}]}, "resources[0].hostname"),
    ({"resources": [{"hostname": "n01", "hwthreads": ["x"]}]}, "resources[0].hwthreads"),
    ({"numNodes": 3}, "'numNodes' is 3 but 'resources' lists 1 hosts"),
    ({"shared": "maybe"}, "'shared' must be one of"),
    ({"subCluster": "nope"}, "'subCluster': 'nope' is not a subcluster"),
    ({"metaData": {"jobName": 5}}, "'metaData' must be an object of string values"),
    ({"startTime": -5}, "'startTime' must be >= 1"),
])
def test_bad_start_payloads_name_the_field(inst, change, needle):
    doc = payload(2000)
    doc.update(change)
    if change.get("jobId", 0) is None:
        del doc["jobId"]
    r = api(inst, "POST", "/api/jobs/start_job/", json=doc)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert not api(inst, "GET", "/api/jobs/", params={"cluster": "c1", "items-per-page": 500}).json()["jobs"] or \
        all(j["jobId"] != 2000 for j in api(inst, "GET", "/api/jobs/", params={"items-per-page": 500}).json()["jobs"])


def test_not_json_is_400(inst):
    r = api(inst, "POST", "/api/jobs/start_job/", content=b"{nope")
    assert r.status_code == 400 and "parsing request body failed" in r.json()["error"]


def test_stop_job_rules(inst):
    db_id = start(inst, 3001, start=NOW - 1000)
    r = api(inst, "POST", "/api/jobs/stop_job/", json={"jobId": 3001, "cluster": "c1", "stopTime": NOW - 2000})
    assert r.status_code == 400 and "must be larger/equal" in r.json()["error"]
    r = api(inst, "POST", "/api/jobs/stop_job/", json={"jobId": 3001, "cluster": "c1", "stopTime": NOW,
                                                        "jobState": "exploded"})
    assert r.status_code == 400
    r = api(inst, "POST", "/api/jobs/stop_job/", json={"jobId": 3001, "cluster": "c1", "startTime": NOW - 1000,
                                                        "stopTime": NOW - 100, "jobState": "timeout"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["id"] == db_id and job["jobState"] == "timeout" and job["duration"] == 900
    r = api(inst, "POST", "/api/jobs/stop_job/", json={"jobId": 3001, "cluster": "c1", "stopTime": NOW})
    assert r.status_code == 422 and "already been stopped" in r.json()["error"]
    r = api(inst, "POST", "/api/jobs/stop_job/", json={"jobId": 999999, "cluster": "c1", "stopTime": NOW})
    assert r.status_code == 404
    r = api(inst, "POST", "/api/jobs/stop_job/", json={"cluster": "c1", "stopTime": NOW})
    assert r.status_code == 400 and "jobId" in r.json()["error"]
    r = api(inst, "POST", "/api/jobs/stop_job/", json={"jobId": 3001, "cluster": "c1"})
    assert r.status_code == 400 and "stopTime" in r.json()["error"]


def test_job_list_filters_paging_and_visibility(inst):
    base = 4000
    ids = {}
    for k, (user, project) in enumerate([("alice", "p1"), ("bob", "p1"), ("bob", "p2"), ("carol", "p3")]):
        ids[user, project] = start(inst, base + k, user=user, project=project, start=NOW - 5000 + k)
    api(inst, "POST", "/api/jobs/stop_job/", json={"jobId": base + 3, "cluster": "c1", "stopTime": NOW - 100})

    def listed(user, **params):  # people through the user API, services through /api (needs the api role)
        base_path = "/api/jobs/" if "api" in USERS[user] else "/userapi/jobs/"
        r = api(inst, "GET", base_path, user, params={"items-per-page": 1000, **params})
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["jobs"]}

    mine = set(ids.values())
    assert listed("alice") & mine == {ids["alice", "p1"]}
    assert listed("bob") & mine == {ids["bob", "p1"], ids["bob", "p2"]}
    assert listed("mgr") & mine == {ids["alice", "p1"], ids["bob", "p1"]}
    for who in ("sup", "admin", "adapter"):
        assert listed(who) & mine == mine
    assert listed("admin", state="running") & mine == mine - {ids["carol", "p3"]}
    assert listed("admin", state="completed") & mine == {ids["carol", "p3"]}
    assert listed("admin", project="p2") & mine == {ids["bob", "p2"]}
    assert listed("admin", **{"start-time": f"{NOW - 5000}-{NOW - 4999}"}) & mine == {ids["alice", "p1"],
                                                                                       ids["bob", "p1"]}
    r = api(inst, "GET", "/api/jobs/", "admin", params={"items-per-page": 2, "page": 1})
    doc = r.json()
    assert doc["items"] == 2 and doc["page"] == 1 and len(doc["jobs"]) == 2
    starts = [j["startTime"] for j in api(inst, "GET", "/api/jobs/", "admin", params={"items-per-page": 50}).json()["jobs"]]
    assert starts == sorted(starts, reverse=True)
    assert "metaData" not in doc["jobs"][0] or doc["jobs"][0]["metaData"] is None
    withmeta = api(inst, "GET", "/api/jobs/", "admin", params={"with-metadata": "true", "items-per-page": 1}).json()
    assert withmeta["jobs"][0]["metaData"]["jobName"].startswith("job")
    for bad in ({"state": "nope"}, {"start-time": "x"}, {"page": "0"}, {"foo": "1"}):
        assert api(inst, "GET", "/api/jobs/", "admin", params=bad).status_code == 400
    # a plain user cannot read another user's job by id
    assert api(inst, "GET", f"/userapi/jobs/{ids['bob', 'p1']}", "alice").status_code == 422
    assert api(inst, "GET", f"/userapi/jobs/{ids['bob', 'p1']}", "mgr").status_code == 200


def test_job_data_of_a_running_job_comes_from_shared_memory(inst):
    t0 = (NOW // 10) * 10 - 300
    db_id = start(inst, 5001, hosts=("n05",), start=t0)
    lines = [f"cpu_load,cluster=c1,hostname=n05,type=node value={k} {t0 + 10 * k}" for k in range(20)]
    lines += [f"flops_any,cluster=c1,hostname=n05,type=hwthread,type-id={hw} value={hw} {t0 + 10 * k}"
              for k in range(20) for hw in range(8)]
    assert inst.write("\n".join(lines)).status_code == 200
    r = api(inst, "GET", f"/api/jobs/{db_id}", "admin", params={"all-metrics": "true"})
    assert r.status_code == 200, r.text
    data = r.json()["Data"]
    node_load = data["cpu_load"]["node"]
    assert node_load["timestep"] == 10 and node_load["series"][0]["hostname"] == "n05"
    assert node_load["series"][0]["data"][:5] == [0, 1, 2, 3, 4]
    cores = data["flops_any"]["core"]["series"]  # single-node job: core scope, derived from hwthreads
    assert sorted(s["id"] for s in cores) == ["0", "1", "2", "3"]
    assert {s["id"]: s["data"][0] for s in cores}["1"] == 2 + 3
    r = api(inst, "POST", f"/api/jobs/{db_id}", "admin", json=["cpu_load"])
    assert [(m["name"], m["scope"]) for m in r.json()["Data"]] == [("cpu_load", "node")]
    r = api(inst, "GET", f"/api/jobs/metrics/{db_id}", "admin", params={"metric": "flops_any", "scope": "node"})
    jm = r.json()["data"]["jobMetrics"]
    assert jm[0]["name"] == "flops_any" and jm[0]["scope"] == "node"
    assert jm[0]["metric"]["series"][0]["data"][0] == sum(range(8))


def test_tags_metadata_delete_and_used_nodes(inst):
    db_id = start(inst, 6001, hosts=("n06", "n16"))
    r = api(inst, "POST", f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "gromacs"},
                                                              {"type": "issue", "name": "slow", "scope": "admin"}])
    assert r.status_code == 200, r.text
    assert {(t["type"], t["name"], t["scope"]) for t in r.json()["tags"]} == {("app", "gromacs", "global"),
                                                                               ("issue", "slow", "admin")}
    # the admin-scoped tag is hidden from the job's user
    alice_view = api(inst, "GET", f"/userapi/jobs/{db_id}", "alice").json()["Meta"]
    assert [t["name"] for t in alice_view["tags"]] == ["gromacs"]
    r = api(inst, "DELETE", f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "gromacs"}])
    assert [t["name"] for t in r.json()["tags"]] == ["slow"]
    assert api(inst, "POST", f"/api/jobs/tag_job/{db_id}", json=[{"type": ""}]).status_code == 400
    r = api(inst, "PATCH", f"/api/jobs/edit_meta/{db_id}", json={"key": "note", "value": "checked"})
    assert r.status_code == 200 and r.json()["metaData"]["note"] == "checked"
    r = api(inst, "PATCH", "/api/jobs/edit_meta/", json={"jobId": 6001, "cluster": "c1",
                                                          "payload": {"key": "note", "value": "again"}})
    assert r.json()["metaData"]["note"] == "again"
    used = api(inst, "GET", "/api/jobs/used_nodes", params={"ts": NOW + 10}).json()["usedNodes"]
    assert {"n06", "n16"} <= set(used["c1"])
    assert api(inst, "GET", "/api/jobs/used_nodes").status_code == 400
    r = api(inst, "DELETE", "/api/jobs/delete_job/", json={"jobId": 6001, "cluster": "c1"})
    assert r.status_code == 200 and r.json()["msg"] == f"Successfully deleted job {db_id}"
    assert api(inst, "GET", f"/api/jobs/{db_id}").status_code == 422
    assert api(inst, "DELETE", f"/api/jobs/delete_job/{db_id}").status_code == 404
    old = start(inst, 6002, start=NOW - 10 * 86400)
    r = api(inst, "DELETE", f"/api/jobs/delete_job_before/{NOW - 9 * 86400}")
    assert r.status_code == 200 and r.json()["msg"].startswith("Successfully deleted")
    assert api(inst, "GET", f"/api/jobs/{old}").status_code == 422


def test_clusters_users_and_nodestate(inst):
    clusters = api(inst, "GET", "/api/clusters/", "alice").json()["clusters"]
    assert [c["name"] for c in clusters] == ["c1"]
    assert api(inst, "GET", "/api/clusters/", "alice", params={"cluster": "x"}).status_code == 400
    users = api(inst, "GET", "/api/users/", "admin", params={"not-just-user": "true"}).json()
    mgr = next(u for u in users if u["username"] == "mgr")
    assert mgr["roles"] == ["manager"] and mgr["projects"] == ["p1"]
    assert {u["username"] for u in api(inst, "GET", "/api/users/", "admin").json()} >= {"admin", "mgr", "sup"}
    r = api(inst, "POST", "/api/user/alice", "admin", json={"add-role": "support"})
    assert r.status_code == 200 and r.json()["msg"] == "Add Role Success for user alice"
    r = api(inst, "POST", "/api/user/alice", "admin", json={"add-role": "support"})
    assert r.status_code == 422
    r = api(inst, "POST", "/api/user/alice", "admin", json={"add-role": "wizard"})
    assert r.status_code == 422 and "unknown role" in r.json()["error"]
    api(inst, "POST", "/api/user/alice", "admin", json={"remove-role": "support"})
    r = api(inst, "POST", "/api/user/nobody", "admin", json={"add-role": "user"})
    assert r.status_code == 422
    r = api(inst, "POST", "/api/nodestate/", json={"cluster": "c1", "nodes": [
        {"hostname": "n01", "states": ["allocated"], "cpusAllocated": 8, "jobsRunning": 1},
        {"hostname": "n02", "states": ["idle", "down"]}]})
    assert r.status_code == 200, r.text
    from cc.db import connect
    from cc.db._nodes import latest_node_states

    states = {s["hostname"]: s for s in latest_node_states(connect(inst.cfg.db_path), "c1")}
    assert states["n01"]["schedulerState"] == "allocated" and states["n01"]["cpusAllocated"] == 8
    assert states["n02"]["schedulerState"] == "down" and states["n02"]["healthState"] == "full"
    assert states["n01"]["healthState"] in ("failed", "partial", "full")


# (method, path, body) -> expected status for each role; "ok" = 2xx
ROLE_MATRIX = [
    ("POST", "/api/jobs/start_job/", "start", {"adapter": "ok", "admin": "ok", "alice": 403, "mgr": 403,
                                                "sup": 403}),
    ("POST", "/api/jobs/stop_job/", "stop", {"adapter": 404, "admin": 404, "alice": 403, "mgr": 403,
                                              "sup": 403}),
    ("GET", "/api/jobs/", None, {"adapter": "ok", "admin": "ok", "alice": 403, "mgr": 403, "sup": 403}),
    ("GET", "/userapi/jobs/", None, {"adapter": "ok", "admin": "ok", "alice": "ok", "mgr": "ok", "sup": "ok"}),
    ("GET", "/api/jobs/999999", None, {"adapter": 422, "alice": 403}),
    ("GET", "/userapi/jobs/999999", None, {"adapter": 422, "alice": 422}),
    ("GET", "/userapi/jobs/metrics/999999", None, {"adapter": 422, "alice": 422}),
    ("DELETE", "/api/tags/", "tagdel", {"adapter": "ok", "admin": "ok", "alice": 403, "sup": 403}),
    ("GET", "/api/jobs/used_nodes?ts=1", None, {"adapter": "ok", "admin": "ok", "alice": 403, "mgr": 403,
                                                 "sup": 403}),
    ("POST", "/api/jobs/tag_job/999999", "tags", {"adapter": 404, "admin": 404, "alice": 403, "sup": 403}),
    ("PATCH", "/api/jobs/edit_meta/999999", "meta", {"adapter": 404, "alice": 403}),
    ("DELETE", "/api/jobs/delete_job/999999", None, {"adapter": 404, "admin": 404, "alice": 403, "sup": 403}),
    ("DELETE", "/api/jobs/delete_job_before/1", None, {"adapter": "ok", "alice": 403, "mgr": 403}),
    ("GET", "/api/clusters/", None, {"adapter": "ok", "alice": "ok", "sup": "ok"}),
    ("GET", "/api/users/", None, {"admin": "ok", "adapter": 403, "alice": 403, "mgr": 403, "sup": 403}),
    ("POST", "/api/user/bob", "role", {"admin": "ok", "adapter": 403, "alice": 403, "sup": 403}),
    ("POST", "/api/nodestate/", "nodes", {"adapter": "ok", "admin": "ok", "alice": 403, "sup": 403}),
]
BODIES = {
    "start": None, "stop": {"jobId": 987654, "cluster": "c1", "stopTime": NOW},
    "tags": [{"type": "a", "name": "b"}], "meta": {"key": "k", "value": "v"}, "role": {"add-role": "user"},
    "nodes": {"cluster": "c1", "nodes": []}, "tagdel": [],
}


@pytest.mark.parametrize("method,path,body,expect", ROLE_MATRIX, ids=[f"{m} {p}" for m, p, _, _ in ROLE_MATRIX])
def test_role_matrix(inst, method, path, body, expect):
    counter = iter(range(100))
    for user, status in expect.items():
        doc = BODIES.get(body) if body else None
        if body == "start":
            doc = payload(900000 + hash((path, user)) % 1000 + next(counter))
        if body == "role":
            doc = {"add-role": "manager"} if user == "admin" else doc
        r = api(inst, method, path, user, json=doc)
        if status == "ok":
            assert 200 <= r.status_code < 300, (user, r.status_code, r.text)
        else:
            assert r.status_code == status, (user, r.status_code, r.text)
        if body == "role" and user == "admin":
            api(inst, "POST", "/api/user/bob", "admin", json={"remove-role": "manager"})


def test_tokens_are_checked(inst):
    assert api(inst, "GET", "/api/jobs/", None).status_code == 401
    assert api(inst, "GET", "/api/jobs/", None, token="x.y.z").status_code == 401
    expired = inst.token("admin", USERS["admin"], max_age=-1)
    assert api(inst, "GET", "/api/jobs/", None, token=expired).status_code == 401
    import jwt as pyjwt

    hs = pyjwt.encode({"sub": "admin", "roles": ["admin", "api"], "exp": NOW + 60}, "k" * 40, algorithm="HS256")
    r = api(inst, "GET", "/api/jobs/", None, token=hs)
    assert r.status_code == 401 and "HS256" in r.json()["error"]


def test_session_login_logout_and_rate_limit(inst):
    with httpx.Client(base_url=inst.web, timeout=10) as c:
        r = c.post("/login", json={"username": "alice", "password": "pw-alice"})
        assert r.status_code == 200 and r.json()["username"] == "alice"
        assert "session" in c.cookies
        r = c.post("/logout", headers={"accept": "application/json"})
        assert r.status_code == 200
        r = c.post("/login", data={"username": "alice", "password": "pw-alice", "redirect": "//evil.example"})
        assert r.status_code == 303 and r.headers["location"] == "/"
    with httpx.Client(base_url=inst.web, timeout=10) as c:
        for _ in range(5):
            r = c.post("/login", json={"username": "bob", "password": "wrong"})
            assert r.status_code == 401
        r = c.post("/login", json={"username": "bob", "password": "pw-bob"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        r = c.post("/login", json={"username": "alice", "password": "pw-alice"})  # others are not locked out
        assert r.status_code == 200


def test_keep_alive_after_a_refused_body(inst):
    """A request refused before its body is read (no token) must not stall the next one on the connection."""
    good = {"Authorization": f"Bearer {inst.token('adapter', USERS['adapter'])}"}
    for body in (orjson.dumps(payload(99_001)), orjson.dumps(payload(99_001)) * 40):  # one piece or several
        with httpx.Client(base_url=inst.web, timeout=5) as c:
            for _ in range(30):
                r = c.post("/api/jobs/start_job/", content=body, headers={"Content-Type": "application/json"})
                assert r.status_code == 401
                r = c.get("/api/jobs/", params={"items-per-page": 1}, headers=good)
                assert r.status_code == 200, r.text


def test_web_process_indexes_footprint_values(inst):
    from cc.clusters import load_clusters
    from cc.db import connect

    keys = set().union(*(c.footprint_keys() for c in load_clusters(inst.cfg.archive_path).values()))
    assert {"cpu_load_avg", "flops_any_avg", "mem_bw_avg"} <= keys
    deadline = time.time() + 20
    while True:
        conn = connect(inst.cfg.db_path)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        finally:
            conn.close()
        if {f"jobs_footprint_{k}" for k in keys} <= names or time.time() > deadline:
            break
        time.sleep(0.2)
    assert {f"jobs_footprint_{k}" for k in keys} <= names
