"""Chaos soak: a simulated cluster streams line protocol, UI users and REST clients query, a batch
system starts and stops jobs -- while a killer sends ``kill -9`` to one child after another.

Load (defaults): 100,000 points/s = every series of a 2-socket, 32-hwthread cluster once per
1 s timestep (104 series per host: 4 node, 2 socket and 3 hwthread metrics), in requests of
5,000 lines over 2 connections to the ingest address; 2 UI users loading the pages' GraphQL
queries (read from ``frontend/static/js``: job list with metric plots, job view, systems,
node, status, user and analysis statistics) with 0.2-1 s think time; one REST reader
(running jobs, one job with data, ``/api/query``); a batch system keeping 6 jobs of 10-60 s
running through ``start_job``/``stop_job``.  Every 20-40 s a ``kill -9`` of the next of
web, ingest worker, store, archiver, fork server (shuffled cycle).

At the end (no more kills; every process must be back) the harness stops the remaining jobs,
waits for the archiver and checks:

* points: every point an ingest answer acknowledged (200, all lines written) is queried back
  through ``POST /api/query`` and must hold the value sent: **0 lost**;
* jobs: every job ``start_job`` acknowledged (201, or 422 "already exists" for a retry after a
  lost answer) is in the database; every acknowledged stop is archived (monitoring status 3,
  ``meta.json`` and data in the archive): **0 lost**;
* requests outside the kill windows (see ``bench/_soak_chaos.py``): 0 errors; latency p50/p99;
* restarts per process (``cc-supervise status``) equal the kills; RSS per process, start vs end.

Exit code 1 when anything was lost, a process did not come back, crashed on its own, or a
request failed outside a kill window.  ``tests/test_soak.py`` runs the same harness for 60 s.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402
import trio  # noqa: E402

from bench._common import (  # noqa: E402
    add_set_option,
    cluster_doc,
    header,
    installation,
    parse_settings,
    percentile,
    run_main,
)
from bench._soak_chaos import KINDS, Killer, Sampler, Window, pids, supervisor_status  # noqa: E402
from bench._soak_load import Batch, Outcome, Recorder, RestReader, SeriesSet, Stream, UIUser, value_of  # noqa: E402
from bench._soak_ui import PageViews  # noqa: E402

CLUSTER = "soak"
METRICS = [("cpu_load", "node", "avg"), ("mem_used", "node", None), ("net_bw", "node", "sum"),
           ("file_bw", "node", "sum"), ("mem_bw", "socket", "sum"), ("cpu_power", "socket", "sum"),
           ("cpu_user", "hwthread", "avg"), ("flops_any", "hwthread", "sum"), ("clock", "hwthread", "avg")]
FOOTPRINT = {"cpu_load": "avg", "flops_any": "avg", "mem_bw": "avg"}
UI_USER, UI_PASSWORD = "soak-admin", "soak-password"


@dataclass
class Options:
    duration: float = 600.0
    rate: float = 100_000.0  # points/s
    timestep: int = 1
    sockets: int = 2
    cores_per_socket: int = 16
    lines: int = 10_000
    senders: int = 4
    ingest_workers: int = 2
    ui_users: int = 2
    jobs_running: int = 6
    job_seconds: tuple[float, float] = (10.0, 60.0)
    kill_every: tuple[float, float] = (20.0, 40.0)
    kinds: tuple[str, ...] = KINDS
    sample_every: float = 5.0
    seed: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    keep: bool = False


def cluster_for(opts: Options) -> tuple[dict[str, Any], SeriesSet]:
    doc = cluster_doc(CLUSTER, METRICS, sockets=opts.sockets, cores_per_socket=opts.cores_per_socket,
                      timestep=opts.timestep)
    for m in doc["metricConfig"]:
        if m["name"] in FOOTPRINT:
            m["footprint"] = FOOTPRINT[m["name"]]
        if m["name"] == "cpu_power":
            m["energy"] = "power"
            m["unit"] = {"base": "W"}
    nthreads = opts.sockets * opts.cores_per_socket
    ids = {"node": [""], "socket": [str(s) for s in range(opts.sockets)],
           "hwthread": [str(t) for t in range(nthreads)]}
    per_host = sum(len(ids[s]) for _, s, _ in METRICS)
    nhosts = max(1, math.ceil(opts.rate * opts.timestep / per_host))
    width = max(4, len(str(nhosts - 1)))
    hosts = [f"s{i:0{width}d}" for i in range(nhosts)]
    return doc, SeriesSet(CLUSTER, opts.timestep, hosts, {m: s for m, s, _ in METRICS}, ids)


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class Result:
    """Everything the report needs; ``failures`` non-empty means the soak failed."""

    opts: Options
    series: int = 0
    hosts: int = 0
    elapsed: float = 0.0
    points_acked: int = 0
    points_queryable: int = 0
    points_wrong: int = 0
    points_unacked_present: int = 0
    jobs_started: int = 0
    jobs_started_by_retry: int = 0
    jobs_in_db: int = 0
    jobs_stopped: int = 0
    jobs_archived: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    samples: list[tuple[float, dict[str, tuple[int | None, int | None, int | None]]]] = field(default_factory=list)
    status: dict[str, Any] | None = None
    views: int = 0
    failures: list[str] = field(default_factory=list)
    t_start: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process name (harness = this script)
    behind: float = 0.0  # seconds the stream was behind the clock when it stopped

    @property
    def points_lost(self) -> int:
        return self.points_acked - self.points_queryable

    def excused(self, o: Outcome) -> bool:
        """The request overlaps a kill window of the process serving it."""
        return any(w.service == o.service and o.t0 <= (w.t1 if w.t1 is not None else math.inf) and o.t1 >= w.t0
                   for w in self.windows)

    def errors_outside(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and not self.excused(o)]


def run(opts: Options) -> Result:
    """Start an installation, soak it for ``opts.duration`` seconds, check, stop it; the Result."""
    doc, series = cluster_for(opts)
    nslots = math.ceil((opts.duration + 1200) / opts.timestep) + 1
    retention = f"{int(math.ceil((opts.duration + 1200) / 60))}m"
    cap = max(1.0, 1.5 * len(series) * nslots * 8 / 1e9 + 0.2)
    result = Result(opts, series=len(series), hosts=len(series.hosts))
    with installation(clusters={CLUSTER: doc}, ingest_workers=opts.ingest_workers, retention=retention,
                      memory_cap_gb=cap, settings=opts.settings, keep=opts.keep) as inst:
        r = inst.cli("add-user", f"{UI_USER}:admin,api:{UI_PASSWORD}")
        if r.returncode:
            raise RuntimeError(f"add-user failed: {r.stderr}")
        trio.run(_soak, inst, opts, series, result)
    return result


async def _soak(inst, opts: Options, series: SeriesSet, result: Result) -> None:
    from cc.shm import Store
    from cc.shm._layout import INGEST_SLOT_BASE

    rng = random.Random(opts.seed)
    token = inst.token("soak", roles=("api", "admin"), max_age=int(opts.duration) + 7200)
    run_dir = inst.cfg.run_dir
    shm = Store.attach(inst.instance)
    try:
        rec = Recorder()
        stream = Stream(series, inst.ingest + f"/api/write?cluster={CLUSTER}", token, rec,
                        lines=opts.lines, senders=opts.senders)
        batch = Batch(series, inst.web, token, rec, random.Random(rng.random()), running_target=opts.jobs_running,
                      durations=opts.job_seconds)
        views = PageViews(CLUSTER, series.hosts, series.metrics, random.Random(rng.random()))
        users = [UIUser(views, inst.web, UI_USER, UI_PASSWORD, batch, rec, random.Random(rng.random()))
                 for _ in range(opts.ui_users)]
        reader = RestReader(series, inst.web, token, batch, rec, random.Random(rng.random()))
        killer = Killer(run_dir, inst.web, shm.procs,
                        {f"ingest-{k}": INGEST_SLOT_BASE + k for k in range(opts.ingest_workers)},
                        random.Random(rng.random()), every=opts.kill_every, kinds=opts.kinds)
        sampler = Sampler(run_dir, every=opts.sample_every)
        result.t_start = t0 = time.monotonic()
        cpu0 = _own_cpu()
        end = t0 + opts.duration
        async with trio.open_nursery() as n:
            n.start_soon(stream.run, end)
            n.start_soon(batch.run, end)
            for u in users:
                n.start_soon(u.run, end)
            n.start_soon(reader.run, end)
            n.start_soon(killer.run, end - min(15.0, opts.duration / 6))  # the last window closes before the end
            n.start_soon(sampler.run, end)
        result.elapsed = time.monotonic() - t0
        result.behind = max(0.0, time.time() - (stream.last_bin + 1) * series.timestep)
        result.outcomes, result.windows, result.views = rec.outcomes, killer.windows, sum(u.views_done for u in users)
        result.failures += killer.failures + batch.failures
        await _all_back(run_dir, result)
        await _check_jobs(inst, batch, result)
        await _check_points(inst, stream, token, result)
        await sampler.take()
        result.samples, result.status = sampler.samples, sampler.last_status
        result.cpu = {**sampler.cpu_by_name(), "harness": _own_cpu() - cpu0}
        _check_restarts(result)
        errs = result.errors_outside()
        if errs:
            result.failures.append(f"{len(errs)} requests failed outside the kill windows, first: "
                                   f"{errs[0].kind} {errs[0].name}: {errs[0].error}")
    finally:
        shm.close()


def _own_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _all_back(run_dir: Path, result: Result, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = await supervisor_status(run_dir)
        if st and all(p["pid"] for p in st["processes"]):
            return
        await trio.sleep(0.2)
    result.failures.append(f"not every process running {timeout:.0f} s after the soak: {st and pids(st)}")


def _db_rows(db_path: Path) -> dict[tuple[int, str, int], tuple[int, str, int]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT job_id, cluster, start_time, id, job_state, monitoring_status FROM job").fetchall()
    finally:
        conn.close()
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


async def _check_jobs(inst, batch: Batch, result: Result, timeout: float = 300.0) -> None:
    """Acknowledged starts in the database; acknowledged stops archived (waiting for the archiver)."""
    from cc.archive import JobArchive

    started = [j for j in batch.jobs if j.started]
    stopped = [j for j in started if j.stopped]
    result.jobs_started, result.jobs_stopped = len(started), len(stopped)
    result.jobs_started_by_retry = sum(1 for j in started if j.started != "201")
    deadline = time.monotonic() + timeout
    while True:
        rows = await trio.to_thread.run_sync(_db_rows, inst.cfg.db_path)
        pending = [j for j in stopped if rows.get((j.job_id, CLUSTER, j.start), (0, "", 1))[2] == 1]
        if not pending or time.monotonic() > deadline:
            break
        await trio.sleep(1.0)
    archive = JobArchive(inst.cfg.archive_path)
    result.jobs_in_db = sum(1 for j in started if (j.job_id, CLUSTER, j.start) in rows)
    for j in started:
        if (j.job_id, CLUSTER, j.start) not in rows:
            result.failures.append(f"job {j.job_id} (start acknowledged: {j.started}) is not in the database")
    archived = 0
    for j in stopped:
        row = rows.get((j.job_id, CLUSTER, j.start))
        if row is None:
            continue
        _, state, status = row
        problem = None
        if state != "completed":
            problem = f"state {state!r} in the database"
        elif status != 3:
            problem = f"monitoring status {status} (3 = archived) {timeout:.0f} s after the end"
        else:
            try:
                meta = await trio.to_thread.run_sync(archive.load_meta, CLUSTER, j.job_id, j.start)
                await trio.to_thread.run_sync(archive.load_data, CLUSTER, j.job_id, j.start)
            except (OSError, ValueError) as e:
                problem = f"not readable from the archive: {e}"
            else:
                if meta.get("jobState") != "completed":
                    problem = f"archived with jobState {meta.get('jobState')!r}"
        if problem:
            result.failures.append(f"job {j.job_id} (stop acknowledged: {j.stopped}): {problem}")
        else:
            archived += 1
    result.jobs_archived = archived


async def _check_points(inst, stream: Stream, token: str, result: Result) -> None:
    """Query every series over the whole run; compare with what was acknowledged."""
    series = stream.series
    b0, mask = stream.ack_mask()
    nb = mask.shape[1]
    f = series.timestep
    result.points_acked = int(mask.sum())
    present = np.zeros_like(mask)
    wrong = 0
    per_host = len(series) // len(series.hosts)
    hosts_per_request = max(1, 20_000 // per_host)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=inst.web, headers=headers, timeout=300, trust_env=False) as client:
        for h0 in range(0, len(series.hosts), hosts_per_request):
            hosts = series.hosts[h0:h0 + hosts_per_request]
            queries = []
            for h in hosts:
                for m, s in series.metrics.items():
                    q = {"metric": m, "host": h}
                    if s != "node":
                        q.update({"type": s, "type-ids": series.ids[s]})
                    queries.append(q)
            body = orjson.dumps({"cluster": series.cluster, "from": b0 * f, "to": (b0 + nb) * f,
                                 "with-stats": False, "queries": queries})
            r = await _post_retrying(client, "/api/query", body)
            results = orjson.loads(r.content)["results"]
            k = h0 * per_host
            for q, entries in zip(queries, results, strict=True):
                ids = series.ids[series.metrics[q["metric"]]]
                if len(entries) != len(ids):
                    raise RuntimeError(f"/api/query {q}: {len(entries)} series, expected {len(ids)}: {entries[:1]}")
                for e in entries:
                    if "error" in e:
                        raise RuntimeError(f"/api/query {q}: {e['error']}")
                    data = np.array([np.nan if v is None else v for v in e.get("data") or []], dtype=float)
                    off = e["from"] // f - b0
                    row = np.full(nb, np.nan)
                    lo, hi = max(0, off), min(nb, off + len(data))
                    if hi > lo:
                        row[lo:hi] = data[lo - off:hi - off]
                    have = ~np.isnan(row)
                    expected = value_of(k, np.arange(b0, b0 + nb))
                    bad = have & (row != expected)
                    wrong += int(bad.sum())
                    present[k] = have & ~bad
                    k += 1
    result.points_queryable = int((present & mask).sum())
    result.points_wrong = wrong
    result.points_unacked_present = int((present & ~mask).sum())
    if result.points_lost:
        rows, cols = np.nonzero(mask & ~present)
        key = series.keys[rows[0]]
        result.failures.append(f"{result.points_lost:,} acknowledged points are not queryable, first: {key} "
                               f"at t={(b0 + cols[0]) * f}")
    if wrong:
        result.failures.append(f"{wrong:,} points hold a value that was never sent")


async def _post_retrying(client: httpx.AsyncClient, path: str, body: bytes, attempts: int = 5) -> httpx.Response:
    for i in range(attempts):
        try:
            r = await client.post(path, content=body)
            if r.status_code == 200:
                return r
            err = f"{r.status_code}: {r.text[:300]}"
        except httpx.HTTPError as e:
            err = f"{type(e).__name__}: {e}"
        if i == attempts - 1:
            raise RuntimeError(f"POST {path} for the final check failed: {err}")
        await trio.sleep(1.0)
    raise AssertionError("unreachable")


def _check_restarts(result: Result) -> None:
    st = result.status
    if st is None:
        result.failures.append("no supervisor status at the end")
        return
    kills: dict[str, int] = {}
    for w in result.windows:
        kills[w.name] = kills.get(w.name, 0) + 1
    for p in st["processes"]:
        if p["crashes"] != kills.get(p["name"], 0):
            result.failures.append(f"{p['name']}: {p['crashes']} crashes for {kills.get(p['name'], 0)} kills "
                                   f"(last exit: {p['last_exit']})")


# -- the report -------------------------------------------------------------------------------------


def _ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"p50 {percentile(xs, 50) * 1e3:.0f} ms, p99 {percentile(xs, 99) * 1e3:.0f} ms (n={len(xs)})"


def rss_table(result: Result) -> list[str]:
    """Per process: private RSS (RssAnon) and RSS at the first sample after warm-up and at the end.

    A process restarted meanwhile is shown from the first sample of its last incarnation.
    """
    if not result.samples:
        return ["     (no samples)"]
    warm = result.t_start + min(30.0, result.opts.duration / 6)
    first = next((s for s in result.samples if s[0] >= warm), result.samples[0])
    last = result.samples[-1]
    mib = 1 / 2**20
    lines = [f"     {'process':12s} {'private (RssAnon) MiB':>28s}   {'RSS incl. shared memory MiB':>28s}"]
    for name, (pid1, rss1, anon1) in last[1].items():
        if rss1 is None:
            lines.append(f"     {name:12s} not running at the end")
            continue
        pid0, rss0, anon0 = first[1].get(name, (None, None, None))
        note = ""
        if pid0 != pid1:
            since = next((s for s in result.samples if s[1].get(name, (None,))[0] == pid1), last)
            _, rss0, anon0 = since[1][name]
            note = f"  (restarted; from its first sample, +{since[0] - result.t_start:.0f} s)"
        a = f"{(anon0 or 0) * mib:7.1f} -> {(anon1 or 0) * mib:7.1f} ({((anon1 or 0) - (anon0 or 0)) * mib:+7.1f})"
        r = f"{(rss0 or 0) * mib:7.1f} -> {rss1 * mib:7.1f} ({(rss1 - (rss0 or 0)) * mib:+7.1f})"
        lines.append(f"     {name:12s} {a:>28s}   {r:>28s}{note}")
    return lines


def rss_over_time(result: Result, step: float = 60.0) -> list[str]:
    """Private memory (MiB) of each process every ``step`` seconds; ``|`` marks a restart."""
    if not result.samples:
        return []
    names = list(result.samples[-1][1])
    picked, next_t = [], result.t_start
    for s in result.samples:
        if s[0] >= next_t:
            picked.append(s)
            next_t = s[0] + step
    out = [f"   private memory (MiB) every {step:.0f} s, '|' = restarted since the previous value:"]
    for name in names:
        cells, last_pid = [], None
        for _, row in picked:
            pid, _, anon = row.get(name, (None, None, None))
            mark = "|" if last_pid is not None and pid != last_pid else ""
            cells.append(f"{mark}{(anon or 0) / 2**20:.0f}" if anon else f"{mark}-")
            last_pid = pid
        out.append(f"     {name:12s} " + " ".join(cells))
    return out


def report(result: Result) -> str:
    o = result.opts
    out = [f"   cluster: {result.hosts} hosts x {result.series // max(1, result.hosts)} series = {result.series:,} "
           f"series at {o.timestep} s = {result.series / o.timestep:,.0f} points/s; {o.senders} connections, "
           f"{o.lines} lines per request; {o.ingest_workers} ingest workers",
           f"   ran {result.elapsed:.0f} s; {len(result.windows)} kills, {result.views} UI page views"]
    ing = [x for x in result.outcomes if x.kind == "ingest" and x.ok]
    rate = result.points_acked / max(1, result.elapsed)
    target = result.series / o.timestep
    out.append(f"   points: acknowledged {result.points_acked:,} ({rate:,.0f}/s over {len(ing):,} requests; "
               f"{'rate met' if rate >= 0.98 * target else 'rate NOT met'}, stream {result.behind:.0f} s behind "
               f"the clock at the end), queryable {result.points_queryable:,}, LOST {result.points_lost:,}; "
               f"wrong values {result.points_wrong:,}; present but never acknowledged "
               f"{result.points_unacked_present:,}")
    out.append(f"   jobs: started {result.jobs_started} ({result.jobs_started_by_retry} confirmed by a retry), in the "
               f"database {result.jobs_in_db}, stopped {result.jobs_stopped}, archived {result.jobs_archived}; "
               f"LOST {result.jobs_started - result.jobs_in_db + result.jobs_stopped - result.jobs_archived}")
    out.append("   kill windows (kill -> serving again):")
    for w in result.windows:
        t = w.t0 - result.t_start
        out.append(f"     +{t:5.0f} s  {w.name:11s} pid {w.old_pid} -> {w.new_pid or '-'}: "
                   + (f"{w.seconds:.3f} s" if w.seconds is not None else "NOT BACK"))
    errs = result.errors_outside()
    inside = [x for x in result.outcomes if not x.ok and result.excused(x)]
    out.append(f"   requests: {len(result.outcomes):,}; errors outside the kill windows {len(errs)}, inside "
               f"{len(inside)}")
    for x in errs[:10]:
        out.append(f"     outside: +{x.t0 - result.t_start:.1f} s {x.kind} {x.name}: {x.error}")
    out.append("   latency outside the kill windows (successful requests):")
    clean = [x for x in result.outcomes if x.ok and not result.excused(x)]
    for kind in ("ui", "rest", "jobs", "ingest"):
        xs = [x.t1 - x.t0 for x in clean if x.kind == kind]
        out.append(f"     {kind:7s} {_ms(xs)}")
    names = sorted({x.name for x in clean if x.kind in ("ui", "rest")})
    for name in names:
        xs = [x.t1 - x.t0 for x in clean if x.name == name and x.kind in ("ui", "rest")]
        out.append(f"       {name:32s} {_ms(xs)}")
    if result.status:
        out.append("   restarts (cc-supervise status): " + ", ".join(
            f"{p['name']} {p['restarts']}" for p in result.status["processes"]))
    if result.cpu:
        cores = os.cpu_count() or 1
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        out.append(f"   CPU seconds over {result.elapsed:.0f} s ({cores} cores = {cores * result.elapsed:.0f}; load "
                   f"average now {load}): " + ", ".join(
            f"{k} {v:.0f}" for k, v in sorted(result.cpu.items(), key=lambda kv: -kv[1])))
    out.append("   memory per process (first sample after warm-up -> end):")
    out += rss_table(result)
    out += rss_over_time(result)
    out.append("   RESULT: " + ("OK - nothing lost, every process back, no error outside the kill windows"
                                if not result.failures else "FAILED"))
    for f in result.failures:
        out.append(f"     - {f}")
    return "\n".join(out)


def _range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    return float(lo), float(hi or lo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Options()
    ap.add_argument("--duration", type=float, default=d.duration, help="seconds of load (default %(default)s)")
    ap.add_argument("--rate", type=float, default=d.rate, help="points/s (sets the number of hosts)")
    ap.add_argument("--timestep", type=int, default=d.timestep, help="seconds between points of a series")
    ap.add_argument("--lines", type=int, default=d.lines, help="lines per write request")
    ap.add_argument("--senders", type=int, default=d.senders, help="parallel write connections")
    ap.add_argument("--ingest-workers", type=int, default=d.ingest_workers)
    ap.add_argument("--ui-users", type=int, default=d.ui_users)
    ap.add_argument("--jobs", type=int, default=d.jobs_running, help="jobs kept running")
    ap.add_argument("--kill-every", default="20-40", help="seconds between kills, MIN-MAX (default %(default)s)")
    ap.add_argument("--kill", default=",".join(KINDS),
                    help="process kinds to kill, comma-separated (default %(default)s; 'none' = no kills)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--keep", action="store_true", help="keep the installation directory (logs) afterwards")
    add_set_option(ap)
    a = ap.parse_args(argv)
    kinds = () if a.kill == "none" else tuple(k.strip() for k in a.kill.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        ap.error(f"--kill: unknown kind {bad[0]!r} (one of {', '.join(KINDS)}, or none)")
    opts = Options(duration=a.duration, rate=a.rate, timestep=a.timestep, lines=a.lines, senders=a.senders,
                   ingest_workers=a.ingest_workers, ui_users=a.ui_users, jobs_running=a.jobs,
                   kill_every=_range(a.kill_every) if kinds else (1e9, 1e9), kinds=kinds or KINDS, seed=a.seed,
                   settings=parse_settings(a.set), keep=a.keep)
    header(f"soak: {opts.duration:.0f} s, {opts.rate:,.0f} points/s, kill -9 every {a.kill_every} s of "
           f"{', '.join(kinds) or 'nothing'}")
    result = run(opts)
    print(report(result), flush=True)
    return 1 if result.failures else 0


if __name__ == "__main__":
    run_main(main)
