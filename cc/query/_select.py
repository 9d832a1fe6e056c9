"""Which stored series make up each result of a query (scope selection and derivation)."""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass

from cc.clusters import SCOPE_RANK, Cluster, Topology
from cc.query._request import Query
from cc.shm import SeriesKey, Store

Series = list[tuple[int, SeriesKey]]
UNDERIVABLE = ("node", "accelerator")  # scopes that are not groups of hardware threads

@dataclass
class Part:
    """One result entry: the series to combine, or an error message."""

    sids: list[int]
    error: str | None = None


class _Index:
    """The series of one host and metric: scope type -> type id -> series."""

    def __init__(self, sids: list[int], keys: list[SeriesKey]):
        self.sids = sids
        self.types: dict[str, dict[str, Series]] = {}
        for item in zip(sids, keys, strict=True):
            self.types.setdefault(item[1].type, {}).setdefault(item[1].type_id, []).append(item)

    def by_id(self, scope: str) -> dict[str, list[int]]:
        """type id -> series ids of a native scope without sub type filter (cached: the hot path)."""
        cache = self.__dict__.setdefault("_by_id", {})
        got = cache.get(scope)
        if got is None:
            got = cache[scope] = {tid: _stype_filter(items, None, None)
                                  for tid, items in self.types.get(scope, {}).items()}
        return got

    def all_of(self, scope: str) -> Series:
        return [item for items in self.types.get(scope, {}).values() for item in items]


# A series id keeps its key for the life of a Store object (registry entries are never
# rewritten), so the index of a host's metric is reused across requests while the host
# still has exactly the same live series.  Bounded by the number of series it holds.
INDEX_CACHE_MAX_SERIES = 1 << 17


class _IndexCache:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], _Index] = {}
        self.series = 0


_INDEX_CACHE: weakref.WeakKeyDictionary[Store, _IndexCache] = weakref.WeakKeyDictionary()


def _cached_index(store: Store, cluster: str, host: str, metric: str, sids: list[int]) -> _Index:
    cache = _INDEX_CACHE.get(store)
    if cache is None:
        cache = _INDEX_CACHE[store] = _IndexCache()
    key = (cluster, host, metric)
    idx = cache.entries.get(key)
    if idx is not None and idx.sids == sids:
        return idx
    if cache.series + len(sids) > INDEX_CACHE_MAX_SERIES:
        cache.entries.clear()
        cache.series = 0
    idx = cache.entries[key] = _Index(sids, [SeriesKey(*map(sys.intern, store.key_of(sid))) for sid in sids])
    cache.series += len(sids)
    return idx


