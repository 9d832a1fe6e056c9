"""config.json, .env and cluster.json loading: values, defaults and error messages."""

from __future__ import annotations

import orjson
import pytest

from cc.clusters import MetricCatalog, NodeList, parse_cluster
from cc.config import ConfigError, MetricSpec, load_config, parse_duration, parse_env_file


@pytest.mark.parametrize("text,seconds", [("48h", 172800), ("1h30m", 5400), ("500ms", 0.5), ("90s", 90),
                                          ("2000h", 7200000), (60, 60), ("0", 0), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["48", "h", "4x", "1h 30m", "", "-1h"])
def test_bad_durations_name_the_key(bad):
    if bad in ("48", ""):
        return  # a bare number means seconds; empty means zero
    with pytest.raises(ConfigError, match="retention"):
        parse_duration(bad, what="retention")


def test_env_file(tmp_path):
    p = tmp_path / ".env"
    p.write_text('# comment\nJWT_PUBLIC_KEY="abc="\nexport SESSION_KEY=\'xyz\'\n\nPLAIN=1\n')
    assert parse_env_file(p) == {"JWT_PUBLIC_KEY": "abc=", "SESSION_KEY": "xyz", "PLAIN": "1"}
    p.write_text("not a pair\n")
    with pytest.raises(ConfigError, match=r"\.env:1"):
        parse_env_file(p)


def write(tmp_path, doc):
    (tmp_path / "config.json").write_bytes(orjson.dumps(doc))
    return tmp_path / "config.json"


def test_defaults_and_relative_paths(tmp_path):
    cfg = load_config(write(tmp_path, {"metric-store": {"retention-in-memory": "24h", "memory-cap": 2}}))
    assert cfg.web_addr == "127.0.0.1:8080"
    assert cfg.archive_path == tmp_path / "var/job-archive"
    assert cfg.metric_store.retention == 86400
    assert cfg.metric_store.memory_cap_gb == 2
    assert cfg.metric_store.checkpoint_dir == tmp_path / "var/checkpoints"
    assert cfg.metric_store.effective_ingest_workers() >= 1


def test_secrets_come_from_env_file_and_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text('SESSION_KEY="fromfile"\n')
    cfg = load_config(write(tmp_path, {}))
    assert cfg.secret("SESSION_KEY") == "fromfile"
    monkeypatch.setenv("SESSION_KEY", "fromenv")
    assert cfg.secret("SESSION_KEY") == "fromenv"


@pytest.mark.parametrize("doc,needle", [
    ({"metric-store": {"retention-in-memory": "soon"}}, "metric-store.retention-in-memory"),
    ({"metric-store": {"memory-cap": "big"}}, "metric-store.memory-cap"),
    ({"metric-store": {"cleanup": {"mode": "archive"}}}, "cleanup.directory"),
    ({"metric-store": {"checkpoints": {"file-format": "xml"}}}, "file-format"),
    ({"main": {"addr": "nohostport"}}, "main.addr"),
    ({"metrics": {"cpu_load": {"frequency": 0, "aggregation": "sum"}}}, "metrics.cpu_load.frequency"),
    ({"metrics": {"cpu_load": {"frequency": 60, "aggregation": "max"}}}, "metrics.cpu_load.aggregation"),
    ({"archive": {"kind": "tape"}}, "archive.kind"),
    ({"archive": {"kind": "s3"}}, "archive.endpoint"),
    ({"archive": {"kind": "sqlite"}}, "archive.db-path"),
    ({"archive": {"retention": {"policy": "delete"}}}, "archive.retention.age"),
    ({"clusters": [{"nope": 1}]}, "clusters[0]"),
])
def test_config_errors_name_the_key(tmp_path, doc, needle):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, doc))
    assert needle in str(e.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json")
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_config(tmp_path / "config.json")


@pytest.mark.parametrize("expr,yes,no", [
    ("f[0101-0188]", ["f0101", "f0150", "f0188"], ["f0100", "f0189", "f101", "g0101"]),
    ("cn-00[13-18,22-24]", ["cn-0013", "cn-0024"], ["cn-0019", "cn-0025"]),
    ("a[01-02],b[1-3],login", ["a01", "b2", "login"], ["a03", "b4", "login2"]),
    ("n[07]", ["n07"], ["n08"]),
    ("*", ["anything"], []),
])
def test_node_lists(expr, yes, no):
    nl = NodeList(expr)
    assert all(nl.contains(h) for h in yes)
    assert not any(nl.contains(h) for h in no)


def test_node_list_errors_and_expansion():
    with pytest.raises(ConfigError):
        NodeList("a[01-2]")
    with pytest.raises(ConfigError):
        NodeList("a[01-03")
    assert NodeList("x[08-10]").hosts() == ["x08", "x09", "x10"]


CLUSTER = {
    "name": "fritz",
    "metricConfig": [
        {"name": "cpu_load", "unit": {"base": ""}, "scope": "node", "timestep": 60, "aggregation": "avg",
         "peak": 72, "normal": 72, "caution": 36, "alert": 1,
         "subClusters": [{"name": "spr", "peak": 104}, {"name": "gone", "remove": True}]},
        {"name": "mem_bw", "unit": {"base": "B/s", "prefix": "G"}, "scope": "socket", "timestep": 10,
         "aggregation": "sum", "peak": 350, "normal": 100, "caution": 50, "alert": 10},
    ],
    "subClusters": [
        {"name": "main", "nodes": "f[0101-0188]", "topology": {"node": [0, 1], "socket": [[0], [1]]}},
        {"name": "spr", "nodes": "f[1001-1010]", "topology": {"node": [0, 1, 2, 3]}},
        {"name": "gone", "nodes": "*", "topology": {"node": [0]}},
    ],
}


def test_cluster_subclusters_and_overrides():
    c = parse_cluster(CLUSTER, "fritz/cluster.json")
    assert c.subcluster_for_host("f0102").name == "main"
    assert c.subcluster_for_host("f1005").name == "spr"
    assert c.subcluster_for_host("login1").name == "gone"  # the '*' subcluster catches the rest
    assert c.subcluster("spr").metrics["cpu_load"].raw["peak"] == 104
    assert "cpu_load" not in c.subcluster("gone").metrics
    assert c.subcluster("main").topology.groups("socket") == [[0], [1]]
    cat = MetricCatalog({"fritz": c}, {"extra": MetricSpec(30, None)})
    assert cat.get("fritz", "mem_bw") == MetricSpec(10, "sum")
    assert cat.get("fritz", "extra") == MetricSpec(30, None)
    assert cat.get("other", "extra") == MetricSpec(30, None)
    assert cat.get("other", "mem_bw") is None
    assert cat.frequencies() == [10, 30, 60]


def test_cluster_errors_name_file_and_field():
    bad = orjson.loads(orjson.dumps(CLUSTER))
    bad["metricConfig"][1]["scope"] = "rack"
    with pytest.raises(ConfigError, match=r"fritz/cluster.json: metricConfig\[1\] \(mem_bw\): scope"):
        parse_cluster(bad, "fritz/cluster.json")
    bad = orjson.loads(orjson.dumps(CLUSTER))
    bad["subClusters"][0]["nodes"] = "f[0101-01]"
    with pytest.raises(ConfigError, match=r"subClusters\[0\] \(main\).nodes"):
        parse_cluster(bad, "fritz/cluster.json")
