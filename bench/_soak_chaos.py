"""The soak's chaos: ``kill -9`` of one child at a time, the kill windows, and process samples (pid, RSS).

A kill window lasts from the kill to the moment the replacement serves again:

* ``web`` - ``GET /api/healthz`` on the web address answers 200 (only the new process can);
* ``ingest-N`` - the new process wrote its pid into its slot of the shared-memory process table,
  which it does right before it accepts connections;
* ``store``, ``archiver`` - the new process answers ``ping`` on its socket with its own pid;
* ``forkserver`` - the supervisor lists a new pid (it forks the next child from the new one).

Requests to the service a killed process serves (web: REST, GraphQL; ingest: writes) that
overlap its window are excused: they may fail.  Killing the store, archiver or fork server
excuses nothing -- no client request passes through them.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from cc import ipc

KINDS = ("web", "ingest", "store", "archiver", "forkserver")


@dataclass
class Window:
    name: str  # process name, e.g. ingest-1
    service: str | None  # which clients may see errors: web | ingest | None
    t0: float  # time.monotonic() of the kill
    t1: float | None = None  # serving again (None: never came back)
    old_pid: int = 0
    new_pid: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.t1 is None else self.t1 - self.t0


def service_of(name: str) -> str | None:
    if name == "web":
        return "web"
    if name.startswith("ingest-"):
        return "ingest"
    return None


async def supervisor_status(run_dir: Path, timeout: float = 5.0) -> dict[str, Any] | None:
    """``cc-supervise status`` without starting a Python interpreter (the control socket directly)."""
    try:
        st = await ipc.request(run_dir / "supervisor.sock", {"cmd": "status"}, timeout=timeout)
    except (ipc.IPCError, OSError, trio.TooSlowError):
        return None
    return st if st.get("ok") else None


def pids(st: dict[str, Any]) -> dict[str, int | None]:
    return {p["name"]: p["pid"] for p in st["processes"]}


@dataclass
class Killer:
    """Every ``every`` seconds (uniform in the range) ``kill -9`` of the next kind in a shuffled cycle.

    Cycling through the kinds (rather than drawing each kill independently) makes even a
    short run kill every kind; the ingest worker is drawn at random.
    """

    run_dir: Path
    web: str
    store_slots: Any  # Store.procs (shared-memory process table)
    ingest_slot: dict[str, int]  # ingest-N -> its slot in the process table
    rng: random.Random
    every: tuple[float, float] = (20.0, 40.0)
    kinds: tuple[str, ...] = KINDS
    back_timeout: float = 90.0
    windows: list[Window] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def run(self, end: float) -> None:
        cycle: list[str] = []
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            while True:
                pause = self.rng.uniform(*self.every)
                if time.monotonic() + pause > end:
                    return
                await trio.sleep(pause)
                if not cycle:
                    cycle = list(self.kinds)
                    self.rng.shuffle(cycle)
                kind = cycle.pop()
                st = await supervisor_status(self.run_dir)
                if st is None:
                    self.failures.append("supervisor status unavailable before a kill")
                    continue
                names = [n for n, p in pids(st).items() if p and (n == kind or n.startswith(kind + "-"))]
                if not names:
                    self.failures.append(f"no running {kind} process to kill: {pids(st)}")
                    continue
                await self._kill(client, self.rng.choice(names), pids(st))

    async def _kill(self, client: httpx.AsyncClient, name: str, before: dict[str, int | None]) -> None:
        old = int(before[name] or 0)
        w = Window(name, service_of(name), time.monotonic(), old_pid=old)
        self.windows.append(w)
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGKILL)
        deadline = w.t0 + self.back_timeout
        while time.monotonic() < deadline:
            new = await self._serving(client, name, old)
            if new:
                w.t1, w.new_pid = time.monotonic(), new
                return
            await trio.sleep(0.02)
        self.failures.append(f"{name} (pid {old}) not serving again {self.back_timeout:.0f} s after kill -9")

    async def _serving(self, client: httpx.AsyncClient, name: str, old: int) -> int:
        """The new process's pid once it serves, else 0."""
        st = await supervisor_status(self.run_dir, timeout=2)
        new = int((pids(st).get(name) if st else 0) or 0)
        if not new or new == old:
            return 0
        if name == "web":
            try:
                r = await client.get(self.web + "/api/healthz")
            except httpx.HTTPError:
                return 0
            return new if r.status_code == 200 else 0
        if name.startswith("ingest-"):
            from cc.shm._layout import PR_PID

            return new if int(self.store_slots[self.ingest_slot[name], PR_PID]) == new else 0
        if name in ("store", "archiver"):
            try:
                rep = await ipc.request(self.run_dir / f"{name}.sock", {"cmd": "ping"}, timeout=2)
            except (ipc.IPCError, OSError, trio.TooSlowError):
                return 0
            return new if rep.get("pid") == new else 0
        return new


def private_rss(pid: int | None) -> int | None:
    """Anonymous resident memory of a process (``RssAnon``), in bytes.

    Why not VmRSS (what ``cc-supervise status`` shows): it counts the pages of the metric
    buffers in shared memory a process has touched, so a web process that read every
    series looks gigabytes big without owning any of it.  A leak grows RssAnon.
    """
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Sampler:
    """Every ``every`` seconds: pid, RSS, private RSS and CPU time of the supervisor and each child."""

    run_dir: Path
    every: float = 5.0
    # (time.monotonic(), {name: (pid, VmRSS, RssAnon)})
    samples: list[tuple[float, dict[str, tuple[int | None, int | None, int | None]]]] = field(default_factory=list)
    cpu: dict[str, dict[int, float]] = field(default_factory=dict)  # name -> pid -> CPU seconds seen last
    last_status: dict[str, Any] | None = None

    async def take(self) -> None:
        st = await supervisor_status(self.run_dir)
        if st is None:
            return
        self.last_status = st
        sup = st["supervisor"]["pid"]
        row = {"supervisor": (sup, st["supervisor"]["rss"], private_rss(sup))}
        row.update({p["name"]: (p["pid"], p["rss"], private_rss(p["pid"])) for p in st["processes"]})
        self.samples.append((time.monotonic(), row))
        for name, (pid, _, _) in row.items():
            c = cpu_seconds(pid)
            if c is not None:
                self.cpu.setdefault(name, {})[pid] = c

    def cpu_by_name(self) -> dict[str, float]:
        """CPU seconds per process name, summed over its incarnations (up to each one's last sample)."""
        return {name: sum(per_pid.values()) for name, per_pid in self.cpu.items()}

    async def run(self, end: float) -> None:
        while time.monotonic() < end:
            await self.take()
            await trio.sleep(self.every)
