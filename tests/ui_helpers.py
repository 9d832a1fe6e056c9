"""Headless Debian Chromium for the UI tests, driven through chromedriver's W3C WebDriver API over httpx.

No Selenium and no driver or browser downloads: ``/usr/bin/chromedriver`` (Debian's
``chromium-driver``) is started on a free port and stopped by PID; it starts
``/usr/bin/chromium`` with the options this machine needs.  The browser log
(``goog:loggingPrefs``) is read after every step that matters, so tests can fail on
any console error.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port

CHROMIUM = os.environ.get("CC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CC_CHROMEDRIVER", "/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # W3C element reference key
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
               "--window-size=1600,1100"]


def browser_available() -> str | None:
    """None if Chromium and chromedriver are installed, else what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    return f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)" if missing else None


class WebDriverError(RuntimeError):
    pass


class Browser:
    """One chromedriver process and one Chromium session."""

    def __init__(self, workdir: Path | None = None, *, window: tuple[int, int] = (1600, 1100)):
        self.tmp = Path(tempfile.mkdtemp(prefix="cc-chromium-", dir=workdir))
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["NO_PROXY"] = "127.0.0.1,localhost"
        self.log_path = self.tmp / "chromedriver.log"
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}", f"--log-path={self.log_path}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                       start_new_session=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120, trust_env=False)
        self.session = ""
        try:
            self._wait_driver()
            args = [*CHROME_ARGS, f"--user-data-dir={self.tmp / 'profile'}", f"--window-size={window[0]},{window[1]}"]
            caps = {"browserName": "chrome", "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"}, "timeouts": {"pageLoad": 60000, "script": 60000, "implicit": 10000}}
            value = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
            self.session = value["sessionId"]
        except BaseException:
            self.quit()
            raise

    def _wait_driver(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.driver.poll() is not None:
                raise WebDriverError(f"chromedriver exited with {self.driver.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/status").json()["value"]["ready"]:
                    return
            time.sleep(0.05)
        raise WebDriverError("chromedriver did not get ready")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, path, json=body)
        doc = r.json()
        value = doc.get("value")
        if r.status_code >= 400:
            err = value if isinstance(value, dict) else {}
            raise WebDriverError(f"{method} {path}: {err.get('error')}: {err.get('message', '')[:2000]}")
        return value

    def cmd(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    # -- navigation and scripts ---------------------------------------------------------------------

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self.cmd("GET", "/url")

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` as a function body (use ``return``); ``arguments[i]`` are the args."""
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args: Any) -> Any:
        """Run an async function body; its result is awaited."""
        wrapped = ("const done = arguments[arguments.length - 1];"
                   f"(async () => {{ {script} }})().then(done, (e) => done({{__error: String(e)}}));")
        out = self.cmd("POST", "/execute/async", {"script": wrapped, "args": list(args)})
        if isinstance(out, dict) and "__error" in out:
            raise WebDriverError(out["__error"])
        return out

    def wait(self, condition: str, *args: Any, timeout: float = 30, what: str | None = None) -> Any:
        """Poll a JS expression (function body returning a value) until it is truthy; returns it."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = self.js(condition, *args)
            except WebDriverError as e:  # e.g. during navigation
                last = e
            else:
                if last:
                    return last
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or condition!r} (last: {last!r})")

    # -- elements ----------------------------------------------------------------------------

    def find(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self.cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, css: str) -> None:
        el = self.find(css)
        # centred, so that the sticky navigation bar never covers it
        self.cmd("POST", "/execute/sync", {"script": "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})",
                                           "args": [{ELEMENT: el}]})
        self.cmd("POST", f"/element/{el}/click", {})

    def type(self, css: str, text: str, clear: bool = True) -> None:
        el = self.find(css)
        if clear:
            self.cmd("POST", f"/element/{el}/clear", {})
        self.cmd("POST", f"/element/{el}/value", {"text": text})

    def text(self, css: str) -> str:
        return self.cmd("GET", f"/element/{self.find(css)}/text")

    def select(self, css: str, value: str) -> None:
        """Choose an option of a <select> and fire its change event, as a user would."""
        ok = self.js("const s = document.querySelector(arguments[0]); if (!s) return false;"
                     "s.value = arguments[1]; s.dispatchEvent(new Event('change', {bubbles: true}));"
                     "return s.value === arguments[1];", css, value)
        if not ok:
            raise AssertionError(f"cannot select {value!r} in {css}")

    def drag(self, css: str, x0: float, x1: float, y: float = 0.5) -> None:
        """Drag the mouse across an element horizontally (fractions of its width/height)."""
        el = self.find(css)
        rect = self.cmd("GET", f"/element/{el}/rect")
        origin = {ELEMENT: el}
        def px(f: float) -> int:
            return int(rect["width"] * (f - 0.5))
        dy = int(rect["height"] * (y - 0.5))
        actions = [{"type": "pointerMove", "duration": 0, "origin": origin, "x": px(x0), "y": dy},
                   {"type": "pointerDown", "button": 0}]
        actions += [{"type": "pointerMove", "duration": 30, "origin": origin, "x": px(x0 + (x1 - x0) * k / 6), "y": dy}
                    for k in range(1, 7)]
        actions.append({"type": "pointerUp", "button": 0})
        self.cmd("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse",
                                                   "parameters": {"pointerType": "mouse"}, "actions": actions}]})
        self.cmd("DELETE", "/actions")

    # -- evidence -----------------------------------------------------------------------------

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))
        return path

    def logs(self) -> list[dict[str, Any]]:
        """Browser console entries since the last call (chromedriver's log endpoint)."""
        for path in ("/se/log", "/log"):
            try:
                return self.cmd("POST", path, {"type": "browser"}) or []
            except WebDriverError:
                continue
        return []

    def console_errors(self) -> list[str]:
        return [f"{e.get('level')}: {e.get('message')}" for e in self.logs() if e.get("level") == "SEVERE"]

    # -- lifetime -----------------------------------------------------------------------------

    def quit(self) -> None:
        if self.session:
            with contextlib.suppress(Exception):
                self._call("DELETE", f"/session/{self.session}")
            self.session = ""
        self.http.close()
        if self.driver.poll() is None:
            self.driver.send_signal(signal.SIGTERM)
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                # chromedriver and the Chromium it started are alone in the process group we made for them
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.driver.pid, signal.SIGKILL)
                self.driver.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def login(b: Browser, base: str, username: str, password: str, target: str = "/") -> None:
    """Log in through the login form (logging out first)."""
    b.get(base + "/logout")
    b.get(base + "/login?redirect=" + target)
    b.wait("return document.querySelector('[data-login-form]') !== null", what="login form")
    b.type("input[name=username]", username)
    b.type("input[name=password]", password)
    b.click("[data-login-form] button[type=submit]")
    b.wait("return !location.pathname.startsWith('/login')", what=f"login of {username}")


# -- metric data for the UI tests and the UI benchmark ---------------------------------------------

def scope_ids(topology: dict[str, Any], scope: str) -> list[str | None]:
    if scope == "node":
        return [None]
    if scope == "hwthread":
        return [str(t) for t in topology["node"]]
    if scope == "accelerator":
        return [a["id"] for a in topology.get("accelerators") or []]
    return [str(i) for i in range(len(topology.get(scope) or []))]


def metric_lines(cluster: dict[str, Any], hosts: list[str], t0: int, t1: int, *, level: float = 0.6,
                 metrics: list[str] | None = None, seed: int = 0) -> list[str]:
    """Line protocol for every (selected) metric of ``cluster`` on ``hosts`` from t0 to t1 (exclusive).

    Node-level values wave around ``level`` x peak, so a job's footprint and plot backgrounds land
    in a chosen threshold class; sum-aggregated finer scopes split the node value.
    """
    import math

    topo = cluster["subClusters"][0]["topology"]
    out: list[str] = []
    configs = [m for m in cluster["metricConfig"] if metrics is None or m["name"] in metrics]
    for m in configs:
        ids = scope_ids(topo, m["scope"])
        parts = len(ids) if m.get("aggregation") == "sum" else 1
        step = int(m["timestep"])
        peak = float(m.get("peak") or 100)
        for hi, host in enumerate(hosts):
            for t in range(t0 - t0 % step, t1, step):
                k = t // step
                wave = 1 + 0.25 * math.sin(k / 9 + hi + seed)
                for j, sid in enumerate(ids):
                    v = round(peak * level * wave * (1 + 0.05 * j) / parts, 3)
                    tags = f"cluster={cluster['name']},hostname={host},type={m['scope']}"
                    if sid is not None:
                        tags += f",type-id={sid}"
                    out.append(f"{m['name']},{tags} value={v} {t}")
    return out


def ingest(inst, lines: list[str], cluster: str, chunk: int = 20000) -> None:
    for i in range(0, len(lines), chunk):
        r = inst.write("\n".join(lines[i:i + chunk]), cluster=cluster)
        assert r.status_code == 200, r.text[:500]


# -- the installation of the UI tests -------------------------------------------------------------

UI_CONFIG = {"main": {"resampling": {"resolutions": [60], "trigger": 30, "minimum-points": 100}}}
NOTICE = "Maintenance window on Friday 8:00-10:00"
JOB_SCRIPT = "#!/bin/bash\n#SBATCH --nodes=1\nsrun ./simulate --steps 1000\n"


def start_ui_installation(root: Path, extra_config: dict[str, Any] | None = None):
    """A running installation with users, two clusters, running and archived jobs with metric data.

    Returns the Installation with ``ids`` (name -> database id), ``t_now`` and ``clusters``.
    ``extra_config`` is merged into ``config.json``'s ``main`` section.
    """
    from tests.graphql_helpers import add_users, rest, settle_archiver, start_job, stop_job
    from tests.helpers import Installation, small_cluster

    clusters = {"c1": small_cluster("c1"), "c2": small_cluster("c2")}
    for doc in clusters.values():  # realistic units for the roofline: GF/s and GB/s
        for m in doc["metricConfig"]:
            if m["name"] in ("flops_any", "mem_bw"):
                m["unit"]["prefix"] = "G"
    config = {"main": {**UI_CONFIG["main"], **((extra_config or {}).get("main") or {})}}
    inst = Installation(root, ingest_workers=1, retention="3h", clusters=clusters, extra_config=config)
    inst.start()
    try:
        add_users(inst)
        (inst.cfg.var_dir / "notice.txt").write_text(NOTICE + "\n")
        now = int(time.time())
        c1 = clusters["c1"]
        ingest(inst, metric_lines(c1, ["n01"], now - 3600, now + 1, level=0.05), "c1")
        ingest(inst, metric_lines(c1, ["n02", "n03"], now - 1800, now + 1, level=0.15, seed=1), "c1")
        ingest(inst, metric_lines(c1, ["n04"], now - 2400, now + 1, level=0.6, seed=2), "c1")
        ingest(inst, metric_lines(c1, ["n05", "n06"], now - 7000, now - 3400, level=0.35, seed=3), "c1")
        ingest(inst, metric_lines(clusters["c2"], ["m01"], now - 1200, now + 1, level=0.35), "c2")
        big = [f"n{i}" for i in range(10, 18)]
        ingest(inst, metric_lines(c1, big, now - 900, now + 1, level=0.6, seed=4), "c1")
        ids = {
            "r1": start_job(inst, 1001, "alice", "p1", ("n01",), now - 3600,
                            metaData={"jobName": "sim-live", "jobScript": JOB_SCRIPT,
                                      "slurmInfo": "JobId=1001 JobName=sim-live\n   UserId=alice(1000)"}),
            "r2": start_job(inst, 1002, "bob", "p2", ("n02", "n03"), now - 1800, metaData={"jobName": "two-nodes"}),
            "s1": start_job(inst, 1003, "alice", "p1", ("n04",), now - 2400, shared="multi_user", numHwthreads=4,
                            resources=[{"hostname": "n04", "hwthreads": [0, 1, 2, 3]}]),
            "s2": start_job(inst, 1004, "bob", "p2", ("n04",), now - 2000, shared="multi_user", numHwthreads=4,
                            resources=[{"hostname": "n04", "hwthreads": [4, 5, 6, 7]}]),
            "f1": start_job(inst, 1005, "alice", "p1", ("n05", "n06"), now - 7000, metaData={"jobName": "finished"}),
            "f2": start_job(inst, 1006, "bob", "p2", ("n07",), now - 5 * 86400),
            "big": start_job(inst, 1007, "bob", "p2", tuple(big), now - 900, metaData={"jobName": "eight-nodes"}),
        }
        doc = {"jobId": 2001, "user": "alice", "project": "p3", "cluster": "c2", "partition": "gpu", "numNodes": 1,
               "numHwthreads": 8, "startTime": now - 1200, "walltime": 7200, "resources": [{"hostname": "m01"}],
               "metaData": {"jobName": "other-cluster"}}
        r = rest(inst, "POST", "/api/jobs/start_job/", json=doc)
        assert r.status_code == 201, r.text
        ids["c2"] = r.json()["id"]
        stop_job(inst, 1005, now - 3400)
        stop_job(inst, 1006, now - 5 * 86400 + 600, "failed")
        settle_archiver(inst, [ids["f1"], ids["f2"]])
        inst.ids = ids
        inst.t_now = now
        inst.clusters = clusters
        return inst
    except BaseException:
        inst.stop()
        raise


# -- shared pytest fixtures for the browser test modules -------------------------------------------
# A module imports `browser` and `b` and defines an `inst` fixture (its installation with an "admin"
# user whose password is "pw-admin").

PLOTS_READY = "return document.body.dataset.plotsReady === '1'"


@pytest.fixture(scope="module")
def browser(inst, tmp_path_factory):
    """One headless Chromium per module, logged in as admin."""
    missing = browser_available()
    if missing:
        pytest.skip(missing)
    b = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        login(b, inst.web, "admin", "pw-admin")
        b.console_errors()
        yield b
    finally:
        b.quit()


@pytest.fixture
def b(browser, tmp_path):
    """The shared browser; afterwards: a screenshot, and no console errors allowed."""
    browser.console_errors()  # drop what earlier tests left
    yield browser
    browser.screenshot(tmp_path / "screenshot.png")
    errors = browser.console_errors()
    assert not errors, "browser console errors:\n" + "\n".join(errors)


def open_page(b: Browser, inst, path: str, ready: str | None = PLOTS_READY, timeout: float = 30) -> None:
    """Load a page and wait until it says it is ready (plots drawn by default)."""
    b.get(inst.web + path)
    if ready:
        b.wait(ready, timeout=timeout, what=f"{path} ready")
