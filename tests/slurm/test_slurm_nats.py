"""cc-adapter publishing on NATS (``ccRestSubmitJobs: false``) against the real Slurm, into the real supervisor.

Jobs reach the backend only as NATS events on ``main.api-subjects`` (start with Slurm's
CPUs and GPUs, stop with the final state), and Slurm's node states arrive on the node-state
subject.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from cc.adapter.sync import write_last_run
from tests.nats_server import NatsServer
from tests.slurm.cluster import CLUSTER
from tests.slurm.helpers import PCI, adapter_config, slurm_cluster_json
from tests.slurm.test_slurm_adapter import SLEEP, Backend, wait_running, wait_until

pytestmark = pytest.mark.slurm


class NatsBackend(Backend):
    def __init__(self, root, nats_url: str):
        from tests.helpers import Installation

        self.inst = Installation(root, clusters={CLUSTER: slurm_cluster_json()}, extra_config={
            "nats": {"address": nats_url},
            "main": {"api-subjects": {"subject-job-event": "cc.job.event", "subject-node-state": "cc.node.state"}}})
        self.inst.start()
        self.token = self.inst.token(roles=["api"])

    def node_states(self) -> dict[str, str]:
        conn = sqlite3.connect(self.inst.cfg.db_path)
        try:
            return dict(conn.execute("SELECT n.hostname, s.node_state FROM node_state s JOIN node n ON n.id = "
                                     "s.node_id WHERE n.cluster = ? ORDER BY s.time_stamp", (CLUSTER,)).fetchall())
        finally:
            conn.close()


def test_adapter_submits_jobs_and_node_states_over_nats(slurm, tmp_path, adapter_factory):
    with NatsServer(tmp_path / "nats") as srv:
        backend = NatsBackend(tmp_path / "cc", srv.url)
        try:
            cfg = adapter_config(tmp_path / "adapter", backend.inst.web, backend.token,
                                 prepSockListenPath=str(slurm.hook_socket), prepSockConnectPath=str(slurm.hook_socket),
                                 ccRestSubmitJobs=False, natsServer="127.0.0.1", natsPort=srv.port,
                                 natsSubject="cc.job.event", natsNodeStateSubject="cc.node.state")
            write_last_run(str(tmp_path / "adapter" / "lastrun"), time.time() - 2)
            a = adapter_factory(cfg, slurm.env)
            a.start()
            diag = lambda: a.output() + backend.inst.cli("logs", "web", "-n", "60").stdout  # noqa: E731
            gpu = slurm.sbatch(SLEEP.format(8), "-J", "natsgpu", "-N", "2", "-n", "3", "--gres=gpu:1")
            quick = slurm.sbatch("#!/bin/sh\nexit 2\n", "-J", "natsfail")
            wait_running(slurm, gpu)
            job = wait_until(lambda: backend.jobs().get(gpu), 30, "the GPU job over NATS", diag)
            assert job["jobState"] == "running" and job["numNodes"] == 2 and job["numAcc"] == 2
            assert all(r["accelerators"] == [PCI[0]] for r in job["resources"]), job
            final = slurm.wait_done([gpu, quick], timeout=120)
            assert final[quick] == "FAILED"
            wait_until(lambda: backend.jobs().get(gpu, {}).get("jobState") == "completed"
                       and backend.jobs().get(quick, {}).get("jobState") == "failed", 60, "both stopped", diag)
            log = backend.inst.cli("logs", "web", "-n", "400").stdout
            assert f"NATS cc.job.event: start_job of job {gpu} (cluster {CLUSTER}) done" in log
            assert f"NATS cc.job.event: stop_job of job {gpu} (cluster {CLUSTER}) done" in log
            # the adapter never submitted over REST
            assert "POST /api/jobs/start_job" not in a.output()
            states = wait_until(lambda: len(s := backend.node_states()) >= 4 and s, 30, "node states", diag)
            assert set(states) >= {"node01", "node02", "node03", "node04"}
            assert set(states.values()) <= {"idle", "allocated", "mixed", "down", "reserved", "unknown"}
            st = backend.inst.status()
            assert next(p for p in st["processes"] if p["name"] == "web")["nats"] == "connected"
        finally:
            backend.inst.stop()
