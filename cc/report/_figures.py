"""A job's efficiency figures from its metric data: what ``cc-supervise report`` prints.

Input is ClusterCockpit ``JobData`` (any scopes; node values are taken from node-scope
series, else combined from finer ones with the metric's aggregation) and the cluster's
description, which supplies the peaks: hardware threads per node (CPU), ``mem_used``'s
``peak`` (node memory), ``acc_mem_used``'s ``peak`` (memory of one GPU), and the
subcluster's ``flopRateSimd`` and ``memoryBandwidth`` (the roofline).  Values are in base
units (bytes, F/s, B/s) so a script reading ``--json`` needs no unit table.
"""

from __future__ import annotations

import math
from typing import Any

from cc.clusters import Cluster, ClusterMetric, SubCluster
from cc.db import Job
from cc.jobdata import subcluster_of

PREFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
MIB = 1024 * 1024

# thresholds of the advice (percent)
CPU_LOW = 50.0
NODE_IDLE = 10.0
MEM_LOW = 25.0
MEM_HIGH = 90.0
GPU_LOW = 50.0
ROOF_LOW = 10.0


def scale(unit: dict[str, Any] | None) -> float:
    """Factor from a ClusterCockpit unit to its base unit (``{"base": "B", "prefix": "G"}`` -> 1e9)."""
    return PREFIX.get(str((unit or {}).get("prefix") or ""), 1.0)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _series_stat(s: dict[str, Any], stat: str) -> float | None:
    v = _finite((s.get("statistics") or {}).get(stat))
    if v is not None:
        return v
    vals = [v for v in (_finite(x) for x in s.get("data") or []) if v is not None]
    if not vals:
        return None
    return {"avg": sum(vals) / len(vals), "max": max(vals), "min": min(vals)}[stat]


def per_host(data: dict[str, Any], metric: str, stat: str, aggregation: str | None) -> dict[str, float]:
    """``{host: value}`` of one statistic (``avg`` or ``max``), in the metric's own unit.

    Node-scope series are used as they are; otherwise the series of the finest-but-one scope
    present are combined per host: summed for ``sum`` metrics (and those without
    aggregation, e.g. memory), averaged for ``avg`` ones.
    """
    per_scope = data.get(metric) or {}
    if not isinstance(per_scope, dict) or not per_scope:
        return {}
    scope = "node" if "node" in per_scope else next(iter(per_scope))
    groups: dict[str, list[float]] = {}
    for s in (per_scope[scope] or {}).get("series") or []:
        v = _series_stat(s, stat)
        if v is not None:
            groups.setdefault(str(s.get("hostname")), []).append(v)
    if scope == "node" or aggregation != "avg":
        return {h: sum(vs) for h, vs in groups.items()}
    return {h: sum(vs) / len(vs) for h, vs in groups.items()}


def _metric(sc: SubCluster, cluster: Cluster, name: str) -> ClusterMetric | None:
    return sc.metrics.get(name) or cluster.metrics.get(name)


def _peak(sc: SubCluster, key: str) -> float | None:
    raw = sc.raw.get(key)
    if not isinstance(raw, dict):
        return None
    v = _finite(raw.get("value"))
    return v * scale(raw.get("unit")) if v else None


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return round(100.0 * part / whole, 1)


def _hw_of(res: dict[str, Any], sc: SubCluster) -> int:
    return len(res.get("hwthreads") or []) or len(sc.topology.node) or 1


def _acc_of(res: dict[str, Any], sc: SubCluster) -> int:
    return len(res.get("accelerators") or []) or len(sc.topology.accelerators)


