"""Damaged WAL and snapshot files: truncated at every offset, flipped bits, garbage appended,
zero-filled tails and well-checksummed records with nonsense inside.

What must hold: the readers raise nothing but their documented error (snapshots) or count and
name the damage with its offset (WAL); every record or chunk that is intact is still read,
wherever it sits; nothing they return is made up; a restore from such files never raises.
Hypothesis runs derandomized (a fixed sequence of examples), so CI sees the same cases.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import shutil
import struct
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cc.config import MetricStoreConfig
from cc.shm import Layout, SeriesKey, Store, unlink_all
from cc.shm import _snapshot as snap
from cc.shm._snapshot import SnapshotError, load_snapshot, read_json, salvage_binary, write_snapshot
from cc.storeproc._checkpoint import Checkpointer, RestoreReport
from cc.wal import MAGIC, REC, T_HEADER, T_KEYS, T_POINTS, WalReader, WalWriter, _frame, wal_dir
from tests.test_snapshot import dump, fill

NOW = 1_795_000_020
FUZZ = settings(derandomize=True, deadline=None, max_examples=60, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def fresh_store(frequencies=(10, 60)) -> Iterator[Store]:
    inst = "t" + uuid.uuid4().hex[:10]
    store, _ = Store.create(inst, Layout.compute(3600, list(frequencies), 0.05))
    try:
        yield store
    finally:
        store.close()
        unlink_all(inst)


@pytest.fixture(scope="module")
def scratch():
    """One store for the tests that only need somewhere to install or replay nonsense."""
    with fresh_store() as store:
        yield store


# --- a WAL file and where its records are ----------------------------------------------------

def wal_records(blob: bytes) -> list[tuple[int, int, int]]:
    """(offset, end, type) of every record of an intact WAL file."""
    out, pos = [], len(MAGIC)
    while pos < len(blob):
        _, length, rtype, _, _, _ = REC.unpack_from(blob, pos)
        out.append((pos, pos + REC.size + length, rtype))
        pos += REC.size + length
    return out


@pytest.fixture(scope="module")
def wal_file(scratch, tmp_path_factory):
    """A WAL file of 8 requests (small ones uncompressed, big ones zstd), its bytes and its records."""
    store = scratch
    d = tmp_path_factory.mktemp("wal")
    keys = [SeriesKey("c1", f"h{i // 4}", "cpu_load", "hwthread", str(i % 4)) for i in range(32)]
    w = WalWriter(d, store, 8, 0, sync="off")
    rng = np.random.default_rng(7)
    for r in range(8):
        per = 50 if r % 3 == 0 else 5
        kids = rng.integers(0, 8 + 2 * r, per)  # new keys now and then: KEYS records in between
        ts = np.full(per, NOW - 3000 + 60 * r, dtype=np.int64)
        with w.gate():
            w.append(kids, ts, rng.random(per), NOW + r, lambda k: (keys[k], 60))
    w.close()
    (path,) = d.glob("*.wal")
    blob = path.read_bytes()
    return blob, wal_records(blob)


def read_wal(blob: bytes) -> tuple[list[tuple], WalReader]:
    """(received, [(kid, key or None, ts, value)]) per points record, and the reader (for its stats)."""
    p = _scratch_dir() / "000000000000-w0-1-1.wal"
    p.write_bytes(blob)
    r = WalReader(p)
    out = []
    for rec in r:
        out.append((rec.received, [(k, r.key_of[k][0] if k in r.key_of else None, t, v) for k, t, v in
                                   zip(rec.kids.tolist(), rec.ts.tolist(), rec.values.tolist(), strict=True)]))
    return out, r


@functools.cache
def _scratch_dir() -> Path:
    """One directory for the files of all examples, in RAM where there is a tmpfs: thousands of small
    files are written (on an overlay file system each open costs milliseconds)."""
    d = Path(tempfile.mkdtemp(prefix="cc-fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


def expected_points(blob: bytes, records, intact) -> list[tuple]:
    """What a reader must return when exactly the records with ``intact(offset, end)`` survive:
    their points, with keys where the KEYS record defining them survived too."""
    full, key_recs = _intact(blob)
    out, i = [], 0
    defined: set[int] = set()
    k = 0
    for off, end, rtype in records:
        if rtype == T_KEYS:
            if intact(off, end):
                defined |= key_recs[k]
            k += 1
        elif rtype == T_POINTS:
            recv, pts = full[i]
            i += 1
            if intact(off, end):
                out.append((recv, pts, defined.copy()))
    return out


@functools.lru_cache(maxsize=4)
def _intact(blob: bytes) -> tuple[list[tuple], list[set[int]]]:
    """The points records of an intact file, and the kids each of its KEYS records defines."""
    full, _ = read_wal(blob)
    return full, [{d[0] for d in orjson.loads(blob[off + REC.size:end])}
                  for off, end, rtype in wal_records(blob) if rtype == T_KEYS]


def assert_points_match(got: list[tuple], want: list[tuple]) -> None:
    """The same records, points and values; a key is known exactly when its KEYS record survived, and right."""
    assert len(got) == len(want)
    for (g_recv, g_pts), (w_recv, w_pts, defined) in zip(got, want, strict=True):
        assert g_recv == w_recv
        assert [(k, t, v) for k, _, t, v in g_pts] == [(k, t, v) for k, _, t, v in w_pts]
        for (kid, gk, _, _), (_, wk, _, _) in zip(g_pts, w_pts, strict=True):
            assert gk == (wk if kid in defined else None)


def test_wal_truncated_at_every_offset(wal_file):
    blob, records = wal_file
    for cut in range(len(blob) + 1):
        got, r = read_wal(blob[:cut])
        want = expected_points(blob, records, lambda off, end, cut=cut: end <= cut)
        assert_points_match(got, want)
        boundary = cut in (0, len(MAGIC)) or any(end == cut for _, end, _ in records)
        if boundary:
            assert r.stats.bad_records == 0 and r.stats.error is None, cut
        else:
            assert r.stats.bad_records == 1, cut
            start = 0 if cut < len(MAGIC) else max([e for _, e, _ in records if e <= cut] + [len(MAGIC)])
            assert r.stats.damage[0][0] == start, cut
            assert "offset" in r.stats.error


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=4))
def test_wal_flipped_bits_cost_only_the_records_they_hit(wal_file, flips):
    blob, records = wal_file
    data = bytearray(blob)
    for where, bit in flips:
        data[where % len(blob)] ^= 1 << bit
    hit = {i for i, (a, b) in enumerate(zip(blob, data, strict=True)) if a != b}
    assume(hit)
    got, r = read_wal(bytes(data))
    want = expected_points(blob, records, lambda off, end: not any(off <= p < end for p in hit))
    assert_points_match(got, want)
    assert r.stats.bad_records >= 1  # every byte is under the magic or a CRC
    first = min(p for p in hit)
    named = 0 if first < len(MAGIC) else next(off for off, end, _ in records if off <= first < end)
    assert f"offset {named}" in r.stats.error


@FUZZ
@given(st.one_of(st.binary(min_size=1, max_size=300), st.integers(1, 5000).map(lambda n: b"\0" * n)),
       st.booleans())
def test_wal_garbage_or_zeros_after_the_records(wal_file, tail, overwrite):
    """Appended garbage, or a zero-filled tail (a power cut after the size was updated but not the data)."""
    blob, records = wal_file
    if overwrite:  # the end of the file replaced by the tail
        data = blob[:max(len(MAGIC), len(blob) - len(tail))] + tail
        cut = len(data) - len(tail)
    else:
        data, cut = blob + tail, len(blob)
    got, r = read_wal(data)
    want = expected_points(blob, records, lambda off, end: end <= cut)
    assert_points_match(got, want)
    assert r.stats.bad_records == 1 and r.stats.bad_bytes == len(data) - max(
        [e for _, e, _ in records if e <= cut] + [len(MAGIC)])


json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
                           | st.text(max_size=8), lambda c: st.lists(c, max_size=8)
                           | st.dictionaries(st.text(max_size=6), c, max_size=5), max_leaves=30)
key_defs = st.lists(st.tuples(st.one_of(st.integers(-5, 40), json_values), st.one_of(st.sampled_from([10, 60, 0, -1]),
                                                                                     json_values),
                              st.one_of(st.lists(st.sampled_from(["c1", "h", "m", "", "a\x1fb"]), min_size=6,
                                                 max_size=8), json_values)).map(list), max_size=6)


@st.composite
def crafted_records(draw) -> bytes:
    """A record with a valid CRC and arbitrary contents (what only a bug or an attacker writes)."""
    kind = draw(st.sampled_from(["header", "keys", "points", "raw"]))
    if kind == "header":
        return _frame(T_HEADER, orjson.dumps(draw(json_values)))
    if kind == "keys":
        return _frame(T_KEYS, orjson.dumps(draw(st.one_of(key_defs, json_values))))
    if kind == "points":
        n = draw(st.integers(0, 6))
        stated = draw(st.sampled_from([n, n + 1, max(0, n - 1), 2**32 - 1]))
        body = struct.pack("<qI", draw(st.integers(-(2**63), 2**63 - 1)), stated)
        body += np.array(draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n, max_size=n)), "<i4").tobytes()
        body += np.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), "<i8").tobytes()
        body += np.array(draw(st.lists(st.floats(), min_size=n, max_size=n)), "<f8").tobytes()
        comp = zstandard.ZstdCompressor() if draw(st.booleans()) else None
        return _frame(T_POINTS, body, comp)
    payload = draw(st.binary(max_size=64))
    rtype, flags, raw_len = draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 2**32 - 1))
    tail = REC.pack(0, len(payload), rtype, flags, 0, raw_len)[4:]
    return struct.pack("<I", zlib.crc32(payload, zlib.crc32(tail))) + tail + payload


@FUZZ
@given(st.lists(crafted_records(), min_size=1, max_size=5), st.integers(0, 8))
def test_wal_checksummed_nonsense_is_rejected_and_replay_never_raises(scratch, wal_file, crafted, at):
    blob, records = wal_file
    store = scratch
    pos = records[min(at, len(records) - 1)][1]
    data = blob[:pos] + b"".join(crafted) + blob[pos:]
    got, r = read_wal(data)
    for _, pts in got:  # whatever the reader returns is well-formed
        for _, key, _, _ in pts:
            assert key is None or (isinstance(key, SeriesKey) and all(isinstance(x, str) for x in key))
    assert isinstance(r.stats.header, dict)
    p = _scratch_dir() / "000000000000-w0-1-1.wal"
    p.write_bytes(data)
    rep = RestoreReport()
    Checkpointer(store, MetricStoreConfig(checkpoint_dir=p.parent)).replay([p], rep)
    assert rep.wal_records == len(got)


# --- snapshots ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory, monkeypatch_module):
    """A binary snapshot of ~10 small chunks, its bytes, the chunk offsets and the store's contents."""
    with fresh_store() as src:
        return _snapshot_file(src, tmp_path_factory, monkeypatch_module)


