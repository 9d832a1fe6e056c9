"""The views of phase 2 in a real headless Chromium against the real supervisor: a user's jobs, the user and
project lists, tags, the nodes and node views, the status and analysis views, the search bar, the admin part of
the settings, the energy summary and what each role may see.

One installation (tests/ui_helpers.start_ui_installation plus node states from the scheduler and an emission
constant) and one browser serve the module.  Every browser test saves a screenshot into its tmp dir and fails
on any browser console error.  Expected numbers come from the jobs the installation created
(see start_ui_installation): alice runs r1, s1 (c1), f1 (finished) and one job on c2; bob r2, s2, f2 (failed),
big (8 nodes).
"""

from __future__ import annotations

import time

import httpx
import jwt as pyjwt
import pytest

from cc.db import connect, transaction
from cc.jwtauth import load_public_key
from tests.graphql_helpers import data, rest
from tests.ui_helpers import (
    NOTICE,
    PLOTS_READY,
    Browser,
    ingest,
    login,
    metric_lines,
    open_page,
    start_ui_installation,
)

EMISSION = 400  # g CO2 per kWh


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = start_ui_installation(tmp_path_factory.mktemp("ui-views"), {"main": {"emission-constant": EMISSION}})
    try:
        r = rest(i, "POST", "/api/nodestate/", json={"cluster": "c1", "nodes": [
            {"hostname": "n01", "states": ["allocated"], "cpusAllocated": 8, "jobsRunning": 1},
            {"hostname": "n05", "states": ["idle"]},
            {"hostname": "n07", "states": ["down"]}]})
        assert r.status_code == 200, r.text
        # what the archiver writes for a job with power metrics: energy in kWh, per metric and in total
        conn = connect(i.cfg.db_path)
        try:
            transaction(conn, lambda c: c.execute("UPDATE job SET energy = ?, energy_footprint = ? WHERE id = ?",
                                                  (1.25, '{"acc_power": 1.25}', i.ids["f1"])))
        finally:
            conn.close()
        yield i
    finally:
        i.stop()


def flag(name: str) -> str:
    return f"return document.body.dataset.{name} === '1'"


def texts(b: Browser, css: str) -> list[str]:
    return b.js("return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent.trim())", css)


def attr_list(b: Browser, css: str, key: str) -> list[str]:
    return b.js("return [...document.querySelectorAll(arguments[0])].map((e) => e.dataset[arguments[1]])", css, key)


def plot_of(b: Browser, css: str) -> dict | None:
    return b.js("const el = document.querySelector(arguments[0]); const p = el && el.ccPlot;"
                "if (!p) return null; return {series: p.series.length, length: p.length, timestep: p.timestep,"
                "stats: p.opts.stats, background: el.dataset.background, start: p.opts.start ?? null,"
                "span: p.opts.span ?? null};", css)


def hours(seconds: float) -> int:
    return round(seconds / 3600)


def expect_refused(b: Browser, inst, path: str, status: int = 403) -> str:
    """Open a page the user may not see: a message page with the status (Chromium logs the status as an error,
    which is expected here and dropped); returns the message."""
    open_page(b, inst, path, ready="return document.querySelector('[data-message]') !== null")
    unexpected = [e for e in b.console_errors() if f"status of {status}" not in e]
    assert not unexpected, unexpected
    return b.text("[data-message]")


def points_since(start: int, last: int, step: int = 10) -> int:
    """Number of points of a series from ``start`` whose newest point is at ``last``."""
    return (last - start) // step + 1


# -- a user's jobs ---------------------------------------------------------------------------------

