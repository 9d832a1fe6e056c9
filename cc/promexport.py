"""Prometheus ``/metrics``: who may scrape, and the metric families every listener exposes.

The ingest listener serves the metric store's view (:func:`store_families`): what the N ingest
workers, the store process and the WAL counted into shared memory (cc/shm counters and
histograms, one slot per process, summed here), so whichever worker answers a scrape reports
the whole installation.  The web listener serves the web process's own request metrics plus
the supervisor's view of every process and the archiver's queue (:func:`process_families`,
:func:`archiver_families`).  prometheus_client writes the text format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from cc.jwtauth import AuthError, TokenVerifier, token_from_headers
from cc.netacl import IPAllowList, parse_address, parse_networks
from cc.shm import INGEST_SLOT_BASE, Store
from cc.shm._layout import PR_NATS_LAG_MS, PR_NATS_PENDING, PR_NATS_SEQ, PR_PID

__all__ = ["CONTENT_TYPE", "ScrapeAccess", "archiver_families", "process_families", "render",
           "store_families"]

# Text format 0.0.4: what Prometheus 2.x (Debian 12: 2.42) negotiates for plain text.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
SCRAPE_ROLES = ("api", "admin")


class ScrapeAccess:
    """``main.metrics-allowed-ips`` may scrape without a token; anyone else needs a JWT with the
    ``api`` or ``admin`` role (and an address in ``main.api-allowed-ips``, as for every API call)."""

    def __init__(self, entries: list[str], verifier: TokenVerifier | None, api_allow: IPAllowList):
        self.any = "*" in entries
        self.networks = parse_networks([e for e in entries if e != "*"], "main.metrics-allowed-ips")
        self.verifier = verifier
        self.api_allow = api_allow

    def refusal(self, peer: str, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """None if the scrape is allowed, else (HTTP status, reason)."""
        if self.any:
            return None
        addr = parse_address(peer)
        if addr is not None and any(addr in n for n in self.networks):
            return None
        if not self.api_allow.allows(peer):
            return 403, f"address {peer} is in neither main.metrics-allowed-ips nor main.api-allowed-ips"
        if self.verifier is None:  # main.disable-authentication
            return None
        token = token_from_headers(headers)
        if not token:
            return 401, ("missing JWT (send 'Authorization: Bearer <token>' with the api or admin role, "
                         "or add the scraper to main.metrics-allowed-ips)")
        try:
            claims = self.verifier.verify(token)
        except AuthError as e:
            return 401, str(e)
        if not set(SCRAPE_ROLES) & set(claims.roles):
            return 403, f"token of user {claims.user!r} lacks the 'api' or 'admin' role"
        return None


class _Families:
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def render(families: list[Metric], *registries: CollectorRegistry) -> bytes:
    """The text exposition of ready-made families plus live registries (prometheus_client formats)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Families(families))
    return generate_latest(reg) + b"".join(generate_latest(r) for r in registries)


def _counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=list(labels or {}))
    fam.add_metric(list((labels or {}).values()), value)
    return fam


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _histogram(fam: HistogramMetricFamily, labels: list[str], h: dict[str, Any]) -> None:
    buckets = [(repr(float(b)), c) for b, c in h["buckets"]] + [("+Inf", h["count"])]
    fam.add_metric(labels, buckets, h["sum"])


REJECT_REASONS = {  # reason label -> shared-memory counter
    "malformed": "malformed_lines",
    "unknown_metric": "unknown_metric",
    "not_a_metric": "not_a_metric",
    "invalid_name": "invalid_name",
    "too_old": "too_old",
    "too_far_future": "too_far_future",
    "memory_cap": "memory_cap_rejected",
}
INGEST_ENDPOINTS = {"write": "ingest_http", "ws": "ingest_ws", "nats": "ingest_nats"}
SIMPLE_COUNTERS = (  # (metric name without _total, shared-memory counter, help)
    ("cc_ingest_lines", "lines", "Line-protocol lines received (HTTP, WebSocket, NATS)"),
    ("cc_ingest_points_accepted", "points_written", "Points written into shared memory"),
    ("cc_ingest_auth_failures", "auth_failures", "Write requests refused for a missing or bad JWT"),
    ("cc_store_series_registered", "series_registered", "Series registered in shared memory"),
    ("cc_store_series_released", "series_released", "Series released after leaving the retention window"),
    ("cc_store_memcap_freed_series", "memcap_freed_series", "Series freed to stay under metric-store.memory-cap"),
    ("cc_wal_records", "wal_records", "Records appended to the write-ahead log"),
    ("cc_wal_bytes", "wal_bytes", "Bytes appended to the write-ahead log"),
    ("cc_wal_fsyncs", "wal_fsyncs", "fsyncs of write-ahead log files"),
    ("cc_wal_replayed_points", "wal_replayed_points", "Points replayed from the write-ahead log at restore"),
    ("cc_wal_bad_records", "wal_bad_records", "Damaged write-ahead log records skipped at restore"),
    ("cc_snapshots_written", "snapshots_written", "Snapshots (checkpoints) written"),
    ("cc_snapshot_errors", "snapshot_errors", "Snapshots that failed"),
    ("cc_restored_points", "restored_points", "Points restored from snapshots"),
    ("cc_parquet_archived_points", "archived_points", "Points written to the Parquet archive"),
    ("cc_parquet_archive_errors", "parquet_archive_errors", "Parquet archive runs that failed"),
    ("cc_nats_messages", "nats_messages", "NATS messages received by the ingest workers"),
    ("cc_nats_redelivered", "nats_redelivered", "JetStream messages delivered again"),
    ("cc_nats_redelivered_points", "nats_redelivered_points", "Points of JetStream redeliveries (not counted as accepted)"),
)


