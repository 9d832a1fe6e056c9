"""Slurm job -> cc-backend ``start_job`` / ``stop_job`` payloads.

The payload carries the fields of cc-backend's job schema that a scheduler knows; fields
cc-backend declares ``omitempty`` (arrayJobId, walltime, numAcc, numHwthreads, hwthreads,
accelerators) are left out when zero, like cc-slurm-adapter does, so either backend
accepts them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cc.adapter.config import AdapterConfig
from cc.adapter.slurmjson import NodeTopology, SlurmJob

log = logging.getLogger("cc-adapter")

# Slurm states in which the job holds (or will hold) an allocation: not finished yet.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "POWER_UP_NODE", "UPDATE_DB",
})

# Slurm's final states -> cc-backend's JobState enum.
_FINAL_STATES = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    "OUT_OF_MEMORY": "out_of_memory",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "failed",  # as cc-slurm-adapter reports it
    "BOOT_FAIL": "boot_fail",
    "DEADLINE": "deadline",
    "REVOKED": "cancelled",
    "SPECIAL_EXIT": "failed",
}


def cc_state(slurm_state: str) -> str:
    """cc-backend's final job state for a Slurm state (unknown final states count as failed)."""
    s = (slurm_state or "").upper().split()[0] if slurm_state else ""
    if s in _FINAL_STATES:
        return _FINAL_STATES[s]
    if s in ACTIVE_STATES:
        return "running"
    log.warning("unknown Slurm job state %r, reporting it as 'failed'", slurm_state)
    return "failed"


def is_finished(job: SlurmJob) -> bool:
    """True when Slurm says the job is over (a final state and an end time)."""
    return bool(job.state) and job.state not in ACTIVE_STATES and job.end_time > 0


def never_ran(job: SlurmJob) -> bool:
    """Jobs without nodes or start (still pending, or cancelled while pending) are not reported."""
    if job.state == "PENDING":
        return True
    return not job.nodes or job.start_time <= 0


def ignored_by_hosts(job: SlurmJob, cfg: AdapterConfig) -> bool:
    """``ignoreHosts``: a job is dropped only when every one of its hosts matches."""
    if cfg.ignore_hosts is None or not job.nodes:
        return False
    return all(cfg.ignore_hosts.search(h) for h in job.nodes)


def shared_mode(job: SlurmJob) -> str:
    """none (exclusive), single_user (OverSubscribe=user) or multi_user, from slurmctld's view."""
    if job.exclusive:
        return "none"
    if job.shared in ("none", "exclusive"):
        return "none"
    if job.shared == "user":
        return "single_user"
    return "multi_user"


def resources(job: SlurmJob, cfg: AdapterConfig, topology: dict[str, NodeTopology]) -> list[dict[str, Any]]:
    """cc-backend resources: hostname, hwthreads (Slurm CPU ids) and accelerators (PCI addresses).

    hwthread ids follow Slurm's CPU numbering of ``scontrol show job -d`` (CPU_IDs):
    core ``c`` of socket ``s`` with ``T`` threads per core owns ids
    ``(s * cores_per_socket + c) * T + t``; with one thread per core that is the core
    index cc-slurm-adapter reports.  When slurmctld no longer knows the job only the
    hostnames (from accounting) are left.
    """
    if job.alloc is None:
        return [{"hostname": h} for h in job.nodes]
    out = []
    for a in job.alloc:
        topo = topology.get(a.hostname)
        r: dict[str, Any] = {"hostname": a.hostname}
        cps = a.cores_per_socket or (topo.cores_per_socket if topo else None)
        tpc = job.threads_per_core or (topo.threads_per_core if topo else None) or 1
        if cps and a.sockets_cores:
            hw = sorted({(s * cps + c) * tpc + t for s, c in a.sockets_cores for t in range(tpc)})
            r["hwthreads"] = hw
        elif a.sockets_cores:
            log.warning("job %d: topology of node %s unknown, reporting it without hwthreads", job.job_id,
                        a.hostname)
        if a.gpus:
            addrs = cfg.pci_addresses(a.hostname)
            if addrs is None:
                log.warning("job %d: node %s has GPUs %s but no 'gpuPciAddrs' entry matches it", job.job_id,
                            a.hostname, a.gpus)
            else:
                acc = []
                for i in a.gpus:
                    if i < len(addrs):
                        acc.append(addrs[i])
                    else:
                        log.error("job %d: GPU index %d on %s is beyond the %d PCI addresses configured for it",
                                  job.job_id, i, a.hostname, len(addrs))
                if acc:
                    r["accelerators"] = acc
        out.append(r)
    return out


@dataclass
class JobExtras:
    """Per-job text only scontrol can give (empty when slurmctld forgot the job)."""

    script: str = ""
    slurm_info: str = ""


def start_payload(job: SlurmJob, cfg: AdapterConfig, topology: dict[str, NodeTopology],
                  extras: JobExtras | None = None) -> dict[str, Any]:
    """The ``POST /api/jobs/start_job/`` body for a job."""
    extras = extras or JobExtras()
    meta: dict[str, str] = {"jobName": job.name}
    if job.submit_time:
        meta["submitTime"] = str(job.submit_time)
    script = extras.script or job.script
    if script:
        meta["jobScript"] = script
    if extras.slurm_info:
        meta["slurmInfo"] = extras.slurm_info
    res = resources(job, cfg, topology)
    p: dict[str, Any] = {
        "jobId": job.job_id,
        "user": job.user,
        "project": job.account,
        "cluster": job.cluster,
        "partition": job.partition,
        "numNodes": job.num_nodes or len(res),
        "shared": shared_mode(job),
        "startTime": job.start_time,
        "jobState": "running",
        "resources": res,
        "metaData": meta,
    }
    if job.submit_time:
        p["submitTime"] = job.submit_time
    if job.array_job_id:
        p["arrayJobId"] = job.array_job_id
    if job.num_hwthreads:
        p["numHwthreads"] = job.num_hwthreads
    if job.num_acc:
        p["numAcc"] = job.num_acc
    if job.time_limit_min:
        p["walltime"] = job.time_limit_min * 60
    return p


def stop_payload(job: SlurmJob) -> dict[str, Any]:
    """The ``POST /api/jobs/stop_job/`` body for a finished job."""
    stop = max(job.end_time, job.start_time)
    return {"jobId": job.job_id, "cluster": job.cluster, "jobState": cc_state(job.state),
            "startTime": job.start_time, "stopTime": stop}