def test_user_page_summary_histograms_and_filters(b, inst):
    open_page(b, inst, "/monitoring/user/alice", ready=flag("statsReady"))
    b.wait(PLOTS_READY, what="job list")
    assert b.text("[data-page-title]") == "Jobs of alice"
    stats = b.js("return Object.fromEntries([...document.querySelectorAll('[data-stat]')]"
                 ".map((e) => [e.dataset.stat, e.textContent]))")
    assert stats["username"] == "alice" and stats["name"] == "Full alice" and stats["email"] == "alice@example.org"
    assert stats["totalJobs"] == "4" and stats["shortJobs"] == "0" and stats["totalAccHours"] == "0 h"
    # r1 1 h, s1 40 min, f1 1 h (finished), c2 20 min: 3 h so far; hwthreads x time: 8 + 2.67 + 16 + 2.67 core hours
    dt = time.time() - inst.t_now
    assert abs(int(stats["totalWalltime"].removesuffix(" h")) - hours(10800 + 3 * dt)) <= 1
    assert abs(int(stats["totalCoreHours"].removesuffix(" h")) - hours(105600 + 20 * dt)) <= 1
    assert b.js("return document.querySelector('[data-hist=duration]').dataset.total") == "4"
    assert b.js("return document.querySelector('[data-hist=numNodes]').dataset.total") == "4"
    assert b.js("return document.querySelector('[data-hist=numNodes] canvas') !== null")
    users = set(texts(b, "[data-job-row] .job-user"))
    assert users == {"alice"} and b.text("[data-job-count]") == "4 jobs"
    # a filter narrows the list, the summary and the histograms alike
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=cluster]")
    b.select("dialog [data-field=cluster]", "c1")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-job-count]').dataset.count === '3'", what="cluster filter")
    b.wait("return document.querySelector('[data-stat=totalJobs]')?.textContent === '3'", what="summary of c1")
    assert b.js("return document.querySelector('[data-hist=duration]').dataset.total") == "3"
    assert b.js("return location.search") == "?cluster=c1"
    # a metric histogram from the footprints: only f1 is archived (flops_any average ~41 of peak 100 -> bin 5)
    b.click("[data-select-histograms]")
    b.click("dialog [data-metric-item=flops_any] input")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-metric-hist=flops_any] canvas') !== null", what="metric histogram")
    b.wait(flag("statsReady"))
    assert b.js("return document.querySelector('[data-metric-hist=flops_any]').dataset.total") == "1"
    assert b.js("return document.querySelector('[data-metric-hist=flops_any]').dataset.bins") == "10"
    assert data(inst, "{ userConfig }")["userConfig"]["userView_histogramMetrics:c1"] == ["flops_any"]
    b.select("[data-field=metric-bins]", "20")
    b.wait("return document.querySelector('[data-metric-hist=flops_any]')?.dataset.bins === '20'")
    # URL presets: a shared link shows the same view
    open_page(b, inst, "/monitoring/user/alice?state=running", ready=flag("statsReady"))
    assert b.text("[data-stat=totalJobs]") == "3" and b.text("[data-pill=states] .pill-label") == "State: running"


# -- lists -----------------------------------------------------------------------------------------

def rows_of(b: Browser) -> dict[str, str]:
    return b.js("return Object.fromEntries([...document.querySelectorAll('[data-row]')].map((r) =>"
                "[r.dataset.row, r.querySelector('[data-field=totalJobs]').textContent]))")


def test_users_and_projects_lists(b, inst):
    open_page(b, inst, "/monitoring/users/", ready=flag("listReady"))
    assert rows_of(b) == {"alice": "4", "bob": "4"}
    assert texts(b, "[data-row=alice] td")[1] == "Full alice"
    # a filter: cluster c2 -> only alice's job there
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=cluster]")
    b.select("dialog [data-field=cluster]", "c2")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-row-count]').dataset.count === '1'", what="cluster filter")
    assert rows_of(b) == {"alice": "1"} and b.js("return location.search") == "?cluster=c2"
    b.click("[data-pill=cluster] .pill-remove")
    b.wait("return document.querySelector('[data-row-count]').dataset.count === '2'")
    # the name filter and sorting by a column
    b.type("[data-field=name-filter]", "bo")
    b.wait("return document.querySelector('[data-row-count]').dataset.count === '1'", what="name filter")
    assert list(rows_of(b)) == ["bob"]
    b.type("[data-field=name-filter]", "")
    b.js("const i = document.querySelector('[data-field=name-filter]'); i.dispatchEvent(new Event('input'))")
    b.wait("return document.querySelector('[data-row-count]').dataset.count === '2'")
    b.click("[data-sort-by=totalWalltime]")   # alice: 3 h, bob: 1.5 h
    assert attr_list(b, "[data-row]", "row") == ["alice", "bob"]
    b.click("[data-sort-by=totalWalltime]")
    assert attr_list(b, "[data-row]", "row") == ["bob", "alice"]
    b.click("[data-row=alice] [data-row-link]")
    b.wait(flag("statsReady"), what="alice's page from the list")
    assert b.js("return location.pathname") == "/monitoring/user/alice"
    # projects
    open_page(b, inst, "/monitoring/projects/?startTime=last30d", ready=flag("listReady"))
    assert rows_of(b) == {"p1": "3", "p2": "4", "p3": "1"}
    b.click("[data-row=p2] [data-row-link]")
    b.wait(PLOTS_READY)
    assert b.text("[data-job-count]") == "4 jobs"
    assert "project=p2" in b.js("return location.search")


