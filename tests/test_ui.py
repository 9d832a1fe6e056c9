"""The web UI in a real headless Chromium against the real supervisor.

One installation (tests/ui_helpers.start_ui_installation: two clusters, running jobs with
metric data in shared memory, jobs archived by the archiver) and one browser serve the
whole module.  Every test saves a screenshot into its tmp dir and fails on any browser
console error.
"""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
import trio
from trio_websocket import HandshakeError, open_websocket_url

from tests.graphql_helpers import data
from tests.ui_helpers import (
    NOTICE,
    PLOTS_READY,
    Browser,
    ingest,
    login,
    open_page,
    start_ui_installation,
)


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = start_ui_installation(tmp_path_factory.mktemp("ui"))
    try:
        yield i
    finally:
        i.stop()


def plot_info(b: Browser, css: str) -> dict:
    return b.js("const el = document.querySelector(arguments[0]); const p = el && el.ccPlot;"
                "if (!p) return null; return {series: p.series.length, length: p.length, timestep: p.timestep,"
                "zoomed: p.zoomed, stats: p.opts.stats, background: el.dataset.background,"
                "canvas: !!el.querySelector('canvas'), values: p.series.map((s) => s.data)};", css)


# -- login, navigation, home ---------------------------------------------------------------------

def test_login_required_and_errors(b, inst):
    b.get(inst.web + "/logout")
    b.get(inst.web + "/monitoring/jobs/?cluster=c1")
    b.wait("return location.pathname === '/login'", what="redirect to the login page")
    assert "redirect=%2Fmonitoring%2Fjobs%2F%3Fcluster%3Dc1" in b.url
    b.type("input[name=username]", "admin")
    b.type("input[name=password]", "wrong")
    b.click("[data-login-form] button[type=submit]")
    b.wait("return document.querySelector('[data-login-error]') !== null", what="login error")
    assert b.text("[data-login-error]") == "Wrong username or password"
    login(b, inst.web, "admin", "pw-admin", "/monitoring/jobs/%3Fcluster%3Dc1")
    b.wait(PLOTS_READY, what="job list after login")
    assert b.js("return location.pathname + location.search") == "/monitoring/jobs/?cluster=c1"


def test_home_and_admin_navigation(b, inst):
    open_page(b, inst, "/", ready="return document.querySelector('[data-home-table]') !== null")
    assert b.text("[data-notice]") == NOTICE
    rows = b.js("return [...document.querySelectorAll('[data-home-table] tbody tr')].map((tr) => ["
                "tr.dataset.cluster, tr.querySelector('[data-running]').textContent,"
                "tr.querySelector('[data-total]').textContent, tr.querySelectorAll('a').length])")
    assert rows == [["c1", "5 running", "7 total", 4], ["c2", "1 running", "1 total", 4]]
    assert b.js("return document.querySelector('[data-cluster=c1] [data-running]').getAttribute('href')") == \
        "/monitoring/jobs/?cluster=c1&state=running"
    nav = b.js("return [...document.querySelectorAll('[data-nav]')].map((e) => e.dataset.nav)")
    assert nav == ["myjobs", "jobs", "tags", "users", "projects", "nodes", "analysis", "status", "logs", "config"]
    # the per-cluster menus lead to the cluster's view
    b.click("[data-nav=status] summary")
    b.click("[data-nav=status] a")
    b.wait("return document.body.dataset.statusReady === '1'", what="status view")
    assert b.js("return location.pathname") == "/monitoring/status/c1"


def test_navigation_by_role(b, inst):
    try:
        login(b, inst.web, "alice", "pw-alice")
        nav = b.js("return [...document.querySelectorAll('[data-nav]')].map((e) => e.dataset.nav)")
        assert nav == ["myjobs", "jobs", "tags", "config"]
        assert b.js("return document.querySelectorAll('[data-home-table] thead th').length") == 3  # no nodes/status
        # alice sees only her own jobs: c1 has 3 of them running (r1, s1) or finished (f1)
        assert b.text("[data-cluster=c1] [data-total]") == "3 total"
        b.click("[data-nav=myjobs]")
        b.wait(PLOTS_READY, what="my jobs")
        assert b.js("return location.pathname") == "/monitoring/user/alice"
        users = b.js("return [...document.querySelectorAll('.job-user')].map((e) => e.textContent)")
        assert users and set(users) == {"alice"}
        login(b, inst.web, "sup", "pw-sup")
        nav = b.js("return [...document.querySelectorAll('[data-nav]')].map((e) => e.dataset.nav)")
        assert nav == ["myjobs", "jobs", "tags", "users", "projects", "nodes", "analysis", "config"]
    finally:
        login(b, inst.web, "admin", "pw-admin")


