"""The /api/query engine (cc.query) against a real shared-memory store."""

from __future__ import annotations

import math
import time
import uuid
from types import SimpleNamespace

import numpy as np
import pytest

from cc.clusters import MetricCatalog, parse_cluster
from cc.query import QueryError, execute, lttb, parse_request, resample
from cc.shm import Layout, SeriesKey, Store, unlink_all

F = 60
N = 30  # points written per series
NAN = float("nan")

CLUSTER = {
    "name": "test",
    "metricConfig": [
        {"name": "cpu_load", "scope": "node", "timestep": F, "aggregation": "avg"},
        {"name": "flops", "scope": "hwthread", "timestep": F, "aggregation": "sum"},
        {"name": "clock", "scope": "hwthread", "timestep": F, "aggregation": "avg"},
        {"name": "temp", "scope": "hwthread", "timestep": F, "aggregation": None},
        {"name": "mem_bw", "scope": "socket", "timestep": F, "aggregation": "sum"},
        {"name": "acc_util", "scope": "accelerator", "timestep": F, "aggregation": "avg"},
        {"name": "net_bw", "scope": "node", "timestep": F, "aggregation": "sum"},
        {"name": "fast", "scope": "node", "timestep": 10, "aggregation": "sum"},
    ],
    "subClusters": [{
        "name": "main",
        "nodes": "n[01-04]",
        "topology": {
            # 2 sockets x 2 cores x 2 hwthreads, SMT siblings numbered apart (core k = [k, k + 4])
            "node": [0, 1, 2, 3, 4, 5, 6, 7],
            "socket": [[0, 1, 4, 5], [2, 3, 6, 7]],
            "memoryDomain": [[0, 1, 4, 5], [2, 3, 6, 7]],
            "core": [[0, 4], [1, 5], [2, 6], [3, 7]],
            "accelerators": [{"id": "0", "type": "Nvidia GPU", "model": "A100"},
                             {"id": "1", "type": "Nvidia GPU", "model": "A100"}],
        },
    }, {
        "name": "sparse",  # hardware thread numbers that are not positions
        "nodes": "s[01-02]",
        "topology": {"node": [10, 11, 12, 13], "socket": [[10, 12], [11, 13]]},
    }],
}


@pytest.fixture
def env():
    inst = "qt" + uuid.uuid4().hex[:8]
    layout = Layout.compute(6 * 3600, [10, 60], memory_cap_gb=0.2)
    store, _ = Store.create(inst, layout)
    cluster = parse_cluster(CLUSTER, "test")
    clusters = {"test": cluster}
    catalog = MetricCatalog(clusters, {})
    now = int(time.time()) // F * F
    base = now - N * F
    ns = SimpleNamespace(store=store, clusters=clusters, catalog=catalog, now=now, base=base)

    def put(host, metric, values, type="node", type_id="", stype="", stype_id="", start=None, freq=F):
        key = SeriesKey("test", host, metric, type, str(type_id), stype, stype_id)
        sid = int(store.resolve([key], [freq])[0])
        assert sid >= 0
        values = np.asarray(values, dtype=np.float64)
        ts = (base if start is None else start) + freq * np.arange(len(values))
        stats = store.write(np.full(len(values), sid), ts, values)
        assert stats.written == len(values)
        return values

    def query(queries, minimum_points=1000, **top):
        doc = {"cluster": "test", "from": base, "to": now, "with-padding": False, "queries": queries}
        doc.update(top)
        return execute(parse_request(doc), store, clusters, catalog, minimum_points=minimum_points)

    ns.put, ns.query = put, query
    try:
        yield ns
    finally:
        store.close()
        unlink_all(inst)


def hw_values(i):
    return np.arange(N, dtype=np.float64) + 100.0 * i


def put_hwthreads(env, metric, host="n01", values=hw_values):
    return {i: env.put(host, metric, values(i), "hwthread", i) for i in range(8)}


def only(results):
    assert len(results) == 1 and len(results[0]) == 1, results
    return results[0][0]