def _snapshot_file(src, tmp_path_factory, monkeypatch_module):
    rng = np.random.default_rng(3)
    want = fill(src, rng, nhosts=6, freq=60)
    want.update(fill(src, rng, nhosts=3, metrics=("x",), freq=10, span=600, sparse=True))
    orig = snap.iter_store_chunks
    monkeypatch_module.setattr(snap, "iter_store_chunks", lambda store: orig(store, chunk_bytes=4 * 61 * 8))
    d = tmp_path_factory.mktemp("snap")
    write_snapshot(src, d, 5)
    monkeypatch_module.undo()
    path = d / "snapshot-000000000005.bin"
    blob = path.read_bytes()
    frames, pos = [], len(MAGIC)
    while pos < len(blob):
        tag, _, length, _, _ = snap.FRAME.unpack_from(blob, pos)
        frames.append((tag, pos, pos + snap.FRAME.size + length))
        pos += snap.FRAME.size + length
    chunks = list(snap.read_binary(path))
    assert len(chunks) >= 6
    return blob, [(o, e) for t, o, e in frames if t == b"CHNK"], chunks, want


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def chunk_sig(ch) -> tuple:
    return (ch.frequency, ch.slots, tuple(ch.keys), ch.last.tobytes(), ch.first.tobytes(), ch.ring.tobytes())


