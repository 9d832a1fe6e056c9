"""The job as stored in SQLite and as ClusterCockpit's JSON (``schema.Job``) shows it."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

JOB_STATES = ("boot_fail", "cancelled", "completed", "deadline", "failed", "node_fail", "out_of_memory",
              "pending", "preempted", "running", "suspended", "timeout")
SHARED = ("none", "single_user", "multi_user")
ROLES = ("user", "manager", "support", "admin", "api")

MONITORING_DISABLED = 0
MONITORING_RUNNING_OR_ARCHIVING = 1
MONITORING_ARCHIVING_FAILED = 2
MONITORING_ARCHIVING_SUCCESSFUL = 3

JOB_COLUMNS = ("id", "job_id", "cluster", "subcluster", "submit_time", "start_time", "hpc_user", "project",
               "cluster_partition", "array_job_id", "duration", "walltime", "job_state", "meta_data", "resources",
               "num_nodes", "num_hwthreads", "num_acc", "smt", "shared", "monitoring_status", "energy",
               "energy_footprint", "footprint")
SELECT_JOB = "SELECT " + ", ".join("job." + c for c in JOB_COLUMNS) + " FROM job"


def _loads(raw: str | bytes | None, default: Any) -> Any:
    if raw is None or raw == "" or raw == b"":
        return default
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return default
    return default if value is None else value


@dataclass
class Tag:
    id: int
    type: str
    name: str
    scope: str = "global"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "name": self.name, "scope": self.scope}


@dataclass
class Job:
    """One batch job.  Field names are Python's; :meth:`to_json` speaks cc-backend's JSON."""

    job_id: int
    cluster: str
    user: str
    project: str
    start_time: int
    resources: list[dict[str, Any]]
    num_nodes: int
    subcluster: str = ""
    partition: str = ""
    array_job_id: int = 0
    submit_time: int = 0
    duration: int = 0
    walltime: int = 0
    state: str = "running"
    meta_data: dict[str, str] = field(default_factory=dict)
    num_hwthreads: int = 0
    num_acc: int = 0
    smt: int = 1
    shared: str = "none"
    monitoring_status: int = MONITORING_RUNNING_OR_ARCHIVING
    energy: float = 0.0
    energy_footprint: dict[str, float] | None = None
    footprint: dict[str, float] | None = None
    id: int | None = None
    tags: list[Tag] = field(default_factory=list)
    statistics: dict[str, Any] | None = None
    requested_memory: int = 0

    @classmethod
    def from_row(cls, row: sqlite3.Row | tuple) -> Job:
        r = dict(zip(JOB_COLUMNS, tuple(row), strict=True))
        return cls(
            id=r["id"], job_id=r["job_id"], cluster=r["cluster"], subcluster=r["subcluster"],
            submit_time=r["submit_time"] or 0, start_time=r["start_time"], user=r["hpc_user"], project=r["project"],
            partition=r["cluster_partition"] or "", array_job_id=r["array_job_id"] or 0, duration=r["duration"],
            walltime=r["walltime"], state=r["job_state"], meta_data=_loads(r["meta_data"], {}),
            resources=_loads(r["resources"], []), num_nodes=r["num_nodes"], num_hwthreads=r["num_hwthreads"] or 0,
            num_acc=r["num_acc"] or 0, smt=r["smt"], shared=r["shared"], monitoring_status=r["monitoring_status"],
            energy=r["energy"] or 0.0, energy_footprint=_loads(r["energy_footprint"], None),
            footprint=_loads(r["footprint"], None),
        )

    def row_values(self) -> tuple:
        """Values for JOB_COLUMNS without ``id``."""
        return (
            self.job_id, self.cluster, self.subcluster, self.submit_time, self.start_time, self.user, self.project,
            self.partition or None, self.array_job_id or None, self.duration, self.walltime, self.state,
            orjson.dumps(self.meta_data).decode() if self.meta_data else None,
            orjson.dumps(self.resources).decode(), self.num_nodes, self.num_hwthreads or None,
            self.num_acc or None, self.smt, self.shared, self.monitoring_status, self.energy,
            orjson.dumps(self.energy_footprint).decode() if self.energy_footprint is not None else None,
            orjson.dumps(self.footprint).decode() if self.footprint is not None else None,
        )

    @property
    def hosts(self) -> list[str]:
        return [r["hostname"] for r in self.resources]

    def current_duration(self, now: float | None = None) -> int:
        """Duration so far for a running job (the stored value only moves when it stops)."""
        if self.state == "running":
            return max(0, int((time.time() if now is None else now) - self.start_time))
        return self.duration

    @property
    def stop_time(self) -> int:
        return self.start_time + self.duration

    def to_json(self, *, with_meta: bool = True, now: float | None = None) -> dict[str, Any]:
        """cc-backend's ``schema.Job`` JSON (``omitempty`` fields left out when zero)."""
        d: dict[str, Any] = {
            "id": self.id,
            "jobId": self.job_id,
            "user": self.user,
            "project": self.project,
            "cluster": self.cluster,
            "subCluster": self.subcluster,
            "startTime": self.start_time,
            "duration": self.current_duration(now),
            "numNodes": self.num_nodes,
            "shared": self.shared,
            "jobState": self.state,
            "resources": self.resources,
            "energy": self.energy,
            "energyFootprint": self.energy_footprint,
            "footprint": self.footprint,
            "metaData": self.meta_data if with_meta else None,
            "statistics": self.statistics,
            "concurrentJobs": {"items": [], "count": 0},
        }
        optional = {
            "partition": self.partition,
            "arrayJobId": self.array_job_id,
            "walltime": self.walltime,
            "requestedMemory": self.requested_memory,
            "submitTime": self.submit_time,
            "smt": self.smt,
            "monitoringStatus": self.monitoring_status,
            "numAcc": self.num_acc,
            "numHwthreads": self.num_hwthreads,
        }
        d.update({k: v for k, v in optional.items() if v})
        if self.tags:
            d["tags"] = [t.to_json() for t in self.tags]
        if self.id is None:
            del d["id"]
        return d