def same(a, b):
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)


# -- request validation ---------------------------------------------------------------


def _req(**kw):
    doc = {"cluster": "test", "from": 0, "to": 60, "queries": [{"metric": "m", "host": "h"}]}
    doc.update(kw)
    return doc


@pytest.mark.parametrize("doc, field", [
    ([], "request body:"),
    ({"from": 0, "to": 1}, "cluster:"),
    (_req(cluster=""), "cluster:"),
    ({"cluster": "test", "to": 1}, "from: is required"),
    (_req(**{"from": 1.5}), "from: must be an integer"),
    (_req(**{"from": True}), "from: must be an integer"),
    (_req(to="60"), "to: must be an integer"),
    (_req(**{"from": 100, "to": 50}), "from: 100 is after to"),
    (_req(**{"with-stats": "yes"}), "with-stats: must be a boolean"),
    (_req(**{"with-data": 1}), "with-data: must be a boolean"),
    (_req(**{"with-padding": "no"}), "with-padding: must be a boolean"),
    (_req(**{"for-all-nodes": "cpu_load"}), "for-all-nodes: must be a list"),
    (_req(queries={}), "queries: must be a list"),
    (_req(queries=["x"]), "queries[0]: must be an object"),
    (_req(queries=[{"host": "h"}]), "queries[0].metric: is required"),
    (_req(queries=[{"metric": "m"}]), "queries[0].host: is required"),
    (_req(queries=[{"metric": "m", "host": "h"}, {"metric": "m", "host": "h"},
                   {"metric": "m", "host": "h", "type": "core", "type-ids": [1.5]}]),
     "queries[2].type-ids: must be a list of strings"),
    (_req(queries=[{"metric": "m", "host": "h", "type-ids": "0"}]), "queries[0].type-ids: must be a list"),
    (_req(queries=[{"metric": "m", "host": "h", "subtype-ids": [None]}]), "queries[0].subtype-ids:"),
    (_req(queries=[{"metric": "m", "host": "h", "type": 3}]), "queries[0].type: must be a non-empty string"),
    (_req(queries=[{"metric": "m", "host": "h", "resolution": -1}]), "queries[0].resolution:"),
    (_req(queries=[{"metric": "m", "host": "h", "resolution": 1.5}]), "queries[0].resolution:"),
    (_req(queries=[{"metric": "m", "host": "h", "scale-by": "2"}]), "queries[0].scale-by: must be a number"),
    (_req(queries=[{"metric": "m", "host": "h", "aggreg": 1}]), "queries[0].aggreg: must be a boolean"),
])
def test_request_validation_names_the_field(doc, field):
    with pytest.raises(QueryError) as exc:
        parse_request(doc)
    assert str(exc.value).startswith(field), str(exc.value)


def test_request_defaults_and_normalisation():
    req = parse_request({"cluster": "c", "from": 1, "to": 2, "with-stats": None, "queries": [
        {"metric": "m", "host": "h", "type": "core", "type-ids": [0, "1"], "subtype-ids": [2]}]})
    assert (req.with_stats, req.with_data, req.with_padding) == (True, True, True)
    q = req.queries[0]
    assert q.type_ids == ["0", "1"] and q.subtype_ids == ["2"]
    assert (q.aggreg, q.resolution, q.scale_by, q.subtype) == (False, 0, 0.0, None)
    assert req.for_all_nodes is None
    req = parse_request({"cluster": "c", "from": 1, "to": 1, "with-data": False})
    assert req.queries == [] and req.with_data is False


def test_too_many_points_is_rejected(env):
    with pytest.raises(QueryError, match=r"from/to: .*at most 5000000"):
        env.query([{"metric": "cpu_load", "host": "n01"}], **{"from": 0})
    with pytest.raises(QueryError, match="fast"):  # the 10 s metric overflows first
        env.query([{"metric": "fast", "host": "n01"}], **{"from": env.now - 10 * 5_000_001})


# -- selection ------------------------------------------------------------------------


