"""The soak's load: a simulated cluster streaming line protocol, a batch system starting and stopping jobs,
UI users and REST clients.  Every request is recorded (what, when, outcome) for the report.

"Acknowledged" is taken literally: a write counts once its answer arrived with 200 and every
line written, a job once its ``start_job`` answered 201.  A request whose answer never arrived
(the process serving it was killed) is sent again -- as real collectors and adapters do; a
repeated point overwrites its own slot, and a repeated ``start_job`` answered 422 ("already
exists") proves the first attempt went through.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson
import trio

from bench._soak_ui import PageViews

# -- what happened -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """One HTTP request: which service answered (``web`` or ``ingest``), when (time.monotonic), how."""

    service: str
    kind: str  # ingest | ui | rest | jobs
    name: str
    t0: float
    t1: float
    ok: bool
    error: str | None = None


@dataclass
class Recorder:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, service: str, kind: str, name: str, t0: float, ok: bool, error: str | None = None) -> None:
        self.outcomes.append(Outcome(service, kind, name, t0, time.monotonic(), ok, error))


def _short(e: BaseException | str) -> str:
    text = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
    return text if len(text) <= 300 else text[:300] + "..."


# -- the simulated cluster's series -----------------------------------------------------------

VALUES = [repr(k / 4).encode() for k in range(1000)]


def value_of(k: np.ndarray | int, b: np.ndarray | int):
    """The value every collector sends for series ``k`` at bin ``b`` (exact in binary, so comparable)."""
    return ((np.asarray(k) * 31 + np.asarray(b)) % 1000) / 4.0


@dataclass
class SeriesSet:
    """The series of the cluster in a fixed order: series ``k`` is (host, metric, scope, type id)."""

    cluster: str
    timestep: int
    hosts: list[str]
    metrics: dict[str, str]  # name -> native scope
    ids: dict[str, list[str]]  # scope -> type ids on one host
    keys: list[tuple[str, str, str, str]] = field(init=False)
    prefixes: list[bytes] = field(init=False)
    offsets: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = [(h, m, s, i) for h in self.hosts for m, s in self.metrics.items() for i in self.ids[s]]
        self.prefixes = [
            (f"{m},cluster={self.cluster},hostname={h}" + (f",type={s},type-id={i}" if s != "node" else "")
             + " value=").encode()
            for h, m, s, i in self.keys]
        self.offsets = [k * 31 % 1000 for k in range(len(self.keys))]

    def __len__(self) -> int:
        return len(self.keys)

    def body(self, lo: int, hi: int, b: int) -> bytes:
        """Line protocol of series ``lo..hi-1`` at bin ``b`` (timestamps in seconds)."""
        tail = b" %d\n" % (b * self.timestep)
        v = VALUES
        return b"".join([p + v[(o + b) % 1000] + tail
                         for p, o in zip(self.prefixes[lo:hi], self.offsets[lo:hi], strict=True)])


# -- line protocol stream -----------------------------------------------------------------------


@dataclass
class Stream:
    """Every series once per timestep, in requests of ``lines`` lines over ``senders`` connections.

    Sender ``j`` sends chunks ``j, j+senders, ...`` of every bin, in bin order; while it is
    behind the clock (after a kill window) it catches up at full speed.  Acknowledged
    (bin, chunk) pairs are kept for the final check.
    """

    series: SeriesSet
    url: str
    token: str
    rec: Recorder
    lines: int = 5000
    senders: int = 2
    timeout: float = 60.0
    acked: list[tuple[int, int]] = field(default_factory=list)
    attempted: set[tuple[int, int]] = field(default_factory=set)
    first_bin: int | None = None
    last_bin: int = -1

    @property
    def chunks(self) -> int:
        return math.ceil(len(self.series) / self.lines)

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.lines, min(len(self.series), (c + 1) * self.lines)

    async def run(self, end: float) -> None:
        """Stream until time.monotonic() passes ``end`` (the request in flight then is finished)."""
        f = self.series.timestep
        self.first_bin = int(time.time()) // f
        async with trio.open_nursery() as n:
            for j in range(self.senders):
                n.start_soon(self._sender, j, end)

    async def _sender(self, j: int, end: float) -> None:
        f = self.series.timestep
        mine = list(range(j, self.chunks, self.senders))
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "text/plain"}
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False,
                                     limits=httpx.Limits(max_connections=1)) as client:
            b = self.first_bin
            while time.monotonic() < end:
                due = b * f + 0.2  # collectors send a reading just after its time
                wait = due - time.time()
                if wait > 0:
                    await trio.sleep(min(wait, end - time.monotonic()))
                    continue
                for c in mine:
                    await self._send(client, headers, b, c, end)
                self.last_bin = max(self.last_bin, b)
                b += 1

    async def _send(self, client: httpx.AsyncClient, headers: dict[str, str], b: int, c: int, end: float) -> None:
        lo, hi = self.chunk_range(c)
        body = self.series.body(lo, hi, b)
        self.attempted.add((b, c))
        delay, bad_answers = 0.05, 0
        while True:
            t0 = time.monotonic()
            try:
                r = await client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as e:
                self.rec.add("ingest", "ingest", "write", t0, False, _short(e))
            else:
                doc = _json(r)
                if r.status_code == 200 and doc.get("written") == hi - lo:
                    self.rec.add("ingest", "ingest", "write", t0, True)
                    self.acked.append((b, c))
                    return
                self.rec.add("ingest", "ingest", "write", t0, False, f"{r.status_code}: {_short(r.text)}")
                if r.status_code < 500:
                    bad_answers += 1
                    if bad_answers >= 3:  # a bug, not a kill: the report shows it; do not spin
                        return
            if time.monotonic() > end + 60:
                return  # never answered: not acknowledged, not counted
            await trio.sleep(delay)
            delay = min(1.0, delay * 2)

    def ack_mask(self) -> tuple[int, np.ndarray]:
        """(first bin, bool[series, bins]) of acknowledged points."""
        b0 = self.first_bin or 0
        nb = self.last_bin - b0 + 1
        mask = np.zeros((len(self.series), max(nb, 0)), dtype=bool)
        for b, c in self.acked:
            lo, hi = self.chunk_range(c)
            mask[lo:hi, b - b0] = True
        return b0, mask


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        doc = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


# -- the batch system ---------------------------------------------------------------------------


@dataclass
class Job:
    job_id: int
    hosts: list[str]
    start: int
    planned_end: float  # time.monotonic()
    db_id: int | None = None
    started: str = ""  # "201" | "422 after retry"
    stopped: str = ""  # "200" | "422 after retry"


@dataclass
class Batch:
    """Starts and stops jobs through the REST API as an adapter does, keeping ``running`` jobs going."""

    series: SeriesSet
    web: str
    token: str
    rec: Recorder
    rng: random.Random
    running_target: int = 6
    durations: tuple[float, float] = (10.0, 60.0)
    jobs: list[Job] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    next_id: int = 0

    def __post_init__(self) -> None:
        self.next_id = 1_000_000 + self.rng.randrange(1000) * 1000

    def running(self) -> list[Job]:
        return [j for j in self.jobs if j.started and not j.stopped]

    def db_ids(self, *, running: bool) -> list[int]:
        return [j.db_id for j in self.jobs if j.db_id is not None and bool(j.started and not j.stopped) == running]

    async def run(self, end: float) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.web, headers=headers, timeout=60, trust_env=False) as client:
            while time.monotonic() < end:
                now = time.monotonic()
                for j in self.running():
                    if j.planned_end <= now:
                        await self._stop(client, j, end)
                if len(self.running()) < self.running_target:
                    await self._start(client, end)
                await trio.sleep(0.5)
            for j in self.running():  # the end: stop what still runs, so it is archived
                await self._stop(client, j, end + 120)

    def _payload(self, job: Job) -> dict[str, Any]:
        n = len(job.hosts)
        nthreads = len(self.series.ids.get("hwthread", ["0"]))
        return {"jobId": job.job_id, "user": self.rng.choice(["alice", "bob", "carol"]),
                "project": self.rng.choice(["p1", "p2"]), "cluster": self.series.cluster, "partition": "main",
                "numNodes": n, "numHwthreads": nthreads * n, "startTime": job.start, "walltime": 3600,
                "shared": "none", "jobState": "running",
                "resources": [{"hostname": h} for h in job.hosts],
                "metaData": {"jobName": f"soak-{job.job_id}", "jobScript": "#!/bin/sh\nsrun ./app\n"}}

    async def _start(self, client: httpx.AsyncClient, end: float) -> None:
        self.next_id += 1
        hosts = self.rng.sample(self.series.hosts, self.rng.choice([1, 1, 1, 2, 2, 4]))
        job = Job(self.next_id, hosts, int(time.time()), time.monotonic() + self.rng.uniform(*self.durations))
        self.jobs.append(job)
        body = orjson.dumps(self._payload(job))
        answered = await self._call(client, "start_job", "/api/jobs/start_job/", body, end, job)
        if answered is None:
            return
        status, doc = answered
        if status == 201:
            job.db_id, job.started = int(doc["id"]), "201"

    async def _stop(self, client: httpx.AsyncClient, job: Job, end: float) -> None:
        body = orjson.dumps({"jobId": job.job_id, "cluster": self.series.cluster, "startTime": job.start,
                             "stopTime": max(int(time.time()), job.start + 1), "jobState": "completed"})
        answered = await self._call(client, "stop_job", "/api/jobs/stop_job/", body, end, job)
        if answered is not None and answered[0] == 200:
            job.stopped = "200"

    async def _call(self, client: httpx.AsyncClient, name: str, path: str, body: bytes, end: float,
                    job: Job) -> tuple[int, dict] | None:
        """POST with retries until an answer; a 422 after a lost answer means the first attempt counted."""
        lost = False
        delay = 0.1
        while True:
            t0 = time.monotonic()
            try:
                r = await client.post(path, content=body)
            except httpx.HTTPError as e:
                self.rec.add("web", "jobs", name, t0, False, _short(e))
                lost = True
            else:
                doc = _json(r)
                if r.status_code in (200, 201):
                    self.rec.add("web", "jobs", name, t0, True)
                    return r.status_code, doc
                if r.status_code == 422 and lost:
                    self.rec.add("web", "jobs", name, t0, True)
                    self._confirmed(job, name, doc)
                    return None
                self.rec.add("web", "jobs", name, t0, False, f"{r.status_code}: {_short(r.text)}")
                if r.status_code < 500:
                    self.failures.append(f"{name} jobId {job.job_id}: {r.status_code} {_short(r.text)}")
                    return None
                lost = True  # a 5xx may have come after the commit
            if time.monotonic() > end + 60:
                self.failures.append(f"{name} jobId {job.job_id}: no answer until the end")
                return None
            await trio.sleep(delay)
            delay = min(1.0, delay * 2)

    def _confirmed(self, job: Job, name: str, doc: dict) -> None:
        msg = str(doc.get("error", ""))
        if name == "start_job" and "already exists" in msg:
            job.started = "422 after retry"
            tail = msg.split("dbid:", 1)[1] if "dbid:" in msg else ""
            digits = "".join(ch for ch in tail.strip().split(",")[0] if ch.isdigit())
            job.db_id = int(digits) if digits else None
        elif name == "stop_job" and "already been stopped" in msg:
            job.stopped = "422 after retry"
        else:
            self.failures.append(f"{name} jobId {job.job_id}: 422 after a lost answer: {msg}")


# -- UI users and REST readers ------------------------------------------------------------------


def graphql_error(r: httpx.Response) -> str | None:
    """None if the GraphQL answer is complete; else what is wrong with it."""
    if r.status_code != 200:
        return f"{r.status_code}: {_short(r.text)}"
    doc = _json(r)
    if doc.get("errors"):
        return "errors: " + _short("; ".join(str(e.get("message")) for e in doc["errors"][:3]))
    if not isinstance(doc.get("data"), dict):
        return "no data"
    return None


@dataclass
class UIUser:
    """A logged-in browser: page views one after the other with the queries the pages send."""

    views: PageViews
    web: str
    user: str
    password: str
    batch: Batch
    rec: Recorder
    rng: random.Random
    think: tuple[float, float] = (0.2, 1.0)
    views_done: int = 0

    async def run(self, end: float) -> None:
        async with httpx.AsyncClient(base_url=self.web, timeout=60, trust_env=False) as client:
            await self._login(client, end)
            while time.monotonic() < end:
                kind, requests = self.views.random_view(int(time.time()), self.batch.db_ids(running=True),
                                                        self.batch.db_ids(running=False))
                for req in requests:
                    t0 = time.monotonic()
                    try:
                        r = await client.post("/query", content=orjson.dumps(
                            {"query": req.query, "variables": req.variables}),
                            headers={"Content-Type": "application/json"})
                    except httpx.HTTPError as e:
                        self.rec.add("web", "ui", req.name, t0, False, _short(e))
                        continue
                    err = graphql_error(r)
                    self.rec.add("web", "ui", req.name, t0, err is None, err)
                self.views_done += 1
                await trio.sleep(self.rng.uniform(*self.think))

    async def _login(self, client: httpx.AsyncClient, end: float) -> None:
        while True:
            t0 = time.monotonic()
            try:
                r = await client.post("/login", content=orjson.dumps({"username": self.user,
                                                                      "password": self.password}),
                                      headers={"Content-Type": "application/json", "Accept": "application/json"})
                if r.status_code == 200:
                    self.rec.add("web", "ui", "login", t0, True)
                    return
                self.rec.add("web", "ui", "login", t0, False, f"{r.status_code}: {_short(r.text)}")
            except httpx.HTTPError as e:
                self.rec.add("web", "ui", "login", t0, False, _short(e))
            if time.monotonic() > end:
                raise RuntimeError("could not log in")
            await trio.sleep(0.5)


@dataclass
class RestReader:
    """cc-backend REST clients: running-job lists, one job with its data, metric-store queries."""

    series: SeriesSet
    web: str
    token: str
    batch: Batch
    rec: Recorder
    rng: random.Random
    pause: tuple[float, float] = (0.2, 0.8)

    async def run(self, end: float) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        f = self.series.timestep
        async with httpx.AsyncClient(base_url=self.web, headers=headers, timeout=60, trust_env=False) as client:
            while time.monotonic() < end:
                choice = self.rng.random()
                ids = self.batch.db_ids(running=True) + self.batch.db_ids(running=False)
                t0 = time.monotonic()
                try:
                    if choice < 0.3:
                        name = "GET /api/jobs/?state=running"
                        r = await client.get("/api/jobs/", params={"state": "running",
                                                                   "cluster": self.series.cluster})
                    elif choice < 0.6 and ids:
                        name = "GET /api/jobs/{id}"
                        r = await client.get(f"/api/jobs/{self.rng.choice(ids)}")
                    else:
                        name = "POST /api/query"
                        now = int(time.time())
                        hosts = self.rng.sample(self.series.hosts, min(8, len(self.series.hosts)))
                        metric = self.rng.choice(sorted(self.series.metrics))
                        r = await client.post("/api/query", content=orjson.dumps(
                            {"cluster": self.series.cluster, "from": now - 300 - now % f, "to": now,
                             "with-stats": True, "queries": [{"metric": metric, "host": h} for h in hosts]}))
                except httpx.HTTPError as e:
                    self.rec.add("web", "rest", name, t0, False, _short(e))
                else:
                    ok = r.status_code == 200
                    self.rec.add("web", "rest", name, t0, ok, None if ok else f"{r.status_code}: {_short(r.text)}")
                await trio.sleep(self.rng.uniform(*self.pause))