# -- job list ------------------------------------------------------------------------------------

def test_job_list_url_presets_and_plots(b, inst):
    open_page(b, inst, "/monitoring/jobs/?cluster=c1&state=running&user=alice&startTime=last24h")
    pills = b.js("return [...document.querySelectorAll('[data-pill]')].map((p) => p.textContent)")
    assert pills == ["Cluster: c1×", "State: running×", "Last 24 hours×", "User contains alice×"]
    rows = b.js("return [...document.querySelectorAll('[data-job-row]')].map((r) => r.dataset.jobRow)")
    assert sorted(rows) == sorted([str(inst.ids["r1"]), str(inst.ids["s1"])])
    assert b.text("[data-job-count]") == "2 jobs"
    headers = b.js("return [...document.querySelectorAll('[data-metric-header]')].map((e) => e.dataset.metricHeader)")
    assert headers == ["cpu_load", "flops_any", "mem_bw", "mem_used"]
    r1 = plot_info(b, f"[data-job-row='{inst.ids['r1']}'] [data-metric=cpu_load] .metric-plot")
    assert r1["canvas"] and r1["series"] == 1 and r1["timestep"] == 60  # resampled to main.resampling's 60 s
    assert r1["background"] == "alert"  # cpu_load at 5 % of peak: below the alert threshold


def test_job_list_filters_sort_and_metrics(b, inst):
    open_page(b, inst, "/monitoring/jobs/")
    assert b.text("[data-job-count]") == "8 jobs"
    # the 8-node job is drawn as min/median/max
    big = plot_info(b, f"[data-job-row='{inst.ids['big']}'] [data-metric=cpu_load] .metric-plot")
    assert big["stats"] and big["series"] == 8 and b.js(
        f"return document.querySelector(\"[data-job-row='{inst.ids['big']}'] [data-metric=cpu_load] .metric-plot\")"
        ".ccPlot.u.series.map((s) => s.label)") == ["Runtime", "min", "median", "max"]
    # filter: job state "completed" through the filter menu and its dialog
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=states]")
    b.click("dialog [data-state=completed]")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-job-count]').textContent === '1 job'", what="state filter")
    assert b.js("return location.search") == "?state=completed"
    assert b.js("return document.querySelector('[data-job-row]').dataset.jobRow") == str(inst.ids["f1"])
    b.wait(PLOTS_READY)
    f1 = plot_info(b, "[data-job-row] [data-metric=mem_bw] .metric-plot")
    assert f1["series"] == 2 and f1["background"] == "normal"   # archived data of both nodes
    # edit through the pill: add "failed", then remove the pill
    b.click("[data-pill=states] .pill-label")
    b.click("dialog [data-state=failed]")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-job-count]').textContent === '2 jobs'")
    b.click("[data-pill=states] .pill-remove")
    b.wait("return document.querySelector('[data-job-count]').textContent === '8 jobs'")
    # quick start time range and a named node
    b.click("[data-filter-menu] summary")
    b.click("[data-quick-range=last6h]")
    b.wait("return document.querySelector('[data-job-count]').textContent === '7 jobs'", what="last 6 hours")
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=resources]")
    b.type("dialog [data-field=node]", "n04")
    b.click("dialog [data-value=apply]")
    b.wait("return document.querySelector('[data-job-count]').textContent === '2 jobs'", what="node filter")
    assert "node=n04" in b.js("return location.search")
    # sort finished jobs by duration, ascending then descending
    open_page(b, inst, "/monitoring/jobs/?state=completed&state=failed")
    b.select("[data-field=sort]", "duration")
    b.wait(PLOTS_READY)
    b.wait("return location.search.includes('sort=duration')")
    order = b.js("return [...document.querySelectorAll('[data-job-row]')].map((r) => r.dataset.jobRow)")
    assert order == [str(inst.ids["f1"]), str(inst.ids["f2"])]
    b.click("[data-sort-order]")
    b.wait("return location.search.includes('order=ASC')")
    b.wait(PLOTS_READY)
    order = b.js("return [...document.querySelectorAll('[data-job-row]')].map((r) => r.dataset.jobRow)")
    assert order == [str(inst.ids["f2"]), str(inst.ids["f1"])]
    # choose and reorder metrics, show the footprint column
    b.click("[data-select-metrics]")
    b.click("dialog [data-metric-item=mem_bw] input")
    b.click("dialog [data-metric-item=mem_used] input")
    b.click("dialog [data-move-up=cpu_load]")  # no-op at the top
    b.click("dialog [data-move-up=flops_any]")
    b.click("dialog [data-option=footprint]")
    b.click("dialog [data-value=apply]")
    b.wait(PLOTS_READY)
    b.wait("return document.querySelectorAll('[data-metric-header]').length === 2")
    headers = b.js("return [...document.querySelectorAll('[data-metric-header]')].map((e) => e.dataset.metricHeader)")
    assert headers == ["flops_any", "cpu_load"]
    assert b.js("return document.querySelectorAll('.cell-footprint').length") == 2
    cfg = data(inst, "{ userConfig }")["userConfig"]
    assert cfg["metricConfig_jobListMetrics"] == ["flops_any", "cpu_load"] and cfg["jobList_showFootprint"] is True
    # the selection is applied on the next load
    open_page(b, inst, "/monitoring/jobs/?cluster=c2")
    headers = b.js("return [...document.querySelectorAll('[data-metric-header]')].map((e) => e.dataset.metricHeader)")
    assert headers == ["flops_any", "cpu_load"]