def test_node_series(env):
    v = env.put("n01", "cpu_load", np.linspace(0.5, 3.5, N))
    r = only(env.query([{"metric": "cpu_load", "host": "n01"}])["results"])
    assert same(r["data"], v)
    assert (r["from"], r["to"], r["resolution"]) == (env.base, env.now, F)
    assert r["avg"] == pytest.approx(v.mean()) and (r["min"], r["max"]) == (0.5, 3.5)
    assert "error" not in r
    # type "node" is the node level too
    r2 = only(env.query([{"metric": "cpu_load", "host": "n01", "type": "node", "type-ids": ["0"]}])["results"])
    assert same(r2["data"], v)


def test_node_aggregates_hwthreads_sum_and_avg(env):
    hw = put_hwthreads(env, "flops")
    hwc = put_hwthreads(env, "clock", values=lambda i: np.full(N, 1000.0 + i))
    res = env.query([{"metric": "flops", "host": "n01"}, {"metric": "clock", "host": "n01"}])["results"]
    assert same(res[0][0]["data"], sum(hw.values()))
    assert same(res[1][0]["data"], np.full(N, 1003.5))
    assert res[1][0]["avg"] == pytest.approx(1003.5)
    assert np.mean(list(hwc.values())) == pytest.approx(1003.5)


def test_scopes_derived_from_hwthreads_via_topology(env):
    hw = put_hwthreads(env, "flops")
    put_hwthreads(env, "clock")
    res = env.query([
        {"metric": "flops", "host": "n01", "type": "core", "type-ids": ["0", "3"]},
        {"metric": "flops", "host": "n01", "type": "socket", "type-ids": ["1"]},
        {"metric": "flops", "host": "n01", "type": "memoryDomain", "type-ids": [0]},
        {"metric": "clock", "host": "n01", "type": "socket", "type-ids": ["0"]},
        {"metric": "flops", "host": "n01", "type": "hwthread", "type-ids": ["5"]},
    ])["results"]
    assert [len(r) for r in res] == [2, 1, 1, 1, 1]
    assert same(res[0][0]["data"], hw[0] + hw[4]) and same(res[0][1]["data"], hw[3] + hw[7])
    assert same(res[1][0]["data"], hw[2] + hw[3] + hw[6] + hw[7])
    assert same(res[2][0]["data"], hw[0] + hw[1] + hw[4] + hw[5])
    assert same(res[3][0]["data"], (hw[0] + hw[1] + hw[4] + hw[5]) / 4)
    assert same(res[4][0]["data"], hw[5])


def test_derivation_uses_hwthread_numbers(env):
    hw = {t: env.put("s01", "flops", np.full(N, float(t)), "hwthread", t) for t in (10, 11, 12, 13)}
    res = env.query([{"metric": "flops", "host": "s01", "type": "socket", "type-ids": ["0", "1"]}])["results"]
    assert same(res[0][0]["data"], hw[10] + hw[12]) and same(res[0][1]["data"], hw[11] + hw[13])


def test_native_socket_series(env):
    s0 = env.put("n01", "mem_bw", np.full(N, 10.0), "socket", "0")
    s1 = env.put("n01", "mem_bw", np.full(N, 32.0), "socket", "1")
    res = env.query([
        {"metric": "mem_bw", "host": "n01", "type": "socket", "type-ids": ["1", "0"]},
        {"metric": "mem_bw", "host": "n01"},
        {"metric": "mem_bw", "host": "n01", "type": "hwthread", "type-ids": ["0"]},
        {"metric": "mem_bw", "host": "n01", "type": "core", "type-ids": ["0", "1"]},
    ])["results"]
    assert same(res[0][0]["data"], s1) and same(res[0][1]["data"], s0)
    assert same(res[1][0]["data"], s0 + s1)
    assert len(res[2]) == 1 and "data" not in res[2][0]
    assert res[2][0]["error"] == "metric 'mem_bw' is only available at scope 'socket'"
    assert [e["error"] for e in res[3]] == ["metric 'mem_bw' is only available at scope 'socket'"] * 2


