"""Prometheus ``/metrics`` on the ingest and web listeners, scraped by a real Prometheus.

``promtool`` (Debian package ``prometheus``) checks every endpoint's output and the shipped
alert rules and Grafana dashboard (contrib/monitoring/); the counters of two ingest workers
must add up to what was written; the access rules are checked with and without tokens.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import trio

from cc import promexport
from cc.config import ConfigError, load_config
from cc.proc import stop_subprocess
from cc.shm import COUNTER_INDEX, HIST_INDEX, INGEST_SLOT_BASE, Store
from tests.helpers import ROOT, env_without_proxy, free_port, running

needs_prometheus = pytest.mark.skipif(shutil.which("promtool") is None or shutil.which("prometheus") is None,
                                      reason="Debian package prometheus (make system-deps) is not installed")

MONITORING = ROOT / "contrib" / "monitoring"
TIMEOUT = 90  # generous: the machine is shared


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True, timeout=60)


def check_metrics(text: str) -> None:
    r = promtool("check", "metrics", stdin=text)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (r.stdout + r.stderr).strip(), r.stdout + r.stderr  # no lint complaints either


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a text exposition."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    assert m, f"no sample {name}{{{want}}} in:\n{text[:3000]}"
    return float(m.group(1))


def exposed_names(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", text, re.M)}


def used_names() -> set[str]:
    """Metric names the alert rules and the dashboard query (histogram series mapped to their family)."""
    texts = [(MONITORING / "alerts.yml").read_text(), (MONITORING / "grafana-dashboard.json").read_text()]
    names = {n for t in texts for n in re.findall(r"\bcc_[a-z_]+", t) if n != "cc_py"}
    return {re.sub(r"_(bucket|sum|count)$", "", n) if "_seconds_" in n else n for n in names}


def spread_writes(inst, per_thread: int = 10, threads: int = 4, lines: int = 50) -> int:
    """Writes from several concurrent keep-alive connections (the workers share the listening
    socket, so several connections reach both); returns the number of points written."""
    now = int(time.time())
    written = []
    errors: list[str] = []

    def run(t: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {inst.token()}"}, timeout=60) as c:
            for i in range(per_thread):
                body = "".join(f"cpu_load,hostname=t{t}r{i}n{k},type=node value={k} {now}\n" for k in range(lines))
                r = c.post(inst.ingest + "/api/write", params={"cluster": "c1"}, content=body)
                if r.status_code != 200:
                    errors.append(r.text)
                    return
                written.append(r.json()["written"])

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    return sum(written)


@needs_prometheus
def test_alert_rules_and_dashboard_pass_promtool(tmp_path):
    r = promtool("check", "rules", str(MONITORING / "alerts.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
    # Every dashboard query must be valid PromQL: as recording rules, promtool parses them.
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}
    f = tmp_path / "dashboard-rules.yml"
    f.write_text(json.dumps(rules))  # JSON is YAML
    r = promtool("check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr


def test_histograms_and_counters_sum_over_process_slots(make_store):
    store = make_store()
    h = HIST_INDEX["ingest_http"]
    store.observe(INGEST_SLOT_BASE, h, 0.0004, 100)  # first bucket (le 0.0005)
    store.observe(INGEST_SLOT_BASE + 1, h, 0.003, 50)  # le 0.005
    store.observe(INGEST_SLOT_BASE + 1, h, 7200.0)  # past every bound: +Inf only
    store.counters[INGEST_SLOT_BASE, COUNTER_INDEX["points_written"]] += 5
    store.counters[INGEST_SLOT_BASE + 1, COUNTER_INDEX["points_written"]] += 7
    tot = store.histogram_totals()["ingest_http"]
    buckets = dict(tot["buckets"])
    assert (buckets[0.0005], buckets[0.0025], buckets[0.005], buckets[1800.0]) == (1, 1, 2, 2)
    assert tot["count"] == 3 and tot["bytes"] == 150
    assert tot["sum"] == pytest.approx(7200.0034, abs=1e-5)
    text = promexport.render(promexport.store_families(store)).decode()
    assert sample(text, "cc_ingest_points_accepted_total") == 12
    assert sample(text, "cc_ingest_request_duration_seconds_bucket", endpoint="write", le="0.005") == 2
    assert sample(text, "cc_ingest_request_duration_seconds_bucket", endpoint="write", le="+Inf") == 3
    assert sample(text, "cc_ingest_bytes_total", endpoint="write") == 150
    assert sample(text, "cc_store_pool_free_slots", frequency="60") == store.pools[0].layout.rows_cap


def test_metrics_allowed_ips_is_validated(tmp_path):
    for bad in ("127.0.0.1", ["not an address"], [7]):
        (tmp_path / "config.json").write_bytes(orjson.dumps({"main": {"metrics-allowed-ips": bad}}))
        with pytest.raises(ConfigError, match="main.metrics-allowed-ips"):
            load_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_bytes(orjson.dumps({"main": {"metrics-allowed-ips": ["10.0.0.0/8", "::1"]}}))
    assert load_config(tmp_path / "config.json").metrics_allowed_ips == ["10.0.0.0/8", "::1"]


@needs_prometheus
@pytest.mark.slow
def test_two_workers_counters_access_and_promtool(tmp_path):
    extra = {"main": {"metrics-allowed-ips": ["10.9.9.9"]}}  # not us: tokens are still needed
    with running(tmp_path / "inst", ingest_workers=2, extra_config=extra) as inst:
        store = Store.attach(inst.instance)
        try:
            slots = [INGEST_SLOT_BASE, INGEST_SLOT_BASE + 1]
            col = COUNTER_INDEX["points_written"]
            total = 0
            for _ in range(20):  # until both workers took connections (the kernel decides which accepts)
                total += spread_writes(inst)
                if all(store.counters[s, col] > 0 for s in slots):
                    break
            per_worker = [int(store.counters[s, col]) for s in slots]
        finally:
            del store  # views only; the supervisor owns the segments
        assert all(per_worker), per_worker
        assert sum(per_worker) == total

        auth = {"Authorization": f"Bearer {inst.token(roles=('api',))}"}
        for _ in range(4):  # whichever worker answers reports the sum over both
            text = httpx.get(inst.ingest + "/metrics", headers=auth, timeout=30).text
            assert sample(text, "cc_ingest_points_accepted_total") == total
        assert sample(text, "cc_ingest_requests_total", endpoint="write") >= 40
        assert sample(text, "cc_ingest_bytes_total", endpoint="write") > 0
        assert sample(text, "cc_store_series") == total  # one point per series
        assert sample(text, "cc_wal_fsyncs_total") > 0
        assert sample(text, "cc_ingest_request_duration_seconds_count", endpoint="write") >= 40
        check_metrics(text)
        ingest_names = exposed_names(text)

        inst.write("bad line\n")  # a rejected line, counted by reason
        text = httpx.get(inst.ingest + "/metrics", headers=auth, timeout=30).text
        assert sample(text, "cc_ingest_points_rejected_total", reason="malformed") == 1

        # web: request latency, the supervisor's process table, the archiver
        httpx.get(inst.web + "/api/clusters/", headers=auth, timeout=30)
        admin = {"Authorization": f"Bearer {inst.token(roles=('admin',))}"}
        web = httpx.get(inst.web + "/metrics", headers=admin, timeout=30)
        assert web.status_code == 200
        assert web.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = web.text
        check_metrics(text)
        assert sample(text, "cc_process_up", process="ingest-1") == 1
        assert sample(text, "cc_process_restarts_total", process="web") == 0
        assert sample(text, "cc_process_resident_memory_bytes", process="store") > 0
        assert sample(text, "cc_archive_queue_length") == 0
        assert sample(text, "cc_archive_job_seconds_total") == 0  # no job archived yet
        assert sample(text, "cc_task_failures_total", task="duration-worker") == 0  # the archiver's tasks
        assert sample(text, "cc_task_failing", task="footprint-worker") == 0
        assert sample(text, "cc_web_request_duration_seconds_count", api="rest",
                      endpoint="admin_api.get_clusters") >= 1
        missing = used_names() - ingest_names - exposed_names(text)
        assert not missing, f"alerts/dashboard use metrics nobody exposes: {sorted(missing)}"

        # access: no token 401, a token without the api/admin role 403, on both listeners
        user = {"Authorization": f"Bearer {inst.token(roles=('user',))}"}
        for base in (inst.ingest, inst.web):
            assert httpx.get(base + "/metrics", timeout=30).status_code == 401
            assert httpx.get(base + "/metrics", headers={"Authorization": "Bearer nonsense"},
                             timeout=30).status_code == 401
            r = httpx.get(base + "/metrics", headers=user, timeout=30)
            assert r.status_code == 403 and "role" in r.json()["error"]

        # a restarted process shows in the supervisor's view
        r = inst.cli("restart", "archiver")
        assert r.returncode == 0, r.stderr
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            text = httpx.get(inst.web + "/metrics", headers=admin, timeout=30).text
            if sample(text, "cc_process_restarts_total", process="archiver") == 1 and \
                    sample(text, "cc_archiver_up") == 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the archiver's restart never showed in /metrics:\n" + text[:2000])


def prometheus_query(base: str, q: str) -> list[dict]:
    r = httpx.get(base + "/api/v1/query", params={"query": q}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


@needs_prometheus
@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_installation(tmp_path):
    extra = {"main": {"metrics-allowed-ips": ["127.0.0.1/32", "::1"]}}  # Prometheus scrapes without a token
    with running(tmp_path / "inst", ingest_workers=2, extra_config=extra) as inst:
        for base in (inst.ingest, inst.web):
            assert httpx.get(base + "/metrics", timeout=30).status_code == 200
        pdir = tmp_path / "prometheus"
        pdir.mkdir()
        shutil.copy(MONITORING / "alerts.yml", pdir / "alerts.yml")
        conf = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(pdir / "alerts.yml")],
            "scrape_configs": [
                {"job_name": "cc-ingest", "static_configs": [{"targets": [inst.ingest.split("//")[1]]}]},
                {"job_name": "cc-web", "static_configs": [{"targets": [inst.web.split("//")[1]]}]},
            ],
        }
        (pdir / "prometheus.yml").write_text(json.dumps(conf))
        r = promtool("check", "config", str(pdir / "prometheus.yml"))
        assert r.returncode == 0, r.stdout + r.stderr
        port = free_port()
        log = open(pdir / "prometheus.log", "wb")  # noqa: SIM115
        prom = subprocess.Popen(["prometheus", f"--config.file={pdir / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={pdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, env=env_without_proxy())
        log.close()
        base = f"http://127.0.0.1:{port}"
        try:
            written = spread_writes(inst, per_thread=3, threads=2)

            def wait_for(what: str, ok) -> list[dict]:
                deadline = time.time() + TIMEOUT
                result: list[dict] = []
                while time.time() < deadline:
                    assert prom.poll() is None, (pdir / "prometheus.log").read_text()[-3000:]
                    try:
                        result = prometheus_query(base, what)
                    except httpx.HTTPError:
                        result = []
                    if ok(result):
                        return result
                    time.sleep(0.5)
                pytest.fail(f"{what}: {result}\n" + (pdir / "prometheus.log").read_text()[-3000:])

            up = wait_for("up", lambda res: len(res) == 2 and all(s["value"][1] == "1" for s in res))
            assert {s["metric"]["job"] for s in up} == {"cc-ingest", "cc-web"}
            got = wait_for("cc_ingest_points_accepted_total",
                           lambda res: len(res) == 1 and float(res[0]["value"][1]) == written)
            assert got[0]["metric"]["job"] == "cc-ingest"
            wait_for('cc_process_up{process="ingest-0"}', lambda res: len(res) == 1 and res[0]["value"][1] == "1")
            rules = httpx.get(base + "/api/v1/rules", timeout=30).json()["data"]["groups"]
            assert {r["name"] for g in rules for r in g["rules"]} >= {"CcIngestStalled", "CcProcessRestarting",
                                                                      "CcMemoryCapNear", "CcArchiveBacklog"}
        finally:
            stop_subprocess(prom, 30)


@needs_prometheus
@pytest.mark.slow
async def test_jetstream_backlog_lag_and_nats_state(tmp_path):
    from tests.nats_server import NatsServer
    from tests.test_nats_ingest import nats_config, now10, publish

    with NatsServer(tmp_path / "nats", jetstream=True) as srv, \
            running(tmp_path / "inst", extra_config=nats_config(srv.url, [
                {"subscribe-to": "js.c1", "cluster-tag": "c1", "stream": "CCP"}])) as inst:
        t = now10() - 600
        await publish(srv.url, "js.c1", [f"cpu_load,hostname=j{k} value={k} {t}".encode() for k in range(30)],
                      jetstream=True)
        auth = {"Authorization": f"Bearer {inst.token()}"}
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            text = httpx.get(inst.ingest + "/metrics", headers=auth, timeout=30).text
            if sample(text, "cc_ingest_points_accepted_total") == 30:
                break
            await trio.sleep(0.2)
        else:
            pytest.fail("the JetStream messages were never counted:\n" + text[:3000])
        check_metrics(text)
        assert sample(text, "cc_nats_messages_total") == 30
        assert sample(text, "cc_ingest_requests_total", endpoint="nats") >= 1
        assert sample(text, "cc_nats_pending_messages") == 0  # the newest batch took the last message
        assert 0 <= sample(text, "cc_nats_lag_seconds") < TIMEOUT
        web = httpx.get(inst.web + "/metrics", headers=auth, timeout=30).text
        deadline = time.time() + TIMEOUT
        while sample(web, "cc_nats_connected", process="ingest-0") != 1 and time.time() < deadline:
            await trio.sleep(0.2)
            web = httpx.get(inst.web + "/metrics", headers=auth, timeout=30).text
        assert sample(web, "cc_nats_connected", process="ingest-1") == 1


def test_shipped_files_are_where_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    for name in ("alerts.yml", "grafana-dashboard.json", "prometheus.example.yml"):
        assert (MONITORING / name).is_file()
        assert f"contrib/monitoring/{name}" in readme
    assert "main.metrics-allowed-ips" in readme
    assert Path(MONITORING / "grafana-dashboard.json").read_text().endswith("\n")
