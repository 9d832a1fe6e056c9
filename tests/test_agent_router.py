"""cc-agent router: every operation, the condition language, units, and clear configuration errors."""

from __future__ import annotations

import json

import pytest

from cc.agent import units
from cc.agent.cli import main as agent_main
from cc.agent.collectors import AgentConfigError
from cc.agent.config import load_agent_config, parse_agent_config
from cc.agent.expr import ConditionError, compile_condition
from cc.agent.message import Message, encode
from cc.agent.router import MessageProcessor, Router, RouterConfigError


def msg(name="cpu_load", value=1.5, **tags) -> Message:
    t = {k.replace("_", "-"): v for k, v in tags.items()} if tags else {"type": "node"}
    return Message(name, t, {"source": "X", "unit": "kB"}, value, 100.0)


M = msg("mem_used", 2_000_000.0, type="hwthread", type_id="3", hostname="n1")


@pytest.mark.parametrize(("cond", "expected"), [
    ("true", True), ("false", False), ("*", True),
    ("name == 'mem_used'", True), ("name != 'mem_used'", False), ('name == "mem_used"', True),
    ("name == 'mem_used' && tag.type == 'hwthread'", True),
    ("name == 'mem_used' and tag.type == 'node'", False),
    ("name == 'x' || type == 'hwthread'", True),
    ("!(name == 'x')", True), ("not name == 'mem_used'", False),
    ("type-id == 3", True), ("tag.type-id == '3'", True), ("tags.type-id >= 2", True), ("tag_type-id < 3", False),
    ("value > 1000000", True), ("value <= 1e6", False), ("value == 2000000", True),
    ("name matches '^mem_%w+$'", True), ("name matches 'cpu'", False),
    ("match('mem_.*', name)", True), ("startswith(name, 'mem')", True), ("endswith(name, 'x')", False),
    ("contains(tag.hostname, 'n')", True),
    ("tag.type in ['node', 'hwthread']", True), ("tag.type not in ['node', 'hwthread']", False),
    ("tag.nope == nil", True), ("tag.nope == 'x'", False), ("tag.nope < 3", False),
    ("meta.unit == 'kB'", True), ("meta_source == 'X'", True), ("hostname == 'n1'", True),
    ("messagetype == 'metric'", True), ("timestamp == 100", True),
    ("(name == 'a' || name == 'mem_used') && value > 0", True),
    ("limit > 5", True),  # add_base_env constant
])
def test_conditions(cond, expected):
    assert compile_condition(cond, "t", {"limit": 10})(M) is expected


@pytest.mark.parametrize(("cond", "error"), [
    ("name ==", "unexpected 'end of condition' at column 8"),
    ("mem_used", "unknown name 'mem_used' (to match a metric name write \"name == 'mem_used'\")"),
    ("foo == 1", "unknown name 'foo' (tags are tag.foo"),
    ("name == 'x')", "unexpected ')' at column 12"),
    ("(name == 'x'", "expected ')'"),
    ("value + 1 > 2", "unexpected character '+' at column 7"),
    ("__import__('os')", "unknown function '__import__'"),
    ("eval('1')", "unknown function 'eval'"),
    ("name matches tag.x", "'matches' needs a quoted regular expression"),
    ("name matches '['", "invalid regular expression"),
    ("", "empty condition"),
    ("name = 'x'", "unexpected character '='"),
    ("'unterminated", "unexpected character"),
])
def test_bad_conditions_are_rejected_with_position(cond, error):
    with pytest.raises(ConditionError) as e:
        compile_condition(cond, "router.process_messages.drop_messages_if[2]")
    assert str(e.value).startswith("router.process_messages.drop_messages_if[2]: ")
    assert error in str(e.value)


def route(cfg: dict, msgs: list[Message], host="n1") -> list[Message]:
    return Router(cfg, host).route(msgs, 200.0)


def test_hostname_cluster_and_interval_timestamp():
    out = route({"cluster": "c1"}, [msg(), msg("x", hostname="other")])
    assert [m.tags["hostname"] for m in out] == ["n1", "other"]
    assert all(m.tags["cluster"] == "c1" and m.time == 200.0 for m in out)
    out = Router({"interval_timestamp": False, "hostname_tag": "host"}, "n2").route([msg()], 200.0)
    assert out[0].time == 100.0 and out[0].tags["host"] == "n2" and "hostname" not in out[0].tags


