"""Binning, ring-buffer and registry semantics of the shared-memory store."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cc.shm import REJECT_MEMCAP, REJECT_UNKNOWN_FREQUENCY, SeriesKey, Store, list_segments


def key(host="n01", metric="cpu_load", t="node", tid="", st="", sid=""):
    return SeriesKey("c1", host, metric, t, tid, st, sid)


def one(store: Store, k=None, freq=60) -> int:
    sid = int(store.resolve([k or key()], [freq])[0])
    assert sid >= 0
    return sid


def test_point_lands_in_its_timestep_and_reads_back(make_store):
    store = make_store(retention=3600)
    sid = one(store)
    now = (int(time.time()) // 60) * 60
    st = store.write([sid], [now - 120 + 7], [1.5], now=now)
    assert st.written == 1
    r = store.read([sid], now - 600, now)
    assert r.frequency == 60
    # the point at now-113 belongs to the bin starting at now-120
    assert r.values.shape == (1, 1)
    assert r.start == now - 120 and r.end == now - 60
    assert r.values[0, 0] == 1.5


def test_second_point_in_same_slot_replaces_the_first(make_store):
    store = make_store()
    sid = one(store)
    now = (int(time.time()) // 60) * 60
    store.write([sid], [now - 60], [1.0], now=now)
    store.write([sid], [now - 31], [2.0], now=now)  # same 60 s slot
    store.write([sid, sid], [now - 59, now - 58], [3.0, 4.0], now=now)  # within a batch: the later line wins
    r = store.read([sid], now - 60, now)
    assert r.values.tolist() == [[4.0]]


def test_empty_slots_read_as_nan_and_gaps_are_cleared(make_store):
    store = make_store(retention=600)
    sid = one(store)
    now = (int(time.time()) // 60) * 60
    store.write([sid], [now - 540], [1.0], now=now)
    store.write([sid], [now - 300], [2.0], now=now)
    r = store.read([sid], now - 600, now)
    assert r.start == now - 540
    vals = r.values[0]
    assert vals[0] == 1.0 and vals[4] == 2.0
    assert np.isnan(vals[1:4]).all()


def test_ring_reuses_slots_without_leaking_old_values(make_store):
    store = make_store(retention=300)  # 6 slots
    sid = one(store)
    now = (int(time.time()) // 60) * 60
    for i in range(5):
        store.write([sid], [now - 240 + 60 * i], [float(i)], now=now)
    later = now + 240  # four slots later: the ring wraps
    store.write([sid], [later], [9.0], now=later)
    r = store.read([sid], later - 600, later + 60)
    assert r.start == later - 300  # the ring holds 6 bins: the two newest old points survive
    assert r.values[0].tolist()[:2] == [3.0, 4.0]
    assert r.values[0, -1] == 9.0
    assert np.isnan(r.values[0, 2:5]).all()  # cleared slots, not stale old values


def test_old_points_rejected_and_counted(make_store):
    store = make_store(retention=600)
    sid = one(store)
    now = int(time.time())
    st = store.write([sid, sid, sid], [now - 3600, now - 60, now + 3600], [1, 2, 3], now=now, counter_slot=5)
    assert (st.written, st.too_old, st.too_far_future) == (1, 1, 1)
    totals = store.counter_totals()
    assert totals["too_old"] == 1 and totals["too_far_future"] == 1 and totals["points_written"] == 1


def test_point_older_than_the_ring_of_a_series_is_rejected(make_store):
    store = make_store(retention=600)
    sid = one(store)
    now = (int(time.time()) // 60) * 60
    store.write([sid], [now], [1.0], now=now)
    # inside retention by wall clock (now-570), but fits the ring only if the series' window allows it
    st = store.write([sid], [now - 570], [2.0], now=now)
    assert st.written == 1
    r = store.read([sid], now - 600, now + 60)
    assert r.values[0, 0] == 2.0


def test_memory_does_not_grow_in_steady_state(make_store):
    store = make_store(retention=600)
    sids = store.resolve([key(host=f"n{i:03d}") for i in range(50)], [60] * 50)
    before = store.usage()["allocated_bytes"]
    t0 = (int(time.time()) // 60) * 60
    for step in range(40):  # four times the retention window
        t = t0 + 60 * step
        store.write(sids, np.full(50, t), np.full(50, float(step)), now=t)
    assert store.usage()["allocated_bytes"] == before == 50 * 11 * 8
    r = store.read(sids[:1], t - 600, t + 60)
    assert r.values.shape[1] == 11 and r.values[0, -1] == 39.0


def test_registry_resolves_same_key_to_same_series(make_store):
    store = make_store()
    a = store.resolve([key(), key(host="n02"), key()], [60, 60, 60])
    assert a[0] == a[2] != a[1]
    assert store.key_of(int(a[1])) == key(host="n02")
    assert store.lookup(key(host="n02")) == a[1]
    assert store.hosts("c1") == ["n01", "n02"]
    assert set(store.series_of_host("c1", "n01")) == {"cpu_load"}


def test_unknown_frequency_and_memory_cap_are_refused(make_store):
    store = make_store(retention=3600, memory_cap_gb=1e-6)  # room for nothing beyond the minimum rows
    assert store.resolve([key()], [17])[0] == REJECT_UNKNOWN_FREQUENCY
    cap = store.usage()["memory_cap_bytes"]
    n = cap // (60 * 8)
    sids = store.resolve([key(host=f"h{i}") for i in range(n + 5)], [60] * (n + 5))
    assert (sids[:n] >= 0).all()
    assert (sids[n:] == REJECT_MEMCAP).all()


def test_release_frees_the_row_and_stale_ids_are_remapped(make_store):
    store = make_store()
    sid = one(store)
    now = int(time.time())
    store.write([sid], [now - 60], [1.0], now=now)
    assert store.release([sid]) == 1
    assert store.lookup(key()) is None
    assert store.usage()["allocated_bytes"] == 0
    # a writer still holding the old id: the point is stored under a fresh registration
    st = store.write([sid], [now - 60], [2.0], now=now)
    assert st.written == 1 and sid in st.remapped
    new = st.remapped[sid]
    assert new != sid and store.lookup(key()) == new
    r = store.read([new], now - 120, now)
    assert np.nanmax(r.values) == 2.0


def test_free_releases_old_series_and_clears_older_slots(make_store):
    store = make_store(retention=3600)
    a, b = store.resolve([key(host="a"), key(host="b")], [60, 60])
    now = (int(time.time()) // 60) * 60
    store.write([a, a, b], [now - 1200, now - 600, now - 1200], [1.0, 2.0, 3.0], now=now)
    released, cleared = store.free([a, b], now - 900)
    assert released == 1 and cleared == 1
    r = store.read([a], now - 3600, now)
    assert np.nanmax(r.values) == 2.0 and np.count_nonzero(~np.isnan(r.values)) == 1
    assert store.lookup(key(host="b")) is None


def test_read_clips_huge_ranges_to_the_ring(make_store):
    store = make_store(retention=600)
    sid = one(store)
    now = int(time.time())
    store.write([sid], [now - 60], [1.0], now=now)
    r = store.read([sid], 0, now + 10**9)
    assert r.values.shape[1] <= 11


def test_stale_series_are_found_for_release(make_store):
    store = make_store(retention=600)
    a, b = store.resolve([key(host="a"), key(host="b")], [60, 60])
    now = int(time.time())
    store.write([a, b], [now - 500, now - 60], [1.0, 1.0], now=now)
    assert store.stale_series(now=now + 300) == [int(a)]


def test_repair_fixes_a_seqlock_left_odd(make_store):
    store = make_store()
    sid = one(store)
    now = int(time.time())
    store.write([sid], [now - 60], [1.0], now=now)
    pool = store.pools[0]
    row = int(store.reg["row"][sid])
    pool.meta[row, 1] |= 1  # as if a writer died mid-update
    # readers detect the dead writer (the pool lock is free) and repair on their own
    r = store.read([sid], now - 120, now)
    assert r.values[0, -1] == 1.0
    assert int(pool.meta[row, 1]) % 2 == 0
    pool.meta[row, 1] |= 1
    assert store.repair()["odd_seq_fixed"] == 1


def test_attach_sees_same_data_and_segments_are_sparse(make_store):
    store = make_store(retention=3600)
    sid = one(store)
    now = int(time.time())
    store.write([sid], [now - 60], [7.0], now=now)
    other = Store.attach(store.instance)
    try:
        s2 = other.lookup(key())
        assert s2 == sid
        assert other.read([s2], now - 120, now).values[0, -1] == 7.0
    finally:
        other.close()
    segs = list_segments(store.instance)
    apparent = sum(s[1] for s in segs)
    allocated = sum(s[2] for s in segs)
    assert allocated < apparent / 10


def test_create_reattaches_when_layout_matches(make_store):
    from cc.shm import Layout

    store = make_store(retention=3600)
    sid = one(store)
    now = int(time.time())
    store.write([sid], [now - 60], [3.0], now=now)
    again, fresh = Store.create(store.instance, Layout.compute(3600, [60], 0.05))
    try:
        assert not fresh
        assert again.read([sid], now - 120, now).values[0, -1] == 3.0
    finally:
        again.close()


def test_read_requires_one_frequency(make_store):
    store = make_store(frequencies=(10, 60))
    a = one(store, key(metric="a"), 10)
    b = one(store, key(metric="b"), 60)
    with pytest.raises(ValueError):
        store.read([a, b], 0, 100)