def test_node_level_never_mixes_scopes(env):
    env.put("n01", "mem_bw", np.full(N, 10.0), "socket", "0")
    env.put("n01", "mem_bw", np.full(N, 20.0), "socket", "1")
    put_hwthreads(env, "mem_bw", values=lambda i: np.full(N, 1.0))
    r = only(env.query([{"metric": "mem_bw", "host": "n01"}])["results"])
    assert same(r["data"], np.full(N, 30.0))  # sockets only, not sockets + hwthreads
    # with a node series present, it wins
    env.put("n01", "mem_bw", np.full(N, 7.0))
    r = only(env.query([{"metric": "mem_bw", "host": "n01"}])["results"])
    assert same(r["data"], np.full(N, 7.0))


def test_null_aggregation(env):
    hw = put_hwthreads(env, "temp")
    res = env.query([
        {"metric": "temp", "host": "n01"},
        {"metric": "temp", "host": "n01", "type": "hwthread", "type-ids": ["3"]},
        {"metric": "temp", "host": "n01", "type": "core", "type-ids": ["0"]},
        {"metric": "temp", "host": "n01", "type": "hwthread", "type-ids": ["1", "2"], "aggreg": True},
    ])["results"]
    msg = "metric 'temp' cannot be aggregated (aggregation is null)"
    assert res[0] == [res[0][0]] and res[0][0]["error"] == msg and "data" not in res[0][0]
    assert same(res[1][0]["data"], hw[3])
    assert res[2][0]["error"] == msg and res[3][0]["error"] == msg


def test_missing_host_or_metric_gives_no_entry(env):
    put_hwthreads(env, "flops")
    res = env.query([
        {"metric": "flops", "host": "nope"},
        {"metric": "nope", "host": "n01"},
        {"metric": "flops", "host": "n01", "type": "hwthread", "type-ids": ["99", "2", "42"]},
        {"metric": "flops", "host": "n01", "type": "accelerator", "type-ids": ["0"]},
        {"metric": "flops", "host": "n01", "type": "hwthread"},  # no ids: nothing selected (as cc)
    ])["results"]
    assert res[0] == [] and res[1] == [] and res[4] == []
    assert len(res[2]) == 1 and same(res[2][0]["data"], hw_values(2))
    assert res[3][0]["error"] == "metric 'flops' is only available at scope 'hwthread'"


def test_one_result_per_type_id_in_order_and_aggreg(env):
    hw = put_hwthreads(env, "flops")
    res = env.query([
        {"metric": "flops", "host": "n01", "type": "hwthread", "type-ids": ["6", "1", "3"]},
        {"metric": "flops", "host": "n01", "type": "hwthread", "type-ids": ["6", "1", "3"], "aggreg": True},
        {"metric": "flops", "host": "n01", "type": "core", "type-ids": ["0", "1"], "aggreg": True},
    ])["results"]
    assert [e["data"] for e in res[0]] == [hw[6].tolist(), hw[1].tolist(), hw[3].tolist()]
    assert len(res[1]) == 1 and same(res[1][0]["data"], hw[6] + hw[1] + hw[3])
    assert same(res[2][0]["data"], hw[0] + hw[4] + hw[1] + hw[5])


def test_accelerators(env):
    a0 = env.put("n01", "acc_util", np.full(N, 20.0), "accelerator", "0")
    a1 = env.put("n01", "acc_util", np.full(N, 60.0), "accelerator", "1")
    res = env.query([
        {"metric": "acc_util", "host": "n01"},
        {"metric": "acc_util", "host": "n01", "type": "accelerator", "type-ids": ["1", "0"]},
        {"metric": "acc_util", "host": "n01", "type": "socket", "type-ids": ["0"]},
    ])["results"]
    assert same(res[0][0]["data"], (a0 + a1) / 2)
    assert same(res[1][0]["data"], a1) and same(res[1][1]["data"], a0)
    assert res[2][0]["error"] == "metric 'acc_util' is only available at scope 'accelerator'"


