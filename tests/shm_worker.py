"""Writer/reader processes for test_shm_concurrency (run as a script, not collected by pytest).

Every writer writes the value ``f(key, bin)`` for a (key, bin) pair, so any value a
reader sees must be exactly that or NaN: a torn slot or a series mixed up with another
would show as a different number.
"""

from __future__ import annotations

import random
import sys
import time

import numpy as np

from cc.shm import SeriesKey, Store

FREQ = 1
NKEYS = 300


def keys() -> list[SeriesKey]:
    return [SeriesKey("c1", f"h{i % 30:02d}", f"m{i // 30}", "hwthread", str(i % 7)) for i in range(NKEYS)]


def f(kidx: np.ndarray, bins: np.ndarray) -> np.ndarray:
    return kidx * 1_000_003.0 + (bins % 1_000_000)


def writer(instance: str, seed: int, duration: float, out: str) -> None:
    rnd = random.Random(seed)
    store = Store.attach(instance)
    ks = keys()
    order = list(range(NKEYS))
    acked: list[tuple[int, int]] = []
    end = time.time() + duration
    while time.time() < end:
        rnd.shuffle(order)
        chosen = order[: rnd.randint(1, 120)]
        sids = store.resolve([ks[i] for i in chosen], [FREQ] * len(chosen))
        assert (sids >= 0).all(), sids
        now = int(time.time())
        ts = np.array([now - rnd.randint(0, 200) for _ in chosen], dtype=np.int64)
        kidx = np.array(chosen, dtype=np.int64)
        st = store.write(sids, ts, f(kidx, ts // FREQ), now=now)
        assert st.written == len(chosen), st
        acked.extend(zip(kidx.tolist(), (ts // FREQ).tolist(), strict=True))
    with open(out, "w") as fh:
        fh.write("\n".join(f"{k} {b}" for k, b in acked))
    store.close()


def reader(instance: str, seed: int, duration: float, out: str) -> None:
    rnd = random.Random(seed)
    store = Store.attach(instance)
    ks = keys()
    checked = 0
    end = time.time() + duration
    while time.time() < end:
        store.sync()
        count = int(store.hdr[3])
        for sid in range(count):  # every published entry decodes to a well-formed key
            k = store.key_of(sid)
            assert k in ks, (sid, k)
        chosen = rnd.sample(range(NKEYS), 40)
        sids, idx = [], []
        for i in chosen:
            sid = store.lookup(ks[i])
            if sid is not None:
                assert store.key_of(sid) == ks[i]
                sids.append(sid)
                idx.append(i)
        if not sids:
            continue
        now = int(time.time())
        r = store.read(sids, now - 300, now + 1)
        bins = r.start_bin + np.arange(r.values.shape[1])
        expect = f(np.array(idx)[:, None], bins[None, :])
        seen = ~np.isnan(r.values)
        bad = seen & (r.values != expect)
        assert not bad.any(), f"torn or misplaced values: {r.values[bad][:5]} expected {expect[bad][:5]}"
        checked += int(seen.sum())
    with open(out, "w") as fh:
        fh.write(str(checked))
    store.close()


if __name__ == "__main__":
    role, instance, seed, duration, out = sys.argv[1:6]
    (writer if role == "writer" else reader)(instance, int(seed), float(duration), out)
