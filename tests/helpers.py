"""Start a real installation (``cc-supervise run``) for integration tests and talk to it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from cc.config import load_config
from cc.jwtauth import load_private_key, sign_token
from cc.proc import stop_subprocess
from cc.shm import instance_id, list_segments
from supervisor._init import init_directory

ROOT = Path(__file__).resolve().parents[1]


def small_cluster(name: str = "c1", timestep: int = 10) -> dict[str, Any]:
    """2 sockets x 2 cores x 2 hwthreads, one memory domain per socket, 2 GPUs."""
    def metric(n, scope, agg, **kw):
        return {"name": n, "unit": {"base": kw.pop("unit", "")}, "scope": scope, "timestep": timestep,
                "aggregation": agg, "peak": 100, "normal": 50, "caution": 20, "alert": 10, **kw}

    return {
        "name": name,
        "metricConfig": [
            metric("cpu_load", "node", "avg", footprint="avg"),
            metric("mem_used", "node", None),
            metric("flops_any", "hwthread", "sum", unit="F/s", footprint="avg"),
            metric("cpu_user", "hwthread", "avg"),
            metric("mem_bw", "socket", "sum", unit="B/s", footprint="avg"),
            metric("acc_power", "accelerator", "sum", unit="W", energy="power"),
            metric("net_bw", "node", "sum", unit="B/s"),
        ],
        "subClusters": [{
            "name": "main", "nodes": "*", "processorType": "Test CPU", "socketsPerNode": 2, "coresPerSocket": 2,
            "threadsPerCore": 2,
            "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 10},
            "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 40},
            "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 100},
            "topology": {
                "node": list(range(8)),
                "socket": [[0, 1, 2, 3], [4, 5, 6, 7]],
                "memoryDomain": [[0, 1, 2, 3], [4, 5, 6, 7]],
                "core": [[0, 1], [2, 3], [4, 5], [6, 7]],
                "accelerators": [{"id": "00000000:01:00.0", "type": "Nvidia GPU", "model": "T"},
                                 {"id": "00000000:02:00.0", "type": "Nvidia GPU", "model": "T"}],
            },
        }],
    }


class Installation:
    """A working directory plus a running supervisor started as a real subprocess."""

    def __init__(self, root: Path, *, ingest_workers: int = 2, retention: str = "1h",
                 clusters: dict[str, dict] | None = None, extra_config: dict | None = None,
                 env: dict[str, str] | None = None):
        self.root = root
        self.env = env  # environment of the supervisor (None: ours)
        init_directory(root, [], "127.0.0.1:0", "127.0.0.1:0", memory_cap_gb=0.2)
        cfg = orjson.loads((root / "config.json").read_bytes())
        cfg["metric-store"]["retention-in-memory"] = retention
        cfg["metric-store"]["ingest-workers"] = ingest_workers
        for k, v in (extra_config or {}).items():
            if isinstance(v, dict):
                cfg.setdefault(k, {}).update(v)
            else:
                cfg[k] = v
        (root / "config.json").write_bytes(orjson.dumps(cfg, option=orjson.OPT_INDENT_2))
        for name, doc in (clusters or {"c1": small_cluster()}).items():
            d = root / "var" / "job-archive" / name
            d.mkdir(parents=True, exist_ok=True)
            (d / "cluster.json").write_bytes(orjson.dumps(doc))
        self.cfg = load_config(root / "config.json")
        self.proc: subprocess.Popen | None = None
        self.web = self.ingest = ""
        self.verify: Any = True  # for httpx: an ssl.SSLContext trusting the test certificate under HTTPS
        self.python = sys.executable  # the interpreter that runs cc-supervise

    @property
    def instance(self) -> str:
        return instance_id(self.cfg.var_dir)

    def token(self, user: str = "tester", roles=("api", "admin"), max_age: int = 3600) -> str:
        return sign_token(load_private_key(self.cfg.secret("JWT_PRIVATE_KEY")), user, list(roles), max_age)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, "-m", "supervisor", "--config", str(self.cfg.path), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=self.root, env=self.env)

    def start(self, timeout: float = 30) -> None:
        (self.cfg.run_dir / "ports.json").unlink(missing_ok=True)  # left behind by a killed supervisor
        log = open(self.root / "supervisor.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([self.python, "-m", "supervisor", "run", "--config", str(self.cfg.path)],
                                     cwd=self.root, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        ports = self.cfg.run_dir / "ports.json"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("supervisor exited:\n" + self.output())
            if ports.exists():
                try:
                    addrs = orjson.loads(ports.read_bytes())
                except orjson.JSONDecodeError:
                    addrs = None
                if addrs:
                    web_scheme = "https://" if self.cfg.tls_cert else "http://"
                    ingest_scheme = "https://" if self.cfg.ingest_tls else "http://"
                    self.web, self.ingest = web_scheme + addrs["web"], ingest_scheme + addrs["ingest"]
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("supervisor did not write ports.json:\n" + self.output())
        self.wait_ready(deadline - time.time())

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                a = httpx.get(self.web + "/api/healthz", timeout=2, verify=self.verify)
                b = httpx.get(self.ingest + "/api/healthz", timeout=2, verify=self.verify)
                st = self.status()
                if a.status_code == b.status_code == 200 and st and all(p["pid"] for p in st["processes"]):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("installation not ready:\n" + self.output())

    def status(self) -> dict | None:
        r = self.cli("status", "--json", timeout=10)
        return orjson.loads(r.stdout) if r.returncode == 0 else None

    def pid_of(self, name: str) -> int:
        st = self.status()
        for p in st["processes"]:
            if p["name"] == name:
                return p["pid"]
        raise KeyError(name)

    def output(self) -> str:
        p = self.root / "supervisor.out"
        return p.read_text(errors="replace")[-5000:] if p.exists() else ""

    def stop(self, timeout: float = 60) -> None:
        stop_subprocess(self.proc, timeout)
        # never leave segments behind, whatever happened in the test
        from cc.shm import unlink_all

        unlink_all(self.instance)

    def segments(self) -> list:
        return list_segments(self.instance)

    # -- HTTP helpers ---------------------------------------------------------------

    def write(self, lines: str | bytes, *, cluster: str | None = "c1", token: str | None = None,
              base: str | None = None, **kw) -> httpx.Response:
        params = {"cluster": cluster} if cluster else {}
        body = lines.encode() if isinstance(lines, str) else lines
        headers = {"Authorization": f"Bearer {token or self.token()}", **kw.pop("headers", {})}
        return httpx.post((base or self.ingest) + "/api/write", params=params, content=body, headers=headers,
                          timeout=30, **kw)

    def query(self, doc: dict, token: str | None = None) -> httpx.Response:
        return httpx.post(self.web + "/api/query", content=orjson.dumps(doc),
                          headers={"Authorization": f"Bearer {token or self.token()}"}, timeout=60,
                          verify=self.verify)


@contextlib.contextmanager
def running(root: Path, **kw):
    inst = Installation(root, **kw)
    try:
        inst.start()
        yield inst
    finally:
        inst.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_without_proxy() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def wait_for(pred, timeout: float = 90.0, what: str = "condition", interval: float = 0.1):
    """Poll ``pred`` until it returns something truthy (and return that); fail naming ``what``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
