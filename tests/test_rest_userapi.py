"""The REST routes of cc-backend v1.5 added for issue 18: /userapi, DELETE /api/tags/,
/api/machine_state/, POST /frontend/configuration/, and the ``Meta``/``Data`` casing of
``/api/jobs/{id}``; against the real supervisor."""

from __future__ import annotations

import sqlite3

import httpx
import orjson
import pytest

from cc.config import ConfigError, load_config
from tests.graphql_helpers import NOW, USERS
from tests.helpers import Installation, running

#: What cc-backend's GetCompleteJobAPIResponse encodes: Go field names (no json tags) at the top,
#: schema.Job's json names inside (shape recorded from internal/api/job.go and cc-lib's schema.Job).
UPSTREAM_COMPLETE_JOB = {"Meta": {"id": 1, "jobId": 1, "user": "u", "project": "p", "cluster": "c1",
                                  "subCluster": "main", "startTime": 1, "duration": 0, "numNodes": 1,
                                  "resources": [], "jobState": "running"},
                         "Data": None}


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    root = tmp_path_factory.mktemp("userapi")
    with running(root, ingest_workers=1, extra_config={"main": {"machine-state-dir": "./var/machine-state"}}) as i:
        for name, roles in USERS.items():
            assert i.cli("add-user", f"{name}:{','.join(roles)}:pw-{name}").returncode == 0
        yield i


def call(inst: Installation, method: str, path: str, user: str = "adapter", **kw) -> httpx.Response:
    return httpx.request(method, inst.web + path, headers={"Authorization": f"Bearer {inst.token(user, USERS[user])}"},
                         timeout=30, **kw)


def start(inst, job_id: int, user: str) -> int:
    doc = {"jobId": job_id, "user": user, "project": "p1", "cluster": "c1", "partition": "main", "numNodes": 1,
           "numHwthreads": 8, "startTime": NOW - 600, "walltime": 3600, "resources": [{"hostname": "n01"}]}
    r = call(inst, "POST", "/api/jobs/start_job/", json=doc)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_userapi_shows_a_user_only_their_jobs(inst):
    mine, theirs = start(inst, 100, "alice"), start(inst, 101, "bob")
    r = call(inst, "GET", "/userapi/jobs/", "alice", params={"items-per-page": 100})
    assert r.status_code == 200, r.text
    assert {j["id"] for j in r.json()["jobs"]} & {mine, theirs} == {mine}
    assert call(inst, "GET", "/api/jobs/", "alice").status_code == 403  # /api needs the api role (issue 18.9)
    r = call(inst, "GET", f"/userapi/jobs/{mine}", "alice")
    assert r.status_code == 200 and r.json()["Meta"]["user"] == "alice"
    assert call(inst, "GET", f"/userapi/jobs/{theirs}", "alice").status_code == 422
    r = call(inst, "POST", f"/userapi/jobs/{mine}", "alice", json=[])
    assert r.status_code == 200 and set(r.json()) == {"Meta", "Data"} and isinstance(r.json()["Data"], list)
    r = call(inst, "GET", f"/userapi/jobs/metrics/{mine}", "alice")
    assert r.status_code == 200 and r.json()["error"] is None
    assert call(inst, "GET", f"/userapi/jobs/metrics/{theirs}", "alice").status_code == 422
    assert httpx.get(inst.web + "/userapi/jobs/").status_code == 401


def test_complete_job_uses_go_field_names(inst):
    db_id = start(inst, 102, "bob")
    doc = call(inst, "GET", f"/api/jobs/{db_id}").json()
    assert set(doc) == set(UPSTREAM_COMPLETE_JOB)
    assert set(UPSTREAM_COMPLETE_JOB["Meta"]) <= set(doc["Meta"]) and doc["Data"] is None
    doc = call(inst, "GET", f"/api/jobs/{db_id}", params={"all-metrics": "true"}).json()
    assert set(doc) == {"Meta", "Data"} and isinstance(doc["Data"], dict)