def figures(job: Job, cluster: Cluster, data: dict[str, Any], *, now: float | None = None,
            emission_constant: float | None = None) -> dict[str, Any]:
    """Per-node and overall figures, a roofline position, energy and CO2, and advice (see module doc)."""
    sc = subcluster_of(job, cluster)
    hosts = [str(r.get("hostname")) for r in job.resources]
    res_of = {str(r.get("hostname")): r for r in job.resources}
    duration = job.duration
    if job.state == "running" and now is not None:
        duration = max(0, int(now) - job.start_time)

    def vals(name: str, stat: str) -> tuple[dict[str, float], float]:
        m = _metric(sc, cluster, name)
        if m is None:
            return {}, 1.0
        return per_host(data, name, stat, m.aggregation), scale(m.unit)

    load, _ = vals("cpu_load", "avg")
    user, _ = vals("cpu_user", "avg")
    mem, mem_scale = vals("mem_used", "max")
    gpu, _ = vals("acc_utilization", "avg")
    gmem, gmem_scale = vals("acc_mem_used", "max")
    flops, flops_scale = vals("flops_any", "avg")
    bw, bw_scale = vals("mem_bw", "avg")

    node_threads = len(sc.topology.node) or 1
    mem_metric, gmem_metric = _metric(sc, cluster, "mem_used"), _metric(sc, cluster, "acc_mem_used")
    node_mem = (_finite(mem_metric.raw.get("peak")) or 0) * mem_scale if mem_metric else 0
    gpu_mem = (_finite(gmem_metric.raw.get("peak")) or 0) * gmem_scale if gmem_metric else 0
    peak_flops, peak_bw = _peak(sc, "flopRateSimd"), _peak(sc, "memoryBandwidth")
    requested = job.requested_memory * MIB if job.requested_memory else 0  # Slurm's MB

    nodes: list[dict[str, Any]] = []
    for h in hosts:
        res = res_of[h]
        hw, acc = _hw_of(res, sc), _acc_of(res, sc)
        share = min(1.0, hw / node_threads)
        cpu = _pct(load.get(h), hw) if h in load else user.get(h)
        alloc = requested / max(1, len(hosts)) if requested else node_mem * share
        used = mem[h] * mem_scale if h in mem else None
        node: dict[str, Any] = {
            "hostname": h, "hwthreads": hw, "accelerators": acc,
            "cpu_util_pct": None if cpu is None else round(cpu, 1),
            "mem_used_bytes": used, "mem_allocated_bytes": alloc or None, "mem_pct": _pct(used, alloc),
            "flops": flops[h] * flops_scale if h in flops else None,
            "flops_peak": peak_flops * share if peak_flops else None,
            "mem_bw": bw[h] * bw_scale if h in bw else None,
            "mem_bw_peak": peak_bw * share if peak_bw else None,
        }
        if acc or h in gpu:
            gused = gmem[h] * gmem_scale if h in gmem else None
            node.update(gpu_util_pct=None if h not in gpu else round(gpu[h], 1), gpu_mem_used_bytes=gused,
                        gpu_mem_total_bytes=gpu_mem * acc or None, gpu_mem_pct=_pct(gused, gpu_mem * acc))
        nodes.append(node)

    overall = _overall(nodes, load, user)
    overall["roofline"] = roofline(overall["flops"]["value"], overall["mem_bw"]["value"],
                                   overall["flops"]["peak"], overall["mem_bw"]["peak"])
    overall["energy"] = _energy(job, sc, cluster, data, duration, emission_constant)
    return {
        "job": {"id": job.id, "jobId": job.job_id, "cluster": job.cluster, "subCluster": sc.name, "user": job.user,
                "project": job.project, "state": job.state, "startTime": job.start_time, "duration": duration,
                "numNodes": job.num_nodes, "numHwthreads": job.num_hwthreads or sum(n["hwthreads"] for n in nodes),
                "numAcc": job.num_acc},
        "nodes": nodes,
        "overall": overall,
        "advice": advice(nodes, overall),
    }


def _sum(nodes: list[dict[str, Any]], key: str) -> float | None:
    vals = [n[key] for n in nodes if n.get(key) is not None]
    return sum(vals) if vals else None


def _overall(nodes: list[dict[str, Any]], load: dict[str, float], user: dict[str, float]) -> dict[str, Any]:
    loaded = [n for n in nodes if n["hostname"] in load]
    if loaded:
        cpu = _pct(sum(load[n["hostname"]] for n in loaded), sum(n["hwthreads"] for n in loaded))
    else:
        pcts = [user[n["hostname"]] for n in nodes if n["hostname"] in user]
        cpu = round(sum(pcts) / len(pcts), 1) if pcts else None
    used, alloc = _sum(nodes, "mem_used_bytes"), _sum(nodes, "mem_allocated_bytes")
    out: dict[str, Any] = {
        "cpu": {"util_pct": cpu},
        "memory": {"used_bytes": used, "allocated_bytes": alloc, "pct": _pct(used, alloc)},
        "flops": {"value": _sum(nodes, "flops"), "peak": _sum(nodes, "flops_peak")},
        "mem_bw": {"value": _sum(nodes, "mem_bw"), "peak": _sum(nodes, "mem_bw_peak")},
        "gpu": None,
    }
    for key in ("flops", "mem_bw"):
        out[key]["pct"] = _pct(out[key]["value"], out[key]["peak"])
    gnodes = [n for n in nodes if "gpu_util_pct" in n]
    if gnodes:
        utils = [(n["gpu_util_pct"], n["accelerators"] or 1) for n in gnodes if n["gpu_util_pct"] is not None]
        gused, gtotal = _sum(gnodes, "gpu_mem_used_bytes"), _sum(gnodes, "gpu_mem_total_bytes")
        out["gpu"] = {"count": sum(n["accelerators"] for n in gnodes),
                      "util_pct": round(sum(u * w for u, w in utils) / sum(w for _, w in utils), 1) if utils else None,
                      "mem_used_bytes": gused, "mem_total_bytes": gtotal, "mem_pct": _pct(gused, gtotal)}
    return out