def test_subtype_selection(env):
    eth = env.put("n01", "net_bw", np.full(N, 1.0), "node", "", "nic", "eth0")
    ib = env.put("n01", "net_bw", np.full(N, 5.0), "node", "", "nic", "ib0")
    m0 = env.put("n01", "acc_util", np.full(N, 10.0), "accelerator", "0", "mig", "0")
    m1 = env.put("n01", "acc_util", np.full(N, 30.0), "accelerator", "0", "mig", "1")
    res = env.query([
        {"metric": "net_bw", "host": "n01"},
        {"metric": "net_bw", "host": "n01", "type": "node", "subtype": "nic", "subtype-ids": ["ib0", "eth0"]},
        {"metric": "acc_util", "host": "n01", "type": "accelerator", "type-ids": ["0"],
         "subtype": "mig", "subtype-ids": ["1", "0", "7"]},
        {"metric": "acc_util", "host": "n01", "type": "accelerator", "type-ids": ["0"],
         "subtype": "mig", "subtype-ids": ["1", "0"], "aggreg": True},
        {"metric": "acc_util", "host": "n01", "type": "accelerator", "type-ids": ["0"]},
    ])["results"]
    assert same(res[0][0]["data"], eth + ib)  # no plain series: the per-device ones are summed
    assert same(res[1][0]["data"], ib) and same(res[1][1]["data"], eth)
    assert len(res[2]) == 2 and same(res[2][0]["data"], m1) and same(res[2][1]["data"], m0)
    assert same(res[3][0]["data"], (m0 + m1) / 2)
    assert same(res[4][0]["data"], (m0 + m1) / 2)


def test_unknown_topology_when_derivation_is_needed(env):
    put_hwthreads(env, "flops", host="x99")  # not in the subcluster's node list
    res = env.query([
        {"metric": "flops", "host": "x99", "type": "socket", "type-ids": ["0"]},
        {"metric": "flops", "host": "x99", "type": "hwthread", "type-ids": ["0"]},
        {"metric": "flops", "host": "x99"},
    ])["results"]
    assert "no topology known" in res[0][0]["error"] and "x99" in res[0][0]["error"]
    assert "error" not in res[1][0] and "error" not in res[2][0]


# -- data handling --------------------------------------------------------------------


def test_nan_propagates_through_aggregation(env):
    hw = put_hwthreads(env, "flops")
    env.put("n01", "flops", [NAN], "hwthread", 3, start=env.base + 5 * F)
    res = env.query([
        {"metric": "flops", "host": "n01"},
        {"metric": "flops", "host": "n01", "type": "socket", "type-ids": ["0", "1"]},
    ])["results"]
    node = np.asarray(res[0][0]["data"])
    assert math.isnan(node[5]) and np.isnan(node).sum() == 1
    assert node[6] == sum(h[6] for h in hw.values())
    assert not np.isnan(res[1][0]["data"]).any()  # socket 0 does not hold hwthread 3
    assert math.isnan(res[1][1]["data"][5])


def test_padding(env):
    v = env.put("n01", "cpu_load", np.arange(N - 10, dtype=float), start=env.base + 10 * F)
    plain = only(env.query([{"metric": "cpu_load", "host": "n01"}])["results"])
    assert plain["from"] == env.base + 10 * F and plain["to"] == env.now and same(plain["data"], v)
    padded = only(env.query([{"metric": "cpu_load", "host": "n01"}], **{"with-padding": True})["results"])
    assert padded["from"] == env.base and padded["to"] == env.now
    assert same(padded["data"], np.r_[np.full(10, np.nan), v])
    # an unaligned 'from' pads to the bin that holds it
    odd = only(env.query([{"metric": "cpu_load", "host": "n01"}],
                         **{"with-padding": True, "from": env.base + 30})["results"])
    assert odd["from"] == env.base and len(odd["data"]) == N


