"""Shared setup of the GraphQL tests: users, jobs through the REST API, footprints in the database."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from cc.db import connect, transaction
from cc.db._jobs import mark_archived
from cc.db._users import add_user, update_user
from tests.helpers import Installation, small_cluster

NOW = int(time.time())

USERS = {  # username -> roles (also what their tokens carry)
    "admin": ["admin", "api"],
    "adapter": ["api"],
    "alice": ["user"],
    "bob": ["user"],
    "mgr": ["manager"],
    "sup": ["support"],
}


def cluster_doc(name: str = "c1") -> dict[str, Any]:
    """small_cluster with a GPU subcluster g[01-04] and a restricted metric (net_bw)."""
    c = small_cluster(name)
    gpu = orjson.loads(orjson.dumps(c["subClusters"][0]))
    gpu["name"], gpu["nodes"] = "gpu", "g[01-04]"
    c["subClusters"].insert(0, gpu)
    for m in c["metricConfig"]:
        if m["name"] == "net_bw":
            m["restrict"] = True
    return c


def add_users(inst: Installation) -> None:
    conn = connect(inst.cfg.db_path)
    try:
        for name, roles in USERS.items():
            transaction(conn, add_user, name, roles, f"pw-{name}", f"Full {name}", f"{name}@example.org")
        transaction(conn, lambda c: update_user(c, "mgr", add_project="p1"))
    finally:
        conn.close()


def rest(inst: Installation, method: str, path: str, user: str = "adapter", json: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {inst.token(user, USERS[user])}"}
    return httpx.request(method, inst.web + path, headers=headers,
                         content=orjson.dumps(json) if json is not None else None, timeout=30)


def start_job(inst: Installation, job_id: int, user: str, project: str, hosts: tuple[str, ...], start: int,
              **extra: Any) -> int:
    doc = {"jobId": job_id, "user": user, "project": project, "cluster": "c1", "partition": "main",
           "numNodes": len(hosts), "numHwthreads": 8 * len(hosts), "startTime": start, "walltime": 86400,
           "resources": [{"hostname": h} for h in hosts], "metaData": {"jobName": f"job{job_id}"}}
    doc.update(extra)
    r = rest(inst, "POST", "/api/jobs/start_job/", json=doc)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def stop_job(inst: Installation, job_id: int, stop: int, state: str = "completed") -> None:
    r = rest(inst, "POST", "/api/jobs/stop_job/", json={"jobId": job_id, "cluster": "c1", "stopTime": stop,
                                                          "jobState": state})
    assert r.status_code == 200, r.text


def settle_archiver(inst: Installation, db_ids: list[int], timeout: float = 60) -> None:
    """Wait until the archiver (if this installation runs one) is done with these stopped jobs.

    Tests then overwrite footprints with known values; an archiver finishing later would
    overwrite them again.
    """
    st = inst.status() or {}
    if not any(p["name"] == "archiver" for p in st.get("processes", [])):
        return
    deadline = time.time() + timeout
    conn = connect(inst.cfg.db_path)
    try:
        while True:
            marks = ",".join("?" * len(db_ids))
            waiting = conn.execute(f"SELECT count(*) FROM job WHERE id IN ({marks}) AND monitoring_status = 1",
                                   db_ids).fetchone()[0]
            if not waiting:
                return
            if time.time() > deadline:
                raise RuntimeError(f"archiver did not finish {waiting} jobs:\n{inst.output()}")
            time.sleep(0.1)
    finally:
        conn.close()


def set_archived(inst: Installation, db_id: int, footprint: dict[str, float], energy: float = 0.0,
                 energy_footprint: dict[str, float] | None = None) -> None:
    """What the archiver writes for a finished job: footprint, energy, status 'archived'."""
    conn = connect(inst.cfg.db_path)
    try:
        transaction(conn, mark_archived, db_id, footprint, energy_footprint or {}, energy)
    finally:
        conn.close()


def gql(inst: Installation, query: str, variables: dict | None = None, user: str | None = "admin", *,
        token: str | None = None, client: httpx.Client | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}  # required with a session cookie (CSRF)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    elif user is not None:
        headers["Authorization"] = f"Bearer {inst.token(user, USERS[user])}"
    body = orjson.dumps({"query": query, "variables": variables or {}})
    if client is not None:
        return client.post("/query", content=body, headers=headers)
    return httpx.post(inst.web + "/query", content=body, headers=headers, timeout=60)


def data(inst: Installation, query: str, variables: dict | None = None, user: str = "admin") -> dict[str, Any]:
    """The ``data`` of a query that must succeed."""
    r = gql(inst, query, variables, user)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert not doc.get("errors"), doc["errors"]
    return doc["data"]


def errors(inst: Installation, query: str, variables: dict | None = None, user: str = "admin") -> list[str]:
    r = gql(inst, query, variables, user)
    assert r.status_code in (200, 422), r.text
    return [e["message"] for e in r.json()["errors"]]