def test_tags_view(b, inst):
    tag = "mutation($t: String!, $n: String!, $s: String!) { createTag(type: $t, name: $n, scope: $s) { id } }"
    add = "mutation($j: ID!, $t: [ID!]!) { addTagsToJob(job: $j, tagIds: $t) { id } }"
    glob = data(inst, tag, {"t": "app", "n": "ui-views", "s": "global"})["createTag"]["id"]
    mine = data(inst, tag, {"t": "mine", "n": "note", "s": "admin"})["createTag"]["id"]
    for job in ("r2", "f1"):
        data(inst, add, {"j": inst.ids[job], "t": [glob]})
    data(inst, add, {"j": inst.ids["r1"], "t": [mine]})
    open_page(b, inst, "/monitoring/tags/", ready=flag("tagsReady"))
    assert b.js(f"return document.querySelector(\"[data-tag-link='{glob}'] [data-tag-jobs]\").dataset.tagJobs") == "2"
    assert "app" in attr_list(b, "[data-tag-type]", "tagType")
    # admins may delete global and admin tags everywhere
    b.click(f"[data-delete-tag='{mine}']")
    b.click("dialog [data-value=delete]")
    b.wait(f"return document.querySelector(\"[data-tag-entry='{mine}']\") === null", what="tag deleted")
    assert all(t["id"] != mine for t in data(inst, "{ tags { id } }")["tags"])
    # a tag leads to its jobs
    b.click(f"[data-tag-link='{glob}']")
    b.wait(PLOTS_READY)
    assert sorted(attr_list(b, "[data-job-row]", "jobRow")) == sorted([str(inst.ids["r2"]), str(inst.ids["f1"])])
    # alice sees the global tag on her own job only, and cannot delete it
    try:
        login(b, inst.web, "alice", "pw-alice", "/monitoring/tags/")
        b.wait(flag("tagsReady"))
        assert b.js(f"return document.querySelector(\"[data-tag-link='{glob}'] [data-tag-jobs]\").dataset.tagJobs") == "1"
        assert b.js("return document.querySelectorAll('[data-delete-tag]').length") == 0
    finally:
        login(b, inst.web, "admin", "pw-admin")


# -- nodes and node views --------------------------------------------------------------------------

def cards(b: Browser) -> list[str]:
    return attr_list(b, "[data-node-grid] [data-node]", "node")


def test_nodes_view_ranges_filters_and_states(b, inst):
    open_page(b, inst, "/monitoring/systems/c1?range=1h")
    hosts = ["n01", "n02", "n03", "n04", "n05", "n06", "n07"] + [f"n{i}" for i in range(10, 18)]
    assert cards(b) == hosts   # n07 has no data but a state in the node table
    assert b.js("return document.querySelector('[data-field=time-range]').value") == "1h"
    assert b.js("return document.querySelector('[data-field=metric]').value") == "cpu_load"
    assert b.text("[data-node=n01] [data-node-state]") == "allocated"
    assert b.text("[data-node=n07] [data-node-state]") == "down"
    assert b.js("return document.querySelector('[data-node=n07] [data-no-data]') !== null")
    # the metric data were written up to t_now: the series reach that far, the x axis the whole hour
    n01 = plot_of(b, "[data-node=n01] .metric-plot")
    assert n01["timestep"] == 10 and n01["background"] == "alert"   # 5 % of peak
    assert n01["span"] >= 3600 and n01["start"] % 10 == 0 and abs(n01["start"] - (time.time() - 3600)) < 120
    assert abs(n01["length"] - points_since(n01["start"], inst.t_now)) <= 1
    # shorter range: n05 has no data any more
    b.select("[data-field=time-range]", "15m")
    b.wait(PLOTS_READY)
    b.wait("return location.search.includes('range=15m')")
    assert b.js("return document.querySelector('[data-node=n05] [data-no-data]') !== null")
    n01 = plot_of(b, "[data-node=n01] .metric-plot")
    assert n01["span"] >= 900 and abs(n01["length"] - points_since(n01["start"], inst.t_now)) <= 1
    # long range: resampled
    b.select("[data-field=time-range]", "24h")
    b.wait(PLOTS_READY)
    assert plot_of(b, "[data-node=n01] .metric-plot")["timestep"] == 300
    # find node, state filter
    b.type("[data-field=find-node]", "n1")
    b.wait("return document.querySelector('[data-node-count]').dataset.count === '8'", what="find node")
    assert cards(b) == [f"n{i}" for i in range(10, 18)] and "node=n1" in b.js("return location.search")
    b.type("[data-field=find-node]", "")
    b.js("document.querySelector('[data-field=find-node]').dispatchEvent(new Event('input'))")
    b.wait("return document.querySelector('[data-node-count]').dataset.count === '15'", what="all nodes again")
    b.select("[data-field=node-state]", "down")
    assert cards(b) == ["n07"]
    b.select("[data-field=node-state]", "")
    assert b.js("return [...document.querySelectorAll('[data-field=subcluster] option')].map((o) => o.value)") == ["", "main"]
    # another metric: remembered per cluster
    b.select("[data-field=metric]", "mem_used")
    b.wait(PLOTS_READY)
    b.wait("return location.search.includes('metric=mem_used')")
    assert b.js("return document.querySelector('[data-node=n04] .metric-plot').ccPlot.opts.metric") == "mem_used"
    assert data(inst, "{ userConfig }")["userConfig"]["nodeOverview_selectedMetric:c1"] == "mem_used"
    # a custom range from the URL (f1's hour on n05 and n06)
    t0, t1 = inst.t_now - 7000, inst.t_now - 3400
    open_page(b, inst, f"/monitoring/systems/c1?metric=cpu_load&from={t0}&to={t1}")
    assert b.js("return document.querySelector('[data-field=time-range]').value") == "custom"
    p = plot_of(b, "[data-node=n05] .metric-plot")
    assert p["start"] == t0 - t0 % 10 and 355 <= p["length"] <= 362
    assert b.js("return document.querySelector('[data-node=n10] [data-no-data]') !== null")
    # reload keeps the view; the node link keeps the range
    b.select("[data-field=reload-interval]", "30")
    b.click("[data-reload]")
    b.wait(PLOTS_READY)
    href = b.js("return document.querySelector('[data-node-link=n05]').getAttribute('href')")
    assert href == f"/monitoring/node/c1/n05?from={t0}&to={t1}"
    b.click("[data-node-link=n05]")
    b.wait(PLOTS_READY, what="node view")
    assert plot_of(b, "[data-metric=cpu_load] .metric-plot")["start"] == t0 - t0 % 10


