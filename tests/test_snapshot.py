"""Snapshots, restore with fallback, pruning, checkpoint-info, Parquet archive and memory cap."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import uuid

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from cc.config import MetricStoreConfig
from cc.shm import Layout, SeriesKey, Store, unlink_all
from cc.shm import _layout as L
from cc.shm._snapshot import SnapshotError, list_snapshots, load_snapshot, verify_snapshot, write_snapshot
from cc.storeproc._archive import Archiver, margin_seconds
from cc.storeproc._checkpoint import Checkpointer
from cc.storeproc._memcap import MemoryCap, running_job_hosts
from cc.wal import WalWriter, list_wal_files, wal_dir

NOW = 1_795_000_020
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture
def new_store():
    made = []

    def factory(retention=3600, frequencies=(60,), cap_gb=0.05, slack=0) -> Store:
        inst = "t" + uuid.uuid4().hex[:10]
        store, _ = Store.create(inst, Layout.compute(retention, list(frequencies), cap_gb, slack_seconds=slack))
        made.append((store, inst))
        return store

    yield factory
    for s, inst in made:
        s.close()
        unlink_all(inst)


def fill(store: Store, rng, nhosts=5, metrics=("a", "b"), freq=60, span=3600, now=NOW, sparse=False) -> dict:
    """Random points for nhosts x metrics (x 2 hwthreads); returns {key: {ts: value}}."""
    out: dict[SeriesKey, dict[int, float]] = {}
    keys, ts, vals = [], [], []
    for h in range(nhosts):
        for m in metrics:
            for hw in ("0", "1"):
                k = SeriesKey("c1", f"h{h}", m, "hwthread", hw)
                times = range(now - span + freq, now + 1, freq)
                if sparse:
                    times = [t for t in times if rng.random() < 0.2]
                for t in times:
                    v = round(float(rng.random()) * 100, 2)
                    keys.append(k)
                    ts.append(t)
                    vals.append(v)
                    out.setdefault(k, {})[t // freq * freq] = v
    uk = list(dict.fromkeys(keys))
    sids = store.resolve(uk, [freq] * len(uk))
    sid_of = dict(zip(uk, sids.tolist(), strict=True))
    store.write(np.array([sid_of[k] for k in keys]), np.array(ts), np.array(vals), now=now)
    return out


def dump(store: Store, frm=0, to=NOW + 600) -> dict:
    """{key: {ts: value}} of everything the store holds."""
    out = {}
    for c in store.clusters():
        for h in store.hosts(c):
            for sids in store.series_of_host(c, h).values():
                for sid in sids:
                    r = store.read([sid], frm, to)
                    d = {int((r.start_bin + j) * r.frequency): float(v) for j, v in enumerate(r.values[0])
                         if not np.isnan(v)}
                    if d:
                        out[store.key_of(sid)] = d
    return out


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_snapshot_round_trip(new_store, tmp_path, fmt):
    src = new_store(frequencies=(10, 60))
    rng = np.random.default_rng(0)
    want = fill(src, rng, freq=60)
    want.update(fill(src, rng, nhosts=3, metrics=("x",), freq=10, span=600, sparse=True))
    st = write_snapshot(src, tmp_path, 5, fmt=fmt)
    assert st.series == len(want) and st.points == sum(len(v) for v in want.values())
    assert [e for e, _ in list_snapshots(tmp_path)] == [5]
    dst = new_store(frequencies=(10, 60))
    ist = load_snapshot(dst, tmp_path / ("snapshot-000000000005." + ("json" if fmt == "json" else "bin")))
    assert ist.series == len(want) and ist.points == st.points
    assert dump(dst) == want


def test_restore_into_other_ring_sizes(new_store, tmp_path):
    src = new_store(retention=3600)
    want = fill(src, np.random.default_rng(1))
    write_snapshot(src, tmp_path, 1)
    path = tmp_path / "snapshot-000000000001.bin"
    small = new_store(retention=1800)
    load_snapshot(small, path)
    cut = (NOW // 60 - 30) * 60  # a 31-slot ring keeps the newest 31 bins
    assert dump(small) == {k: {t: v for t, v in d.items() if t >= cut} for k, d in want.items()}
    big = new_store(retention=7200)
    load_snapshot(big, path)
    assert dump(big) == want
    # a frequency without pool is reported, not fatal
    other = new_store(frequencies=(10,))
    assert load_snapshot(other, path).unknown_frequencies == {60}


def test_damaged_snapshots_are_rejected_before_anything_is_installed(new_store, tmp_path):
    src = new_store()
    fill(src, np.random.default_rng(2))
    write_snapshot(src, tmp_path, 1)
    path = tmp_path / "snapshot-000000000001.bin"
    full = path.read_bytes()
    for damaged, msg in ((full[:-5], "truncated"), (full[: len(full) // 2], "truncated"),
                         (full[:40] + bytes([full[40] ^ 1]) + full[41:], "checksum"), (b"garbage!", "magic")):
        path.write_bytes(damaged)
        with pytest.raises(SnapshotError, match=msg) as ei:
            verify_snapshot(path)
        assert str(path) in str(ei.value)
        dst = new_store()
        with pytest.raises(SnapshotError):
            load_snapshot(dst, path)
        assert dst.usage()["series_registered"] == 0
    (tmp_path / "s.json").write_bytes(b'{"series": [')
    with pytest.raises(SnapshotError, match="JSON"):
        load_snapshot(new_store(), tmp_path / "s.json")


def wal_write(store: Store, w: WalWriter, want: dict, rng, t: int, nkeys=6) -> None:
    keys = [SeriesKey("c1", f"h{i}", "m") for i in range(nkeys)]
    sids = store.resolve(keys, [60] * nkeys)
    vals = rng.random(nkeys)
    ts = np.full(nkeys, t)
    with w.gate():
        store.write(sids, ts, vals, now=NOW)
        w.append(np.arange(nkeys), ts, vals, NOW, lambda k: (keys[k], 60))
    for k, v in zip(keys, vals.tolist(), strict=True):
        want.setdefault(k, {})[t] = v


def test_restore_falls_back_to_the_previous_snapshot_and_replays_the_wal(new_store, tmp_path, caplog):
    ms = MetricStoreConfig(checkpoint_dir=tmp_path, num_workers=2)
    src = new_store()
    cp = Checkpointer(src, ms)
    w = WalWriter(wal_dir(tmp_path), src, 8, 0, sync="always")
    rng = np.random.default_rng(3)
    want: dict = {}
    t = NOW - 3000
    for _ in range(4):  # WAL + snapshot generations
        for _ in range(5):
            wal_write(src, w, want, rng, t)
            t += 60
        cp.checkpoint("test")
    for _ in range(3):
        wal_write(src, w, want, rng, t)  # only in the WAL
        t += 60
    w.close()
    snaps = list_snapshots(tmp_path)
    assert len(snaps) == 2  # pruned to two generations
    assert min(int(p.name[:12]) for p in list_wal_files(tmp_path)) >= snaps[1][0]
    newest = snaps[0][1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    dst = new_store()
    with caplog.at_level(logging.ERROR):
        rep = Checkpointer(dst, ms).restore(now=NOW)
    assert rep.snapshot == snaps[1][1].name and rep.damaged_snapshots == [newest.name]
    assert newest.name in caplog.text and "damaged" in caplog.text
    assert newest.with_name(newest.name + ".damaged").exists()
    assert rep.wal_points > 0 and rep.bad_records == 0
    assert dump(dst) == want
    assert int(dst.hdr[L.H_WAL_EPOCH]) > snaps[0][0]  # new WAL files never mix with old ones
    # the same with a torn WAL tail: the torn record is skipped and counted
    last = list_wal_files(tmp_path)[-1]
    last.write_bytes(last.read_bytes()[:-7])
    dst2 = new_store()
    rep2 = Checkpointer(dst2, ms, slot=3).restore(now=NOW)
    assert rep2.bad_records == 1 and last.name in rep2.bad_files
    assert dst2.counter_totals()["wal_bad_records"] == 1
    got = dump(dst2)
    lost = {(k, t - 60) for k in want}  # the last request's points
    assert {(k, ts) for k, d in want.items() for ts in d} - {(k, ts) for k, d in got.items() for ts in d} == lost


def test_checkpoint_info_cli(new_store, tmp_path):
    src = new_store()
    w = WalWriter(wal_dir(tmp_path), src, 8, 0, sync="off")
    want: dict = {}
    wal_write(src, w, want, np.random.default_rng(4), NOW - 120)
    w.close()
    write_snapshot(src, tmp_path, 1)

    def info(path, *extra):
        return subprocess.run([sys.executable, "-m", "supervisor", "checkpoint-info", str(path), *extra],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    wal = list_wal_files(tmp_path)[0]
    r = info(wal)
    assert r.returncode == 0, r.stderr
    assert "WAL" in r.stdout and "6 points" in r.stdout and "checksums: ok" in r.stdout
    r = info(tmp_path / "snapshot-000000000001.bin", "--json")
    doc = orjson.loads(r.stdout)
    assert r.returncode == 0 and doc["series"] == 6 and doc["points"] == 6 and doc["points_from"] == NOW - 120
    wal.write_bytes(wal.read_bytes()[:-3])
    r = info(wal)
    assert r.returncode == 1 and "DAMAGED" in r.stdout and "1 bad record" in r.stdout


# -- Parquet archive ---------------------------------------------------------------------------


def read_parquet(directory) -> list[tuple]:
    rows = []
    for f in sorted(directory.glob("*/*.parquet")):
        t = pq.read_table(f)
        assert t.column_names == ["cluster", "hostname", "metric", "scope", "scope_id", "timestamp", "frequency",
                                  "value"]
        recs = list(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))
        assert recs == sorted(recs, key=lambda r: (r[0], r[1], r[2], r[5], r[3], r[4])), f
        assert {r[0] for r in recs} == {f.parent.name}
        rows += recs
    return rows


def test_archive_writes_every_aged_out_point_exactly_once(new_store, tmp_path):
    retention, freq, interval = 600, 10, 120
    slack = interval + margin_seconds(retention) + 600 + 60
    store = new_store(retention=retention, frequencies=(freq,), slack=slack)
    arch = Archiver(store, tmp_path / "arch", retention)
    rng = np.random.default_rng(5)
    written: dict[tuple, float] = {}
    keys = [SeriesKey(c, f"h{h}", m, *scope) for c in ("c1", "c2") for h in range(3) for m in ("cpu", "mem")
            for scope in (("node", ""), ("socket", "0"), ("socket", "1"))]
    gone_quiet = {k for k in keys if k.host == "h2" and k.cluster == "c1"}
    t0 = NOW - 5000
    freed_keys: set = set()
    for step in range(120):  # 30 s steps: one hour of simulated time
        now = t0 + 30 * step
        live = [k for k in keys if not (k in gone_quiet and step > 40)]
        sids = store.resolve(live, [freq] * len(live))
        for dt in (-20, -10, 0):  # late, retried (same slot, new value) and current points
            vals = np.round(rng.random(len(live)) * 100, 3)
            store.write(sids, np.full(len(live), now + dt), vals, now=now)
            for k, v in zip(live, vals.tolist(), strict=True):
                written[(k, (now + dt) // freq * freq)] = v
        if step % 4 == 3:
            arch.run(now=now)
            horizon = arch.release_horizon()
            stale = store.stale_series(now=horizon)
            store.release(stale)  # what the store process's sweeper does in archive mode
        if step == 70:  # the memory cap frees host c2/h0: archived first
            victims = [store.lookup(k) for k in keys if k.cluster == "c2" and k.host == "h0"]
            arch.archive_before_free(np.array(victims))
            store.release(victims)
            freed_keys = {(k, ts) for (k, ts) in written if k.cluster == "c2" and k.host == "h0"}
    last_cut = arch.cut(arch.archived_to, freq) * freq
    rows = read_parquet(tmp_path / "arch")
    archived = {}
    for c, h, m, scope, sid, ts, f, v in rows:
        key = SeriesKey(c, h, m, scope, sid) if scope != "node" else SeriesKey(c, h, m, "node", "")
        assert f == freq
        assert (key, ts) not in archived, f"archived twice: {key} {ts}"
        archived[(key, ts)] = v
    expected = {kt for kt in written if kt[1] < last_cut} | freed_keys
    assert set(archived) == expected  # no gaps, nothing extra
    assert all(archived[kt] == written[kt] for kt in archived)  # the value that was freed
    in_memory = {(k, ts) for k, d in dump(store, to=NOW + 10**6).items() for ts in d}
    assert {kt for kt in written if kt[1] >= last_cut} - freed_keys <= in_memory  # the rest is still there
    assert not any(store.lookup(k) for k in gone_quiet)  # released once archived
    assert store.counter_totals()["archived_points"] == 0  # no counter slot given
    # restart: the watermark is persisted; nothing is archived twice
    arch2 = Archiver(store, tmp_path / "arch", retention)
    assert arch2.archived_to == arch.archived_to
    assert arch2.run(now=arch.archived_to) == 0


def test_interrupted_archive_run_is_redone(new_store, tmp_path):
    d = tmp_path / "arch"
    (d / "c1").mkdir(parents=True)
    (d / "c1" / "1234.parquet").write_bytes(b"partial")
    (d / "c1" / "1000.parquet").write_bytes(b"complete run")
    (d / ".archive-state.json").write_bytes(orjson.dumps({"archived_to": 1000, "in_progress": 1234}))
    a = Archiver(new_store(), d, 600)
    assert a.archived_to == 1000
    assert not (d / "c1" / "1234.parquet").exists() and (d / "c1" / "1000.parquet").exists()
    assert orjson.loads((d / ".archive-state.json").read_bytes())["in_progress"] is None


# -- memory cap ---------------------------------------------------------------------------------


def make_job_db(path, running_hosts, done_hosts=()):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE job (id INTEGER PRIMARY KEY, cluster TEXT, job_state TEXT, resources TEXT)")
    con.execute("INSERT INTO job (cluster, job_state, resources) VALUES ('c1', 'running', ?)",
                (orjson.dumps([{"hostname": h, "hwthreads": [0, 1]} for h in running_hosts]).decode(),))
    con.execute("INSERT INTO job (cluster, job_state, resources) VALUES ('c1', 'completed', ?)",
                (orjson.dumps([{"hostname": h} for h in done_hosts]).decode(),))
    con.commit()
    con.close()


def test_running_job_hosts(tmp_path):
    assert running_job_hosts(tmp_path / "missing.db") == set()
    sqlite3.connect(tmp_path / "empty.db").close()
    assert running_job_hosts(tmp_path / "empty.db") == set()  # no job table yet
    make_job_db(tmp_path / "job.db", ["j0", "j1"], ["n3"])
    assert running_job_hosts(tmp_path / "job.db") == {("c1", "j0"), ("c1", "j1")}


def test_memory_cap_frees_hosts_without_jobs_stalest_first(new_store, tmp_path, caplog):
    store = new_store(retention=3600, frequencies=(60,), cap_gb=100_000 / 1e9)  # 100 kB: 204 rows of 61 slots
    row = 61 * 8
    make_job_db(tmp_path / "job.db", ["j0", "j1"], ["n3"])
    mc = MemoryCap(store, tmp_path / "job.db", slot=0)
    hosts = ["j0", "j1"] + [f"n{i}" for i in range(22)]
    refused = 0
    for i, h in enumerate(hosts):
        keys = [SeriesKey("c1", h, f"m{m}") for m in range(10)]
        sids = store.resolve(keys, [60] * 10)
        refused += int((sids < 0).sum())
        ok = sids >= 0
        # j hosts report oldest; protection must not depend on staleness
        store.write(sids[ok], np.full(int(ok.sum()), NOW - 3000 + 60 * i), np.ones(int(ok.sum())), now=NOW)
        assert int(store.hdr[L.H_ALLOC_BYTES]) <= store.usage()["memory_cap_bytes"]
    assert refused > 0  # writers never allocate past the cap
    store.counters[8, L.COUNTER_INDEX["memory_cap_rejected"]] += refused
    assert mc.needed()
    with caplog.at_level(logging.WARNING):
        res = mc.enforce()
    assert int(store.hdr[L.H_ALLOC_BYTES]) <= 0.85 * 100_000
    freed = res["freed_hosts"]
    assert freed == [f"c1/n{i}" for i in range(len(freed))]  # stalest first, n3 (job completed) too
    assert len(freed) == (int(res["freed_bytes"]) // (10 * row))
    for h in ("j0", "j1"):
        assert len(store.series_of_host("c1", h)) == 10
    assert "freed" in caplog.text and "c1/n0" in caplog.text
    assert store.counter_totals()["memcap_freed_series"] == res["freed_series"]
    assert not mc.needed()
    # only job hosts left over the cap: they survive and the log says why
    make_job_db(tmp_path / "all.db", [h for h in hosts])
    mc2 = MemoryCap(store, tmp_path / "all.db")
    for i in range(40):
        keys = [SeriesKey("c1", f"x{i}", f"m{m}") for m in range(10)]
        store.resolve(keys, [60] * 10)
    store.counters[8, L.COUNTER_INDEX["memory_cap_rejected"]] += 1
    make_job_db(tmp_path / "all2.db", [h for h in hosts] + [f"x{i}" for i in range(40)])
    mc2.db_path = tmp_path / "all2.db"
    with caplog.at_level(logging.ERROR):
        res = mc2.enforce()
    assert res["freed_hosts"] == [] and "running jobs" in caplog.text
