"""The real supervisor with all its processes: ingest over HTTP, query, kill children, stop.

These tests start ``python -m supervisor run`` on free ports and talk to it like
collectors and cc-backend would.
"""

from __future__ import annotations

import gzip
import os
import random
import signal
import threading
import time

import httpx
import numpy as np
import orjson
import pytest

from tests.helpers import Installation, running

DEAD_PROXY = "http://127.0.0.1:9"  # discard port: nothing answers there


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    # A proxy in the environment must not catch the web process's forwarding to the ingest
    # workers (test_auth_rules_on_both_ports writes through the web port).
    env = {**os.environ, "http_proxy": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY, "ALL_PROXY": DEAD_PROXY}
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    with running(tmp_path_factory.mktemp("dataplane"), env=env) as i:
        yield i


def now10() -> int:
    return (int(time.time()) // 10) * 10


def test_write_then_query_node_and_hwthread_scopes(inst):
    t = now10() - 100
    lines = []
    for k in range(5):
        lines.append(f"cpu_load,cluster=c1,hostname=a01,type=node value={k + 1} {t + 10 * k}")
        for hw in range(8):
            lines.append(f"flops_any,cluster=c1,hostname=a01,type=hwthread,type-id={hw} value={hw + k} {t + 10 * k}")
    r = inst.write("\n".join(lines))
    assert r.status_code == 200, r.text
    assert r.json()["written"] == 45
    q = inst.query({"cluster": "c1", "from": t, "to": t + 50, "queries": [
        {"metric": "cpu_load", "host": "a01"},
        {"metric": "flops_any", "host": "a01"},
        {"metric": "flops_any", "host": "a01", "type": "socket", "type-ids": ["0", "1"]},
        {"metric": "flops_any", "host": "a01", "type": "hwthread", "type-ids": ["3"]},
        {"metric": "nope", "host": "a01"},
    ]})
    assert q.status_code == 200, q.text
    res = q.json()["results"]
    assert res[0][0]["data"] == [1, 2, 3, 4, 5]
    assert res[0][0]["from"] == t and res[0][0]["to"] == t + 50
    assert res[0][0]["avg"] == 3 and res[0][0]["min"] == 1 and res[0][0]["max"] == 5
    assert res[1][0]["data"] == [sum(range(8)) + 8 * k for k in range(5)]
    assert [x["data"][0] for x in res[2]] == [0 + 1 + 2 + 3, 4 + 5 + 6 + 7]
    assert res[3][0]["data"] == [3, 4, 5, 6, 7]
    assert res[4] == []


def test_bad_lines_are_reported_and_good_lines_kept(inst):
    t = now10() - 60
    body = "\n".join([
        f"cpu_load,cluster=c1,hostname=b01,type=node value=1 {t}",
        "garbage line without fields",
        f"cpu_load,cluster=c1,hostname=../etc,type=node value=1 {t}",
        f"unknown_metric,cluster=c1,hostname=b01 value=3 {t}",
        f"cpu_load,cluster=c1,hostname=b01,type=node value=2 {t + 10}",
    ])
    r = inst.write(body)
    assert r.status_code == 400
    doc = r.json()
    assert doc["status"] == "Bad Request"
    assert doc["written"] == 2 and doc["malformed"] == 2 and doc["unknown_metric"] == 1
    assert [e["line"] for e in doc["errors"]] == [2, 3]
    assert "host name" in doc["errors"][1]["error"]
    q = inst.query({"cluster": "c1", "from": t, "to": t + 20, "queries": [{"metric": "cpu_load", "host": "b01"}]})
    assert q.json()["results"][0][0]["data"] == [1, 2]
    dbg = httpx.get(inst.web + "/api/debug", headers={"Authorization": f"Bearer {inst.token()}"}).json()
    assert dbg["counters"]["malformed_lines"] >= 2
    assert dbg["counters"]["unknown_metric"] >= 1
    assert dbg["counters"]["invalid_name"] >= 1


def test_auth_rules_on_both_ports(inst):
    line = f"cpu_load,cluster=c1,hostname=c01 value=1 {now10()}"
    for base in (inst.ingest, inst.web):
        r = httpx.post(base + "/api/write?cluster=c1", content=line)
        assert r.status_code == 401 and "JWT" in r.json()["error"]
        r = inst.write(line, token=inst.token(roles=["user"]), base=base)
        assert r.status_code == 403 and "api" in r.json()["error"]
        r = inst.write(line, token=inst.token(max_age=-10), base=base)
        assert r.status_code == 401
        r = inst.write(line, headers={"Authorization": "", "X-Auth-Token": inst.token()}, base=base)
        assert r.status_code == 200, r.text
    r = httpx.post(inst.web + "/api/query", content=b"{}")
    assert r.status_code == 401


def test_gzip_timestamps_and_query_options(inst):
    t = now10() - 200
    lines = [f"mem_used,cluster=c1,hostname=d01,type=node value={i}i {(t + 10 * i) * 1_000_000_000}" for i in range(10)]
    r = inst.write(gzip.compress("\n".join(lines).encode()), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["written"] == 10, r.text
    q = inst.query({"cluster": "c1", "from": t - 40, "to": t + 100, "with-stats": False, "queries": [
        {"metric": "mem_used", "host": "d01", "scale-by": 2}]}).json()
    d = q["results"][0][0]
    assert d["from"] == t - 40 and d["data"][:4] == [None] * 4  # padded to 'from'
    assert d["data"][4:] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert d["resolution"] == 10
    r = inst.write(b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"})
    assert r.status_code in (400, 415)


def test_free_healthcheck_and_debug_selector(inst):
    t = now10()
    inst.write(f"net_bw,cluster=c1,hostname=e01,type=node value=5 {t - 30}\n"
               f"cpu_load,cluster=c1,hostname=e01,type=node value=5 {t - 3000}")
    auth = {"Authorization": f"Bearer {inst.token()}"}
    h = httpx.post(inst.web + "/api/healthcheck", headers=auth,
                   content=orjson.dumps({"cluster": "c1", "nodes": ["e01", "zz"],
                                         "metric-names": ["net_bw", "cpu_load", "mem_bw"]})).json()
    assert h["e01"]["State"] == "partial"
    assert h["e01"]["missing"] == ["mem_bw"] and h["e01"]["degraded"] == ["cpu_load"]
    assert h["zz"]["State"] == "failed"
    dbg = httpx.get(inst.web + "/api/debug?selector=c1:e01", headers=auth).json()
    assert set(dbg["data"]["c1"]["e01"]) == {"net_bw", "cpu_load"}
    r = httpx.post(inst.web + f"/api/free?to={t - 1000}", headers=auth, content=orjson.dumps([["c1", "e01"]]))
    assert r.status_code == 200 and r.text.startswith("buffers freed: 1")
    dbg = httpx.get(inst.web + "/api/debug?selector=c1:e01", headers=auth).json()
    assert set(dbg["data"]["c1"]["e01"]) == {"net_bw"}
    r = httpx.post(inst.web + "/api/free", headers=auth, content=b"[]")
    assert r.status_code == 400 and "'to'" in r.json()["error"]


class Feeder(threading.Thread):
    """A collector that keeps writing distinct points and remembers what was acknowledged."""

    def __init__(self, inst: Installation, name: str, base: str):
        super().__init__(daemon=True)
        self.inst, self.name_, self.base = inst, name, base
        self.acked: dict[tuple[str, int, int], float] = {}
        self.stop = threading.Event()
        self.failures = 0
        self.token = inst.token()

    def run(self) -> None:
        rnd = random.Random(self.name_)
        client = httpx.Client(timeout=10)
        t0 = now10()
        i = 0
        while not self.stop.is_set():
            host = f"{self.name_}{i % 6}"
            ts = t0 - 10 * (i // 6 % 300)
            vals = {hw: rnd.random() for hw in range(8)}
            body = "\n".join(f"flops_any,cluster=c1,hostname={host},type=hwthread,type-id={hw} value={v!r} {ts}"
                             for hw, v in vals.items())
            try:
                r = client.post(self.base + "/api/write?cluster=c1", content=body,
                                headers={"Authorization": f"Bearer {self.token}"})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                for hw, v in vals.items():
                    self.acked[(host, hw, ts)] = v
                i += 1
            else:
                self.failures += 1
                client.close()
                client = httpx.Client(timeout=10)
                time.sleep(0.05)
        client.close()


def test_killing_any_child_loses_no_acknowledged_point(tmp_path):
    with running(tmp_path, ingest_workers=2) as inst:
        feeders = [Feeder(inst, "fa", inst.ingest), Feeder(inst, "fb", inst.web)]
        for f in feeders:
            f.start()
        time.sleep(1.0)
        for name in ("store", "ingest-0", "ingest-1", "web", "ingest-0"):
            pid = inst.pid_of(name)
            os.kill(pid, signal.SIGKILL)
            time.sleep(1.0)
            inst.wait_ready(30)
            assert inst.pid_of(name) != pid
        time.sleep(0.5)
        for f in feeders:
            f.stop.set()
        for f in feeders:
            f.join(30)
        acked = {}
        for f in feeders:
            acked.update(f.acked)
        assert len(acked) > 500
        st = inst.status()
        assert {p["name"]: p["crashes"] for p in st["processes"]}["ingest-0"] == 2
        by_host: dict[str, list] = {}
        for (host, hw, ts), v in acked.items():
            by_host.setdefault(host, []).append((hw, ts, v))
        t_hi = now10() + 10
        for host, pts in by_host.items():
            q = inst.query({"cluster": "c1", "from": t_hi - 3600, "to": t_hi, "with-padding": False, "queries": [
                {"metric": "flops_any", "host": host, "type": "hwthread", "type-ids": [str(h) for h in range(8)]}]})
            assert q.status_code == 200, q.text
            series = q.json()["results"][0]
            assert len(series) == 8
            for hw, ts, v in pts:
                s = series[hw]
                idx = (ts - s["from"]) // 10
                assert s["data"][idx] == pytest.approx(v), (host, hw, ts)
        # the log tells about each crash
        logs = inst.cli("logs", "supervisor", "-n", "200")
        assert logs.returncode == 0


def test_stop_removes_shared_memory_and_cli_operates(tmp_path):
    inst = Installation(tmp_path, ingest_workers=1)
    try:
        inst.start()
        assert inst.segments()
        st = inst.cli("status")
        assert st.returncode == 0 and "ingest-0" in st.stdout and "store" in st.stdout, st.stdout
        pid = inst.pid_of("web")
        r = inst.cli("restart", "web")
        assert r.returncode == 0 and "web" in r.stdout
        inst.wait_ready()
        assert inst.pid_of("web") != pid
        r = inst.cli("restart", "nosuch")
        assert r.returncode == 1 and "no process named" in r.stderr
        logs = inst.cli("logs", "web", "-n", "50")
        assert logs.returncode == 0 and "web serving on" in logs.stdout
        tok = inst.cli("jwt", "alice", "--roles", "api,user")
        assert tok.returncode == 0 and tok.stdout.count(".") == 2
        r = inst.write(f"cpu_load,cluster=c1,hostname=z1 value=1 {now10()}", token=tok.stdout.strip())
        assert r.status_code == 200, r.text
        r = inst.cli("stop")
        assert r.returncode == 0 and "stopped" in r.stdout
        inst.proc.wait(30)
        assert inst.segments() == []
        assert inst.cli("status").returncode == 3
    finally:
        inst.stop()


def test_supervisor_killed_hard_keeps_data_for_the_next_start(tmp_path):
    inst = Installation(tmp_path, ingest_workers=1)
    try:
        inst.start()
        t = now10() - 20
        assert inst.write(f"cpu_load,cluster=c1,hostname=k1 value=42 {t}").status_code == 200
        inst.proc.send_signal(signal.SIGKILL)
        inst.proc.wait()
        deadline = time.time() + 10  # children die with their parent (PDEATHSIG)
        while time.time() < deadline and (inst.cfg.run_dir / "supervisor.pid").exists():
            try:
                os.kill(int((inst.cfg.run_dir / "supervisor.pid").read_text()), 0)
            except (ProcessLookupError, ValueError):
                break
            time.sleep(0.1)
        assert inst.segments()
        inst.start()
        q = inst.query({"cluster": "c1", "from": t, "to": t + 10, "queries": [{"metric": "cpu_load", "host": "k1"}]})
        assert q.json()["results"][0][0]["data"] == [42]
    finally:
        inst.stop()


def test_many_points_in_one_request(inst):
    t = now10() - 3000
    n = 20000
    hw = np.arange(n) % 8
    ts = t + 10 * (np.arange(n) // 8 % 290)
    hosts = np.arange(n) // (8 * 290)
    body = "\n".join(f"cpu_user,cluster=c1,hostname=m{h},type=hwthread,type-id={w} value={i} {s}"
                     for i, (h, w, s) in enumerate(zip(hosts, hw, ts, strict=True)))
    r = inst.write(body)
    assert r.status_code == 200 and r.json()["written"] == n, r.text
