"""Property tests (hypothesis, derandomized) for the parsers of outside input: line protocol
batches, router conditions, cluster.json and the job archive's meta.json / data.json[.gz].

Each asserts the documented error type naming the file/field/line/column, never another
exception, and for what is accepted, that the consumers of the result do not raise either.
The regression cases found by fuzzing are at the end of each section.
"""

from __future__ import annotations

import copy
import re
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc import jobdata
from cc.agent.expr import ConditionError, compile_condition
from cc.agent.message import Message
from cc.archive import ArchiveError, JobArchive, job_meta
from cc.archive.dbsync import JobFileError, _load_json, check_job
from cc.clusters import MetricCatalog, load_cluster_file, parse_cluster
from cc.config import ConfigError
from cc.db import job_from_json
from tests.test_lineproto import NOW, make_parser, points, ref_parse, valid_lines

FUZZ = settings(derandomize=True, deadline=None, max_examples=100, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ROOT = Path(__file__).resolve().parents[1]

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) \
    | st.text(max_size=6)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=6), c,
                                                                                             max_size=5),
                           max_leaves=25)


def mutate(doc, draw) -> object:
    """``doc`` with one value somewhere replaced by arbitrary JSON, or one key dropped."""
    doc = copy.deepcopy(doc)
    paths = []

    def walk(x, path):
        paths.append(path)
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, (*path, k))
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, (*path, i))
    walk(doc, ())
    path = draw(st.sampled_from(paths))
    if not path:
        return draw(json_values)
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return doc


# --- line protocol: a batch with bad lines ----------------------------------------------------

BAD_LINES = [
    (b"cpu_load,cluster=c1,hostname=n1 value=abc 1763600000", "invalid number"),
    (b"cpu_load,cluster=c1,hostname=n1 value=1 -5", "negative"),
    (b"cpu_load,cluster=c1,hostname=n1 value=1 99999999999999999999", "int64"),
    (b"cpu_load,cluster=c1,hostname=n/1 value=1 1763600000", "invalid host name"),
    (b"cpu_load,cluster=c1,hostname=n1 value=1,x=2 1763600000", "exactly one field"),
    (b"cpu_load,cluster=c1 value=1 1763600000", "missing hostname"),
    (b"cpu_load,cluster=c1,hostname=n1,type=gpu value=1 1763600000", "unknown scope"),
    (b"cpu_load,cluster=c1,hostname=n1 value=inf 1763600000", "finite"),
    (b"cpu_load,cluster=c1,hostname=n1", "missing field set"),
    (b"cpu_load,cluster=c1,hostname=n1 value=1 1763600000 junk", "unexpected text"),
]


@FUZZ
@given(st.lists(st.one_of(valid_lines().map(lambda x: ("ok", x[0])), st.sampled_from(BAD_LINES).map(
    lambda b: ("bad", b))), min_size=1, max_size=30))
def test_a_batch_stores_the_good_lines_and_numbers_each_bad_one(items):
    items = [(k, x) for k, x in items if k == "bad" or b"cluster=" in x]  # valid lines here carry their cluster
    body = b"\n".join(x if k == "ok" else x[0] for k, x in items)
    want_points = [e[1:] for k, x in items if k == "ok" for e in [ref_parse(x, None, NOW, None)] if e[0] == "point"]
    want_errors = [(i + 1, x[1]) for i, (k, x) in enumerate(items) if k == "bad"]
    parser = make_parser(max_errors=1000)
    for _ in range(2):  # cold (slow path) and warm (fast path for the known prefixes)
        parsed = parser.parse(body, None, NOW)
        assert points(parser, parsed) == want_points
        assert parsed.error_count == len(want_errors)
        assert [e.line for e in parsed.errors] == [n for n, _ in want_errors]
        for e, (_, fragment) in zip(parsed.errors, want_errors, strict=True):
            assert fragment in e.reason, (e, fragment)


# --- router conditions ------------------------------------------------------------------------

MESSAGES = [Message("cpu_load", {"type": "node", "hostname": "n1"}, {"unit": "load"}, 1.5, 1.7e9),
            Message("x y", {"type-id": "3"}, {}, -0.0, 0.0), Message("", {}, {}, 10**20, -1.0)]
TOKENS = ["name", "value", "tag.type", "meta.unit", "type-id", "'cpu_%w+'", '"x"', "0", "1.5e3", "true", "nil",
          "==", "!=", "<", ">=", "&&", "||", "!", "and", "or", "not", "in", "matches", "(", ")", "[", "]", ",",
          "match", "startswith", "contains", "nodes", "*", "%", "'", "-", ".", "9" * 70, "'a{99999999999}'"]


@FUZZ
@given(st.one_of(st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join), st.text(max_size=40),
                 st.integers(60, 3000).map(lambda n: "(" * n + "true" + ")" * n),
                 st.integers(60, 3000).map(lambda n: "!" * n + "true")))
