"""Shared pieces of the adapter tests: the cluster.json matching the test Slurm, adapter configs, replayed Slurm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cc.adapter.slurm import SlurmClient, SlurmError
from tests.helpers import small_cluster
from tests.slurm.cluster import CLUSTER, NODES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"
PCI = ["00000000:01:00.0", "00000000:02:00.0"]


def slurm_cluster_json(name: str = CLUSTER) -> dict[str, Any]:
    """cluster.json for the test Slurm: node01..node04, 2 sockets x 2 cores x 2 threads, 2 GPUs.

    The hwthread numbering (core k = hwthreads 2k, 2k+1) is Slurm's CPU numbering, which
    the adapter reports.
    """
    doc = small_cluster(name)
    doc["subClusters"][0]["nodes"] = f"node[01-0{len(NODES)}]"
    return doc


def adapter_config(root: Path, url: str, token: str, **overrides: Any) -> Path:
    """Write an adapter config whose paths all live under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = {
        "ccRestUrl": url,
        "ccRestJwt": token,
        "pidFilePath": str(root / "daemon.pid"),
        "prepSockListenPath": str(root / "daemon.sock"),
        "prepSockConnectPath": str(root / "daemon.sock"),
        "lastRunPath": str(root / "lastrun"),
        "slurmPollInterval": 1,
        "slurmQueryDelay": 1,
        "ccPollInterval": 3600,
        "gpuPciAddrs": {"^node0[1-4]$": PCI},
    }
    cfg.update(overrides)
    path = root / "config.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


class RecordedSlurm(SlurmClient):
    """Slurm replayed from recorded JSON (tests/fixtures/slurm/<gen>): answers the commands the adapter runs.

    ``squeue`` selects which recorded squeue file answers; ``fail`` makes every command
    fail like an unreachable slurmctld/slurmdbd; ``calls`` records the commands.
    """

    def __init__(self, gen: str = "22.05", squeue: str = "squeue_running.json", cluster: str = CLUSTER):
        super().__init__()
        self.dir = FIXTURES / gen
        self.squeue = squeue
        self.cluster = cluster
        self.fail = False
        self.calls: list[tuple[str, ...]] = []
        self.hidden: set[int] = set()  # job ids accounting does not know (yet)
        self.sacct_doc = self._read("sacct.json")
        extra = self.dir / "sacct_pending_cancelled.json"
        if extra.exists():
            self.sacct_doc["jobs"] += self._read(extra.name)["jobs"]

    def _read(self, name: str) -> dict:
        return json.loads((self.dir / name).read_text())

    def _sacct(self, ids: set[int] | None) -> str:
        doc = dict(self.sacct_doc)
        doc["jobs"] = [j for j in self.sacct_doc["jobs"] if j["job_id"] not in self.hidden
                       and (ids is None or j["job_id"] in ids)]
        return json.dumps(doc)

    async def run(self, *argv: str, check: bool = True) -> str:
        self.calls.append(argv)
        if self.fail:
            raise SlurmError(f"{' '.join(argv)} failed with exit code 1: Unable to contact slurm controller")
        cmd, args = argv[0], argv[1:]
        if cmd == "sacctmgr":
            return self.cluster + "\n"
        if cmd == "sacct":
            if "-j" in args:
                return self._sacct({int(x) for x in args[args.index("-j") + 1].split(",")})
            return self._sacct(None)
        if cmd == "squeue":
            return (self.dir / self.squeue).read_text()
        if cmd == "sinfo":
            return (self.dir / "sinfo.json").read_text()
        if cmd == "scontrol":
            if args[:2] == ("show", "nodes"):
                if (self.dir / "scontrol_nodes.json").exists():
                    return (self.dir / "scontrol_nodes.json").read_text()
                raise SlurmError("scontrol: unrecognized option '--json'")
            if args[:2] == ("write", "batch_script"):
                return (self.dir / "batch_script.txt").read_text()
            if args[:2] == ("show", "job"):
                return (self.dir / "scontrol_show_job.txt").read_text()
        raise SlurmError(f"RecordedSlurm: no answer for {argv}")
