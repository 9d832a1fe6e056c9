"""Asking Slurm: sacct (accounting, slurmdbd) and squeue/scontrol/sinfo (controller, slurmctld).

Every call is a subprocess with a timeout; a failing command raises :class:`SlurmError`
so the caller can retry later instead of reporting half-known jobs.
"""

from __future__ import annotations

import logging
import subprocess
import time
from datetime import datetime
from typing import Any

import orjson
import trio

from cc.adapter.slurmjson import (
    NodeTopology,
    SlurmFormatError,
    SlurmJob,
    parse_node_states,
    parse_nodes,
    parse_sacct,
    parse_squeue,
)

log = logging.getLogger("cc-adapter")


class SlurmError(Exception):
    """A Slurm command failed or printed something unusable (message has the command and its stderr)."""


def slurm_time(ts: float) -> str:
    """Local wall-clock time in the form sacct's ``--starttime`` expects."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%dT%H:%M:%S")


def time_window(last_run: float, now: float, max_span: float, overlap: float = 1) -> tuple[str, str, bool]:
    """sacct's (start, end) strings for the jobs since ``last_run``; third value: span was clamped.

    The window reaches ``overlap`` seconds before the last sync, because slurmdbd
    records starts and ends a moment after they happen (a job that began and ended just
    before the last sync may only now be visible); across a backward clock change (end
    of summer time) the local start string could come after the end string, so it moves
    back by the offset difference.
    """
    begin = last_run - overlap
    clamped = False
    if now - begin > max_span:
        begin, clamped = now - max_span, True
    off_b = datetime.fromtimestamp(begin).astimezone().utcoffset()
    off_e = datetime.fromtimestamp(now).astimezone().utcoffset()
    if off_b is not None and off_e is not None and off_e < off_b:
        begin -= (off_b - off_e).total_seconds()
    return slurm_time(begin), slurm_time(now), clamped


class SlurmClient:
    """Runs Slurm's client commands; ``clusters`` (from sacctmgr) decides whether ``-M`` is needed."""

    def __init__(self, *, timeout: float = 60, max_concurrent: int = 10, env: dict[str, str] | None = None):
        self.timeout = timeout
        self.env = env
        self.limit = trio.CapacityLimiter(max_concurrent)
        self.clusters: list[str] = []
        self.topology: dict[str, NodeTopology] = {}
        self._topology_at = 0.0

    async def run(self, *argv: str, check: bool = True) -> str:
        async with self.limit:
            t0 = time.monotonic()
            try:
                with trio.fail_after(self.timeout):
                    r = await trio.run_process(list(argv), capture_stdout=True, capture_stderr=True, check=False,
                                               env=self.env, stdin=subprocess.DEVNULL)
            except trio.TooSlowError:
                raise SlurmError(f"{' '.join(argv)}: no answer within {self.timeout:.0f}s") from None
            except OSError as e:
                raise SlurmError(f"{argv[0]}: cannot run: {e.strerror}") from None
        log.debug("%s -> %d in %.2fs", " ".join(argv), r.returncode, time.monotonic() - t0)
        if check and r.returncode != 0:
            err = (r.stderr or r.stdout).decode(errors="replace").strip()[:500]
            raise SlurmError(f"{' '.join(argv)} failed with exit code {r.returncode}: {err}")
        return r.stdout.decode(errors="replace")

    async def run_json(self, *argv: str) -> dict:
        out = await self.run(*argv)
        try:
            doc = orjson.loads(out)
        except orjson.JSONDecodeError as e:
            raise SlurmError(f"{' '.join(argv)}: output is not JSON ({e}): {out[:200]!r}") from None
        if not isinstance(doc, dict):
            raise SlurmError(f"{' '.join(argv)}: expected a JSON object")
        return doc

    def _m(self, cluster: str) -> list[str]:
        return ["-M", cluster] if len(self.clusters) > 1 else []

    async def discover_clusters(self) -> list[str]:
        """The clusters slurmdbd knows (``sacctmgr``), as cc-slurm-adapter manages them all."""
        out = await self.run("sacctmgr", "-n", "-P", "list", "clusters", "format=Cluster")
        self.clusters = [line.strip() for line in out.splitlines() if line.strip()]
        if not self.clusters:
            raise SlurmError("sacctmgr lists no clusters: is slurmdbd set up (sacctmgr add cluster NAME)?")
        return self.clusters

    def _parse(self, fn, doc: dict, what: str) -> list[SlurmJob]:
        try:
            return fn(doc)
        except SlurmFormatError as e:
            raise SlurmError(f"{what}: {e}") from None

    async def jobs_between(self, cluster: str, start: str, end: str) -> list[SlurmJob]:
        """Jobs that were eligible, running or ended between two local times (sacct)."""
        doc = await self.run_json("sacct", *self._m(cluster), "--allusers", "--starttime", start, "--endtime", end,
                                  "--json")
        return [j for j in self._parse(parse_sacct, doc, "sacct") if not j.cluster or j.cluster == cluster]

    async def jobs_by_id(self, cluster: str, job_ids: list[int]) -> dict[int, SlurmJob]:
        """Accounting records of given jobs; array siblings sacct adds are dropped."""
        if not job_ids:
            return {}
        ids = ",".join(str(i) for i in sorted(set(job_ids)))
        doc = await self.run_json("sacct", *self._m(cluster), "--allusers", "-j", ids, "--json")
        wanted = set(job_ids)
        return {j.job_id: j for j in self._parse(parse_sacct, doc, "sacct") if j.job_id in wanted}

    async def controller_jobs(self, cluster: str, job_ids: list[int] | None = None) -> dict[int, SlurmJob]:
        """slurmctld's view (squeue): allocations, sharing, state; finished jobs only until MinJobAge.

        22.05 ignores ``-j`` in JSON mode (everything comes back), 24.x rejects unknown ids,
        so a failed ``-j`` query falls back to all jobs; results are filtered here.
        """
        base = ["squeue", *self._m(cluster), "--noheader", "--json"]
        if job_ids:
            ids = ",".join(str(i) for i in sorted(set(job_ids)))
            try:
                doc = await self.run_json(*base, "-j", ids)
            except SlurmError as e:
                log.debug("squeue -j failed (%s); asking for all jobs", e)
                doc = await self.run_json(*base, "--states=all")
        else:
            doc = await self.run_json(*base)
        jobs = self._parse(parse_squeue, doc, "squeue")
        wanted = set(job_ids) if job_ids else None
        return {j.job_id: j for j in jobs if (wanted is None or j.job_id in wanted)
                and (not j.cluster or j.cluster == cluster)}

    async def node_topology(self, cluster: str, need: set[str]) -> dict[str, NodeTopology]:
        """Sockets/cores/threads per node, cached; refreshed when a node is missing (at most every 60 s)."""
        if need <= self.topology.keys() or time.monotonic() - self._topology_at < 60:
            return self.topology
        self._topology_at = time.monotonic()
        try:
            doc = await self.run_json("scontrol", *self._m(cluster), "show", "nodes", "--json")
        except SlurmError:
            doc = await self.run_json("sinfo", *self._m(cluster), "--json")  # 22.05: scontrol has no --json
        try:
            self.topology.update(parse_nodes(doc))
        except SlurmFormatError as e:
            raise SlurmError(f"node topology: {e}") from None
        return self.topology

    async def node_states(self, cluster: str) -> list[dict[str, Any]]:
        """Every node's scheduler state and allocation (for the backend's node-state view)."""
        try:
            doc = await self.run_json("scontrol", *self._m(cluster), "show", "nodes", "--json")
        except SlurmError:
            doc = await self.run_json("sinfo", *self._m(cluster), "--json")  # 22.05: scontrol has no --json
        try:
            return parse_node_states(doc)
        except SlurmFormatError as e:
            raise SlurmError(f"node states: {e}") from None

    async def job_script(self, cluster: str, job_id: int) -> str:
        """The batch script (empty when slurmctld no longer has it, or for srun/salloc jobs)."""
        try:
            return await self.run("scontrol", *self._m(cluster), "write", "batch_script", str(job_id), "-")
        except SlurmError as e:
            log.debug("no job script for %d: %s", job_id, e)
            return ""

    async def slurm_info(self, cluster: str, job_id: int) -> str:
        """``scontrol show job`` text (first record only for array jobs); empty when unknown."""
        try:
            out = await self.run("scontrol", *self._m(cluster), "show", "job", str(job_id))
        except SlurmError as e:
            log.debug("no scontrol info for %d: %s", job_id, e)
            return ""
        gap = out.find("\n\n")
        return (out[:gap] if gap >= 0 else out).strip()

