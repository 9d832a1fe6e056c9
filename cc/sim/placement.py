"""Where jobs run: partitions of a simulated cluster and the allocation of nodes, cores and GPUs.

Three kinds of requests, as Slurm sees them:

* ``nodes`` - whole nodes, exclusively (``--exclusive``); only nodes without any job qualify.
* ``cores`` - some cores of one node in the shared partition; several jobs share the node,
  each with its own hardware threads (reported to the backend as ``hwthreads``).
* ``gpus`` - GPUs of a GPU node plus the cores next to them (GPU ``i`` owns the i-th block of
  hardware threads); jobs with all GPUs of several nodes take those nodes whole.

Best fit (the node with the least room that still fits) keeps nodes free for big jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cc.sim.hardware import Hardware
from cc.sim.workload import JobSpec, Partition


@dataclass
class Allocation:
    cluster: str
    subcluster: str
    nodes: list[int]
    hwthreads: list[np.ndarray]     # per node, the allocated hardware threads
    accs: list[list[int]]           # per node, accelerator indices
    whole: bool                     # nodes taken exclusively
    resources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shared(self) -> str:
        return "none" if self.whole else "multi_user"

    @property
    def num_hwthreads(self) -> int:
        return int(sum(len(h) for h in self.hwthreads))

    @property
    def num_acc(self) -> int:
        return sum(len(a) for a in self.accs)


@dataclass
class _Node:
    host: str
    hw: Hardware
    partition: str
    free_hw: np.ndarray
    free_acc: np.ndarray
    jobs: int = 0
    exclusive: bool = False


class NodePool:
    """The nodes of one cluster and what is allocated on them."""

    def __init__(self, cluster: str, hardware: list[Hardware], shared_fraction: float = 0.25):
        self.cluster = cluster
        self.nodes: list[_Node] = []
        self.partitions: list[Partition] = []
        self.by_host: dict[str, int] = {}
        for hw in hardware:
            if not hw.hosts:
                continue
            if hw.accelerators:
                names = [hw.subcluster] * len(hw.hosts)
                self.partitions.append(Partition(hw.subcluster, "gpu", len(hw.hosts), hw.hwthreads,
                                                 len(hw.accelerators)))
            else:
                n_shared = max(1, int(len(hw.hosts) * shared_fraction)) if len(hw.hosts) >= 2 else 0
                n_work = len(hw.hosts) - n_shared
                work = "work" if len(hardware) == 1 else f"work-{hw.subcluster}"
                shared = "shared" if len(hardware) == 1 else f"shared-{hw.subcluster}"
                names = [work] * n_work + [shared] * n_shared
                self.partitions.append(Partition(work, "cpu", n_work, hw.hwthreads))
                if n_shared:
                    self.partitions.append(Partition(shared, "shared", n_shared, hw.hwthreads))
            for host, part in zip(hw.hosts, names, strict=True):
                self.by_host[host] = len(self.nodes)
                self.nodes.append(_Node(host, hw, part, np.ones(hw.hwthreads, dtype=bool),
                                        np.ones(len(hw.accelerators), dtype=bool)))

    def partition(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    def _in(self, part: str) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.partition == part]

    def allocate(self, spec: JobSpec) -> Allocation | None:
        """Resources for ``spec`` now, or None if they are not free."""
        cands = self._in(spec.partition)
        if spec.kind == "nodes" or (spec.kind == "gpus" and spec.nodes > 1):
            free = [i for i in cands if self.nodes[i].jobs == 0]
            if len(free) < spec.nodes:
                return None
            chosen = free[:spec.nodes]
            hw = [np.arange(self.nodes[i].hw.hwthreads) for i in chosen]
            accs = [list(range(len(self.nodes[i].hw.accelerators))) if spec.kind == "gpus" else [] for i in chosen]
            return self._take(chosen, hw, accs, True)
        if spec.kind == "cores":
            fits = [(int(self.nodes[i].free_hw.sum()), i) for i in cands
                    if not self.nodes[i].exclusive and self.nodes[i].free_hw.sum() >= spec.units]
            if not fits:
                return None
            _, i = min(fits)
            hw = np.flatnonzero(self.nodes[i].free_hw)[:spec.units]
            return self._take([i], [hw], [[]], False)
        if spec.kind == "gpus":
            fits = []
            for i in cands:
                node = self.nodes[i]
                if node.exclusive:
                    continue
                ok = [a for a in np.flatnonzero(node.free_acc)
                      if node.free_hw[node.hw.acc_hwthreads[a]].all()]
                if len(ok) >= spec.units:
                    fits.append((len(ok), i, ok[:spec.units]))
            if not fits:
                return None
            _, i, accs = min(fits)
            node = self.nodes[i]
            hw = np.array(sorted(t for a in accs for t in node.hw.acc_hwthreads[a]), dtype=np.int64)
            whole = len(accs) == len(node.hw.accelerators) and node.jobs == 0
            return self._take([i], [hw], [[int(a) for a in accs]], whole)
        raise ValueError(f"unknown request kind {spec.kind!r}")

    def _take(self, nodes: list[int], hw: list[np.ndarray], accs: list[list[int]], whole: bool) -> Allocation:
        first = self.nodes[nodes[0]]
        alloc = Allocation(self.cluster, first.hw.subcluster, nodes, hw, accs, whole)
        for i, h, a in zip(nodes, hw, accs, strict=True):
            node = self.nodes[i]
            if not node.free_hw[h].all() or (a and not node.free_acc[a].all()) or node.exclusive \
                    or (whole and node.jobs):
                raise AssertionError(f"{node.host}: allocating resources that are in use")  # a bug, never data
            node.free_hw[h] = False
            if a:
                node.free_acc[a] = False
            node.jobs += 1
            node.exclusive = whole
            r: dict[str, Any] = {"hostname": node.host}
            if not whole:
                r["hwthreads"] = [int(x) for x in h]
            if a:
                r["accelerators"] = [node.hw.accelerators[k] for k in a]
            alloc.resources.append(r)
        return alloc

    def release(self, alloc: Allocation) -> None:
        for i, h, a in zip(alloc.nodes, alloc.hwthreads, alloc.accs, strict=True):
            node = self.nodes[i]
            node.free_hw[h] = True
            if a:
                node.free_acc[a] = True
            node.jobs -= 1
            node.exclusive = False if node.jobs == 0 else node.exclusive

    def restore(self, resources: list[dict[str, Any]], whole: bool) -> Allocation:
        """Book the resources of a job that runs already (after a restart of the simulator)."""
        nodes, hw, accs = [], [], []
        for r in resources:
            i = self.by_host[r["hostname"]]
            node = self.nodes[i]
            nodes.append(i)
            hw.append(np.asarray(r.get("hwthreads") or range(node.hw.hwthreads), dtype=np.int64))
            accs.append([node.hw.accelerators.index(a) for a in r.get("accelerators") or ()])
        return self._take(nodes, hw, accs, whole)

    def load(self) -> float:
        """Fraction of hardware threads (or GPUs on GPU nodes) in use."""
        used = total = 0.0
        for n in self.nodes:
            if len(n.free_acc):
                used += (~n.free_acc).sum() / len(n.free_acc)
            else:
                used += (~n.free_hw).sum() / len(n.free_hw)
            total += 1
        return used / total if total else 0.0

    def node_states(self) -> list[dict[str, Any]]:
        """Slurm-like node states for ``POST /api/nodestate/``."""
        out = []
        for n in self.nodes:
            cpus = int((~n.free_hw).sum())
            gpus = int((~n.free_acc).sum())
            state = "idle" if not n.jobs else ("allocated" if n.exclusive or cpus == len(n.free_hw) else "mixed")
            # MB, as Slurm reports it: the whole node for an exclusive job, else memory per CPU
            share = 1.0 if n.exclusive else cpus / len(n.free_hw)
            out.append({"hostname": n.host, "states": [state], "cpusAllocated": cpus,
                        "memoryAllocated": int(n.hw.mem_gb * 1024 * share) if n.jobs else 0,
                        "gpusAllocated": gpus, "jobsRunning": n.jobs})
        return out
