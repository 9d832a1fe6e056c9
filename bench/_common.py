"""Shared pieces of the benchmarks: cluster shapes, a running installation, timing helpers.

The benchmarks start the real product (``python -m supervisor run`` through
``tests.helpers.Installation``) in a temporary directory and always stop it again
(which removes its shared memory), also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from tests.helpers import Installation  # noqa: E402

# -- cluster.json ----------------------------------------------------------------------


def cluster_doc(name: str, metrics: list[tuple[str, str, str | None]], *, sockets: int, cores_per_socket: int,
                threads_per_core: int = 1, timestep: int = 60) -> dict[str, Any]:
    """A one-subcluster cluster.json; ``metrics`` = (name, scope, aggregation).

    Hardware threads are numbered core by core: core ``c`` holds threads
    ``c*threads_per_core .. c*threads_per_core + threads_per_core - 1``.
    """
    ncores = sockets * cores_per_socket
    nthreads = ncores * threads_per_core
    cores = [[c * threads_per_core + k for k in range(threads_per_core)] for c in range(ncores)]
    per_socket = cores_per_socket * threads_per_core
    socket_groups = [list(range(s * per_socket, (s + 1) * per_socket)) for s in range(sockets)]
    return {
        "name": name,
        "metricConfig": [
            {"name": m, "unit": {"base": ""}, "scope": scope, "timestep": timestep, "aggregation": agg,
             "peak": 100, "normal": 50, "caution": 20, "alert": 10}
            for m, scope, agg in metrics
        ],
        "subClusters": [{
            "name": "main", "nodes": "*", "processorType": "Bench CPU", "socketsPerNode": sockets,
            "coresPerSocket": cores_per_socket, "threadsPerCore": threads_per_core,
            "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 10},
            "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 40},
            "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 100},
            "topology": {
                "node": list(range(nthreads)),
                "socket": socket_groups,
                "memoryDomain": socket_groups,
                "core": cores,
            },
        }],
    }


# -- installations -----------------------------------------------------------------------


def _sigterm_to_interrupt(signum, frame):  # pragma: no cover - signal path
    raise KeyboardInterrupt(f"signal {signum}")


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """``--set a.b.c=VALUE`` options -> {"a.b.c": value}; VALUE is JSON if it parses, else a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. metric-store.checkpoints.wal-sync=off")
        try:
            out[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out[key] = raw
    return out


def add_set_option(ap) -> None:
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                    help="extra config.json setting for the installation, dotted key, JSON or string value "
                         "(repeatable), e.g. --set metric-store.checkpoints.wal-sync=off")


@contextlib.contextmanager
def installation(*, clusters: dict[str, dict], ingest_workers: int = 1, retention: str = "1h",
                 memory_cap_gb: float = 1.0, settings: dict[str, Any] | None = None,
                 keep: bool = False) -> Iterator[Installation]:
    """A running installation in a fresh temporary directory; stopped and removed afterwards.

    ``Installation`` defaults to a 0.2 GB memory cap, too small for the benchmarks, so the
    cap is set explicitly here.  ``settings`` maps dotted config.json keys to values.
    """
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="ccbench-"))
    inst = None
    try:
        inst = Installation(tmp / "inst", ingest_workers=ingest_workers, retention=retention, clusters=clusters,
                            extra_config={"metric-store": {"memory-cap": memory_cap_gb}})
        if settings:
            from cc.config import load_config

            doc = orjson.loads(inst.cfg.path.read_bytes())
            for key, value in settings.items():
                node = doc
                *path, last = key.split(".")
                for k in path:
                    node = node.setdefault(k, {})
                node[last] = value
            inst.cfg.path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            inst.cfg = load_config(inst.cfg.path)
        inst.start(timeout=60)
        yield inst
    finally:
        if inst is not None:
            inst.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def effective_settings(inst: Installation) -> str:
    """The metric-store settings that matter for the data plane, as the installation reads them."""
    ms = inst.cfg.metric_store
    parts = [f"retention {ms.retention} s", f"ingest-workers {ms.effective_ingest_workers()}",
             f"memory-cap {ms.memory_cap_gb:g} GB"]
    for attr, label in (("wal_enabled", "wal"), ("wal_sync", "wal-sync")):
        if hasattr(ms, attr):
            parts.append(f"{label} {getattr(ms, attr)}")
    return ", ".join(parts)


