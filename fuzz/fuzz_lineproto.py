"""Line protocol: any body parses without an undocumented exception; cold (slow path) and
warm (fast path) parses agree; each line alone gives the same points; counters add up."""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    import numpy as np
    from _common import main

    from cc.config import MetricSpec
    from cc.ingestd.lineproto import LineParser

NOW = 1_763_600_123
KNOWN = {"cpu_load": 60, "mem_bw": 30, "flops any": 10}


def lookup(cluster: str, metric: str) -> MetricSpec | None:
    return MetricSpec(KNOWN[metric], "avg") if cluster in ("c1", "c 2") and metric in KNOWN else None


def points(parser: LineParser, parsed) -> list:
    return [(parser.key(k), t, v) for k, t, v in zip(parsed.kids.tolist(), parsed.ts.tolist(),
                                                     parsed.values.tolist(), strict=True)]


def one_input(data: bytes) -> None:
    if not data:
        return
    precision = (None, "s", "ms", "us", "ns")[data[0] % 5]
    cluster = None if data[0] & 8 else "c1"
    body = data[1:]
    parser = LineParser(lookup, max_errors=5)
    results = []
    for _ in range(2):  # cold, then warm: the second parse takes the fast path for known prefixes
        parsed = parser.parse(body, cluster, NOW, precision)
        assert parsed.lines == len(parsed.kids) + parsed.unknown_metric + parsed.not_a_metric + parsed.error_count
        assert len(parsed.errors) == min(parsed.error_count, 5)
        assert np.isfinite(parsed.values).all()
        assert [e.line for e in parsed.errors] == sorted(e.line for e in parsed.errors)
        results.append((points(parser, parsed), parsed.errors, parsed.error_count, parsed.unknown_metric))
    assert results[0] == results[1], results
    if b"\r\r\n" in body:
        return
    single = []
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        fresh = LineParser(lookup)
        single += points(fresh, fresh.parse(line, cluster, NOW, precision))
    assert single == results[0][0], (single, results[0][0])


if __name__ == "__main__":
    main(one_input)
