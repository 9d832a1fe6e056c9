"""Bad input answers 4xx naming the field, never a 500; unexpected failures a generic 500 with a request id.

The cases of issue 13 (ids and times beyond SQLite's 64-bit integers, JSON fields of
the wrong type, cc-backend's node-state body on /api/healthcheck) and the ones
schemathesis found, against the real installation.
"""

from __future__ import annotations

import re
import sqlite3

import httpx
import orjson
import pytest

from tests.graphql_helpers import NOW, USERS
from tests.helpers import running

HUGE = "99999999999999999999999"  # > 2**64: orjson reads it as a float, int() as a Python int
U64 = 2**64 - 1  # the largest integer orjson decodes as int: beyond SQLite's signed 64 bits


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("validation"), ingest_workers=1) as i:
        for name, roles in USERS.items():
            r = i.cli("add-user", f"{name}:{','.join(roles)}:pw-{name}")
            assert r.returncode == 0, r.stderr
        yield i


def call(inst, method: str, path: str, *, json=None, content=None, params=None, user: str = "admin"):
    headers = {"Authorization": f"Bearer {inst.token(user, USERS[user])}"}
    if json is not None:
        content = orjson.dumps(json)
    return httpx.request(method, inst.web + path, headers=headers, content=content, params=params, timeout=30)


