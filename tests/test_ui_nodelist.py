"""The node list (/monitoring/systems/list/<cluster>[/<subcluster>], cc-backend's Systems "list" mode) in a real
headless Chromium against the real supervisor, and its page route's answers without a browser.

The installation: cluster c1 with the subclusters gpu (g01-g04) and main (every other host); metric data for the
last hour on every node but n06; node states from the scheduler for all ten nodes (the list comes from the node
table, as in cc-backend); running jobs: 1001 (alice) on n01, 1002 (bob) on n02 and g01.  Every browser test saves
a screenshot into its tmp dir and fails on any browser console error.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.graphql_helpers import add_users, cluster_doc, data, rest, start_job
from tests.helpers import Installation
from tests.ui_helpers import PLOTS_READY, UI_CONFIG, Browser, ingest, login, metric_lines, open_page

MAIN = ["n01", "n02", "n03", "n04", "n05", "n06"]
GPU = ["g01", "g02", "g03", "g04"]
STATES = {"n01": "allocated", "n02": "allocated", "n06": "down", "g01": "allocated"}   # the others: idle


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    c1 = cluster_doc("c1")
    i = Installation(tmp_path_factory.mktemp("ui-nodelist"), ingest_workers=1, retention="3h", clusters={"c1": c1},
                     extra_config=UI_CONFIG)
    i.start()
    try:
        add_users(i)
        now = int(time.time())
        ingest(i, metric_lines(c1, [h for h in MAIN + GPU if h != "n06"], now - 3600, now + 1, level=0.4), "c1")
        r = rest(i, "POST", "/api/nodestate/", json={"cluster": "c1", "nodes": [
            {"hostname": h, "states": [STATES.get(h, "idle")]} for h in MAIN + GPU]})
        assert r.status_code == 200, r.text
        i.ids = {1001: start_job(i, 1001, "alice", "p1", ("n01",), now - 1800, shared="none"),
                 1002: start_job(i, 1002, "bob", "p2", ("n02", "g01"), now - 1200)}
        yield i
    finally:
        i.stop()


def rows(b: Browser) -> list[str]:
    return b.js("return [...document.querySelectorAll('[data-node-row]')].map((e) => e.dataset.nodeRow)")


def headers(b: Browser) -> list[str]:
    return b.js("return [...document.querySelectorAll('[data-metric-header]')].map((e) => e.dataset.metricHeader)")


def drawn(b: Browser, host: str) -> dict[str, dict]:
    """metric -> what the row of ``host`` shows in that column (a plot's series count and scope, or why not)."""
    return b.js("""
      const out = {};
      for (const cell of document.querySelectorAll(`[data-node-row="${arguments[0]}"] [data-metric]`)) {
        const p = cell.querySelector('.metric-plot')?.ccPlot;
        out[cell.dataset.metric] = p ? {series: p.series.length, scope: cell.dataset.scope, metric: p.opts.metric}
          : {empty: cell.textContent.trim()};
      }
      return out;""", host)


def wait_rows(b: Browser, expected: list[str], what: str) -> None:
    try:
        b.wait("return document.body.dataset.plotsReady === '1' && JSON.stringify([...document.querySelectorAll("
               "'[data-node-row]')].map((e) => e.dataset.nodeRow)) === arguments[0]", json.dumps(expected, separators=(",", ":")),
               what=what)
    except AssertionError as e:
        shown = b.js("return [document.body.dataset.plotsReady, document.querySelector('[data-node-list]')"
                     ".textContent.slice(0, 300)]")
        raise AssertionError(f"{e}; rows {rows(b)}, ready and text {shown}") from None


def test_rows_plots_jobs_and_states(b, inst):
    open_page(b, inst, "/monitoring/systems/list/c1?range=1h")
    assert rows(b) == sorted(GPU + MAIN)   # ten nodes: one page of the default 10
    assert b.text("[data-node-count]") == "10 nodes"
    assert headers(b) == ["cpu_load", "mem_used", "flops_any"]   # cc-backend's default: the first three metrics
    assert b.js("return document.querySelector('[data-field=time-range]').value") == "1h"
    n01 = drawn(b, "n01")
    assert n01["cpu_load"] == {"series": 1, "scope": "node", "metric": "cpu_load"}
    assert n01["flops_any"]["scope"] == "core" and n01["flops_any"]["series"] == 4   # the finest served scope
    assert "No data" in drawn(b, "n06")["cpu_load"]["empty"]
    # states and health from the node table
    assert b.text("[data-node-row=n06] [data-node-state]") == "down"
    assert b.text("[data-node-row=n01] [data-node-state]") == "allocated"
    assert b.text("[data-node-row=n03] [data-node-state]") == "idle"
    # running jobs, linked to the job view; n02 and g01 share job 1002
    assert b.js("return document.querySelector('[data-node-row=n01] [data-running-jobs]').dataset.runningJobs") == "1"
    assert b.js("return document.querySelector('[data-node-row=n01] [data-node-activity]').dataset.nodeActivity") == \
        "exclusive"
    link = b.js("return document.querySelector('[data-node-row=n01] [data-job-link]').getAttribute('href')")
    assert link == f"/monitoring/job/{inst.ids[1001]}"
    for host in ("n02", "g01"):
        assert b.js("return [...document.querySelectorAll(`[data-node-row=${arguments[0]}] [data-job-link]`)]"
                    ".map((a) => a.textContent)", host) == ["1002"]
    assert b.js("return document.querySelector('[data-node-row=n03] [data-job-link]')") is None
    assert "bob" in b.text("[data-node-row=g01] [data-node-users]")
    # the node link keeps the range; following a job link opens the job view
    assert b.js("return document.querySelector('[data-node-link=n01]').getAttribute('href')") == \
        "/monitoring/node/c1/n01?range=1h"
    b.click("[data-node-row=n01] [data-job-link]")
    b.wait("return location.pathname === arguments[0]", f"/monitoring/job/{inst.ids[1001]}", what="job view")
    b.wait(PLOTS_READY, what="job view plots")


def test_paging_and_page_size(b, inst):
    open_page(b, inst, "/monitoring/systems/list/c1?range=1h")
    b.select("[data-field=items-per-page]", "5")
    wait_rows(b, ["g01", "g02", "g03", "g04", "n01"], "first page of 5")
    assert b.js("return document.querySelector('[data-page-info]').dataset.pageInfo") == "1/2"
    assert b.js("return document.querySelector('[data-page-prev]').disabled")
    b.click("[data-page-next]")
    wait_rows(b, ["n02", "n03", "n04", "n05", "n06"], "second page")
    assert b.js("return document.querySelector('[data-page-info]').dataset.pageInfo") == "2/2"
    assert b.js("return document.querySelector('[data-page-next]').disabled")
    assert "page=2" in b.js("return location.search")
    assert data(inst, "{ userConfig }", user="admin")["userConfig"]["nodeList_nodesPerPage"] == 5
    # the page size is the user's setting, the page is in the URL
    open_page(b, inst, "/monitoring/systems/list/c1?range=1h&page=2")
    assert rows(b) == ["n02", "n03", "n04", "n05", "n06"]
    b.click("[data-page-prev]")
    wait_rows(b, ["g01", "g02", "g03", "g04", "n01"], "back to the first page")
    b.select("[data-field=items-per-page]", "10")
    wait_rows(b, sorted(GPU + MAIN), "all on one page")


def test_metric_selection_changes_columns(b, inst):
    open_page(b, inst, "/monitoring/systems/list/c1?range=1h")
    b.click("[data-select-metrics]")
    b.click("dialog [data-metric-item=mem_used] input")
    b.click("dialog [data-metric-item=mem_bw] input")
    b.click("dialog [data-metric-item=acc_power] input")
    b.click("dialog [data-value=apply]")
    b.wait("return JSON.stringify([...document.querySelectorAll('[data-metric-header]')].map((e) => "
           "e.dataset.metricHeader)) === '[\"cpu_load\",\"flops_any\",\"mem_bw\",\"acc_power\"]' && "
           "document.body.dataset.plotsReady === '1'", what="new columns")
    g01, n04 = drawn(b, "g01"), drawn(b, "n04")
    assert b.js("return [...document.querySelectorAll('[data-node-row=g01] [data-metric]')].map((e) => "
                "e.dataset.metric)") == ["cpu_load", "flops_any", "mem_bw", "acc_power"]
    assert g01["mem_bw"]["scope"] == "socket" and g01["mem_bw"]["series"] == 2
    assert g01["acc_power"]["scope"] == "accelerator" and g01["acc_power"]["series"] == 2
    assert n04["acc_power"]["scope"] == "accelerator"
    assert b.text("[data-select-metrics]") == "Metrics: 4 selected"
    # remembered per cluster (cc-backend's key), so the next visit shows the same columns
    assert data(inst, "{ userConfig }", user="admin")["userConfig"]["nodeList_selectedMetrics:c1"] == \
        ["cpu_load", "flops_any", "mem_bw", "acc_power"]
    open_page(b, inst, "/monitoring/systems/list/c1?range=1h")
    assert headers(b) == ["cpu_load", "flops_any", "mem_bw", "acc_power"]


def test_host_and_state_filters(b, inst):
    open_page(b, inst, "/monitoring/systems/list/c1?range=1h")
    b.type("[data-field=find-node]", "n0")
    wait_rows(b, MAIN, "hostname filter")
    assert b.text("[data-node-count]") == "6 nodes" and "node=n0" in b.js("return location.search")
    b.select("[data-field=node-state]", "allocated")
    wait_rows(b, ["n01", "n02"], "state and hostname")
    b.type("[data-field=find-node]", "zz")
    wait_rows(b, [], "no match")
    assert b.js("return document.querySelector('[data-no-nodes]') !== null")
    # from the URL
    open_page(b, inst, "/monitoring/systems/list/c1?range=1h&node=g0&state=idle")
    assert rows(b) == ["g02", "g03", "g04"]
    assert b.js("return document.querySelector('[data-field=find-node]').value") == "g0"
    assert b.js("return document.querySelector('[data-field=node-state]').value") == "idle"


def test_subcluster_url_and_view_switch(b, inst):
    open_page(b, inst, "/monitoring/systems/list/c1/gpu?range=1h")
    assert rows(b) == GPU
    assert b.js("return document.querySelector('[data-field=subcluster]').value") == "gpu"
    assert b.js("return [...document.querySelectorAll('[data-field=subcluster] option')].map((o) => o.value)") == \
        ["", "gpu", "main"]
    # the other subcluster through the selector: a new URL, the filters kept
    b.select("[data-field=subcluster]", "main")
    b.wait("return location.pathname === '/monitoring/systems/list/c1/main'", what="main subcluster")
    b.wait(PLOTS_READY)
    assert rows(b) == MAIN and "range=1h" in b.js("return location.search")
    # overview <-> list (the overview shows the same range)
    b.click("[data-view-switch=overview]")
    b.wait("return location.pathname === '/monitoring/systems/c1'", what="overview")
    b.wait(PLOTS_READY)
    assert b.js("return document.querySelector('[data-field=time-range]').value") == "1h"
    b.click("[data-view-switch=list]")
    b.wait("return location.pathname === '/monitoring/systems/list/c1'", what="list")
    b.wait(PLOTS_READY)
    assert len(rows(b)) == 10


def test_roles_in_the_browser(b, inst):
    try:
        login(b, inst.web, "alice", "pw-alice")
        open_page(b, inst, "/monitoring/systems/list/c1", ready="return document.querySelector('[data-message]') !== null")
        assert [e for e in b.console_errors() if "status of 403" not in e] == []
        assert "support staff and administrators" in b.text("[data-message]")
        login(b, inst.web, "sup", "pw-sup")
        open_page(b, inst, "/monitoring/systems/list/c1/gpu?range=1h")
        assert rows(b) == GPU
    finally:
        login(b, inst.web, "admin", "pw-admin")


def session(inst, user: str) -> httpx.Client:
    c = httpx.Client(base_url=inst.web, timeout=30)
    r = c.post("/login", json={"username": user, "password": f"pw-{user}"})
    assert r.status_code == 200, r.text
    return c


def page_data(html: str) -> dict:
    start = html.index('<script id="cc-page" type="application/json">')
    body = html[html.index(">", start) + 1:html.index("</script>", start)]
    return json.loads(body)


def test_route_answers(inst):
    anonymous = httpx.get(inst.web + "/monitoring/systems/list/c1", follow_redirects=False, timeout=30)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?redirect=")
    clients = [session(inst, u) for u in ("admin", "sup", "alice", "mgr")]
    admin, sup, alice, mgr = clients
    try:
        for c in (admin, sup):
            for path in ("/monitoring/systems/list/c1", "/monitoring/systems/list/c1/gpu",
                         "/monitoring/systems/list/c1/main?range=1h&state=idle&page=2"):
                r = c.get(path)
                assert r.status_code == 200, (path, r.text[:300])
                assert 'src="/static/js/pages/nodelist.js"' in r.text
        page = page_data(admin.get("/monitoring/systems/list/c1/gpu?node=g0&state=idle&page=2").text)
        assert page["cluster"] == "c1" and page["subCluster"] == "gpu"
        assert page["args"] == {"node": "g0", "state": "idle", "page": "2"}
        for c in (alice, mgr):
            r = c.get("/monitoring/systems/list/c1")
            assert r.status_code == 403 and "support staff and administrators" in r.text
            assert c.get("/monitoring/systems/c1").status_code == 403   # as the overview
        r = admin.get("/monitoring/systems/list/nope")
        assert r.status_code == 404 and "no cluster" in r.text
        r = admin.get("/monitoring/systems/list/c1/nope")
        assert r.status_code == 404 and "no subcluster" in r.text
        # the overview links to the list
        assert 'href="/monitoring/systems/list/c1"' in admin.get("/monitoring/systems/c1").text
        # and the Nodes menu has each cluster's overview and list (for support and admins only)
        nav = sup.get("/monitoring/jobs/").text
        assert '<a href="/monitoring/systems/c1">c1</a><a href="/monitoring/systems/list/c1">c1 node list</a>' in nav
        assert "/monitoring/systems/list/" not in alice.get("/monitoring/jobs/").text
    finally:
        for c in clients:
            c.close()
