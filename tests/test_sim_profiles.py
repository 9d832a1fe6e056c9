"""The simulated nodes: each job profile has the character it claims, values obey physics, lines parse."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from cc.archive import validate
from cc.clusters import parse_cluster
from cc.sim.hardware import demo_clusters, hardware_of, load_template
from cc.sim.nodes import NodeSim
from cc.sim.profiles import PROFILES, draw_params, phases

T0 = 1_700_000_000
RUN = 4 * 3600
GPU0, GPU1 = "00000000:0E:00.0", "00000000:13:00.0"
CPU_PROFILES = ("compute", "memory", "balanced", "io", "idle")


def clusters(cpu: int = 8, gpu: int = 2, timestep: int = 10):
    return {n: parse_cluster(d, n) for n, d in demo_clusters(cpu, gpu, timestep).items()}


def steady(sim: NodeSim, t_from: int, t_to: int, step: int = 60) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Every metric averaged over [t_from, t_to) (the noise averages out, the profile stays)."""
    acc: dict = {}
    for t in range(t_from, t_to, step):
        for key, metrics in sim.values(t).items():
            for m, v in metrics.items():
                acc.setdefault(key, {}).setdefault(m, []).append(v)
    return {k: {m: np.mean(vs, axis=0) for m, vs in ms.items()} for k, ms in acc.items()}


@pytest.fixture(scope="module")
def means():
    """One node per CPU profile (f0101.. in CPU_PROFILES order, the last node without a job), two GPU jobs."""
    sim = NodeSim(clusters(), seed=3)
    rng = np.random.default_rng(5)
    for i, prof in enumerate(CPU_PROFILES):
        p = draw_params(prof, rng)
        p["ckpt_n"] = 0  # steady state only
        sim.assign(prof, "fritz", [{"hostname": f"f{101 + i:04d}"}], T0, RUN, p)
    sim.assign("gpu", "alex", [{"hostname": "a0501", "hwthreads": list(range(8)), "accelerators": [GPU0]}],
               T0, RUN, draw_params("gpu", rng) | {"ckpt_n": 0})
    sim.assign("gpu_idle", "alex", [{"hostname": "a0501", "hwthreads": list(range(8, 16)), "accelerators": [GPU1]}],
               T0, RUN, draw_params("gpu_idle", rng))
    v = steady(sim, T0 + 1800, T0 + 3 * 3600)
    f = v[("fritz", "main")]
    node = {m: f[m].sum(axis=1) for m in ("flops_any", "flops_dp", "flops_sp", "mem_bw", "cpu_power", "mem_power")}
    node.update({m: f[m][:, 0] for m in ("cpu_load", "mem_used", "file_bw", "net_bw", "ic_read_bw")})
    node.update({m: f[m].mean(axis=1) for m in ("cpu_user", "ipc", "clock")})
    prof = {name: {m: float(vals[i]) for m, vals in node.items()} for i, name in enumerate(CPU_PROFILES)}
    prof["free"] = {m: float(vals[len(CPU_PROFILES)]) for m, vals in node.items()}
    return prof, f, v[("alex", "a100")]


def test_free_node_looks_idle(means):
    prof, _, _ = means
    free = prof["free"]
    assert free["cpu_load"] < 1.5
    assert free["cpu_user"] < 2
    assert free["flops_any"] < 1
    assert free["mem_bw"] < 3
    assert free["mem_used"] < 6
    assert free["clock"] < 1500  # cores asleep


def test_compute_bound(means):
    prof, _, _ = means
    c, m = prof["compute"], prof["memory"]
    assert c["cpu_load"] > 60 and c["cpu_user"] > 85
    assert c["flops_any"] > 1000  # GF/s of a 72-core node
    assert c["flops_any"] > 5 * m["flops_any"]
    assert c["mem_bw"] < 0.5 * m["mem_bw"]
    assert c["ipc"] > 1.5
    assert c["cpu_power"] > 0.85 * 500  # close to TDP


def test_memory_bound(means):
    prof, _, _ = means
    m = prof["memory"]
    assert m["mem_bw"] > 0.6 * 350  # most of the node's bandwidth
    assert m["mem_bw"] <= 350
    assert m["flops_any"] < 400
    assert m["ipc"] < 1.0
    assert m["mem_power"] > prof["compute"]["mem_power"]


def test_idle_and_io_profiles(means):
    prof, _, _ = means
    idle, io = prof["idle"], prof["io"]
    assert 0.5 < idle["cpu_load"] < 2.5  # one thread spins, the rest of the node waits
    assert idle["cpu_user"] < 5 and idle["flops_any"] < 20
    assert io["file_bw"] > 1e8 and io["file_bw"] > 20 * prof["compute"]["file_bw"]
    assert io["cpu_user"] < 70
    assert io["ic_read_bw"] > 1e8  # parallel file system traffic crosses the interconnect


def test_physical_relations(means):
    _, f, _ = means
    assert np.allclose(f["flops_any"], f["flops_sp"] + 2 * f["flops_dp"], rtol=1e-9)
    per_socket = f["core_power"] @ np.repeat(np.eye(2), 36, axis=0)  # core_power is per core; 36 per socket
    assert (f["cpu_power"] > per_socket).all()  # socket = uncore + its cores
    assert (f["mem_bw"] <= 175 + 1e-9).all()
    assert (f["cpu_user"] >= 0).all() and (f["cpu_user"] <= 100).all()


