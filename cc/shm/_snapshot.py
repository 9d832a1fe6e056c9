"""Snapshots of the whole shared store on disk, and loading them back.

A snapshot holds every live series: its key, frequency, newest and oldest bin, and its
ring.  Binary format (default; ``checkpoints.file-format: "wal"``), little endian::

    b"CCSNAP01"
    frame*      28-byte header "<4sIQQI": tag, flags, stored length, raw length, crc32 of the
                stored payload; then the payload (flag 1 = zstd-compressed)
    HEAD        orjson {"version", "epoch", "created", "retention", "pools": [[freq, slots]...]}
    CHNK*       one pool, up to ~16 MB of rings: "<IIqq" n, slots, frequency, 0;
                int64 last[n]; int64 first[n]; uint32 key length[n]; keys (SeriesKey.encode());
                zero padding to 8 bytes; float64 ring[n][slots] (slot = bin % slots, NaN = empty)
    FOOT        orjson {"series", "points", "chunks", "min_ts", "max_ts"}: the file is complete

Why raw rings: when the ring size did not change, loading is a copy per chunk (the
restore-speed target is seconds for tens of millions of points); NaN runs compress to
nothing, so short series cost little.  Rings are copied under the seqlock protocol, so
each one is consistent; points written while the snapshot runs are in the WAL anyway.

The JSON format (``file-format: "json"``) is for humans: one object per series with
``from`` (timestamp of the first value) and ``data`` (chronological, null = empty).
Files are written to a temporary name, fsynced and renamed, so a reader sees either
nothing or a complete file; a damaged file fails its checksums or its footer check.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import zstandard

from cc.fsio import fsync_dir
from cc.shm import _layout as L
from cc.shm._registry import SeriesKey
from cc.shm._store import Store

MAGIC = b"CCSNAP01"
FRAME = struct.Struct("<4sIQQI")
CHUNK_HEAD = struct.Struct("<IIqq")
F_ZSTD = 1
CHUNK_BYTES = 16 << 20
MAX_RAW_BYTES = 1 << 31  # a chunk holds ~16 MB of rings; bounds what a damaged length can allocate
VERSION = 1


class SnapshotError(ValueError):
    """A snapshot file is damaged or incomplete (message names the file and the problem)."""


@dataclass
class Chunk:
    """Series of one frequency.  ``ring[i, b % slots]`` holds bin ``b`` for b in [first, last]."""

    frequency: int
    slots: int
    keys: list[SeriesKey]
    last: np.ndarray
    first: np.ndarray
    ring: np.ndarray


@dataclass
class SnapshotStats:
    path: str
    format: str = "binary"
    epoch: int = -1
    created: float = 0.0
    retention: int = 0
    series: int = 0
    points: int = 0
    chunks: int = 0
    bytes: int = 0
    min_ts: int | None = None
    max_ts: int | None = None
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def snapshot_name(epoch: int, fmt: str) -> str:
    return f"snapshot-{epoch:012d}.{'json' if fmt == 'json' else 'bin'}"


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the snapshot files in ``directory``, newest first."""
    out = []
    d = Path(directory)
    if not d.is_dir():
        return out
    for p in d.iterdir():
        if p.name.startswith("snapshot-") and p.suffix in (".bin", ".json"):
            stem = p.name[len("snapshot-"):].split(".", 1)[0]
            if stem.isdigit():
                out.append((int(stem), p))
    return sorted(out, reverse=True)


# -- reading the live store ---------------------------------------------------------------


def live_series(store: Store, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sids, rows, gens) of the registry entries of pool ``p`` that are not released."""
    count = int(store.hdr[L.H_REG_COUNT])
    reg = store.reg[:count]
    sel = np.flatnonzero((reg["pool"] == p) & ((reg["flags"] & L.FLAG_RELEASED) == 0))
    return sel.astype(np.int64), reg["row"][sel], reg["gen"][sel]


def encoded_keys(store: Store, sids: np.ndarray) -> tuple[np.ndarray, bytes]:
    """Key lengths and the concatenated encoded keys of ``sids`` (one gather, no Python loop)."""
    ent = store.reg[sids]
    off, lens = ent["key_off"].astype(np.int64), ent["key_len"].astype(np.int64)
    if not len(lens):
        return lens.astype(np.uint32), b""
    starts = np.cumsum(lens) - lens
    idx = np.repeat(off - starts, lens) + np.arange(int(lens.sum()))
    return lens.astype(np.uint32), store.blob[idx].tobytes()


def copy_rows(store: Store, p: int, rows: np.ndarray, gens: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seqlock-consistent copies of rows: (ring, last, first, alive)."""
    pool = store.pools[p]
    meta, data = store.copy_consistent(p, rows, lambda r: pool.data[r])
    alive = (meta[:, L.M_GEN] == gens) & (meta[:, L.M_LAST] >= 0)
    return data, meta[:, L.M_LAST].copy(), meta[:, L.M_FIRST].copy(), alive


