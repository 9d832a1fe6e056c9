"""No config key is silently ignored: unknown keys and unsupported ones are named at start."""

from __future__ import annotations

import orjson
import pytest

from cc.config import ConfigError, load_config
from cc.configkeys import RULES, audit
from supervisor._init import default_config


def write(tmp_path, doc):
    (tmp_path / "config.json").write_bytes(orjson.dumps(doc))
    return tmp_path / "config.json"


def test_a_typo_is_refused_with_its_full_path(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'main\.resampling\.trigers'"):
        load_config(write(tmp_path, {"main": {"resampling": {"trigers": 30}}}))
    with pytest.raises(ConfigError, match=r"unknown config key 'metric-stroe'"):
        load_config(write(tmp_path, {"metric-stroe": {}}))


def test_unsupported_keys_warn_and_name_what_happens_instead(tmp_path):
    cfg = load_config(write(tmp_path, {"cron": {"duration-worker": "1m", "commit-job-worker": "5m"}}))
    assert len(cfg.warnings) == 1
    assert "cron.commit-job-worker" in cfg.warnings[0] and "writes every job to the database" in cfg.warnings[0]


def test_a_warned_subtree_is_reported_once(tmp_path):
    rep = audit({"main": {"db-config": {"cache-size-mb": 2048, "whatever": 1}}})
    assert rep.errors == [] and len(rep.warnings) == 1 and "main.db-config" in rep.warnings[0]


def test_free_form_maps_and_list_items_are_not_checked_key_by_key():
    rep = audit({"metrics": {"any_metric_name": {"frequency": 60, "aggregation": "avg"}},
                 "clusters": [{"name": "c1", "filterRanges": {"numNodes": {"from": 1, "to": 64}}}]})
    assert rep.errors == [] and rep.warnings == []


def test_archive_store_and_retention_keys_are_implemented():
    rep = audit({"archive": {"kind": "s3", "endpoint": "https://s3.example.org", "bucket": "jobs", "access-key": "a",
                             "secret-key": "s", "region": "r", "use-path-style": True, "db-path": "x",
                             "retention": {"policy": "move", "age": 1, "include-db": True, "omit-tagged": "all",
                                           "format": "parquet", "target-kind": "s3", "target-endpoint": "e",
                                           "target-bucket": "b", "target-access-key": "a", "target-secret-key": "s",
                                           "target-region": "r", "target-use-path-style": True,
                                           "max-file-size-mb": 64, "target-path": "p"}}})
    assert rep.errors == [] and rep.warnings == []


def test_security_keys_are_implemented():
    rep = audit({"main": {"user": "cc", "group": "cc", "https-cert-file": "c.pem", "https-key-file": "k.pem",
                          "redirect-http-to": "https://x", "trusted-proxies": ["10.0.0.1"]}})
    assert rep.errors == [] and rep.warnings == []


def test_what_cc_supervise_init_writes_is_fully_supported():
    doc = default_config(["c1"], "127.0.0.1:8080", "127.0.0.1:8082", 2.0)
    assert audit(doc).errors == [] and audit(doc).warnings == []


def test_every_rule_has_a_known_parent():
    for path in RULES:
        parent = path.removesuffix(".*").removesuffix("[]").rpartition(".")[0]
        if parent:
            assert parent in RULES or parent.removesuffix("[]") in RULES, path
