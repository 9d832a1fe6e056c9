"""Logs in the UI: the common log format of every process, /frontend/logs/ (filters, admin only, no path
traversal) and the Logs page in Chromium (filter, follow)."""

from __future__ import annotations

import contextlib
import logging
import time

import httpx
import pytest

from cc import logformat
from tests.graphql_helpers import add_users
from tests.helpers import running
from tests.ui_helpers import Browser, browser_available, login


def stamp(t: float) -> str:
    return time.strftime(logformat.DATEFMT, time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def record(t: float, level: str, process: str, message: str, logger: str | None = None) -> str:
    return f"{stamp(t)} {level} {process} {logger or process}: {message}\n"


# -- the format -------------------------------------------------------------------------------

def test_formatter_writes_what_the_parser_reads(tmp_path):
    path = tmp_path / "store.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logformat.formatter("store"))
    log = logging.getLogger("store.test")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.warning("disk %s is full", "/x")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        handler.close()
    entries = logformat.parse(path.read_text().splitlines(), "store")
    assert [(e.level, e.logger, e.message.splitlines()[0]) for e in entries] == [
        ("WARNING", "store.test", "disk /x is full"), ("ERROR", "store.test", "failed")]
    assert "Traceback" in entries[1].message and "ValueError: boom" in entries[1].message
    assert abs(entries[0].time_us / 1e6 - time.time()) < 3600
    assert entries[0].to_json()["priority"] == 4 and entries[1].to_json()["priority"] == 3


def test_read_filters_and_orders(tmp_path):
    t = 1_700_000_000
    (tmp_path / "web.log").write_text(record(t, "INFO", "web", "started") + record(t + 10, "ERROR", "web", "bad query")
                                      + "  continued\n" + record(t + 20, "DEBUG", "web", "detail"))
    (tmp_path / "store.log.1").write_text(record(t - 100, "WARNING", "store", "old file"))
    (tmp_path / "store.log").write_text(record(t + 5, "INFO", "store", "checkpoint written"))
    (tmp_path / "notes.log").write_text("not a process\n")
    assert logformat.processes(tmp_path) == ["store", "web"]
    all_ = logformat.read(tmp_path, ["store", "web"])
    assert [e.message for e in all_] == ["detail", "bad query\n  continued", "checkpoint written", "started", "old file"]
    assert [e.message for e in logformat.read(tmp_path, ["web", "store"], min_priority=4)] == [
        "bad query\n  continued", "old file"]
    assert [e.message for e in logformat.read(tmp_path, ["store"], since_us=(t - 50) * 10**6)] == ["checkpoint written"]
    assert [e.message for e in logformat.read(tmp_path, ["web"], after_us=(t + 10) * 10**6)] == [
        "detail", "bad query\n  continued"]
    assert [e.message for e in logformat.read(tmp_path, ["web"], search="BAD")] == ["bad query\n  continued"]
    assert len(logformat.read(tmp_path, ["web", "store"], limit=2)) == 2
    for bad in ("../web", "web/../../etc/passwd", "notes", ""):
        with pytest.raises(ValueError):
            logformat.read(tmp_path, [bad])


# -- the route and the page against a running installation --------------------------------------

@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    with running(tmp_path_factory.mktemp("logs"), ingest_workers=1) as i:
        add_users(i)
        now = time.time()
        (i.cfg.log_dir / "adapter.log").write_text(
            record(now - 7200, "INFO", "adapter", "adapter started")
            + record(now - 60, "WARNING", "adapter", "slurm did not answer", "cc-adapter")
            + record(now - 30, "ERROR", "adapter", "job 42 rejected: unknown cluster", "cc-adapter"))
        yield i


@contextlib.contextmanager
def session(inst, user: str):
    with httpx.Client(base_url=inst.web, timeout=30, trust_env=False) as c:
        r = c.post("/login", json={"username": user, "password": f"pw-{user}"})
        assert r.status_code in (200, 302, 303), r.text
        yield c


def test_every_process_logs_in_the_common_format(inst):
    for name in ("forkserver", "web", "store", "archiver", "ingest-0"):
        path = inst.cfg.log_dir / f"{name}.log"
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        assert lines, name
        for ln in lines:
            m = logformat.LINE_RE.fullmatch(ln)
            assert m is not None and m[4] == name, (name, ln)


def test_logs_route_filters(inst):
    with session(inst, "admin") as c:
        r = c.get("/frontend/logs/", params={"process": "adapter"})
        assert r.status_code == 200, r.text
        msgs = [e["message"] for e in r.json()]
        assert msgs == ["job 42 rejected: unknown cluster", "slurm did not answer", "adapter started"]
        e = r.json()[0]
        assert e["priority"] == 3 and e["level"] == "ERROR" and e["unit"] == e["process"] == "adapter"
        assert e["logger"] == "cc-adapter" and e["timestamp"].isdigit() and e["time"].endswith("Z")
        r = c.get("/frontend/logs/", params={"process": "adapter", "level": "warning"})
        assert [x["message"] for x in r.json()] == msgs[:2]
        r = c.get("/frontend/logs/", params={"process": "adapter", "since": "1 hour ago"})
        assert [x["message"] for x in r.json()] == msgs[:2]
        r = c.get("/frontend/logs/", params={"process": "adapter", "since": "45s"})
        assert [x["message"] for x in r.json()] == msgs[:1]
        r = c.get("/frontend/logs/", params={"process": "adapter", "search": "SLURM"})
        assert [x["message"] for x in r.json()] == ["slurm did not answer"]
        r = c.get("/config/logs/", params={"process": "adapter", "lines": "1"})  # cc-backend's path
        assert [x["message"] for x in r.json()] == msgs[:1]
        after = r.json()[0]["timestamp"]
        assert [x["message"] for x in c.get("/frontend/logs/", params={"process": "adapter", "after": after}).json()] \
            == msgs[:1]
        everything = c.get("/frontend/logs/", params={"lines": "1000"}).json()
        assert {"web", "store", "adapter"} <= {x["process"] for x in everything}
        times = [int(x["timestamp"]) for x in everything]
        assert times == sorted(times, reverse=True)
        for params, word in (({"level": "loud"}, "level"), ({"since": "yesterday"}, "since"),
                             ({"lines": "0"}, "lines"), ({"lines": "5000"}, "lines"), ({"bogus": "1"}, "bogus")):
            r = c.get("/frontend/logs/", params=params)
            assert r.status_code == 400 and word in r.json()["error"], (params, r.text)


def test_logs_route_refuses_traversal(inst):
    (inst.cfg.var_dir / "secret.log").write_text(record(time.time(), "INFO", "secret", "do not show"))
    with session(inst, "admin") as c:
        for name in ("../secret", "../../var/secret", "/etc/passwd", "web/../../secret", "web.log", "secret"):
            r = c.get("/frontend/logs/", params={"process": name})
            assert r.status_code == 400, (name, r.text)
            assert "do not show" not in r.text
        r = c.get("/frontend/logs/%2e%2e/secret")
        assert r.status_code == 404


def test_logs_are_for_admins_only(inst):
    with httpx.Client(base_url=inst.web, timeout=30, trust_env=False) as anon:
        assert anon.get("/frontend/logs/").status_code == 401
        r = anon.get("/monitoring/logs")
        assert r.status_code in (302, 303) and "/login" in r.headers["location"]
    for user in ("alice", "sup", "mgr"):
        with session(inst, user) as c:
            assert c.get("/frontend/logs/").status_code == 403, user
            page = c.get("/monitoring/logs")
            assert page.status_code == 403 and "administrators" in page.text
            assert 'href="/monitoring/logs"' not in c.get("/").text
    token = inst.token("admin", ("admin", "api"))  # the REST API's tokens do not open the UI's endpoints
    r = httpx.get(inst.web + "/frontend/logs/", headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    assert r.status_code == 401
    with session(inst, "admin") as c:
        assert 'href="/monitoring/logs"' in c.get("/").text
        assert c.get("/monitoring/logs").status_code == 200


def test_cli_logs_still_works(inst):
    r = inst.cli("logs", "web", "-n", "5")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5
    assert all(logformat.LINE_RE.fullmatch(ln) or not ln[:4].isdigit() for ln in r.stdout.splitlines())


def test_logs_page_filter_and_follow(inst, tmp_path):
    missing = browser_available()
    if missing:
        pytest.skip(missing)
    b = Browser(tmp_path)
    try:
        login(b, inst.web, "admin", "pw-admin", "/monitoring/logs")
        rows = "return document.querySelectorAll('[data-log-row]').length"
        b.wait(rows + " > 0", what="log rows")
        b.select("[data-log-process]", "adapter")
        b.wait("return [...document.querySelectorAll('[data-log-row]')].every(r => r.dataset.process === 'adapter')"
               " && document.querySelectorAll('[data-log-row]').length === 3", what="adapter rows")
        first = "return document.querySelector('[data-log-row] .log-message').textContent"
        assert b.js(first) == "job 42 rejected: unknown cluster"  # newest first
        b.select("[data-log-level]", "4")
        b.wait(rows + " === 2", what="warnings and worse")
        b.select("[data-log-level]", "")
        b.wait(rows + " === 3")
        b.click("[data-log-follow]")
        b.wait("return document.querySelector('[data-log-table]').dataset.following === '1'")
        with open(inst.cfg.log_dir / "adapter.log", "a") as f:
            f.write(record(time.time(), "ERROR", "adapter", "fresh problem while following"))
        b.wait(first + " === 'fresh problem while following'", timeout=60, what="followed record on top")
        assert b.js(rows) == 4
        b.screenshot(tmp_path / "logs.png")
        errors = b.console_errors()
        assert not errors, errors
    finally:
        b.quit()
