"""Private memory of the web process over time under a repeated mix of UI, REST and probing requests.

Why: a review saw the web process grow from 77 to 186 MiB during an hour of probing.  This
reproduces that pattern in minutes: rounds of a burst of requests followed by a pause of
``--pause`` seconds (11 s: Trio retires idle worker threads after 10 s, so every burst runs on
new threads, as sporadic traffic does).  A burst (4 clients in parallel):

* UI: the job list page (jobs query and the metric plots of 10 archived jobs) and the job view
  of archived jobs never viewed before (job, metrics of every scope, statistics) -- the queries
  of ``frontend/static/js`` (``bench/_soak_ui.py``), as a logged-in user;
* REST: ``GET /api/jobs/{id}`` of archived jobs (metadata and data), ``GET /api/jobs/``;
* probing, as a fuzzer does: GraphQL queries never sent before (~5 KB each), ids above
  SQLite's range, bodies of the wrong type, failed logins with new user names.

After each round: the web process's private memory (``RssAnon``), its RSS, and how many file
descriptors it holds on ``job.db``.  The archived jobs (``--jobs``, 7 node-scope metrics, 360
points per series) hold ~75 MB of JSON, ~5x that once parsed: more than the archive cache may
keep, so the cache's bound shows.

Command: ``.venv/bin/python bench/web_memory.py`` (``--rounds 30``).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import orjson  # noqa: E402
import trio  # noqa: E402

from bench._common import header, installation, run_main  # noqa: E402
from bench._soak_chaos import private_rss  # noqa: E402
from bench._soak_ui import TAGS_QUERY, joblist_metrics_query, load_queries  # noqa: E402

USER, PASSWORD = "mem-admin", "mem-password"


def write_jobs(root: Path, n: int, points: int, seed: int = 7) -> list[tuple[int, int]]:
    """Finished jobs straight into the archive (meta.json + data.json.gz, no fsync: generated data)."""
    from cc.archive import job_meta
    from cc.clusters import parse_cluster
    from tests.archive_gen import job_data, make_job, write_meta
    from tests.helpers import small_cluster

    cluster = parse_cluster(small_cluster(), "c1")
    units = {name: m.unit.get("base", "") for name, m in cluster.subclusters[0].metrics.items()}
    rng = random.Random(seed)
    out = []
    for i in range(n):
        job, stats = make_job(cluster, i, rng, base_start=int(time.time()) - 30 * 86400)
        meta = job_meta(job, stats)
        path = write_meta(root, meta)
        data = job_data([r["hostname"] for r in job.resources], units, points, seed=i)
        (path.parent / "data.json.gz").write_bytes(gzip.compress(orjson.dumps(data), 1))
        out.append((job.job_id, job.start_time))
    return out


def web_pid(inst) -> int:
    return int(inst.pid_of("web"))


def db_fds(pid: int, db: Path) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(db):
                n += 1
        except OSError:
            pass
    return n


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Mix:
    """The requests of one burst; ``cursor`` walks through the archived jobs so each view is new."""

    def __init__(self, web: str, token: str, db_ids: list[int], rng: random.Random):
        self.web, self.token, self.ids, self.rng = web, token, db_ids, rng
        self.q = load_queries()
        self.cursor = 0
        self.probe = 0
        self.errors: list[str] = []
        self.requests = 0

    def next_ids(self, n: int) -> list[int]:
        out = [self.ids[(self.cursor + k) % len(self.ids)] for k in range(n)]
        self.cursor += n
        return out

    async def gql(self, client: httpx.AsyncClient, query: str, variables: dict, *, expect_ok: bool = True) -> None:
        r = await client.post("/query", content=orjson.dumps({"query": query, "variables": variables}),
                              headers={"Content-Type": "application/json"})
        self.requests += 1
        if expect_ok and (r.status_code != 200 or r.json().get("errors")):
            self.errors.append(f"graphql {r.status_code}: {r.text[:200]}")
        elif not expect_ok and r.status_code >= 500:
            self.errors.append(f"graphql probe {r.status_code}: {r.text[:200]}")

    async def rest(self, client: httpx.AsyncClient, method: str, path: str, body: bytes | None = None,
                   ok: tuple[int, ...] = (200,)) -> None:
        r = await client.request(method, path, content=body, headers={"Authorization": f"Bearer {self.token}"})
        self.requests += 1
        if r.status_code not in ok:
            self.errors.append(f"{method} {path} {r.status_code}: {r.text[:200]}")

    async def client(self, client: httpx.AsyncClient, views: int) -> None:
        q = self.q
        for _ in range(views):
            job_ids = self.next_ids(3)
            await self.gql(client, q["joblist.JOBS_QUERY"], {"filter": [{"cluster": {"eq": "c1"}}],
                                                             "page": {"itemsPerPage": 50, "page": 1},
                                                             "order": {"field": "startTime", "type": "col",
                                                                       "order": "DESC"}})
            await self.gql(client, TAGS_QUERY, {})
            batch = self.next_ids(10)
            await self.gql(client, joblist_metrics_query(q, 10),
                           {**{f"i{k}": str(j) for k, j in enumerate(batch)}, "metrics": ["cpu_load", "flops_any"]})
            for j in job_ids:
                await self.gql(client, q["pages/job.JOB_QUERY"], {"id": str(j)})
                await self.gql(client, q["pages/job.INITIAL_QUERY"],
                               {"id": str(j), "cpu": ["cpu_load", "flops_any", "mem_bw", "net_bw"], "acc": ["acc_power"],
                                "cpuScopes": ["node", "socket", "hwthread"], "accScopes": ["accelerator"]})
                await self.gql(client, q["pages/job.STATS_QUERY"], {"id": str(j), "metrics": ["cpu_load"]})
                await self.rest(client, "GET", f"/api/jobs/{self.next_ids(1)[0]}")
            await self.rest(client, "GET", "/api/jobs/?items-per-page=50&page=1")
            # probing
            self.probe += 1
            p = self.probe
            fields = " ".join(f"x{p}_{k}: jobs(page: {{itemsPerPage: {k % 5 + 1}, page: 1}}) {{ count }}"
                              for k in range(60))
            await self.gql(client, "query { " + fields + " }", {}, expect_ok=False)
            await self.gql(client, f"query {{ nosuchfield{p} }}", {}, expect_ok=False)
            await self.rest(client, "GET", f"/api/jobs/{10**22 + p}", ok=(400, 404, 422))
            await self.rest(client, "PATCH", "/api/jobs/edit_meta/1", orjson.dumps({"key": {}, "value": p}),
                            ok=(400, 404, 422))
            r = await client.post("/login", content=orjson.dumps({"username": f"probe{p}", "password": "x"}),
                                  headers={"Content-Type": "application/json", "Accept": "application/json"})
            self.requests += 1
            if r.status_code not in (401, 429):
                self.errors.append(f"failed login answered {r.status_code}")


async def run_rounds(inst, args, db_ids: list[int]) -> list[tuple[int, float, int, int, int]]:
    token = inst.token("mem", roles=("api", "admin"))
    mix = Mix(inst.web, token, db_ids, random.Random(3))
    rows = []
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=inst.web, timeout=120, trust_env=False) as login_client:
        r = await login_client.post("/login", content=orjson.dumps({"username": USER, "password": PASSWORD}),
                                    headers={"Content-Type": "application/json", "Accept": "application/json"})
        assert r.status_code == 200, r.text
        cookies = login_client.cookies
    clients = [httpx.AsyncClient(base_url=inst.web, timeout=120, trust_env=False, cookies=cookies)
               for _ in range(args.clients)]
    try:
        pid = web_pid(inst)
        rows.append((0, 0.0, private_rss(pid) or 0, vm_rss(pid), db_fds(pid, inst.cfg.db_path)))
        for rnd in range(1, args.rounds + 1):
            async with trio.open_nursery() as n:
                for c in clients:
                    n.start_soon(mix.client, c, args.views)
            await trio.sleep(args.pause)
            if web_pid(inst) != pid:
                raise RuntimeError("the web process restarted during the benchmark:\n" + inst.output())
            row = (rnd, time.monotonic() - t0, private_rss(pid) or 0, vm_rss(pid), db_fds(pid, inst.cfg.db_path))
            rows.append(row)
            print(f"   round {rnd:3d}  +{row[1]:5.0f} s  private {row[2] / 2**20:7.1f} MiB  RSS {row[3] / 2**20:7.1f} MiB"
                  f"  job.db fds {row[4]:3d}  ({mix.requests} requests, {len(mix.errors)} errors)", flush=True)
    finally:
        for c in clients:
            await c.aclose()
    if mix.errors:
        print("   errors: " + "; ".join(mix.errors[:5]))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--pause", type=float, default=11.0, help="seconds between bursts")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--views", type=int, default=3, help="job-list + 3 job views per client and burst")
    ap.add_argument("--jobs", type=int, default=1500, help="archived jobs")
    ap.add_argument("--points", type=int, default=360, help="points per archived series")
    args = ap.parse_args(argv)
    header(f"web memory: {args.rounds} rounds of a request burst + {args.pause:.0f} s pause")
    from tests.helpers import small_cluster

    with installation(clusters={"c1": small_cluster()}, ingest_workers=1) as inst:
        t = time.perf_counter()
        write_jobs(inst.cfg.archive_path, args.jobs, args.points)
        r = inst.cli("init-db", "--no-validate", timeout=600)
        if r.returncode:
            raise RuntimeError(f"init-db failed: {r.stderr[-2000:]}")
        r = inst.cli("add-user", f"{USER}:admin,api:{PASSWORD}")
        if r.returncode:
            raise RuntimeError(f"add-user failed: {r.stderr}")
        import sqlite3

        conn = sqlite3.connect(inst.cfg.db_path)
        db_ids = [i for (i,) in conn.execute("SELECT id FROM job ORDER BY id")]
        conn.close()
        json_bytes = sum(len(gzip.decompress(p.read_bytes())) for p in inst.cfg.archive_path.rglob("data.json.gz"))
        print(f"   {len(db_ids)} archived jobs, {json_bytes / 1e6:.0f} MB of data.json, written and imported in "
              f"{time.perf_counter() - t:.0f} s")
        rows = trio.run(run_rounds, inst, args, db_ids)
    first, third, last = rows[1], rows[len(rows) * 2 // 3], rows[-1]
    mib = 1 / 2**20
    print(f"   private memory of the web process: start {rows[0][2] * mib:.1f} MiB, after round 1 "
          f"{first[2] * mib:.1f}, after round {third[0]} {third[2] * mib:.1f}, at the end {last[2] * mib:.1f} MiB; "
          f"growth over the last third {(last[2] - third[2]) * mib:+.1f} MiB; job.db descriptors {rows[0][4]} -> "
          f"{last[4]}")
    return 0


if __name__ == "__main__":
    run_main(main)