def roofline(flops: float | None, bw: float | None, peak_flops: float | None,
             peak_bw: float | None) -> dict[str, Any] | None:
    """Where the job sits on its subcluster's roofline, as numbers and in words."""
    if not flops or not bw or not peak_flops or not peak_bw:
        return None
    intensity, ridge = flops / bw, peak_flops / peak_bw
    roof = min(peak_flops, intensity * peak_bw)
    bound = "memory" if intensity < ridge else "compute"
    pct = round(100.0 * flops / roof, 1)
    words = (f"{bound}-bound: arithmetic intensity {intensity:.2f} F/B "
             f"({'below' if bound == 'memory' else 'above'} the ridge point at {ridge:.2f} F/B); "
             f"the job reaches {pct:g}% of the roof at that intensity")
    return {"intensity": intensity, "ridge": ridge, "bound": bound, "roof": roof, "pct_of_roof": pct, "text": words}


def _energy(job: Job, sc: SubCluster, cluster: Cluster, data: dict[str, Any], duration: int,
            emission_constant: float | None) -> dict[str, Any]:
    """kWh from the metrics marked ``energy: power`` (average node power x time), as cc-backend counts it."""
    per: dict[str, float] = {}
    for name, m in sc.metrics.items():
        if m.raw.get("energy") != "power":
            continue
        watts = sum(per_host(data, name, "avg", m.aggregation).values()) * scale(m.unit)
        per[name] = watts * duration / 3600.0 / 1000.0
    kwh = sum(per.values()) if per else (job.energy or None)
    co2 = kwh * emission_constant / 1000.0 if kwh is not None and emission_constant else None
    return {"kwh": None if kwh is None else round(kwh, 3), "per_metric_kwh": {k: round(v, 3) for k, v in per.items()},
            "emission_constant_g_per_kwh": emission_constant, "co2_kg": None if co2 is None else round(co2, 3)}


def advice(nodes: list[dict[str, Any]], overall: dict[str, Any]) -> list[str]:
    """Plain-language hints where a value is poor (the style of Princeton's jobstats)."""
    out: list[str] = []
    cpu = overall["cpu"]["util_pct"]
    threads = sum(n["hwthreads"] for n in nodes)
    if cpu is not None and cpu < CPU_LOW:
        used = max(1, round(threads * cpu / 100))
        out.append(f"CPU utilisation is {cpu:g}%: the job kept about {used} of its {threads} hardware threads busy. "
                   "Request fewer cores, or check that the program really runs in parallel (threads, MPI ranks).")
    idle = [n["hostname"] for n in nodes if n["cpu_util_pct"] is not None and n["cpu_util_pct"] < NODE_IDLE]
    if idle and len(idle) < len(nodes):
        out.append(f"{', '.join(idle)} {'was' if len(idle) == 1 else 'were'} nearly idle while other nodes worked: "
                   "the work is not spread over all nodes; request fewer nodes or fix the distribution.")
    mem = overall["memory"]
    if mem["pct"] is not None and mem["pct"] < MEM_LOW and mem["allocated_bytes"]:
        suggest = max(1, math.ceil(1.2 * mem["used_bytes"] / 1e9))
        out.append(f"The job used {mem['pct']:g}% of its memory ({mem['used_bytes'] / 1e9:.1f} of "
                   f"{mem['allocated_bytes'] / 1e9:.1f} GB at most). Requesting about {suggest} GB in total "
                   "(20% headroom) leaves the rest for other jobs.")
    if mem["pct"] is not None and mem["pct"] > MEM_HIGH:
        out.append(f"Memory use reached {mem['pct']:g}% of the allocation: close to the limit, the job risks "
                   "being killed out of memory; request more memory.")
    gpu = overall["gpu"]
    if gpu and gpu["util_pct"] is not None and gpu["util_pct"] < GPU_LOW:
        out.append(f"GPU utilisation is {gpu['util_pct']:g}%: the GPUs waited much of the time. Check that the "
                   "program keeps them fed (data loading, CPU work between kernels) or request fewer GPUs.")
    fl, bw = overall["flops"]["pct"], overall["mem_bw"]["pct"]
    if fl is not None and bw is not None and fl < ROOF_LOW and bw < ROOF_LOW:
        out.append(f"Floating-point rate ({fl:g}% of peak) and memory bandwidth ({bw:g}% of peak) are both low: "
                   "the job may be waiting on I/O or the network, or running serial code.")
    return out
