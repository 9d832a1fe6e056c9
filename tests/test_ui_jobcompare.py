"""The job list's compare mode in a real headless Chromium against the real supervisor: select jobs, compare
them (table of min/avg/max per metric, one plot per metric with a point per job), follow a job link, and what a
plain user may compare.

The installation is tests/ui_helpers.start_ui_installation: alice runs r1, s1 (c1), f1 (finished) and one job
on c2; bob r2, s2, f2 (failed), big.  Expected statistics come from the jobStats query of each job.
"""

from __future__ import annotations

import pytest

from tests.graphql_helpers import data
from tests.ui_helpers import PLOTS_READY, Browser, login, open_page, start_ui_installation

STATS = "query($id: ID!) { jobStats(id: $id) { name data { min avg max } } }"
COMPARE = "query($f: [JobFilter!]) { jobsMetricStats(filter: $f, metrics: [\"cpu_load\"]) { id jobId } }"


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = start_ui_installation(tmp_path_factory.mktemp("ui-compare"))
    try:
        yield i
    finally:
        i.stop()


def select(b: Browser, db_ids: list[int]) -> None:
    b.click("[data-compare-mode]")
    for i in db_ids:
        b.click(f"[data-select-job='{i}']")


def compare(b: Browser) -> None:
    b.click("[data-compare-go]")
    b.wait("return document.body.dataset.compareReady === '1'", what="comparison drawn")


def shown_ids(b: Browser) -> list[str]:
    return b.js("return [...document.querySelectorAll('[data-compare-row]')].map((e) => e.dataset.compareRow)")


def test_compare_three_jobs(b, inst):
    open_page(b, inst, "/monitoring/jobs/")
    ids = inst.ids
    listed = b.js("return [...document.querySelectorAll('[data-metric-header]')].map((e) => e.dataset.metricHeader)")
    assert {"cpu_load", "mem_bw"} <= set(listed)
    assert b.text("[data-compare-go]") == "Compare 0 jobs"
    select(b, [ids["r2"], ids["f1"], ids["r1"]])
    assert b.text("[data-compare-go]") == "Compare 3 jobs"
    compare(b)
    assert b.js("return document.querySelector('[data-job-list]').hidden") is True
    # oldest first: f1 started 7000 s ago, r1 3600 s, r2 1800 s
    assert shown_ids(b) == [str(ids["f1"]), str(ids["r1"]), str(ids["r2"])]
    for name in ("f1", "r1", "r2"):
        want = {s["name"]: s["data"] for s in data(inst, STATS, {"id": ids[name]})["jobStats"]}
        for metric in ("cpu_load", "mem_bw"):
            for k in ("min", "avg", "max"):
                got = b.js("return document.querySelector(`[data-compare-row='${arguments[0]}'] "
                           "[data-stat='${arguments[1]}']`).dataset.value", ids[name], f"{metric}:{k}")
                assert float(got) == pytest.approx(want[metric][k], rel=1e-9), (name, metric, k)
    # the nodes column and one plot per metric, one point per job
    assert b.js(f"return document.querySelector(\"[data-compare-row='{ids['r2']}']\").children[5].textContent") == "2"
    # the metrics of the list, as in cc-backend
    assert b.js("return [...document.querySelectorAll('[data-metric-head]')].map((e) => e.dataset.metricHead)") == listed
    plots = b.js("return [...document.querySelectorAll('[data-compare-plot]')].map((e) => "
                 "[e.dataset.comparePlot, e.dataset.points, !!e.querySelector('canvas')])")
    assert ["cpu_load", "3", True] in plots and all(p[1] == "3" and p[2] for p in plots)
    avg = b.js("return document.querySelector('[data-compare-plot=cpu_load]').ccCompare.data[2]")
    want_avg = [data(inst, STATS, {"id": ids[n]})["jobStats"] for n in ("f1", "r1", "r2")]
    assert avg == pytest.approx([next(s["data"]["avg"] for s in w if s["name"] == "cpu_load") for w in want_avg])
    # back to the list keeps the selection; a job link opens the job
    b.click("[data-compare-go]")
    assert b.js("return document.querySelector('[data-job-list]').hidden") is False
    assert b.text("[data-compare-go]") == "Compare 3 jobs"
    compare(b)
    b.click(f"[data-compare-link='{ids['r1']}']")
    b.wait(f"return location.pathname === '/monitoring/job/{ids['r1']}'", what="job view")
    b.wait(PLOTS_READY, what="job view plots")


def test_compare_needs_two_jobs(b, inst):
    open_page(b, inst, "/monitoring/jobs/")
    select(b, [inst.ids["r1"]])
    assert b.js("return document.querySelector('[data-compare-go]').disabled") is True
    b.click(f"[data-select-job='{inst.ids['r2']}']")
    assert b.js("return document.querySelector('[data-compare-go]').disabled") is False
    b.click("[data-compare-mode]")  # cancel: selection dropped, checkboxes hidden
    assert b.js("return document.querySelector('[data-compare-go]').hidden") is True
    assert b.js("return [...document.querySelectorAll('[data-select-job]')].some((e) => e.checked)") is False


def test_plain_user_compares_own_jobs_only(b, inst):
    ids = inst.ids
    own = [ids["r1"], ids["s1"], ids["f1"]]
    try:
        login(b, inst.web, "alice", "pw-alice")
        open_page(b, inst, "/monitoring/jobs/")
        listed = b.js("return [...document.querySelectorAll('[data-select-job]')].map((e) => +e.dataset.selectJob)")
        assert sorted(listed) == sorted(own + [ids["c2"]])
        select(b, own)
        compare(b)
        assert sorted(map(int, shown_ids(b))) == sorted(own)
    finally:
        login(b, inst.web, "admin", "pw-admin")
    # the query behind it answers only own jobs, whatever ids are asked for
    f = [{"dbId": [str(ids[n]) for n in ("r1", "r2", "s2", "f1")]}]
    assert sorted(j["id"] for j in data(inst, COMPARE, {"f": f}, user="alice")["jobsMetricStats"]) == \
        sorted([ids["r1"], ids["f1"]])  # JobStats.id is an Int in cc-backend's schema
    assert len(data(inst, COMPARE, {"f": f})["jobsMetricStats"]) == 4
