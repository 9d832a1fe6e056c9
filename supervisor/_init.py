"""``cc-supervise init``: a fresh working directory, like cc-backend's ``-init``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson

from cc.jwtauth import generate_keypair

ARCHIVE_VERSION = "3"


def local_topology() -> dict[str, Any]:
    """This machine's topology in cluster.json form (from sysfs; a flat guess if unreadable)."""
    base = Path("/sys/devices/system/cpu")
    threads: dict[int, tuple[int, int]] = {}
    for d in base.glob("cpu[0-9]*"):
        try:
            cpu = int(d.name[3:])
            pkg = int((d / "topology/physical_package_id").read_text())
            core = int((d / "topology/core_id").read_text())
        except (OSError, ValueError):
            continue
        threads[cpu] = (max(pkg, 0), core)
    if not threads:
        n = os.cpu_count() or 1
        threads = {i: (0, i) for i in range(n)}
    hw = sorted(threads)
    sockets: dict[int, list[int]] = {}
    cores: dict[tuple[int, int], list[int]] = {}
    for t in hw:
        pkg, core = threads[t]
        sockets.setdefault(pkg, []).append(t)
        cores.setdefault((pkg, core), []).append(t)
    socket_list = [sockets[k] for k in sorted(sockets)]
    return {
        "node": hw,
        "socket": socket_list,
        "memoryDomain": socket_list,
        "core": [cores[k] for k in sorted(cores)],
    }


def _metric(name: str, unit: str, scope: str, agg: str, peak: float, normal: float, caution: float,
            alert: float, prefix: str = "", **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": name,
        "unit": {"base": unit, **({"prefix": prefix} if prefix else {})},
        "scope": scope,
        "timestep": 60,
        "aggregation": agg,
        "peak": peak,
        "normal": normal,
        "caution": caution,
        "alert": alert,
    }
    m.update(extra)
    return m


def cluster_template(name: str, topology: dict[str, Any] | None = None, nodes: str = "*",
                     processor: str = "Generic x86-64", timestep: int = 60) -> dict[str, Any]:
    """A cluster.json with ClusterCockpit's recommended metric names at their usual scopes."""
    topo = topology or local_topology()
    nthreads = len(topo["node"])
    nsockets = max(1, len(topo.get("socket") or [[0]]))
    ncores = max(1, len(topo.get("core") or topo["node"]))
    metrics = [
        _metric("cpu_load", "", "node", "avg", nthreads, nthreads, nthreads / 2, 1, footprint="avg"),
        _metric("cpu_user", "%", "hwthread", "avg", 100, 50, 20, 10),
        _metric("mem_used", "B", "node", "sum", 256, 128, 200, 240, prefix="G", footprint="max",
                lowerIsBetter=True),
        _metric("flops_any", "F/s", "hwthread", "sum", 40 * ncores, 10 * ncores, 2 * ncores, 1, prefix="G",
                footprint="avg"),
        _metric("mem_bw", "B/s", "socket", "sum", 200 * nsockets, 100 * nsockets, 20, 10, prefix="G",
                footprint="avg"),
        _metric("clock", "Hz", "hwthread", "avg", 4000, 2500, 1500, 1000, prefix="M"),
        _metric("ipc", "IPC", "hwthread", "avg", 4, 2, 0.5, 0.2),
        _metric("cpu_power", "W", "socket", "sum", 250 * nsockets, 150 * nsockets, 50, 20, energy="power"),
        _metric("net_bw", "B/s", "node", "sum", 12.5, 5, 1, 0.5, prefix="G"),
        _metric("file_bw", "B/s", "node", "sum", 10, 2, 0.5, 0.1, prefix="G"),
    ]
    for m in metrics:
        m["timestep"] = timestep
    return {
        "name": name,
        "metricConfig": metrics,
        "subClusters": [{
            "name": "main",
            "nodes": nodes,
            "processorType": processor,
            "socketsPerNode": nsockets,
            "coresPerSocket": max(1, ncores // nsockets),
            "threadsPerCore": max(1, nthreads // ncores),
            "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 10 * ncores},
            "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 40 * ncores},
            "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 100 * nsockets},
            "topology": topo,
        }],
    }


def default_config(clusters: list[str], web_addr: str, ingest_addr: str, memory_cap_gb: float) -> dict[str, Any]:
    return {
        "main": {
            "addr": web_addr,
            "short-running-jobs-duration": 300,
            "resampling": {"minimum-points": 600, "trigger": 300, "resolutions": [240, 60]},
            "api-allowed-ips": ["*"],
            "session-max-age": "168h",
            "emission-constant": 317,
        },
        "archive": {"kind": "file", "path": "./var/job-archive"},
        "auth": {"jwts": {"max-age": "2000h"}},
        "metric-store": {
            "retention-in-memory": "48h",
            "memory-cap": memory_cap_gb,
            "checkpoints": {"file-format": "wal", "directory": "./var/checkpoints"},
            "cleanup": {"mode": "delete"},
            "ingest-addr": ingest_addr,
            "ingest-workers": 0,
        },
        "clusters": [
            {"name": c, "filterRanges": {"numNodes": {"from": 1, "to": 64}, "duration": {"from": 0, "to": 86400},
                                         "startTime": {"from": "2024-01-01T00:00:00Z", "to": None}}}
            for c in clusters
        ],
    }


def env_text() -> str:
    pub, priv = generate_keypair()
    return (
        "# Base64 encoded Ed25519 key pair for signing and checking JWTs (generated by cc-supervise init).\n"
        f'JWT_PUBLIC_KEY="{pub}"\n'
        f'JWT_PRIVATE_KEY="{priv}"\n'
        "\n# Random secret for signing session cookies.\n"
        f'SESSION_KEY="{secrets.token_hex(32)}"\n'
    )


def init_directory(target: Path, clusters: list[str], web_addr: str, ingest_addr: str,
                   memory_cap_gb: float, force: bool = False) -> list[Path]:
    """Create config.json, .env and var/ under ``target``; refuses to overwrite an existing setup."""
    target.mkdir(parents=True, exist_ok=True)
    cfg_path, env_path, var = target / "config.json", target / ".env", target / "var"
    if not force:
        for p in (cfg_path, env_path, var):
            if p.exists():
                raise FileExistsError(f"{p} already exists; refusing to overwrite an existing installation")
    created = []
    for d in (var, var / "job-archive", var / "checkpoints", var / "run", var / "log"):
        d.mkdir(parents=True, exist_ok=True)
        created.append(d)
    (var / "job-archive" / "version.txt").write_text(ARCHIVE_VERSION + "\n")
    for name in clusters:
        cdir = var / "job-archive" / name
        cdir.mkdir(exist_ok=True)
        (cdir / "cluster.json").write_bytes(orjson.dumps(cluster_template(name), option=orjson.OPT_INDENT_2))
        created.append(cdir / "cluster.json")
    cfg_path.write_bytes(orjson.dumps(default_config(clusters, web_addr, ingest_addr, memory_cap_gb),
                                      option=orjson.OPT_INDENT_2) + b"\n")
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(env_text())
    from cc.db import migrate

    migrate(var / "job.db")
    created += [cfg_path, env_path, var / "job.db"]
    return created
