"""The rough edges of issue 18 that a first-time user hit in the browser, each in a real headless Chromium
against the real supervisor: analysis without filters, polar plot labels, the HTML 404 page, the GraphQL
playground's schema list and the users list's names.

Every browser test saves a screenshot into its tmp dir and fails on any browser console error
(tests/ui_helpers.py).
"""

from __future__ import annotations

import httpx
import pytest

from tests.ui_helpers import open_page, start_ui_installation

FLAG = "return document.body.dataset.{} === '1'"


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = start_ui_installation(tmp_path_factory.mktemp("ui-rough"), {"main": {"dev": True}})
    try:
        yield i
    finally:
        i.stop()


def test_analysis_opens_on_the_last_24_hours_and_says_so(b, inst):
    open_page(b, inst, "/monitoring/analysis/c1", ready=FLAG.format("analysisReady"), timeout=60)
    note = b.text("[data-shown-range]")
    assert "last 24 hours" in note
    assert b.js("return document.querySelector('[data-totals] .alert') === null")  # no error box
    assert b.text("[data-stat=totalJobs]") == "6"  # f2 started 5 days ago
    assert b.js("return location.search") == ""  # the default stays out of the URL
    assert b.js("return [...document.querySelectorAll('[data-pill]')].some((p) => p.dataset.pill === 'startTime')")
    # a link with filters shows what it says, without the note
    open_page(b, inst, "/monitoring/analysis/c1?startTime=last7d", ready=FLAG.format("analysisReady"), timeout=60)
    assert b.js("return document.querySelector('[data-shown-range]').hidden")
    assert b.text("[data-stat=totalJobs]") == "7"


def overlaps(a: dict, c: dict) -> bool:
    return a["x"] < c["x"] + c["w"] and c["x"] < a["x"] + a["w"] and a["y"] < c["y"] + c["h"] and c["y"] < a["y"] + a["h"]


def test_polar_labels_fit_and_do_not_overlap(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['r1']}")
    b.click("[data-tab=polar]")
    b.wait("return (document.querySelector('[data-polar]')?.ccLabels || []).length > 3", what="polar labels")
    size = b.js("const c = document.querySelector('[data-polar]'); return [c.clientWidth, c.clientHeight]")
    labels = b.js("return document.querySelector('[data-polar]').ccLabels")
    assert "1.0" in [lb["text"] for lb in labels]
    for lb in labels:
        assert lb["x"] >= 0 and lb["y"] >= 0 and lb["x"] + lb["w"] <= size[0] and lb["y"] + lb["h"] <= size[1], lb
    for i, a in enumerate(labels):
        for c in labels[i + 1:]:
            assert not overlaps(a, c), (a, c)


def test_unknown_pages_get_an_html_404_with_navigation(b, inst):
    open_page(b, inst, "/monitoring/no-such-view", ready="return document.querySelector('[data-message]') !== null")
    assert "no-such-view" in b.text("[data-message]")
    assert b.js("return document.querySelector('nav [data-nav=jobs]') !== null")  # the menu is there
    errors = [e for e in b.console_errors() if "status of 404" not in e]
    assert not errors, errors
    r = httpx.get(inst.web + "/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html") and "Log in" in r.text
    for path in ("/api/no-such", "/userapi/no-such", "/frontend/no-such", "/config/no-such"):
        r = httpx.get(inst.web + path)
        assert r.status_code == 404 and r.json()["error"] == "no such endpoint", path


def test_playground_lists_every_type_and_the_mutations(b, inst):
    open_page(b, inst, "/playground", ready=FLAG.format("schemaReady"), timeout=60)
    heads = b.js("return [...document.querySelectorAll('#schema h3')].map((e) => e.textContent)")
    assert "Query" in heads and "Mutation" in heads and len(heads) > 20
    codes = b.js("return [...document.querySelectorAll('#schema code')].map((e) => e.textContent)")
    assert any(c.endswith(": [[Float!]!]!") for c in codes), [c for c in codes if "rooflineHeatmap" in c]
    assert not [c for c in codes if "…" in c]


def test_users_list_shows_names(b, inst):
    open_page(b, inst, "/monitoring/users/", ready=FLAG.format("listReady"))
    names = b.js("return Object.fromEntries([...document.querySelectorAll('[data-row]')]"
                 ".map((r) => [r.dataset.row, r.children[1].textContent]))")
    assert names["alice"] == "Full alice" and names["bob"] == "Full bob"