def test_drop_rename_tags_meta_and_units():
    cfg = {"process_messages": {
        "drop_messages": ["load_five"],
        "drop_messages_if": ["name matches '^swap_'", "tag.type == 'hwthread' && tag.type-id == 0"],
        "rename_messages": {"load_one": "cpu_load"},
        "rename_messages_if": {"name == 'cpufreq' && meta.unit == 'MHz'": "clock"},
        "add_tags_if": [{"if": "true", "key": "cluster", "value": "c2"},
                        {"if": "name == 'load_one'", "key": "tagged", "value": "yes"}],  # before rename
        "delete_tags_if": [{"if": "tag.type == 'node'", "key": "unit"}],
        "add_meta_if": [{"if": "true", "key": "group", "value": "G"}],
        "delete_meta_if": [{"if": "name == 'cpufreq'", "key": "source"}],
        "move_meta_to_tag_if": [{"if": "name == 'mem_free'", "key": "unit", "value": "unit"}],
        "move_tag_to_meta_if": [{"if": "name == 'cpu_user'", "key": "unit", "value": "unit"}],
        "change_unit_prefix": {"name == 'mem_used'": "G", "name == 'net_bw'": "M"},
        "normalize_units": True,
    }}
    ms = [
        msg("load_one", 2.0), msg("load_five", 1.0), msg("swap_free", 1.0),
        msg("cpu_user", 50.0, type="hwthread", type_id="0", unit="Percent"),
        msg("cpu_user", 40.0, type="hwthread", type_id="1", unit="Percent"),
        msg("cpu_idle", 40.0, type="node", unit="Percent"),
        Message("cpufreq", {"type": "hwthread", "type-id": "1"}, {"unit": "MHz", "source": "S"}, 2400.0, 1.0),
        Message("mem_used", {"type": "node"}, {"unit": "kB"}, 7_500_000.0, 1.0),
        Message("mem_free", {"type": "node"}, {"unit": "kB"}, 100, 1.0),
        Message("net_bw", {"type": "node"}, {"unit": "bytes/sec"}, 15_060_000.0, 1.0),
    ]
    out = {(m.name, m.tags.get("type-id")): m for m in route(cfg, ms)}
    assert set(out) == {("cpu_load", None), ("cpu_user", "1"), ("cpu_idle", None), ("clock", "1"),
                        ("mem_used", None), ("mem_free", None), ("net_bw", None)}
    load = out[("cpu_load", None)]
    assert load.tags == {"type": "node", "hostname": "n1", "cluster": "c2", "tagged": "yes"}
    assert load.meta["oldname"] == "load_one" and load.meta["group"] == "G"
    user = out[("cpu_user", "1")]
    assert "unit" not in user.tags and user.meta["unit"] == "%"  # moved to meta, then normalised
    assert "unit" not in out[("cpu_idle", None)].tags             # deleted for node scope
    clock = out[("clock", "1")]
    assert clock.value == 2400.0 and "source" not in clock.meta and clock.meta["oldname"] == "cpufreq"
    mem = out[("mem_used", None)]
    assert mem.value == pytest.approx(7.5) and mem.meta["unit"] == "GB"
    free = out[("mem_free", None)]
    assert free.tags["unit"] == "KB" and "unit" not in free.meta  # meta moved to tag, normalised there
    bw = out[("net_bw", None)]
    assert bw.value == pytest.approx(15.06) and bw.meta["unit"] == "MB/s"


def test_change_unit_prefix_keeps_integers_and_ignores_unknown_units():
    p = MessageProcessor({"change_unit_prefix": {"true": "Ki"}})
    m = Message("x", {}, {"unit": "B"}, 4096, 1.0)
    assert p.process(m) and m.value == 4 and m.meta["unit"] == "KiB"
    m = Message("x", {}, {"unit": "load"}, 3.0, 1.0)
    assert p.process(m) and m.value == 3.0 and m.meta["unit"] == "load"
    m = Message("x", {}, {}, 3.0, 1.0)
    assert p.process(m) and m.value == 3.0


def test_stage_order_and_drop_by_type():
    # rename before drop: the drop rule sees the new name
    p = MessageProcessor({"rename_messages": {"a": "b"}, "drop_messages": ["b"],
                          "stage_order": ["rename_messages", "drop_by_name"]})
    assert not p.process(Message("a", {}, {}, 1, 1.0))
    p = MessageProcessor({"rename_messages": {"a": "b"}, "drop_messages": ["b"]})
    m = Message("a", {}, {}, 1, 1.0)
    assert p.process(m) and m.name == "b"
    assert not MessageProcessor({"drop_by_message_type": ["metric"]}).process(Message("a", {}, {}, 1, 1.0))