def job_from_json(doc: dict[str, Any]) -> Job:
    """A Job from a (validated) start payload or archive ``meta.json``."""
    tags = [Tag(id=0, type=t.get("type", ""), name=t.get("name", ""), scope=t.get("scope") or "global")
            for t in doc.get("tags") or []]
    return Job(
        id=doc.get("id"),
        job_id=int(doc["jobId"]),
        cluster=doc["cluster"],
        subcluster=doc.get("subCluster") or "",
        user=doc["user"],
        project=doc.get("project") or "",
        partition=doc.get("partition") or "",
        array_job_id=int(doc.get("arrayJobId") or 0),
        submit_time=int(doc.get("submitTime") or 0),
        start_time=int(doc["startTime"]),
        duration=int(doc.get("duration") or 0),
        walltime=int(doc.get("walltime") or 0),
        state=doc.get("jobState") or "running",
        meta_data=dict(doc.get("metaData") or {}),
        resources=list(doc["resources"]),
        num_nodes=int(doc.get("numNodes") or len(doc["resources"])),
        num_hwthreads=int(doc.get("numHwthreads") or 0),
        num_acc=int(doc.get("numAcc") or 0),
        smt=int(doc.get("smt") or 1),
        shared=doc.get("shared") or "none",
        monitoring_status=int(MONITORING_RUNNING_OR_ARCHIVING if doc.get("monitoringStatus") is None
                              else doc["monitoringStatus"]),
        energy=float(doc.get("energy") or 0.0),
        energy_footprint=doc.get("energyFootprint"),
        footprint=doc.get("footprint"),
        tags=tags,
        statistics=doc.get("statistics"),
        requested_memory=int(doc.get("requestedMemory") or 0),
    )