def test_tick_labels_never_repeat(b, inst):
    open_page(b, inst, "/monitoring/systems/c1")
    labels = b.js_async("const {tickLabels} = await import('/static/js/util.js');"
                        "return [tickLabels([0, 0.005, 0.01, 0.015]), tickLabels([0, 5, 10, 15]),"
                        "        tickLabels([0, 2500, 5000, 7500, 10000])];")
    assert labels[0] == ["0", "0.005", "0.01", "0.015"]
    assert labels[1] == ["0", "5", "10", "15"]
    assert len(set(labels[2])) == 5
    # every node plot of the overview: distinct y tick labels
    ticks = b.js("return [...document.querySelectorAll('[data-node] .metric-plot')].map((el) => el.ccPlot?.u?.axes[1]._values)"
                 ".filter(Boolean)")
    assert ticks and all(len(set(t)) == len(t) for t in ticks), ticks


def test_nodes_overview_starts_at_the_first_data_in_the_default_range(b, inst):
    # c2's only node m01 has 20 minutes of data: the default 2 h range starts at its first point
    open_page(b, inst, "/monitoring/systems/c2")
    assert not b.js("return document.querySelector('[data-range-note]').hidden")
    assert "no node has data earlier" in b.text("[data-range-note]")
    start = b.js("return document.querySelector('[data-node=m01] .metric-plot').ccPlot.opts.start")
    assert abs(start - (inst.t_now - 1200)) < 600, (start, inst.t_now)
    # a range the user chose is shown whole
    open_page(b, inst, "/monitoring/systems/c2?range=2h")
    assert b.js("return document.querySelector('[data-range-note]').hidden")
    start = b.js("return document.querySelector('[data-node=m01] .metric-plot').ccPlot.opts.start")
    assert start < inst.t_now - 7000


def inside(b, css: str, container: str) -> list:
    """Elements matching css whose right edge passes the right edge of their closest container."""
    return b.js("return [...document.querySelectorAll(arguments[0])].filter((e) => {"
                "  const c = e.closest(arguments[1]).getBoundingClientRect(), r = e.getBoundingClientRect();"
                "  return r.right > c.right + 0.5 || r.left < c.left - 0.5; }).map((e) => e.outerHTML.slice(0, 80))",
                css, container)


def test_status_bars_fit_and_no_accelerator_histogram_without_accelerators(b, inst):
    for width in (1600, 1000):
        b.cmd("POST", "/window/rect", {"width": width, "height": 1100})
        try:
            open_page(b, inst, "/monitoring/status/c1", ready=FLAG.format("statusReady"), timeout=60)
            assert not inside(b, "[data-gauge] .fp-bar", ".subcluster-status"), width
            assert not inside(b, ".subcluster-status [data-roofline]", ".subcluster-status"), width
        finally:
            b.cmd("POST", "/window/rect", {"width": 1600, "height": 1100})
    assert b.js("return document.querySelector('[data-hist=numAccs]') !== null")  # c1's nodes have GPUs
    has = b.js_async("const {ClusterInfo} = await import('/static/js/gql.js');"
                     "const i = new ClusterInfo({clusters: [{name: 'cpu', subClusters: [{topology: {accelerators: []}}]},"
                     "  {name: 'gpu', subClusters: [{topology: {}}, {topology: {accelerators: [{id: 'a'}]}}]}]});"
                     "return [i.hasAccelerators('cpu'), i.hasAccelerators('gpu'), i.hasAccelerators('none')];")
    assert has == [False, True, False]