def count_is(n: int) -> str:
    return f"return document.querySelector('[data-job-count]').dataset.count === '{n}'"


def test_job_list_more_filters(b, inst):
    open_page(b, inst, "/monitoring/jobs/")
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=cluster]")
    b.select("dialog [data-field=cluster]", "c2")
    assert b.js("return [...document.querySelectorAll('dialog [data-field=partition] option')].map((o) => o.value)") \
        == ["", "gpu"]
    b.select("dialog [data-field=partition]", "gpu")
    b.click("dialog [data-value=apply]")
    b.wait(count_is(1), what="cluster c2, partition gpu")
    assert b.js("return location.search") == "?cluster=c2&partition=gpu"
    b.click("[data-pill=cluster] .pill-remove")
    b.wait(count_is(8))
    # footprint statistics: flops_any (avg) between 30 and 50 -> the archived job with 41.3
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=stats]")
    b.type("dialog [data-stat=flops_any_avg] [data-field$=-from]", "30")
    b.type("dialog [data-stat=flops_any_avg] [data-field$=-to]", "50")
    b.click("dialog [data-value=apply]")
    b.wait(count_is(1), what="metric statistics filter")
    assert "stat=flops_any_avg-30-50" in b.js("return location.search")
    b.click("[data-pill=stats] .pill-remove")
    # duration of more than 30 minutes: only finished jobs have a stored duration
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=duration]")
    b.click("dialog input[name=dur-mode][value=more]")
    b.type("dialog [data-field=duration-a]", "0:30")
    b.click("dialog [data-value=apply]")
    b.wait(count_is(1), what="duration filter")
    assert "duration=morethan-1800" in b.js("return location.search")
    b.click("[data-pill=duration] .pill-remove")
    # energy range (no job has energy yet) and the text search
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=energy]")
    b.type("dialog [data-field$=-from]", "1")
    b.click("dialog [data-value=apply]")
    b.wait(count_is(0), what="energy filter")
    assert b.js("return document.querySelector('[data-no-jobs]') !== null")
    b.click("[data-pill=energy] .pill-remove")
    b.type("[data-field=search]", "eight")
    b.wait(count_is(1), what="job name search")
    assert b.js("return location.search") == "?jobName=eight"
    # a shared link restores the same view
    open_page(b, inst, "/monitoring/jobs/?jobName=eight&sort=numNodes&order=ASC")
    assert b.js("return document.querySelector('[data-field=search]').value") == "eight"
    assert b.js("return document.querySelector('[data-field=sort]').value") == "numNodes"
    assert b.js("return document.querySelector('[data-sort-order]').dataset.sortOrder") == "ASC"


