"""The live node simulator: every node of every simulated subcluster, one numpy step per timestep.

The scheduler tells it which job runs where (:meth:`NodeSim.assign` / :meth:`NodeSim.release`);
each :meth:`NodeSim.lines` call computes all metrics of all nodes at one timestamp and
returns them as ClusterCockpit line protocol, ready for the agent's sinks.  Per subcluster
the state is a few arrays: which job row owns each hardware thread and accelerator, a
parameter table with one row per running job (row 0 = no job), and the noise state.  A
step costs a handful of vector operations regardless of how many jobs run, so a few
hundred nodes cost milliseconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cc.clusters import Cluster
from cc.sim.hardware import Hardware, hardware_of
from cc.sim.profiles import (
    IDLE,
    PARAMS,
    cpu_metrics,
    gpu_inputs,
    gpu_metrics,
    idle_phases,
    metric_inputs,
    natural_of,
    node_metrics,
    phases,
    to_scope,
)

log = logging.getLogger("sim.nodes")


class LiveNoise:
    """Smooth noise for one step after another: an AR(1) process per quantity and element."""

    def __init__(self, rng: np.random.Generator, rho: float = 0.75, lag_alpha: float = 0.35):
        self.rng = rng
        self.rho = rho
        self.alpha = lag_alpha
        self.state: dict[str, np.ndarray] = {}
        self.lagged: dict[str, np.ndarray] = {}

    def __call__(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        e = self.rng.standard_normal(shape)
        z = self.state.get(key)
        z = e if z is None or z.shape != shape else self.rho * z + math.sqrt(1 - self.rho ** 2) * e
        self.state[key] = z
        return z

    def lag(self, key: str, target: np.ndarray) -> np.ndarray:
        """Follow ``target`` with inertia (temperatures)."""
        prev = self.lagged.get(key)
        cur = target if prev is None or prev.shape != target.shape else prev + self.alpha * (target - prev)
        self.lagged[key] = cur
        return cur


@dataclass
class _Plan:
    metric: str          # name in cluster.json
    model: str           # name in the model
    natural: str
    agg: str
    scope: str
    timestep: int
    prefixes: list[str]  # one line prefix per (node, scope id), node-major


@dataclass
class _Slot:
    row: int
    nodes: list[int]
    hw: list[np.ndarray]
    accs: list[list[int]]


@dataclass
class Group:
    """One subcluster's nodes and their state."""

    hw: Hardware
    plans: list[_Plan]
    noise: LiveNoise
    step: float
    hw_job: np.ndarray = field(init=False)
    hw_active: np.ndarray = field(init=False)
    acc_job: np.ndarray = field(init=False)
    P: dict[str, np.ndarray] = field(init=False)
    start: np.ndarray = field(init=False)
    dur: np.ndarray = field(init=False)
    slots: dict[str, _Slot] = field(default_factory=dict)
    free_rows: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        n, h, a = len(self.hw.hosts), self.hw.hwthreads, len(self.hw.accelerators)
        self.hw_job = np.zeros((n, h), dtype=np.int64)
        self.hw_active = np.zeros((n, h), dtype=bool)
        self.acc_job = np.zeros((n, a), dtype=np.int64)
        self._grow(16)
        self._pairs()

    def _grow(self, cap: int) -> None:
        old = getattr(self, "P", None)
        P = {p: np.full(cap, IDLE[p]) for p in PARAMS}
        start, dur = np.zeros(cap), np.ones(cap)
        if old is not None:
            k = len(old["busy"])
            for p in PARAMS:
                P[p][:k] = old[p]
            start[:k], dur[:k] = self.start, self.dur
            self.free_rows.extend(range(cap - 1, k - 1, -1))
        else:
            self.free_rows = list(range(cap - 1, 0, -1))
        self.P, self.start, self.dur = P, start, dur

    def _pairs(self) -> None:
        rows, nodes, share, multi = [], [], [], []
        for s in self.slots.values():
            for node, hws in zip(s.nodes, s.hw, strict=True):
                rows.append(s.row)
                nodes.append(node)
                share.append(len(hws) / self.hw.hwthreads)
                multi.append(1.0 if len(s.nodes) > 1 else 0.0)
        self.pair_row = np.array(rows, dtype=np.int64)
        self.pair_node = np.array(nodes, dtype=np.int64)
        self.pair_share = np.array(share)
        self.pair_multi = np.array(multi)

    def assign(self, key: str, placement: list[tuple[int, list[int] | None, list[int]]], start: float,
               duration: float, params: dict[str, float]) -> None:
        if not self.free_rows:
            self._grow(2 * len(self.start))
        row = self.free_rows.pop()
        for p in PARAMS:
            self.P[p][row] = params.get(p, IDLE[p])
        self.start[row], self.dur[row] = start, max(1.0, duration)
        slot = _Slot(row, [], [], [])
        active = params.get("active", 1.0)
        for k, (node, hws, accs) in enumerate(placement):
            threads = np.arange(self.hw.hwthreads) if hws is None else np.asarray(sorted(hws), dtype=np.int64)
            self.hw_job[node, threads] = row
            if active <= 0:  # misconfigured: only the first rank on the first node runs
                n_act = 1 if k == 0 else 0
            else:
                n_act = max(1, round(active * len(threads)))
            picks = threads[np.unique(np.linspace(0, len(threads) - 1, n_act).round().astype(np.int64))] \
                if n_act else threads[:0]
            self.hw_active[node, threads] = False
            self.hw_active[node, picks] = True
            if accs:
                self.acc_job[node, accs] = row
            slot.nodes.append(node)
            slot.hw.append(threads)
            slot.accs.append(list(accs))
        self.slots[key] = slot
        self._pairs()

    def release(self, key: str) -> bool:
        slot = self.slots.pop(key, None)
        if slot is None:
            return False
        for node, threads, accs in zip(slot.nodes, slot.hw, slot.accs, strict=True):
            mine = self.hw_job[node, threads] == slot.row
            self.hw_job[node, threads[mine]] = 0
            self.hw_active[node, threads[mine]] = False
            if accs:
                a = np.asarray(accs)
                self.acc_job[node, a[self.acc_job[node, a] == slot.row]] = 0
        for p in PARAMS:
            self.P[p][slot.row] = IDLE[p]
        self.free_rows.append(slot.row)
        self._pairs()
        return True

    def compute(self, t: float) -> dict[str, np.ndarray]:
        """All natural-scope metrics of all nodes at time ``t``."""
        ph = phases(t - self.start, self.dur, self.step, self.P)
        for k, v in idle_phases().items():
            ph[k][0] = v
        live = (t >= self.start) & (t < self.start + self.dur)  # before its start or after its end: idle
        live[0] = True
        idx = np.where(self.hw_active & live[self.hw_job], self.hw_job, 0)
        out = cpu_metrics(self.hw, metric_inputs(self.P, ph, idx), self.noise)
        n = len(self.hw.hosts)

        def per_node(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
            if not len(self.pair_row):
                return np.zeros(n)
            return np.bincount(self.pair_node, values[self.pair_row] * weight * live[self.pair_row], minlength=n)

        idle_io = IDLE["io_bps"] / 2
        N = {"mem": per_node(ph["mem"], self.pair_share),
             "io_read": per_node(ph["io_read"], self.pair_share) + idle_io,
             "io_write": per_node(ph["io_write"], self.pair_share) + idle_io,
             "mpi": per_node(ph["mpi"], self.pair_share * self.pair_multi)}
        out.update(node_metrics(self.hw, out["_busy"], N, self.noise))
        if self.hw.accelerators:
            acc = np.where(live[self.acc_job], self.acc_job, 0)
            out.update(gpu_metrics(self.hw, gpu_inputs(self.P, ph, acc), self.noise, self.noise.lag))
        return out


def _fmt(values: Iterable[float]) -> list[str]:
    return [f"{v:.6g}" for v in values]


class NodeSim:
    """All simulated nodes of the given clusters."""

    def __init__(self, clusters: dict[str, Cluster], *, seed: int = 0, hosts: dict[str, dict[str, list[str]]] | None = None):
        self.rng = np.random.default_rng(seed)
        self.groups: list[Group] = []
        self.where: dict[tuple[str, str], tuple[Group, int]] = {}  # (cluster, host) -> group, node index
        self.skipped: dict[str, list[str]] = {}
        for cname, cluster in clusters.items():
            for hw in hardware_of(cluster, (hosts or {}).get(cname)):
                sc = cluster.subcluster(hw.subcluster)
                plans = self._plans(hw, sc.metrics if sc else cluster.metrics, cname)
                step = min((p.timestep for p in plans), default=60)
                g = Group(hw, plans, LiveNoise(np.random.default_rng(self.rng.integers(1 << 62))), step)
                self.groups.append(g)
                for i, h in enumerate(hw.hosts):
                    self.where[(cname, h)] = (g, i)
        self.step = min((g.step for g in self.groups), default=60)

    def _plans(self, hw: Hardware, metrics: dict[str, Any], cluster: str) -> list[_Plan]:
        plans = []
        for name, m in metrics.items():
            nat = natural_of(name)
            if nat is None or (nat[1] == "accelerator" and not hw.accelerators):
                if nat is None:
                    self.skipped.setdefault(cluster, []).append(name)
                continue
            model, natural, agg = nat
            scope = m.scope
            probe = to_scope(hw, np.zeros((1, hw.scope_size(natural) or 1)), natural, agg, scope)
            if probe is None:
                log.warning("%s/%s: metric %s at scope %s cannot be simulated (natural scope %s); skipped",
                            cluster, hw.subcluster, name, scope, natural)
                continue
            ids = hw.scope_ids(scope)
            tail = f",type={scope}" + (",type-id={}" if scope != "node" else "")
            prefixes = []
            for host in hw.hosts:
                base = f"{name},cluster={cluster},hostname={host}"
                if scope == "node":
                    prefixes.append(base + tail)
                else:
                    prefixes.extend(base + tail.format(i) for i in ids)
            plans.append(_Plan(name, model, natural, agg, scope, m.timestep, prefixes))
        for c, names in self.skipped.items():
            if names:
                log.info("cluster %s: metrics without a simulation model (not sent): %s", c, ", ".join(sorted(set(names))))
        return plans

    @property
    def hosts(self) -> list[tuple[str, str]]:
        return list(self.where)

    def lines_per_step(self) -> int:
        return sum(len(p.prefixes) for g in self.groups for p in g.plans)

    def assign(self, key: str, cluster: str, resources: list[dict[str, Any]], start: float, duration: float,
               params: dict[str, float]) -> None:
        """Run a job's profile on its resources from ``start`` for ``duration`` seconds (as planned)."""
        by_group: dict[int, tuple[Group, list]] = {}
        for r in resources:
            g, node = self.where[(cluster, r["hostname"])]
            accs = [g.hw.accelerators.index(a) for a in r.get("accelerators") or () if a in g.hw.accelerators]
            by_group.setdefault(id(g), (g, []))[1].append((node, r.get("hwthreads"), accs))
        for g, placement in by_group.values():
            g.assign(key, placement, start, duration, params)

    def release(self, key: str) -> None:
        for g in self.groups:
            g.release(key)

    def values(self, t: float) -> dict[tuple[str, str], dict[str, np.ndarray]]:
        """Every configured metric at its configured scope: {(cluster, subcluster): {metric: [nodes, ids]}}."""
        out = {}
        for g in self.groups:
            raw = g.compute(t)
            out[(g.hw.cluster, g.hw.subcluster)] = {
                p.metric: to_scope(g.hw, raw[p.model], p.natural, p.agg, p.scope) for p in g.plans}
        return out

    def lines(self, t: int) -> list[str]:
        """Line protocol of every metric due at ``t`` (a metric is due when ``t`` is a multiple of its timestep)."""
        out: list[str] = []
        ts = str(int(t))
        for g in self.groups:
            due = [p for p in g.plans if int(t) % p.timestep == 0]
            if not due:
                continue
            raw = g.compute(t)
            for p in due:
                v = to_scope(g.hw, raw[p.model], p.natural, p.agg, p.scope)
                out.extend(f"{pre} value={val} {ts}" for pre, val in zip(p.prefixes, _fmt(v.ravel().tolist()),
                                                                       strict=True))
        return out