def test_no_data_in_range(env):
    env.put("n01", "cpu_load", np.ones(N))
    for frm, to in ((env.base - 3600, env.base - 1800), (env.now + 60, env.now + 600)):
        for pad in (False, True):
            r = only(env.query([{"metric": "cpu_load", "host": "n01"}],
                               **{"from": frm, "to": to, "with-padding": pad})["results"])
            assert r["data"] == [] and (r["from"], r["to"]) == (frm, to)
            assert math.isnan(r["avg"]) and "error" not in r


def test_with_data_false(env):
    env.put("n01", "cpu_load", np.arange(N, dtype=float))
    r = only(env.query([{"metric": "cpu_load", "host": "n01", "resolution": 120}], minimum_points=10,
                       **{"with-data": False})["results"])
    assert "data" not in r
    assert r["avg"] == pytest.approx((N - 1) / 2) and r["max"] == N - 1
    assert (r["resolution"], r["from"], r["to"]) == (120, env.base, env.base + 15 * 120)


def test_stats_ignore_nan_and_precede_resampling(env):
    raw = np.arange(N, dtype=float)
    raw[[3, 25]] = np.nan
    raw[12] = 1000.0
    env.put("n01", "cpu_load", raw)
    r = only(env.query([{"metric": "cpu_load", "host": "n01", "resolution": 180}], minimum_points=10)["results"])
    assert len(r["data"]) == N // 3 and r["resolution"] == 180
    assert r["avg"] == pytest.approx(np.nanmean(raw)) and r["min"] == 0.0 and r["max"] == 1000.0
    assert 1000.0 in r["data"]
    assert r["avg"] != pytest.approx(np.nanmean(r["data"]))
    none = only(env.query([{"metric": "cpu_load", "host": "n01"}], **{"with-stats": False})["results"])
    assert math.isnan(none["avg"]) and math.isnan(none["min"]) and len(none["data"]) == N


def test_scale_by(env):
    v = env.put("n01", "cpu_load", np.arange(N, dtype=float))
    res = env.query([{"metric": "cpu_load", "host": "n01", "scale-by": 2.5},
                     {"metric": "cpu_load", "host": "n01", "scale-by": 0},
                     {"metric": "cpu_load", "host": "n01", "scale-by": 1}])["results"]
    assert same(res[0][0]["data"], v * 2.5)
    assert res[0][0]["max"] == (N - 1) * 2.5 and res[0][0]["avg"] == pytest.approx(v.mean() * 2.5)
    assert same(res[1][0]["data"], v) and same(res[2][0]["data"], v)


def test_for_all_nodes(env):
    for h in ("n03", "n01", "n02"):
        env.put(h, "cpu_load", np.full(N, float(h[-1])))
    env.put("n02", "flops", np.full(N, 9.0))
    out = env.query([], **{"for-all-nodes": ["cpu_load", "flops"]})
    assert out["queries"] == [
        {"metric": m, "host": h, "resolution": 0, "aggreg": False}
        for h in ("n01", "n02", "n03") for m in ("cpu_load", "flops")
    ]
    res = out["results"]
    assert [len(r) for r in res] == [1, 0, 1, 1, 1, 0]
    assert res[0][0]["data"][0] == 1.0 and res[2][0]["data"][0] == 2.0 and res[3][0]["data"][0] == 9.0
    assert "queries" not in env.query([{"metric": "cpu_load", "host": "n01"}])


def test_resolution(env):
    v = env.put("n01", "cpu_load", np.arange(N, dtype=float))
    res = env.query([{"metric": "cpu_load", "host": "n01", "resolution": 90},
                     {"metric": "cpu_load", "host": "n01", "resolution": 120},
                     {"metric": "cpu_load", "host": "n01", "resolution": 30}], minimum_points=10)["results"]
    assert "multiple" in res[0][0]["error"] and "data" not in res[0][0]
    r = res[1][0]
    assert (len(r["data"]), r["resolution"], r["from"], r["to"]) == (15, 120, env.base, env.base + 15 * 120)
    assert r["data"][0] == v[0] and r["data"][-1] == v[-1]
    assert same(res[2][0]["data"], v) and res[2][0]["resolution"] == F
    # resampled down to two points: the first and the last
    r = only(env.query([{"metric": "cpu_load", "host": "n01", "resolution": 15 * F}], minimum_points=10)["results"])
    assert r["data"] == [v[0], v[-1]] and (r["resolution"], r["to"]) == (15 * F, env.base + 2 * 15 * F)
    # below minimum_points: native data
    r = only(env.query([{"metric": "cpu_load", "host": "n01", "resolution": 120}])["results"])
    assert same(r["data"], v) and r["resolution"] == F