class Selector:
    """Per-request caches of host series, keys and topology maps."""

    def __init__(self, store: Store, cluster_name: str, cluster: Cluster | None):
        self.store = store
        self.cluster_name = cluster_name
        self.cluster = cluster
        self._host_series: dict[str, dict[str, list[int]]] = {}
        self._index: dict[tuple[str, str], _Index] = {}
        self._topo: dict[str, Topology | None] = {}
        self._maps: dict[tuple[int, str, str], tuple[dict[str, list[str]], dict[str, bool]]] = {}

    # -- lookups -----------------------------------------------------------------

    def index(self, host: str, metric: str) -> _Index:
        """Live series of ``host``/``metric`` by scope (empty: missing host or metric)."""
        got = self._index.get((host, metric))
        if got is None:
            by_metric = self._host_series.get(host)
            if by_metric is None:
                by_metric = self._host_series[host] = self.store.series_of_host(self.cluster_name, host)
            got = _cached_index(self.store, self.cluster_name, host, metric, by_metric.get(metric, []))
            self._index[(host, metric)] = got
        return got

    def topology(self, host: str) -> Topology | None:
        if host not in self._topo:
            sc = self.cluster.subcluster_for_host(host) if self.cluster is not None else None
            self._topo[host] = sc.topology if sc is not None else None
        return self._topo[host]

    def _mapping(self, topo: Topology, want: str, native: str) -> tuple[dict[str, list[str]], dict[str, bool]]:
        """For each id of scope ``want``: the ``native`` ids inside it, and whether some only overlap it."""
        key = (id(topo), want, native)
        got = self._maps.get(key)
        if got is None:
            if native == "hwthread":  # a hardware thread's id is its number, not its position
                inner = [(str(t), frozenset((t,))) for t in topo.node]
            else:
                inner = [(str(j), frozenset(g)) for j, g in enumerate(topo.groups(native))]
            contained: dict[str, list[str]] = {}
            straddles: dict[str, bool] = {}
            for i, group in enumerate(topo.groups(want)):
                outer = frozenset(group)
                contained[str(i)] = [j for j, g in inner if g and g <= outer]
                straddles[str(i)] = any(g & outer and not g <= outer for _, g in inner)
            got = self._maps[key] = (contained, straddles)
        return got

    # -- planning ----------------------------------------------------------------

    def plan(self, q: Query, aggregation: str | None) -> list[Part]:
        """The result entries of one query, in order; missing series give no entry (as cc)."""
        idx = self.index(q.host, q.metric)
        if not idx.types:
            return []
        sels: list[list[int] | str | None]
        if q.type is None or (q.type == "node" and q.subtype is None):
            sels = [_node_level(idx)]
        else:
            subs: list[str | None] = list(q.subtype_ids) if q.subtype is not None else [None]
            if q.type == "node":  # node series split by a sub type (e.g. per network device)
                sels = [_stype_filter(idx.all_of("node"), q.subtype, sub) for sub in subs]
            elif q.subtype is None and q.type in idx.types:  # native scope, the common case
                native = idx.by_id(q.type)
                sels = [native.get(tid, []) for tid in q.type_ids]
            else:
                sels = [self._typed(q, idx, tid, sub) for tid in q.type_ids for sub in subs]
            if q.aggreg:
                sels = [_union(sels)] if sels else []
        parts = []
        for sel in sels:
            if sel is None or (isinstance(sel, list) and not sel):
                continue
            if isinstance(sel, str):
                parts.append(Part([], sel))
            elif len(sel) > 1 and aggregation not in ("sum", "avg"):
                why = "aggregation is null" if aggregation is None else "it is not in the metric catalog"
                parts.append(Part([], f"metric '{q.metric}' cannot be aggregated ({why})"))
            else:
                parts.append(Part(sel))
        return parts

    def _typed(self, q: Query, idx: _Index, tid: str, sub: str | None) -> list[int] | str | None:
        want = q.type
        assert want is not None
        types = idx.types
        if want in types:
            return _stype_filter(types[want].get(tid, []), q.subtype, sub)
        if want not in SCOPE_RANK:
            return None  # an unknown scope that the host does not have: missing, as in cc
        finer = [t for t in types if t in SCOPE_RANK and t not in UNDERIVABLE and SCOPE_RANK[t] > SCOPE_RANK[want]]
        if want == "accelerator" or not finer:
            best = max(types, key=lambda t: (SCOPE_RANK.get(t, -1), t))
            return f"metric '{q.metric}' is only available at scope '{best}'"
        native = min(finer, key=lambda t: (SCOPE_RANK[t], t))
        topo = self.topology(q.host)
        if topo is None:
            return (f"cannot derive scope '{want}' of metric '{q.metric}' from '{native}': no topology known "
                    f"for host '{q.host}' of cluster '{self.cluster_name}'")
        contained, straddles = self._mapping(topo, want, native)
        if tid not in contained:
            return None  # no such id in the topology: missing
        if straddles[tid]:
            return f"metric '{q.metric}': scope '{native}' does not nest in '{want}' {tid} on host '{q.host}'"
        by_id = types[native]
        picked = [item for nid in contained[tid] for item in by_id.get(nid, ())]
        return _stype_filter(picked, q.subtype, sub)


def _node_level(idx: _Index) -> list[int]:
    """The node series, else all series of the coarsest scope the host has (never mixing scopes)."""
    coarsest = min(idx.types, key=lambda t: (SCOPE_RANK.get(t, len(SCOPE_RANK)), t))
    return _stype_filter(idx.all_of(coarsest), None, None)


def _stype_filter(items: Series, subtype: str | None, sub: str | None) -> list[int]:
    if subtype is not None:
        return [sid for sid, k in items if k.stype == subtype and k.stype_id == sub]
    plain = [sid for sid, k in items if not k.stype]
    return plain or [sid for sid, _ in items]


def _union(sels: list[list[int] | str | None]) -> list[int] | str | None:
    """Aggregate over several selectors: the first error wins, missing ones are left out."""
    out: list[int] = []
    seen: set[int] = set()
    for sel in sels:
        if isinstance(sel, str):
            return sel
        for sid in sel or ():
            if sid not in seen:
                seen.add(sid)
                out.append(sid)
    return out or None
