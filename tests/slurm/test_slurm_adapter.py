"""cc-adapter end to end: a real Slurm 22.05 (tests/slurm/cluster.py), the real supervisor, the adapter daemon.

Real batch jobs (multi-node with GPUs, exclusive, array, failing, cancelled while
running and while pending, timed out) must reach the backend with the right fields and
final state; jobs that start and end while the backend or the adapter is down must all
arrive afterwards; the PrologSlurmctld/EpilogSlurmctld hook must report jobs without
waiting for a poll.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cc.adapter.slurmjson import expand_hostlist, expand_ranges
from cc.adapter.sync import read_last_run, write_last_run
from tests.helpers import Installation, free_port
from tests.slurm.cluster import CLUSTER
from tests.slurm.helpers import PCI, adapter_config, slurm_cluster_json

pytestmark = pytest.mark.slurm

SLEEP = "#!/bin/sh\nsleep {}\n"


class Backend:
    """The real supervisor plus the REST calls these tests need."""

    def __init__(self, root: Path, port: int | None = None):
        extra = {"main": {"addr": f"127.0.0.1:{port}"}} if port else None
        self.inst = Installation(root, clusters={CLUSTER: slurm_cluster_json()}, extra_config=extra)
        self.inst.start()
        self.token = self.inst.token(roles=["api"])

    def jobs(self) -> dict[int, dict[str, Any]]:
        try:
            r = httpx.get(self.inst.web + "/api/jobs/", params={"cluster": CLUSTER, "items-per-page": 10000,
                                                               "with-metadata": "true"},
                          headers={"X-Auth-Token": self.token}, timeout=10)
        except httpx.HTTPError:
            return {}
        if r.status_code == 404:
            pytest.skip("the backend has no GET /api/jobs/ yet (cc/webd job API missing)")
        assert r.status_code == 200, r.text
        return {j["jobId"]: j for j in r.json()["jobs"]}


def wait_until(pred: Callable[[], Any], timeout: float, what: str, diag: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{diag()}")
        time.sleep(0.3)


def states_are(backend: Backend, expected: dict[int, str]) -> Callable[[], bool]:
    def check() -> bool:
        jobs = backend.jobs()
        return all(jobs.get(i, {}).get("jobState") == s for i, s in expected.items())
    return check


def cpu_ids(slurm, job_id: int) -> dict[str, list[int]]:
    """Slurm's own per-node CPU ids of a job (``scontrol show job -d``)."""
    out = slurm.run("scontrol", "show", "job", "-d", str(job_id)).stdout
    res: dict[str, list[int]] = {}
    for nodes, ids in re.findall(r"Nodes=(\S+) CPU_IDs=(\S+)", out):
        for n in expand_hostlist(nodes):
            res[n] = expand_ranges(ids)
    return res


def start_adapter(slurm, tmp_path: Path, backend: Backend, adapter_factory, **over):
    cfg = adapter_config(tmp_path / "adapter", backend.inst.web, backend.token,
                         prepSockListenPath=str(slurm.hook_socket), prepSockConnectPath=str(slurm.hook_socket),
                         **over)
    write_last_run(str(tmp_path / "adapter" / "lastrun"), time.time() - 2)  # this test's jobs only
    a = adapter_factory(cfg, slurm.env)
    a.start()
    return a


def wait_running(slurm, job_id: int, timeout: float = 60) -> None:
    wait_until(lambda: slurm.job_states(job_id).get(job_id) == "RUNNING", timeout, f"job {job_id} to run")