def test_job_list_paging(b, inst):
    try:
        data(inst, 'mutation { a: updateConfiguration(name: "jobList_usePaging", value: "true") '
                   'b: updateConfiguration(name: "plot_list_jobsPerPage", value: "3") }')
        open_page(b, inst, "/monitoring/jobs/")
        assert b.text("[data-page-info]") == "Page 1 of 3"
        assert b.js("return document.querySelectorAll('[data-job-row]').length") == 3
        b.click("[data-page-next]")
        b.wait("return document.querySelector('[data-page-info]')?.textContent === 'Page 2 of 3'")
        b.wait(PLOTS_READY)
        b.click("[data-page-next]")
        b.wait("return document.querySelector('[data-page-info]')?.textContent === 'Page 3 of 3'")
        assert b.js("return document.querySelectorAll('[data-job-row]').length") == 2
    finally:
        data(inst, 'mutation { a: updateConfiguration(name: "jobList_usePaging", value: "false") '
                   'b: updateConfiguration(name: "plot_list_jobsPerPage", value: "50") }')


def test_job_list_continuous_scroll(b, inst):
    try:
        data(inst, 'mutation { updateConfiguration(name: "plot_list_jobsPerPage", value: "2") }')
        b.get(inst.web + "/monitoring/jobs/")
        # pages of 2 jobs: the next page is loaded whenever the end of the list scrolls into view
        for n in (2, 4, 6, 8):
            b.wait("return document.querySelectorAll('[data-job-row]').length >= arguments[0]", n, what=f"{n} rows")
            b.js("document.querySelector('[data-joblist-foot]').scrollIntoView()")
        b.wait("return document.querySelector('[data-list-end]') !== null")
        rows = b.js("return [...document.querySelectorAll('[data-job-row]')].map((r) => r.dataset.jobRow)")
        assert len(rows) == len(set(rows)) == 8
        b.wait(PLOTS_READY)
    finally:
        data(inst, 'mutation { updateConfiguration(name: "plot_list_jobsPerPage", value: "50") }')


# -- job view ------------------------------------------------------------------------------------

def test_job_view_archived(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['f1']}")
    assert b.text(".job-card .card-title") == "Job 1005"
    assert "completed" in b.text("[data-job-info] [data-state]")
    fp = b.js("return [...document.querySelectorAll('[data-fp-metric]')].map((e) => [e.dataset.fpMetric, e.dataset.level])")
    assert sorted(fp) == [["cpu_load", "normal"], ["flops_any", "normal"], ["mem_bw", "normal"]]
    assert b.js("return Number(document.querySelector('[data-roofline]').dataset.points)") > 100
    b.click("[data-tab=polar]")
    assert b.js("return Number(document.querySelector('[data-polar]').dataset.axes)") == 3
    cards = b.js("return [...document.querySelectorAll('.plot-card')].map((c) => [c.dataset.metric, c.dataset.scope])")
    assert cards == [["cpu_load", "node"], ["mem_used", "node"], ["flops_any", "node"], ["cpu_user", "node"],
                     ["mem_bw", "node"], ["net_bw", "node"]]
    assert plot_info(b, "[data-metric=cpu_load] .metric-plot")["series"] == 2
    # one host only
    b.select("[data-host-select=cpu_load]", "n06")
    assert plot_info(b, "[data-metric=cpu_load] .metric-plot")["series"] == 1
    # statistics table: per host, min/avg/max of the table metrics
    b.wait("return document.querySelector('[data-stats-table]') !== null", what="statistics table")
    hosts = b.js("return [...document.querySelectorAll('[data-stats-host]')].map((r) => r.dataset.statsHost)")
    assert hosts == ["n05", "n06"]
    assert b.js("return document.querySelectorAll('[data-stats-table] tbody td').length") == 2 * 3 * 3
    b.select("[data-table-scope=flops_any]", "hwthread")
    b.wait("return document.querySelector('[data-stats-host=n05] .stack') !== null", what="hwthread statistics")
    assert b.js("return document.querySelector('[data-stats-host=n05] .stack').children.length") == 8
    # metadata tab
    b.click("[data-tab=meta]")
    assert "finished" in b.text("[data-metadata]")