def code_state() -> str:
    """git HEAD and whether the working tree has uncommitted changes (the benchmarks run what is checked out)."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "code: ?"
    n = len([d for d in dirty if d.strip()])
    return f"code: {head}" + (f" + uncommitted changes in {n} tracked files" if n else " (clean)")


def process_tree(inst: Installation) -> list[tuple[str, int]]:
    """(name, pid) of the supervisor and every child, from ``cc-supervise status --json``."""
    st = inst.status()
    if st is None:
        raise RuntimeError("cc-supervise status failed:\n" + inst.output())
    out = [("supervisor", int(st["supervisor"]["pid"]))]
    out += [(p["name"], int(p["pid"])) for p in st["processes"] if p["pid"]]
    return out


def wait_children_up(inst: Installation, min_uptime: float = 0.0, timeout: float = 120.0) -> dict[str, Any]:
    """Wait until every child runs (and has run for ``min_uptime`` seconds)."""
    deadline = time.time() + timeout
    while True:
        st = inst.status()
        if st and all(p["pid"] and (p["uptime"] or 0) >= min_uptime for p in st["processes"]):
            return st
        if time.time() > deadline:
            raise RuntimeError(f"children not up after {timeout:.0f}s: {st}")
        time.sleep(0.2)


# -- timing and reporting ------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def percentile(xs: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError):
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), {mem / 2**30:.1f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}; load average {load}")


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  {machine()}")
    print(f"   {code_state()}")


def finish_load(conn) -> None:
    """After a bulk insert: an "app" tag on every 20th job, then ANALYZE (as a long-running database has it)."""
    from cc.db import transaction
    from cc.db._tags import add_tag

    def tag(c):
        for (i,) in c.execute("SELECT id FROM job WHERE id % 20 = 0").fetchall():
            add_tag(c, None, i, "app", f"app{i % 7}")

    transaction(conn, tag)
    conn.execute("ANALYZE")


def run_main(main) -> None:
    """``sys.exit(main())`` for a benchmark script; Ctrl-C ends it with 130 after its cleanup ran."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


# -- a cheap HTTP/1.1 keep-alive client ----------------------------------------------------


class RawHTTP:
    """One keep-alive connection sending pre-built requests; parses just status and body."""

    def __init__(self, host: str, port: int, timeout: float = 120.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def build(method: str, host: str, port: int, target: str, body: bytes = b"",
              headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def roundtrip(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        return self.read_response()

    def read_response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        chunked = False
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v.strip())
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        if chunked:
            raise NotImplementedError("chunked responses are not expected here")
        while len(rest) < length:
            chunk = self.sock.recv(max(65536, length - len(rest)))
            if not chunk:
                raise ConnectionError("server closed the connection inside a body")
            rest += chunk
        body, self.buf = rest[:length], rest[length:]
        return status, body

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def json_body(body: bytes) -> Any:
    return orjson.loads(body) if body else None


def open_connections(host: str, port: int, clients: int, hello: bytes | None,
                     spread_over: int) -> tuple[list[RawHTTP], list, int]:
    """Open ``clients`` connections; with ``spread_over`` > 1, retry until they are spread over that many workers.

    ``hello`` (GET /api/healthz) tells which ingest worker accepted a connection; it also makes
    sure every connection is accepted before timing starts.  Connections that land on a
    worker that already has its share are kept open (idle) while retrying, then closed.
    """
    conns: list[RawHTTP] = []
    who: list = []
    parked: list[RawHTTP] = []
    attempts = 0
    share = -(-clients // spread_over) if spread_over > 1 else clients
    while len(conns) < clients:
        attempts += 1
        c = RawHTTP(host, port)
        w = None
        if hello is not None:
            status, body = c.roundtrip(hello)
            w = json_body(body).get("worker") if status == 200 else None
        if spread_over > 1 and who.count(w) >= share and attempts < 50:
            parked.append(c)
            continue
        conns.append(c)
        who.append(w)
    for c in parked:
        c.close()
    return conns, who, attempts
