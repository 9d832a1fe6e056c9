"""revert-db, optimize-db and cleanup-checkpoints through cc-supervise."""

from __future__ import annotations

import os
import sqlite3
import time

import orjson

from cc.db import connect, migrate
from cc.db._migrate import SCHEMA_VERSION, db_version
from supervisor._cmd_maint import checkpoint_cleanup_plan
from tests.helpers import Installation


def tables(path) -> set[str]:
    conn = connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def version(path) -> int | None:
    conn = connect(path)
    try:
        return db_version(conn)
    finally:
        conn.close()


def test_revert_db_goes_down_one_version_at_a_time_and_migrate_db_comes_back(tmp_path):
    inst = Installation(tmp_path)
    db = inst.cfg.db_path
    migrate(db)
    assert SCHEMA_VERSION == 13 and "web_session" in tables(db)
    r = inst.cli("revert-db")
    assert r.returncode == 0, r.stderr
    assert "from version 13 to 12" in r.stdout and version(db) == 12 and "web_session" not in tables(db)
    assert list(db.parent.glob(f"{db.name}.v13-*.bak"))
    r = inst.cli("revert-db")
    assert r.returncode == 0 and version(db) == 11 and "job_archive_status" not in tables(db)
    assert "job" in tables(db) and "job_cache" in tables(db)
    r = inst.cli("revert-db")
    assert r.returncode == 1 and "version 11 is cc-backend's" in r.stderr and version(db) == 11
    r = inst.cli("migrate-db")
    assert r.returncode == 0 and version(db) == 13 and {"web_session", "job_archive_status"} <= tables(db)


def test_optimize_db(tmp_path):
    inst = Installation(tmp_path)
    migrate(inst.cfg.db_path)
    conn = sqlite3.connect(inst.cfg.db_path)
    with conn:
        conn.execute("CREATE TABLE filler (x TEXT)")
        conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 1000,)] * 2000)
    with conn:
        conn.execute("DELETE FROM filler")
    conn.close()
    r = inst.cli("optimize-db")
    assert r.returncode == 0, r.stderr
    assert "VACUUM, ANALYZE" in r.stdout
    before, after = (int(x.replace(",", "")) for x in r.stdout.split(": ")[1].split(" bytes")[0].split(" -> "))
    assert after < before - 1_000_000
    assert "sqlite_stat1" in tables(inst.cfg.db_path)


def test_cleanup_checkpoints(tmp_path):
    inst = Installation(tmp_path, ingest_workers=1, retention="1h")
    d = inst.cfg.metric_store.checkpoint_dir
    now = int(time.time())
    for round_ in range(2):  # two clean stops: two snapshots, WAL files in between
        inst.start()
        try:
            r = inst.write("\n".join(f"cpu_load,cluster=c1,hostname=x1,type=node value={k} {now - 600 + 10 * k}"
                                     for k in range(30)))
            assert r.status_code == 200, r.text
            if round_ == 1:
                r = inst.cli("cleanup-checkpoints")
                assert r.returncode == 1 and "stop it first" in r.stderr
        finally:
            inst.stop()
    old = d / "snapshot-000000000001.bin"  # older than the two newest snapshots
    old.write_bytes(b"x")
    damaged = d / "snapshot-000000000002.bin.damaged"
    damaged.write_bytes(b"y")
    os.utime(damaged, (now - 2 * 3600, now - 2 * 3600))
    r = inst.cli("cleanup-checkpoints", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"would remove {old} (older than the two newest snapshots)" in r.stdout
    assert f"would remove {damaged}" in r.stdout and old.exists()
    r = inst.cli("cleanup-checkpoints")
    assert r.returncode == 0 and "2 files" in r.stdout and not old.exists() and not damaged.exists()
    kept = sorted(d.glob("snapshot-*.bin"))
    assert len(kept) == 2
    # three hours later every point is past the one-hour retention: the files a restore would drop go
    plan, _ = checkpoint_cleanup_plan(inst.cfg, now=now + 3 * 3600)
    assert {p for p, _ in plan} >= set(kept)
    assert all(why == "every point is older than the retention" for _, why in plan)
    # cleanup.mode archive: only what the store process archived already
    ms = inst.cfg.metric_store
    ms.cleanup_mode, ms.cleanup_dir = "archive", tmp_path / "parquet"
    ms.cleanup_dir.mkdir()
    plan, notes = checkpoint_cleanup_plan(inst.cfg, now=now + 3 * 3600)
    assert plan == [] and any("archive" in n for n in notes)
    (ms.cleanup_dir / ".archive-state.json").write_bytes(orjson.dumps({"archived_to": now + 3 * 3600,
                                                                       "in_progress": None}))
    plan, _ = checkpoint_cleanup_plan(inst.cfg, now=now + 3 * 3600)
    assert {p for p, _ in plan} >= set(kept)
