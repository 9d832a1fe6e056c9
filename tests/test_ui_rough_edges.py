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
