"""Job profiles and the metric model shared by the live simulator and the history generator.

A job is described by a handful of *parameters* drawn once from its profile
(``compute``, ``memory``, ``balanced``, ``io``, ``idle``, ``gpu``, ``gpu_idle``): how busy
its hardware threads are, what fraction of the SIMD peak and of the memory bandwidth it
reaches, its memory footprint, network and file traffic, GPU use.  Over the job's life
*phases* scale them: startup (reading input, memory filling up), steady state with a
slow wobble, checkpoint bursts (compute stalls, file writes), and a tail.  The *model*
turns parameters x phases x noise into ClusterCockpit metrics at their natural scope
(hardware thread, socket, node, accelerator) with physically consistent relations:
``flops_any = flops_sp + 2 * flops_dp``, socket power = uncore + its cores, memory
bandwidth saturates at the socket's peak, GPU power follows utilisation.

Everything is numpy on arrays whose last axis is the hardware thread (or accelerator),
with any leading axes: nodes for the live simulator, time x nodes for the history.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cc.sim.hardware import Hardware

PARAMS = ("busy", "active", "flops_eff", "dp_frac", "bw_eff", "ipc", "clock_lvl", "power_int", "mem_frac",
          "mpi_bps", "io_bps", "io_start_bps", "ckpt_bps", "ckpt_n", "wobble", "period", "phase0",
          "gpu_util", "gpu_mem", "gpu_int", "gpu_mem_util", "oom")

# (median, log-sigma) per parameter; missing parameters take IDLE's value.
PROFILES: dict[str, dict[str, tuple[float, float]]] = {
    "compute": {"busy": (0.97, 0.02), "flops_eff": (0.22, 0.3), "dp_frac": (0.85, 0.1), "bw_eff": (0.25, 0.3),
                "ipc": (2.3, 0.12), "clock_lvl": (-0.08, 0.0), "power_int": (1.0, 0.04), "mem_frac": (0.25, 0.5),
                "mpi_bps": (8e8, 0.6), "io_bps": (2e6, 0.5), "io_start_bps": (3e8, 0.5), "ckpt_bps": (1.5e9, 0.4),
                "ckpt_n": (4, 0.5)},
    "memory": {"busy": (0.95, 0.03), "flops_eff": (0.018, 0.3), "dp_frac": (0.95, 0.03), "bw_eff": (0.9, 0.06),
               "ipc": (0.55, 0.15), "clock_lvl": (0.7, 0.1), "power_int": (0.75, 0.08), "mem_frac": (0.45, 0.35),
               "mpi_bps": (1.5e9, 0.5), "io_bps": (3e6, 0.5), "io_start_bps": (6e8, 0.5), "ckpt_bps": (2e9, 0.4),
               "ckpt_n": (3, 0.5)},
    "balanced": {"busy": (0.92, 0.04), "flops_eff": (0.08, 0.3), "dp_frac": (0.8, 0.1), "bw_eff": (0.55, 0.2),
                 "ipc": (1.4, 0.15), "clock_lvl": (0.5, 0.2), "power_int": (0.85, 0.06), "mem_frac": (0.3, 0.4),
                 "mpi_bps": (2.5e9, 0.5), "io_bps": (5e6, 0.5), "io_start_bps": (4e8, 0.5), "ckpt_bps": (1.5e9, 0.4),
                 "ckpt_n": (4, 0.5)},
    "io": {"busy": (0.35, 0.3), "flops_eff": (0.004, 0.4), "dp_frac": (0.5, 0.3), "bw_eff": (0.12, 0.3),
           "ipc": (0.8, 0.2), "clock_lvl": (0.4, 0.3), "power_int": (0.5, 0.1), "mem_frac": (0.15, 0.4),
           "mpi_bps": (2e7, 0.5), "io_bps": (1.2e9, 0.5), "io_start_bps": (1e9, 0.4), "ckpt_bps": (1e9, 0.4),
           "ckpt_n": (0, 0.0)},
    # misconfigured / hung: one hardware thread spins, everything else idles
    "idle": {"busy": (1.0, 0.0), "active": (0.0, 0.0), "flops_eff": (0.03, 0.5), "dp_frac": (0.9, 0.05),
             "bw_eff": (0.3, 0.3), "ipc": (1.6, 0.2), "clock_lvl": (0.9, 0.05), "power_int": (0.9, 0.05),
             "mem_frac": (0.03, 0.5), "io_bps": (1e5, 0.5), "io_start_bps": (5e7, 0.5), "ckpt_n": (0, 0.0)},
    "gpu": {"busy": (0.45, 0.3), "active": (0.5, 0.2), "flops_eff": (0.005, 0.4), "dp_frac": (0.3, 0.3),
            "bw_eff": (0.1, 0.3), "ipc": (1.1, 0.15), "clock_lvl": (0.6, 0.2), "power_int": (0.6, 0.1),
            "mem_frac": (0.2, 0.4), "mpi_bps": (3e9, 0.4), "io_bps": (3e8, 0.7), "io_start_bps": (1e9, 0.4),
            "ckpt_bps": (1.5e9, 0.4), "ckpt_n": (5, 0.4), "gpu_util": (0.93, 0.04), "gpu_mem": (0.85, 0.1),
            "gpu_int": (0.8, 0.1), "gpu_mem_util": (0.45, 0.3)},
    # a GPU job that never touches its GPUs (runs on one CPU core per GPU instead)
    "gpu_idle": {"busy": (0.95, 0.03), "active": (0.125, 0.0), "flops_eff": (0.05, 0.3), "dp_frac": (0.5, 0.2),
                 "bw_eff": (0.2, 0.3), "ipc": (1.8, 0.15), "clock_lvl": (0.9, 0.05), "power_int": (0.9, 0.05),
                 "mem_frac": (0.05, 0.5), "io_bps": (1e6, 0.5), "io_start_bps": (2e8, 0.5), "ckpt_n": (0, 0.0),
                 "gpu_util": (0.01, 0.5), "gpu_mem": (0.02, 0.5), "gpu_int": (0.0, 0.0)},
}
GPU_PROFILES = ("gpu", "gpu_idle")
CPU_PROFILES = ("compute", "memory", "balanced", "io", "idle")

# What a node without a job does (row 0 of every parameter table).
IDLE: dict[str, float] = {"busy": 0.004, "active": 1.0, "flops_eff": 0.0002, "dp_frac": 0.5, "bw_eff": 0.002,
                          "ipc": 0.5, "clock_lvl": -1.0, "power_int": 0.0, "mem_frac": 0.0, "mpi_bps": 0.0,
                          "io_bps": 2e4, "io_start_bps": 2e4, "ckpt_bps": 0.0, "ckpt_n": 0.0, "wobble": 0.0,
                          "period": 1.0, "phase0": 0.0, "gpu_util": 0.0, "gpu_mem": 0.0, "gpu_int": 0.0,
                          "gpu_mem_util": 0.0, "oom": 0.0}
BOUNDS = {"busy": (0, 1), "active": (0, 1), "flops_eff": (0, 0.6), "dp_frac": (0, 1), "bw_eff": (0, 1),
          "mem_frac": (0, 0.9), "gpu_util": (0, 1), "gpu_mem": (0, 0.98), "gpu_int": (0, 1), "gpu_mem_util": (0, 1)}


def draw_params(profile: str, rng: np.random.Generator, scale: dict[str, float] | None = None,
                oom: bool = False) -> dict[str, float]:
    """One job's parameters: the profile's medians with log-normal spread (so no two jobs are equal)."""
    spec = PROFILES[profile]
    out = dict(IDLE)
    for name, (median, sigma) in spec.items():
        v = median * float(np.exp(sigma * rng.standard_normal())) if sigma else median
        out[name] = v
    out["ckpt_n"] = float(round(out["ckpt_n"]))
    out["wobble"] = float(rng.uniform(0.02, 0.08))
    out["period"] = float(rng.uniform(0.04, 0.2))
    out["phase0"] = float(rng.uniform(0, 1))
    for name, f in (scale or {}).items():
        out[name] *= f
    for name, (lo, hi) in BOUNDS.items():
        out[name] = float(min(hi, max(lo, out[name])))
    if oom:
        out["oom"] = 1.0
    return out


def param_table(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """Parameters of many jobs as one array per parameter (row 0 = no job)."""
    return {p: np.array([IDLE[p]] + [r[p] for r in rows]) for p in PARAMS}


# -- phases --------------------------------------------------------------------------------------

def phases(elapsed: np.ndarray, duration: np.ndarray, step: float, P: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scale factors of a job's activity at ``elapsed`` seconds into a run of ``duration`` seconds.

    startup (5 %, reading input, memory filling), checkpoints (``ckpt_n`` evenly spaced
    bursts of file writes with the computation stalled), tail (4 %, writing results),
    steady state with a slow sinusoidal wobble in between.
    """
    D = np.maximum(np.asarray(duration, dtype=float), 1.0)
    e = np.clip(np.asarray(elapsed, dtype=float), 0.0, D)
    startup = np.clip(0.05 * D, step, 900.0)
    tail = np.clip(0.04 * D, step, 600.0)
    ramp = np.clip(e / startup, 0.0, 1.0)
    in_start = e < startup
    in_tail = (e > D - tail) & ~in_start
    n = P["ckpt_n"]
    per = D / (n + 1.0)
    k = np.floor(e / per)
    clen = np.clip(0.02 * D, step, 300.0)
    in_ckpt = (n >= 1) & (k >= 1) & (k <= n) & (e - k * per < clen) & ~in_start & ~in_tail
    wob = 1.0 + P["wobble"] * np.sin(2 * np.pi * (e / (P["period"] * D) + P["phase0"]))
    cpu = np.where(in_start, 0.25 + 0.75 * ramp, np.where(in_ckpt, 0.2, np.where(in_tail, 0.5, 1.0)))
    flops = np.where(in_start, 0.05 + 0.95 * ramp ** 2, np.where(in_ckpt, 0.05, np.where(in_tail, 0.3, 1.0)))
    gpu = np.where(in_start, 0.1 + 0.6 * ramp, np.where(in_ckpt, 0.3, np.where(in_tail, 0.6, 1.0)))
    mf = P["mem_frac"]
    mem = np.where(P["oom"] > 0, mf + (1.0 - mf) * (e / D) ** 2, mf * np.where(in_start, 0.15 + 0.85 * ramp, 1.0))
    io_read = np.where(in_start, P["io_start_bps"], 0.5 * P["io_bps"])
    io_write = 0.5 * P["io_bps"] + np.where(in_ckpt, P["ckpt_bps"], 0.0) + np.where(in_tail, 0.3 * P["ckpt_bps"], 0.0)
    return {"cpu": np.minimum(cpu * wob, 1.05), "flops": flops * wob, "gpu": np.minimum(gpu * wob, 1.0),
            "mem": mem, "io_read": io_read, "io_write": io_write, "mpi": P["mpi_bps"] * cpu}


