"""GraphQL API (POST /query) against the real supervisor: auth, errors, jobs, filters, order, paging, roles, tags."""

from __future__ import annotations

import time

import httpx
import pytest
import trio
from graphql import build_schema, execute, parse

from cc.webd.graphql.executor import TrioExecutor
from tests.graphql_helpers import (
    NOW,
    USERS,
    add_users,
    cluster_doc,
    data,
    errors,
    gql,
    rest,
    set_archived,
    settle_archiver,
    start_job,
    stop_job,
)
from tests.helpers import running

JOB_FIELDS = "id jobId user project cluster subCluster startTime duration numNodes numHWThreads numAcc state " \
             "partition arrayJobId shared SMT walltime monitoringStatus energy metaData"


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("gql"), ingest_workers=1, clusters={"c1": cluster_doc()},
                 extra_config={"main": {"dev": True}}) as i:
        add_users(i)
        ids = {
            "j1": start_job(i, 101, "alice", "p1", ("n01",), NOW - 3600, metaData={"jobName": "interactive"}),
            "j2": start_job(i, 102, "bob", "p1", ("n02", "n03"), NOW - 2 * 86400, partition="batch",
                            metaData={"jobName": "sim-a"}),
            "j3": start_job(i, 103, "bob", "p2", ("g01",), NOW - 10 * 86400, numAcc=2,
                            resources=[{"hostname": "g01", "accelerators": ["00000000:01:00.0", "00000000:02:00.0"]}],
                            metaData={"jobName": "train_x"}),
            "j4": start_job(i, 1104, "carol", "p3", ("n04",), NOW - 40 * 86400, shared="multi_user",
                            arrayJobId=77),
            "j5": start_job(i, 105, "alice", "p3", ("n01",), NOW - 1800, shared="single_user"),
        }
        stop_job(i, 102, NOW - 2 * 86400 + 7200)
        stop_job(i, 103, NOW - 10 * 86400 + 100, "failed")
        stop_job(i, 1104, NOW - 39 * 86400)
        settle_archiver(i, [ids["j2"], ids["j3"], ids["j4"]])
        set_archived(i, ids["j2"], {"cpu_load_avg": 30.0, "flops_any_avg": 55.0, "mem_bw_avg": 80.0, "net_bw_avg": 3.0},
                     12.5,
                     {"acc_power": 1.5, "cpu_power": 2.0, "disk": 0.5})
        set_archived(i, ids["j3"], {"cpu_load_avg": 90.0, "flops_any_avg": 5.0, "mem_bw_avg": 100.0}, 3.0)
        set_archived(i, ids["j4"], {"cpu_load_avg": 10.0, "mem_bw_avg": 150.0, "net_bw_avg": 7.0}, 100.0)
        i.ids = ids
        yield i


def job_ids(inst, filters, user="admin", order=None) -> list[int]:
    d = data(inst, "query($f: [JobFilter!], $o: OrderByInput) { jobs(filter: $f, order: $o, "
                   "page: {itemsPerPage: -1, page: 1}) { items { id } count } }", {"f": filters, "o": order}, user)
    ids = [int(j["id"]) for j in d["jobs"]["items"]]
    assert d["jobs"]["count"] == len(ids)
    return ids


def job(inst, db_id: int, fields: str, user: str = "admin") -> dict:
    return data(inst, "query($id: ID!) { job(id: $id) { " + fields + " } }", {"id": db_id}, user)["job"]


def names(inst, ids: list[int]) -> set[str]:
    return {k for k, v in inst.ids.items() if v in ids}


# -- transport, auth, errors ------------------------------------------------------------------

def test_needs_session_or_jwt(inst):
    r = gql(inst, "{ tags { id } }", user=None)
    assert r.status_code == 401 and "not logged in" in r.json()["error"]
    assert gql(inst, "{ tags { id } }", token="x.y.z").status_code == 401
    with httpx.Client(base_url=inst.web, timeout=10) as c:
        assert c.post("/login", json={"username": "alice", "password": "pw-alice"}).status_code == 200
        r = gql(inst, "{ jobs { count items { user } } }", user=None, client=c)
        assert r.status_code == 200, r.text
        assert {j["user"] for j in r.json()["data"]["jobs"]["items"]} == {"alice"}


