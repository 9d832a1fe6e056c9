"""Job metric data from a real shared-memory store and from the archive; statistics, footprint, energy."""

from __future__ import annotations

import math
import time

import numpy as np
import orjson
import pytest

from cc import jobdata
from cc.archive import JobArchive, job_meta, validate
from cc.clusters import MetricCatalog, parse_cluster
from cc.db import Job
from cc.shm import SeriesKey
from tests.archive_gen import init_archive
from tests.helpers import small_cluster

STEP = 10
GPU0, GPU1 = "00000000:01:00.0", "00000000:02:00.0"
POINTS = 30


@pytest.fixture(scope="module")
def cluster():
    return parse_cluster(small_cluster(timestep=STEP), "c1")


@pytest.fixture
def t0():
    return (int(time.time()) // STEP) * STEP - 600


@pytest.fixture
def store(make_store, t0):
    """Hosts h1, h2 with every metric of small_cluster at its native scope; values encode host, id and time."""
    st = make_store(retention=3600, frequencies=(STEP,))
    keys, ts, vals = [], [], []

    def put(host, metric, typ, tid, value_of):
        for k in range(POINTS):
            keys.append(SeriesKey("c1", host, metric, typ, tid))
            ts.append(t0 + STEP * k)
            vals.append(value_of(k))

    for h, hv in (("h1", 1000.0), ("h2", 2000.0)):
        put(h, "cpu_load", "node", "", lambda k, hv=hv: hv + k)
        put(h, "mem_used", "node", "", lambda k, hv=hv: hv)
        put(h, "net_bw", "node", "", lambda k: float("nan") if k == 3 else 5.0)
        for hw in range(8):
            put(h, "flops_any", "hwthread", str(hw), lambda k, hw=hw, hv=hv: hv + 10 * hw + k)
            put(h, "cpu_user", "hwthread", str(hw), lambda k, hw=hw: float(hw))
        for s in range(2):
            put(h, "mem_bw", "socket", str(s), lambda k, s=s, hv=hv: hv + s)
        for g, w in ((GPU0, 100.0), (GPU1, 300.0)):
            put(h, "acc_power", "accelerator", g, lambda k, w=w: w)
    sids = st.resolve(keys, [STEP] * len(keys))
    st.write(sids, np.array(ts), np.array(vals, dtype=np.float64))
    return st


def make(t0, resources, *, duration=POINTS * STEP, state="completed", num_acc=0) -> Job:
    return Job(job_id=77, cluster="c1", user="u", project="p", start_time=t0, duration=duration, state=state,
               resources=resources, num_nodes=len(resources), subcluster="main", num_acc=num_acc)


def load(job, cluster, store, scopes, metrics=None, **kw):
    return jobdata.load_running(job, cluster, store, MetricCatalog({"c1": cluster}, {}), metrics, scopes, **kw)


def series(d, metric, scope):
    return {(s["hostname"], s.get("id")): s for s in d[metric][scope]["series"]}


def test_exclusive_job_node_scope(cluster, store, t0):
    job = make(t0, [{"hostname": "h1"}, {"hostname": "h2"}])
    d = load(job, cluster, store, ["node"])
    assert set(d) == {"cpu_load", "mem_used", "net_bw", "flops_any", "cpu_user", "mem_bw"}  # no GPUs: no acc_power
    cl = series(d, "cpu_load", "node")
    assert cl[("h1", None)]["data"] == [1000.0 + k for k in range(POINTS)]
    assert cl[("h2", None)]["statistics"] == {"avg": 2014.5, "min": 2000.0, "max": 2029.0}
    assert d["cpu_load"]["node"]["timestep"] == STEP and d["cpu_load"]["node"]["unit"] == {"base": ""}
    flops = series(d, "flops_any", "node")[("h1", None)]  # sum over 8 hwthreads
    assert flops["data"][0] == 8 * 1000 + 10 * sum(range(8))
    assert series(d, "cpu_user", "node")[("h2", None)]["data"][5] == 3.5  # avg over hwthreads
    assert series(d, "mem_bw", "node")[("h1", None)]["data"][0] == 1000 + 1001
    net = series(d, "net_bw", "node")[("h1", None)]
    assert net["data"][3] is None and net["data"][2] == 5.0  # NaN -> None
    assert net["statistics"] == {"avg": 5.0, "min": 5.0, "max": 5.0}  # NaN ignored
    assert d["flops_any"]["node"]["unit"] == {"base": "F/s"}
    orjson.dumps(d)  # plain JSON, no NaN


def test_time_range_is_the_job(cluster, store, t0):
    job = make(t0 + 5 * STEP, [{"hostname": "h1"}], duration=10 * STEP)
    s = series(load(job, cluster, store, ["node"], ["cpu_load"]), "cpu_load", "node")[("h1", None)]
    assert s["data"] == [1000.0 + k for k in range(5, 15)]
    running = make(t0 + 20 * STEP, [{"hostname": "h1"}], duration=0, state="running")
    s = series(load(running, cluster, store, ["node"], ["cpu_load"]), "cpu_load", "node")[("h1", None)]
    assert s["data"][:10] == [1000.0 + k for k in range(20, 30)]  # up to now: the rest is empty
    assert all(v is None for v in s["data"][10:])


def test_shared_node_only_counts_the_jobs_hardware_threads(cluster, store, t0):
    job = make(t0, [{"hostname": "h1", "hwthreads": [0, 1, 2, 3]}])
    d = load(job, cluster, store, ["node", "core", "socket", "hwthread"])
    flops_node = series(d, "flops_any", "node")[("h1", None)]
    assert flops_node["data"][0] == 4 * 1000 + 10 * (0 + 1 + 2 + 3)
    assert sorted(series(d, "flops_any", "core")) == [("h1", "0"), ("h1", "1")]
    assert series(d, "flops_any", "core")[("h1", "1")]["data"][0] == 2 * 1000 + 10 * (2 + 3)
    assert sorted(series(d, "flops_any", "socket")) == [("h1", "0")]
    assert sorted(series(d, "flops_any", "hwthread")) == [("h1", str(i)) for i in range(4)]
    assert series(d, "mem_bw", "node")[("h1", None)]["data"][0] == 1000  # socket 0 only
    assert sorted(series(d, "mem_bw", "socket")) == [("h1", "0")]
    assert set(d["mem_bw"]) == {"node", "socket"}  # socket-native: core/hwthread requests give socket
    assert set(d["cpu_load"]) == {"node"}  # node-native metrics stay at node scope
    assert series(d, "cpu_load", "node")[("h1", None)]["data"][0] == 1000  # whole-node value


def test_accelerators_of_the_job_only(cluster, store, t0):
    job = make(t0, [{"hostname": "h1", "accelerators": [GPU1]}, {"hostname": "h2", "accelerators": [GPU0, GPU1]}],
               num_acc=3)
    d = load(job, cluster, store, ["node", "accelerator"], ["acc_power", "cpu_load"])
    acc = series(d, "acc_power", "accelerator")
    assert sorted(acc) == [("h1", GPU1), ("h2", GPU0), ("h2", GPU1)]
    assert acc[("h1", GPU1)]["data"][0] == 300.0
    node = series(d, "acc_power", "node")
    assert node[("h1", None)]["data"][0] == 300.0 and node[("h2", None)]["data"][0] == 400.0
    assert set(d["cpu_load"]) == {"node"}  # accelerator scope does not apply to a node metric
    # a core request for an accelerator metric gives nothing finer than node (as cc-backend)
    assert set(load(job, cluster, store, ["core"], ["acc_power"]).get("acc_power", {})) == set()


def test_missing_host_and_errors_are_reported(cluster, store, t0):
    job = make(t0, [{"hostname": "h1"}, {"hostname": "gone"}])
    errors: list[str] = []
    d = load(job, cluster, store, ["node"], ["cpu_load"], errors=errors)
    assert list(series(d, "cpu_load", "node")) == [("h1", None)]


def test_statistics_footprint_energy(cluster, store, t0):
    job = make(t0, [{"hostname": "h1", "accelerators": [GPU0]}, {"hostname": "h2", "accelerators": [GPU1]}],
               num_acc=2, duration=POINTS * STEP)
    d = load(job, cluster, store, ["node"])
    stats = jobdata.job_statistics(d, job, cluster)
    assert stats["cpu_load"] == {"unit": {"base": ""}, "avg": round((1014.5 + 2014.5) / 2, 2), "min": 1000.0,
                                 "max": 2029.0}
    assert stats["acc_power"]["avg"] == 200.0 and stats["acc_power"]["unit"] == {"base": "W"}
    fp = jobdata.footprint(job, cluster, stats)
    assert fp == {"cpu_load_avg": stats["cpu_load"]["avg"], "flops_any_avg": stats["flops_any"]["avg"],
                  "mem_bw_avg": stats["mem_bw"]["avg"]}
    total, per = jobdata.energy(job, cluster, stats)
    expected = round(200.0 * 2 * (POINTS * STEP / 3600) / 1000, 2)
    assert per == {"acc_power": expected} and total == expected
    meta = job_meta(job, stats)
    validate("job-meta", meta)


def test_hand_made_statistics_and_energy(cluster):
    job = make(0, [{"hostname": "a"}, {"hostname": "b"}], duration=7200)
    data = {"acc_power": {"node": {"unit": {"base": "W"}, "timestep": 60, "series": [
        {"hostname": "a", "statistics": {"avg": 250.0, "min": 10.0, "max": 400.0}, "data": [1]},
        {"hostname": "b", "statistics": {"avg": 150.0, "min": 5.0, "max": 300.0}, "data": [1]}]}},
        "flops_any": {"hwthread": {"unit": {"base": "F/s"}, "timestep": 60, "series": []}}}
    stats = jobdata.job_statistics(data, job, cluster)
    assert stats == {"acc_power": {"unit": {"base": "W"}, "avg": 200.0, "min": 5.0, "max": 400.0}}
    # 200 W average per node x 2 nodes x 2 h = 0.8 kWh
    assert jobdata.energy(job, cluster, stats) == (0.8, {"acc_power": 0.8})
    assert jobdata.footprint(job, cluster, stats) == {"cpu_load_avg": 0.0, "flops_any_avg": 0.0, "mem_bw_avg": 0.0}
    job.subcluster = "nope"
    with pytest.raises(ValueError, match="subCluster 'nope'"):
        jobdata.footprint(job, cluster, stats)


def test_statistics_series_threshold_and_values():
    rows = [[float(i), float(i), None, float(i)] for i in range(10)]
    rows[0][3] = None
    data = {"m": {"core": {"unit": {"base": ""}, "timestep": 60,
                           "series": [{"hostname": "h", "id": str(i), "data": r} for i, r in enumerate(rows)]},
                  "node": {"unit": {"base": ""}, "timestep": 60,
                           "series": [{"hostname": "h", "data": r} for r in rows[:7]]}}}
    jobdata.add_statistics_series(data)
    assert "statisticsSeries" not in data["m"]["node"]  # 7 < 8 series
    ss = data["m"]["core"]["statisticsSeries"]
    assert ss["min"][0] == 0.0 and ss["max"][0] == 9.0 and ss["mean"][0] == 4.5 and ss["median"][0] == 4.5
    assert ss["min"][2] is None and ss["median"][2] is None  # no values at that step
    assert ss["min"][3] == 1.0  # the missing value is ignored
    assert ss["percentiles"]["10"][0] == pytest.approx(0.9) and ss["percentiles"]["90"][0] == pytest.approx(8.1)
    assert sorted(ss["percentiles"], key=int) == [str(p) for p in range(10, 100, 10)]
    validate("job-metric-data", {**data["m"]["core"], "series": []})


def test_many_nodes_get_statistics_series(cluster, store, t0):
    job = make(t0, [{"hostname": "h1"}, {"hostname": "h2"}])
    d = load(job, cluster, store, ["hwthread"], ["flops_any"])
    ss = d["flops_any"]["hwthread"]["statisticsSeries"]  # 16 series
    assert ss["max"][0] == 2000 + 70 and ss["min"][0] == 1000
    assert len(ss["mean"]) == POINTS


@pytest.fixture
def archive(tmp_path):
    init_archive(tmp_path / "a", {"c1": small_cluster(timestep=STEP)})
    return JobArchive(tmp_path / "a")


def test_load_archived_filters_resamples_and_keeps_cache_intact(cluster, store, t0, archive):
    job = make(t0, [{"hostname": "h1"}, {"hostname": "h2"}])
    d = load(job, cluster, store, ["node", "hwthread"], statistics_series=False)
    stats = jobdata.job_statistics(d, job, cluster)
    archive.write(job_meta(job, stats), d)
    cached = archive.load_data("c1", 77, t0)
    snapshot = orjson.dumps(cached)
    got = jobdata.load_archived(archive, job, ["flops_any", "cpu_load"], ["node"], 0)
    assert set(got) == {"flops_any", "cpu_load"} and set(got["flops_any"]) == {"node"}
    assert got["flops_any"]["node"] == d["flops_any"]["node"]
    wide = jobdata.load_archived(archive, job, ["flops_any"], ["core"], 0)  # scope not archived: all scopes
    assert set(wide["flops_any"]) == {"node", "hwthread"}
    assert "statisticsSeries" in wide["flops_any"]["hwthread"]
    zoomed = jobdata.load_archived(archive, job, ["cpu_load"], ["node"], 3 * STEP, minimum_points=10)
    jm = zoomed["cpu_load"]["node"]
    assert jm["timestep"] == 3 * STEP and len(jm["series"][0]["data"]) == POINTS // 3
    assert jm["series"][0]["data"][0] == 1000.0 and jm["series"][0]["data"][-1] == 1029.0  # LTTB keeps the ends
    assert jm["series"][0]["statistics"] == d["cpu_load"]["node"]["series"][0]["statistics"]  # from raw data
    assert orjson.dumps(archive.load_data("c1", 77, t0)) == snapshot  # the cached document is untouched


def test_load_dispatches_on_monitoring_status(cluster, store, t0, archive):
    job = make(t0, [{"hostname": "h1"}])
    catalog = MetricCatalog({"c1": cluster}, {})
    live = jobdata.load(job, cluster, store=store, catalog=catalog, metrics=["cpu_load"])
    archive.write(job_meta(job, {}), {"cpu_load": {"node": {"unit": {"base": ""}, "timestep": STEP, "series": [
        {"hostname": "h1", "statistics": {"avg": 1, "min": 1, "max": 1}, "data": [1.0]}]}}})
    job.monitoring_status = 3
    archived = jobdata.load(job, cluster, store=store, catalog=catalog, archive=archive, metrics=["cpu_load"])
    assert live["cpu_load"]["node"]["series"][0]["data"][0] == 1000.0
    assert archived["cpu_load"]["node"]["series"][0]["data"] == [1.0]
    job.state = "running"  # a running job is always live, whatever its status says
    running = jobdata.load(job, cluster, store=store, catalog=catalog, archive=archive, metrics=["cpu_load"])
    assert running["cpu_load"]["node"]["series"][0]["data"][:POINTS] == live["cpu_load"]["node"]["series"][0]["data"]
    assert not math.isnan(live["cpu_load"]["node"]["series"][0]["statistics"]["avg"])