def idle_phases(shape: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    one, zero = np.ones(shape), np.zeros(shape)
    return {"cpu": one, "flops": one, "gpu": one, "mem": zero, "io_read": zero + IDLE["io_bps"] / 2,
            "io_write": zero + IDLE["io_bps"] / 2, "mpi": zero}


# -- the model -----------------------------------------------------------------------------------

Noise = Callable[[str, tuple[int, ...]], np.ndarray]
Lag = Callable[[str, np.ndarray], np.ndarray]


def cpu_metrics(hw: Hardware, X: dict[str, np.ndarray], noise: Noise) -> dict[str, np.ndarray]:
    """Hardware-thread and socket metrics from per-thread inputs ``X`` (each ``[..., H]``).

    ``X``: busy (target utilisation), flops_eff, dp_frac, bw_eff, ipc, clock_lvl,
    power_int (parameters gathered per thread) and cpu, flops (phase factors).
    """
    shape = X["busy"].shape
    working = X["busy"] > 0.05
    busy = np.clip(X["busy"] * X["cpu"] * (1 + 0.03 * noise("busy", shape))
                   + 0.004 * np.abs(noise("os", shape)), 0.0, 1.0)
    flops_any = np.maximum(hw.simd_per_hw * X["flops_eff"] * X["flops"] * np.minimum(busy * 1.05, 1.0)
                           * (1 + 0.08 * noise("flops", shape)), 0.0)
    flops_dp = flops_any * X["dp_frac"] / 2
    flops_sp = flops_any * (1 - X["dp_frac"])
    ipc = np.where(working, X["ipc"] * (0.6 + 0.4 * np.minimum(X["flops"], 1.0)), 0.5) * (1 + 0.05 * noise("ipc", shape))
    lvl = X["clock_lvl"]
    busy_clk = np.where(lvl >= 0, hw.clock_base + lvl * (hw.clock_max - hw.clock_base), hw.clock_base * (1 + lvl))
    idle_clk = 0.4 * hw.clock_base
    clock = (idle_clk + (busy_clk - idle_clk) * np.minimum(busy * 1.5, 1.0)) * (1 + 0.015 * noise("clock", shape))
    cps = hw.cores_per_socket
    uncore = 0.28 * hw.tdp_socket
    core_idle = 0.05 * hw.tdp_socket / cps
    core_dyn = (0.97 * hw.tdp_socket - uncore - cps * core_idle) / cps
    core_power = core_idle + busy * X["power_int"] * core_dyn * (1 + 0.03 * noise("cpow", shape))
    sock = hw.groups["socket"]
    demand = (busy * X["bw_eff"] * X["cpu"]) @ sock * (hw.bw_per_socket / cps)
    peak = 0.93 * hw.bw_per_socket  # a smooth min(demand, peak): linear when light, saturating when heavy
    mem_bw = demand / (1 + (demand / peak) ** 4) ** 0.25 * (1 + 0.02 * noise("bw", demand.shape)) + 0.2
    mem_bw = np.clip(mem_bw, 0.0, hw.bw_per_socket)
    s_shape = demand.shape
    cpu_power = uncore * (1 + 0.02 * noise("uncore", s_shape)) + core_power @ sock
    mem_power = 10.0 + 0.22 * mem_bw
    return {"cpu_user": busy * 100.0, "flops_any": flops_any, "flops_dp": flops_dp, "flops_sp": flops_sp,
            "ipc": np.maximum(ipc, 0.05), "clock": clock, "core_power": core_power,
            "mem_bw": mem_bw, "cpu_power": cpu_power, "mem_power": mem_power, "_busy": busy}


def node_metrics(hw: Hardware, busy: np.ndarray, N: dict[str, np.ndarray], noise: Noise) -> dict[str, np.ndarray]:
    """Node metrics from the threads' utilisation and per-node inputs ``N`` (each ``[...]``):
    mem (fraction of memory used by jobs), io_read, io_write, mpi (B/s)."""
    shape = N["mem"].shape
    load = np.maximum(busy.sum(axis=-1) * (1 + 0.02 * noise("load", shape)) + 0.05 * np.abs(noise("lo", shape)), 0)
    mem_used = np.clip(3.0 + 0.3 * noise("osmem", shape) + N["mem"] * hw.mem_gb * (1 + 0.01 * noise("mem", shape)),
                       0.5, hw.mem_gb)
    io_r = np.maximum(N["io_read"] * (1 + 0.15 * noise("ior", shape)), 0)
    io_w = np.maximum(N["io_write"] * (1 + 0.15 * noise("iow", shape)), 0)
    mpi = np.maximum(N["mpi"] * (1 + 0.1 * noise("mpi", shape)), 0)
    eth_r = 4e4 * (1 + 0.5 * np.abs(noise("ethr", shape)))
    eth_w = 6e4 * (1 + 0.5 * np.abs(noise("ethw", shape)))
    ic_r, ic_w = mpi + io_r + 1e3, mpi + io_w + 1e3
    return {"cpu_load": load, "mem_used": mem_used, "file_bw": io_r + io_w, "ic_read_bw": ic_r, "ic_write_bw": ic_w,
            "eth_read_bw": eth_r, "eth_write_bw": eth_w, "net_bw": ic_r + ic_w + eth_r + eth_w}


def gpu_metrics(hw: Hardware, G: dict[str, np.ndarray], noise: Noise, lag: Lag) -> dict[str, np.ndarray]:
    """Accelerator metrics from per-GPU inputs ``G`` (each ``[..., A]``): gpu_util, gpu_mem, gpu_int,
    gpu_mem_util (parameters) and gpu, mem_ramp (phase factors)."""
    shape = G["gpu_util"].shape
    util = np.clip(G["gpu_util"] * G["gpu"] * (1 + 0.04 * noise("gutil", shape)), 0.0, 1.0)
    mem = np.clip(G["gpu_mem"] * G["mem_ramp"] * hw.gpu_mem_gb * (1 + 0.01 * noise("gmem", shape))
                  + 0.0005 * hw.gpu_mem_gb, 0.0, hw.gpu_mem_gb)
    power = hw.gpu_idle * (1 + 0.05 * noise("gidle", shape)) + util * G["gpu_int"] * (hw.gpu_tdp - hw.gpu_idle)
    power = np.clip(power * (1 + 0.03 * noise("gpow", shape)), 0.5 * hw.gpu_idle, hw.gpu_tdp)
    sm = np.where(util > 0.05, hw.gpu_sm_max * (0.93 + 0.04 * noise("gsm", shape)), 210.0)
    target = 30.0 + 45.0 * (power - hw.gpu_idle) / max(1.0, hw.gpu_tdp - hw.gpu_idle)
    temp = lag("gtemp", target) + 0.4 * noise("gtemp", shape)
    return {"acc_utilization": util * 100.0, "acc_mem_used": mem, "acc_power": power,
            "nv_mem_util": np.clip(G["gpu_mem_util"] * util * 100.0 * (1 + 0.05 * noise("gmu", shape)), 0, 100),
            "nv_sm_clock": np.maximum(sm, 0.0), "nv_temp": temp}


# Natural scope of every metric the model produces, and how it combines across threads/sockets.
NATURAL: dict[str, tuple[str, str]] = {
    "cpu_user": ("hwthread", "avg"), "flops_any": ("hwthread", "sum"), "flops_dp": ("hwthread", "sum"),
    "flops_sp": ("hwthread", "sum"), "ipc": ("hwthread", "avg"), "clock": ("hwthread", "avg"),
    "core_power": ("hwthread", "sum"), "mem_bw": ("socket", "sum"), "cpu_power": ("socket", "sum"),
    "mem_power": ("socket", "sum"), "cpu_load": ("node", "sum"), "mem_used": ("node", "sum"),
    "file_bw": ("node", "sum"), "ic_read_bw": ("node", "sum"), "ic_write_bw": ("node", "sum"),
    "eth_read_bw": ("node", "sum"), "eth_write_bw": ("node", "sum"), "net_bw": ("node", "sum"),
    "acc_utilization": ("accelerator", "avg"), "acc_mem_used": ("accelerator", "sum"),
    "acc_power": ("accelerator", "sum"), "nv_mem_util": ("accelerator", "avg"),
    "nv_sm_clock": ("accelerator", "avg"), "nv_temp": ("accelerator", "avg"),
}
ALIASES = {"acc_used": "acc_utilization", "nv_util": "acc_utilization", "nv_power_usage": "acc_power"}


def natural_of(metric: str) -> tuple[str, str, str] | None:
    """(model metric, natural scope, aggregation) for a cluster.json metric name, None if not simulated."""
    name = ALIASES.get(metric, metric)
    if name not in NATURAL:
        return None
    return (name, *NATURAL[name])


def to_scope(hw: Hardware, values: np.ndarray, natural: str, agg: str, scope: str,
             weights: np.ndarray | None = None) -> np.ndarray | None:
    """Values ``[..., K_natural]`` at ``scope`` ([..., K_scope]); ``weights`` ([H] or [..., H], 0/1) restricts a
    hardware-thread aggregation to some threads (a job's share of a node).  None if the scope cannot be made."""
    if natural == "node":
        return values[..., None] if scope == "node" else None
    if natural == "accelerator":
        if scope == "accelerator":
            return values
        if scope == "node":
            return (values.sum(axis=-1) if agg == "sum" else values.mean(axis=-1))[..., None]
        return None
    if natural == "socket":
        if scope == "socket":
            return values
        if scope == "node":
            return (values.sum(axis=-1) if agg == "sum" else values.mean(axis=-1))[..., None]
        if scope == "memoryDomain":  # split a socket's value among its domains
            dom_socket = np.zeros(hw.domains, dtype=np.int64)
            dom_socket[hw.domain_of] = hw.socket_of
            per = np.bincount(dom_socket, minlength=hw.sockets).astype(float)
            out = values[..., dom_socket]
            return out / per[dom_socket] if agg == "sum" else out
        return None
    # hardware threads
    if scope == "hwthread":
        return values
    g = hw.groups.get(scope)
    if g is None:
        return None
    if weights is not None:
        values = values * weights
        count = weights @ g
    else:
        count = g.sum(axis=0)
    s = values @ g
    if agg == "sum":
        return s
    return s / np.maximum(count, 1e-9)


def metric_inputs(P: dict[str, np.ndarray], ph: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """Per-thread model inputs: parameters and phase factors of the job on each thread (``idx`` rows)."""
    X = {k: P[k][idx] for k in ("busy", "flops_eff", "dp_frac", "bw_eff", "ipc", "clock_lvl", "power_int")}
    X["cpu"] = ph["cpu"][idx]
    X["flops"] = ph["flops"][idx]
    return X


def gpu_inputs(P: dict[str, np.ndarray], ph: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    G = {k: P[k][idx] for k in ("gpu_util", "gpu_mem", "gpu_int", "gpu_mem_util")}
    G["gpu"] = ph["gpu"][idx]
    G["mem_ramp"] = np.where(idx > 0, np.minimum(1.0, ph["mem"][idx] / np.maximum(P["mem_frac"][idx], 1e-9)), 1.0)
    return G

