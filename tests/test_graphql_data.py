"""GraphQL against the real supervisor: clusters, metric data of jobs and nodes, statistics and histograms."""

from __future__ import annotations

import math
import time

import pytest

from tests.graphql_helpers import (
    NOW,
    add_users,
    cluster_doc,
    data,
    errors,
    rest,
    set_archived,
    settle_archiver,
    start_job,
    stop_job,
)
from tests.helpers import running

T0 = (NOW // 10) * 10 - 600  # R1 starts here; metric points at T0 .. T0+190
SPAN = {"from": T0, "to": NOW}


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("gqld"), ingest_workers=1, clusters={"c1": cluster_doc()}) as i:
        add_users(i)
        ids = {
            "r1": start_job(i, 201, "alice", "p1", ("n01",), T0),
            "r2": start_job(i, 202, "bob", "p2", ("n02",), T0 - 100),
            "f1": start_job(i, 203, "alice", "p1", ("n03",), NOW - 5 * 3600),
            "f2": start_job(i, 204, "bob", "p1", ("n04", "n05"), NOW - 10 * 3600),
            "f3": start_job(i, 205, "carol", "p3", ("g02",), NOW - 20 * 3600, numAcc=2),
        }
        stop_job(i, 203, NOW - 5 * 3600 + 1800)
        stop_job(i, 204, NOW - 10 * 3600 + 10800)
        stop_job(i, 205, NOW - 20 * 3600 + 100, "failed")
        settle_archiver(i, [ids["f1"], ids["f2"], ids["f3"]])
        set_archived(i, ids["f1"], {"cpu_load_avg": 25.0, "flops_any_avg": 100.0, "mem_bw_avg": 250.0})
        set_archived(i, ids["f2"], {"cpu_load_avg": 95.0, "flops_any_avg": 0.5})
        set_archived(i, ids["f3"], {"cpu_load_avg": 5.0})
        lines = []
        for k in range(20):
            ts = T0 + 10 * k
            lines += [f"cpu_load,cluster=c1,hostname=n01,type=node value=50 {ts}",
                      f"cpu_load,cluster=c1,hostname=n02,type=node value=20 {ts}",
                      f"net_bw,cluster=c1,hostname=n01,type=node value=1.5e12 {ts}",
                      f"net_bw,cluster=c1,hostname=n02,type=node value=2.5e12 {ts}",
                      f"mem_bw,cluster=c1,hostname=n01,type=socket,type-id=0 value=10 {ts}",
                      f"mem_bw,cluster=c1,hostname=n01,type=socket,type-id=1 value=20 {ts}"]
            lines += [f"flops_any,cluster=c1,hostname=n01,type=hwthread,type-id={hw} value={hw} {ts}" for hw in range(8)]
        r = i.write("\n".join(lines))
        assert r.status_code == 200, r.text
        r = rest(i, "POST", "/api/nodestate/", json={"cluster": "c1", "nodes": [
            {"hostname": "n01", "states": ["allocated"], "cpusAllocated": 8, "jobsRunning": 1},
            {"hostname": "n02", "states": ["allocated"], "cpusAllocated": 8, "jobsRunning": 1},
            {"hostname": "n03", "states": ["idle"]},
            {"hostname": "g01", "states": ["down"]}]})
        assert r.status_code == 200, r.text
        i.ids = ids
        yield i


# -- clusters and metric lists ----------------------------------------------------------------

def test_dev_pages_only_in_dev_mode(inst):
    import httpx

    for path in ("/playground", "/swagger/", "/swagger/openapi.yaml"):
        assert httpx.get(inst.web + path).status_code == 404, path