def iter_store_chunks(store: Store, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple]:
    """Consistent chunks of every live series: (frequency, slots, key lengths, keys, last, first, ring)."""
    for p, pool in enumerate(store.pools):
        sids, rows, gens = live_series(store, p)
        step = max(1, chunk_bytes // (pool.cap * 8))
        for a in range(0, len(sids), step):
            ring, last, first, alive = copy_rows(store, p, rows[a:a + step], gens[a:a + step])
            s = sids[a:a + step]
            if not alive.all():
                s, ring, last, first = s[alive], ring[alive], last[alive], first[alive]
            if not len(s):
                continue
            lens, blob = encoded_keys(store, s)
            yield pool.frequency, pool.cap, lens, blob, last, np.maximum(first, last - pool.cap + 1), ring


# -- binary format --------------------------------------------------------------------------


def _frame(tag: bytes, payload: bytes, cctx: zstandard.ZstdCompressor | None) -> bytes:
    raw = len(payload)
    flags = 0
    if cctx is not None:
        payload, flags = cctx.compress(payload), F_ZSTD
    return FRAME.pack(tag, flags, len(payload), raw, zlib.crc32(payload)) + payload


def _chunk_payload(freq: int, slots: int, lens: np.ndarray, blob: bytes, last: np.ndarray, first: np.ndarray,
                   ring: np.ndarray) -> bytes:
    n = len(lens)
    pad = b"\0" * (-(CHUNK_HEAD.size + 20 * n + len(blob)) % 8)
    return b"".join((CHUNK_HEAD.pack(n, slots, freq, 0), last.astype("<i8").tobytes(),
                     first.astype("<i8").tobytes(), lens.astype("<u4").tobytes(), blob, pad,
                     np.ascontiguousarray(ring, dtype="<f8").tobytes()))


def decompress_exact(dctx: zstandard.ZstdDecompressor, payload, raw_len: int, limit: int) -> bytes:
    """A zstd frame that must decompress to ``raw_len`` bytes (at most ``limit``).

    Why not just ``decompress(max_output_size=raw_len)``: when the frame header states a
    content size, zstandard allocates that size and ignores the limit, so a damaged header
    could ask for gigabytes.  Raises ValueError or ZstdError.
    """
    if raw_len > limit:
        raise ValueError(f"raw length {raw_len} is implausible (more than {limit})")
    stated = zstandard.frame_content_size(payload)
    if stated != -1 and stated != raw_len:
        raise ValueError(f"zstd frame holds {stated} bytes, the header says {raw_len}")
    return dctx.decompress(payload, max_output_size=raw_len)


def _parse_chunk(data: bytes, where: str) -> Chunk:
    """A CHNK payload; raises SnapshotError (or struct.error / ValueError) if it is inconsistent."""
    n, slots, freq, _ = CHUNK_HEAD.unpack_from(data, 0)
    o = CHUNK_HEAD.size
    if len(data) < o + 20 * n:
        raise SnapshotError(f"{where}: chunk of {n} series has only {len(data)} bytes")
    if n and (slots < 1 or freq < 1):
        raise SnapshotError(f"{where}: chunk with {slots} slots per ring and frequency {freq}")
    last = np.frombuffer(data, "<i8", n, o)
    first = np.frombuffer(data, "<i8", n, o + 8 * n)
    lens = np.frombuffer(data, "<u4", n, o + 16 * n).astype(np.int64)
    k0 = o + 20 * n
    kend = k0 + int(lens.sum())
    blob = data[k0:kend]
    r0 = kend + (-kend % 8)
    if len(data) != r0 + 8 * n * slots:
        raise SnapshotError(f"{where}: chunk of {n} series has {len(data)} bytes, expected {r0 + 8 * n * slots}")
    if n and bool((first > last).any()):
        raise SnapshotError(f"{where}: chunk has a series whose first bin is after its last")
    ring = np.frombuffer(data, "<f8", n * slots, r0).reshape(n, slots)
    ends = np.cumsum(lens)
    keys = []
    for e, ln in zip(ends.tolist(), lens.tolist(), strict=True):
        parts = blob[e - ln:e].decode().split("\x1f")
        if len(parts) != len(SeriesKey._fields):
            raise SnapshotError(f"{where}: chunk has a series key of {len(parts)} parts")
        keys.append(SeriesKey(*parts))
    return Chunk(int(freq), int(slots), keys, last, first, ring)


def write_snapshot(store: Store, directory: Path, epoch: int, *, fmt: str = "binary", threads: int = 2
                   ) -> SnapshotStats:
    """Write ``snapshot-<epoch>`` atomically (temp file, fsync, rename, fsync directory)."""
    t0 = time.perf_counter()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / snapshot_name(epoch, fmt)
    tmp = directory / f".{final.name}.tmp"
    st = SnapshotStats(str(final), "json" if fmt == "json" else "binary", epoch, time.time(), store.retention)
    try:
        with open(tmp, "wb") as f:
            if fmt == "json":
                _write_json(store, f, st)
            else:
                _write_binary(store, f, st, max(1, threads))
            f.flush()
            os.fsync(f.fileno())
            st.bytes = f.tell()
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    st.seconds = time.perf_counter() - t0
    return st


def _account(st: SnapshotStats, freq: int, last: np.ndarray, first: np.ndarray, points: int) -> None:
    st.series += len(last)
    st.points += points
    if len(last):
        lo, hi = int(first.min()) * freq, int(last.max()) * freq
        st.min_ts = lo if st.min_ts is None else min(st.min_ts, lo)
        st.max_ts = hi if st.max_ts is None else max(st.max_ts, hi)


def _write_binary(store: Store, f, st: SnapshotStats, threads: int) -> None:
    head = {"version": VERSION, "epoch": st.epoch, "created": st.created, "retention": st.retention,
            "pools": [[p.frequency, p.cap] for p in store.pools]}
    f.write(MAGIC + _frame(b"HEAD", orjson.dumps(head), None))
    # One compressor per thread (a ZstdCompressor is not thread-safe); zstd releases the GIL.
    ctxs = [zstandard.ZstdCompressor(level=1) for _ in range(threads)]
    free = list(range(threads))

    def compress(payload: bytes) -> bytes:
        i = free.pop()
        try:
            return _frame(b"CHNK", payload, ctxs[i])
        finally:
            free.append(i)

    with ThreadPoolExecutor(threads) as ex:
        pending = []
        for freq, slots, lens, blob, last, first, ring in iter_store_chunks(store):
            _account(st, freq, last, first, int(np.count_nonzero(~np.isnan(ring))))
            pending.append(ex.submit(compress, _chunk_payload(freq, slots, lens, blob, last, first, ring)))
            st.chunks += 1
            while len(pending) > threads:
                f.write(pending.pop(0).result())
        for fut in pending:
            f.write(fut.result())
    foot = {"series": st.series, "points": st.points, "chunks": st.chunks, "min_ts": st.min_ts, "max_ts": st.max_ts}
    f.write(_frame(b"FOOT", orjson.dumps(foot), None))


def _frames(path: Path, blob: bytes) -> list[tuple[bytes, int, memoryview, int, int, int]]:
    """(tag, flags, payload, raw length, crc, offset) of every frame; checks structure and footer, not CRCs."""
    mv = memoryview(blob)
    if blob[:len(MAGIC)] != MAGIC:
        raise SnapshotError(f"{path}: not a snapshot file (bad magic)")
    pos, out, seen_foot = len(MAGIC), [], False
    while pos < len(blob):
        if seen_foot:
            raise SnapshotError(f"{path}: data after the footer at offset {pos}")
        if len(blob) - pos < FRAME.size:
            raise SnapshotError(f"{path}: truncated frame header at offset {pos}")
        tag, flags, length, raw, crc = FRAME.unpack_from(mv, pos)
        end = pos + FRAME.size + length
        if end > len(blob) or tag not in (b"HEAD", b"CHNK", b"FOOT"):
            raise SnapshotError(f"{path}: truncated or damaged {tag!r} frame at offset {pos}")
        out.append((tag, flags, mv[pos + FRAME.size:end], raw, crc, pos))
        seen_foot = tag == b"FOOT"
        pos = end
    if not seen_foot:
        raise SnapshotError(f"{path}: incomplete (no footer after offset {pos}): the write was interrupted")
    if not out or out[0][0] != b"HEAD":
        raise SnapshotError(f"{path}: no header frame at offset {len(MAGIC)}")
    return out


def read_binary(path: Path, *, verify_only: bool = False, threads: int = 2) -> Iterator[Chunk]:
    """Chunks of a binary snapshot; raises SnapshotError (naming the file) on any damage.

    Every checksum is verified (in ``threads`` threads: crc32 and zstd release the GIL)
    before the first chunk is returned, so a damaged file installs nothing; chunks are
    then decompressed ahead in the same threads while the caller installs earlier ones.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read: {e.strerror}") from None
    frames = _frames(path, blob)
    with ThreadPoolExecutor(max(1, threads)) as ex:
        for ok, (tag, _, _, _, _, pos) in zip(ex.map(lambda f: zlib.crc32(f[2]) == f[4], frames), frames,
                                              strict=True):
            if not ok:
                raise SnapshotError(f"{path}: checksum mismatch in {tag!r} frame at offset {pos}")
        if verify_only:
            return

        def decode(frame) -> bytes:
            tag, flags, payload, raw, _, pos = frame
            try:
                if flags & ~F_ZSTD:
                    raise ValueError(f"unknown flags {flags:#x}")
                data = decompress_exact(zstandard.ZstdDecompressor(), payload, raw, MAX_RAW_BYTES) \
                    if flags & F_ZSTD else bytes(payload)
                if len(data) != raw:
                    raise ValueError(f"{len(data)} bytes, the header says {raw}")
                return data
            except (zstandard.ZstdError, ValueError) as e:
                raise SnapshotError(f"{path}: undecodable {tag!r} frame at offset {pos}: {e}") from None

        try:
            head = orjson.loads(decode(frames[0]))
        except orjson.JSONDecodeError as e:
            raise SnapshotError(f"{path}: undecodable header at offset {frames[0][5]}: {e}") from None
        if not isinstance(head, dict):
            raise SnapshotError(f"{path}: header at offset {frames[0][5]} is not an object")
        chunks = [f for f in frames if f[0] == b"CHNK"]
        ahead = max(1, threads)
        pending = [ex.submit(decode, f) for f in chunks[:ahead]]
        for i in range(len(chunks)):
            data = pending[i].result()
            pending[i] = None
            if i + ahead < len(chunks):
                pending.append(ex.submit(decode, chunks[i + ahead]))
            try:
                chunk = _parse_chunk(data, f"{path}: chunk at offset {chunks[i][5]}")
            except (struct.error, ValueError) as e:
                if isinstance(e, SnapshotError):
                    raise
                raise SnapshotError(f"{path}: undecodable chunk at offset {chunks[i][5]}: {e}") from None
            yield chunk


def salvage_binary(path: Path, damage: list[str] | None = None) -> Iterator[Chunk]:
    """The chunks of a damaged binary snapshot that still check out, found by their frame tag.

    For a restore that has no intact snapshot left: every chunk whose frame header, CRC and
    contents are good is returned, wherever it sits; what lies between them is appended
    to ``damage`` as "offset N: reason" (never raises on damage; OSError if unreadable).
    """
    blob = Path(path).read_bytes()
    mv = memoryview(blob)
    dctx = zstandard.ZstdDecompressor()
    pos = gap = len(MAGIC)
    if blob[:len(MAGIC)] != MAGIC and damage is not None:
        damage.append("offset 0: bad magic")
    while True:
        pos = blob.find(b"CHNK", pos)
        if pos < 0 or len(blob) - pos < FRAME.size:
            break
        _, flags, length, raw, crc = FRAME.unpack_from(mv, pos)
        end = pos + FRAME.size + length
        chunk = None
        if end <= len(blob) and zlib.crc32(mv[pos + FRAME.size:end]) == crc:
            try:
                if flags & ~F_ZSTD:
                    raise ValueError(f"unknown flags {flags:#x}")
                payload = mv[pos + FRAME.size:end]
                data = decompress_exact(dctx, payload, raw, MAX_RAW_BYTES) if flags & F_ZSTD else bytes(payload)
                chunk = _parse_chunk(data, f"{path}: chunk at offset {pos}")
            except (zstandard.ZstdError, struct.error, ValueError) as e:
                if damage is not None:
                    damage.append(f"offset {pos}: undecodable chunk ({e})")
        if chunk is None:
            pos += 1
            continue
        if pos > gap and damage is not None and not _intact_frame(blob, b"HEAD", gap, pos):
            damage.append(f"offset {gap}: {pos - gap} damaged bytes before the chunk at offset {pos}")
        yield chunk
        pos = gap = end
    if damage is not None:
        if gap >= len(blob):
            damage.append(f"offset {gap}: no footer (the file ends early)")
        elif not _intact_frame(blob, b"FOOT", gap, len(blob)):
            damage.append(f"offset {gap}: {len(blob) - gap} damaged bytes at the end")


def _intact_frame(blob: bytes, tag: bytes, start: int, end: int) -> bool:
    """Whether blob[start:end] is exactly one intact frame of ``tag`` (the HEAD before the first
    chunk, the FOOT after the last)."""
    if end - start < FRAME.size:
        return False
    t, _, length, _, crc = FRAME.unpack_from(blob, start)
    return t == tag and start + FRAME.size + length == end and zlib.crc32(blob[start + FRAME.size:end]) == crc


def binary_header(path: Path) -> dict:
    with open(path, "rb") as f:
        blob = f.read(len(MAGIC) + FRAME.size + 65536)
    if blob[:len(MAGIC)] != MAGIC:
        raise SnapshotError(f"{path}: not a snapshot file (bad magic)")
    if len(blob) < len(MAGIC) + FRAME.size:
        raise SnapshotError(f"{path}: truncated header frame at offset {len(MAGIC)}")
    tag, flags, length, _, crc = FRAME.unpack_from(blob, len(MAGIC))
    payload = blob[len(MAGIC) + FRAME.size:len(MAGIC) + FRAME.size + length]
    if tag != b"HEAD" or flags or zlib.crc32(payload) != crc:
        raise SnapshotError(f"{path}: damaged header frame at offset {len(MAGIC)}")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"{path}: undecodable header at offset {len(MAGIC)}: {e}") from None


# -- JSON format -------------------------------------------------------------------------------


def _write_json(store: Store, f, st: SnapshotStats) -> None:
    f.write(orjson.dumps({"format": "cc-py snapshot", "version": VERSION, "epoch": st.epoch,
                          "created": st.created, "retention": st.retention})[:-1] + b',"series":[')
    sep = b""
    for freq, slots, lens, blob, last, first, ring in iter_store_chunks(store):
        pts = 0
        ends = np.cumsum(lens.astype(np.int64))
        for i, (e, ln) in enumerate(zip(ends.tolist(), lens.tolist(), strict=True)):
            k = SeriesKey.decode(blob[e - ln:e])
            lo, hi = int(first[i]), int(last[i])
            vals = ring[i, np.arange(lo, hi + 1) % slots]
            pts += int(np.count_nonzero(~np.isnan(vals)))
            doc = {"cluster": k.cluster, "host": k.host, "metric": k.metric, "type": k.type,
                   "type-id": k.type_id, "stype": k.stype, "stype-id": k.stype_id, "frequency": freq,
                   "from": lo * freq, "data": vals}
            f.write(sep + orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
            sep = b","
        _account(st, freq, last, first, pts)
        st.chunks += 1
    f.write(b'],"complete":true}')


_JSON_KEY_FIELDS = (("cluster", None), ("host", None), ("metric", None), ("type", "node"), ("type-id", ""),
                    ("stype", ""), ("stype-id", ""))


def _json_series(s: Any, where: str) -> tuple[int, int, SeriesKey, np.ndarray]:
    """(frequency, first bin, key, values) of one entry of a JSON snapshot; SnapshotError names the field."""
    if not isinstance(s, dict):
        raise SnapshotError(f"{where}: must be an object")
    parts = []
    for name, default in _JSON_KEY_FIELDS:
        v = s.get(name, default)
        if not isinstance(v, str) or "\x1f" in v or (default is None and not v):
            raise SnapshotError(f"{where}.{name}: must be a non-empty string" if default is None
                                else f"{where}.{name}: must be a string")
        parts.append(v)
    freq, frm, data = s.get("frequency"), s.get("from"), s.get("data")
    if not _json_int(freq) or freq < 1:
        raise SnapshotError(f"{where}.frequency: must be a positive integer, got {freq!r:.40}")
    if not _json_int(frm) or frm < 0:
        raise SnapshotError(f"{where}.from: must be a non-negative integer, got {frm!r:.40}")
    if not isinstance(data, list) or not all(v is None or (type(v) in (int, float)) for v in data):
        raise SnapshotError(f"{where}.data: must be a list of numbers and nulls")
    try:
        vals = np.array([np.nan if v is None else v for v in data], dtype=np.float64)
    except OverflowError:
        raise SnapshotError(f"{where}.data: a number is out of the float64 range") from None
    return freq, frm // freq, SeriesKey(*parts), vals


def _json_int(v: Any) -> bool:
    return type(v) is int and v < 2**62


def read_json(path: Path) -> Iterator[Chunk]:
    """Chunks of a JSON snapshot (series grouped by frequency and length, so rings are not padded)."""
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read: {e.strerror}") from None
    except orjson.JSONDecodeError as e:
        raise SnapshotError(f"{path}: invalid or truncated JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("complete") is not True or not isinstance(doc.get("series"), list):
        raise SnapshotError(f"{path}: not a complete cc-py JSON snapshot")
    groups: dict[tuple[int, int], list[tuple[int, SeriesKey, np.ndarray]]] = {}
    for i, s in enumerate(doc["series"]):
        freq, first, key, vals = _json_series(s, f"{path}: series[{i}]")
        groups.setdefault((freq, max(1, len(vals))), []).append((first, key, vals))
    for (freq, slots), items in groups.items():
        for a in range(0, len(items), 4096):
            part = items[a:a + 4096]
            ring = np.full((len(part), slots), np.nan)
            first = np.array([f for f, _, _ in part], dtype=np.int64)
            last = first + slots - 1
            for i, (_, _, vals) in enumerate(part):
                ring[i, (first[i] + np.arange(len(vals))) % slots] = vals
            yield Chunk(freq, slots, [k for _, k, _ in part], last, first, ring)


def read_snapshot(path: Path, threads: int = 2) -> Iterator[Chunk]:
    return read_json(path) if Path(path).suffix == ".json" else read_binary(path, threads=threads)


def verify_snapshot(path: Path) -> None:
    """Check every checksum and the footer without decompressing (cheap: one read + CRC)."""
    if Path(path).suffix == ".json":
        return  # parsed fully when loaded; nothing is installed before the parse succeeds
    for _ in read_binary(path, verify_only=True):
        pass


# -- loading into the store -----------------------------------------------------------------


@dataclass
class InstallStats:
    series: int = 0
    points: int = 0
    skipped_stale: int = 0
    rejected: int = 0  # no pool for the frequency, memory cap or registry full
    unknown_frequencies: set[int] = field(default_factory=set)


def install_chunk(store: Store, ch: Chunk, st: InstallStats, *, keep_from: float | None = None,
                  counter_slot: int | None = None) -> None:
    """Register the chunk's series and put their rings in place (overwrites existing rows)."""
    p = store.pool_for_frequency(ch.frequency)
    if p is None:
        st.rejected += len(ch.keys)
        st.unknown_frequencies.add(ch.frequency)
        return
    keep = np.ones(len(ch.keys), dtype=bool)
    if keep_from is not None:
        keep = (ch.last + 1) * ch.frequency > keep_from
        st.skipped_stale += int((~keep).sum())
    idx = np.flatnonzero(keep)
    if not len(idx):
        return
    keys = [ch.keys[i] for i in idx.tolist()]
    sids = store.resolve(keys, [ch.frequency] * len(keys), counter_slot=counter_slot)
    ok = sids >= 0
    st.rejected += int((~ok).sum())
    idx, sids = idx[ok], sids[ok]
    if not len(idx):
        return
    pool = store.pools[p]
    rows = store._reg_row[sids]
    last, first = ch.last[idx], np.maximum(ch.first[idx], ch.last[idx] - min(ch.slots, pool.cap) + 1)
    if ch.slots == pool.cap:
        ring = ch.ring[idx]
    else:
        # Ring size changed (retention or archive slack): move each bin to its new slot.
        ring = np.full((len(idx), pool.cap), np.nan)
        n = last - first + 1
        total = int(n.sum())
        which = np.repeat(np.arange(len(idx)), n)
        bins = np.repeat(first, n) + (np.arange(total) - np.repeat(np.cumsum(n) - n, n))
        ring[which, bins % pool.cap] = ch.ring[idx[which], bins % ch.slots]
    with store.locks.hold(L.LOCK_POOL_BASE + p):
        meta = pool.meta
        seq = meta[rows, L.M_SEQ] | 1
        meta[rows, L.M_SEQ] = seq
        pool.data[rows] = ring
        meta[rows, L.M_FIRST] = first
        meta[rows, L.M_LAST] = last
        meta[rows, L.M_SEQ] = seq + 1
    st.series += len(idx)
    st.points += int(np.count_nonzero(~np.isnan(ring)))


def load_snapshot(store: Store, path: Path, *, keep_from: float | None = None, counter_slot: int | None = None,
                  threads: int = 2) -> InstallStats:
    """Verify, then install a snapshot.  Raises SnapshotError before touching the store if damaged."""
    st = InstallStats()
    path = Path(path)
    if path.suffix == ".json":
        chunks: Iterator[Chunk] = iter(list(read_json(path)))  # parsed completely before anything is installed
    else:
        chunks = read_binary(path, threads=threads)
    for ch in chunks:
        install_chunk(store, ch, st, keep_from=keep_from, counter_slot=counter_slot)
    if counter_slot is not None:
        store.counters[counter_slot, L.COUNTER_INDEX["restored_points"]] += st.points
        store.counters[counter_slot, L.COUNTER_INDEX["restored_series"]] += st.series
    return st


def salvage_snapshot(store: Store, path: Path, *, keep_from: float | None = None, counter_slot: int | None = None
                     ) -> tuple[InstallStats, list[str]]:
    """Install what :func:`salvage_binary` finds in a damaged snapshot: (stats, damaged ranges)."""
    st = InstallStats()
    damage: list[str] = []
    if Path(path).suffix != ".json":  # a damaged JSON document holds nothing that can be trusted
        for ch in salvage_binary(path, damage):
            install_chunk(store, ch, st, keep_from=keep_from, counter_slot=counter_slot)
    if counter_slot is not None:
        store.counters[counter_slot, L.COUNTER_INDEX["restored_points"]] += st.points
        store.counters[counter_slot, L.COUNTER_INDEX["restored_series"]] += st.series
    return st, damage


def snapshot_info(path: Path) -> SnapshotStats:
    """What a snapshot file holds, for ``cc-supervise checkpoint-info`` (never raises on damage)."""
    path = Path(path)
    st = SnapshotStats(str(path), "json" if path.suffix == ".json" else "binary")
    try:
        st.bytes = path.stat().st_size
        if st.format == "binary":
            head = binary_header(path)
        else:
            head = orjson.loads(path.read_bytes())
        if not isinstance(head, dict):
            raise SnapshotError(f"{path}: the header is not an object")
        head.pop("series", None)
        epoch = head.get("epoch", -1)
        st.epoch = epoch if type(epoch) is int else -1
        st.created, st.retention = head.get("created", 0), head.get("retention", 0)
        for ch in read_snapshot(path):
            st.chunks += 1
            ok = ~np.isnan(ch.ring)
            _account(st, ch.frequency, ch.last, ch.first, int(np.count_nonzero(ok)))
    except (SnapshotError, OSError, orjson.JSONDecodeError) as e:
        st.errors.append(str(e))
    return st
