"""The JSON schemas of schemas/json: good documents pass, bad ones fail naming the field, and the
compiled fast check agrees with jsonschema."""

from __future__ import annotations

import copy
import random

import pytest
from jsonschema import Draft202012Validator

from cc.archive import SchemaError, is_valid, job_meta, validate
from cc.archive._schema import registry
from cc.clusters import parse_cluster
from tests.archive_gen import job_data, make_job
from tests.helpers import small_cluster


@pytest.fixture(scope="module")
def cluster():
    return parse_cluster(small_cluster(), "c1")


@pytest.fixture
def meta(cluster):
    job, stats = make_job(cluster, 3, random.Random(7))
    return job_meta(job, stats)


@pytest.fixture
def data():
    return job_data(["n1", "n2"], {"cpu_load": "", "mem_used": "B", "flops_any": "F/s"}, 20)


def start_payload() -> dict:
    return {"jobId": 123000, "user": "alice", "project": "p1", "cluster": "c1", "subCluster": "main",
            "partition": "main", "startTime": 1649723812, "numNodes": 1, "numHwthreads": 8,
            "resources": [{"hostname": "n1", "hwthreads": [0, 1, 2, 3]}], "walltime": 86400,
            "metaData": {"jobName": "x", "jobScript": "#!/bin/sh"}}


def error_of(kind: str, doc, **kw) -> str:
    with pytest.raises(SchemaError) as ei:
        validate(kind, doc, **kw)
    return str(ei.value)


def test_good_documents_pass(meta, data):
    validate("job-meta", meta)
    validate("job-data", data)
    validate("job-start", start_payload())
    validate("cluster", small_cluster())
    statistics_series = {"min": [1, None, 2], "max": [3, 4, 5], "mean": [2, 2, 2], "median": [2, 2, 2],
                         "percentiles": {"10": [1, 1, 1], "90": [3, 3, 3]}}
    data["cpu_load"]["node"]["statisticsSeries"] = statistics_series
    validate("job-data", data)


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["resources"][0].pop("hostname"), "resources[0].hostname: is required"),
    (lambda m: m["resources"][0].update(hostname=5), "resources[0].hostname: must be of type string, got integer 5"),
    (lambda m: m.update(jobState="done"), 'jobState: "done" is not one of "boot_fail"'),
    (lambda m: m.update(numNodes=0), "numNodes: must be > 0, got 0"),
    (lambda m: m.update(duration=0), "duration: must be > 0, got 0"),
    (lambda m: m.update(shared="yes"), 'shared: "yes" is not one of'),
    (lambda m: m["statistics"]["cpu_load"].update(avg=-1), "statistics.cpu_load.avg: must be >= 0, got -1"),
    (lambda m: m["statistics"]["flops_any"]["unit"].update(base="flops"), "statistics.flops_any.unit.base:"),
    (lambda m: m["statistics"]["mem_bw"].pop("unit"), "statistics.mem_bw.unit: is required"),
    (lambda m: m.update(metaData={"jobName": 3}), "metaData.jobName: must be of type string"),
    (lambda m: m.update(tags=[{"type": "a", "name": "b"}, {"type": "a", "name": "b"}]), "tags: items must be unique"),
    (lambda m: m.update(resources=[]), "resources: must have at least 1 item(s), got 0"),
    (lambda m: m.pop("statistics"), "statistics: is required"),
    (lambda m: m.update(footprint={"cpu_load_avg": "high"}), "footprint.cpu_load_avg: must be of type number"),
])
def test_bad_meta_names_the_field(meta, change, expected):
    change(meta)
    msg = error_of("job-meta", meta)
    assert msg.startswith(expected), msg