def test_legacy_router_keys():
    cfg = {"add_tags": [{"key": "cluster", "value": "testcluster", "if": "*"}],
           "delete_tags": [{"key": "unit", "value": "*", "if": "*"}],
           "drop_metrics": ["proc_run"], "drop_metrics_if": ["match('temp_core_%d+', name)"],
           "rename_metrics": {"load_one": "cpu_load"}, "change_unit_prefix": {"mem_used": "G"},
           "normalize_units": True, "num_cache_intervals": 1, "max_forward": 50}
    out = route(cfg, [msg("load_one"), msg("proc_run"), msg("temp_core_12"), msg("temp_core_x"),
                      Message("mem_used", {"unit": "kB"}, {"unit": "kB"}, 1e6, 1.0)])
    assert [m.name for m in out] == ["cpu_load", "temp_core_x", "mem_used"]
    assert all(m.tags["cluster"] == "testcluster" and "unit" not in m.tags for m in out)
    assert out[2].value == pytest.approx(1.0) and out[2].meta["unit"] == "GB"


@pytest.mark.parametrize(("cfg", "error"), [
    ({"process_message": {}}, "router: unknown key 'process_message'"),
    ({"process_messages": {"drop_messages_if": ["name =="]}},
     "router.process_messages.drop_messages_if[0]: unexpected 'end of condition'"),
    ({"process_messages": {"drop_messages_if": "name == 'x'"}},
     "router.process_messages.drop_messages_if: expected a list"),
    ({"process_messages": {"add_tags_if": [{"if": "true", "key": "a"}]}},
     "router.process_messages.add_tags_if[0].value: expected a string"),
    ({"process_messages": {"add_tags_if": [{"iff": "true", "key": "a", "value": "b"}]}},
     "router.process_messages.add_tags_if[0]: unknown key 'iff'"),
    ({"process_messages": {"change_unit_prefix": {"name == 'x'": "X"}}},
     "router.process_messages.change_unit_prefix[\"name == 'x'\"]: unknown unit prefix 'X'"),
    ({"process_messages": {"change_unit_prefix": {"mem_used": "G"}}},
     "to match a metric name write \"name == 'mem_used'\""),
    ({"process_messages": {"rename_messages": {"a": 1}}}, "router.process_messages.rename_messages['a']: expected a string"),
    ({"process_messages": {"stage_order": ["rename", "nope"]}}, "stage_order[1]: unknown stage 'nope'"),
    ({"process_messages": {"add_field_if": []}}, "field operations are not supported"),
    ({"process_messages": {"normalize_units": "yes"}}, "router.process_messages.normalize_units: expected true or false"),
    ({"delete_tags": [{"key": "unit", "if": "bogus =="}]}, "router.delete_tags[0].if: unknown name 'bogus'"),
    ({"drop_metrics": [1]}, "router.drop_metrics[0]: expected a metric name"),
    ({"interval_timestamp": "yes"}, "router.interval_timestamp: expected true or false"),
    ({"cluster": ""}, "router.cluster: expected a cluster name"),
    ({"interval_aggregates": [{"name": "x"}]}, "router.interval_aggregates[0].function: expected an expression"),
    ({"interval_aggregates": {"name": "x"}}, "router.interval_aggregates: expected a list"),
    ({"interval_aggregates": [{"name": "x", "function": "sum(values", "if": "true"}]},
     "router.interval_aggregates[0].function: sum() takes one list, expected ')'"),
    ({"interval_aggregates": [{"name": "x", "function": "exec(values)"}]},
     "router.interval_aggregates[0].function: unknown function 'exec'"),
    ({"interval_aggregates": [{"name": "x", "function": "sum(values)", "if": "name =="}]},
     "router.interval_aggregates[0].if: unexpected 'end of condition'"),
    ({"interval_aggregates": [{"name": "x", "function": "sum(values)", "tag": {}}]},
     "router.interval_aggregates[0]: unknown key 'tag'"),
    ({"interval_aggregates": [{"name": "x", "function": "sum(values)", "meta": {"unit": 1}}]},
     "router.interval_aggregates[0].meta: expected an object of strings"),
    ({"num_cache_intervals": -1}, "router.num_cache_intervals: expected an integer >= 0"),
])
def test_router_config_errors_name_the_key(cfg, error):
    with pytest.raises(RouterConfigError) as e:
        Router(cfg, "h")
    assert error in str(e.value)


