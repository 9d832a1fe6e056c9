"""Shared-memory metric buffers: the only package that knows the memory layout.

Public surface:

* :class:`Layout` - segment sizes computed from retention, frequencies and memory cap.
* :class:`Store` - ``Store.create`` (supervisor) / ``Store.attach`` (everyone else);
  ``resolve`` / ``write`` for ingest, ``read`` / ``series_of_host`` for queries,
  ``release`` / ``repair`` / ``stale_series`` for the store process.
* :class:`SeriesKey` - the identity of one series.
* :func:`instance_id`, :func:`unlink_all`, :func:`list_segments` - naming and cleanup.
* ``cc.shm._snapshot`` - the whole store to a file and back (``write_snapshot``, ``load_snapshot``).
"""

from cc.shm._layout import (
    ARCHIVER_SLOT,
    COUNTER_INDEX,
    COUNTERS,
    HIST_INDEX,
    HISTOGRAMS,
    INGEST_SLOT_BASE,
    STORE_SLOT,
    WEB_SLOT,
    Layout,
)
from cc.shm._registry import REJECT_MEMCAP, REJECT_REGISTRY_FULL, REJECT_UNKNOWN_FREQUENCY, SeriesKey
from cc.shm._segments import instance_id, list_segments, unlink_all
from cc.shm._store import MAX_FUTURE_SECONDS, LayoutMismatch, ReadResult, Store, WriteStats

__all__ = [
    "ARCHIVER_SLOT",
    "INGEST_SLOT_BASE",
    "STORE_SLOT",
    "WEB_SLOT",
    "COUNTERS",
    "COUNTER_INDEX",
    "HISTOGRAMS",
    "HIST_INDEX",
    "MAX_FUTURE_SECONDS",
    "REJECT_MEMCAP",
    "REJECT_REGISTRY_FULL",
    "REJECT_UNKNOWN_FREQUENCY",
    "Layout",
    "LayoutMismatch",
    "ReadResult",
    "SeriesKey",
    "Store",
    "WriteStats",
    "instance_id",
    "list_segments",
    "unlink_all",
]
