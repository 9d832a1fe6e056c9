"""Session fixtures for the real-Slurm tests: one Slurm per test session, with the adapter's Prolog/Epilog hook.

slurmctld runs ``hook.sh`` as PrologSlurmctld and EpilogSlurmctld; it calls
``cc-adapter`` in hook mode, which connects to ``HOOK_SOCKET`` (the path every test's
adapter daemon listens on).  The cluster starts once (a few seconds) and is stopped by
PID at the end of the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cc.proc import stop_subprocess
from tests.helpers import ROOT
from tests.slurm.cluster import SlurmCluster, have_slurm


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    missing = have_slurm()
    if missing:
        pytest.skip(f"Slurm test servers not installed ({missing}); run 'make system-deps' as root")
    if os.geteuid() != 0:
        pytest.skip("the test Slurm runs slurmd, which needs root")
    root = tmp_path_factory.mktemp("slurm")
    hook_dir = root / "hook"
    hook_dir.mkdir()
    sock = hook_dir / "daemon.sock"
    (hook_dir / "config.json").write_text(json.dumps({"prepSockConnectPath": str(sock)}))
    hook = hook_dir / "hook.sh"
    hook.write_text(f"""#!/bin/sh
# PrologSlurmctld / EpilogSlurmctld: hand the job event to the cc-adapter daemon; never fail the job
PYTHONPATH={ROOT} "{sys.executable}" -m cc.adapter -config {hook_dir / "config.json"} >>{hook_dir / "hook.log"} 2>&1
exit 0
""")
    hook.chmod(0o755)
    cluster = SlurmCluster(root / "cluster", prolog=str(hook))
    t = time.monotonic()
    cluster.start()
    cluster.hook_socket = sock
    cluster.hook_log = hook_dir / "hook.log"
    print(f"\nSlurm up in {time.monotonic() - t:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()


class AdapterProcess:
    """``cc-adapter -daemon`` as a real subprocess, stopped by PID."""

    def __init__(self, config: Path, env: dict[str, str], log: Path):
        self.config, self.env, self.log = config, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in self.env.items() if k != "CC_SUPERVISOR_PID"}
        env["PYTHONPATH"] = str(ROOT)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "cc.adapter", "-daemon", "-config", str(self.config),
                                          "-debug", "4"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self, timeout: float = 20) -> None:
        stop_subprocess(self.proc, timeout)
        self.proc = None

    def output(self, tail: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""


@pytest.fixture
def adapter_factory(tmp_path):
    made: list[AdapterProcess] = []

    def factory(config: Path, env: dict[str, str]) -> AdapterProcess:
        a = AdapterProcess(config, env, tmp_path / f"adapter-{len(made)}.log")
        made.append(a)
        return a

    yield factory
    for a in made:
        a.stop()
