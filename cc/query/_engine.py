"""Running a validated request against the shared store: read, combine, describe, resample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cc.clusters import Cluster, MetricCatalog
from cc.query import _resample
from cc.query._request import Query, QueryRequest, check_range
from cc.query._select import Part, Selector
from cc.shm import ReadResult, Store

NAN = float("nan")
STATS_CHUNK = 128


@dataclass
class _Block:
    """Combined rows of one query that share a frequency (one row per result entry)."""

    values: np.ndarray  # (entries, bins), NaN where empty
    start_bin: int
    frequency: int
    resolution: int  # the query's requested resolution
    entries: list[dict[str, Any]]  # the response entries the rows belong to
    stats: tuple[list[float], list[float], list[float]] | None = None


def execute(req: QueryRequest, store: Store, clusters: dict[str, Cluster], catalog: MetricCatalog, *,
            minimum_points: int = 1000, method: str = "lttb", numpy_data: bool = False) -> dict[str, Any]:
    """Answer a ``/api/query`` request in cc-metric-store's response shape.

    ``data`` holds plain lists of floats (NaN for missing values), or float64 numpy
    arrays with ``numpy_data`` (for orjson's ``OPT_SERIALIZE_NUMPY``; much faster for
    thousands of series).  Raises QueryError for requests that are too large.
    """
    if method not in _resample.METHODS:
        raise ValueError(f"unknown resampling method {method!r}")
    queries = list(req.queries)
    generated: list[Query] = []
    if req.for_all_nodes is not None:
        for host in store.hosts(req.cluster):
            generated.extend(Query(metric=m, host=host) for m in req.for_all_nodes)
        queries.extend(generated)
    specs = {}
    for q in queries:
        if q.metric not in specs:
            specs[q.metric] = spec = catalog.get(req.cluster, q.metric)
            if spec is not None:
                check_range(req.frm, req.to, spec.frequency, q.metric)

    selector = Selector(store, req.cluster, clusters.get(req.cluster))
    planned = []
    for q in queries:
        spec = specs[q.metric]
        aggregation = spec.aggregation if spec is not None else None
        planned.append((q, aggregation, selector.plan(q, aggregation)))
    reads = _read_all(req, store, [parts for _, _, parts in planned])
    results: list[list[dict[str, Any]]] = []
    blocks: list[_Block] = []
    for i, (q, aggregation, parts) in enumerate(planned):
        entries, qblocks = _run_query(req, q, parts, store, aggregation, reads.get(i))
        results.append(entries)
        blocks.extend(qblocks)
    _finish(req, blocks, minimum_points, method, numpy_data)
    out: dict[str, Any] = {"results": results}
    if req.for_all_nodes is not None:
        out["queries"] = [q.to_json() for q in generated]
    return out


def _error(req: QueryRequest, msg: str) -> dict[str, Any]:
    return {"error": msg, "from": req.frm, "to": req.to, "resolution": 0, "avg": NAN, "min": NAN, "max": NAN}


def _read_all(req: QueryRequest, store: Store, plans: list[list[Part]]) -> dict[int, ReadResult]:
    """One store read per frequency for every series of the request, cut back into per-query results.

    Each query's slice is clipped to its own series' data range, so the result is the
    same as reading each query alone; only the copying out of shared memory is batched.
    """
    spans: list[tuple[int, int, int]] = []  # (query, start, end) into the concatenated sid list
    sids: list[int] = []
    for i, parts in enumerate(plans):
        start = len(sids)
        for part in parts:
            if part.error is None:
                sids.extend(part.sids)
        if len(sids) > start:
            spans.append((i, start, len(sids)))
    if not sids:
        return {}
    all_sids = np.asarray(sids, dtype=np.int64)
    freqs = store.frequencies_of(all_sids)
    out: dict[int, ReadResult] = {}
    mixed = {i for i, a, b in spans if (freqs[a:b] != freqs[a]).any()}
    for f in np.unique(freqs).tolist():
        members = [(i, a, b) for i, a, b in spans if i not in mixed and freqs[a] == f]
        if not members:
            continue
        idx = np.concatenate([np.arange(a, b) for _, a, b in members])
        rr = store.read(all_sids[idx], req.frm, req.to)
        pos = 0
        for i, a, b in members:
            out[i] = _clip(rr, pos, pos + b - a)
            pos += b - a
    return out


def _clip(rr: ReadResult, a: int, b: int) -> ReadResult:
    """Rows a:b of a joint read, cut to the bins those rows can hold (a view, no copy)."""
    alive, first, last = rr.alive[a:b], rr.first[a:b], rr.last[a:b]
    width = rr.values.shape[1]
    if not alive.any() or not width:
        return ReadResult(rr.values[a:b, :0], rr.start_bin, rr.frequency, last, alive, first)
    lo = max(rr.start_bin, int(first[alive].min()))
    hi = min(rr.start_bin + width - 1, int(last[alive].max()))
    if hi < lo:
        return ReadResult(rr.values[a:b, :0], rr.start_bin, rr.frequency, last, alive, first)
    values = rr.values[a:b, lo - rr.start_bin: hi - rr.start_bin + 1]
    return ReadResult(values, lo, rr.frequency, last, alive, first)


def _run_query(req: QueryRequest, q: Query, parts: list[Part], store: Store, aggregation: str | None,
               pre: ReadResult | None) -> tuple[list[dict], list[_Block]]:
    """Combine the parts of one query from its slice of the joint read; entries are filled by :func:`_finish`."""
    entries: list[dict[str, Any]] = []
    members: list[tuple[Part, dict[str, Any]]] = []
    for part in parts:
        entry = _error(req, part.error) if part.error is not None else {}
        entries.append(entry)
        if part.error is None:
            members.append((part, entry))
    if not members:
        return entries, []
    reads = [(members, pre)] if pre is not None else _read_by_frequency(req, q, members, store)
    blocks = []
    for group, rr in reads:
        f = rr.frequency
        check_range(req.frm, req.to, f, q.metric)
        try:
            _resample.plan(0, f, q.resolution, 0)
        except ValueError:
            msg = f"resolution: {q.resolution} s is not a multiple of the {f} s frequency of metric '{q.metric}'"
            for _, entry in group:
                entry.update(_error(req, msg))
            continue
        counts = np.fromiter((len(part.sids) for part, _ in group), dtype=np.int64, count=len(group))
        values = rr.values
        if not values.shape[1]:
            values = np.empty((len(group), 0))
        elif len(group) != values.shape[0]:  # combine each part's rows (NaN anywhere -> NaN)
            if (counts == counts[0]).all():
                values = values.reshape(len(group), int(counts[0]), -1).sum(axis=1)
            else:
                starts = np.zeros(len(group), dtype=np.int64)
                np.cumsum(counts[:-1], out=starts[1:])
                values = np.add.reduceat(values, starts, axis=0)
            multi = counts > 1
            if aggregation == "avg" and multi.any():
                values[multi] /= counts[multi, None]
        elif pre is not None and q.scale_by not in (0.0, 1.0):
            values = values.copy()  # a view into the joint read: scaling must not touch other queries
        skip = _leading_gap(values, req.with_padding)
        if skip:
            values = values[:, skip:]
        blocks.append(_Block(values, rr.start_bin + skip, f, q.resolution, [e for _, e in group]))
        _scale_and_describe(req, q, blocks[-1])
    return entries, blocks


def _read_by_frequency(req: QueryRequest, q: Query, members: list[tuple[Part, dict[str, Any]]],
                       store: Store) -> list[tuple[list[tuple[Part, dict[str, Any]]], ReadResult]]:
    """One read per frequency; a part whose series have different frequencies becomes an error."""
    groups: dict[int, list[tuple[Part, dict[str, Any]]]] = {}
    for part, entry in members:
        freqs = sorted({store.frequency_of(sid) for sid in part.sids})
        if len(freqs) > 1:
            entry.update(_error(req, f"metric '{q.metric}' has series of different frequencies "
                                     f"({', '.join(map(str, freqs))} s) in one selection"))
        else:
            groups.setdefault(freqs[0], []).append((part, entry))
    return [(group, store.read([sid for part, _ in group for sid in part.sids], req.frm, req.to))
            for group in groups.values()]


def _leading_gap(values: np.ndarray, padding: bool) -> int:
    """Leading bins without any value, to cut so that data starts where data is (as cc).

    With padding only an entirely empty block is cut (padding would restore the rest).
    """
    width = values.shape[1]
    if not width or not np.isnan(values[:, 0]).all():
        return 0
    if padding:
        return width if np.isnan(values[:, -1]).all() and np.isnan(values).all() else 0
    has = ~np.isnan(values).all(axis=0)
    return int(has.argmax()) if has.any() else width


def _scale_and_describe(req: QueryRequest, q: Query, b: _Block) -> None:
    """Statistics on the raw combined data (before padding and resampling), then scaling."""
    scale = q.scale_by if q.scale_by not in (0.0, 1.0) else None
    if req.with_stats and b.values.shape[1]:
        avg, mn, mx = _stats(b.values)
        if scale is not None:
            avg, mn, mx = avg * scale, mn * scale, mx * scale
        b.stats = (avg.tolist(), mn.tolist(), mx.tolist())
    if scale is not None:
        b.values *= scale


def _stats(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN-ignoring mean, min and max of each row (NaN for rows without values).

    Large blocks go in row chunks so that the second and third reduction read from the
    CPU cache instead of memory.
    """
    n = v.shape[0]
    total, mn, mx = np.empty(n), np.empty(n), np.empty(n)
    for a in range(0, n, STATS_CHUNK):
        c = v[a:a + STATS_CHUNK]
        c.sum(axis=1, out=total[a:a + STATS_CHUNK])
        c.min(axis=1, out=mn[a:a + STATS_CHUNK])
        c.max(axis=1, out=mx[a:a + STATS_CHUNK])
    avg = total / v.shape[1]
    holes = np.flatnonzero(np.isnan(total))  # rows with a NaN (or +inf and -inf): the careful way
    if len(holes):
        sub = v[holes]
        valid = ~np.isnan(sub)
        n = valid.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg[holes] = np.where(valid, sub, 0.0).sum(axis=1) / n
        mn[holes] = np.fmin.reduce(sub, axis=1)
        mx[holes] = np.fmax.reduce(sub, axis=1)
    return avg, mn, mx