def test_every_kind_of_job_reaches_the_backend(slurm, tmp_path, adapter_factory):
    backend = Backend(tmp_path / "cc")
    try:
        a = start_adapter(slurm, tmp_path, backend, adapter_factory, slurmPollInterval=1)
        diag = lambda: a.output() + slurm.logs(1500)  # noqa: E731
        mn_script = SLEEP.format(20)
        ids = {
            "timeout": slurm.sbatch(SLEEP.format(300), "-J", "timeout", "--time=1"),
            "mngpu": slurm.sbatch(mn_script, "-J", "mngpu", "-N", "2", "-n", "5", "--gres=gpu:1", "-A", "proj2"),
            "simple": slurm.sbatch("#!/bin/sh\n#SBATCH -J simple\necho hi\nsleep 2\n", "-n", "3"),
            "array": slurm.sbatch(SLEEP.format(3), "-J", "arr", "--array=0-2"),
            "failing": slurm.sbatch("#!/bin/sh\nsleep 1\nexit 3\n", "-J", "failing"),
            "cancel_running": slurm.sbatch(SLEEP.format(300), "-J", "cancelrun"),
            "cancel_pending": slurm.sbatch(SLEEP.format(300), "-J", "cancelpend", "--hold"),
            "exclusive": slurm.sbatch(SLEEP.format(10), "-J", "excl", "--exclusive", "--time=5"),
        }
        wait_running(slurm, ids["mngpu"])
        slurm_cpus = cpu_ids(slurm, ids["mngpu"])
        # while it runs, the multi-node GPU job is in the backend as running, with Slurm's CPUs and the GPUs
        job = wait_until(lambda: backend.jobs().get(ids["mngpu"]), 20, "the running multi-node job", diag)
        assert job["jobState"] == "running", job
        assert [r["hostname"] for r in job["resources"]] == sorted(slurm_cpus)
        for r in job["resources"]:
            assert r["hwthreads"] == slurm_cpus[r["hostname"]], (job, slurm_cpus)
            assert r["accelerators"] == [PCI[0]]  # one GPU per node, index 0
        assert job["numNodes"] == 2 and job["numHwthreads"] == 6 and job["numAcc"] == 2
        assert job["project"] == "proj2" and job["user"] == "root" and job["partition"] == "main"
        assert job["metaData"]["jobScript"] == mn_script
        assert f"JobId={ids['mngpu']}" in job["metaData"]["slurmInfo"]

        wait_running(slurm, ids["cancel_running"])
        slurm.run("scancel", str(ids["cancel_running"]))
        slurm.run("scancel", str(ids["cancel_pending"]))
        def array_tasks() -> list[int]:  # a pending array is one record until its tasks get ids
            return sorted(int(x) for x in slurm.run("sacct", "-n", "-X", "-P", "-j", str(ids["array"]),
                                                    "-o", "JobIDRaw").stdout.split())

        tasks = wait_until(lambda: len(t := array_tasks()) == 3 and t, 120, "the array's 3 tasks")
        done = [v for k, v in ids.items() if k not in ("array", "cancel_pending")] + tasks
        final = slurm.wait_done(done, timeout=240)
        assert final[ids["timeout"]] == "TIMEOUT" and final[ids["failing"]] == "FAILED"
        assert final[ids["cancel_running"]] == "CANCELLED"
        expected = {ids["timeout"]: "timeout", ids["mngpu"]: "completed", ids["simple"]: "completed",
                    ids["failing"]: "failed", ids["cancel_running"]: "cancelled", ids["exclusive"]: "completed",
                    **{t: "completed" for t in tasks}}
        wait_until(states_are(backend, expected), 30, f"final states {expected}", diag)

        jobs = backend.jobs()
        assert ids["cancel_pending"] not in jobs  # never ran
        assert set(jobs) >= set(expected)
        sacct = {j: slurm.run("sacct", "-n", "-X", "-P", "-j", str(j), "-o", "JobIDRaw,Start,End").stdout
                 for j in expected}
        for j in expected:
            b = jobs[j]
            assert b["cluster"] == CLUSTER and b["subCluster"] == "main"
            assert b["duration"] >= 0 and b["startTime"] > 0
            line = next(x for x in sacct[j].splitlines() if x.startswith(f"{j}|"))
            _, start, end = line.split("|")
            t_start = int(time.mktime(time.strptime(start, "%Y-%m-%dT%H:%M:%S")))
            t_end = int(time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S")))
            assert b["startTime"] == t_start and b["duration"] == t_end - t_start, (b, sacct[j])
        assert {jobs[t]["arrayJobId"] for t in tasks} == {ids["array"]}
        assert jobs[ids["timeout"]]["walltime"] == 60
        assert jobs[ids["exclusive"]]["shared"] == "none" and jobs[ids["exclusive"]]["walltime"] == 300
        (ex,) = jobs[ids["exclusive"]]["resources"]
        assert ex["hwthreads"] == list(range(8)) and ex["accelerators"] == PCI
        assert jobs[ids["simple"]]["shared"] == "multi_user" and jobs[ids["simple"]]["numHwthreads"] == 4
        assert jobs[ids["simple"]]["metaData"]["jobName"] == "simple"
        assert "Traceback" not in a.output()
    finally:
        backend.inst.stop()


def test_no_job_lost_while_backend_or_adapter_is_down(slurm, tmp_path, adapter_factory):
    port = free_port()
    backend = Backend(tmp_path / "cc", port=port)
    try:
        a = start_adapter(slurm, tmp_path, backend, adapter_factory, slurmPollInterval=1)
        diag = lambda: a.output() + slurm.logs(1500)  # noqa: E731
        before = slurm.sbatch(SLEEP.format(15), "-J", "before")
        wait_until(lambda: backend.jobs().get(before, {}).get("jobState") == "running", 30, "job 'before'", diag)

        backend.inst.stop()  # cc-backend goes away
        during = slurm.sbatch(SLEEP.format(1), "-J", "during")
        failing = slurm.sbatch("#!/bin/sh\nexit 1\n", "-J", "duringfail")
        spanning = slurm.sbatch(SLEEP.format(25), "-J", "spanning")
        slurm.wait_done([before, during, failing], timeout=60)
        wait_running(slurm, spanning)
        time.sleep(2)  # a few failed polls
        assert "cc-backend unavailable" in a.output()

        backend.inst.start()  # back on the same address
        backend.token = backend.inst.token(roles=["api"])
        wait_until(states_are(backend, {before: "completed", during: "completed", failing: "failed",
                                        spanning: "running"}), 40, "jobs from the outage", diag)

        a.stop()  # now the adapter is down while jobs end and start
        after = slurm.sbatch(SLEEP.format(1), "-J", "after")
        slurm.wait_done([after, spanning], timeout=90)
        a2 = adapter_factory(a.config, slurm.env)
        a2.start()
        wait_until(states_are(backend, {after: "completed", spanning: "completed"}), 30,
                   "jobs from the adapter's downtime", lambda: a2.output() + slurm.logs(1500))
        jobs = backend.jobs()
        assert len([j for j in jobs.values() if j["jobId"] in (before, during, failing, spanning, after)]) == 5
    finally:
        backend.inst.stop()


def test_prolog_epilog_hook_reports_without_waiting_for_a_poll(slurm, tmp_path, adapter_factory):
    backend = Backend(tmp_path / "cc")
    try:
        # polls only at start: anything later must come through PrologSlurmctld/EpilogSlurmctld
        a = start_adapter(slurm, tmp_path, backend, adapter_factory, slurmPollInterval=3600)
        lastrun = tmp_path / "adapter" / "lastrun"
        t0 = read_last_run(str(lastrun))
        wait_until(lambda: read_last_run(str(lastrun)) > t0 and Path(slurm.hook_socket).exists(), 30,
                   "the adapter's first poll", a.output)
        jid = slurm.sbatch(SLEEP.format(15), "-J", "hooked", "-N", "2")
        started = time.monotonic()
        job = wait_until(lambda: backend.jobs().get(jid), 30, "the Prolog event to start the job", a.output)
        assert job["jobState"] == "running" and job["numNodes"] == 2
        print(f"hooked job in the backend {time.monotonic() - started:.1f}s after sbatch")
        slurm.wait_done([jid], timeout=60)
        wait_until(states_are(backend, {jid: "completed"}), 30, "the Epilog event to stop the job", a.output)
        out = a.output()
        assert f"hook: job {jid} ({CLUSTER}) prolog_slurmctld" in out
        assert f"hook: job {jid} ({CLUSTER}) epilog_slurmctld" in out
    finally:
        backend.inst.stop()