def test_conditions_compile_or_name_the_column_and_never_raise_when_evaluated(text):
    try:
        cond = compile_condition(text, "router.x", {"nodes": ["n1"]})
    except ConditionError as e:
        assert str(e).startswith("router.x: ")
        assert "column" in str(e) or "regular expression" in str(e) or "empty condition" in str(e)
        return
    for m in MESSAGES:
        assert isinstance(cond(m), bool)


@pytest.mark.parametrize("text,error", [
    ("(" * 200 + "true" + ")" * 200, "nested more than 64 levels deep at column 65"),
    ("!" * 5000 + "true", "nested more than 64 levels deep"),
    ("value == " + "1" * 5000, "number longer than 64 characters at column 10"),
    ("name matches 'a{99999999999}'", "invalid regular expression"),
])
def test_condition_regressions_found_by_fuzzing(text, error):
    with pytest.raises(ConditionError, match=error):
        compile_condition(text)


# --- cluster.json -----------------------------------------------------------------------------

FRITZ = orjson.loads((ROOT / "cc" / "sim" / "clusters" / "fritz.json").read_bytes())


def use_cluster(c) -> None:
    """What the store, query engine, web and simulator ask of a loaded cluster."""
    assert all(f > 0 for f in MetricCatalog({c.name: c}, {}).frequencies())
    c.footprint_keys()
    c.subcluster_for_host("f0101")
    for sc in c.subclusters:
        sc.nodes.hosts()
        for scope in ("node", "socket", "memoryDomain", "die", "core", "hwthread"):
            assert all(type(t) is int for g in sc.topology.groups(scope) for t in g)
        sc.topology.accelerator_ids()


@FUZZ
@given(st.data())
def test_cluster_json_mutations_load_or_name_file_and_field(tmp_path, data):
    doc = mutate(FRITZ, data.draw)
    path = tmp_path / "fritz" / "cluster.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(orjson.dumps(doc))
    try:
        c = load_cluster_file(path)
    except ConfigError as e:
        assert str(e).startswith(str(path) + ": ")
        return
    use_cluster(c)


@FUZZ
@given(st.binary(max_size=200))
def test_cluster_json_arbitrary_bytes(tmp_path, blob):
    path = tmp_path / "fritz" / "cluster.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(blob)
    with pytest.raises(ConfigError, match="cluster.json: "):
        load_cluster_file(path)


def _sc(**topology):
    return {"name": "c", "metricConfig": [{"name": "m", "timestep": 60}],
            "subClusters": [{"name": "s", "topology": {"node": [0, 1], **topology}}]}


@pytest.mark.parametrize("doc,error", [
    (_sc(node=["a"]), r"subClusters\[0\] \(s\)\.topology\.node: must be a list of hardware-thread ids"),
    (_sc(node=[[0]]), "topology.node: must be a list"),
    (_sc(socket="0-1"), "topology.socket: must be a list of lists"),
    (_sc(core=[[0], ["1"]]), "topology.core: must be a list of lists"),
    (_sc(accelerators=["gpu0"]), "topology.accelerators: must be a list of objects with an 'id'"),
    ({**_sc(), "metricConfig": [{"name": "m", "timestep": 60, "unit": "B/s"}]}, r"metricConfig\[0\] \(m\)\.unit"),
    ({**_sc(), "metricConfig": [{"name": "m", "timestep": 60, "subClusters": [1]}]}, r"\(m\)\.subClusters"),
    ({**_sc(), "subClusters": [{"name": "s", "nodes": ["a"], "topology": {"node": [0]}}]}, r"\(s\)\.nodes: must be"),
    ({**_sc(), "subClusters": [{"name": "s", "nodes": "n[00000000-99999999]", "topology": {"node": [0]}}]},
     "names 100000000 nodes, more than 1000000"),
])
def test_cluster_json_regressions_found_by_fuzzing(doc, error):
    with pytest.raises(ConfigError, match=error):
        parse_cluster(doc, "x/cluster.json")


def test_unreadable_cluster_json_is_a_config_error(tmp_path):
    d = tmp_path / "fritz" / "cluster.json"
    d.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(ConfigError, match=f"{d}: cannot read"):
        load_cluster_file(d)


# --- job archive ------------------------------------------------------------------------------

CLUSTER = parse_cluster({
    "name": "fritz",
    "metricConfig": [{"name": "flops_any", "scope": "hwthread", "timestep": 60, "aggregation": "sum",
                      "unit": {"base": "F/s"}, "footprint": "avg"}],
    "subClusters": [{"name": "main", "nodes": "f[0101-0104]", "topology": {"node": [0, 1, 2, 3],
                                                                        "socket": [[0, 1], [2, 3]]}}],
}, "cluster.json")
META = job_meta(job_from_json({
    "jobId": 1234, "cluster": "fritz", "subCluster": "main", "startTime": 1700000000, "duration": 600, "user": "u",
    "project": "p", "numNodes": 1, "numHwthreads": 4, "exclusive": 1, "jobState": "completed",
    "resources": [{"hostname": "f0101"}], "monitoringStatus": 3}),
    {"flops_any": {"unit": {"base": "F/s"}, "avg": 1.5, "min": 1, "max": 2}})
