"""Write the seed corpus of every harness into ``fuzz/corpus/<target>/`` (from the project's own
code and data: the simulator's cluster.json files, WalWriter, write_snapshot, job_meta).

Each harness's first input byte selects a mode (see its ``one_input``); seeds carry it.
"""

from __future__ import annotations

import sys
import uuid
import zlib
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cc.archive import job_meta  # noqa: E402
from cc.db import job_from_json  # noqa: E402
from cc.shm import Layout, SeriesKey, Store, unlink_all  # noqa: E402
from cc.shm._snapshot import write_snapshot  # noqa: E402
from cc.wal import WalWriter  # noqa: E402

HERE = Path(__file__).resolve().parent
NOW = 1_763_600_000


def put(target: str, name: str, data: bytes) -> None:
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def lineproto() -> None:
    lines = [
        b"cpu_load,cluster=c1,hostname=n1,type=node value=1.5 1763600000",
        b"mem_bw,cluster=c1,hostname=n1,type=socket,type-id=0 value=7i 1763600000000",
        b"flops\\ any,cluster=c\\ 2,hostname=n\\,1,type=hwthread,type-id=3,stype=device,stype-id=x value=2u",
        b"cpu_load,hostname=n2 value=-1e-3 1763600000000000000",
        b'cpu_load,cluster=c1,hostname=n1 event="a \\"b\\"" 1763600000',
        b"# comment",
        b"",
        b"cpu_load,cluster=c1,hostname=n1 value=NaN 1",
    ]
    for i, line in enumerate(lines):
        put("lineproto", f"line{i}", bytes([i % 16]) + line)
    put("lineproto", "batch", b"\x00" + b"\n".join(lines * 3))


def expr() -> None:
    for i, text in enumerate([
        "name == 'cpu_load' && tag.type == 'node'", "name matches '^cpu_%w+'", "tag.type-id in ['0', '1']",
        "!(value > 3.5e2) || startswith(name, 'mem')", "match('x.*', meta.unit) and not contains(name, 'y')",
        "type != nil && hostname in nodes && limit >= 3", "*", "true",
    ]):
        put("expr", f"cond{i}", text.encode())


def clusters() -> None:
    for p in sorted((HERE.parent / "cc" / "sim" / "clusters").glob("*.json")):
        put("cluster", p.stem, p.read_bytes())


def archive() -> None:
    meta = {"jobId": 1234, "cluster": "fritz", "subCluster": "main", "startTime": 1700000000, "duration": 600,
            "user": "u", "project": "p", "numNodes": 1, "numHwthreads": 4, "exclusive": 1,
            "jobState": "completed", "resources": [{"hostname": "f0101", "hwthreads": [0, 1]}],
            "monitoringStatus": 3, "metaData": {"jobName": "x"}}
    stats = {"flops_any": {"unit": {"base": "F/s"}, "avg": 1.5, "min": 1, "max": 2}}
    put("archive", "meta", b"\x00" + orjson.dumps(job_meta(job_from_json(meta), stats)))
    series = [{"hostname": "f0101", "statistics": {"avg": 1.5, "min": 1.0, "max": 2.0},
               "data": [None, 1.0, 2.0, 1.5] * 4} for _ in range(3)]
    data = {"flops_any": {"node": {"unit": {"base": "F/s"}, "timestep": 60, "series": series},
                          "socket": {"unit": {"base": "F/s"}, "timestep": 60,
                                     "series": [dict(s, id="0") for s in series]}}}
    raw = orjson.dumps(data)
    put("archive", "data", b"\x01" + raw)
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    put("archive", "data_gz", b"\x02" + c.compress(raw) + c.flush())
    put("archive", "data_raw_for_gz", b"\x03" + raw)


def checkpoints() -> None:
    inst = "s" + uuid.uuid4().hex[:10]
    store, _ = Store.create(inst, Layout.compute(3600, [10, 60], 0.05))
    try:
        keys = [SeriesKey("c1", f"h{i // 4}", "cpu_load", "hwthread", str(i % 4)) for i in range(16)]
        sids = store.resolve(keys, [60] * len(keys))
        tmp = HERE / "corpus" / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        w = WalWriter(tmp, store, 8, 0, sync="off")
        rng = np.random.default_rng(1)
        for r in range(4):
            per = 40 if r % 2 else 4
            kids = rng.integers(0, 4 + 4 * r, per)
            ts = np.full(per, NOW - 600 + 60 * r)
            vals = rng.random(per)
            with w.gate():
                store.write(sids[kids], ts, vals, now=NOW)
                w.append(kids, ts, vals, NOW, lambda k: (keys[k], 60))
        w.close()
        (wal,) = tmp.glob("*.wal")
        put("wal", "wal", b"\x00" + wal.read_bytes())
        wal.unlink()
        for fmt, mode in (("binary", b"\x00"), ("json", b"\x02")):
            st = write_snapshot(store, tmp, 1, fmt=fmt)
            put("snapshot", fmt, mode + Path(st.path).read_bytes())
            Path(st.path).unlink()
        tmp.rmdir()
    finally:
        store.close()
        unlink_all(inst)


if __name__ == "__main__":
    lineproto()
    expr()
    clusters()
    archive()
    checkpoints()
    print(f"seed corpus in {HERE / 'corpus'}")