def test_clusters(inst):
    c = data(inst, "{ clusters { name partitions subClusters { name nodes numberOfNodes processorType "
                   "socketsPerNode coresPerSocket threadsPerCore flopRateSimd { unit { base prefix } value } "
                   "topology { node core socket accelerators { id model } } "
                   "metricConfig { name scope aggregation timestep peak unit { base } } footprint } } }")["clusters"]
    assert [x["name"] for x in c] == ["c1"] and c[0]["partitions"] == ["main"]
    gpu, main = c[0]["subClusters"]
    assert gpu["name"] == "gpu" and gpu["nodes"] == "g[01-04]" and gpu["numberOfNodes"] == 4
    assert main["nodes"] == "*" and main["socketsPerNode"] == 2 and main["threadsPerCore"] == 2
    assert main["flopRateSimd"] == {"unit": {"base": "F/s", "prefix": "G"}, "value": 40.0}
    assert main["topology"]["core"][1] == [2, 3] and len(main["topology"]["accelerators"]) == 2
    mc = {m["name"]: m for m in main["metricConfig"]}
    assert mc["flops_any"]["scope"] == "hwthread" and mc["flops_any"]["aggregation"] == "sum"
    assert mc["mem_used"]["aggregation"] == "" and mc["cpu_load"]["peak"] == 100.0
    assert set(main["footprint"]) == {"cpu_load", "flops_any", "mem_bw"}
    assert "net_bw" in mc
    user_view = data(inst, "{ clusters { subClusters { metricConfig { name } } } }", user="alice")
    assert "net_bw" not in {m["name"] for m in user_view["clusters"][0]["subClusters"][1]["metricConfig"]}


def test_global_metrics_hide_restricted_ones_from_users(inst):
    q = "{ globalMetrics { name scope unit { base } footprint availability { cluster subClusters } } }"
    full = {m["name"]: m for m in data(inst, q)["globalMetrics"]}
    assert full["flops_any"]["footprint"] == "avg" and full["flops_any"]["unit"]["base"] == "F/s"
    assert full["net_bw"]["availability"] == [{"cluster": "c1", "subClusters": ["gpu", "main"]}]
    for user in ("alice", "mgr"):
        assert "net_bw" not in {m["name"] for m in data(inst, q, user=user)["globalMetrics"]}
    assert "net_bw" in {m["name"] for m in data(inst, q, user="sup")["globalMetrics"]}


# -- metric data of one job -----------------------------------------------------------------------

def test_job_metrics_of_a_running_job(inst):
    q = "query($id: ID!, $m: [String!], $s: [MetricScope!]) { jobMetrics(id: $id, metrics: $m, scopes: $s) " \
        "{ name scope metric { unit { base } timestep series { hostname id statistics { avg min max } data } } } }"
    r1 = inst.ids["r1"]
    got = data(inst, q, {"id": r1, "m": ["cpu_load", "flops_any"], "s": ["node"]}, user="alice")["jobMetrics"]
    by = {(m["name"], m["scope"]): m["metric"] for m in got}
    load = by["cpu_load", "node"]
    assert load["timestep"] == 10 and load["series"][0]["hostname"] == "n01"
    assert load["series"][0]["data"][:20] == [50.0] * 20 and load["series"][0]["statistics"]["avg"] == 50.0
    assert by["flops_any", "node"]["series"][0]["data"][0] == 28.0
    cores = data(inst, q, {"id": r1, "m": ["flops_any"], "s": ["core"]})["jobMetrics"][0]["metric"]["series"]
    assert {s["id"]: s["data"][0] for s in cores} == {"0": 1.0, "1": 5.0, "2": 9.0, "3": 13.0}
    # restricted metrics: in the job's data for staff only
    assert "net_bw" in {m["name"] for m in data(inst, q, {"id": r1})["jobMetrics"]}
    assert "net_bw" not in {m["name"] for m in data(inst, q, {"id": r1}, user="alice")["jobMetrics"]}
    assert "may not see it" in errors(inst, q, {"id": r1}, user="bob")[0]