def test_units_like_cc_units():
    assert units.normalize("kB") == "KB" and units.normalize("bytes/sec") == "B/s"
    assert units.normalize("Percent") == "%" == units.normalize("percent")
    assert units.normalize("watts") == "W" and units.normalize("Joules") == "J"
    assert units.normalize("packets/sec") == "packets/s" and units.normalize("degC") == "degC"
    assert units.normalize("GBytes") == "GB" and units.normalize("MByte") == "MB"
    assert units.normalize("mB") == "MB"  # nobody counts milli-bytes
    assert units.normalize("load") is None and units.normalize("") is None
    assert units.change_prefix("kB", "G") == (pytest.approx(1e-6), "GB")
    assert units.change_prefix("MiB", "Gi") == (pytest.approx(1 / 1024), "GiB")
    assert units.change_prefix("MHz", "") == (1e6, "Hz")
    assert units.change_prefix("kB", "nope") is None


def test_line_protocol_encoding():
    m = Message("my metric,x", {"type": "node", "a b": "c=d,e", "empty": ""}, {"unit": "kB"}, 3, 1700000000.7)
    assert encode(m) == "my\\ metric\\,x,a\\ b=c\\=d\\,e,type=node value=3i 1700000000"
    assert encode(m, "ms", ("unit",)) == "my\\ metric\\,x,a\\ b=c\\=d\\,e,type=node,unit=kB value=3i 1700000000700"
    assert encode(Message("x", {}, {}, 0.1, 1.0)) == "x value=0.1 1"
    assert encode(Message("x", {}, {}, float("nan"), 1.0)) is None
    assert encode(Message("x", {}, {}, True, 1.0)) == "x value=1i 1"


def test_agent_config_errors_name_the_key(tmp_path):
    def err(doc) -> str:
        with pytest.raises(AgentConfigError) as e:
            parse_agent_config(doc, tmp_path)
        return str(e.value)

    assert "unknown key 'intervall'" in err({"intervall": "10s"})
    assert "main.interval: cannot parse duration" in err({"main": {"interval": "ten"}})
    assert "main.interval: must be at least" in err({"interval": "1ms"})
    assert "'interval' is given both" in err({"interval": "1s", "main": {"interval": "2s"}})
    assert "main.hostname: expected a host name" in err({"hostname": "a b"})
    assert "main.root:" in err({"root": str(tmp_path / "nope")})
    assert "collectors.cpustatt: unknown collector" in err({"collectors": {"cpustatt": {}}})
    assert "sinks-file: file" in err({"sinks-file": "nope.json"})
    assert "receivers: expected an object" in err({"receivers": [{"type": "nats"}]})
    (tmp_path / "router.json").write_text('{"cluster": "c9"}')
    cfg = parse_agent_config({"router-file": "router.json", "main": {"interval": "30s", "hostname": "h"}},
                             tmp_path)
    assert cfg.router == {"cluster": "c9"} and cfg.interval == 30.0 and cfg.hostname == "h"
    assert "stdout" in cfg.sinks and "cpustat" in cfg.collectors