def check_damaged_snapshot(data: bytes, frames, chunks, intact) -> None:
    """A damaged snapshot raises SnapshotError naming file and offset; salvage returns exactly the intact chunks."""
    p = _scratch_dir() / "snapshot-000000000005.bin"
    p.write_bytes(data)
    with pytest.raises(SnapshotError) as ei:
        for _ in snap.read_binary(p):
            pass
    assert str(p) in str(ei.value)
    assert "offset" in str(ei.value) or "magic" in str(ei.value)
    damage: list[str] = []
    got = [chunk_sig(c) for c in salvage_binary(p, damage)]
    want = [chunk_sig(c) for c, (o, e) in zip(chunks, frames, strict=True) if intact(o, e)]
    assert got == want
    assert damage or not want


def test_snapshot_truncated_at_every_offset(snapshot_file):
    blob, frames, chunks, _ = snapshot_file
    for cut in range(0, len(blob) - 1, 7):  # every 7th offset: ~4k cuts
        check_damaged_snapshot(blob[:cut], frames, chunks, lambda o, e, cut=cut: e <= cut)
    for cut in range(len(blob) - 40, len(blob)):  # and each of the footer's
        check_damaged_snapshot(blob[:cut], frames, chunks, lambda o, e, cut=cut: e <= cut)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=4))