def test_job_stats_and_scoped_stats(inst):
    stats = data(inst, "query($id: ID!) { jobStats(id: $id, metrics: [\"cpu_load\", \"flops_any\", \"mem_bw\"]) "
                       "{ name data { avg min max } } }", {"id": inst.ids["r1"]})["jobStats"]
    assert {s["name"]: s["data"] for s in stats} == {"cpu_load": {"avg": 50.0, "min": 50.0, "max": 50.0},
                                                     "flops_any": {"avg": 28.0, "min": 28.0, "max": 28.0},
                                                     "mem_bw": {"avg": 30.0, "min": 30.0, "max": 30.0}}
    scoped = data(inst, "query($id: ID!) { scopedJobStats(id: $id, metrics: [\"mem_bw\"], scopes: [socket]) "
                        "{ name scope stats { hostname id data { avg } } } }", {"id": inst.ids["r1"]})["scopedJobStats"]
    assert scoped == [{"name": "mem_bw", "scope": "socket", "stats": [
        {"hostname": "n01", "id": "0", "data": {"avg": 10.0}}, {"hostname": "n01", "id": "1", "data": {"avg": 20.0}}]}]


# -- statistics over jobs ---------------------------------------------------------------------------

TOTALS = "totalJobs runningJobs shortJobs totalUsers totalNodes totalCores totalAccs totalWalltime totalNodeHours " \
         "totalCoreHours totalAccHours"


def _hours(seconds: float) -> int:
    return int(math.floor(seconds / 3600 + 0.5))


def test_totals(inst):
    before = time.time()
    s = data(inst, "{ jobsStatistics { id name " + TOTALS + " } }")["jobsStatistics"]
    after = time.time()
    # Running jobs count up to "now", so the hour totals depend on when the query ran.
    expected = []
    for now in (int(before), int(after)):
        ran = now - T0  # r1 ran this long, r2 100 s longer; each has 1 node and 8 hwthreads
        expected.append({"id": "", "name": "", "totalJobs": 5, "runningJobs": 2, "shortJobs": 1, "totalUsers": 3,
                         "totalNodes": 6, "totalCores": 48, "totalAccs": 2,
                         "totalWalltime": _hours(1800 + 10800 + 100 + 2 * ran + 100),
                         "totalNodeHours": _hours(1800 + 2 * 10800 + 100 + 2 * ran + 100),
                         "totalCoreHours": _hours(8 * 1800 + 16 * 10800 + 8 * 100 + 8 * (2 * ran + 100)),
                         "totalAccHours": _hours(2 * 100)})
    assert s[0] in expected and len(s) == 1
    mine = data(inst, "{ jobsStatistics { totalJobs runningJobs } }", user="alice")["jobsStatistics"]
    assert mine == [{"totalJobs": 2, "runningJobs": 1}]
    running = data(inst, "{ jobsStatistics(filter: [{state: [running]}]) { totalJobs totalUsers } }")
    assert running["jobsStatistics"] == [{"totalJobs": 2, "totalUsers": 2}]


def test_grouped_sorted_paged(inst):
    q = "query($g: Aggregate, $s: SortByAggregate, $p: PageRequest) { jobsStatistics(groupBy: $g, sortBy: $s, " \
        "page: $p) { id name totalJobs totalCores } }"
    users = data(inst, q, {"g": "USER", "s": "TOTALJOBS"})["jobsStatistics"]
    assert [(u["id"], u["name"], u["totalJobs"]) for u in users] == [
        ("alice", "Full alice", 2), ("bob", "Full bob", 2), ("carol", "", 1)]
    assert data(inst, q, {"g": "USER", "s": "TOTALCORES"})["jobsStatistics"][0]["id"] == "bob"
    page2 = data(inst, q, {"g": "USER", "s": "TOTALJOBS", "p": {"itemsPerPage": 1, "page": 2}})["jobsStatistics"]
    assert [u["id"] for u in page2] == ["bob"]
    projects = data(inst, q, {"g": "PROJECT", "s": "TOTALJOBS"})["jobsStatistics"]
    assert [(p["id"], p["totalJobs"]) for p in projects] == [("p1", 3), ("p2", 1), ("p3", 1)]
    subs = data(inst, q, {"g": "SUBCLUSTER"})["jobsStatistics"]
    assert {(s["id"], s["totalJobs"]) for s in subs} == {("gpu", 1), ("main", 4)}
    assert data(inst, q, {"g": "CLUSTER"})["jobsStatistics"] == [{"id": "c1", "name": "", "totalJobs": 5,
                                                                   "totalCores": 48}]
    mgr = data(inst, q, {"g": "USER"}, user="mgr")["jobsStatistics"]  # project p1 only
    assert {(u["id"], u["totalJobs"]) for u in mgr} == {("alice", 2), ("bob", 1)}
    assert "groupBy" in errors(inst, "{ jobsStatistics(groupBy: USER) { histDuration { count } } }")[0]
    assert "Aggregate" in errors(inst, "{ jobsStatistics(groupBy: NOPE) { totalJobs } }")[0]


