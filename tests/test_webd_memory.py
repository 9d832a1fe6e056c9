"""What the web process keeps between requests is bounded: GraphQL documents, login failures."""

from __future__ import annotations

from cc.webd.auth import LoginLimiter
from cc.webd.graphql.endpoint import _DocumentCache


def _query(i: int, size: int) -> str:
    """A distinct valid query of ``size`` characters (padded with a comment: cheap to parse)."""
    q = f"{{ a{i}: clusters {{ name }} }}\n#"
    return q + "x" * max(0, size - len(q))


def test_document_cache_is_bounded_by_query_text():
    """Regression: 256 entries of up to 100 KB of query text each (~100 bytes of parsed document per
    character) could pin gigabytes in the web process."""
    cache = _DocumentCache(entries=256, chars=64_000)
    for i in range(100):
        cache.get(_query(i, 3500))
    info = cache.info()
    assert info["chars"] <= 64_000 and 10 < info["entries"] < 100
    big = _query(999, 5000)  # > chars/16: parsed and answered, not kept
    doc = cache.get(big)
    assert not isinstance(doc, list)
    assert cache.info()["chars"] <= 64_000 and big not in cache._docs


def test_document_cache_returns_the_parsed_document_again():
    cache = _DocumentCache(entries=4, chars=10_000)
    q = "{ clusters { name } }"
    first = cache.get(q)
    assert cache.get(q) is first
    bad = cache.get("{ nosuchfield }")
    assert isinstance(bad, list) and "nosuchfield" in bad[0].message
    for i in range(10):
        cache.get(_query(i, 10))
    assert cache.info()["entries"] == 4


def test_login_limiter_keeps_only_failing_pairs_and_at_most_max_pairs():
    lim = LoginLimiter(free=2, base=1.0, max_pairs=100)
    for i in range(1000):  # checks before successful logins, every one with another name
        assert lim.retry_after("10.0.0.1", f"user{i}", now=1000.0) == 0
    assert len(lim.pairs) == 0
    lim.failed("10.0.0.1", "mallory", now=1000.0)
    lim.failed("10.0.0.1", "mallory", now=1000.0)
    assert lim.retry_after("10.0.0.1", "mallory", now=1000.0) > 0
    lim.succeeded("10.0.0.1", "mallory")
    assert len(lim.pairs) == 0
    for i in range(1000):  # failures with made-up names: memory stays bounded
        lim.failed("10.0.0.2", f"guess{i}", now=2000.0 + i)
    assert len(lim.pairs) == 100
