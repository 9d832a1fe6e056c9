"""Corrupt checkpoint files of a real stopped installation: the store starts anyway, every point
outside the damaged record is queryable, and the store log names each damaged file and offset."""

from __future__ import annotations

import httpx

from cc.wal import REC, T_POINTS, WalReader, list_wal_files
from tests.helpers import Installation
from tests.test_durability_integration import (
    assert_all_present,
    debug,
    kill_everything,
    now10,
    store_cmd,
    wal_config,
)


def post(inst: Installation, host: str, t: int, acked: dict) -> None:
    lines = [f"flops_any,cluster=c1,hostname={host},type=hwthread,type-id={hw} value={hw + 0.5} {t}" for hw in range(8)]
    with httpx.Client(timeout=10) as c:
        r = c.post(inst.ingest + "/api/write?cluster=c1", content="\n".join(lines),
                   headers={"Authorization": f"Bearer {inst.token()}"})
    assert r.status_code == 200, r.text
    acked.update({(host, hw, t): hw + 0.5 for hw in range(8)})


def test_flipped_bit_in_the_wal_and_a_torn_snapshot_cost_only_the_damaged_record(tmp_path):
    inst = Installation(tmp_path, ingest_workers=1, extra_config=wal_config(**{"wal-sync": "always"}))
    try:
        inst.start()
        t = now10() - 300
        acked: dict = {}
        for i in range(6):
            post(inst, f"a{i}", t, acked)  # before the snapshot: in the snapshot and an epoch-0 WAL
        snap = store_cmd(inst, {"cmd": "checkpoint"})
        assert snap["ok"], snap
        for i in range(12):
            post(inst, f"b{i}", t, acked)  # after it: only in the WAL of the new epoch
        kill_everything(inst)

        ckpt = tmp_path / "var" / "checkpoints"
        (snapshot,) = ckpt.glob("snapshot-*.bin")
        newest = max(list_wal_files(ckpt), key=lambda p: p.name)
        # the 6th points record of the newest WAL file: its points are the only ones lost
        reader = WalReader(newest)
        recs = list(reader)
        blob = newest.read_bytes()
        offsets, pos = [], 8
        while pos < len(blob):
            _, length, rtype, _, _, _ = REC.unpack_from(blob, pos)
            if rtype == T_POINTS:
                offsets.append(pos)
            pos += REC.size + length
        assert len(offsets) == len(recs) >= 10
        victim = offsets[5]
        lost_host = reader.key_of[int(recs[5].kids[0])][0].host
        damaged = bytearray(blob)
        damaged[victim + REC.size + 3] ^= 0x10
        newest.write_bytes(bytes(damaged))
        snapshot.write_bytes(snapshot.read_bytes()[:-7])  # the footer is gone: the snapshot is not intact

        inst.start()
        lost = {k for k in acked if k[0] == lost_host}
        assert len(lost) == 8
        assert_all_present(inst, {k: v for k, v in acked.items() if k not in lost})
        c = debug(inst)["counters"]
        assert c["wal_bad_records"] == 1, c
        log = (tmp_path / "var" / "log" / "store.log").read_text()
        assert f"{newest.name}: checksum mismatch at offset {victim}" in log, log[-3000:]
        assert snapshot.name in log and "salvaged" in log
        assert (ckpt / (snapshot.name + ".damaged")).exists()
        # and the installation keeps working
        post(inst, "after", now10() - 10, acked)
    finally:
        inst.stop()