def test_strict_profile_demands_cc_metric_lists(meta, data):
    del meta["statistics"]["cpu_user"]
    validate("job-meta", meta)  # our default: any metric set
    assert error_of("job-meta", meta, strict=True) == "statistics.cpu_user: is required"
    assert error_of("job-data", data, strict=True) == "cpu_user: is required"


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["cpu_load"]["node"]["series"][1].pop("statistics"), "cpu_load.node.series[1].statistics: is required"),
    (lambda d: d["cpu_load"]["node"]["series"][0].update(data=[None, None]),
     "cpu_load.node.series[0].data: must contain at least one non-negative number"),
    (lambda d: d["cpu_load"]["node"]["series"][0]["data"].__setitem__(3, "x"), "cpu_load.node.series[0].data[3]:"),
    (lambda d: d["mem_used"].update(socket=d["mem_used"].pop("node")), "mem_used.node: is required"),
    (lambda d: d["flops_any"]["node"].pop("timestep"), "flops_any.node.timestep: is required"),
    (lambda d: d.update(my_metric={"bogus": d["cpu_load"]["node"]}), 'my_metric: "bogus"'),
    (lambda d: d.update(acc_power={"node": d["cpu_load"]["node"]}), "acc_power.accelerator: is required"),
    (lambda d: d["cpu_load"]["node"].update(statisticsSeries={"min": [1, 2]}),
     "cpu_load.node.statisticsSeries.min: must have at least 3 item(s)"),
])
def test_bad_data_names_the_field(data, change, expected):
    change(data)
    msg = error_of("job-data", data)
    assert msg.startswith(expected), msg


def test_start_payload_rules():
    doc = start_payload()
    doc["duration"] = 0  # allowed at start (jobState, duration, statistics come later)
    validate("job-start", doc)
    for key in ("jobId", "user", "cluster", "startTime", "numNodes", "resources"):
        bad = start_payload()
        del bad[key]
        assert error_of("job-start", bad) == f"{key}: is required"
    bad = start_payload()
    bad["metaData"]["slurmInfo"] = {"a": 1}
    assert error_of("job-start", bad).startswith("metaData.slurmInfo: must be of type string")
    assert error_of("job-start", [1]).startswith("(document): must be of type object")


def test_bad_cluster_names_the_field():
    doc = small_cluster()
    doc["metricConfig"][2]["scope"] = "rack"
    assert error_of("cluster", doc).startswith('metricConfig[2].scope: "rack" is not one of')
    doc = small_cluster()
    del doc["subClusters"][0]["topology"]["memoryDomain"]
    assert error_of("cluster", doc) == "subClusters[0].topology.memoryDomain: is required"


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown schema kind"):
        validate("job", {})


# -- the compiled check agrees with jsonschema --------------------------------------------------

REPLACEMENTS = [None, -1, 0, 1.5, 2, "x", "", True, [], {}, [None], [1, 2], {"a": 1}]


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            yield from _paths(v, (*prefix, i))


def _mutate(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if p]
    path = rng.choice(paths)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1]
    if rng.random() < 0.25 and isinstance(parent, dict):
        del parent[key]
    elif rng.random() < 0.1 and isinstance(parent, dict):
        parent["extra_" + str(key)] = rng.choice(REPLACEMENTS)
    else:
        parent[key] = copy.deepcopy(rng.choice(REPLACEMENTS))
    return doc


@pytest.mark.parametrize("kind", ["job-meta", "job-data", "job-start", "cluster"])
def test_compiled_check_agrees_with_jsonschema(kind, meta, data):
    base = {"job-meta": meta, "job-data": data, "job-start": start_payload(), "cluster": small_cluster()}[kind]
    reference = Draft202012Validator({"$ref": f"urn:cc-py:schema:{kind}"}, registry=registry())
    rng = random.Random(kind)
    seen = {True: 0, False: 0}
    for _ in range(400):
        doc = _mutate(base, rng)
        if rng.random() < 0.3:
            doc = _mutate(doc, rng)
        want = reference.is_valid(doc)
        assert is_valid(kind, doc) == want, doc
        seen[want] += 1
    assert seen[True] and seen[False]  # both outcomes were exercised
