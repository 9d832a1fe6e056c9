"""Durability with the real supervisor: kill -9 of everything + reboot, torn WAL, clean stop, archive, memory cap.

A "reboot" is simulated by removing the shared-memory segments after killing every
process (the page cache survives a process kill, so these tests cover the process-crash
path; the power-cut path - unsynced data lost, torn tails - is covered in test_wal.py).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from cc import ipc
from cc.shm import unlink_all
from cc.wal import list_wal_files
from tests.helpers import Installation, small_cluster


def now10() -> int:
    return int(time.time()) // 10 * 10


def debug(inst: Installation) -> dict:
    return httpx.get(inst.web + "/api/debug", headers={"Authorization": f"Bearer {inst.token()}"}, timeout=30).json()


def store_cmd(inst: Installation, msg: dict, timeout: float = 60) -> dict:
    return ipc.request_sync(inst.cfg.run_dir / "store.sock", msg, timeout=timeout)


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def kill_everything(inst: Installation) -> None:
    """SIGKILL the supervisor and every child at once, then remove shared memory (= reboot)."""
    st = inst.status()
    pids = [inst.proc.pid] + [p["pid"] for p in st["processes"] if p["pid"]]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    inst.proc.wait(30)
    deadline = time.time() + 30
    while not all(_dead(p) for p in pids):
        assert time.time() < deadline, "processes survived SIGKILL"
        time.sleep(0.05)
    assert inst.segments()  # shared memory survived the kill ...
    unlink_all(inst.instance)  # ... but not the "reboot"


class Feeder(threading.Thread):
    """A collector that writes distinct slots and remembers exactly what was acknowledged."""

    def __init__(self, inst: Installation, name: str, hosts: int = 6, max_slots: int = 340, realtime: bool = False):
        super().__init__(daemon=True)
        self.inst, self.prefix, self.hosts, self.max_slots, self.realtime = inst, name, hosts, max_slots, realtime
        self.acked: dict[tuple[str, int, int], float] = {}
        self.stop = threading.Event()
        self.token = inst.token()

    def run(self) -> None:
        rnd = random.Random(self.prefix)
        client = httpx.Client(timeout=10)
        t0 = now10()
        i = 0
        while not self.stop.is_set() and i // self.hosts < self.max_slots:
            host = f"{self.prefix}{i % self.hosts}"
            # distinct 10 s slots going back in time, or (realtime) the current second
            ts = int(time.time()) if self.realtime else t0 - 10 * (i // self.hosts)
            vals = {hw: round(rnd.random() * 1000, 3) for hw in range(8)}
            body = "\n".join(f"flops_any,cluster=c1,hostname={host},type=hwthread,type-id={hw} value={v!r} {ts}"
                             for hw, v in vals.items())
            try:
                ok = client.post(self.inst.ingest + "/api/write?cluster=c1", content=body,
                                 headers={"Authorization": f"Bearer {self.token}"}).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                for hw, v in vals.items():
                    self.acked[(host, hw, ts)] = v
                i += 1
            else:
                time.sleep(0.05)
                client.close()
                client = httpx.Client(timeout=10)
        client.close()


def assert_all_present(inst: Installation, acked: dict[tuple[str, int, int], float], freq: int = 10) -> None:
    by_host: dict[str, list] = {}
    for (host, hw, ts), v in acked.items():
        by_host.setdefault(host, []).append((hw, ts, v))
    t_hi = int(time.time()) // freq * freq + freq
    for host, pts in by_host.items():
        q = inst.query({"cluster": "c1", "from": t_hi - 3600, "to": t_hi, "with-stats": False, "queries": [
            {"metric": "flops_any", "host": host, "type": "hwthread", "type-ids": [str(h) for h in range(8)]}]})
        assert q.status_code == 200, q.text
        series = q.json()["results"][0]
        assert len(series) == 8, host
        for hw, ts, v in pts:
            s = series[hw]
            assert s["data"][(ts - s["from"]) // freq] == pytest.approx(v), (host, hw, ts)


def wal_config(**kw) -> dict:
    return {"metric-store": {"checkpoints": {"file-format": "wal", "directory": "./var/checkpoints", **kw}}}


def test_kill_everything_under_load_then_reboot_restores_every_acknowledged_point(tmp_path):
    inst = Installation(tmp_path, ingest_workers=2, extra_config=wal_config(**{"wal-sync": "always",
                                                                               "max-wal-size": 150_000}))
    try:
        inst.start()
        feeders = [Feeder(inst, "ka"), Feeder(inst, "kb")]
        for f in feeders:
            f.start()
        time.sleep(1.5)
        snap = store_cmd(inst, {"cmd": "checkpoint"})  # so the restore needs a snapshot *and* the WAL
        assert snap["ok"] and snap["series"] > 0, snap
        time.sleep(1.5)
        kill_everything(inst)  # under load: requests in flight are not acknowledged
        for f in feeders:
            f.stop.set()
        for f in feeders:
            f.join(30)
        acked = {k: v for f in feeders for k, v in f.acked.items()}
        assert len(acked) > 400
        ckpt = tmp_path / "var" / "checkpoints"
        assert list(ckpt.glob("snapshot-*.bin")) and list_wal_files(ckpt)
        inst.start()
        assert_all_present(inst, acked)
        c = debug(inst)["counters"]
        assert c["restored_points"] > 0 and c["wal_replayed_points"] > 0, c
        # A worker killed inside write(2) may leave a torn record of a request it never answered:
        # at most one per WAL file, skipped and counted (every acknowledged point was checked above).
        assert c["wal_bad_records"] <= len(list_wal_files(ckpt)), c
        log = (tmp_path / "var" / "log" / "store.log").read_text()
        assert "restored" in log and "snapshot-" in log and "replayed" in log
    finally:
        inst.stop()


def test_torn_and_corrupt_wal_tails_are_skipped_and_counted(tmp_path):
    inst = Installation(tmp_path, ingest_workers=2, extra_config=wal_config(**{"wal-sync": "interval"}))
    try:
        inst.start()
        t = now10() - 300
        acked = {}
        for i in range(20):  # two workers: requests land in either WAL file
            with httpx.Client(timeout=10) as c:  # a new connection per request spreads them over workers
                lines = [f"flops_any,cluster=c1,hostname=w{i},type=hwthread,type-id={hw} value={i + hw} {t}"
                         for hw in range(8)]
                r = c.post(inst.ingest + "/api/write?cluster=c1", content="\n".join(lines),
                           headers={"Authorization": f"Bearer {inst.token()}"})
                assert r.status_code == 200, r.text
            acked.update({(f"w{i}", hw, t): i + hw for hw in range(8)})
        kill_everything(inst)
        files = [p for p in list_wal_files(tmp_path / "var" / "checkpoints") if p.stat().st_size > 100]
        assert files
        from cc.wal import WalReader

        lost = set()
        for n, p in enumerate(files):
            last_host = None
            for rec in (r := WalReader(p)):
                last_host = r.key_of[int(rec.kids[0])][0].host
            lost |= {(last_host, hw, t) for hw in range(8)}
            data = p.read_bytes()
            if n % 2 == 0:
                p.write_bytes(data[:-5])  # torn tail (power cut mid-write)
            else:
                b = bytearray(data)
                b[-3] ^= 0x55  # corrupt tail (bad sector)
                p.write_bytes(bytes(b))
        inst.start()
        c = debug(inst)["counters"]
        assert c["wal_bad_records"] == len(files)
        assert_all_present(inst, {k: v for k, v in acked.items() if k not in lost})
        for host in {k[0] for k in lost}:
            q = inst.query({"cluster": "c1", "from": t, "to": t + 10, "queries": [{"metric": "flops_any", "host": host}]})
            assert q.json()["results"][0] == [] or q.json()["results"][0][0]["data"] in ([], [None])
        log = (tmp_path / "var" / "log" / "store.log").read_text()
        assert all(p.name in log for p in files)
        r = inst.cli("checkpoint-info", str(files[0]))
        assert r.returncode == 1 and "DAMAGED" in r.stdout
    finally:
        inst.stop()


def test_clean_stop_and_start_is_lossless_without_wal_replay(tmp_path):
    inst = Installation(tmp_path, ingest_workers=1)
    try:
        inst.start()
        feeder = Feeder(inst, "cs", max_slots=15)
        feeder.run()  # in this thread, until done
        assert len(feeder.acked) == 6 * 15 * 8
        r = inst.cli("stop")
        assert r.returncode == 0, r.stderr
        inst.proc.wait(60)
        assert inst.segments() == []
        snaps = list((tmp_path / "var" / "checkpoints").glob("snapshot-*.bin"))
        assert snaps
        inst.start()
        assert_all_present(inst, feeder.acked)
        c = debug(inst)["counters"]
        assert c["restored_points"] == len(feeder.acked)
        assert c["wal_replayed_points"] == 0  # the final snapshot already holds everything
        assert "final snapshot" in (tmp_path / "supervisor.out").read_text()
    finally:
        inst.stop()


def test_archive_mode_writes_aged_out_points_to_parquet_once(tmp_path):
    cfg = {"metric-store": {"retention-in-memory": "10s",
                            "cleanup": {"mode": "archive", "directory": "./var/archive", "interval": "3s"}}}
    inst = Installation(tmp_path, ingest_workers=1, retention="10s", clusters={"c1": small_cluster(timestep=1)},
                        extra_config=cfg)
    try:
        inst.start()
        feeder = Feeder(inst, "ar", hosts=2, max_slots=10**6, realtime=True)
        feeder.start()
        t_end = time.time() + 18
        while time.time() < t_end:
            time.sleep(0.5)
        feeder.stop.set()
        feeder.join(30)
        # Wait until every fed point has aged out and is archived: from then on the store's periodic
        # runs (every 3 s) find nothing new, so files, state and counter can be read without racing them.
        last = max(k[2] for k in feeder.acked)
        deadline = time.time() + 90
        while True:
            assert store_cmd(inst, {"cmd": "archive"})["ok"]
            state = orjson.loads((tmp_path / "var" / "archive" / ".archive-state.json").read_bytes())
            cut = state["archived_to"] - 10 - 1  # cut(T) = T - retention - margin
            if cut > last:
                break
            assert time.time() < deadline, f"archive stuck at {state}"
            time.sleep(0.5)
        rows = []
        files = sorted((tmp_path / "var" / "archive" / "c1").glob("*.parquet"))
        assert len(files) >= 2  # periodic run(s) of the store process, plus the one we asked for
        for f in files:
            tab = pq.read_table(f)
            rows += list(zip(tab.column("hostname").to_pylist(), tab.column("scope_id").to_pylist(),
                             tab.column("timestamp").to_pylist(), tab.column("value").to_pylist(), strict=True))
        keys = [(h, int(s), ts) for h, s, ts, _ in rows]
        assert len(keys) == len(set(keys))  # nothing archived twice
        archived = {k: v for k, (_, _, _, v) in zip(keys, rows, strict=True)}
        assert all(archived[k] == feeder.acked[k] for k in archived)  # only acknowledged values
        assert {k for k in feeder.acked if k[2] < cut} == set(archived)  # no gaps
        assert debug(inst)["counters"]["archived_points"] == len(archived)
    finally:
        inst.stop()


def insert_running_job(db: Path, hosts: list[str]) -> None:
    """Add a running job to the job table (filling whatever NOT NULL columns the schema has)."""
    con = sqlite3.connect(db)
    try:
        cols = con.execute("PRAGMA table_info(job)").fetchall()
        if not cols:
            con.execute("CREATE TABLE job (id INTEGER PRIMARY KEY, cluster TEXT, job_state TEXT, resources TEXT)")
            cols = con.execute("PRAGMA table_info(job)").fetchall()
        row: dict[str, object] = {"cluster": "c1", "job_state": "running",
                                  "resources": orjson.dumps([{"hostname": h} for h in hosts]).decode()}
        fill = {"TEXT": "x", "INT": 1, "BIGINT": 1, "REAL": 0.0, "TINYINT": 1}
        for _, name, typ, notnull, default, pk in cols:
            if name not in row and notnull and default is None and not pk:
                row[name] = "none" if name == "shared" else fill.get(typ.upper(), 1)
        if "job_id" in row:
            row["job_id"] = random.randrange(1 << 30)
        con.execute(f"INSERT INTO job ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        con.commit()
    finally:
        con.close()


def test_memory_cap_holds_and_hosts_of_running_jobs_survive(tmp_path):
    inst = Installation(tmp_path, ingest_workers=1, extra_config={"metric-store": {"memory-cap": 0.001}})
    try:
        insert_running_job(inst.cfg.db_path, ["j0", "j1"])
        inst.start()
        cap = debug(inst)["store"]["memory_cap_bytes"]
        t = now10() - 3000
        hosts = ["j0", "j1"] + [f"n{i}" for i in range(45)]
        job_points = {}
        for i, h in enumerate(hosts):
            ts = t + 10 * i  # later hosts report more recently: n0 is the stalest
            lines = [f"cpu_load,cluster=c1,hostname={h},type=node value={i} {ts}"]
            lines += [f"flops_any,cluster=c1,hostname={h},type=hwthread,type-id={hw} value={hw} {ts}" for hw in range(8)]
            r = inst.write("\n".join(lines))
            assert r.status_code == 200, r.text
            if h.startswith("j"):
                job_points.update({(h, hw, ts): hw for hw in range(8)})
            assert debug(inst)["store"]["allocated_bytes"] <= cap
            time.sleep(0.05)
        deadline = time.time() + 20
        while time.time() < deadline and debug(inst)["counters"]["memcap_freed_series"] == 0:
            time.sleep(0.2)
        d = debug(inst)
        assert d["counters"]["memcap_freed_series"] > 0
        assert d["store"]["allocated_bytes"] <= cap
        assert_all_present(inst, job_points)  # hosts of the running job keep all their data
        log = (tmp_path / "var" / "log" / "store.log").read_text()
        assert "memory cap" in log and "c1/n0" in log  # what was freed is logged, stalest first
        q = inst.query({"cluster": "c1", "from": t, "to": t + 600, "queries": [{"metric": "cpu_load", "host": "n0"}]})
        assert q.json()["results"][0] == []
    finally:
        inst.stop()