def test_request_and_document_errors(inst):
    headers = {"Authorization": f"Bearer {inst.token('admin', USERS['admin'])}"}
    r = httpx.post(inst.web + "/query", content=b"{nope", headers=headers)
    assert r.status_code == 400 and "not JSON" in r.json()["errors"][0]["message"]
    r = httpx.post(inst.web + "/query", json={"variables": {}}, headers=headers)
    assert r.status_code == 400 and "'query'" in r.json()["errors"][0]["message"]
    r = httpx.post(inst.web + "/query", json={"query": "{" + " " * 100_000 + "}"}, headers=headers)
    assert r.status_code == 400 and "longer than" in r.json()["errors"][0]["message"]
    r = gql(inst, "{ jobs { nope } }")
    assert r.status_code == 422 and "Cannot query field 'nope'" in r.json()["errors"][0]["message"]
    r = gql(inst, "{ jobs(")
    assert r.status_code == 422 and "Syntax Error" in r.json()["errors"][0]["message"]
    # argument errors name the argument
    msg = errors(inst, '{ jobs(filter: [{}, {state: ["exploded"]}]) { count } }')[0]
    assert "JobState" in msg and "exploded" in msg
    msg = errors(inst, '{ jobs(filter: [{}, {startTime: {range: "lastyear"}}]) { count } }')[0]
    assert msg.startswith("argument 'filter'[1].startTime.range") and "last6h" in msg
    msg = errors(inst, '{ jobs(order: {field: "nope", type: "col"}) { count } }')[0]
    assert msg.startswith("argument 'order'") and "nope" in msg
    msg = errors(inst, "{ jobs(page: {itemsPerPage: 0, page: 1}) { count } }")[0]
    assert msg.startswith("argument 'page'")
    msg = errors(inst, '{ job(id: "abc") { id } }')[0]
    assert msg.startswith("argument 'id'")
    msg = errors(inst, '{ jobs(filter: [{metricStats: [{metricName: "x\\" OR 1", range: {from: 1, to: 2}}]}]) '
                       '{ count } }')[0]
    assert "metricStats[0].metricName" in msg
    msg = errors(inst, '{ jobs(filter: [{startTime: {from: "yesterday"}}]) { count } }')[0]
    assert "RFC 3339" in msg


def test_introspection_and_operation_name(inst):
    d = data(inst, "{ __schema { queryType { name } mutationType { fields { name } } } }")
    assert d["__schema"]["queryType"]["name"] == "Query"
    assert {f["name"] for f in d["__schema"]["mutationType"]["fields"]} >= {"createTag", "updateConfiguration"}
    headers = {"Authorization": f"Bearer {inst.token('admin', USERS['admin'])}"}
    r = httpx.post(inst.web + "/query", headers=headers, json={
        "query": "query A { tags { id } } query B { clusters { name } }", "operationName": "B"})
    assert r.json() == {"data": {"clusters": [{"name": "c1"}]}}
    assert float(r.headers["server-timing"].split("dur=")[1]) > 0


def test_two_async_fields_resolve_together(inst):
    # several async root fields and async fields on every list item: gathered by Trio
    d = data(inst, "query($ids: [ID!]) { tags { id } clusters { name partitions } jobs(filter: [{dbId: $ids}]) "
                   "{ count items { jobId userData { name } concurrentJobs { count } tags { id } } } }",
             {"ids": [inst.ids["j1"], inst.ids["j5"]]})
    assert d["clusters"][0]["partitions"] == ["batch", "main"]
    items = {j["jobId"]: j for j in d["jobs"]["items"]}
    assert items[101]["userData"] == {"name": "Full alice"}
    assert items[101]["concurrentJobs"] is None  # not a shared job
    assert items[105]["concurrentJobs"]["count"] == 1


async def test_trio_gather_runs_siblings_concurrently():
    schema = build_schema("type Query { a: Int b: Int l: [Int!]! }")

    async def slow(value):
        await trio.sleep(0.2)
        return value

    schema.query_type.fields["a"].resolve = lambda _, info: slow(1)
    schema.query_type.fields["b"].resolve = lambda _, info: slow(2)
    schema.query_type.fields["l"].resolve = lambda _, info: [slow(i) for i in range(5)]
    t0 = trio.current_time()
    result = await execute(schema, parse("{ a b l }"), executor_class=TrioExecutor)
    assert result.errors is None and result.data == {"a": 1, "b": 2, "l": [0, 1, 2, 3, 4]}
    assert trio.current_time() - t0 < 0.35  # 2 fields and 5 items of 0.2 s each: together, not 1.4 s


