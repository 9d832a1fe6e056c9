"""Restart from disk (not shared memory): 1000 hosts x 20 metrics x 48 h at 60 s -> serving queries.

What a reboot or ``cc-supervise stop`` + ``start`` leaves: a snapshot and the WAL written
since.  The data set is written straight to the checkpoint directory of a fresh
installation (writing 57.6 M points through HTTP would take minutes and is measured by
bench/ingest.py): a binary snapshot of the first 48 h minus ``--wal-minutes`` of every
series (by ``write_snapshot``, the store process's code), plus WAL files of two ingest
workers with the last ``--wal-minutes`` (by ``WalWriter``, the ingest workers' code; one
record per 5,000 points, as a 5,000-line request makes).

Measured: from starting ``cc-supervise run`` (fresh shared memory) until a query answers
with the restored data: supervisor start, store process restore (snapshot + WAL replay),
then ingest and web processes.  Afterwards every sampled series is compared point by
point, and the clean stop (final snapshot) is timed too.  Target: < 10 s.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import cluster_doc, header  # noqa: E402
from bench.snapshot import FREQ, HOUR, fill_store, metric_names  # noqa: E402
from cc.shm import Layout, SeriesKey, Store, unlink_all  # noqa: E402
from cc.shm import _layout as L  # noqa: E402
from cc.shm._snapshot import write_snapshot  # noqa: E402
from cc.wal import WalWriter, wal_dir  # noqa: E402
from tests.helpers import Installation  # noqa: E402

TARGET = 10.0
EPOCH = 5


def build_data(ckpt: Path, hosts: int, metrics: int, hours: float, wal_minutes: int, cap_gb: float, now: int) -> dict:
    inst = "bench" + uuid.uuid4().hex[:8]
    store, _ = Store.create(inst, Layout.compute(int(hours * HOUR), [FREQ], cap_gb))
    try:
        sample = fill_store(store, hosts, metrics, hours, now, skip_last_seconds=wal_minutes * 60)
        st = write_snapshot(store, ckpt, EPOCH, threads=2)
        store.hdr[L.H_WAL_EPOCH] = EPOCH
        keys = [SeriesKey("c1", f"n{h:04d}", m) for h in range(hosts) for m in metric_names(metrics)]
        writers = [WalWriter(wal_dir(ckpt), store, 8 + k, k, sync="off") for k in range(2)]
        rng = np.random.default_rng(7)
        kids = np.arange(len(keys))
        wal_points = 0
        sample_idx = [i for i, k in enumerate(keys) if k in sample]
        tail = {keys[i]: ([], []) for i in sample_idx}
        for m in range(wal_minutes - 1, -1, -1):
            ts = (now // FREQ - m) * FREQ
            vals = np.round(rng.uniform(0, 100, len(keys)), 2)
            for i in sample_idx:
                tail[keys[i]][0].append(ts)
                tail[keys[i]][1].append(vals[i])
            for j, a in enumerate(range(0, len(keys), 5000)):
                w = writers[j % 2]
                with w.gate():
                    w.append(kids[a:a + 5000], np.full(len(kids[a:a + 5000]), ts), vals[a:a + 5000], ts + 1,
                             lambda k: (keys[k], FREQ))
                wal_points += len(kids[a:a + 5000])
        for w in writers:
            w.close()
        for k, (ts, vals) in tail.items():
            t0, v0 = sample[k]
            sample[k] = (np.concatenate([t0, ts]), np.concatenate([v0, vals]))
        wal_bytes = sum(p.stat().st_size for p in wal_dir(ckpt).glob("*.wal"))
        print(f"   data: snapshot {st.points:,} points ({st.bytes / 1e6:.0f} MB, written in {st.seconds:.1f} s) + "
              f"WAL {wal_points:,} points ({wal_bytes / 1e6:.1f} MB) = {st.points + wal_points:,} points "
              f"of {len(keys):,} series (generated, not timed)")
        return sample
    finally:
        store.close()
        unlink_all(inst)


def query(inst: Installation, host: str, metric: str, frm: int, to: int, token: str) -> dict | None:
    r = httpx.post(inst.web + "/api/query", headers={"Authorization": f"Bearer {token}"}, timeout=60,
                   content=orjson.dumps({"cluster": "c1", "from": frm, "to": to, "with-stats": False,
                                         "queries": [{"metric": metric, "host": host}]}))
    if r.status_code != 200:
        return None
    res = r.json()["results"][0]
    return res[0] if res else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--hours", type=float, default=48)
    ap.add_argument("--wal-minutes", type=int, default=60, help="minutes of data only in the WAL")
    ap.add_argument("--workers", type=int, default=2, help="metric-store.ingest-workers")
    args = ap.parse_args(argv)
    header("restart_disk: restore from snapshot + WAL until queries are served")
    cap_gb = args.hosts * args.metrics * (args.hours * HOUR / FREQ + 2) * 8 / 1e9 * 1.3 + 0.2
    tmp = Path(tempfile.mkdtemp(prefix="ccbench-restart-"))
    clusters = {"c1": cluster_doc("c1", [(m, "node", "avg") for m in metric_names(args.metrics)], sockets=1,
                                  cores_per_socket=2, timestep=FREQ)}
    inst = Installation(tmp / "inst", ingest_workers=args.workers, retention=f"{args.hours:g}h", clusters=clusters,
                        extra_config={"metric-store": {"memory-cap": round(cap_gb, 2)}})
    try:
        now = int(time.time())
        sample = build_data(inst.cfg.metric_store.checkpoint_dir, args.hosts, args.metrics, args.hours,
                            args.wal_minutes, round(cap_gb, 2), now)
        token = inst.token()
        probe_key = next(iter(sample))
        frm, to = now - int(args.hours * HOUR), now // FREQ * FREQ + FREQ
        t0 = time.perf_counter()
        inst.proc = subprocess.Popen([sys.executable, "-m", "supervisor", "run", "--config", str(inst.cfg.path)],
                                     cwd=inst.root, stdout=open(inst.root / "supervisor.out", "ab"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)
        ports = inst.cfg.run_dir / "ports.json"
        while not ports.exists() or not ports.read_bytes():
            time.sleep(0.01)
        t_ports = time.perf_counter() - t0
        addrs = orjson.loads(ports.read_bytes())
        inst.web, inst.ingest = "http://" + addrs["web"], "http://" + addrs["ingest"]
        while True:
            try:
                got = query(inst, probe_key.host, probe_key.metric, frm, to, token)
            except httpx.HTTPError:
                got = None  # the web process is not accepting yet (connections wait in the backlog)
            if got and got["data"] and got["data"][-1] is not None:
                break
            if time.perf_counter() - t0 > 300 or inst.proc.poll() is not None:
                raise RuntimeError("no data after 300 s:\n" + inst.output())
            time.sleep(0.02)
        t_serve = time.perf_counter() - t0
        t_ready = t_ports
        log = (inst.root / "var" / "log" / "store.log").read_text()
        m = re.search(r"restored .* in ([0-9.]+)s", log)
        restore_s = float(m.group(1)) if m else float("nan")
        print(f"   time to serving queries: {t_serve:.2f} s (sockets bound after {t_ready:.2f} s; "
              f"store process restore {restore_s:.2f} s)  [{'target met' if t_serve < TARGET else 'target NOT met'}: "
              f"< {TARGET:.0f} s]")
        print("   store log: " + (m.group(0) if m else "?"))
        logs = inst.output() + (inst.root / "var" / "log" / "web.log").read_text()
        marks = [ln for ln in logs.splitlines()
                 if re.search(r"created shared memory|started store|restored from disk|started web|serving on", ln)]
        print("   timeline:\n" + "\n".join("     " + ln[11:150] for ln in marks))
        checked = 0
        for k, (ts, vals) in sample.items():
            got = query(inst, k.host, k.metric, frm, to, token)
            data = dict(zip(range(got["from"], got["to"], FREQ), got["data"], strict=False))
            for t, v in zip(ts.tolist(), vals.tolist(), strict=True):
                if t >= frm:
                    assert data.get(t) == v, (k, t, data.get(t), v)
                    checked += 1
        print(f"   checked {checked:,} points of {len(sample)} sampled series: all equal")
        t = time.perf_counter()
        r = inst.cli("stop", timeout=300)
        assert r.returncode == 0, r.stderr
        inst.proc.wait(300)
        print(f"   clean stop incl. final snapshot: {time.perf_counter() - t:.2f} s")
    finally:
        inst.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