def test_snapshot_flipped_bits(snapshot_file, flips):
    blob, frames, chunks, _ = snapshot_file
    data = bytearray(blob)
    for where, bit in flips:
        data[where % len(blob)] ^= 1 << bit
    hit = {i for i, (a, b) in enumerate(zip(blob, data, strict=True)) if a != b}
    assume(hit)
    check_damaged_snapshot(bytes(data), frames, chunks, lambda o, e: not any(o <= p < e for p in hit))


@FUZZ
@given(st.one_of(st.binary(min_size=1, max_size=200), st.integers(1, 3000).map(lambda n: b"\0" * n)))
def test_snapshot_garbage_or_zeros_appended(snapshot_file, tail):
    blob, frames, chunks, _ = snapshot_file
    check_damaged_snapshot(blob + tail, frames, chunks, lambda o, e: True)


@st.composite
def crafted_chunks(draw) -> bytes:
    """A CHNK payload with consistent-looking framing but arbitrary numbers (a valid CRC)."""
    n = draw(st.integers(0, 4))
    slots = draw(st.sampled_from([0, 1, 3, 61]))
    freq = draw(st.sampled_from([0, -10, 10, 60, 7]))
    last = draw(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 10**8), min_size=n, max_size=n))
    first = draw(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 10**8), min_size=n, max_size=n))
    keys = draw(st.lists(st.sampled_from([b"c1\x1fh\x1fm\x1fnode\x1f\x1f\x1f", b"\xff\xfe", b"a\x1fb",
                                          b"c\x1fh\x1fm\x1fcore\x1f1\x1f\x1f\x1fx"]), min_size=n, max_size=n))
    lens = np.array([len(k) for k in keys], "<u4")
    if draw(st.booleans()) and n:
        lens[0] += draw(st.integers(1, 100))
    payload = snap.CHUNK_HEAD.pack(n, slots, freq, 0) + np.array(last, "<i8").tobytes() + \
        np.array(first, "<i8").tobytes() + lens.tobytes() + b"".join(keys)
    payload += b"\0" * (-len(payload) % 8) + np.array(draw(st.lists(st.floats(), min_size=n * slots,
                                                                    max_size=n * slots)), "<f8").tobytes()
    if draw(st.booleans()):
        payload = payload[:draw(st.integers(0, len(payload)))]
    return payload


@FUZZ
@given(st.lists(crafted_chunks(), min_size=1, max_size=3), st.booleans(), json_values)
def test_snapshot_checksummed_nonsense(scratch, crafted, compress, head):
    """Well-framed snapshots with nonsense inside: SnapshotError (nothing else), and a store that
    installs what does parse never raises."""
    cctx = zstandard.ZstdCompressor() if compress else None
    data = snap.MAGIC + snap._frame(b"HEAD", orjson.dumps(head), None)
    data += b"".join(snap._frame(b"CHNK", c, cctx) for c in crafted) + snap._frame(b"FOOT", b"{}", None)
    store = scratch
    p = _scratch_dir() / "snapshot-000000000005.bin"
    p.write_bytes(data)
    try:
        load_snapshot(store, p)
    except SnapshotError as e:
        assert str(p) in str(e)
    for ch in salvage_binary(p, []):
        assert ch.first.shape == ch.last.shape == (len(ch.keys),)


@FUZZ
@given(st.one_of(json_values, st.fixed_dictionaries({
    "complete": st.just(True),
    "series": st.lists(st.one_of(json_values, st.fixed_dictionaries(
        {"cluster": st.sampled_from(["c1", "", 5]), "host": st.sampled_from(["h", None]),
         "metric": st.just("m"), "frequency": st.sampled_from([60, 10, 0, -5, 1.5, True, "60", 2**63]),
         "from": st.sampled_from([0, NOW, -60, 1e300, None]),
         "data": st.one_of(st.lists(st.one_of(st.none(), st.floats(), st.integers(-(2**63), 2**64 - 1)), max_size=5),
                           json_values)},
        optional={"type": st.sampled_from(["node", "core", 3]), "type-id": st.sampled_from(["0", None])})),
        max_size=4)})))