async def test_trio_executor_error_paths():
    schema = build_schema("type Query { slow: Int bad: Int! fine: Int sub: Sub } type Sub { x: Int! y: Int }")
    done = []

    async def slow(_, info):
        await trio.sleep(0.05)
        done.append("slow")
        return 1

    def bad(_, info):
        raise ValueError("sync failure")

    async def fails(_, info):
        raise RuntimeError("async failure")

    f = schema.query_type.fields
    f["slow"].resolve, f["bad"].resolve, f["fine"].resolve = slow, bad, lambda _, info: 3
    f["sub"].resolve = lambda _, info: {}
    schema.type_map["Sub"].fields["x"].resolve = fails
    schema.type_map["Sub"].fields["y"].resolve = slow
    # a non-null field failing synchronously while a sibling is pending: no data, the sibling still settles
    result = execute(schema, parse("{ slow bad }"), executor_class=TrioExecutor)  # synchronous: bad raised
    assert result.data is None and result.errors[0].message == "sync failure"
    await trio.sleep(0.1)
    assert done == ["slow"]
    # an async non-null failure nulls its parent and cancels the parent's other pending fields
    result = await execute(schema, parse("{ fine sub { x y } }"), executor_class=TrioExecutor)
    assert result.data == {"fine": 3, "sub": None} and result.errors[0].message == "async failure"


# -- jobs: fields, visibility ------------------------------------------------------------------

def test_job_fields(inst):
    j = job(inst, inst.ids["j2"], JOB_FIELDS + " resources { hostname accelerators } footprint { name stat value } "
            "energyFootprint { hardware metric value } tags { id } userData { username name email }")
    assert j["jobId"] == 102 and j["user"] == "bob" and j["subCluster"] == "main" and j["numNodes"] == 2
    assert j["state"] == "completed" and j["duration"] == 7200 and j["partition"] == "batch"
    assert j["metaData"]["jobName"] == "sim-a" and j["numHWThreads"] == 16 and j["monitoringStatus"] == 3
    assert j["startTime"].endswith("Z") and j["energy"] == 12.5 and j["SMT"] == 1 and j["shared"] == "none"
    assert {(f["name"], f["stat"], f["value"]) for f in j["footprint"]} == {
        ("cpu_load", "avg", 30.0), ("flops_any", "avg", 55.0), ("mem_bw", "avg", 80.0), ("net_bw", "avg", 3.0)}
    assert {(e["hardware"], e["metric"]) for e in j["energyFootprint"]} == {
        ("Accelerator", "acc_power"), ("CPU", "cpu_power"), ("Other", "disk")}
    assert j["userData"] == {"username": "bob", "name": "Full bob", "email": "bob@example.org"}
    g = job(inst, inst.ids["j3"], "subCluster numAcc resources { hostname accelerators }")
    assert g["subCluster"] == "gpu" and g["numAcc"] == 2 and len(g["resources"][0]["accelerators"]) == 2
    running = job(inst, inst.ids["j1"], "duration state")
    expected = time.time() - (NOW - 3600)  # NOW is fixed when the module is imported
    assert running["state"] == "running" and expected - 30 <= running["duration"] <= expected + 5


def test_restricted_footprint_hidden_from_users(inst):
    for user in ("admin", "sup"):
        assert "net_bw" in {f["name"] for f in job(inst, inst.ids["j2"], "footprint { name }", user)["footprint"]}
    for user in ("bob", "mgr"):  # restrict: true in cluster.json
        assert {f["name"] for f in job(inst, inst.ids["j2"], "footprint { name }", user)["footprint"]} == {
            "cpu_load", "flops_any", "mem_bw"}


@pytest.mark.parametrize("user,expect", [
    ("alice", {"j1", "j5"}), ("bob", {"j2", "j3"}), ("mgr", {"j1", "j2"}),
    ("sup", {"j1", "j2", "j3", "j4", "j5"}), ("admin", {"j1", "j2", "j3", "j4", "j5"}),
    ("adapter", {"j1", "j2", "j3", "j4", "j5"}),
])
def test_visibility_by_role(inst, user, expect):
    assert names(inst, job_ids(inst, None, user)) == expect
    for name, db_id in inst.ids.items():
        r = gql(inst, "query($id: ID!) { job(id: $id) { id } }", {"id": db_id}, user=user)
        if name in expect:
            assert r.json()["data"]["job"]["id"] == str(db_id)
        else:
            assert r.json()["data"]["job"] is None and "may not see it" in r.json()["errors"][0]["message"]