def _duration_bins(inst, q, width: int, variables=None) -> tuple[dict[int, int], dict[int, int]]:
    """(histogram from the server, histogram expected): the running jobs' durations grow with the clock
    (NOW is fixed when the module is imported, which can be minutes before this test runs)."""
    for _ in range(5):
        before = time.time()
        got = data(inst, q, variables)["jobsStatistics"][0]["histDuration"]
        after = time.time()
        expect = [_expected_bins(t, width) for t in (before, after)]
        if expect[0] == expect[1]:  # no running job crossed a bin edge during the query
            return {p["value"]: p["count"] for p in got}, expect[0]
    raise AssertionError("running jobs kept crossing bin edges")


def _expected_bins(now: float, width: int) -> dict[int, int]:
    durations = [now - T0, now - (T0 - 100), 1800, 10800, 100]  # r1, r2 running; f1, f2, f3 finished
    out: dict[int, int] = {}
    for d in durations:
        b = (int(d) // width + 1) * width
        out[b] = out.get(b, 0) + 1
    return out


def test_histograms(inst):
    q = "query($b: String) { jobsStatistics(numDurationBins: $b) { histDuration { value count } " \
        "histNumNodes { value count } histNumCores { value count } histNumAccs { value count } } }"
    s = data(inst, q)["jobsStatistics"][0]
    assert len(s["histDuration"]) == 48 and sum(p["count"] for p in s["histDuration"]) == 5
    hours, expect = _duration_bins(inst, q, 3600)
    assert {v: c for v, c in hours.items() if c} == expect  # e.g. {3600: 4, 14400: 1}
    assert s["histNumNodes"] == [{"value": 1, "count": 4}, {"value": 2, "count": 1}]
    assert s["histNumCores"] == [{"value": 8, "count": 4}, {"value": 16, "count": 1}]
    assert s["histNumAccs"] == [{"value": 0, "count": 4}, {"value": 2, "count": 1}]
    tens, expect = _duration_bins(inst, q, 600, {"b": "10m"})
    assert len(tens) == 72 and {v: c for v, c in tens.items() if c} == expect  # e.g. 600: 1, 1200: 2, ...
    assert "argument 'numDurationBins'" in errors(inst, q, {"b": "2h"})[0]


def test_metric_histograms_from_footprints_and_live_data(inst):
    q = "query($f: [JobFilter!], $m: [String!]) { jobsStatistics(filter: $f, metrics: $m, numMetricBins: 10) " \
        "{ histMetrics { metric unit stat data { bin count min max } } } }"
    hist = {h["metric"]: h for h in data(inst, q, {"m": ["cpu_load", "flops_any", "mem_bw"]})
            ["jobsStatistics"][0]["histMetrics"]}
    load = hist["cpu_load"]
    assert load["stat"] == "avg" and len(load["data"]) == 10
    assert load["data"][0] == {"bin": 1, "count": 1, "min": 0, "max": 10}
    assert {p["bin"]: p["count"] for p in load["data"] if p["count"]} == {1: 1, 3: 1, 10: 1}
    assert hist["flops_any"]["unit"] == "F/s"
    assert {p["bin"]: p["count"] for p in hist["flops_any"]["data"] if p["count"]} == {1: 1, 10: 1}  # peak -> last
    assert sum(p["count"] for p in hist["mem_bw"]["data"]) == 0  # above peak: not counted
    live = data(inst, q, {"f": [{"state": ["running"]}], "m": ["cpu_load"]})["jobsStatistics"][0]["histMetrics"]
    assert {p["bin"]: p["count"] for p in live[0]["data"] if p["count"]} == {3: 1, 6: 1}
    mine = data(inst, q, {"m": ["cpu_load"]}, user="alice")["jobsStatistics"][0]["histMetrics"][0]
    assert {p["bin"]: p["count"] for p in mine["data"] if p["count"]} == {3: 1}


def test_jobs_footprints(inst):
    q = "query($m: [String!]!) { jobsFootprints(metrics: $m) { timeWeights { nodeHours accHours coreHours } " \
        "metrics { metric data } } }"
    fp = data(inst, q, {"m": ["cpu_load", "flops_any"]})["jobsFootprints"]
    # newest first: r1, r2, f1, f2, f3
    assert fp["metrics"][0] == {"metric": "cpu_load", "data": [50.0, 20.0, 25.0, 95.0, 5.0]}
    assert fp["metrics"][1] == {"metric": "flops_any", "data": [28.0, None, 100.0, 0.5, None]}
    tw = fp["timeWeights"]
    assert tw["nodeHours"][3] == 360.0 and tw["accHours"][4] == 100 / 60 * 2 and tw["accHours"][0] == 1.0
    assert tw["coreHours"][2] == 30.0 * 8
    assert "too many jobs" not in str(fp)


def test_jobs_metric_stats_and_roofline(inst):
    js = data(inst, "{ jobsMetricStats(filter: [{state: [running]}], metrics: [\"cpu_load\"]) "
                    "{ id jobId numNodes stats { name data { avg } } } }")["jobsMetricStats"]
    assert [(j["jobId"], j["stats"][0]["data"]["avg"]) for j in js] == [("202", 20.0), ("201", 50.0)]
    tiles = data(inst, "{ rooflineHeatmap(filter: [{state: [running]}], rows: 4, cols: 5, minX: 0.01, minY: 1, "
                       "maxX: 1000, maxY: 10000) }")["rooflineHeatmap"]
    assert len(tiles) == 4 and all(len(r) == 5 for r in tiles)
    assert tiles[1][1] == 20.0 and sum(map(sum, tiles)) == 20.0  # 20 points at intensity 28/30, 28 F/s


# -- nodes ------------------------------------------------------------------------------------------

def test_node_states(inst):
    q = "query($f: [NodeFilter!]) { nodes(filter: $f) { count items { id hostname schedulerState healthState " \
        "cpusAllocated metaData } } }"
    allocated = data(inst, q, {"f": [{"schedulerState": "allocated"}]})["nodes"]
    assert allocated["count"] == 2 and [n["hostname"] for n in allocated["items"]] == ["n01", "n02"]
    assert allocated["items"][0]["cpusAllocated"] == 8 and allocated["items"][0]["metaData"] == {}
    assert data(inst, q, {"f": [{"hostname": {"startsWith": "g"}}]})["nodes"]["count"] == 1
    node_id = allocated["items"][0]["id"]
    assert data(inst, "query($id: ID!) { node(id: $id) { hostname } }", {"id": node_id})["node"]["hostname"] == "n01"
    states = data(inst, "{ nodeStates { state count } }")["nodeStates"]
    sched = {s["state"]: s["count"] for s in states if s["state"] in ("allocated", "idle", "down")}
    assert sched == {"allocated": 2, "idle": 1, "down": 1}
    assert sum(s["count"] for s in states) == 8  # each node once by scheduler state, once by health
    timed = data(inst, '{ nodeStatesTimed(type: "node") { state counts times } }')["nodeStatesTimed"]
    assert {t["state"]: sum(t["counts"]) for t in timed} == {"allocated": 2, "down": 1, "idle": 1}
    assert "administrator or support" in errors(inst, q, user="alice")[0]
    assert "argument 'type'" in errors(inst, '{ nodeStatesTimed(type: "x") { state } }')[0]
    assert data(inst, '{ allocatedNodes(cluster: "c1") { name count } }', user="alice")["allocatedNodes"] == [
        {"name": "main", "count": 2}]


def test_node_metrics(inst):
    q = "query($n: [String!], $m: [String!], $from: Time!, $to: Time!) { nodeMetrics(cluster: \"c1\", nodes: $n, " \
        "metrics: $m, from: $from, to: $to) { host nodeState subCluster metrics { name scope metric { timestep " \
        "series { data } } } } }"
    got = {n["host"]: n for n in data(inst, q, {"n": ["n01", "n02"], "m": ["cpu_load", "flops_any"], **SPAN})["nodeMetrics"]}
    assert got["n01"]["nodeState"] == "allocated" and got["n01"]["subCluster"] == "main"
    m = {x["name"]: x["metric"] for x in got["n01"]["metrics"]}
    assert m["cpu_load"]["series"][0]["data"][0] == 50.0 and m["flops_any"]["series"][0]["data"][0] == 28.0
    assert {x["name"] for x in got["n02"]["metrics"]} == {"cpu_load"}
    assert {n["host"] for n in data(inst, q, {"m": ["cpu_load"], **SPAN})["nodeMetrics"]} == {"n01", "n02"}
    assert "administrator or support" in errors(inst, q, {"n": ["n01"], **SPAN}, user="mgr")[0]


def test_node_metrics_list(inst):
    q = "query($s: String!, $f: String!, $p: PageRequest, $sc: [MetricScope!], $from: Time!, $to: Time!) { " \
        "nodeMetricsList(cluster: \"c1\", subCluster: \"\", stateFilter: $s, nodeFilter: $f, scopes: $sc, " \
        "metrics: [\"mem_bw\", \"cpu_load\"], from: $from, to: $to, page: $p) { totalNodes hasNextPage items { " \
        "host nodeState metrics { name scope metric { series { id data } } } } } }"
    first = data(inst, q, {"s": "all", "f": "", "p": {"itemsPerPage": 2, "page": 1}, "sc": ["node", "socket"], **SPAN})
    lst = first["nodeMetricsList"]
    assert lst["totalNodes"] == 4 and lst["hasNextPage"] is True
    assert [i["host"] for i in lst["items"]] == ["g01", "n01"]
    n01 = {(m["name"], m["scope"]): m["metric"] for m in lst["items"][1]["metrics"]}
    assert [(s["id"], s["data"][0]) for s in n01["mem_bw", "socket"]["series"]] == [("0", 10.0), ("1", 20.0)]
    assert n01["mem_bw", "node"]["series"][0]["data"][0] == 30.0 and ("cpu_load", "node") in n01
    page2 = data(inst, q, {"s": "all", "f": "", "p": {"itemsPerPage": 2, "page": 2}, **SPAN})["nodeMetricsList"]
    assert [i["host"] for i in page2["items"]] == ["n02", "n03"] and page2["hasNextPage"] is False
    alloc = data(inst, q, {"s": "allocated", "f": "", **SPAN})["nodeMetricsList"]
    assert [i["host"] for i in alloc["items"]] == ["n01", "n02"] and alloc["totalNodes"] == 2
    assert [i["host"] for i in data(inst, q, {"s": "all", "f": "03", **SPAN})["nodeMetricsList"]["items"]] == ["n03"]
    missing = data(inst, q, {"s": "notindb", "f": "", **SPAN})["nodeMetricsList"]
    assert [i["host"] for i in missing["items"]] == ["g02", "g03", "g04"]
    assert "argument 'stateFilter'" in errors(inst, q, {"s": "sleeping", "f": "", **SPAN})[0]


def test_cluster_metrics(inst):
    cm = data(inst, 'query($from: Time!, $to: Time!) { clusterMetrics(cluster: "c1", metrics: ["net_bw"], '
                    'from: $from, to: $to) { nodeCount metrics { name unit { base prefix } timestep data } } }',
              {"from": T0, "to": T0 + 190})
    cm = cm["clusterMetrics"]
    assert cm["nodeCount"] == 2
    net = cm["metrics"][0]
    assert net["name"] == "net_bw" and net["unit"] == {"base": "B/s", "prefix": "T"} and net["timestep"] == 10
    values = [v for v in net["data"] if v is not None and not math.isnan(v)]
    assert values and all(v == 4.0 for v in values)
    assert "argument 'cluster'" in errors(inst, '{ clusterMetrics(cluster: "nope", from: 0, to: 1) { nodeCount } }')[0]
