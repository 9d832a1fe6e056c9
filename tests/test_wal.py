"""The write-ahead log: record format, torn and corrupt tails, sync policy, rotation protocol, replay."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import trio

from cc.config import MetricStoreConfig
from cc.shm import SeriesKey
from cc.shm import _layout as L
from cc.shm._snapshot import list_snapshots, read_snapshot
from cc.storeproc._checkpoint import Checkpointer, RestoreReport
from cc.wal import WalReader, WalSyncer, WalWriter, list_wal_files, wal_dir, wal_info

NOW = 1_795_000_000
SLOT = 8


def keys_table(n: int) -> list[SeriesKey]:
    return [SeriesKey("c1", f"h{i // 4}", "cpu_load", "hwthread", str(i % 4)) for i in range(n)]


def describe_for(keys):
    return lambda kid: (keys[kid], 60)


def write_requests(w: WalWriter, keys, nreq: int, per: int = 40, t0: int = NOW - 3000) -> list[tuple]:
    """Append ``nreq`` records of ``per`` points each; returns the (key, ts, value) triples."""
    out = []
    rng = np.random.default_rng(1)
    for r in range(nreq):
        kids = rng.integers(0, len(keys), per)
        ts = t0 + 60 * r + np.zeros(per, dtype=np.int64)
        vals = rng.random(per)
        with w.gate():
            w.append(kids, ts, vals, NOW + r, describe_for(keys))
        out += [(keys[k], int(t), float(v)) for k, t, v in zip(kids.tolist(), ts.tolist(), vals.tolist(), strict=True)]
    return out


def read_all(path) -> tuple[list[tuple], WalReader]:
    r = WalReader(path)
    out = []
    for rec in r:
        out += [(r.key_of[k][0], int(t), float(v)) for k, t, v in
                zip(rec.kids.tolist(), rec.ts.tolist(), rec.values.tolist(), strict=True)]
    return out, r


def test_round_trip_keys_once_per_file_and_compression(make_store, tmp_path):
    store = make_store()
    keys = keys_table(64)
    w = WalWriter(tmp_path, store, SLOT, 0, sync="off")
    pts = write_requests(w, keys, 30)
    w.append(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([]), NOW, describe_for(keys))
    w.close()
    (path,) = tmp_path.glob("*.wal")
    got, r = read_all(path)
    assert got == pts
    assert r.stats.bad_records == 0 and r.stats.error is None
    assert r.stats.keys == len({p[0] for p in pts})  # each key defined once in the file
    assert r.stats.header["worker"] == 0 and r.stats.epoch == 0
    assert r.stats.first_received == pytest.approx(NOW) and r.stats.last_received == pytest.approx(NOW + 29)
    # zstd + file-local ids: far below the ~60 bytes a line-protocol line costs
    assert path.stat().st_size / len(pts) < 20
    c = store.counter_totals()
    assert c["wal_records"] == 30 and 0 < c["wal_bytes"] < path.stat().st_size


def test_torn_tail_at_every_offset_is_skipped_and_counted(make_store, tmp_path):
    store = make_store()
    keys = keys_table(8)
    w = WalWriter(tmp_path / "a", store, SLOT, 0, sync="off")
    pts = write_requests(w, keys, 2, per=50)
    two = w.size  # file size after two records
    pts += write_requests(w, keys, 1, per=50, t0=NOW - 3000 + 120)
    w.close()
    (path,) = (tmp_path / "a").glob("*.wal")
    full = path.read_bytes()
    assert len(full) > two
    for cut in range(two + 1, len(full)):
        path.write_bytes(full[:cut])
        got, r = read_all(path)
        assert got == pts[:100], cut
        assert r.stats.bad_records == 1 and r.stats.bad_bytes == cut - two, cut
    path.write_bytes(full[:two])
    got, r = read_all(path)
    assert got == pts[:100] and r.stats.bad_records == 0


def test_corrupt_byte_ends_the_file_with_a_checksum_error(make_store, tmp_path):
    store = make_store()
    keys = keys_table(8)
    w = WalWriter(tmp_path, store, SLOT, 0, sync="off")
    pts = write_requests(w, keys, 5, per=50)
    w.close()
    (path,) = tmp_path.glob("*.wal")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x40
    path.write_bytes(bytes(data))
    got, r = read_all(path)
    assert got == pts[:200]
    assert r.stats.bad_records == 1 and "checksum" in r.stats.error
    info = wal_info(path)
    assert info.records == 6 and info.points == 200 and info.bad_records == 1  # header + 4 points + keys


def test_epoch_change_opens_a_new_file_and_max_size_asks_for_a_checkpoint(make_store, tmp_path):
    store = make_store()
    keys = keys_table(8)
    w = WalWriter(tmp_path, store, SLOT, 3, sync="always", max_size=2000)
    before = int(store.hdr[L.H_CHECKPOINT_REQ])
    write_requests(w, keys, 2)
    store.hdr[L.H_WAL_EPOCH] = 7
    write_requests(w, keys, 40)
    w.close()
    files = sorted(tmp_path.glob("*.wal"))
    assert [f.name.split("-")[0] for f in files] == ["000000000000", "000000000007"]
    assert all("-w3-" in f.name for f in files)
    got, r = read_all(files[1])
    assert r.stats.epoch == 7 and len(got) == 40 * 40  # keys are defined again in the new file
    assert int(store.hdr[L.H_CHECKPOINT_REQ]) == before + 1  # asked once per file


async def test_sync_always_waits_for_fsync_and_groups_commits(make_store, tmp_path):
    store = make_store()
    keys = keys_table(8)
    w = WalWriter(tmp_path, store, SLOT, 0, sync="always")
    syncer = WalSyncer(w)
    done = []

    async def request(i):
        seq = await trio.to_thread.run_sync(lambda: write_requests(w, keys, 1) and w.appended)
        await syncer.wait_synced(seq)
        assert w.synced >= seq
        done.append(i)

    async with trio.open_nursery() as n:
        n.start_soon(syncer.run)
        async with trio.open_nursery() as reqs:
            for i in range(40):
                reqs.start_soon(request, i)
        n.cancel_scope.cancel()
    assert len(done) == 40
    fsyncs = store.counter_totals()["wal_fsyncs"]
    assert 1 <= fsyncs < 40  # group commit: one fsync covers everything appended while the previous ran
    w.close()


async def test_sync_interval_and_off(make_store, tmp_path):
    store = make_store()
    keys = keys_table(8)
    w = WalWriter(tmp_path / "i", store, SLOT, 0, sync="interval")
    s = WalSyncer(w, interval=0.05)
    async with trio.open_nursery() as n:
        n.start_soon(s.run)
        write_requests(w, keys, 3)
        await s.wait_synced(w.appended)  # returns at once: the answer does not wait
        assert w.synced < w.appended
        with trio.fail_after(5):
            while w.synced < w.appended:
                await trio.sleep(0.01)
        n.cancel_scope.cancel()
    off = WalWriter(tmp_path / "o", store, SLOT + 1, 0, sync="off")
    write_requests(off, keys, 2)
    await WalSyncer(off).run()  # returns immediately: nothing to do
    with pytest.raises(ValueError, match="wal-sync"):
        WalWriter(tmp_path, store, SLOT, 0, sync="sometimes")


def test_rotation_protocol_every_old_epoch_point_is_in_the_snapshot(make_store, tmp_path):
    """Workers write shm + WAL under their gate while the checkpointer rotates and snapshots.

    For every snapshot E, every point of every WAL record of an epoch below E must be in it.
    Each worker writes its own series with increasing timestamps, so nothing is overwritten
    and "in it" means exactly that value at that bin.  (Without ``Checkpointer.barrier``
    this test fails: a worker that read the old epoch writes after the snapshot copied.)
    """
    store = make_store(retention=7 * 86400, frequencies=(10,), memory_cap_gb=0.2)
    ms = MetricStoreConfig(checkpoint_dir=tmp_path, num_workers=1)
    cp = Checkpointer(store, ms)
    nworkers, nseries = 3, 16
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            keys = [SeriesKey("c1", f"w{i}", "m", "hwthread", str(k)) for k in range(nseries)]
            sids = store.resolve(keys, [10] * nseries)
            w = WalWriter(wal_dir(tmp_path), store, 20 + i, i, sync="off")
            t = NOW - 6 * 86400
            kids = np.arange(nseries)
            while not stop.is_set():
                vals = np.random.random(nseries)
                ts = np.full(nseries, t)
                with w.gate():
                    if t % 20 == 0:
                        time.sleep(0.01)  # widen the window between reading the epoch and the shm write
                    store.write(sids, ts, vals, now=NOW)
                    w.append(kids, ts, vals, NOW, lambda k, keys=keys: (keys[k], 10))
                t += 10
            w.close()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(nworkers)]
    for t in threads:
        t.start()
    epochs = []
    try:
        for _ in range(6):
            time.sleep(0.05)
            epochs.append(cp.checkpoint("test").epoch)
            # the snapshot files are kept for checking below; pruning removes WAL files
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    snaps = dict(list_snapshots(tmp_path))
    wal_files = list_wal_files(tmp_path)
    checked = 0
    for e in epochs[-2:]:  # the two newest snapshots are kept with all WAL since the older one
        content = {}
        for ch in read_snapshot(snaps[e]):
            for i, k in enumerate(ch.keys):
                content[k] = (ch.ring[i], ch.slots, ch.first[i], ch.last[i])
        for p in wal_files:
            r = WalReader(p)
            for rec in r:
                if r.stats.epoch >= e:
                    continue
                for kid, ts, v in zip(rec.kids.tolist(), rec.ts.tolist(), rec.values.tolist(), strict=True):
                    ring, slots, first, last = content[r.key_of[kid][0]]
                    b = ts // 10
                    assert first <= b <= last and ring[b % slots] == v
                    checked += 1
    assert checked > 100


def test_replay_reapplies_each_requests_own_age_limits(make_store, tmp_path):
    """A point accepted back then is stored again even if it is older than retention now."""
    src = make_store(retention=3600, frequencies=(60,))
    keys = [SeriesKey("c1", "h", "m")]
    w = WalWriter(wal_dir(tmp_path), src, SLOT, 0, sync="off")
    t = NOW - 7200
    with w.gate():
        # received at t + 100: t is within the hour then; t - 4000 was already too old
        w.append(np.array([0, 0]), np.array([t, t - 4000]), np.array([1.5, 2.5]), t + 100, lambda k: (keys[k], 60))
    w.close()
    dst = make_store(retention=3600, frequencies=(60,))
    rep = RestoreReport()
    Checkpointer(dst, MetricStoreConfig(checkpoint_dir=tmp_path)).replay(list_wal_files(tmp_path), rep)
    assert rep.wal_points == 1 and rep.wal_too_old == 1 and rep.wal_records == 1
    sid = dst.lookup(keys[0])
    res = dst.read([sid], t, t + 60)
    assert res.values[0].tolist() == [1.5]


def test_replay_merges_files_of_one_epoch_by_receive_time(make_store, tmp_path):
    """Two workers wrote the same slot; the later acknowledged value wins on replay too."""
    src = make_store(retention=3600, frequencies=(60,))
    keys = [SeriesKey("c1", "h", "m")]
    d = wal_dir(tmp_path)
    w0 = WalWriter(d, src, SLOT, 0, sync="off")
    w1 = WalWriter(d, src, SLOT + 1, 1, sync="off")
    t = NOW - 600
    for i, w in enumerate((w1, w0, w1)):  # receive order: w1@1, w0@2, w1@3
        with w.gate():
            w.append(np.array([0]), np.array([t]), np.array([float(i)]), NOW + i, lambda k: (keys[k], 60))
    w0.close()
    w1.close()
    dst = make_store(retention=3600, frequencies=(60,))
    rep = RestoreReport()
    Checkpointer(dst, MetricStoreConfig(checkpoint_dir=tmp_path)).replay(list_wal_files(tmp_path), rep)
    assert dst.read([dst.lookup(keys[0])], t, t + 60).values[0].tolist() == [2.0]
    assert rep.wal_records == 3 and rep.wal_files == 2


def test_write_failure_leaves_the_file_readable(make_store, tmp_path, monkeypatch):
    """A failed append (disk full) is cut off again, so later records stay readable."""
    from cc import wal as walmod

    store = make_store()
    keys = keys_table(4)
    w = WalWriter(tmp_path, store, SLOT, 0, sync="off")
    pts = write_requests(w, keys, 2)
    real_write = os.write

    def half_then_enospc(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(walmod.os, "write", half_then_enospc)
    with pytest.raises(walmod.WalError, match="No space left"):
        write_requests(w, keys, 1)
    monkeypatch.setattr(walmod.os, "write", real_write)
    pts += write_requests(w, keys, 1, t0=NOW - 3000 + 120)
    w.close()
    got, r = read_all(next(tmp_path.glob("*.wal")))
    assert got == pts and r.stats.bad_records == 0