def store_families(store: Store) -> list[Metric]:
    """Everything the shared memory counts, summed over the process slots (all ingest workers)."""
    c = store.counter_totals()
    hists = store.histogram_totals()
    out: list[Metric] = [_counter(f"{name}_total", doc, c[key]) for name, key, doc in SIMPLE_COUNTERS]
    rejected = CounterMetricFamily("cc_ingest_points_rejected_total",
                                   "Lines or points not stored, by reason", labels=["reason"])
    for reason, key in REJECT_REASONS.items():
        rejected.add_metric([reason], c[key])
    out.append(rejected)
    requests = CounterMetricFamily("cc_ingest_requests_total", "Ingest requests (NATS: batches) by endpoint",
                                   labels=["endpoint"])
    received = CounterMetricFamily("cc_ingest_bytes_total", "Bytes of line protocol received by endpoint",
                                   labels=["endpoint"])
    latency = HistogramMetricFamily("cc_ingest_request_duration_seconds",
                                    "Time from request to answer (NATS: batch written) by endpoint", labels=["endpoint"])
    for endpoint, hist in INGEST_ENDPOINTS.items():
        h = hists[hist]
        requests.add_metric([endpoint], h["count"])
        received.add_metric([endpoint], h["bytes"])
        _histogram(latency, [endpoint], h)
    out += [requests, received, latency]
    for name, hist, doc in (("cc_wal_fsync_duration_seconds", "wal_fsync", "Duration of one WAL fsync"),
                            ("cc_snapshot_duration_seconds", "snapshot", "Duration of one snapshot"),
                            ("cc_parquet_archive_duration_seconds", "parquet_archive",
                             "Duration of one Parquet archive run")):
        fam = HistogramMetricFamily(name, doc)
        _histogram(fam, [], hists[hist])
        out.append(fam)
    usage = store.usage()
    slots = store.pool_slots()
    out.append(_gauge("cc_store_series", "Series holding a ring buffer now", sum(p["used"] for p in slots)))
    out.append(_gauge("cc_store_allocated_bytes", "Bytes of metric buffers in use", usage["allocated_bytes"]))
    out.append(_gauge("cc_store_memory_cap_bytes", "metric-store.memory-cap in bytes", usage["memory_cap_bytes"]))
    out.append(_gauge("cc_store_retention_seconds", "metric-store.retention-in-memory", usage["retention_seconds"]))
    for name, key, doc in (("cc_store_pool_series", "used", "Series in the pool of one frequency"),
                           ("cc_store_pool_free_slots", "free", "Series the pool of one frequency can still take"),
                           ("cc_store_pool_capacity", "capacity", "Series the pool of one frequency holds at most")):
        fam = GaugeMetricFamily(name, doc, labels=["frequency"])
        for p in slots:
            fam.add_metric([str(p["frequency"])], p[key])
        out.append(fam)
    out += _jetstream_families(store)
    return out


def _jetstream_families(store: Store) -> list[Metric]:
    """The JetStream consumer (all workers share it) as of the newest message (highest stream sequence)
    any running worker wrote: batches of several workers finish in any order.  No samples without JetStream."""
    pending = GaugeMetricFamily("cc_nats_pending_messages",
                                "JetStream messages not yet delivered, as of the newest message written")
    lag = GaugeMetricFamily("cc_nats_lag_seconds", "Age of the newest JetStream message when its batch was written")
    rows = [store.procs[s] for s in range(INGEST_SLOT_BASE, len(store.procs))
            if int(store.procs[s, PR_PID]) and int(store.procs[s, PR_NATS_SEQ])]
    if rows:
        newest = max(rows, key=lambda r: int(r[PR_NATS_SEQ]))
        pending.add_metric([], int(newest[PR_NATS_PENDING]))
        lag.add_metric([], int(newest[PR_NATS_LAG_MS]) / 1000)
    return [pending, lag]