def test_user_lookup_rules(inst):
    assert data(inst, '{ user(username: "bob") { name email } }', user="mgr")["user"]["name"] == "Full bob"
    assert data(inst, '{ user(username: "alice") { name } }', user="alice")["user"]["name"] == "Full alice"
    assert data(inst, '{ user(username: "nobody") { name } }')["user"] is None
    assert "may not look up" in errors(inst, '{ user(username: "bob") { name } }', user="alice")[0]


# -- filters -----------------------------------------------------------------------------------

J_ALL = {"j1", "j2", "j3", "j4", "j5"}


@pytest.mark.parametrize("filt,expect", [
    ({"user": {"eq": "bob"}}, {"j2", "j3"}),
    ({"user": {"neq": "bob"}}, {"j1", "j4", "j5"}),
    ({"user": {"contains": "li"}}, {"j1", "j5"}),
    ({"user": {"startsWith": "ca"}}, {"j4"}),
    ({"user": {"endsWith": "ob"}}, {"j2", "j3"}),
    ({"user": {"in": ["carol", "alice"]}}, {"j1", "j4", "j5"}),
    ({"user": {"in": []}}, set()),
    ({"user": {"contains": "%"}}, set()),  # LIKE wildcards are literal
    ({"project": {"eq": "p3"}}, {"j4", "j5"}),
    ({"jobId": {"eq": "1104"}}, {"j4"}),
    ({"jobId": {"in": ["101", "103"]}}, {"j1", "j3"}),
    ({"jobId": {"startsWith": "11"}}, {"j4"}),
    ({"jobId": {"contains": "0"}}, J_ALL),
    ({"jobName": {"contains": "sim"}}, {"j2"}),
    ({"jobName": {"eq": "train_x"}}, {"j3"}),
    ({"cluster": {"eq": "c1"}}, J_ALL),
    ({"subCluster": {"eq": "gpu"}}, {"j3"}),
    ({"partition": {"eq": "batch"}}, {"j2"}),
    ({"arrayJobId": 77}, {"j4"}),
    ({"state": ["running"]}, {"j1", "j5"}),
    ({"state": ["failed", "completed"]}, {"j2", "j3", "j4"}),
    ({"numNodes": {"from": 2, "to": 0}}, {"j2"}),
    ({"numNodes": {"from": 0, "to": 1}}, {"j1", "j3", "j4", "j5"}),
    ({"numAccelerators": {"from": 1, "to": 4}}, {"j3"}),
    ({"numHWThreads": {"from": 9, "to": 100}}, {"j2"}),
    ({"duration": {"from": 7000, "to": 8000}}, {"j2"}),
    ({"energy": {"from": 10.0, "to": 0}}, {"j2", "j4"}),
    ({"energy": {"from": 0, "to": 5.0}}, {"j1", "j3", "j5"}),
    ({"startTime": {"range": "last6h"}}, {"j1", "j5"}),
    ({"startTime": {"range": "last24h"}}, {"j1", "j5"}),
    ({"startTime": {"range": "last7d"}}, {"j1", "j2", "j5"}),
    ({"startTime": {"range": "last30d"}}, {"j1", "j2", "j3", "j5"}),
    ({"startTime": {"from": NOW - 11 * 86400, "to": NOW - 86400}}, {"j2", "j3"}),
    ({"startTime": {"to": NOW - 30 * 86400}}, {"j4"}),
    ({"node": {"eq": "n01"}}, {"j1", "j5"}),
    ({"node": {"eq": "n03"}}, {"j2"}),
    ({"node": {"startsWith": "g"}}, {"j3"}),
    ({"node": {"in": ["n04", "g01"]}}, {"j3", "j4"}),
    ({"shared": "multi_user"}, {"j4"}),
    ({"shared": "none"}, {"j1", "j2", "j3"}),
    ({"schedule": "interactive"}, {"j1"}),
    ({"schedule": "batch"}, {"j2", "j3", "j4", "j5"}),
    ({"metricStats": [{"metricName": "cpu_load_avg", "range": {"from": 20, "to": 95}}]}, {"j2", "j3"}),
    ({"metricStats": [{"metricName": "cpu_load_avg", "range": {"from": 0, "to": 50}}]}, {"j2", "j4"}),
    ({"metricStats": [{"metricName": "cpu_load_avg", "range": {"from": 20, "to": 0}},
                      {"metricName": "flops_any_avg", "range": {"from": 50, "to": 0}}]}, {"j2"}),
])
def test_filter_semantics(inst, filt, expect):
    assert names(inst, job_ids(inst, [filt])) == expect