def test_job_view_running_scopes_and_statistics_series(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['r1']}")
    # single-node job: finest loaded scope by default
    assert b.js("return document.querySelector('.plot-card[data-metric=flops_any]').dataset.scope") == "core"
    assert plot_info(b, "[data-metric=flops_any] .metric-plot")["series"] == 4
    assert plot_info(b, "[data-metric=cpu_load] .metric-plot")["background"] == "alert"
    b.select("[data-scope-select=flops_any]", "hwthread")
    b.wait("return document.querySelector('.plot-card[data-metric=flops_any]').dataset.scope === 'hwthread'")
    b.wait("return document.querySelector('[data-metric=flops_any] .metric-plot canvas') !== null")
    info = plot_info(b, "[data-metric=flops_any] .metric-plot")
    assert info["series"] == 8 and not info["stats"]
    b.select("[data-scope-select=flops_any]", "hwthread-stat")
    b.wait("return document.querySelector('.plot-card[data-metric=flops_any]').dataset.stats === 'true'")
    info = plot_info(b, "[data-metric=flops_any] .metric-plot")
    assert info["stats"] and b.js("return document.querySelector('[data-metric=flops_any] .metric-plot').ccPlot.u.series.length") == 4
    b.click("[data-tab=script]")
    assert b.text("[data-job-script]").startswith("#!/bin/bash")
    b.click("[data-tab=slurm]")
    assert "JobId=1001" in b.text("[data-slurm-info]")


def test_zoom_loads_finer_resolution(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['r1']}")
    before = plot_info(b, "[data-metric=cpu_load] .metric-plot")
    assert before["timestep"] == 60 and not before["zoomed"]
    b.drag("[data-metric=cpu_load] .u-over", 0.2, 0.4)
    b.wait("return document.querySelector('[data-metric=cpu_load] .metric-plot')?.ccPlot?.timestep === 10",
           what="native resolution after zooming in")
    after = plot_info(b, "[data-metric=cpu_load] .metric-plot")
    assert after["zoomed"] and after["length"] > 5 * before["length"]
    # a double click resets the zoom (the finer data stays)
    b.js("const o = document.querySelector('[data-metric=cpu_load] .u-over');"
         "o.dispatchEvent(new MouseEvent('dblclick', {bubbles: true, clientX: o.getBoundingClientRect().x + 20,"
         "clientY: o.getBoundingClientRect().y + 20}))")
    b.wait("return document.querySelector('[data-metric=cpu_load] .metric-plot').dataset.zoomed === 'false'")


def test_job_view_shared_job(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['s1']}")
    b.click("[data-tab=concurrent]")
    links = b.js("return [...document.querySelectorAll('[data-concurrent-jobs] li a')].map((a) => a.textContent)")
    assert links == ["1004"]
    # the shared job's node scope covers only its own hardware threads: 4 of 8
    assert b.js("return document.querySelector('.plot-card[data-metric=flops_any]').dataset.scope") == "core"
    assert plot_info(b, "[data-metric=flops_any] .metric-plot")["series"] == 2
    b.click("[data-concurrent-jobs] li a")
    b.wait(PLOTS_READY)
    assert b.js("return location.pathname") == f"/monitoring/job/{inst.ids['s2']}"


def test_tags(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['r2']}")
    assert plot_info(b, "[data-metric=cpu_load] .metric-plot")["background"] == "caution"  # 15 % of peak
    b.click("[data-manage-tags]")
    b.type("dialog [data-field=tag-search]", "app:ui-test")
    b.select("dialog [data-field=tag-scope]", "global")
    b.click("dialog [data-tag-create]")
    b.wait("return document.querySelector('.job-tags-list [data-tag-id]') !== null", what="tag on the job")
    assert b.text(".job-tags-list .tag") == "app: ui-test"
    b.type("dialog [data-field=tag-search]", "app:ui-private")
    b.click("dialog [data-tag-create]")
    b.wait("return document.querySelectorAll('.job-tags-list .tag').length === 2")
    b.click("dialog [data-tag-row='app:ui-private'] [data-tag-action=remove]")
    b.wait("return document.querySelectorAll('.job-tags-list .tag').length === 1")
    b.click("dialog [data-value='']")  # close
    tags = data(inst, "query($id: ID!) { job(id: $id) { tags { type name scope } } }", {"id": inst.ids["r2"]})
    assert tags["job"]["tags"] == [{"type": "app", "name": "ui-test", "scope": "global"}]
    # the tag links to the job list filtered by it
    b.click(".job-tags-list a.tag")
    b.wait(PLOTS_READY)
    assert b.js("return [...document.querySelectorAll('[data-job-row]')].map((r) => r.dataset.jobRow)") == \
        [str(inst.ids["r2"])]
    assert b.text("[data-pill=tags] .pill-label") == "Tags: app:ui-test"
    # and the tag filter of the list offers it
    b.click("[data-pill=tags] .pill-remove")
    b.wait(count_is(8))
    b.click("[data-filter-menu] summary")
    b.click("[data-filter-kind=tags]")
    b.type("dialog [data-field=tag-search]", "ui-te")
    b.click("dialog .tag-check:not([hidden]) input")
    b.click("dialog [data-value=apply]")
    b.wait(count_is(1), what="tag filter")