def test_other_frequency_and_average_method(env):
    v = env.put("n01", "fast", np.arange(6 * N, dtype=float), start=env.now - 10 * 6 * N, freq=10)
    doc = {"cluster": "test", "from": env.now - 10 * 6 * N, "to": env.now, "with-padding": False,
           "queries": [{"metric": "fast", "host": "n01", "resolution": 60}]}
    req = parse_request(doc)
    out = execute(req, env.store, env.clusters, env.catalog, minimum_points=10, method="average")
    r = only(out["results"])
    assert r["resolution"] == 60 and same(r["data"], v.reshape(N, 6).mean(axis=1))
    out = execute(req, env.store, env.clusters, env.catalog, minimum_points=10, numpy_data=True)
    r = only(out["results"])
    assert isinstance(r["data"], np.ndarray) and len(r["data"]) == N


def test_one_read_per_frequency_for_the_whole_request(env, monkeypatch):
    put_hwthreads(env, "flops")
    calls = []
    real = env.store.read
    monkeypatch.setattr(env.store, "read", lambda sids, frm, to: calls.append(len(sids)) or real(sids, frm, to))
    res = env.query([{"metric": "flops", "host": "n01", "type": "core", "type-ids": ["0", "1", "2", "3"]},
                     {"metric": "flops", "host": "n01", "type": "hwthread", "type-ids": list(range(8))}])
    assert calls == [16] and [len(r) for r in res["results"]] == [4, 8]


def test_series_of_different_frequencies(env):
    hw = put_hwthreads(env, "flops")
    fast = env.put("n01", "flops", np.arange(6 * N, dtype=float), "hwthread", 9, freq=10)
    res = env.query([{"metric": "flops", "host": "n01", "type": "hwthread", "type-ids": ["9", "2"]},
                     {"metric": "flops", "host": "n01", "type": "hwthread", "type-ids": ["9", "2"],
                      "aggreg": True}])["results"]
    assert res[0][0]["resolution"] == 10 and same(res[0][0]["data"], fast)
    assert res[0][1]["resolution"] == F and same(res[0][1]["data"], hw[2])
    assert "different frequencies" in res[1][0]["error"]


def test_released_series_drop_out(env):
    hw = put_hwthreads(env, "flops")
    q = [{"metric": "flops", "host": "n01"}]
    assert same(only(env.query(q)["results"])["data"], sum(hw.values()))
    sid = env.store.lookup(SeriesKey("test", "n01", "flops", "hwthread", "5"))
    env.store.release([sid])
    assert same(only(env.query(q)["results"])["data"], sum(v for i, v in hw.items() if i != 5))
    env.put("n01", "flops", np.ones(N), "hwthread", 5)  # registered again under a new id
    assert same(only(env.query(q)["results"])["data"], sum(v for i, v in hw.items() if i != 5) + 1)


# -- resampling -----------------------------------------------------------------------