def test_time_filter_accepts_rfc3339_and_filters_combine(inst):
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(NOW - 11 * 86400, UTC).isoformat().replace("+00:00", "Z")
    assert names(inst, job_ids(inst, [{"startTime": {"from": iso}}, {"user": {"eq": "bob"}}])) == {"j2", "j3"}
    assert names(inst, job_ids(inst, [{"user": {"eq": "bob", "startsWith": "x"}}])) == set()  # operators AND
    assert names(inst, job_ids(inst, [{"dbId": [str(inst.ids["j1"]), str(inst.ids["j4"])]}])) == {"j1", "j4"}
    # a plain user's filter never widens what they see
    assert names(inst, job_ids(inst, [{"user": {"eq": "bob"}}], user="alice")) == set()


def test_tag_filter_is_any_of(inst):
    r = rest(inst, "POST", f"/api/jobs/tag_job/{inst.ids['j2']}", json=[{"type": "app", "name": "gromacs"}])
    assert r.status_code == 200, r.text
    rest(inst, "POST", f"/api/jobs/tag_job/{inst.ids['j4']}", json=[{"type": "app", "name": "vasp"}])
    rest(inst, "POST", f"/api/jobs/tag_job/{inst.ids['j3']}", json=[{"type": "app", "name": "gromacs"},
                                                                    {"type": "app", "name": "vasp"}])
    tags = {t["name"]: t["id"] for t in data(inst, "{ tags { id name } }")["tags"]}
    assert names(inst, job_ids(inst, [{"tags": [tags["gromacs"]]}])) == {"j2", "j3"}
    assert names(inst, job_ids(inst, [{"tags": [tags["gromacs"], tags["vasp"]]}])) == {"j2", "j3", "j4"}
    d = data(inst, "query($t: [ID!]) { jobs(filter: [{tags: $t}]) { count items { tags { name } } } }",
             {"t": [tags["vasp"]]})
    assert d["jobs"]["count"] == 2  # j3 has two tags but is counted once


# -- order and paging ---------------------------------------------------------------------------

def test_order_by_columns_and_footprint(inst):
    ordered = job_ids(inst, None)  # default: newest first
    assert [k for v in ordered for k, x in inst.ids.items() if x == v] == ["j5", "j1", "j2", "j3", "j4"]
    by_nodes = job_ids(inst, None, order={"field": "numNodes", "type": "col", "order": "DESC"})
    assert by_nodes[0] == inst.ids["j2"]
    # (running jobs sort by their stored duration, which the archiver's duration worker keeps current)
    asc = job_ids(inst, [{"state": ["completed", "failed"]}], order={"field": "duration", "type": "col", "order": "ASC"})
    assert asc == [inst.ids["j3"], inst.ids["j2"], inst.ids["j4"]]
    hw = job_ids(inst, None, order={"field": "numHwthreads", "type": "col", "order": "DESC"})  # frontend's name
    assert hw[0] == inst.ids["j2"]
    foot = job_ids(inst, None, order={"field": "cpu_load_avg", "type": "foot", "order": "DESC"})
    assert foot[:3] == [inst.ids["j3"], inst.ids["j2"], inst.ids["j4"]]  # jobs without footprint last
    foot = job_ids(inst, None, order={"field": "cpu_load_avg", "type": "foot", "order": "ASC"})
    assert foot[:3] == [inst.ids["j4"], inst.ids["j2"], inst.ids["j3"]]
    assert "foot" in errors(inst, '{ jobs(order: {field: "x", type: "bar"}) { count } }')[0]


