"""Sizes and offsets of every shared-memory segment.

The layout is a pure function of (retention, set of metric frequencies, memory cap).
The supervisor computes it, writes it into the header segment, and every other
process reads it back from the header, so no child needs the configuration to find
its way around the memory.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np

MAGIC = 0x4343_5348_4D31  # "CCSHM1"
VERSION = 3  # 3: latency histograms after the process table

# -- header (int64 words) ---------------------------------------------------
H_MAGIC = 0
H_VERSION = 1
H_CREATED = 2
H_REG_COUNT = 3  # committed registry entries (published last)
H_BLOB_USED = 4
H_REG_CAP = 5
H_BLOB_CAP = 6
H_NPOOLS = 7
H_HASH = 8
H_ALLOC_BYTES = 9  # bytes of data rows currently handed out (memory-cap accounting)
H_MEMCAP_BYTES = 10
H_RETENTION = 11
H_BOOT = 12  # incremented each time the supervisor (re)attaches
# Durability (see cc/storeproc/_checkpoint.py for the rotation protocol).
H_WAL_EPOCH = 13  # WAL files of epochs below this one are covered by a snapshot being written / written
H_RESTORE = 14  # RESTORE_*: whether the store process still has to load snapshot + WAL from disk
H_CHECKPOINT_REQ = 15  # bumped by anyone who wants a snapshot soon (a WAL file over max-wal-size, ...)
H_SNAPSHOT_EPOCH = 16  # epoch of the newest durable snapshot (informational)
H_ARCHIVED_TO = 17  # time up to which aged-out data was written to Parquet (informational)
RESTORE_NONE, RESTORE_PENDING, RESTORE_DONE = 0, 1, 2
H_POOLS = 64  # POOL_WORDS words per pool
POOL_WORDS = 8
P_FREQ, P_CAP, P_ROWS_CAP, P_NEXT_ROW, P_FREE_TOP = range(5)
MAX_POOLS = 64
H_COUNTERS = 1024
COUNTER_SLOTS = 128
COUNTERS_PER_SLOT = 32
H_PROCS = H_COUNTERS + COUNTER_SLOTS * COUNTERS_PER_SLOT
PROC_WORDS = 8
PR_PID, PR_ACTIVE, PR_STARTED, PR_REQUESTS = range(4)
# JetStream consumer of an ingest worker, as of its newest batch: messages still pending in the stream,
# the age in ms of the newest message taken when written, and its stream sequence (0 = no JetStream
# batch since the worker started).
PR_NATS_PENDING, PR_NATS_LAG_MS, PR_NATS_SEQ = 4, 5, 6
# Latency histograms (``/metrics``), one block of MAX_HISTOGRAMS per process slot, owned like the
# counters: each process adds to its own slot, readers sum.  A histogram is HIST_WORDS int64 words:
# one count per bucket (not cumulative; the last is +Inf), the observation count, the sum in
# microseconds and the bytes of the observed requests.
H_HISTS = H_PROCS + COUNTER_SLOTS * PROC_WORDS
HIST_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0, 120.0, 600.0, 1800.0)  # seconds: request latencies up to snapshot durations
HIST_BUCKETS = len(HIST_BOUNDS) + 1
HIST_COUNT, HIST_SUM_US, HIST_BYTES = HIST_BUCKETS, HIST_BUCKETS + 1, HIST_BUCKETS + 2
HIST_WORDS = 24
MAX_HISTOGRAMS = 16
HEADER_WORDS = H_HISTS + COUNTER_SLOTS * MAX_HISTOGRAMS * HIST_WORDS
# Which process owns which slot (the supervisor hands each child its number; ingest workers
# find their siblings' slots from it).
STORE_SLOT, WEB_SLOT, ARCHIVER_SLOT, INGEST_SLOT_BASE = 0, 1, 2, 8

# Counter names, one column per name in every process slot.  Owners add to their
# own slot only, so the counters need no lock; readers sum the slots.
COUNTERS = (
    "requests",
    "lines",
    "points_written",
    "malformed_lines",
    "unknown_metric",
    "too_old",
    "too_far_future",
    "invalid_name",
    "not_a_metric",
    "memory_cap_rejected",
    "series_registered",
    "bytes_received",
    "auth_failures",
    "series_released",
    "wal_records",
    "wal_bytes",
    "wal_fsyncs",
    "snapshots_written",
    "restored_series",
    "restored_points",
    "wal_replayed_points",
    "wal_bad_records",
    "archived_points",
    "memcap_freed_series",
    "nats_messages",
    "nats_redelivered",
    "nats_redelivered_points",
    "snapshot_errors",
    "parquet_archive_errors",
)
COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}
assert len(COUNTERS) <= COUNTERS_PER_SLOT

# Histogram names (index = position): what each one times.
HISTOGRAMS = (
    "ingest_http",  # POST /api/write on an ingest worker (bytes: request bodies)
    "ingest_ws",  # one line-protocol message over /api/ws
    "ingest_nats",  # one batch of NATS messages written
    "wal_fsync",  # one fsync of a WAL file
    "snapshot",  # one snapshot written by the store process
    "parquet_archive",  # one run of the Parquet archiver (metric-store.cleanup.mode archive)
)
HIST_INDEX = {name: i for i, name in enumerate(HISTOGRAMS)}
assert len(HISTOGRAMS) <= MAX_HISTOGRAMS

# -- registry entry ----------------------------------------------------------
# khash/hhash: 64-bit hashes of the whole key and of (cluster, host).  Every process
# finds series by scanning these columns with numpy instead of keeping its own
# dictionary of all keys (which cost ~1 KB per series in every process).
ENTRY_DTYPE = np.dtype(
    [
        ("key_off", "<i8"),
        ("row", "<i8"),
        ("gen", "<i8"),
        ("khash", "<i8"),
        ("hhash", "<i8"),
        ("key_len", "<i4"),
        ("pool", "<i2"),
        ("flags", "<i2"),
    ]
)
FLAG_RELEASED = 1

# -- pool row metadata (int64 words per row) -----------------------------------
META_WORDS = 6
M_LAST, M_SEQ, M_GEN, M_SID, M_FIRST = range(5)  # M_FIRST: oldest bin ever written (-1 = none)

# Lock bytes in the lock segment (OFD record locks).
LOCK_REGISTRY = 0
LOCK_POOL_BASE = 1
LOCK_WAL_BASE = 256  # + process slot: held by an ingest process from reading H_WAL_EPOCH to its WAL append

MAX_REGISTRY = 1 << 25
KEY_BYTES_PER_ENTRY = 96


@dataclass(frozen=True)
class PoolLayout:
    frequency: int
    capacity: int  # slots per row = ceil(retention / frequency) + 1
    rows_cap: int

    @property
    def row_bytes(self) -> int:
        return self.capacity * 8


@dataclass(frozen=True)
class Layout:
    retention: int
    memory_cap_bytes: int
    pools: tuple[PoolLayout, ...]
    registry_capacity: int
    blob_capacity: int

    @classmethod
    def compute(cls, retention: int, frequencies: list[int], memory_cap_gb: float,
                slack_seconds: int = 0) -> Layout:
        """Size the segments.  Segments are sparse: only rows in use occupy RAM.

        ``slack_seconds`` adds ring slots beyond the retention window, so that data which
        aged out stays readable until the Parquet archiver has written it (archive mode).
        """
        if retention <= 0:
            raise ValueError("retention must be positive")
        freqs = sorted({int(f) for f in frequencies if f > 0}) or [60]
        if len(freqs) > MAX_POOLS:
            raise ValueError(f"at most {MAX_POOLS} distinct metric frequencies are supported")
        cap_bytes = int(memory_cap_gb * 1e9) if memory_cap_gb > 0 else physical_memory()
        pools = []
        for f in freqs:
            # +1 slot: any point inside the retention window fits while the newest bin is "now".
            capacity = max(2, math.ceil((retention + max(0, slack_seconds)) / f) + 1)
            rows = max(1024, cap_bytes // (capacity * 8))
            pools.append(PoolLayout(f, capacity, int(rows)))
        reg = int(min(MAX_REGISTRY, max(4096, sum(p.rows_cap for p in pools))))
        return cls(retention, cap_bytes, tuple(pools), reg, reg * KEY_BYTES_PER_ENTRY)

    def fingerprint(self) -> int:
        text = repr((VERSION, self.retention, self.memory_cap_bytes, self.pools, self.registry_capacity,
                     self.blob_capacity))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "little")

    def pool_index(self, frequency: int) -> int:
        for i, p in enumerate(self.pools):
            if p.frequency == frequency:
                return i
        raise KeyError(frequency)


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 16 << 30
