"""The parser's compact prefix index: a hash table that must agree with a dict."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cc.config import MetricSpec
from cc.ingestd._prefixindex import MISS, PrefixIndex, prefix_hash, prefix_hashes
from cc.ingestd.lineproto import LineParser

NOW = 1_763_600_000


def test_lookup_agrees_with_a_dict_across_flushes():
    index = PrefixIndex()
    rng = np.random.default_rng(7)
    hashes = np.unique(rng.integers(-(2**63), 2**63 - 1, size=5000, dtype=np.int64))
    extremes = np.array([-(2**63), -1, 0, 1, 2**63 - 1], dtype=np.int64)  # edges of the hash ranges
    hashes = np.union1d(hashes, extremes)
    truth = {}
    for k, h in enumerate(hashes.tolist()):
        index.add(h, k)
        truth[h] = k
        if k % 700 == 0:
            index.flush()  # some merged, some still waiting: both must be found
    assert index.size == len(truth)
    absent = np.array([h + 1 for h in hashes.tolist()[:100] if h + 1 not in truth and h < 2**63 - 1])
    query = np.concatenate([hashes, absent, hashes[::-1]])
    want = [truth.get(h, MISS) for h in query.tolist()]
    assert index.lookup(query).tolist() == want
    index.flush()
    assert index.lookup(query).tolist() == want
    assert [index.get(h) for h in absent.tolist()] == [None] * len(absent)
    assert index.get(int(hashes[17])) == 17
    assert index.nbytes <= 16 * len(truth) + 64  # sorted hashes, kids and the range directory


def test_crowded_range_is_searched_to_its_end():
    # Hashes sharing their top bits all fall into one range of the directory.
    index = PrefixIndex()
    crowded = [(5 << 40) + k for k in range(40)] + [-(2**62) + k for k in range(3)]
    for kid, h in enumerate(crowded):
        index.add(h, kid)
    index.flush()
    assert index.lookup(np.array(crowded, dtype=np.int64)).tolist() == list(range(len(crowded)))
    assert index.lookup(np.array([(5 << 40) + 99, (5 << 40) - 1], dtype=np.int64)).tolist() == [MISS, MISS]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=300, unique=True), st.data())
def test_prefixes_map_like_a_dict(prefixes, data):
    index = PrefixIndex()
    stored = data.draw(st.lists(st.sampled_from(prefixes), unique=True))
    for kid, p in enumerate(stored):
        index.add(prefix_hash(p), kid - 1)  # -1 (unknown metric) is a storable kid too
        if data.draw(st.booleans()):
            index.flush()
    got = index.lookup(prefix_hashes(prefixes)).tolist()
    assert got == [stored.index(p) - 1 if p in stored else MISS for p in prefixes]
    index.clear()
    assert index.size == 0 and index.lookup(prefix_hashes(prefixes)).tolist() == [MISS] * len(prefixes)


def test_new_prefix_repeated_in_one_body_is_resolved_once():
    calls = []

    def lookup(cluster, metric):
        calls.append((cluster, metric))
        return MetricSpec(60, "avg")

    p = LineParser(lookup)
    lines = [b"m%d,cluster=c1,hostname=n1 value=%d %d" % (i % 3, i, NOW + i) for i in range(30)]
    lines.insert(4, b"m9,cluster=c1,hostname=n1 value=1")  # no timestamp: slow path between them
    parsed = p.parse(b"\n".join(lines), None, NOW)
    assert len(calls) == 4 and parsed.lines == 31 and parsed.error_count == 0
    # kids are numbered by first appearance in the body, whichever path a line took
    assert parsed.kids[:6].tolist() == [0, 1, 2, 0, 3, 1]
    assert parsed.values.tolist() == [0, 1, 2, 3, 1, 4] + list(range(5, 30))
    again = p.parse(b"\n".join(lines), None, NOW)
    assert len(calls) == 4 and again.kids.tolist() == parsed.kids.tolist()


def test_forgetting_every_key_releases_the_key_tables():
    p = LineParser(lambda c, m: MetricSpec(60, "avg"))
    body = b"\n".join(b"cpu_load,cluster=c1,hostname=n%d value=1 %d" % (i, NOW) for i in range(2000))
    kids = p.parse(body, None, NOW).kids
    p.forget(kids.tolist())
    assert p._keys == {} and p._kid_of == {}
    assert p.num_keys == 2000
    assert p.parse(body, None, NOW).kids.tolist() == kids.tolist()
