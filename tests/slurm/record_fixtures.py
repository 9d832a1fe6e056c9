"""Record Slurm JSON fixtures from a real Slurm started here (tests/fixtures/slurm/22.05/).

``python -m tests.slurm.record_fixtures [DIR]`` starts a throw-away cluster
(tests/slurm/cluster.py), submits one job of every kind the adapter must handle, waits
for the timed-out one and saves what sacct, squeue (while jobs run and after), sinfo and scontrol print.  The
``steps`` arrays of sacct are dropped (the adapter does not read them; they are most of
the bytes).  ``manifest.json`` names the job ids by role.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.slurm.cluster import SlurmCluster

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="ccslurm-rec-"))
    c = SlurmCluster(root)
    c.start()
    try:
        version = c.run("sinfo", "--version").stdout.split()[-1]
        gen = ".".join(version.split(".")[:2])
        out = OUT / gen
        out.mkdir(parents=True, exist_ok=True)
        t0 = int(time.time()) - 5
        ids = {
            "timeout": c.sbatch("#!/bin/sh\nsleep 300\n", "-J", "timeout", "--time=1"),
            "simple": c.sbatch("#!/bin/sh\n#SBATCH -J simple\necho hello\nsleep 2\n", "-n", "3"),
            "multinode_gpu": c.sbatch("#!/bin/sh\nsleep 10\n", "-J", "mngpu", "-N", "2", "-n", "5",
                                      "--gres=gpu:1", "-A", "proj2"),
            "exclusive": c.sbatch("#!/bin/sh\nsleep 2\n", "-J", "excl", "--exclusive", "--time=5"),
            "array": c.sbatch("#!/bin/sh\nsleep 2\n", "-J", "arr", "--array=0-2"),
            "failing": c.sbatch("#!/bin/sh\nexit 3\n", "-J", "failing"),
            "cancel_running": c.sbatch("#!/bin/sh\nsleep 300\n", "-J", "cancelrun"),
            "cancel_pending": c.sbatch("#!/bin/sh\nsleep 300\n", "-J", "cancelpend", "--hold"),
            "running": c.sbatch("#!/bin/sh\nsleep 600\n", "-J", "running", "-n", "2"),
        }
        time.sleep(4)
        running = json.loads(c.run("squeue", "--json").stdout)
        c.run("scancel", str(ids["cancel_running"]))
        c.run("scancel", str(ids["cancel_pending"]))
        c.wait_done([v for k, v in ids.items() if k != "running"], timeout=200)
        ids["array_tasks"] = sorted(int(x) for x in c.run(
            "sacct", "-n", "-X", "-P", "-j", str(ids["array"]), "-o", "JobIDRaw").stdout.split())
        t1 = int(time.time())
        fmt = "%Y-%m-%dT%H:%M:%S"
        start, end = time.strftime(fmt, time.localtime(t0)), time.strftime(fmt, time.localtime(t1))
        sacct = json.loads(c.run("sacct", "--allusers", "--starttime", start, "--endtime", end, "--json").stdout)
        pend = json.loads(c.run("sacct", "-j", str(ids["cancel_pending"]), "--json").stdout)
        for doc in (sacct, pend):
            for j in doc["jobs"]:
                j.pop("steps", None)
        (out / "sacct.json").write_text(json.dumps(sacct, indent=1))
        (out / "sacct_pending_cancelled.json").write_text(json.dumps(pend, indent=1))
        (out / "squeue_running.json").write_text(json.dumps(running, indent=1))
        (out / "squeue.json").write_text(json.dumps(json.loads(c.run("squeue", "--json").stdout), indent=1))
        (out / "sinfo.json").write_text(json.dumps(json.loads(c.run("sinfo", "--json").stdout), indent=1))
        (out / "scontrol_show_job.txt").write_text(c.run("scontrol", "show", "job", str(ids["simple"])).stdout)
        (out / "scontrol_show_job_d.txt").write_text(
            c.run("scontrol", "show", "job", "-d", str(ids["multinode_gpu"])).stdout)
        (out / "batch_script.txt").write_text(
            c.run("scontrol", "write", "batch_script", str(ids["simple"]), "-").stdout)
        (out / "manifest.json").write_text(json.dumps({"slurm": version, "cluster": "ccslurm", "jobs": ids,
                                                       "window": [start, end]}, indent=1))
        c.run("scancel", str(ids["running"]))
        print(f"recorded Slurm {version} fixtures in {out}")
    finally:
        c.stop()
        if "--keep" not in sys.argv:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
