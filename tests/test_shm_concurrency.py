"""Several real processes register, write and read the same store at once.

Checks the protocol written down in cc/shm/_store.py: readers never see a
half-registered series or a torn value, every acknowledged point is readable at
the end, and a writer killed with SIGKILL neither deadlocks the others nor breaks
the registry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cc.shm import Layout, Store, unlink_all

sys.path.insert(0, str(Path(__file__).parent))
import shm_worker  # noqa: E402

WORKER = Path(__file__).with_name("shm_worker.py")


def spawn(role: str, instance: str, seed: int, duration: float, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    return subprocess.Popen([sys.executable, str(WORKER), role, instance, str(seed), str(duration), str(out)],
                            env=env, stderr=subprocess.PIPE, text=True)


def test_writers_and_readers_in_parallel_processes(tmp_path):
    instance = f"cc{os.getpid()}x"
    unlink_all(instance)
    store, _ = Store.create(instance, Layout.compute(600, [shm_worker.FREQ], 0.2))
    try:
        writers = [spawn("writer", instance, s, 3.0, tmp_path / f"w{s}") for s in range(3)]
        victim = spawn("writer", instance, 99, 30.0, tmp_path / "victim")
        readers = [spawn("reader", instance, 10 + s, 3.5, tmp_path / f"r{s}") for s in range(2)]
        time.sleep(1.0)
        victim.send_signal(signal.SIGKILL)  # dies at an arbitrary point, maybe holding a lock
        victim.wait()
        for p in writers + readers:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        checked = sum(int((tmp_path / f"r{s}").read_text()) for s in range(2))
        assert checked > 1000  # readers really compared values

        repaired = store.repair()
        assert repaired["odd_seq_fixed"] <= 120
        keys = shm_worker.keys()
        sids = {}
        for i, k in enumerate(keys):
            sid = store.lookup(k)
            assert sid is not None, k
            sids[i] = sid
        assert len(set(sids.values())) == len(keys)  # one live series per key
        # every point a surviving writer acknowledged is there with the right value
        now = int(time.time())
        acked = set()
        for s in range(3):
            for line in (tmp_path / f"w{s}").read_text().splitlines():
                k, b = map(int, line.split())
                acked.add((k, b))
        assert len(acked) > 500
        by_key: dict[int, list[int]] = {}
        for k, b in acked:
            by_key.setdefault(k, []).append(b)
        for k, bins in by_key.items():
            r = store.read([sids[k]], now - 600, now + 1)
            got = r.values[0]
            idx = np.array(bins) - r.start_bin
            assert (idx >= 0).all()
            assert np.array_equal(got[idx], shm_worker.f(np.full(len(bins), k), np.array(bins)))
    finally:
        store.close()
        unlink_all(instance)
