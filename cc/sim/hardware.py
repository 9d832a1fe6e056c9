"""Simulated hardware: the demo cluster.json templates and what the simulator reads from a cluster.json.

The simulator stands in for the nodes a ``cluster.json`` describes, so every number it
needs comes from there: the topology (hardware threads, cores, sockets, memory domains,
accelerators and their PCI ids), the peak rates of the subcluster (``flopRateSimd``,
``memoryBandwidth``) and the ``peak`` of metrics that bound a physical quantity
(``mem_used`` = installed memory, ``cpu_power`` = socket TDP, ``acc_power`` = GPU TDP...).
A cluster.json written for real hardware therefore gets plausible simulated values too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cc.clusters import Cluster, SubCluster

TEMPLATES = Path(__file__).with_name("clusters")
CPU_CLUSTER, GPU_CLUSTER = "fritz", "alex"

# Fallbacks for accelerators whose metrics do not say (TDP W, idle W, memory GB, max SM clock MHz).
GPU_MODELS = {"A100": (400.0, 55.0, 40.0, 1410.0), "A40": (300.0, 30.0, 48.0, 1740.0),
              "H100": (700.0, 70.0, 80.0, 1980.0), "": (300.0, 40.0, 32.0, 1500.0)}


def load_template(name: str) -> dict[str, Any]:
    """A cluster.json template shipped with the simulator (``fritz`` or ``alex``)."""
    return orjson.loads((TEMPLATES / f"{name}.json").read_bytes())


def node_range(prefix: str, first: int, count: int) -> tuple[str, list[str]]:
    """A node-list expression and its host names: ``f[0101-0116]`` -> f0101 .. f0116."""
    hosts = [f"{prefix}{first + i:04d}" for i in range(count)]
    if count == 1:
        return hosts[0], hosts
    return f"{prefix}[{first:04d}-{first + count - 1:04d}]", hosts


def demo_clusters(cpu_nodes: int = 16, gpu_nodes: int = 4, timestep: int = 10) -> dict[str, dict[str, Any]]:
    """The two demo clusters sized as asked: a CPU cluster and a GPU cluster (half A100, half A40 nodes).

    A cluster with no nodes is left out; so is a GPU subcluster without nodes.
    """
    out: dict[str, dict[str, Any]] = {}
    if cpu_nodes > 0:
        doc = load_template(CPU_CLUSTER)
        doc["subClusters"][0]["nodes"] = node_range("f", 101, cpu_nodes)[0]
        out[CPU_CLUSTER] = doc
    if gpu_nodes > 0:
        doc = load_template(GPU_CLUSTER)
        n_a100 = math.ceil(gpu_nodes / 2)
        counts = {"a100": (501, n_a100), "a40": (101, gpu_nodes - n_a100)}
        subs = []
        for sc in doc["subClusters"]:
            first, n = counts[sc["name"]]
            if n > 0:
                sc["nodes"] = node_range("a", first, n)[0]
                subs.append(sc)
        doc["subClusters"] = subs
        names = {sc["name"] for sc in subs}
        for m in doc["metricConfig"]:  # overrides for a subcluster that is left out would be dangling
            kept = [o for o in m.pop("subClusters", []) if o["name"] in names]
            if kept:
                m["subClusters"] = kept
        out[GPU_CLUSTER] = doc
    for doc in out.values():
        for m in doc["metricConfig"]:
            m["timestep"] = timestep
    return out


def _peak(sc: SubCluster, metric: str, default: float) -> float:
    m = sc.metrics.get(metric)
    try:
        v = float(m.raw.get("peak")) if m is not None else default
    except (TypeError, ValueError):
        v = default
    return v if v > 0 else default


def _rate(sc: SubCluster, key: str, default: float) -> float:
    v = (sc.raw.get(key) or {}).get("value")
    return float(v) if isinstance(v, int | float) and v > 0 else default


def _one_hot(index: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((len(index), k))
    m[np.arange(len(index)), index] = 1.0
    return m


@dataclass
class Hardware:
    """One subcluster as the simulator sees it: hosts, index maps and physical limits."""

    cluster: str
    subcluster: str
    hosts: list[str]
    hwthreads: int
    socket_of: np.ndarray            # hwthread -> socket index
    core_of: np.ndarray              # hwthread -> core index
    domain_of: np.ndarray            # hwthread -> memory domain index
    sockets: int
    cores: int
    domains: int
    accelerators: list[str]          # PCI ids, in topology order
    acc_hwthreads: list[list[int]]   # the hardware threads next to each accelerator (job placement)
    simd_per_hw: float               # GF/s a hardware thread can reach with SIMD
    bw_per_socket: float             # GB/s
    mem_gb: float
    tdp_socket: float                # W
    clock_base: float                # MHz
    clock_max: float                 # MHz
    gpu_tdp: float = 300.0
    gpu_idle: float = 40.0
    gpu_mem_gb: float = 32.0
    gpu_sm_max: float = 1500.0
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # scope -> one-hot [H, K] matrix

    @property
    def cores_per_socket(self) -> int:
        return max(1, self.cores // self.sockets)

    def scope_size(self, scope: str) -> int:
        return {"node": 1, "socket": self.sockets, "memoryDomain": self.domains, "core": self.cores,
                "hwthread": self.hwthreads, "accelerator": len(self.accelerators)}.get(scope, 0)

    def scope_ids(self, scope: str) -> list[str]:
        """Type ids as collectors send them (accelerators by PCI id)."""
        if scope == "accelerator":
            return list(self.accelerators)
        return [str(i) for i in range(self.scope_size(scope))]


def _index(groups: list[list[int]], hwthreads: list[int], fallback: np.ndarray) -> tuple[np.ndarray, int]:
    pos = {t: i for i, t in enumerate(hwthreads)}
    if not groups:
        return fallback.copy(), int(fallback.max()) + 1
    idx = fallback.copy()
    for g, members in enumerate(groups):
        for t in members:
            if t in pos:
                idx[pos[t]] = g
    return idx, len(groups)


def hardware_of(cluster: Cluster, hosts: dict[str, list[str]] | None = None) -> list[Hardware]:
    """One :class:`Hardware` per subcluster, with the hosts of its ``nodes`` expression (or ``hosts``)."""
    out = []
    for sc in cluster.subclusters:
        topo = sc.topology
        hw = list(topo.node)
        n = len(hw)
        zeros = np.zeros(n, dtype=np.int64)
        socket_of, sockets = _index(topo.socket, hw, zeros)
        core_of, cores = _index(topo.core, hw, np.arange(n))
        domain_of, domains = _index(topo.memoryDomain, hw, socket_of)
        accs = topo.accelerator_ids()
        per = max(1, n // max(1, len(accs)))
        acc_hw = [list(range(i * per, min(n, (i + 1) * per))) for i in range(len(accs))]
        model = next((k for k in GPU_MODELS if k and topo.accelerators
                      and k in str(topo.accelerators[0].get("model", ""))), "")
        g_tdp, g_idle, g_mem, g_sm = GPU_MODELS[model]
        h_names = (hosts or {}).get(sc.name) or sc.nodes.hosts()
        clock = sc.metrics.get("clock")
        base = float(clock.raw.get("normal", 2400)) if clock else 2400.0
        h = Hardware(
            cluster=cluster.name, subcluster=sc.name, hosts=list(h_names), hwthreads=n,
            socket_of=socket_of, core_of=core_of, domain_of=domain_of, sockets=sockets, cores=cores,
            domains=domains, accelerators=accs, acc_hwthreads=acc_hw,
            simd_per_hw=_rate(sc, "flopRateSimd", 32.0 * n) / n,
            bw_per_socket=_rate(sc, "memoryBandwidth", 100.0 * sockets) / sockets,
            mem_gb=_peak(sc, "mem_used", 256.0), tdp_socket=_peak(sc, "cpu_power", 250.0 * sockets) / sockets,
            clock_base=base, clock_max=_peak(sc, "clock", base * 1.4),
            gpu_tdp=_peak(sc, "acc_power", g_tdp), gpu_idle=g_idle, gpu_mem_gb=_peak(sc, "acc_mem_used", g_mem),
            gpu_sm_max=_peak(sc, "nv_sm_clock", g_sm))
        h.groups = {"hwthread": np.eye(n), "core": _one_hot(core_of, cores), "socket": _one_hot(socket_of, sockets),
                    "memoryDomain": _one_hot(domain_of, domains), "node": np.ones((n, 1))}
        out.append(h)
    return out