def test_node_view_metrics_scopes_and_jobs(b, inst):
    open_page(b, inst, "/monitoring/node/c1/n04?range=1h")
    metrics = attr_list(b, "[data-plot-grid] .plot-card", "metric")
    assert metrics == ["acc_power", "cpu_load", "cpu_user", "flops_any", "mem_bw", "mem_used", "net_bw"]
    assert set(attr_list(b, ".plot-card", "scope")) == {"node"}
    assert plot_of(b, "[data-metric=cpu_load] .metric-plot")["series"] == 1
    b.wait("return document.querySelector('[data-running-jobs]') !== null", what="jobs on the node")
    assert b.text("[data-running-jobs]") == "2 running jobs"
    assert sorted(attr_list(b, "[data-running-jobs-table] [data-node-job]", "nodeJob")) == \
        sorted([str(inst.ids["s1"]), str(inst.ids["s2"])])
    # finer scopes where the metric has them
    options = b.js("return [...document.querySelectorAll('[data-scope-select=flops_any] option')].map((o) => o.value)")
    assert [o for o in options if not o.endswith("-stat")] == ["node", "socket", "memoryDomain", "core", "hwthread"]
    assert [o for o in b.js("return [...document.querySelectorAll('[data-scope-select=mem_bw] option')]"
                            ".map((o) => o.value)") if not o.endswith("-stat")] == ["node", "socket"]
    b.select("[data-scope-select=flops_any]", "core")
    b.wait("return document.querySelector('.plot-card[data-metric=flops_any]').dataset.scope === 'core' &&"
           " document.querySelector('[data-metric=flops_any] .metric-plot')?.ccPlot?.series.length === 4", what="cores")
    b.select("[data-scope-select=flops_any]", "hwthread-stat")
    b.wait("return document.querySelector('[data-metric=flops_any] .metric-plot')?.ccPlot?.opts.stats === true")
    assert plot_of(b, "[data-metric=flops_any] .metric-plot")["series"] == 8
    # range switch
    b.select("[data-field=time-range]", "15m")
    b.wait(PLOTS_READY)
    p = plot_of(b, "[data-metric=cpu_load] .metric-plot")
    assert p["span"] >= 900 and abs(p["length"] - points_since(p["start"], inst.t_now)) <= 1
    assert b.js("return document.querySelector('.plot-card[data-metric=flops_any]').dataset.scope") == "hwthread"
    # the job list of the node's running jobs
    b.click("[data-show-running]")
    b.wait(PLOTS_READY)
    assert b.text("[data-job-count]") == "2 jobs" and "node=n04" in b.js("return location.search")
    # a node with a state and a finished job
    open_page(b, inst, "/monitoring/node/c1/n05")
    b.wait("return document.querySelector('[data-recent-jobs-table]') !== null")
    assert b.text("[data-node-badges] [data-node-state]") == "idle"
    assert b.text("[data-node-badges] [data-node-health]") == "metrics: failed"   # no data for minutes
    assert attr_list(b, "[data-recent-jobs-table] [data-node-job]", "nodeJob") == [str(inst.ids["f1"])]
    assert b.text("[data-running-jobs]") == "0 running jobs"