def test_paging_count_and_has_next_page(inst):
    q = "query($p: PageRequest) { jobs(page: $p) { items { id } count hasNextPage offset limit } }"
    seen = []
    for page in (1, 2, 3):
        d = data(inst, q, {"p": {"itemsPerPage": 2, "page": page}})["jobs"]
        assert d["count"] == 5 and d["limit"] == 2 and d["offset"] == (page - 1) * 2
        assert d["hasNextPage"] is (page < 3)
        seen += [int(j["id"]) for j in d["items"]]
    assert sorted(seen) == sorted(inst.ids.values())
    d = data(inst, "{ jobs { hasNextPage items { id } } }")["jobs"]  # default page: 50
    assert d["hasNextPage"] is False and len(d["items"]) == 5
    d = data(inst, "{ jobs(page: {itemsPerPage: 5, page: 1}) { hasNextPage } }")["jobs"]
    assert d["hasNextPage"] is False


# -- tags and their scopes ----------------------------------------------------------------------

def test_tag_mutations_and_scopes(inst):
    create = "mutation($t: String!, $n: String!, $s: String!) { createTag(type: $t, name: $n, scope: $s) { id scope } }"

    def make(user, t, n, s):
        r = gql(inst, create, {"t": t, "n": n, "s": s}, user)
        doc = r.json()
        return doc["data"]["createTag"] if doc.get("data") and doc["data"].get("createTag") else doc["errors"][0]

    assert make("admin", "review", "bad", "admin")["scope"] == "admin"
    assert make("sup", "review", "good", "global")["scope"] == "global"
    mine = make("alice", "note", "todo", "alice")
    assert mine["scope"] == "alice"
    for user, scope in (("alice", "global"), ("alice", "admin"), ("sup", "admin"), ("alice", "bob")):
        err = make(user, "x", f"{user}-{scope}", scope)
        assert "argument 'scope'" in err["message"], err
    assert "argument 'type'" in make("admin", "", "x", "global")["message"]
    tags = {t["name"]: t for t in data(inst, "{ tags { id name scope } }", user="admin")["tags"]}
    # visibility: alice sees global tags and her own; support sees admin tags; no one sees alice's private tag
    assert {t["name"] for t in data(inst, "{ tags { name } }", user="alice")["tags"]} >= {"good", "todo"}
    assert "bad" not in {t["name"] for t in data(inst, "{ tags { name } }", user="alice")["tags"]}
    assert "todo" not in {t["name"] for t in data(inst, "{ tags { name } }", user="sup")["tags"]}
    assert "bad" in {t["name"] for t in data(inst, "{ tags { name } }", user="sup")["tags"]}

    add = "mutation($j: ID!, $t: [ID!]!) { addTagsToJob(job: $j, tagIds: $t) { name } }"
    remove = "mutation($j: ID!, $t: [ID!]!) { removeTagsFromJob(job: $j, tagIds: $t) { name } }"
    j1 = inst.ids["j1"]
    r = gql(inst, add, {"j": j1, "t": [mine["id"]]}, "alice").json()
    assert {t["name"] for t in r["data"]["addTagsToJob"]} == {"todo"}
    r = gql(inst, add, {"j": j1, "t": [tags["good"]["id"]]}, "alice").json()  # global: support/admin only
    assert "not allowed to use tag" in r["errors"][0]["message"]
    r = gql(inst, add, {"j": j1, "t": [tags["good"]["id"], tags["bad"]["id"]]}, "sup").json()  # admin tag refused
    assert "tagIds[1]" in r["errors"][0]["message"]
    assert {t["name"] for t in job(inst, j1, "tags { name }", "admin")["tags"]} == set()
    r = gql(inst, add, {"j": j1, "t": [tags["good"]["id"], tags["bad"]["id"]]}, "admin").json()
    assert {t["name"] for t in r["data"]["addTagsToJob"]} == {"good", "bad"}  # admin does not see alice's tag
    assert {t["name"] for t in job(inst, j1, "tags { name }", "alice")["tags"]} \
        == {"good", "todo"}
    r = gql(inst, add, {"j": inst.ids["j2"], "t": [mine["id"]]}, "alice").json()  # bob's job: not visible
    assert "argument 'job'" in r["errors"][0]["message"]
    r = gql(inst, add, {"j": j1, "t": ["999999"]}, "admin").json()
    assert "tag does not exist (ID): 999999" in r["errors"][0]["message"]
    r = gql(inst, remove, {"j": j1, "t": [tags["bad"]["id"]]}, "admin").json()
    assert {t["name"] for t in r["data"]["removeTagsFromJob"]} == {"good"}
    assert names(inst, job_ids(inst, [{"tags": [tags["good"]["id"]]}])) == {"j1"}

    drop = "mutation($t: [ID!]!) { removeTagFromList(tagIds: $t) }"
    r = gql(inst, drop, {"t": [tags["good"]["id"]]}, "sup").json()  # support cannot delete global tags
    assert "not allowed to delete" in r["errors"][0]["message"]
    r = gql(inst, drop, {"t": [mine["id"]]}, "alice").json()
    assert r["data"]["removeTagFromList"] == [int(mine["id"])]
    r = gql(inst, "mutation($id: ID!) { deleteTag(id: $id) }", {"id": tags["good"]["id"]}, "admin").json()
    assert r["data"]["deleteTag"] == tags["good"]["id"]
    left = {t["name"] for t in data(inst, "{ tags { name } }", user="admin")["tags"]}
    assert "good" not in left and "todo" not in left
    assert job(inst, j1, "tags { name }", "alice")["tags"] == []