def test_live_update(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['r1']}")
    b.wait("return document.querySelector('[data-live]')?.dataset.live === 'connected'", what="live connection")
    sel = "[data-metric=mem_used] .metric-plot"
    before = plot_info(b, sel)
    t = int(time.time())
    ingest(inst, [f"mem_used,cluster=c1,hostname=n01,type=node value=77.5 {t}"], "c1")
    b.wait("return document.querySelector(arguments[0]).ccPlot.series[0].data.includes(77.5)", sel, timeout=40,
           what="the new point in the plot")
    after = plot_info(b, sel)
    assert after["length"] >= before["length"]
    assert int(b.js("return document.body.dataset.liveUpdates || '0'")) >= 1


def test_settings_page(b, inst):
    try:
        open_page(b, inst, "/config", ready="return document.querySelector('[data-setting]') !== null")
        saved = "return (document.querySelector('[data-save-status]').dataset.savedKeys || '').split(' ')" \
                ".includes(arguments[0])"
        b.js("const i = document.querySelector('[data-setting=plotConfiguration_lineWidth]');"
             "i.value = '1'; i.dispatchEvent(new Event('change'))")
        b.wait(saved, "plotConfiguration_lineWidth")
        b.click("[data-scheme=Colorblind]")
        b.wait(saved, "plotConfiguration_colorScheme")
        b.click("[data-setting=plotConfiguration_colorBackground]")
        b.wait(saved, "plotConfiguration_colorBackground")
        cfg = data(inst, "{ userConfig }")["userConfig"]
        assert cfg["plotConfiguration_lineWidth"] == 1 and cfg["plotConfiguration_colorBackground"] is False
        assert cfg["plotConfiguration_colorScheme"][0] == "#E69F00"
        # applied on load: no coloured background, the colour scheme, thin lines
        open_page(b, inst, f"/monitoring/job/{inst.ids['r2']}")
        p = b.js("const p = document.querySelector('[data-metric=cpu_load] .metric-plot').ccPlot;"
                 "return {bg: p.el.dataset.background, stroke: p.u.series[1].stroke(p.u, 1), width: p.opts.lineWidth}")
        assert p == {"bg": "normal", "stroke": "#E69F00", "width": 1}
    finally:
        data(inst, 'mutation { a: updateConfiguration(name: "plotConfiguration_lineWidth", value: "3") '
                   'b: updateConfiguration(name: "plotConfiguration_colorBackground", value: "true") }')


def test_jobmetrics_resampling_follows_minimum_points(inst):
    """main.resampling.minimum-points (100 here) decides which series jobMetrics downsamples."""
    q = "query($id: ID!, $res: Int) { jobMetrics(id: $id, metrics: [\"cpu_load\"], resolution: $res) { metric { timestep } } }"

    def step(job: str, res: int | None = None) -> int:
        return data(inst, q, {"id": inst.ids[job], "res": res})["jobMetrics"][0]["metric"]["timestep"]

    assert step("r1") == 60            # 360 points: default = the coarsest resolution of main.resampling
    assert step("r1", 0) == 10         # resolution 0: the metric's timestep
    assert step("big") == 10           # 90 points, fewer than minimum-points: never resampled
    assert step("f1") == 60            # the archive path too