def test_gpu_profiles(means):
    _, _, a = means
    util, power = a["acc_utilization"][0], a["acc_power"][0]  # node a0501, 8 GPUs
    assert util[0] > 70 and power[0] > 0.5 * 400  # the busy job's GPU
    assert util[1] < 5 and power[1] < 80          # the job that never touches its GPU
    assert (util[2:] < 1).all() and (power[2:] < 80).all()
    assert a["acc_mem_used"][0, 0] > 0.5 * 40 > a["acc_mem_used"][0, 1]
    assert a["nv_temp"][0, 0] > a["nv_temp"][0, 2]


def test_phases_startup_checkpoint_tail_and_oom():
    P = {k: np.array([v]) for k, v in draw_params("compute", np.random.default_rng(1)).items()}
    P["ckpt_n"] = np.array([3.0])
    P["wobble"] = np.array([0.0])
    D = 10_000.0
    e = np.arange(0, D, 10.0)
    ph = phases(e[:, None], np.full((len(e), 1), D), 10.0, P)
    cpu, write = ph["cpu"][:, 0], ph["io_write"][:, 0]
    start, tail = e < 0.05 * D, e > 0.96 * D
    steady = ~start & ~tail & (write < P["ckpt_bps"][0])
    assert cpu[start].mean() < 0.8 < cpu[steady].mean()
    assert ph["io_read"][:, 0][start].mean() > 10 * ph["io_read"][:, 0][steady].mean()  # reading input
    bursts = write >= P["ckpt_bps"][0]
    assert bursts.any() and cpu[bursts].max() <= 0.25  # computation stalls while writing checkpoints
    assert cpu[tail].mean() < cpu[steady].mean()
    P["oom"] = np.array([1.0])
    mem = phases(e[:, None], np.full((len(e), 1), D), 10.0, P)["mem"][:, 0]
    assert mem[-1] > 0.95 and np.all(np.diff(mem) >= 0)  # memory grows until the node runs out


def test_node_idle_before_start_and_after_end():
    sim = NodeSim(clusters(2, 0), seed=1)
    sim.assign("j", "fritz", [{"hostname": "f0101"}], T0, 600,
               draw_params("compute", np.random.default_rng(1)) | {"ckpt_n": 0})
    load = [sim.values(t)[("fritz", "main")]["cpu_load"][0, 0] for t in (T0 - 60, T0 + 300, T0 + 700)]
    assert load[0] < 1.5 and load[1] > 40 and load[2] < 1.5
    sim.release("j")
    assert sim.values(T0 + 300)[("fritz", "main")]["cpu_load"][0, 0] < 1.5


def test_shared_node_threads():
    """Two jobs on one node: each on its own threads; threads of neither stay idle."""
    sim = NodeSim(clusters(2, 0), seed=2)
    rng = np.random.default_rng(2)
    sim.assign("a", "fritz", [{"hostname": "f0102", "hwthreads": list(range(0, 8))}], T0, RUN,
               draw_params("compute", rng) | {"ckpt_n": 0})
    sim.assign("b", "fritz", [{"hostname": "f0102", "hwthreads": list(range(36, 40))}], T0, RUN,
               draw_params("memory", rng) | {"ckpt_n": 0})
    user = steady(sim, T0 + 1200, T0 + 2400)[("fritz", "main")]["cpu_user"][1]
    assert user[0:8].mean() > 80 and user[36:40].mean() > 80
    assert user[8:36].mean() < 3 and user[40:].mean() < 3


def test_lines_are_line_protocol_for_every_configured_metric():
    cl = clusters(3, 2)
    sim = NodeSim(cl, seed=4)
    lines = sim.lines(T0)
    assert len(lines) == sim.lines_per_step()
    pat = re.compile(r"^([a-z_]+),cluster=(fritz|alex),hostname=([a-z0-9]+),type=(node|hwthread|core|socket|"
                     r"memoryDomain|accelerator)(?:,type-id=([0-9A-F:.]+))? value=([-+0-9.e]+) (\d+)$")
    seen = {}
    for line in lines:
        m = pat.match(line)
        assert m, line
        assert int(m.group(7)) == T0
        assert float(m.group(6)) >= 0
        seen.setdefault(m.group(2), set()).add(m.group(1))
    for name, c in cl.items():
        assert seen[name] == set(c.metrics)  # every metric of cluster.json is simulated
    assert sim.lines(T0 + 5) == []  # nothing due between timesteps


def test_cluster_templates_are_valid():
    for name in ("fritz", "alex"):
        validate("cluster", load_template(name))
    for doc in demo_clusters(5, 3, 30).values():
        validate("cluster", doc)
        assert {m["timestep"] for m in doc["metricConfig"]} == {30}
    hw = {h.subcluster: h for h in hardware_of(clusters(5, 3)["alex"])}
    assert len(hw["a100"].hosts) == 2 and len(hw["a40"].hosts) == 1
    assert len(hw["a100"].accelerators) == 8 and len(hw["a40"].accelerators) == 4
    assert hw["a40"].gpu_mem_gb == 48 and hw["a100"].gpu_tdp == 400  # from the subcluster overrides


def test_a_few_hundred_nodes_cost_little():
    sim = NodeSim(clusters(200, 40), seed=1)
    rng = np.random.default_rng(1)
    for i in range(150):
        prof = list(PROFILES)[i % 5]
        sim.assign(str(i), "fritz", [{"hostname": f"f{101 + i:04d}"}], T0, RUN, draw_params(prof, rng))
    sim.lines(T0)
    t = time.perf_counter()
    n = len(sim.lines(T0 + 10))
    took = time.perf_counter() - t
    assert n > 100_000
    assert took < 2.0, f"{n} lines took {took:.2f}s"  # ~0.05 s on one core; loose for shared machines