# -- settings, concurrency, dev pages -------------------------------------------------------------

def test_update_configuration_persists(inst):
    q = 'mutation($n: String!, $v: String!) { updateConfiguration(name: $n, value: $v) }'
    r = gql(inst, q, {"n": "plot_list_selectedMetrics:c1", "v": '["flops_any","mem_bw"]'}, "alice").json()
    assert r == {"data": {"updateConfiguration": None}}
    gql(inst, q, {"n": "job_list_usePaging", "v": "true"}, "alice")
    gql(inst, q, {"n": "job_list_usePaging", "v": "false"}, "alice")
    assert data(inst, "{ userConfig }", user="alice")["userConfig"] == {
        "plot_list_selectedMetrics:c1": ["flops_any", "mem_bw"], "job_list_usePaging": False}
    assert data(inst, "{ userConfig }", user="bob")["userConfig"] == {}
    r = gql(inst, q, {"n": "x", "v": "{not json"}, "alice").json()
    assert "argument 'value'" in r["errors"][0]["message"]
    from cc.db import connect
    from cc.db._users import get_config

    assert get_config(connect(inst.cfg.db_path), "alice")["job_list_usePaging"] is False
    r = gql(inst, q, {"n": "x", "v": "1"}, token=inst.token("ghost", ["user"])).json()
    assert "not in the user database" in r["errors"][0]["message"]


def test_concurrent_jobs(inst):
    cj = job(inst, inst.ids["j5"], "concurrentJobs { count listQuery items { id jobId } }")["concurrentJobs"]
    assert cj["count"] == 1 and cj["items"] == [{"id": str(inst.ids["j1"]), "jobId": 101}]
    assert cj["listQuery"] == "cluster=c1&jobId=101"
    # the manager may see j5? no (project p3): and alice sees j1, so she gets it listed
    assert job(inst, inst.ids["j5"], "concurrentJobs { count }", "alice")["concurrentJobs"]["count"] == 1
    # j4 is shared but nothing ran beside it
    assert job(inst, inst.ids["j4"], "concurrentJobs { count }")["concurrentJobs"] \
        == {"count": 0}


def test_dev_pages(inst):
    r = httpx.get(inst.web + "/playground")
    assert r.status_code == 200 and "/query" in r.text and "<textarea" in r.text
    assert "cdn" not in r.text.lower() and "https://" not in r.text
    r = httpx.get(inst.web + "/swagger/")
    assert r.status_code == 200 and "openapi.yaml" in r.text
    r = httpx.get(inst.web + "/swagger/openapi.yaml")
    assert r.status_code == 200 and "openapi" in r.text
    assert httpx.get(inst.web + "/swagger/assets/..%2Fpackage.json").status_code == 404
    from cc.webd.graphql.endpoint import SWAGGER_DIST

    if (SWAGGER_DIST / "swagger-ui-bundle.js").is_file():  # after npm ci in frontend/
        assert "validatorUrl: null" in httpx.get(inst.web + "/swagger/").text  # no calls to swagger.io
        assert httpx.get(inst.web + "/swagger/assets/swagger-ui-bundle.js").status_code == 200