SERIES = [{"hostname": "f0101", "statistics": {"avg": 1.5, "min": 1.0, "max": 2.0}, "data": [None, 1.0, 2.0] * 5}
          for _ in range(3)]
DATA = {"flops_any": {"node": {"unit": {"base": "F/s"}, "timestep": 60, "series": SERIES},
                      "socket": {"unit": {"base": "F/s"}, "timestep": 60, "series": [dict(s, id="0") for s in SERIES]}}}


@pytest.fixture
def archive(tmp_path):
    a = JobArchive(tmp_path, cache_bytes=0)
    a.job_dir("fritz", 1234, 1700000000).mkdir(parents=True)
    return a


def job():
    j = job_from_json(META)
    j.monitoring_status = 3
    return j


def write_data(archive: JobArchive, raw: bytes, gz: bool) -> Path:
    d = archive.job_dir("fritz", 1234, 1700000000)
    for n in ("data.json", "data.json.gz"):
        (d / n).unlink(missing_ok=True)
    if gz:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        raw = c.compress(raw) + c.flush()
    path = d / ("data.json.gz" if gz else "data.json")
    path.write_bytes(raw)
    return path


def read_data(archive: JobArchive, path: Path) -> None:
    """Load as the web process does (resampled, with statistics series); ArchiveError names the file."""
    try:
        jobdata.load_archived(archive, job(), None, None, 120, minimum_points=2)
    except ArchiveError as e:
        assert str(e).startswith(f"{path}: "), e
        return
    jobdata.load_archived(archive, job(), ["flops_any"], ["node"], 0)


@FUZZ
@given(st.data(), st.booleans())
def test_data_json_mutations_read_or_name_file_and_field(archive, data, gz):
    path = write_data(archive, orjson.dumps(mutate(DATA, data.draw)), gz)
    read_data(archive, path)


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_data_json_arbitrary_bytes(archive, blob, gz):
    path = write_data(archive, blob, gz)
    read_data(archive, path)


@FUZZ
@given(st.data())
def test_meta_json_mutations_are_read_or_rejected_naming_file_and_field(archive, data):
    path = archive.job_dir("fritz", 1234, 1700000000) / "meta.json"
    path.write_bytes(orjson.dumps(mutate(META, data.draw)))
    try:
        archive.load_meta("fritz", 1234, 1700000000)
    except ArchiveError as e:
        assert str(e).startswith(f"{path}: ")
    try:
        check_job(_load_json(path), str(path), {"fritz": CLUSTER})
    except JobFileError as e:
        assert str(e).startswith(f"{path}: ")


@pytest.mark.parametrize("doc,error", [
    ([1, 2], r"\(document\): must be an object of metrics"),
    ({"flops_any": []}, "flops_any: must be an object of scopes"),
    ({"flops_any": {"node": {"series": {}}}}, r"flops_any\.node\.series: must be a list"),
    ({"flops_any": {"node": {"series": [{"data": ["1"]}]}}}, r"series\[0\]\.data: must be a list of numbers"),
    ({"flops_any": {"node": {"series": [{"data": [[1]]}]}}}, r"series\[0\]\.data"),
    ({"flops_any": {"node": {"series": [1]}}}, r"series\[0\]: must be an object"),
    ({"flops_any": {"node": {"timestep": "60", "series": []}}}, r"flops_any\.node\.timestep"),
    ({"flops_any": {"node": {"series": [{"data": [1], "statistics": {"avg": "x"}}]}}}, r"series\[0\]\.statistics"),
])
def test_data_json_regressions_found_by_fuzzing(archive, doc, error):
    path = write_data(archive, orjson.dumps(doc), False)
    with pytest.raises(ArchiveError) as ei:
        archive.load_data("fritz", 1234, 1700000000)
    assert str(ei.value).startswith(f"{path}: ") and re.search(error, str(ei.value)), ei.value


def test_cut_off_gzip_is_an_error_not_a_short_document(archive):
    path = write_data(archive, orjson.dumps(DATA), True)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - 12])  # the deflate stream is complete only with its last bytes
    with pytest.raises(ArchiveError, match=f"{path}: unreadable"):
        archive.load_data("fritz", 1234, 1700000000)


def test_archived_timestep_that_does_not_divide_the_resolution_is_resampled(archive):
    """Found by atheris: timestep 78 s and a 120 s resolution raised ValueError in resample."""
    doc = {"flops_any": {"node": {"unit": {"base": "F/s"}, "timestep": 78,
                                  "series": [{"hostname": "f0101", "data": [float(i) for i in range(40)]}]}}}
    write_data(archive, orjson.dumps(doc), False)
    got = jobdata.load_archived(archive, job(), None, None, 120, minimum_points=2)["flops_any"]["node"]
    assert got["timestep"] == 78  # 120 s rounds down to one timestep: nothing to downsample
    got = jobdata.load_archived(archive, job(), None, None, 400, minimum_points=2)["flops_any"]["node"]
    assert got["timestep"] == 390 and len(got["series"][0]["data"]) == 8