def test_pages_without_browser(inst):
    with httpx.Client(base_url=inst.web) as c:
        assert c.post("/login", json={"username": "alice", "password": "pw-alice"}).status_code == 200
        r = c.get("/")
        assert r.status_code == 200 and NOTICE in r.text and 'data-nav="status"' not in r.text
        assert c.get("/monitoring/user/bob").status_code == 403   # only managers and up list others' jobs
        r = c.get(f"/monitoring/job/{inst.ids['r2']}")            # bob's job
        assert r.status_code == 404 and "may" in r.text
        r = c.get(f"/monitoring/job/{inst.ids['r1']}")
        assert r.status_code == 200 and "cc-page" in r.text and "/static/js/pages/job.js" in r.text
        assert c.get("/monitoring/jobs?cluster=c1").headers["location"] == "/monitoring/jobs/?cluster=c1"
        assert c.get("/monitoring/systems/c1").status_code == 403  # support and admins only
    r = httpx.get(inst.web + "/login?redirect=/monitoring/jobs/&error=%3Cb%3Ex")
    assert "&lt;b&gt;x" in r.text and "<b>x" not in r.text  # the error text is escaped


def test_static_files_and_headers(inst):
    r = httpx.get(inst.web + "/static/vendor/uplot/uPlot.esm.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"] and r.headers["cache-control"] == "no-cache"
    assert httpx.get(inst.web + "/static/vendor/uplot/package.json").status_code == 404
    assert httpx.get(inst.web + "/static/vendor/swagger-ui-dist/index.html").status_code == 404
    assert httpx.get(inst.web + "/static/%2e%2e/%2e%2e/cc/webd/pages.py").status_code == 404
    assert httpx.get(inst.web + "/static/js/pages/job.js").status_code == 200
    r = httpx.get(inst.web + "/monitoring/jobs/")
    assert r.status_code == 303 and r.headers["location"] == "/login?redirect=%2Fmonitoring%2Fjobs%2F"
    assert "script-src 'self'" in httpx.get(inst.web + "/login").headers["content-security-policy"]


def session_cookie(inst, user: str) -> str:
    r = httpx.post(inst.web + "/login", json={"username": user, "password": f"pw-{user}"})
    assert r.status_code == 200, r.text
    return r.cookies["session"]


async def test_live_socket_protocol(inst):
    url = inst.web.replace("http://", "ws://") + "/ws/live"
    host = inst.web.removeprefix("http://").encode()
    with pytest.raises(HandshakeError):  # no session
        async with open_websocket_url(url):
            pass
    cookie = (b"Cookie", f"session={session_cookie(inst, 'alice')}".encode())
    with pytest.raises(HandshakeError):  # another site's page
        async with open_websocket_url(url, extra_headers=[cookie, (b"Origin", b"http://evil.example")]):
            pass
    async with open_websocket_url(url, extra_headers=[cookie, (b"Origin", b"http://" + host)]) as ws:
        async def ask(msg: dict) -> dict:
            await ws.send_message(orjson.dumps(msg).decode())
            with trio.fail_after(30):
                return orjson.loads(await ws.get_message())

        assert (await ask({"op": "nope"}))["type"] == "error"
        got = await ask({"op": "subscribe", "key": "f", "job": inst.ids["f1"], "metrics": ["cpu_load"]})
        assert got == {"type": "ended", "key": "f", "state": "completed"}
        got = await ask({"op": "subscribe", "key": "x", "job": inst.ids["r2"], "metrics": ["cpu_load"]})
        assert got["type"] == "error" and "may not see it" in got["message"]  # bob's job
        # the last points alice's plot has: the first answer repeats the last 3 slots, then only new ones
        n = 355
        got = await ask({"op": "subscribe", "key": "r", "job": inst.ids["r1"], "metrics": ["mem_used", "nope"],
                         "scope": "node", "have": {"mem_used": n}})
        assert got["type"] == "points" and got["metric"] == "mem_used" and got["timestep"] == 10
        assert got["index"] == n - 3 and got["series"][0]["hostname"] == "n01"
        last = got["index"] + len(got["series"][0]["data"])
        t = int(time.time()) + 10  # the next slot: certainly new
        ingest(inst, [f"mem_used,cluster=c1,hostname=n01,type=node value=12.25 {t}"], "c1")
        with trio.fail_after(30):
            got = orjson.loads(await ws.get_message())
        # only what is new: from the first slot after the last one sent (empty slots as null) to the new point
        assert got["type"] == "points" and got["index"] == last
        assert got["series"][0]["data"][-1] == 12.25 and set(got["series"][0]["data"][:-1]) <= {None}