def start(inst, job_id: int, **extra) -> int:
    doc = {"jobId": job_id, "user": "alice", "project": "p1", "cluster": "c1", "startTime": NOW - 600,
           "numNodes": 1, "resources": [{"hostname": "n01"}], **extra}
    r = call(inst, "POST", "/api/jobs/start_job/", json=doc)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def assert_400(r: httpx.Response, *needles: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == "Bad Request", body
    for needle in needles:
        assert needle in body["error"], (needle, body["error"])


@pytest.mark.parametrize("method,path,params,needle", [
    ("GET", f"/api/jobs/{HUGE}", None, "id"),
    ("POST", f"/api/jobs/{HUGE}", None, "id"),
    ("GET", f"/api/jobs/metrics/{HUGE}", None, "id"),
    ("DELETE", f"/api/jobs/delete_job/{HUGE}", None, "id"),
    ("DELETE", f"/api/jobs/delete_job_before/{HUGE}", None, "ts"),
    ("POST", f"/api/jobs/tag_job/{HUGE}", None, "id"),
    ("DELETE", f"/api/jobs/tag_job/{HUGE}", None, "id"),
    ("PATCH", f"/api/jobs/edit_meta/{HUGE}", None, "id"),
    ("GET", "/api/jobs/used_nodes", {"ts": HUGE}, "'ts'"),
    ("GET", "/api/jobs/", {"page": HUGE}, "'page'"),
    ("GET", "/api/jobs/", {"items-per-page": HUGE}, "'items-per-page'"),
    ("GET", "/api/jobs/", {"start-time": f"{HUGE}-1"}, "'start-time'"),
    ("GET", "/api/jobs/", {"with-metadata": "yes"}, "'with-metadata'"),
    ("POST", "/api/free", {"to": HUGE}, "'to'"),
    ("GET", "/api/jobs/1", {"all-metrics": "maybe"}, "'all-metrics'"),
    ("DELETE", "/api/jobs/delete_job_before/1", {"omit-tagged": "some"}, "'omit-tagged'"),
    ("GET", "/api/jobs/metrics/1", {"scope": "rack"}, "'scope'"),
    ("GET", "/api/jobs/1", None, None),  # 422: no such job (not a 400), checked below
])
def test_out_of_range_numbers_in_paths_and_queries_are_400(inst, method, path, params, needle):
    body = [] if method in ("POST",) and "tag_job" not in path and "free" not in path else None
    if "tag_job" in path:
        body = [{"type": "t", "name": "n"}]
    if "edit_meta" in path:
        body = {"key": "k", "value": "v"}
    if "free" in path:
        body = [["c1", "n01"]]
    r = call(inst, method, path, params=params, json=body)
    if needle is None:
        assert r.status_code == 422 and "no such job" in r.json()["error"]
        return
    assert_400(r, needle)
    assert "Error" not in r.json()["error"]  # no Python exception names


@pytest.mark.parametrize("raw", ["-1", "1.5", "0x10", "+5", " 5", "1_000", "١٢", "", "9223372036854775808"])
def test_ids_are_plain_decimal_64_bit_integers(inst, raw):
    r = call(inst, "GET", f"/api/jobs/{raw}")
    if raw == "":  # /api/jobs/ is the job list
        assert r.status_code == 200
        return
    assert_400(r, "integer expected in path for id")


@pytest.mark.parametrize("path,method,doc,needle", [
    ("/api/jobs/delete_job/", "DELETE", {"jobId": 1, "startTime": {}}, "'startTime'"),
    ("/api/jobs/delete_job/", "DELETE", {"jobId": U64}, "'jobId'"),
    ("/api/jobs/delete_job/", "DELETE", {"jobId": 1, "cluster": ["c1"]}, "'cluster'"),
    ("/api/jobs/edit_meta/", "PATCH", {"jobId": 1, "startTime": {}, "payload": {"key": "k", "value": "v"}},
     "'startTime'"),
    ("/api/jobs/edit_meta/", "PATCH", {"jobId": U64, "payload": {"key": "k", "value": "v"}}, "'jobId'"),
    ("/api/jobs/stop_job/", "POST", {"jobId": U64, "stopTime": NOW}, "'jobId'"),
    ("/api/jobs/stop_job/", "POST", {"jobId": 1, "stopTime": U64}, "'stopTime'"),
    ("/api/jobs/stop_job/", "POST", {"jobId": 1, "stopTime": NOW, "startTime": "x"}, "'startTime'"),
    ("/api/jobs/stop_job/", "POST", {"jobId": 1, "stopTime": NOW, "jobState": 5}, "'jobState'"),
    ("/api/jobs/start_job/", "POST", {"jobId": U64, "user": "a", "cluster": "c1", "startTime": NOW,
                                      "resources": [{"hostname": "n01"}]}, "'jobId'"),
    ("/api/jobs/start_job/", "POST", {"jobId": 1, "user": "a", "cluster": "c1", "startTime": 2**62,
                                      "resources": [{"hostname": "n01"}]}, "'startTime'"),
    ("/api/jobs/start_job/", "POST", {"jobId": 1, "user": "a", "cluster": "c1", "startTime": NOW,
                                      "resources": [{"hostname": "n01", "hwthreads": [U64]}]}, "hwthreads"),
    ("/api/nodestate/", "POST", {"cluster": "c1", "nodes": [{"hostname": "n01", "cpusAllocated": U64}]},
     "'nodes[0].cpusAllocated'"),
    ("/api/nodestate/", "POST", {"cluster": "c1", "nodes": [{"hostname": "n01", "cpus": 1}]}, "'nodes[0].cpus'"),
    ("/api/healthcheck", "POST", {"cluster": "c1", "nodes": ["n01", {"hostname": "n02"}]}, "'nodes'"),
    ("/api/healthcheck", "POST", {"cluster": "c1", "metric-names": [{}]}, "'metric-names'"),
    ("/api/healthcheck", "POST", {"cluster": {}}, "'cluster'"),
    ("/api/free?to=1", "POST", [["c1", {}]], "selectors"),
    ("/api/user/alice", "POST", {"add-role": ["user"]}, "add-role"),
])
def test_json_fields_of_the_wrong_type_are_400(inst, path, method, doc, needle):
    assert_400(call(inst, method, path, json=doc), needle)


def test_empty_and_malformed_bodies_are_400(inst):
    for path, method in (("/api/jobs/start_job/", "POST"), ("/api/jobs/stop_job/", "POST"),
                         ("/api/jobs/delete_job/", "DELETE"), ("/api/nodestate/", "POST"),
                         ("/api/jobs/edit_meta/", "PATCH")):
        assert_400(call(inst, method, path), "parsing request body failed")
        assert_400(call(inst, method, path, content=b"{nope"), "parsing request body failed")
        assert_400(call(inst, method, path, content=b"[1]"), "expected a JSON object")


def test_healthcheck_takes_cc_backends_node_state_body(inst):
    r = call(inst, "POST", "/api/healthcheck", user="adapter", json={"cluster": "c1", "nodes": [
        {"hostname": "h01", "states": ["idle"], "cpusAllocated": 0, "memoryAllocated": 0, "gpusAllocated": 0,
         "jobsRunning": 0},
        {"hostname": "h02", "states": ["allocated"], "cpusAllocated": 8, "jobsRunning": 2}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"msg": "updated 2 node states"}
    from cc.db import connect
    from cc.db._nodes import latest_node_states

    conn = connect(inst.cfg.db_path)
    try:
        states = {s["hostname"]: s for s in latest_node_states(conn, "c1")}
    finally:
        conn.close()
    assert states["h01"]["schedulerState"] == "idle" and states["h02"]["schedulerState"] == "allocated"
    assert states["h02"]["cpusAllocated"] == 8 and states["h02"]["jobsRunning"] == 2
    assert states["h01"]["healthState"] == "failed"  # no metrics at all for h01
    # the metric-store form still answers the health check, and writes nothing
    r = call(inst, "POST", "/api/healthcheck", user="adapter", json={"cluster": "c1", "nodes": ["h01"],
                                                                     "metric-names": ["cpu_load"]})
    assert r.status_code == 200 and r.json()["h01"]["missing"] == ["cpu_load"]
    # an unknown cluster in the node-state form is refused, as on /api/nodestate/
    r = call(inst, "POST", "/api/healthcheck", json={"cluster": "nope", "nodes": [{"hostname": "h01"}]})
    assert_400(r, "'cluster'", "nope")


def test_delete_job_before_omit_tagged_follows_cc_backend(inst):
    old = NOW - 10 * 86400
    plain, tagged, app_tagged = (start(inst, 7100 + i, startTime=old + i) for i in range(3))
    assert call(inst, "POST", f"/api/jobs/tag_job/{tagged}", json=[{"type": "bug", "name": "x"}]).status_code == 200
    assert call(inst, "POST", f"/api/jobs/tag_job/{app_tagged}",
                json=[{"type": "app", "name": "gromacs"}]).status_code == 200
    r = call(inst, "DELETE", f"/api/jobs/delete_job_before/{old + 10}", params={"omit-tagged": "user"})
    assert r.status_code == 200 and r.json()["msg"] == "Successfully deleted 2 jobs"  # plain, app-tagged
    assert call(inst, "GET", f"/api/jobs/{tagged}").status_code == 200
    assert call(inst, "GET", f"/api/jobs/{plain}").status_code == 422
    r = call(inst, "DELETE", f"/api/jobs/delete_job_before/{old + 10}", params={"omit-tagged": "all"})
    assert r.json()["msg"] == "Successfully deleted 0 jobs"
    r = call(inst, "DELETE", f"/api/jobs/delete_job_before/{old + 10}", params={"omit-tagged": "none"})
    assert r.json()["msg"] == "Successfully deleted 1 jobs"


def test_405_lists_the_allowed_methods(inst):
    r = httpx.request("TRACE", inst.web + "/api/jobs/start_job/", timeout=10)
    assert r.status_code == 405 and r.json()["status"] == "Method Not Allowed"
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"POST", "PUT"}


def test_too_large_body_is_413_in_json(inst):
    limit = inst.cfg.metric_store.max_body_bytes
    r = call(inst, "POST", "/api/jobs/start_job/", content=b" " * (limit + 1))
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/json")
    assert r.json()["status"] == "Request Entity Too Large"


def h(query: str) -> str:
    return query.replace("HUGE", HUGE)


def gql(inst, query: str, variables=None, user: str = "admin") -> httpx.Response:
    return call(inst, "POST", "/query", json={"query": query, "variables": variables or {}}, user=user)


@pytest.mark.parametrize("query,variables,needle", [
    (h('{ job(id: "HUGE") { id } }'), None, "argument 'id'"),
    ("query($id: ID!) { job(id: $id) { id } }", {"id": HUGE}, "argument 'id'"),
    (h('{ jobs(filter: [{dbId: ["HUGE"]}]) { count } }'), None, "dbId"),
    (h('{ jobs(filter: [{tags: ["HUGE"]}]) { count } }'), None, "tags"),
    (h('{ jobs(filter: [{startTime: {from: "HUGE"}}]) { count } }'), None, "Time"),
    ("query($t: Time) { jobs(filter: [{startTime: {from: $t}}]) { count } }", {"t": "1" + "0" * 30}, "Time"),
    ("query($t: Time) { jobs(filter: [{startTime: {to: $t}}]) { count } }", {"t": "99999-01-01T00:00:00Z"},
     "Time"),
    (h('{ jobs(filter: [{jobId: {eq: "HUGE"}}]) { count } }'), None, None),  # a string match: no error
    ("{ jobs(page: {itemsPerPage: 2000000000, page: 2000000000}) { count } }", None, None),
    (h('{ node(id: "HUGE") { id } }'), None, "argument 'id'"),
    (h('mutation { deleteTag(id: "HUGE") }'), None, "argument 'id'"),
    (h('mutation { addTagsToJob(job: "1", tagIds: ["HUGE"]) { id } }'), None, "argument 'tagIds[0]'"),
])
def test_graphql_arguments_out_of_range_are_errors_naming_the_argument(inst, query, variables, needle):
    r = gql(inst, query, variables)
    assert r.status_code in (200, 422), r.text
    errors = r.json().get("errors") or []
    if needle is None:
        assert not errors, errors
        return
    assert errors and any(needle in e["message"] for e in errors), errors
    assert not any("internal server error" in e["message"] for e in errors), errors


def test_unexpected_errors_are_a_generic_500_with_a_request_id(inst):
    """A broken database (a table gone) is a server fault: the client gets an id, the log the traceback.

    Runs last in this module: it breaks the installation's database.
    """
    conn = sqlite3.connect(inst.cfg.db_path)
    try:
        conn.execute("DROP TABLE job")
        conn.commit()
    finally:
        conn.close()
    r = call(inst, "GET", "/api/jobs/")
    assert r.status_code == 500, r.text
    body = r.json()
    assert body["status"] == "Internal Server Error"
    rid = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", rid) and body["requestId"] == rid and rid in body["error"]
    assert "no such table" not in r.text and "sqlite" not in r.text.lower() and "Traceback" not in r.text

    g = gql(inst, "{ jobs { count items { id } } }")
    assert g.status_code == 200
    errors = g.json()["errors"]
    assert errors and "internal server error" in errors[0]["message"]
    gid = errors[0]["extensions"]["requestId"]
    assert "no such table" not in g.text and "sqlite" not in g.text.lower()

    log = inst.cfg.log_dir / "web.log"
    text = log.read_text(errors="replace")
    for request_id in (rid, gid):
        at = text.index(f"request id {request_id}")
        assert "Traceback" in text[at:at + 5000] and "no such table: job" in text[at:at + 5000]