def process_families(status: dict[str, Any] | None) -> list[Metric]:
    """The supervisor's view (its ``status`` answer): state, restarts, uptime and RSS of every process."""
    up = GaugeMetricFamily("cc_supervisor_up", "1 if the supervisor answered on its control socket",
                           value=1 if status else 0)
    if not status:
        return [up]
    procs = status.get("processes", [])
    labels = ["process"]
    running = GaugeMetricFamily("cc_process_up", "1 while the process runs, 0 while it waits to restart",
                                labels=labels)
    restarts = CounterMetricFamily("cc_process_restarts_total", "Restarts since the supervisor started",
                                   labels=labels)
    crashes = CounterMetricFamily("cc_process_crashes_total", "Unexpected exits since the supervisor started",
                                  labels=labels)
    uptime = GaugeMetricFamily("cc_process_uptime_seconds", "Seconds since the process (re)started", labels=labels)
    rss = GaugeMetricFamily("cc_process_resident_memory_bytes", "Resident set size", labels=labels)
    nats = GaugeMetricFamily("cc_nats_connected", "1 while the process is connected to NATS", labels=labels)
    for p in procs:
        name = [str(p["name"])]
        running.add_metric(name, 1 if p.get("pid") else 0)
        restarts.add_metric(name, p.get("restarts") or 0)
        crashes.add_metric(name, p.get("crashes") or 0)
        if p.get("uptime") is not None:
            uptime.add_metric(name, p["uptime"])
        if p.get("rss") is not None:
            rss.add_metric(name, p["rss"])
        if "nats" in p:
            nats.add_metric(name, 1 if p["nats"] == "connected" else 0)
    sup = status.get("supervisor", {})
    if sup.get("uptime") is not None:
        uptime.add_metric(["supervisor"], sup["uptime"])
    if sup.get("rss") is not None:
        rss.add_metric(["supervisor"], sup["rss"])
    shm = status.get("shared_memory", {})
    return [up, running, restarts, crashes, uptime, rss, nats,
            _gauge("cc_shm_segments", "Shared-memory segments of this installation", shm.get("segments", 0)),
            _gauge("cc_shm_bytes", "Bytes of the shared-memory segments (sparse: not all resident)",
                   shm.get("allocated_bytes", 0))]


def archiver_families(status: dict[str, Any] | None) -> list[Metric]:
    """The archiver's ``status`` answer: queue length, jobs archived, failures."""
    up = GaugeMetricFamily("cc_archiver_up", "1 if the archiver answered on its socket", value=1 if status else 0)
    if not status:
        return [up]
    out: list[Metric] = [up]
    if status.get("queue") is not None:
        out.append(_gauge("cc_archive_queue_length", "Stopped jobs waiting to be archived", status["queue"]))
    out.append(_gauge("cc_archiver_busy", "1 while the archiver writes a job", 1 if status.get("busy") else 0))
    out.append(_counter("cc_jobs_archived_total", "Jobs written to the job archive by this archiver process",
                        status.get("archived", 0)))
    out.append(_counter("cc_archive_job_seconds", "Seconds spent archiving the jobs counted in "
                        "cc_jobs_archived_total (metric data, statistics, writing the files)",
                        status.get("archiveSeconds", 0)))
    if status.get("lastArchiveSeconds") is not None:
        out.append(_gauge("cc_archive_last_job_seconds", "Seconds the latest archived job took",
                          status["lastArchiveSeconds"]))
    out.append(_counter("cc_archive_failed_attempts_total", "Failed attempts to archive a job (retried)",
                        status.get("failedAttempts", 0)))
    out.append(_counter("cc_archive_given_up_total", "Jobs marked 'archiving failed' after the last attempt",
                        status.get("givenUp", 0)))
    return out + task_families(status.get("tasks") or [])


def task_families(tasks: list[dict[str, Any]]) -> list[Metric]:
    """The archiver's maintenance tasks (:mod:`cc.tasks`): runs, failures, last duration and run time."""
    labels = ["task"]
    runs = CounterMetricFamily("cc_task_runs", "Runs of a maintenance task since the archiver started",
                               labels=labels)
    failures = CounterMetricFamily("cc_task_failures", "Failed runs of a maintenance task since the archiver "
                                   "started", labels=labels)
    duration = GaugeMetricFamily("cc_task_last_duration_seconds", "Duration of the task's latest run",
                                 labels=labels)
    last = GaugeMetricFamily("cc_task_last_run_timestamp_seconds", "Unix time the task's latest run started",
                             labels=labels)
    failing = GaugeMetricFamily("cc_task_failing", "1 if the task's latest run failed", labels=labels)
    for t in tasks:
        name = [str(t.get("name"))]
        runs.add_metric(name, t.get("runs") or 0)
        failures.add_metric(name, t.get("failures") or 0)
        failing.add_metric(name, 1 if t.get("last_error") else 0)
        if t.get("last_duration") is not None:
            duration.add_metric(name, t["last_duration"])
        if t.get("last_start") is not None:
            last.add_metric(name, t["last_start"])
    return [runs, failures, duration, last, failing]