# -- status and analysis ---------------------------------------------------------------------------

def test_status_view(b, inst):
    # the current flop rate and bandwidth come from the last 5 minutes: fresh points for the busy nodes
    now = int(time.time())
    busy = ["n01", "n02", "n03", "n04"] + [f"n{i}" for i in range(10, 18)]
    ingest(inst, metric_lines(inst.clusters["c1"], busy, now - 120, now + 1, metrics=["flops_any", "mem_bw"]), "c1")
    open_page(b, inst, "/monitoring/status/c1", ready=flag("statusReady"))
    g = b.js("const g = document.querySelector('[data-subcluster=main] [data-gauge=allocated]');"
             "return [g.dataset.value, g.dataset.max]")
    # hosts with running jobs: n01, n02, n03, n04, n10..n17; nodes known: 14 with data + n07 from the node table
    assert g == ["12", "15"]
    assert b.text("[data-running-jobs=main]") == "5"
    assert float(b.js("return document.querySelector('[data-subcluster=main] [data-gauge=flops]').dataset.value")) > 0
    assert b.js("return Number(document.querySelector('[data-subcluster=main] [data-roofline]').dataset.points)") >= 10
    counts = b.js("return Object.fromEntries([...document.querySelectorAll('[data-state-count]')].map((e) =>"
                  "[e.dataset.stateCount, e.textContent.trim()]))")
    assert counts == {"allocated": "allocated 1", "down": "down 1", "idle": "idle 1"}
    assert attr_list(b, "[data-node-table] [data-node-row]", "nodeRow")[0] == "n05"   # failed metric health first
    top = b.js("return [...document.querySelectorAll('[data-top=user] [data-top-row]')].map((r) =>"
               "[r.dataset.topRow, r.querySelector('[data-field=totalNodes]').textContent])")
    assert top == [["bob", "11"], ["alice", "2"]]
    b.select("[data-field=top-category]", "TOTALJOBS")
    b.wait(flag("statusReady"))
    b.wait("return document.querySelector('[data-top=project] th.active')?.textContent === 'Jobs'")
    top = b.js("return [...document.querySelectorAll('[data-top=project] [data-top-row]')].map((r) =>"
               "[r.dataset.topRow, r.querySelector('[data-field=totalJobs]').textContent])")
    assert top == [["p2", "3"], ["p1", "2"]]
    assert b.js("return document.querySelector('[data-hist=numNodes]').dataset.total") == "5"
    b.click("[data-reload]")
    b.wait(flag("statusReady"))


def test_analysis_view(b, inst):
    # without filters: the jobs started in the last 24 hours (f2 started 5 days ago; tests/test_ui_rough_edges.py)
    open_page(b, inst, "/monitoring/analysis/c1", ready=flag("analysisReady"), timeout=60)
    assert b.text("[data-stat=totalJobs]") == "6"
    top = b.js("return [...document.querySelectorAll('[data-top=user] [data-top-row]')].map((r) => r.dataset.topRow)")
    assert sorted(top) == ["alice", "bob"]
    assert float(b.js("return document.querySelector('[data-heatmap] canvas').dataset.heatmapTotal")) > 100
    assert b.js("return document.querySelector('[data-hist=duration]').dataset.total") == "6"
    b.click("[data-select-histograms]")
    b.click("dialog [data-metric-item=flops_any] input")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-metric-hist=flops_any] canvas') !== null", what="metric histogram")
    assert int(b.js("return document.querySelector('[data-metric-hist=flops_any]').dataset.jobs")) >= 6
    b.click("[data-select-scatter]")
    b.select("dialog [data-field=scatter-x]", "flops_any")
    b.select("dialog [data-field=scatter-y]", "mem_bw")
    b.click("dialog [data-add-pair]")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-scatter-pair=\"flops_any:mem_bw\"] canvas') !== null")
    assert int(b.js("return document.querySelector('[data-scatter]').dataset.points")) >= 6
    cfg = data(inst, "{ userConfig }")["userConfig"]
    assert cfg["analysisView_scatterPlotMetrics:c1"] == [["flops_any", "mem_bw"]]
    # a filter: running jobs only
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=states]")
    b.click("dialog [data-state=running]")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-stat=totalJobs]')?.textContent === '5'", what="state filter")
    b.wait(flag("analysisReady"))
    assert b.js("return location.search") == "?state=running"


