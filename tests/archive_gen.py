"""Generated archived jobs (meta.json, data.json) for the archive tests and benchmarks."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cc import jobdata
from cc.archive import ARCHIVE_VERSION, job_meta
from cc.clusters import Cluster, parse_cluster
from cc.db import Job, Tag

STATES = ("completed", "failed", "cancelled", "timeout", "out_of_memory")
TAGS = [("app", "gromacs", "global"), ("app", "vasp", "global"), ("issue", "lowload", "admin"),
        ("note", "mine", "alice")]


def init_archive(root: Path, clusters: dict[str, dict[str, Any]]) -> dict[str, Cluster]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "version.txt").write_text(f"{ARCHIVE_VERSION}\n")
    out = {}
    for name, doc in clusters.items():
        (root / name).mkdir(exist_ok=True)
        (root / name / "cluster.json").write_bytes(orjson.dumps(doc))
        out[name] = parse_cluster(doc, name)
    return out


def make_job(cluster: Cluster, i: int, rng: random.Random, *, base_job_id: int = 1_000_000,
             base_start: int = 1_600_000_000) -> tuple[Job, dict[str, Any]]:
    """A finished job with statistics for every metric of its cluster; footprint and energy derived."""
    sc = cluster.subclusters[0]
    nodes = rng.choice((1, 1, 1, 2, 4, 8))
    resources: list[dict[str, Any]] = []
    for n in range(nodes):
        r: dict[str, Any] = {"hostname": f"n{(i * 7 + n) % 500:04d}"}
        if nodes == 1 and rng.random() < 0.3:
            r["hwthreads"] = sorted(rng.sample(sc.topology.node, 4))
        if sc.topology.accelerators and rng.random() < 0.2:
            r["accelerators"] = [str(sc.topology.accelerators[0]["id"])]
        resources.append(r)
    num_acc = sum(len(r.get("accelerators", ())) for r in resources)
    duration = rng.randint(60, 86400)
    job = Job(job_id=base_job_id + i, cluster=cluster.name, subcluster=sc.name, user=f"user{rng.randint(1, 50)}",
              project=f"proj{rng.randint(1, 10)}", start_time=base_start + i * 37, resources=resources,
              num_nodes=nodes, partition=rng.choice(("main", "long", "")), duration=duration,
              walltime=rng.choice((3600, 86400, 0)), state=rng.choice(STATES), submit_time=base_start + i * 37 - 60,
              meta_data={"jobName": f"job {i}", "jobScript": "#!/bin/sh\nsrun ./a.out\n"} if i % 3 else {},
              num_hwthreads=sum(len(r.get("hwthreads") or sc.topology.node) for r in resources),
              num_acc=num_acc, smt=rng.choice((1, 2)), shared="single_user" if resources[0].get("hwthreads") else "none",
              array_job_id=(base_job_id + i - 1) if i % 10 == 1 else 0)
    job.tags = [Tag(0, t, n, s) for t, n, s in rng.sample(TAGS, rng.choice((0, 0, 1, 2)))]
    stats = {}
    for name, m in sc.metrics.items():
        avg = round(rng.uniform(0, 100), 2)
        stats[name] = {"unit": jobdata.unit_of(m.unit), "avg": avg, "min": round(avg * 0.5, 2),
                       "max": round(avg * 1.5, 2)}
    job.footprint = jobdata.footprint(job, cluster, stats)
    job.energy, job.energy_footprint = jobdata.energy(job, cluster, stats)
    return job, stats


def write_meta(root: Path, meta: dict[str, Any]) -> Path:
    """Write meta.json where the archive layout puts it (fast: no fsync, for generating many jobs)."""
    jid = meta["jobId"]
    d = root / meta["cluster"] / str(jid // 1000) / f"{jid % 1000:03d}" / str(meta["startTime"])
    os.makedirs(d, exist_ok=True)
    (d / "meta.json").write_bytes(orjson.dumps(meta))
    return d / "meta.json"


def generate(root: Path, cluster: Cluster, count: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    metas = []
    for i in range(count):
        job, stats = make_job(cluster, i, rng)
        meta = job_meta(job, stats)
        write_meta(root, meta)
        metas.append(meta)
    return metas


def job_data(hosts: list[str], metrics: dict[str, str], points: int, timestep: int = 60,
             seed: int = 1, holes: bool = True) -> dict[str, Any]:
    """data.json of a job: node-scope series per host for ``metrics`` (name -> unit base)."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for metric, base in metrics.items():
        series = []
        for h in hosts:
            v = np.round(rng.uniform(0, 100, points), 3)
            data: list[Any] = v.tolist()
            if holes:
                data[0] = None
            valid = v[1:] if holes else v
            series.append({"hostname": h, "statistics": {"avg": round(float(valid.mean()), 2),
                                                         "min": float(valid.min()), "max": float(valid.max())},
                           "data": data})
        out[metric] = {"node": {"unit": {"base": base}, "timestep": timestep, "series": series}}
    return out