def test_json_snapshot_nonsense(scratch, doc):
    store = scratch
    p = _scratch_dir() / "snapshot-000000000005.json"
    p.write_bytes(orjson.dumps(doc))
    try:
        chunks = list(read_json(p))
    except SnapshotError as e:
        assert str(p) in str(e)
        return
    st_ = snap.InstallStats()
    for ch in chunks:
        snap.install_chunk(store, ch, st_)


# --- restore ---------------------------------------------------------------------------------

def write_wal(store: Store, directory: Path, keys, t0: int, n: int, want: dict) -> None:
    w = WalWriter(wal_dir(directory), store, 8, 0, sync="off")
    rng = np.random.default_rng(t0)
    sids = store.resolve(keys, [60] * len(keys))
    for r in range(n):
        ts = np.full(len(keys), t0 + 60 * r)
        vals = rng.random(len(keys))
        with w.gate():
            store.write(sids, ts, vals, now=NOW)
            w.append(np.arange(len(keys)), ts, vals, NOW, lambda k: (keys[k], 60))
        for k, v in zip(keys, vals.tolist(), strict=True):
            want.setdefault(k, {})[int(ts[0]) // 60 * 60] = v
    w.close()


def test_restore_without_any_intact_snapshot_salvages_chunks_and_replays_all_wal(tmp_path, caplog):
    """Both snapshots damaged: their intact chunks are loaded and every WAL file on disk is replayed."""
    with fresh_store((60,)) as src, fresh_store((60,)) as dst:
        _salvage_case(src, dst, tmp_path, caplog)


def _salvage_case(src, dst, tmp_path, caplog):
    ms = MetricStoreConfig(checkpoint_dir=tmp_path, num_workers=1)
    keys = [SeriesKey("c1", f"s{i}", "m") for i in range(40)]
    want: dict = {}
    cp = Checkpointer(src, ms)
    write_wal(src, tmp_path, keys[:20], NOW - 3000, 5, want)
    cp.checkpoint("test")
    write_wal(src, tmp_path, keys[20:], NOW - 2000, 5, want)
    cp.checkpoint("test")
    write_wal(src, tmp_path, keys[:5], NOW - 1000, 3, want)  # only in the WAL
    snaps = sorted(tmp_path.glob("snapshot-*.bin"))
    assert len(snaps) == 2
    for s in snaps:  # both lose their footer (a torn copy, say): neither passes its check
        s.write_bytes(s.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        rep = Checkpointer(dst, ms).restore(now=NOW)
    assert rep.snapshot is None and sorted(rep.damaged_snapshots) == [s.name for s in snaps]
    assert sorted(rep.salvaged) == [s.name for s in snaps]
    assert dump(dst) == want  # the oldest WAL was pruned, but the salvaged chunks hold it
    assert "salvaged" in caplog.text and all(str(s) in caplog.text for s in snaps)
    assert all(s.with_name(s.name + ".damaged").exists() for s in snaps)


@FUZZ
@given(st.data())
def test_restore_from_damaged_files_never_raises(data):
    """Whatever happens to the files, restore() returns."""
    with fresh_store((60,)) as src, fresh_store((60,)) as dst, tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ms = MetricStoreConfig(checkpoint_dir=d, num_workers=1)
        keys = [SeriesKey("c1", f"r{i}", "m") for i in range(6)]
        want: dict = {}
        write_wal(src, d, keys, NOW - 3000, 3, want)
        Checkpointer(src, ms).checkpoint("test")
        write_wal(src, d, keys, NOW - 2000, 3, want)
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.name != ".lock")
        for p in data.draw(st.lists(st.sampled_from(files), max_size=3, unique=True)):
            b = bytearray(p.read_bytes())
            how = data.draw(st.sampled_from(["cut", "flip", "append", "zero"]))
            at = data.draw(st.integers(0, 10**6)) % max(1, len(b))  # sizes vary a little between runs
            if how == "cut":
                b = b[:at]
            elif how == "flip" and b:
                b[at] ^= 1 << data.draw(st.integers(0, 7))
            elif how == "append":
                b += data.draw(st.binary(min_size=1, max_size=50))
            else:
                b[at:] = bytes(len(b) - at)
            p.write_bytes(bytes(b))
        rep = Checkpointer(dst, ms).restore(now=NOW)
        assert rep.epoch >= 1