# -- search bar, settings, energy, roles -----------------------------------------------------------

def search(b: Browser, text: str, ready: str) -> None:
    """Search from the navigation bar and wait for the page it leads to."""
    b.js("window.ccOldPage = true")
    b.type("[data-search-input]", text + "\n")
    b.wait(f"if (window.ccOldPage) return false; {ready}", what=f"search {text!r}")


def test_search_bar(b, inst):
    open_page(b, inst, "/", ready="return document.querySelector('[data-searchbar]') !== null")
    search(b, "1005", PLOTS_READY)
    assert b.js("return location.search") == "?jobId=1005" and b.text("[data-job-count]") == "1 job"
    search(b, "alice", flag("statsReady"))
    assert b.js("return location.pathname") == "/monitoring/user/alice"
    search(b, "p2", PLOTS_READY)
    assert b.text("[data-job-count]") == "4 jobs"
    search(b, "jobName: eight", PLOTS_READY)
    assert b.text("[data-job-count]") == "1 job"
    search(b, "name:Full bob", flag("listReady"))
    assert b.js("return location.pathname") == "/monitoring/users/" and list(rows_of(b)) == ["bob"]
    search(b, "nope:1", "return document.querySelector('[data-message]') !== null")
    assert "Unknown search type" in b.text("[data-message]")
    assert all("status of 400" in e for e in b.console_errors())


def test_search_redirects(inst):
    with httpx.Client(base_url=inst.web) as c:
        assert c.post("/login", json={"username": "mgr", "password": "pw-mgr"}).status_code == 200

        def go(q: str) -> str:
            r = c.get("/search", params={"searchId": q})
            assert r.status_code in (302, 400, 403), r.text
            return r.headers.get("location") or str(r.status_code)

        assert go("arrayJobId:7") == "/monitoring/jobs/?startTime=last30d&arrayJobId=7"
        assert go("projectId:p1") == "/monitoring/jobs/?projectMatch=eq&project=p1"
        assert go("username:bob") == "/monitoring/users/?user=bob&startTime=last30d"
        assert go("alice") == "/monitoring/user/alice"          # alice runs jobs in mgr's project p1
        assert go("bob") == "/monitoring/jobs/?startTime=last30d&jobName=bob"   # bob's jobs are not mgr's to see
        assert go("name:Full") == "/monitoring/users/?user=alice&startTime=last30d"
        assert go("") == "400"
        assert c.post("/login", json={"username": "alice", "password": "pw-alice"}).status_code == 200
        assert go("name:bob") == "403"
        assert go("alice") == "/monitoring/user/alice"
        assert go("p1") == "/monitoring/jobs/?projectMatch=eq&project=p1"


