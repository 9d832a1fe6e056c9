"""Checking a start_job payload: structure, then meaning (cluster, subcluster, node counts).

Shared by the REST API and any other way jobs come in, so that every path rejects the
same things with the same messages.  Every message names the offending field.
"""

from __future__ import annotations

import re
from typing import Any

from cc.clusters import Cluster
from cc.db import INT64_MAX, JOB_STATES, SHARED, Job, job_from_json
from cc.db._filters import MAX_TIME


class PayloadError(ValueError):
    pass


def _int(doc: dict, key: str, *, required: bool = False, minimum: int | None = None,
         maximum: int = INT64_MAX) -> None:
    if key not in doc or doc[key] is None:
        if required:
            raise PayloadError(f"'{key}' is required")
        return
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise PayloadError(f"'{key}' must be an integer, got {v!r}")
    if minimum is not None and v < minimum:
        raise PayloadError(f"'{key}' must be >= {minimum}, got {v}")
    if v > maximum:  # SQLite integers are 64 bits; times must be writable as RFC 3339
        raise PayloadError(f"'{key}' must be <= {maximum}, got {v}")


def _str(doc: dict, key: str, *, required: bool = False) -> None:
    if key not in doc or doc[key] is None:
        if required:
            raise PayloadError(f"'{key}' is required")
        return
    if not isinstance(doc[key], str):
        raise PayloadError(f"'{key}' must be a string, got {doc[key]!r}")
    if required and not doc[key]:
        raise PayloadError(f"'{key}' must not be empty")


# printable ASCII without space, '/' and '\\', no '..': safe as a path component (schemas/openapi.yaml: Name)
NAME = re.compile(r"(?!.*\.\.)[!-.0-\[\]-~]{1,255}")


def safe_name(value: str) -> bool:
    return NAME.fullmatch(value) is not None


def _number(doc: dict, key: str) -> None:
    v = doc.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf")):
        raise PayloadError(f"'{key}' must be a number, got {v!r}")


def check_resources(resources: Any) -> None:
    if not isinstance(resources, list) or not resources:
        raise PayloadError("'resources' must be a non-empty list of {hostname, hwthreads, accelerators}")
    seen = set()
    for i, r in enumerate(resources):
        where = f"resources[{i}]"
        if not isinstance(r, dict):
            raise PayloadError(f"{where} must be an object")
        host = r.get("hostname")
        if not isinstance(host, str) or not safe_name(host):
            raise PayloadError(f"{where}.hostname must be a host name without '/', '\\\\' or '..', got {host!r}")
        if host in seen:
            raise PayloadError(f"{where}.hostname {host!r} is listed twice")
        seen.add(host)
        hw = r.get("hwthreads")
        if hw is not None and (not isinstance(hw, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                                                   and 0 <= x <= INT64_MAX for x in hw)):
            raise PayloadError(f"{where}.hwthreads must be a list of non-negative integers")
        acc = r.get("accelerators")
        if acc is not None and (not isinstance(acc, list) or not all(isinstance(x, str) for x in acc)):
            raise PayloadError(f"{where}.accelerators must be a list of strings")
        conf = r.get("configuration")
        if conf is not None and not isinstance(conf, str):
            raise PayloadError(f"{where}.configuration must be a string")
        extra = set(r) - {"hostname", "hwthreads", "accelerators", "configuration"}
        if extra:
            raise PayloadError(f"{where}: unknown field {sorted(extra)[0]!r}")


def check_start_payload(doc: Any, clusters: dict[str, Cluster]) -> Job:
    """A running Job from a start_job body, or PayloadError naming the field."""
    if not isinstance(doc, dict):
        raise PayloadError("the body must be a JSON object describing the job")
    _int(doc, "jobId", required=True, minimum=0)
    _str(doc, "user", required=True)
    _str(doc, "cluster", required=True)
    _int(doc, "startTime", required=True, minimum=1, maximum=MAX_TIME)
    _str(doc, "project")
    _str(doc, "partition")
    _str(doc, "subCluster")
    for key in ("numNodes", "numHwthreads", "numAcc", "walltime", "arrayJobId", "smt", "requestedMemory"):
        _int(doc, key, minimum=0)
    _int(doc, "submitTime", minimum=0, maximum=MAX_TIME)
    _int(doc, "monitoringStatus", minimum=0)
    if doc.get("monitoringStatus") is not None and doc["monitoringStatus"] > 3:
        raise PayloadError("'monitoringStatus' must be 0..3")
    check_resources(doc.get("resources"))
    n = doc.get("numNodes")
    if n is not None and n < 1:
        raise PayloadError("'numNodes' must be >= 1")
    if n is not None and n != len(doc["resources"]):
        raise PayloadError(f"'numNodes' is {n} but 'resources' lists {len(doc['resources'])} hosts")
    shared = doc.get("shared")
    if shared is not None and shared not in SHARED:
        raise PayloadError(f"'shared' must be one of {', '.join(SHARED)}, got {shared!r}")
    state = doc.get("jobState")
    if state is not None and state not in JOB_STATES:
        raise PayloadError(f"'jobState' {state!r} is not a job state")
    meta = doc.get("metaData")
    if meta is not None and (not isinstance(meta, dict)
                             or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        raise PayloadError("'metaData' must be an object of string values")
    tags = doc.get("tags")
    if tags is not None:
        if not isinstance(tags, list):
            raise PayloadError("'tags' must be a list of {type, name, scope}")
        for i, t in enumerate(tags):
            if not isinstance(t, dict) or not isinstance(t.get("type"), str) or not isinstance(t.get("name"), str) \
                    or not t["type"] or not t["name"]:
                raise PayloadError(f"tags[{i}] needs non-empty string 'type' and 'name'")
            if t.get("scope") is not None and not isinstance(t["scope"], str):
                raise PayloadError(f"'tags[{i}].scope' must be a string")
    _number(doc, "energy")
    for key in ("footprint", "energyFootprint"):
        v = doc.get(key)
        if v is not None and (not isinstance(v, dict) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())):
            raise PayloadError(f"'{key}' must be an object of numbers")
    if not safe_name(doc["cluster"]):
        raise PayloadError(f"'cluster' {doc['cluster']!r} is not a valid cluster name")
    cluster = clusters.get(doc["cluster"])
    if cluster is None:
        raise PayloadError(f"'cluster': no such cluster {doc['cluster']!r} (known: {', '.join(sorted(clusters))})")
    sc_name = doc.get("subCluster")
    if sc_name:
        if cluster.subcluster(sc_name) is None:
            raise PayloadError(f"'subCluster': {sc_name!r} is not a subcluster of {cluster.name}")
    else:
        sc = cluster.subcluster_for_host(doc["resources"][0]["hostname"])
        if sc is None:
            raise PayloadError(f"'resources[0].hostname': host {doc['resources'][0]['hostname']!r} is in no "
                               f"subcluster of {cluster.name} (check the 'nodes' lists in its cluster.json)")
        sc_name = sc.name
    job = job_from_json(doc)
    job.subcluster = sc_name
    job.state = "running"
    job.duration = 0
    job.id = None
    job.statistics = None
    if not doc.get("numNodes"):
        job.num_nodes = len(job.resources)
    return job