def ref_lttb(data: list[float], n_out: int) -> list[float]:
    """cc-lib's LargestTriangleThreeBucket, one point at a time."""
    n = len(data)
    if n_out >= n:
        return list(data)
    if n_out <= 2:
        return [data[0], data[-1]][:n_out]
    out = [data[0]]
    size = (n - 2) / (n_out - 2)
    low, mid, prev = 1, int(math.floor(size)) + 1, 0
    for i in range(n_out - 2):
        high = min(int(math.floor((i + 2) * size)) + 1, n - 2)
        sx = sy = 0.0
        has_nan = False
        for x in range(mid, high + 1):
            sx += x
            sy += data[x]
            has_nan = has_nan or math.isnan(data[x])
        cnt = high + 1 - mid
        bx = sx / cnt if cnt else NAN
        by = NAN if has_nan or not cnt else sy / cnt
        best, pick = -1.0, 0
        for c in range(low, mid):
            area = abs(((prev - c) * (by - data[prev]) - (prev - bx) * (data[c] - data[prev])) * 0.5)
            if area > best or math.isnan(area):
                best, pick = area, c
        out.append(data[pick])
        prev, low, mid = pick, mid, high
    out.append(data[-1])
    return out


def test_lttb_basics():
    rng = np.random.default_rng(7)
    v = rng.random((3, 100))
    out = lttb(v, 20)
    assert out.shape == (3, 20)
    assert same(out[:, 0], v[:, 0]) and same(out[:, -1], v[:, -1])
    assert lttb(v[0], 20).shape == (20,) and same(lttb(v[0], 20), out[0])
    assert same(lttb(v, 100), v) and same(lttb(v, 500), v)
    assert lttb(v, 2).shape == (3, 2) and lttb(v, 1).shape == (3, 1)
    # a spike inside a bucket is what LTTB keeps
    flat = np.zeros(100)
    flat[47] = 50.0
    assert 50.0 in lttb(flat, 10)
    assert same(lttb(np.full(10, np.nan), 4), np.full(4, np.nan))


def test_lttb_matches_scalar_reference():
    rng = np.random.default_rng(11)
    for _ in range(150):
        n = int(rng.integers(4, 300))
        n_out = int(rng.integers(3, n))
        v = rng.normal(size=(4, n)) * 10
        v[rng.random(v.shape) < rng.choice([0.0, 0.02, 0.2, 0.6])] = np.nan
        v[1, : n // 3] = np.nan  # a leading gap, as padding makes
        out = lttb(v, n_out)
        for row in range(4):
            assert same(out[row], ref_lttb(v[row].tolist(), n_out)), (n, n_out, row)


def test_resample():
    v = np.arange(1200, dtype=float).reshape(2, 600)
    same_v, res = resample(v, 60, 0, 100)
    assert same_v is v and res == 60
    assert resample(v, 60, 60, 100)[1] == 60 and resample(v, 60, 30, 100)[1] == 60
    assert resample(v, 60, 120, 1000)[0] is v  # fewer than minimum_points
    out, res = resample(v, 60, 120, 100)
    assert out.shape == (2, 300) and res == 120 and same(out, lttb(v, 300))
    with pytest.raises(ValueError, match="multiple"):
        resample(v, 60, 90, 100)
    avg, res = resample(np.array([1.0, 3.0, np.nan, np.nan, 5.0, np.nan, 7.0]), 10, 20, 1, method="average")
    assert res == 20 and same(avg, [2.0, np.nan, 5.0])
    with pytest.raises(ValueError, match="method"):
        resample(v, 60, 120, 100, method="nope")


def test_batched_reads_match_reading_each_query_alone(env):
    """One joint read per request must give each query the same range as a read of its own."""
    early = env.put("n01", "load", np.arange(10.0), start=env.base - 20 * F)  # older, shorter series
    late = env.put("n02", "load", np.arange(5.0) + 100)  # starts later
    frm = {"from": env.base - 30 * F}
    both = env.query([{"metric": "load", "host": "n01"}, {"metric": "load", "host": "n02"}], **frm)["results"]
    alone = [env.query([{"metric": "load", "host": h}], **frm)["results"][0] for h in ("n01", "n02")]
    for joint, single in zip(both, alone, strict=True):
        assert joint[0]["from"] == single[0]["from"] and joint[0]["to"] == single[0]["to"]
        assert same(joint[0]["data"], single[0]["data"])
    assert same(both[0][0]["data"], early) and same(both[1][0]["data"], late)