def test_admin_settings(b, inst):
    open_page(b, inst, "/config", ready="return document.querySelector('[data-user-table]') !== null")
    assert {"admin", "alice", "bob", "mgr", "sup", "adapter"} <= set(attr_list(b, "[data-user-row]", "userRow"))
    # create a user
    b.type("[data-new-user=username]", "carol")
    b.type("[data-new-user=password]", "pw-carol")
    b.type("[data-new-user=name]", "Carol C")
    b.type("[data-new-user=email]", "carol@example.org")
    b.click("[data-new-role=support]")
    b.click("[data-create-user] button[type=submit]")
    b.wait("return document.querySelector('[data-admin-status=create]').dataset.result === 'ok'", what="user created")
    b.wait("return document.querySelector('[data-user-row=carol]') !== null", what="carol in the user list")
    assert b.text("[data-user-row=carol] [data-user-roles]") == "support"
    # roles and projects
    b.type("[data-field=role-user]", "carol")
    b.select("[data-field=role-value]", "api")
    b.click("[data-add-role]")
    b.wait("return document.querySelector('[data-user-row=carol] [data-user-roles]')?.textContent === 'support, api'")
    b.type("[data-field=project-user]", "carol")
    b.type("[data-field=project-value]", "p9")
    b.click("[data-add-project]")
    b.wait("return document.querySelector('[data-admin-status=project]').dataset.result === 'error'")
    assert "not a manager" in b.text("[data-admin-status=project]")
    assert all("status of 422" in e for e in b.console_errors())   # the refused request
    # a token for carol, valid for the REST API
    b.click("[data-user-jwt=carol]")
    b.wait("return document.querySelector('[data-jwt-of=carol]')?.value.length > 20", what="carol's token")
    token = b.js("return document.querySelector('[data-jwt-of=carol]').value")
    b.click("dialog [data-value='']")
    claims = pyjwt.decode(token, load_public_key(inst.cfg.secret("JWT_PUBLIC_KEY")), algorithms=["EdDSA"])
    assert claims["sub"] == "carol" and claims["roles"] == ["support", "api"]
    r = httpx.get(inst.web + "/api/jobs/", params={"state": "running"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and len(r.json()["jobs"]) == 6
    assert httpx.post(inst.web + "/login", json={"username": "carol", "password": "pw-carol"}).status_code == 200
    # delete
    b.click("[data-delete-user=carol]")
    b.click("dialog [data-value=delete]")
    b.wait("return document.querySelector('[data-user-row=carol]') === null", what="carol deleted")
    assert b.js("return document.querySelector('[data-delete-user=admin]')") is None   # not oneself
    # the notice banner
    try:
        b.type("[data-notice-text]", "Cluster c1 is back")
        b.click("[data-save-notice]")
        b.wait("return document.querySelector('[data-admin-status=notice]').dataset.result === 'ok'")
        open_page(b, inst, "/", ready="return document.querySelector('[data-home-table]') !== null")
        assert b.text("[data-notice]") == "Cluster c1 is back"
        open_page(b, inst, "/config", ready="return document.querySelector('[data-notice-text]') !== null")
        assert b.js("return document.querySelector('[data-notice-text]').value") == "Cluster c1 is back"
        b.type("[data-notice-text]", "")
        b.click("[data-save-notice]")
        b.wait("return document.querySelector('[data-admin-status=notice]').dataset.result === 'ok'")
        open_page(b, inst, "/", ready="return document.querySelector('[data-home-table]') !== null")
        assert b.js("return document.querySelector('[data-notice]')") is None
    finally:
        (inst.cfg.var_dir / "notice.txt").write_text(NOTICE + "\n")


def test_config_api_rules(inst):
    origin = {"Origin": inst.web}
    with httpx.Client(base_url=inst.web) as anon:
        assert anon.get("/config/users/").status_code == 401
    with httpx.Client(base_url=inst.web) as c:
        c.post("/login", json={"username": "alice", "password": "pw-alice"})
        assert c.get("/config/users/").status_code == 403
        assert c.post("/config/notice/", data={"new-content": "x"}, headers=origin).status_code == 403
        assert c.get("/frontend/jwt/", params={"username": "bob"}).status_code == 403
        token = c.get("/frontend/jwt/", params={"username": "alice"}).text
        assert pyjwt.decode(token, options={"verify_signature": False})["sub"] == "alice"
    with httpx.Client(base_url=inst.web) as c:
        c.post("/login", json={"username": "admin", "password": "pw-admin"})
        # another site's page may not use the admin's session
        r = c.post("/config/users/", data={"username": "eve", "password": "x", "role": "admin"},
                   headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-origin" in r.json()["error"]
        assert c.post("/config/users/", data={"username": "mallory", "role": "user"}, headers=origin).status_code == 400
        r = c.post("/config/users/", data={"username": "m2", "password": "pw", "role": "manager"}, headers=origin)
        assert r.status_code == 400 and "project" in r.json()["error"]
        r = c.post("/config/users/", data={"username": "svc", "role": "api"}, headers=origin)   # no password: API only
        assert r.status_code == 200, r.text
        assert c.post("/config/user/svc", data={"add-role": "nope"}, headers=origin).status_code == 422
        assert c.request("DELETE", "/config/users/", data={"username": "admin"}, headers=origin).status_code == 403  # not yourself
        assert c.request("DELETE", "/config/users/", data={"username": "svc"}, headers=origin).status_code == 200
        assert c.get("/config/roles/").json() == ["user", "manager", "support", "admin", "api"]
        r = c.post("/config/notice/", data={"new-content": "x" * 10001}, headers=origin)
        assert r.status_code == 400


def test_job_energy_summary(b, inst):
    job = data(inst, "query($id: ID!) { job(id: $id) { energy energyFootprint { hardware metric value } } }",
               {"id": inst.ids["f1"]})["job"]
    assert job == {"energy": 1.25, "energyFootprint": [{"hardware": "Accelerator", "metric": "acc_power", "value": 1.25}]}
    open_page(b, inst, f"/monitoring/job/{inst.ids['f1']}")
    b.click("[data-tab=energy]")
    assert b.text("[data-energy-total]") == "1.25 kWh"
    assert b.text("[data-energy-hardware=Accelerator] [data-energy-value]") == "1.25 kWh"
    assert b.text("[data-energy-carbon]") == "0.5 kg"   # 1.25 kWh at 400 g/kWh
    # running jobs have no energy yet: no tab
    open_page(b, inst, f"/monitoring/job/{inst.ids['r1']}")
    assert b.js("return document.querySelector('[data-tab=energy]')") is None


def test_roles(b, inst):
    try:
        login(b, inst.web, "alice", "pw-alice")
        nav = attr_list(b, "[data-nav]", "nav")
        assert nav == ["myjobs", "jobs", "tags", "config"]
        for path in ("/monitoring/user/bob", "/monitoring/users/", "/monitoring/projects/", "/monitoring/systems/c1",
                     "/monitoring/node/c1/n01", "/monitoring/status/c1", "/monitoring/analysis/c1"):
            expect_refused(b, inst, path)
            assert b.js("return document.querySelector('[data-message]').className").endswith("alert-danger"), path
        open_page(b, inst, "/config", ready=flag("settingsReady"))
        assert b.js("return document.querySelector('[data-users-card]')") is None
        assert b.js("return document.querySelector('[data-token-card]') !== null")
        b.click("[data-generate-jwt]")
        b.wait("return document.querySelector('[data-jwt]').value.length > 20", what="own token")
        # a manager opens the pages of the users of the managed project p1 only
        login(b, inst.web, "mgr", "pw-mgr")
        assert attr_list(b, "[data-nav]", "nav") == ["myjobs", "jobs", "tags", "users", "projects", "config"]
        open_page(b, inst, "/monitoring/users/", ready=flag("listReady"))
        assert rows_of(b) == {"alice": "3"}
        open_page(b, inst, "/monitoring/user/alice", ready=flag("statsReady"))
        assert b.text("[data-stat=totalJobs]") == "3"   # p1 jobs only, not alice's job in p3
        assert "projects you manage" in expect_refused(b, inst, "/monitoring/user/bob")
        # support: nodes and analysis, no status
        login(b, inst.web, "sup", "pw-sup")
        open_page(b, inst, "/monitoring/node/c1/n01")
        assert "administrators" in expect_refused(b, inst, "/monitoring/status/c1")
    finally:
        login(b, inst.web, "admin", "pw-admin")


# -- GraphQL additions of the node views -----------------------------------------------------------

def test_node_metrics_scopes_and_resolution(inst):
    q = ("query($s: [MetricScope!], $r: Int, $from: Time!, $to: Time!) { nodeMetrics(cluster: \"c1\", nodes: [\"n04\"], "
         "metrics: [\"flops_any\", \"cpu_load\", \"mem_bw\"], scopes: $s, from: $from, to: $to, resolution: $r) { host "
         "metrics { name scope metric { timestep series { id data statistics { avg } } } } } }")
    span = {"from": inst.t_now - 3600, "to": inst.t_now}

    def got(scopes, res=None):
        [n] = data(inst, q, {"s": scopes, "r": res, **span})["nodeMetrics"]
        return {(m["name"], m["scope"]): m["metric"] for m in n["metrics"]}

    plain = got(None)   # cc-backend's answer: node scope, labelled node
    assert set(plain) == {("flops_any", "node"), ("cpu_load", "node"), ("mem_bw", "node")}
    assert plain[("cpu_load", "node")]["timestep"] == 10
    fine = got(["core"])   # finer than native falls back to native (mem_bw: socket), node-only metrics stay node
    assert set(fine) == {("flops_any", "core"), ("cpu_load", "node"), ("mem_bw", "socket")}
    assert [s["id"] for s in fine[("flops_any", "core")]["series"]] == ["0", "1", "2", "3"]
    assert len(got(["node", "hwthread"])) == 5
    # resolution: rounded up to a multiple of each metric's timestep, 360 points -> 60 s steps
    res = got(None, 55)
    assert res[("cpu_load", "node")]["timestep"] == 60 and 59 <= len(res[("cpu_load", "node")]["series"][0]["data"]) <= 61
    assert got(None, 5)[("cpu_load", "node")]["timestep"] == 10
    # statistics of nodes without data in the range are zeros (cc-backend), not NaN
    [n] = data(inst, q.replace("n04", "n05"), {"s": None, "r": None, "from": inst.t_now - 600, "to": inst.t_now})[
        "nodeMetrics"]
    assert n["metrics"][0]["metric"]["series"][0]["statistics"] == {"avg": 0.0}