def test_delete_tags_everywhere(inst):
    a, b = start(inst, 200, "alice"), start(inst, 201, "bob")
    for db_id in (a, b):
        r = call(inst, "POST", f"/api/jobs/tag_job/{db_id}", json=[{"type": "app", "name": "old"},
                                                                    {"type": "keep", "name": "me"}])
        assert r.status_code == 200, r.text
    body = [{"type": "app", "name": "old", "scope": "global"}, {"type": "x", "name": "y", "scope": "alice"}]
    r = call(inst, "DELETE", "/api/tags/", json=body)
    assert r.status_code == 200 and r.text == "Deleted Tags from DB: 1 successfull of 2 requested\n"
    for db_id in (a, b):
        assert [t["name"] for t in call(inst, "GET", f"/api/jobs/{db_id}").json()["Meta"]["tags"]] == ["me"]
    r = call(inst, "DELETE", "/api/tags/", json=[{"type": "keep", "name": "me", "scope": "global"},
                                                 {"type": "app", "name": "gone", "scope": "global"}])
    assert r.status_code == 404 and "[1]" in r.json()["error"]
    assert [t["name"] for t in call(inst, "GET", f"/api/jobs/{a}").json()["Meta"]["tags"]] == ["me"]  # all or none
    for bad in ({"type": "a"}, [{"type": "a", "name": "b"}], [{"type": "a", "name": "b", "scope": "global", "x": 1}]):
        assert call(inst, "DELETE", "/api/tags/", json=bad).status_code == 400
    assert call(inst, "DELETE", "/api/tags/", "alice", json=[]).status_code == 403


def test_machine_state_round_trip_and_names(inst):
    state = {"cpu": "Xeon", "dimms": [16, 16]}
    r = call(inst, "PUT", "/api/machine_state/c1/n01.example", content=orjson.dumps(state))
    assert r.status_code == 201, r.text
    assert (inst.root / "var" / "machine-state" / "c1" / "n01.example.json").is_file()
    r = call(inst, "GET", "/api/machine_state/c1/n01.example")
    assert r.status_code == 200 and r.json() == state and r.headers["content-type"] == "application/json"
    assert "Last-Modified" in r.headers
    assert call(inst, "POST", "/api/machine_state/c1/n01.example", content=b'{"v": 2}').status_code == 201
    assert call(inst, "GET", "/api/machine_state/c1/n01.example").json() == {"v": 2}
    assert call(inst, "GET", "/api/machine_state/c1/n99").status_code == 404
    for cluster, host in ((".hidden", "n01"), ("c1", "a..b"), ("c1", "..")):
        r = call(inst, "PUT", f"/api/machine_state/{cluster}/{host}", content=b"{}")
        assert r.status_code in (400, 404), (cluster, host, r.status_code)
        assert r.status_code == 404 or "invalid" in r.json()["error"]
    r = call(inst, "PUT", "/api/machine_state/c1/x%2F..%2F..%2Fescape", content=b"{}")
    assert r.status_code in (400, 404)
    assert not list(inst.root.rglob("escape*"))
    assert call(inst, "PUT", "/api/machine_state/c1/n02", content=b"not json").status_code == 400
    assert call(inst, "GET", "/api/machine_state/c1/n01.example", "alice").status_code == 403


def test_machine_state_dir_is_validated(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "config.json").write_bytes(orjson.dumps({"main": {"machine-state-dir": "./file"}}))
    with pytest.raises(ConfigError, match="main.machine-state-dir"):
        load_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_bytes(orjson.dumps({"main": {"machine-state-dir": 5}}))
    with pytest.raises(ConfigError, match="main.machine-state-dir"):
        load_config(tmp_path / "config.json")


def test_frontend_configuration_stores_a_users_setting(inst):
    with httpx.Client(base_url=inst.web, timeout=30, headers={"Origin": inst.web}) as c:
        assert c.post("/frontend/configuration/", data={"key": "k", "value": "1"}).status_code == 401
        assert c.post("/login", json={"username": "alice", "password": "pw-alice"}).status_code == 200
        r = c.post("/frontend/configuration/", data={"key": "plotConfiguration_plotsPerRow", "value": "4"})
        assert r.status_code == 200 and r.text == "success"
        assert c.post("/frontend/configuration/", data={"key": "x", "value": "{nope"}).status_code == 400
        assert c.post("/frontend/configuration/", data={"key": "", "value": "1"}).status_code == 400
        r = c.post("/frontend/configuration/", data={"key": "x", "value": "1"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
    with sqlite3.connect(inst.cfg.db_path) as conn:
        rows = conn.execute("SELECT value FROM configuration WHERE username = 'alice' AND "
                            "confkey = 'plotConfiguration_plotsPerRow'").fetchall()
    assert rows == [("4",)]
