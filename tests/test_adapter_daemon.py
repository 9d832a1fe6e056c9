"""cc-adapter: configuration, the Prolog/Epilog hook mode, and the daemon's sockets and PID file.

The daemon runs against the real backend (supervisor) with Slurm replayed from recorded
22.05 JSON; the hook talks to it over the real Unix socket.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio

from cc.adapter.config import AdapterConfigError, load_adapter_config, parse_config, parse_sock_addr
from cc.adapter.daemon import Daemon, DaemonError, claim_pid_file, parse_event
from cc.adapter.hook import ENV_NAMES, HookError, collect_env, hook_main
from tests.helpers import ROOT, running
from tests.slurm.helpers import RecordedSlurm, adapter_config, slurm_cluster_json

IDS = json.loads((RecordedSlurm().dir / "manifest.json").read_text())["jobs"]
CC_ADAPTER = [sys.executable, "-m", "cc.adapter"]


# -- configuration ---------------------------------------------------------------------------

def test_config_defaults_match_cc_slurm_adapter():
    c = parse_config({"ccRestUrl": "https://cc.example/", "ccRestJwt": "x"})
    assert c.cc_rest_url == "https://cc.example"
    assert c.pid_file_path == "/run/cc-slurm-adapter/daemon.pid"
    assert c.prep_sock_listen_path == c.prep_sock_connect_path == "/run/cc-slurm-adapter/daemon.sock"
    assert c.last_run_path == "/var/lib/cc-slurm-adapter/lastrun"
    assert (c.slurm_poll_interval, c.slurm_query_delay, c.slurm_query_max_span) == (60, 1, 604800)
    assert (c.slurm_max_retries, c.cc_poll_interval, c.cc_rest_submit_jobs) == (10, 21600, True)


@pytest.mark.parametrize(("doc", "message"), [
    ({"ccRestJwt": "x"}, "'ccRestUrl' is required"),
    ({"ccRestUrl": "http://x"}, "'ccRestJwt' is required"),
    ({"ccRestUrl": "cc.example", "ccRestJwt": "x"}, "must start with http"),
    ({"slurmPollInterval": "60"}, "'slurmPollInterval' must be a number"),
    ({"slurmPollInterval": 0}, "'slurmPollInterval' must be > 0"),
    ({"slurmMaxRetries": 1.5}, "'slurmMaxRetries' must be an integer"),
    ({"ccRestSubmitJobs": "yes"}, "'ccRestSubmitJobs' must be true or false"),
    ({"ccRestSubmitJobs": False}, "either NATS or REST job submission must be enabled"),
    ({"natsNodeStateSubject": "n"}, "'natsNodeStateSubject' is set but 'natsServer' is not"),
    ({"natsServer": "h", "natsUser": "u"}, "'natsUser' and 'natsPassword' go together"),
    ({"natsServer": "h", "natsPort": 70000}, "'natsPort' must be a port number"),
    ({"natsServer": "h", "natsCredsFile": "/nonexistent.creds"}, "'natsCredsFile': /nonexistent.creds does not exist"),
    ({"gpuPciAddrs": {"^node[": ["a"]}}, "invalid regular expression '^node['"),
    ({"gpuPciAddrs": {"^n$": "00:01"}}, "must be a list of PCI address strings"),
    ({"ignoreHosts": "("}, "'ignoreHosts': invalid regular expression"),
    ({"ipcSockPath": "/x"}, "replaced by 'prepSockListenPath'"),
    ({"prepSockListenPath": "tcp:host"}, "expected tcp:HOST:PORT"),
    ({"prepSockConnectPath": "udp:1:2"}, "unknown socket type 'udp'"),
])
def test_config_errors_name_the_key(doc, message):
    base = {"ccRestUrl": "http://x", "ccRestJwt": "x"}
    if "ccRestUrl" in doc or "ccRestJwt" in doc:
        base = {}
    with pytest.raises(AdapterConfigError, match=re.escape(message)):
        parse_config({**base, **doc})


def test_config_warnings_and_files(tmp_path):
    c = parse_config({"ccRestUrl": "http://x", "ccRestJwt": "x", "natsServer": "nats", "natsPort": 4222,
                      "bogus": 1})
    assert any("'bogus'" in w for w in c.warnings) and not any("NATS" in w for w in c.warnings)
    assert (c.nats_server, c.nats_port, c.nats_subject, c.cc_rest_submit_jobs) == ("nats", 4222, "jobs", True)
    with pytest.raises(AdapterConfigError, match="configuration file not found"):
        load_adapter_config(str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(AdapterConfigError, match="invalid JSON"):
        load_adapter_config(str(tmp_path / "bad.json"))
    # the hook without -config and without the default file runs on defaults
    if not Path("/etc/cc-slurm-adapter/config.json").exists():
        assert load_adapter_config(None, daemon=False).prep_sock_connect_path.endswith("daemon.sock")


def test_socket_address_forms():
    assert parse_sock_addr("/run/x.sock") == ("unix", "/run/x.sock")
    assert parse_sock_addr("unix:/run/x.sock") == ("unix", "/run/x.sock")
    assert parse_sock_addr("tcp:127.0.0.1:12345") == ("tcp", ("127.0.0.1", 12345))
    assert parse_sock_addr("tcp:[::1]:12345") == ("tcp", ("::1", 12345))
    assert parse_sock_addr("tcp::12345") == ("tcp", ("", 12345))


# -- hook mode -------------------------------------------------------------------------------

def prolog_env(job_id: int, ctx: str = "prolog_slurmctld") -> dict[str, str]:
    return {"SLURM_JOB_ID": str(job_id), "SLURM_CLUSTER_NAME": "ccslurm", "SLURM_SCRIPT_CONTEXT": ctx,
            "SLURM_JOB_USER": "root", "PATH": os.environ.get("PATH", "")}


def test_hook_environment_checks():
    with pytest.raises(HookError, match="SLURM_JOB_ID is not set"):
        collect_env({})
    with pytest.raises(HookError, match="SLURM_SCRIPT_CONTEXT is 'prolog_slurmd'"):
        collect_env({"SLURM_JOB_ID": "1", "SLURM_SCRIPT_CONTEXT": "prolog_slurmd"})
    msg = collect_env(prolog_env(7))
    assert set(msg) == set(ENV_NAMES) and msg["SLURM_JOB_ID"] == "7" and msg["SLURM_JOB_NAME"] == ""
    ev = parse_event(json.dumps(msg).encode())
    assert (ev.cluster, ev.job_id, ev.context) == ("ccslurm", 7, "prolog_slurmctld")
    for bad, why in ((b"nope", "not JSON"), (b"[]", "JSON object"), (b'{"SLURM_JOB_ID": "x"}', "not an integer"),
                     (b'{"SLURM_JOB_ID": "1", "SLURM_SCRIPT_CONTEXT": "x"}', "SLURM_SCRIPT_CONTEXT")):
        with pytest.raises(ValueError, match=why):
            parse_event(bad)


def test_hook_exits_0_without_daemon(tmp_path):
    cfg = adapter_config(tmp_path, "http://127.0.0.1:1", "t")
    r = subprocess.run([*CC_ADAPTER, "-config", str(cfg)], env=prolog_env(3), capture_output=True, text=True,
                       timeout=30, cwd=ROOT)
    assert r.returncode == 0
    assert "cannot reach the cc-adapter daemon" in r.stderr
    r = subprocess.run([*CC_ADAPTER, "-config", str(cfg)], env={"PATH": os.environ["PATH"]}, capture_output=True,
                       text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 0 and "SLURM_JOB_ID is not set" in r.stderr
    r = subprocess.run([*CC_ADAPTER, "-config", str(tmp_path / "missing.json")], env=prolog_env(3),
                       capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 0 and "configuration file not found" in r.stderr


def test_daemon_refuses_bad_config(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"ccRestUrl": "http://x", "ccRestJwt": "t", "slurmPollInterval": -1}))
    r = subprocess.run([*CC_ADAPTER, "-daemon", "-config", str(tmp_path / "c.json")], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "'slurmPollInterval' must be > 0" in r.stderr


def test_pid_file(tmp_path):
    pid = tmp_path / "run" / "d.pid"
    claim_pid_file(str(pid))
    assert pid.read_text() == str(os.getpid())
    pid.write_text("1")  # init always runs
    with pytest.raises(DaemonError, match="another cc-adapter daemon is running with PID 1"):
        claim_pid_file(str(pid))
    pid.write_text("999999999")  # stale
    claim_pid_file(str(pid))


# -- the daemon ------------------------------------------------------------------------------

@pytest.fixture
def inst(tmp_path):
    with running(tmp_path / "cc", clusters={"ccslurm": slurm_cluster_json()}) as i:
        yield i


def backend_job(inst, job_id: int) -> dict | None:
    r = httpx.get(inst.web + "/api/jobs/", params={"cluster": "ccslurm", "items-per-page": 1000},
                  headers={"X-Auth-Token": inst.token(roles=["api"])}, timeout=30)
    return {j["jobId"]: j for j in r.json()["jobs"]}.get(job_id)


async def wait_for(pred, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = await trio.to_thread.run_sync(pred)
        if v:
            return v
        await trio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_daemon_hook_events_over_the_socket(tmp_path, inst):
    cfgpath = adapter_config(tmp_path / "a", inst.web, inst.token(roles=["api"]), slurmPollInterval=3600)
    cfg = load_adapter_config(str(cfgpath))
    slurm = RecordedSlurm()
    slurm.hidden = {j["job_id"] for j in slurm.sacct_doc["jobs"]}  # the first poll sees nothing
    d = Daemon(cfg, slurm=slurm)
    shutdown = trio.Event()
    async with trio.open_nursery() as n:
        await n.start(d.run, shutdown)
        assert Path(cfg.pid_file_path).read_text() == str(os.getpid())
        assert Path(cfg.prep_sock_listen_path).is_socket()
        await wait_for(lambda: d.last_poll_ok > 0)
        # garbage on the socket is logged and dropped
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(cfg.prep_sock_listen_path)
            s.sendall(b"hello")
        # slurmctld's Prolog: the job appears in Slurm only a moment later (retried)
        assert await trio.to_thread.run_sync(hook_main, cfg.prep_sock_connect_path, prolog_env(IDS["running"])) == 0
        await trio.sleep(0.5)
        slurm.hidden.discard(IDS["running"])
        job = await wait_for(lambda: backend_job(inst, IDS["running"]))
        assert job["jobState"] == "running" and job["resources"][0]["hostname"] == "node04"
        # Epilog of another job: started and stopped at once
        slurm.hidden.discard(IDS["failing"])
        await trio.to_thread.run_sync(hook_main, cfg.prep_sock_connect_path,
                                      prolog_env(IDS["failing"], "epilog_slurmctld"))
        job = await wait_for(lambda: (j := backend_job(inst, IDS["failing"])) and j["jobState"] != "running" and j)
        assert job["jobState"] == "failed"
        shutdown.set()
    assert not Path(cfg.prep_sock_listen_path).exists() and not Path(cfg.pid_file_path).exists()