def test_cli_reports_config_errors_and_once_prints_a_round(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sinks": {"s": {"type": "http", "url": "localhost:8082"}}}))
    assert agent_main(["-config", str(bad)]) == 2
    assert "sinks.s.url: expected an http:// or https:// URL" in capsys.readouterr().err
    bad.write_text(json.dumps({"router": {"process_messages": {"drop_messages_if": ["name = 'x'"]}}}))
    assert agent_main(["-config", str(bad)]) == 2
    assert "router.process_messages.drop_messages_if[0]" in capsys.readouterr().err
    good = tmp_path / "agent.json"
    good.write_text(json.dumps({"main": {"hostname": "once1", "duration": "200ms"},
                                "collectors": {"loadavg": {}, "memstat": {}},
                                "router": {"cluster": "c1", "process_messages": {"drop_messages_if": [
                                    "name matches '^(mem|swap)_' && name != 'mem_used'"]}}}))
    assert load_agent_config(good).duration == 0.2
    assert agent_main(["-config", str(good), "--once"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split(",", 1)[0] for ln in lines]
    assert names == ["load_one", "load_five", "load_fifteen", "proc_run", "proc_total", "cpu_load", "mem_used"]
    assert all(",cluster=c1,hostname=once1," in ln for ln in lines)


def _bw(name, value, sock):
    return Message(name, {"type": "socket", "type-id": sock}, {"unit": "MB/s", "source": "likwid"}, value, 7.0)


def test_interval_aggregates_derive_metrics_in_the_same_round():
    cfg = {"hostname_tag": "hostname", "cluster": "c1", "interval_aggregates": [
        {"name": "mem_bw", "if": "name == 'mem_read_bw' || name == 'mem_write_bw'",
         "function": "sum(mem_read_bw) + sum(mem_write_bw)", "tags": {"type": "node"},
         "meta": {"unit": "<copy>", "source": "<copy>", "group": "Memory"}},
        {"name": "temp_cores_avg", "if": "match('temp_core_%d+', metric.Name())", "function": "avg(values)",
         "tags": {"type": "node"}, "meta": {"unit": "degC"}},
        {"name": "bw_sockets", "if": "source == 'likwid' && name == 'mem_read_bw'", "function": "len(values)",
         "tags": {"type": "node"}},
        {"name": "never", "if": "name == 'nope'", "function": "sum(values)"},
        {"name": "per_thread", "if": "name == 'mem_read_bw'", "function": "max(values) / numHWThreads * 2"},
    ]}
    r = Router(cfg, "n7", constants={"numHWThreads": 4})
    msgs = [_bw("mem_read_bw", 10.0, "0"), _bw("mem_read_bw", 20.0, "1"), _bw("mem_write_bw", 5.5, "0"),
            Message("temp_core_0", {"type": "core", "type-id": "0"}, {}, 40, 7.0),
            Message("temp_core_1", {"type": "core", "type-id": "1"}, {}, 50, 7.0)]
    out = r.route(msgs, 60.0)
    derived = {m.name: m for m in out[5:]}
    assert list(derived) == ["mem_bw", "temp_cores_avg", "bw_sockets", "per_thread"]
    assert derived["mem_bw"] == Message("mem_bw", {"hostname": "n7", "cluster": "c1", "type": "node"},
                                        {"unit": "MB/s", "source": "likwid", "group": "Memory"}, 35.5, 60.0)
    assert derived["temp_cores_avg"] == Message("temp_cores_avg", {"hostname": "n7", "cluster": "c1", "type": "node"},
                                                {"unit": "degC"}, 45.0, 60.0)
    assert derived["bw_sockets"].value == 2.0 and derived["per_thread"].value == 10.0
    assert encode(derived["mem_bw"]) == "mem_bw,cluster=c1,hostname=n7,type=node value=35.5 60"


def test_interval_aggregates_pass_the_processor_and_inputs_can_be_dropped():
    cfg = {"interval_aggregates": [{"name": "mem_bw", "if": "match('mem_.*_bw', name)", "function": "sum(values)",
                                    "tags": {"type": "node"}}],
           "drop_metrics_if": ["match('mem_.*_bw', name)"],
           "rename_metrics": {"mem_bw": "memory_bandwidth"}}
    out = Router(cfg, "n1").route([_bw("mem_read_bw", 1.0, "0"), _bw("mem_write_bw", 2.0, "0")], 5.0)
    assert out == [Message("memory_bandwidth", {"hostname": "n1", "type": "node"}, {"oldname": "mem_bw"}, 3.0, 5.0)]


def test_interval_aggregate_failing_function_skips_the_round(caplog):
    r = Router({"interval_aggregates": [{"name": "ratio", "if": "true", "function": "sum(a) / sum(b)"}]}, "h")
    out = r.route([Message("a", {}, {}, 1.0, 1.0), Message("b", {}, {}, 0.0, 1.0)], 1.0)
    assert [m.name for m in out] == ["a", "b"]
    assert "cannot compute ratio" in caplog.text
    out = r.route([Message("a", {}, {}, 1.0, 1.0), Message("b", {}, {}, 4.0, 1.0)], 2.0)
    assert out[-1] == Message("ratio", {"hostname": "h"}, {}, 0.25, 2.0)


def test_legacy_tags_with_conditions_and_hostname_tag():
    cfg = {"hostname_tag": "host",
           "add_tags": [{"key": "type", "value": "socket", "if": "name == 'temp_package_id_0'"},
                        {"key": "type-id", "value": "0", "if": "name == 'temp_package_id_0'"}],
           "delete_tags": [{"key": "unit", "if": "tag.type == 'socket'"}]}
    out = Router(cfg, "n3").route([Message("temp_package_id_0", {"type": "node", "unit": "degC"}, {}, 51, 3.0),
                                   Message("other", {"type": "node", "unit": "degC"}, {}, 1, 3.0)], 10.0)
    assert out == [Message("temp_package_id_0", {"type": "socket", "type-id": "0", "host": "n3"}, {}, 51, 10.0),
                   Message("other", {"type": "node", "unit": "degC", "host": "n3"}, {}, 1, 10.0)]
