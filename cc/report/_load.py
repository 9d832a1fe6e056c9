"""Finding a job and its metric data for the report: the job database, then the archive or the running web process.

Archived jobs are read from the job archive directly (no process needs to run).  Running
jobs (and finished ones not archived yet) live in the metric store's shared memory, which
only the running installation reads consistently; their data comes from its REST API
(``GET /api/jobs/metrics/{id}``, the same code path the web UI uses), with a short-lived
token signed by ``JWT_PRIVATE_KEY``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from cc.archive import JobArchive
from cc.clusters import Cluster, load_clusters
from cc.config import Config, ConfigError
from cc.db import MONITORING_ARCHIVING_SUCCESSFUL, Job, Tag, connect
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.db._model import SELECT_JOB

METRICS = ("cpu_load", "cpu_user", "mem_used", "acc_utilization", "acc_mem_used", "flops_any", "mem_bw")
SINCE_RE = re.compile(r"(\d+)([smhdw])")
SINCE_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TOKEN_SECONDS = 300


class ReportError(Exception):
    """The job cannot be reported on; the message says why."""


@dataclass
class JobRecord:
    job: Job
    cluster: Cluster
    tags: list[Tag]
    source: str  # "archive" or "metric store"


def parse_since(text: str) -> int:
    """``7d``, ``12h``, ``2w``, ``1d12h`` -> seconds."""
    parts = SINCE_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ReportError(f"--since: expected a duration such as 7d, 12h or 1d12h, got {text!r}")
    return sum(int(n) * SINCE_UNIT[u] for n, u in parts)


def _clusters(cfg: Config) -> dict[str, Cluster]:
    try:
        return load_clusters(cfg.archive_path)
    except ConfigError as e:
        raise ReportError(str(e)) from None


def _db(cfg: Config):
    if not cfg.db_path.exists():
        raise ReportError(f"no job database at {cfg.db_path}")
    return connect(cfg.db_path, readonly=True)


def _record(conn, job: Job, clusters: dict[str, Cluster]) -> JobRecord:
    cluster = clusters.get(job.cluster)
    if cluster is None:
        raise ReportError(f"job {job.job_id}: cluster {job.cluster!r} has no cluster.json in the archive")
    archived = job.monitoring_status == MONITORING_ARCHIVING_SUCCESSFUL and job.state != "running"
    return JobRecord(job, cluster, tags.job_tags(conn, job.id, None), "archive" if archived else "metric store")


def find_job(cfg: Config, job_id: int, cluster: str | None = None) -> JobRecord:
    """The newest job with this scheduler id (on ``cluster``); ambiguous ids across clusters are an error."""
    clusters = _clusters(cfg)
    conn = _db(cfg)
    try:
        found = jobs.find_jobs(conn, job_id, cluster)
        if not found:
            raise ReportError(f"no job {job_id}" + (f" on cluster {cluster!r}" if cluster else "") + " in the database")
        names = sorted({j.cluster for j in found})
        if len(names) > 1:
            raise ReportError(f"job {job_id} exists on clusters {', '.join(names)}: choose one with --cluster")
        return _record(conn, found[0], clusters)
    finally:
        conn.close()


def user_jobs(cfg: Config, user: str, since: int, cluster: str | None = None, limit: int = 100,
              now: float | None = None, errors: list[str] | None = None) -> list[JobRecord]:
    """The user's jobs started in the last ``since`` seconds, newest first (jobs that cannot be reported on:
    a message in ``errors``)."""
    clusters = _clusters(cfg)
    conn = _db(cfg)
    try:
        sql = SELECT_JOB + " WHERE job.hpc_user = ? AND job.start_time >= ?"
        params: list[Any] = [user, int((now or time.time()) - since)]
        if cluster:
            sql += " AND job.cluster = ?"
            params.append(cluster)
        rows = conn.execute(sql + " ORDER BY job.start_time DESC LIMIT ?", [*params, limit]).fetchall()
        out = []
        for job in (Job.from_row(r) for r in rows):
            try:
                out.append(_record(conn, job, clusters))
            except ReportError as e:
                if errors is not None:
                    errors.append(str(e))
        return out
    finally:
        conn.close()


def load_data(cfg: Config, rec: JobRecord) -> dict[str, Any]:
    """The job's JobData for the report's metrics (all scopes the archive holds; node scope from the store)."""
    job = rec.job
    if rec.source == "archive":
        doc = JobArchive(cfg.archive_path).load_data(job.cluster, job.job_id, job.start_time)
        return {m: v for m, v in doc.items() if m in METRICS or _power(rec.cluster, m)}
    return _from_web(cfg, rec)


def _power(cluster: Cluster, metric: str) -> bool:
    return any((sc.metrics.get(metric) is not None and sc.metrics[metric].raw.get("energy") == "power")
               for sc in cluster.subclusters)


def web_url(cfg: Config) -> str:
    """The running web process's base URL (``var/run/ports.json``, written by the supervisor)."""
    try:
        ports = orjson.loads((cfg.run_dir / "ports.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        raise ReportError("the job is running (or not archived yet) and its data is in the metric store, but no "
                          "installation is running here (no var/run/ports.json): start it with cc-supervise "
                          "start") from None
    return ("https://" if cfg.tls_cert else "http://") + ports["web"]


def _from_web(cfg: Config, rec: JobRecord) -> dict[str, Any]:
    from cc.jwtauth import AuthError, load_private_key, sign_token

    priv = cfg.secret("JWT_PRIVATE_KEY")
    if not priv:
        raise ReportError("JWT_PRIVATE_KEY is not set (in .env or the environment): needed to ask the web process")
    try:
        token = sign_token(load_private_key(priv), "cc-report", ["api", "admin"], TOKEN_SECONDS)
    except AuthError as e:
        raise ReportError(str(e)) from None
    metrics = [m for m in rec.cluster.metrics if m in METRICS or _power(rec.cluster, m)]
    params = [("scope", "node"), *(("metric", m) for m in metrics)]
    url = f"{web_url(cfg)}/api/jobs/metrics/{rec.job.id}"
    try:
        r = httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                      verify=str(cfg.tls_cert) if cfg.tls_cert else True, trust_env=False)
    except httpx.HTTPError as e:
        raise ReportError(f"{url}: {e}") from None
    if r.status_code != 200:
        raise ReportError(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
    doc = r.json()
    if doc.get("error"):
        raise ReportError(f"{url}: {doc['error'].get('message')}")
    out: dict[str, Any] = {}
    for entry in (doc.get("data") or {}).get("jobMetrics") or []:
        out.setdefault(entry["name"], {})[entry["scope"]] = entry["metric"]
    return out