def _finish(req: QueryRequest, blocks: list[_Block], minimum_points: int, method: str, numpy_data: bool) -> None:
    """Pad, resample (all blocks of equal shape together) and fill in the response entries."""
    batches: dict[tuple[int, int], list[tuple[_Block, int]]] = {}
    for b in blocks:
        f = b.frequency
        if b.values.shape[1] == 0:  # series exist but hold nothing in range
            _fill(b, b.values, req.frm, req.to, f, req.with_data, numpy_data)
            continue
        start_bin = b.start_bin
        if req.with_padding and start_bin > req.frm // f:
            pad = start_bin - req.frm // f
            b.values = np.concatenate((np.full((b.values.shape[0], pad), np.nan), b.values), axis=1)
            start_bin -= pad
        b.start_bin = start_bin
        n = b.values.shape[1]
        p = _resample.plan(n, f, b.resolution, minimum_points)
        if p is None:
            _fill(b, b.values, start_bin * f, (start_bin + n) * f, f, req.with_data, numpy_data)
        elif not req.with_data:
            _fill(b, b.values, start_bin * f, start_bin * f + p[1] * b.resolution, b.resolution, False, False)
        else:
            batches.setdefault((n, p[0]), []).append((b, p[1]))
    for (_, step), members in batches.items():  # one resampling pass over all rows of equal shape
        n_out = members[0][1]
        pieces = _resample_together([b.values for b, _ in members], step, n_out, method)
        for (b, _), values in zip(members, pieces, strict=True):
            frm = b.start_bin * b.frequency
            _fill(b, values, frm, frm + n_out * b.resolution, b.resolution, True, numpy_data)


def _resample_together(blocks: list[np.ndarray], step: int, n_out: int, method: str) -> list[np.ndarray]:
    bounds = np.cumsum([0] + [b.shape[0] for b in blocks]).tolist()
    if method == "average":
        out = _resample.average(np.concatenate(blocks) if len(blocks) > 1 else blocks[0], step, n_out)
        return [out[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]
    out_t = _resample.lttb_time_major(_resample.time_major(blocks), n_out)
    return [_resample.time_major([out_t[:, lo:hi]]) for lo, hi in zip(bounds, bounds[1:], strict=False)]


def _fill(b: _Block, values: np.ndarray, frm: int, to: int, resolution: int, with_data: bool,
          numpy_data: bool) -> None:
    if with_data:
        rows: list[Any] = list(values) if numpy_data else values.tolist()
    k = len(b.entries)
    avg, mn, mx = b.stats if b.stats is not None else ([NAN] * k, [NAN] * k, [NAN] * k)
    for i, e in enumerate(b.entries):
        if with_data:
            e["data"] = rows[i]
        e["from"] = frm
        e["to"] = to
        e["resolution"] = resolution
        e["avg"] = avg[i]
        e["min"] = mn[i]
        e["max"] = mx[i]