def test_running_jobs_footprint_in_the_list_is_the_job_views(b, inst):
    from tests.graphql_helpers import data

    data(inst, 'mutation { updateConfiguration(name: "jobList_showFootprint", value: "true") }')
    try:
        open_page(b, inst, "/monitoring/jobs/?state=running&cluster=c1", timeout=60)
        r1 = inst.ids["r1"]
        b.wait(f"return document.querySelector('[data-job-row=\"{r1}\"] [data-footprint]')?.dataset.computed === '1'",
               what="computed footprint")
        assert "No footprint yet" not in b.text(f"[data-job-row='{r1}'] .cell-footprint")
        listed = b.js(f"return [...document.querySelectorAll('[data-job-row=\"{r1}\"] [data-fp-metric]')]"
                      ".map((e) => e.dataset.fpMetric).sort()")
        open_page(b, inst, f"/monitoring/job/{r1}")
        b.wait("return document.querySelector('.footprint-box [data-footprint]') !== null", what="job view footprint")
        shown = b.js("return [...document.querySelectorAll('.footprint-box [data-fp-metric]')].map((e) => e.dataset.fpMetric).sort()")
        assert listed and listed == shown
    finally:
        data(inst, 'mutation { updateConfiguration(name: "jobList_showFootprint", value: "false") }')
    # above the peak: a marked, striped bar
    over = b.js_async(
        "const {footprint} = await import('/static/js/jobinfo.js');"
        "const mc = {name: 'acc_mem_used', peak: 12, normal: 10, caution: 5, alert: 2, unit: {base: 'B', prefix: 'G'}};"
        "const info = {subCluster: () => ({topology: {node: [0]}}), metricConfig: () => mc};"
        "const el = footprint({id: 1, cluster: 'c', subCluster: 's', shared: 'none'},"
        "                     [{name: 'acc_mem_used', stat: 'max', value: 40.88}], info);"
        "document.body.append(el); const row = el.querySelector('[data-fp-metric]');"
        "const out = [row.dataset.overPeak, row.querySelector('.fp-value').textContent,"
        "             getComputedStyle(row.querySelector('.fp-fill')).backgroundImage]; el.remove(); return out;")
    assert over[0] == "1" and "over peak" in over[1] and "40.88" in over[1] and "gradient" in over[2]


def test_histograms_draw_bars_without_point_markers(b, inst):
    open_page(b, inst, "/monitoring/user/alice", ready=FLAG.format("statsReady"))
    shown = b.js("return [...document.querySelectorAll('[data-hist]')].map((e) => e.ccHistogram?.u)"
                 ".filter(Boolean).map((u) => u.series[1].points.show)")
    assert shown and not any(shown), shown


def test_settings_cards_use_the_width(b, inst):
    open_page(b, inst, "/config", ready=FLAG.format("settingsReady"))
    tops = b.js("return [...document.querySelectorAll('[data-settings] > .settings-card')].slice(0, 4)"
                ".map((e) => Math.round(e.getBoundingClientRect().top))")
    assert len(set(tops)) < len(tops), tops  # at 1600 px at least two cards share a row


def test_roofline_legend_explains_the_colours(b, inst):
    open_page(b, inst, f"/monitoring/job/{inst.ids['r1']}")
    b.wait("return document.querySelector('[data-roofline-legend]') !== null", what="roofline legend")
    assert b.js("return document.querySelector('[data-roofline-legend]').dataset.rooflineLegend") == "time"
    assert "start" in b.text("[data-roofline-legend]") and "end" in b.text("[data-roofline-legend]")
    open_page(b, inst, "/monitoring/analysis/c1", ready=FLAG.format("analysisReady"), timeout=60)
    assert b.js("return document.querySelector('[data-heatmap] [data-roofline-legend]').dataset.rooflineLegend") == "jobs"


def test_new_nodes_without_metrics_wait_instead_of_failing(b, inst):
    from cc.webd.health import HEALTH_GRACE, waiting_health
    from tests.graphql_helpers import rest

    r = rest(inst, "POST", "/api/nodestate/", json={"cluster": "c1", "nodes": [{"hostname": "n19", "states": ["idle"]}]})
    assert r.status_code == 200, r.text
    open_page(b, inst, "/monitoring/systems/c1?node=n19")
    assert b.js("return document.querySelector('[data-node=n19] [data-node-health]').dataset.nodeHealth") == "waiting"
    assert b.text("[data-node=n19] [data-node-health]") == "metrics: waiting"
    # the rule: no data at all, and only for the grace period after the node's first report
    nothing = {"State": "failed", "missing": ["cpu_load"], "degraded": []}
    assert '"waiting":true' in waiting_health(nothing, 1000.0, 1000.0 + HEALTH_GRACE - 1)
    assert waiting_health(nothing, 1000.0, 1000.0 + HEALTH_GRACE) is None
    assert waiting_health({"State": "failed", "missing": [], "degraded": ["cpu_load"]}, 1000.0, 1001.0) is None
    assert waiting_health({"State": "partial", "missing": ["x"], "degraded": []}, 1000.0, 1001.0) is None
