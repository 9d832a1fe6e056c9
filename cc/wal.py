"""Write-ahead log of acknowledged points.

Each ingest process appends to its own file ``<checkpoints>/wal/<epoch>-w<worker>-<pid>-<n>.wal``
(no lock shared with other writers on the hot path), in its worker thread right after the
shared-memory write and before the HTTP answer.  Why parsed points and not the raw body:
replay then needs no parser and runs at memory speed, and a record is ~6 bytes per point
after zstd instead of ~60 bytes of line protocol.

File format (little endian)::

    b"CCWAL001"
    record*     16-byte header "<IIBBHI": crc32, stored length, type, flags, 0, raw length,
                then ``stored length`` payload bytes.  The CRC covers header bytes 4..16 and
                the payload, so a torn or overwritten record is always detected.
    types:      HEADER  orjson {"epoch", "worker", "pid", "created"}
                KEYS    orjson [[kid, frequency, [cluster, host, metric, type, type-id,
                        stype, stype-id]], ...] - defines the file-local ids used below
                POINTS  "<qI" receive time (ns), n; int32 kid[n]; int64 ts[n] (s); float64 value[n]
    flags:      1 = payload is zstd-compressed

A reader skips a record that is incomplete, fails its checksum or does not decode, up to
the next record that checks out again, and counts and names each damaged range with its
offset (a crash tears at most the tail; one writer per file).

Sync policy (``checkpoints.wal-sync``): ``always`` - an answer is sent only after an
fsync covering its record (group commit: one fsync serves every request appended while
the previous one ran); ``interval`` - a background fsync every ``wal-sync-interval``;
``off`` - the kernel writes back when it likes.  In all three the record is written
(``write(2)``) before the answer, so a killed process never loses an acknowledged point.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import trio
import zstandard

from cc.fsio import fsync_dir, write_all
from cc.shm import _layout as L
from cc.shm._registry import SeriesKey
from cc.shm._snapshot import decompress_exact
from cc.shm._store import Store

log = logging.getLogger("wal")

MAGIC = b"CCWAL001"
REC = struct.Struct("<IIBBHI")
PTS = struct.Struct("<qI")
T_HEADER, T_KEYS, T_POINTS = 1, 2, 3
F_ZSTD = 1
COMPRESS_MIN_POINTS = 32
# Largest raw payload a reader accepts (53M points in one request, far above any body
# limit in use); bounds what a damaged length field can make it allocate.
MAX_RAW_BYTES = 1 << 30
# Bytes 8..12 of a record header: a known type, flags 0/1, the reserved zero (for resync).
_RECORD_TAIL_RE = re.compile(rb"[\x01-\x03][\x00\x01]\x00\x00")
SYNC_POLICIES = ("always", "interval", "off")


class WalError(OSError):
    """A WAL record could not be written; the request must not be acknowledged."""


def wal_dir(checkpoint_dir: Path) -> Path:
    return Path(checkpoint_dir) / "wal"


def file_epoch(path: Path) -> int:
    """Epoch from a WAL file name (``<epoch>-w<worker>-...wal``); -1 if the name is not ours."""
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else -1


def list_wal_files(checkpoint_dir: Path) -> list[Path]:
    d = wal_dir(checkpoint_dir)
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if p.suffix == ".wal" and file_epoch(p) >= 0),
                  key=lambda p: (file_epoch(p), p.name))


def _frame(rtype: int, payload: bytes, compress: zstandard.ZstdCompressor | None = None) -> bytes:
    raw_len, flags = len(payload), 0
    if compress is not None:
        payload, flags = compress.compress(payload), F_ZSTD
    tail = REC.pack(0, len(payload), rtype, flags, 0, raw_len)[4:]
    crc = zlib.crc32(payload, zlib.crc32(tail))
    return struct.pack("<I", crc) + tail + payload


class WalWriter:
    """The WAL of one ingest process.  ``gate()`` + ``append()`` run in its (single) ingest thread.

    ``gate()`` holds this process's WAL lock byte (``LOCK_WAL_BASE + slot``) from reading the
    epoch word to the end of the append; the checkpointer takes every such lock once after
    raising the epoch, which is what makes rotation safe (see cc/storeproc/_checkpoint.py).
    """

    def __init__(self, directory: Path, store: Store, slot: int, worker: int, *, sync: str = "always",
                 max_size: int = 0):
        if sync not in SYNC_POLICIES:
            raise ValueError(f"wal-sync: expected one of {', '.join(SYNC_POLICIES)}, got {sync!r}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store, self.slot, self.worker = store, slot, worker
        self.sync_policy, self.max_size = sync, max_size
        self.fd = -1
        self.epoch = -1
        self.size = 0
        self.path: Path | None = None
        self.appended = 0  # sequence number of the newest record (across files)
        self.synced = 0  # every record up to this sequence number is on disk
        self._opened = 0
        self._fd_lock = threading.Lock()  # fd swaps vs. the syncer thread
        self._defined = np.zeros(1024, dtype=bool)  # kid -> KEYS record already in the current file
        self._zstd = zstandard.ZstdCompressor(level=1)
        self._asked_checkpoint = False
        self._counters = store.counters[slot]

    # -- files ----------------------------------------------------------------------

    @contextlib.contextmanager
    def gate(self) -> Iterator[None]:
        """Hold the WAL lock and make sure the open file belongs to the current epoch."""
        with self.store.locks.hold(L.LOCK_WAL_BASE + self.slot):
            epoch = int(self.store.hdr[L.H_WAL_EPOCH])
            if epoch != self.epoch or self.fd < 0:
                self._open(epoch)
            yield

    def _open(self, epoch: int) -> None:
        self._close_current()
        self._opened += 1
        path = self.dir / f"{epoch:012d}-w{self.worker}-{os.getpid()}-{self._opened}.wal"
        head = MAGIC + _frame(T_HEADER, orjson.dumps({"epoch": epoch, "worker": self.worker, "pid": os.getpid(),
                                                      "created": time.time()}))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, head)
            if self.sync_policy != "off":
                os.fsync(fd)
                fsync_dir(self.dir)
        except OSError as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise WalError(e.errno, f"cannot create WAL file {path}: {e.strerror}") from None
        with self._fd_lock:
            self.fd, self.epoch, self.path, self.size = fd, epoch, path, len(head)
        self._defined[:] = False
        self._asked_checkpoint = False

    def _close_current(self) -> None:
        with self._fd_lock:
            fd, self.fd = self.fd, -1
            if fd >= 0:
                try:
                    if self.sync_policy != "off":
                        os.fsync(fd)
                    self.synced = self.appended
                finally:
                    os.close(fd)

    def close(self) -> None:
        """Flush (per policy) and close; called when the process stops."""
        with contextlib.suppress(OSError):
            self._close_current()

    # -- appending --------------------------------------------------------------------

    def append(self, kids: np.ndarray, ts: np.ndarray, values: np.ndarray, now: float,
               describe: Callable[[int], tuple[SeriesKey, int]]) -> int:
        """Append one request's points (inside ``gate()``); returns the record's sequence number."""
        if not len(kids):
            return 0
        kids = np.asarray(kids, dtype=np.int64)
        top = int(kids.max()) + 1
        if top > len(self._defined):
            grown = np.zeros(max(top, 2 * len(self._defined)), dtype=bool)
            grown[: len(self._defined)] = self._defined
            self._defined = grown
        parts = []
        if not self._defined[kids].all():
            new = np.unique(kids[~self._defined[kids]])
            defs = []
            for k in new.tolist():
                key, freq = describe(k)
                defs.append([k, freq, list(key)])
            parts.append(_frame(T_KEYS, orjson.dumps(defs)))
        n = len(kids)
        payload = b"".join((PTS.pack(int(now * 1e9), n), kids.astype("<i4").tobytes(),
                            np.asarray(ts, dtype="<i8").tobytes(), np.asarray(values, dtype="<f8").tobytes()))
        parts.append(_frame(T_POINTS, payload, self._zstd if n >= COMPRESS_MIN_POINTS else None))
        data = b"".join(parts)
        self._write(data)
        if len(parts) > 1:
            self._defined[new] = True
        self.appended += 1
        self.size += len(data)
        c = self._counters
        c[L.COUNTER_INDEX["wal_records"]] += 1
        c[L.COUNTER_INDEX["wal_bytes"]] += len(data)
        if self.max_size and self.size > self.max_size and not self._asked_checkpoint:
            self._asked_checkpoint = True
            self.store.hdr[L.H_CHECKPOINT_REQ] += 1
            log.info("WAL file %s passed max-wal-size (%d bytes); asked for a checkpoint", self.path, self.max_size)
        return self.appended

    def _write(self, data: bytes) -> None:
        try:
            write_all(self.fd, data)
        except OSError as e:
            # Cut the partial record off, so later records stay readable; else start a new file.
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                self.epoch = -1
            raise WalError(e.errno, f"cannot append to WAL file {self.path}: {e.strerror}") from None

    def sync(self, target: int) -> None:
        """fsync the current file; afterwards every record up to ``target`` is durable (syncer thread)."""
        with self._fd_lock:
            fd = os.dup(self.fd) if self.fd >= 0 else -1
        if fd >= 0:
            t0 = time.perf_counter()
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            self._counters[L.COUNTER_INDEX["wal_fsyncs"]] += 1
            self.store.observe(self.slot, L.HIST_INDEX["wal_fsync"], time.perf_counter() - t0)
        self.synced = max(self.synced, target)


class WalSyncer:
    """The fsync side of the sync policy, as a Trio task of the ingest process."""

    def __init__(self, writer: WalWriter, interval: float = 1.0):
        self.writer = writer
        self.policy = writer.sync_policy
        self.interval = interval
        self._wakeup = trio.Event()
        self._waiters: list[tuple[int, trio.Event]] = []
        self.error: str | None = None

    async def run(self) -> None:
        if self.policy == "off":
            return
        while True:
            if self.policy == "always":
                await self._wakeup.wait()
                self._wakeup = trio.Event()
            else:
                await trio.sleep(self.interval)
            target = self.writer.appended
            if target > self.writer.synced:
                try:
                    await trio.to_thread.run_sync(self.writer.sync, target)
                    self.error = None
                except OSError as e:
                    self.error = f"fsync of the WAL failed: {e.strerror or e}"
                    log.error("%s", self.error)
            keep = []
            for seq, ev in self._waiters:
                if seq <= self.writer.synced or self.error:
                    ev.set()
                else:
                    keep.append((seq, ev))
            self._waiters = keep
            if keep:
                self._wakeup.set()

    async def wait_synced(self, seq: int) -> None:
        """Return once record ``seq`` is durable (policy ``always``); raise WalError if fsync failed."""
        if self.policy != "always" or seq <= self.writer.synced:
            return
        ev = trio.Event()
        self._waiters.append((seq, ev))
        self._wakeup.set()
        await ev.wait()
        if seq > self.writer.synced:
            raise WalError(0, self.error or "WAL fsync failed")


# -- reading --------------------------------------------------------------------------


@dataclass
class PointsRecord:
    received: float  # seconds
    kids: np.ndarray
    ts: np.ndarray
    values: np.ndarray


@dataclass
class WalFileStats:
    path: str
    header: dict = field(default_factory=dict)
    records: int = 0
    points: int = 0
    keys: int = 0
    bad_records: int = 0  # torn tail or checksum failure (reading stops there)
    bad_bytes: int = 0
    damage: list[tuple[int, int, str]] = field(default_factory=list)  # (offset, bytes skipped, why)
    error: str | None = None  # every damaged range, with its offset
    first_received: float | None = None
    last_received: float | None = None
    min_ts: int | None = None
    max_ts: int | None = None

    @property
    def epoch(self) -> int:
        return int(self.header.get("epoch", -1))


class WalReader:
    """Iterate the records of one WAL file; ``stats`` is complete after iteration.

    Damage never ends the file: a record that is incomplete, fails its checksum or does
    not decode is skipped with what follows up to the next record whose header and CRC
    check out again (a torn tail is the usual case: nothing follows).  Each damaged range
    is counted once in ``bad_records`` and named with its offset in ``error``.  A false
    resynchronisation needs a 32-bit CRC match on top of a plausible header (about 2**-40
    per byte scanned).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.stats = WalFileStats(str(path))
        self.key_of: dict[int, tuple[SeriesKey, int]] = {}  # file-local kid -> (key, frequency)

    def __iter__(self) -> Iterator[PointsRecord]:
        st = self.stats
        try:
            blob = self.path.read_bytes()
        except OSError as e:
            st.error = f"cannot read: {e.strerror}"
            return
        size = len(blob)
        if size < len(MAGIC):
            if size:
                self._bad(0, size, "truncated file header at offset 0")
            return
        pos = len(MAGIC)
        if blob[: len(MAGIC)] != MAGIC:
            # A flipped bit there must not cost the whole file: records may still follow.
            nxt = self._resync(blob, 0)
            self._bad(0, nxt, "not a WAL file (bad magic) at offset 0")
            pos = nxt
        yield from self._records(blob, pos)

    def _records(self, blob: bytes, pos: int) -> Iterator[PointsRecord]:
        st = self.stats
        mv = memoryview(blob)
        size = len(blob)
        dctx = zstandard.ZstdDecompressor()
        while pos < size:
            rec, why, end = self._record(mv, size, pos, dctx)
            if why is not None:
                nxt = self._resync(blob, pos + 1)
                self._bad(pos, nxt - pos, f"{why} at offset {pos}")
                pos = nxt
                continue
            pos = end
            st.records += 1
            if rec is not None:
                yield rec

    def _record(self, mv: memoryview, size: int, pos: int, dctx: zstandard.ZstdDecompressor
                ) -> tuple[PointsRecord | None, str | None, int]:
        """(points or None, reason it is bad or None, end offset) of the record at ``pos``."""
        if size - pos < REC.size:
            return None, "torn record header at end of file", size
        crc, length, rtype, flags, _, raw_len = REC.unpack_from(mv, pos)
        end = pos + REC.size + length
        if end > size:
            return None, "truncated record at end of file", size
        payload = mv[pos + REC.size:end]
        if zlib.crc32(payload, zlib.crc32(mv[pos + 4:pos + REC.size])) != crc:
            return None, "checksum mismatch", end
        try:
            data = _unpack_payload(payload, flags, raw_len, dctx)
            rec = None
            if rtype == T_HEADER:
                header = orjson.loads(data)
                if not isinstance(header, dict):
                    raise ValueError("header record is not an object")
                self.stats.header = header
            elif rtype == T_KEYS:
                self._keys(orjson.loads(data))
            elif rtype == T_POINTS:
                rec = self._points(data)
        except (zstandard.ZstdError, orjson.JSONDecodeError, struct.error, ValueError, TypeError) as e:
            return None, f"undecodable record ({e})", end
        return rec, None, end

    def _resync(self, blob: bytes, start: int) -> int:
        """Offset of the next record at or after ``start`` whose header is plausible and whose CRC
        matches (``len(blob)`` if there is none)."""
        size = len(blob)
        mv = memoryview(blob)
        for m in _RECORD_TAIL_RE.finditer(blob, start + 8):
            pos = m.start() - 8
            if size - pos < REC.size:
                break
            crc, length, rtype, flags, _, raw_len = REC.unpack_from(mv, pos)
            end = pos + REC.size + length
            if end <= size and raw_len <= MAX_RAW_BYTES and \
                    zlib.crc32(mv[pos + REC.size:end], zlib.crc32(mv[pos + 4:pos + REC.size])) == crc:
                return pos
        return size

    def _keys(self, defs) -> None:
        if not isinstance(defs, list):
            raise ValueError("keys record is not a list")
        parsed = []
        for d in defs:
            if not (isinstance(d, list) and len(d) == 3):
                raise ValueError(f"key definition {d!r:.80} is not [kid, frequency, key]")
            kid, freq, parts = d
            if not _is_int(kid) or not 0 <= kid < 2**31 or not _is_int(freq) or freq <= 0:
                raise ValueError(f"key definition {d!r:.80}: bad kid or frequency")
            if not (isinstance(parts, list) and len(parts) == len(SeriesKey._fields)
                    and all(isinstance(x, str) and "\x1f" not in x for x in parts)):
                raise ValueError(f"key definition {d!r:.80}: key is not {len(SeriesKey._fields)} strings")
            parsed.append((kid, SeriesKey(*parts), freq))
        for kid, key, freq in parsed:  # all or nothing
            self.key_of[kid] = (key, freq)
        self.stats.keys += len(parsed)

    def _points(self, data: bytes) -> PointsRecord:
        st = self.stats
        recv_ns, n = PTS.unpack_from(data, 0)
        o = PTS.size
        if len(data) != o + 20 * n:
            raise ValueError(f"points record of {n} points has {len(data)} bytes, expected {o + 20 * n}")
        kids = np.frombuffer(data, dtype="<i4", count=n, offset=o).astype(np.int64)
        if n and int(kids.min()) < 0:
            raise ValueError("negative series id in points record")
        ts = np.frombuffer(data, dtype="<i8", count=n, offset=o + 4 * n)
        vals = np.frombuffer(data, dtype="<f8", count=n, offset=o + 12 * n)
        recv = recv_ns / 1e9
        st.points += n
        st.first_received = recv if st.first_received is None else min(st.first_received, recv)
        st.last_received = recv if st.last_received is None else max(st.last_received, recv)
        if n:
            lo, hi = int(ts.min()), int(ts.max())
            st.min_ts = lo if st.min_ts is None else min(st.min_ts, lo)
            st.max_ts = hi if st.max_ts is None else max(st.max_ts, hi)
        return PointsRecord(recv, kids, ts, vals)

    def _bad(self, pos: int, nbytes: int, why: str) -> None:
        st = self.stats
        st.bad_records += 1
        st.bad_bytes += nbytes
        st.damage.append((pos, nbytes, why))
        st.error = why if st.error is None else f"{st.error}; {why}"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _unpack_payload(payload: memoryview, flags: int, raw_len: int, dctx: zstandard.ZstdDecompressor) -> bytes:
    """The record's payload, decompressed to exactly ``raw_len`` bytes (ValueError if it is not)."""
    if flags & ~F_ZSTD:
        raise ValueError(f"unknown flags {flags:#x}")
    if not flags & F_ZSTD:
        data = bytes(payload)
    else:
        data = decompress_exact(dctx, payload, raw_len, MAX_RAW_BYTES)
    if len(data) != raw_len:
        raise ValueError(f"payload has {len(data)} bytes, the header says {raw_len}")
    return data


def wal_info(path: Path) -> WalFileStats:
    """Read a whole WAL file for ``cc-supervise checkpoint-info``."""
    r = WalReader(path)
    for _ in r:
        pass
    return r.stats
