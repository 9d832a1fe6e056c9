"""Parsing and validating the JSON body of ``/api/query`` (cc-metric-store's ``APIQueryRequest``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_POINTS_PER_SERIES = 5_000_000
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z, as the job database's times (cc.db)
MAX_INT = 2**63 - 1  # Go's int64: what cc-metric-store decodes


class QueryError(Exception):
    """The request is malformed or too large; the message names the offending field."""


@dataclass
class Query:
    """One entry of ``queries`` (cc's ``APIQuery``)."""

    metric: str
    host: str
    type: str | None = None
    type_ids: list[str] = field(default_factory=list)
    subtype: str | None = None
    subtype_ids: list[str] = field(default_factory=list)
    aggreg: bool = False
    resolution: int = 0
    scale_by: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The query as cc-metric-store echoes it (``omitempty`` fields left out when empty)."""
        out: dict[str, Any] = {}
        if self.type is not None:
            out["type"] = self.type
        if self.subtype is not None:
            out["subtype"] = self.subtype
        out["metric"] = self.metric
        out["host"] = self.host
        out["resolution"] = self.resolution
        if self.type_ids:
            out["type-ids"] = list(self.type_ids)
        if self.subtype_ids:
            out["subtype-ids"] = list(self.subtype_ids)
        if self.scale_by:
            out["scale-by"] = self.scale_by
        out["aggreg"] = self.aggreg
        return out


@dataclass
class QueryRequest:
    """A validated ``APIQueryRequest``; ``frm``/``to`` are unix seconds."""

    cluster: str
    frm: int
    to: int
    queries: list[Query] = field(default_factory=list)
    for_all_nodes: list[str] | None = None
    with_stats: bool = True
    with_data: bool = True
    with_padding: bool = True

    def to_json(self) -> dict[str, Any]:
        """The request as :func:`parse_request` (and cc-metric-store) reads it, for an external store."""
        out: dict[str, Any] = {"cluster": self.cluster, "from": self.frm, "to": self.to,
                               "queries": [q.to_json() for q in self.queries],
                               "with-stats": self.with_stats, "with-data": self.with_data,
                               "with-padding": self.with_padding}
        if self.for_all_nodes is not None:
            out["for-all-nodes"] = list(self.for_all_nodes)
        return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bool(doc: dict[str, Any], key: str, default: bool, where: str) -> bool:
    v = doc.get(key)
    if v is None:  # absent or null: Go leaves the default in place
        return default
    if not isinstance(v, bool):
        raise QueryError(f"{where}{key}: must be a boolean, got {v!r}")
    return v


def _opt_str(doc: dict[str, Any], key: str, where: str) -> str | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise QueryError(f"{where}{key}: must be a non-empty string, got {v!r}")
    return v


def _req_str(doc: dict[str, Any], key: str, where: str) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not v:
        what = "is required" if v is None else f"must be a non-empty string, got {v!r}"
        raise QueryError(f"{where}{key}: {what}")
    return v


def _ids(doc: dict[str, Any], key: str, where: str) -> list[str]:
    v = doc.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) or (_is_int(x) and 0 <= x <= MAX_INT) for x in v):
        raise QueryError(f"{where}{key}: must be a list of strings (or integers), got {v!r}")
    return [str(x) for x in v]


def _parse_query(doc: Any, where: str) -> Query:
    if not isinstance(doc, dict):
        raise QueryError(f"{where[:-1]}: must be an object, got {type(doc).__name__}")
    resolution = doc.get("resolution")
    if resolution is None:
        resolution = 0
    elif not _is_int(resolution) or not 0 <= resolution <= MAX_INT:
        raise QueryError(f"{where}resolution: must be a non-negative integer (seconds), got {resolution!r}")
    scale = doc.get("scale-by")
    if scale is None:
        scale = 0.0
    elif isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise QueryError(f"{where}scale-by: must be a number, got {scale!r}")
    return Query(
        metric=_req_str(doc, "metric", where),
        host=_req_str(doc, "host", where),
        type=_opt_str(doc, "type", where),
        type_ids=_ids(doc, "type-ids", where),
        subtype=_opt_str(doc, "subtype", where),
        subtype_ids=_ids(doc, "subtype-ids", where),
        aggreg=_bool(doc, "aggreg", False, where),
        resolution=int(resolution),
        scale_by=float(scale),
    )


def parse_request(doc: Any) -> QueryRequest:
    """Validate a decoded ``/api/query`` body; raises :class:`QueryError` naming the field."""
    if not isinstance(doc, dict):
        raise QueryError(f"request body: must be a JSON object, got {type(doc).__name__}")
    cluster = _req_str(doc, "cluster", "")
    bounds = {}
    for key in ("from", "to"):
        v = doc.get(key)
        if v is None:
            raise QueryError(f"{key}: is required (unix seconds)")
        if not _is_int(v):
            raise QueryError(f"{key}: must be an integer (unix seconds), got {v!r}")
        if not 0 <= v <= MAX_TIME:
            raise QueryError(f"{key}: {v} is out of range (0..{MAX_TIME} unix seconds)")
        bounds[key] = v
    if bounds["from"] > bounds["to"]:
        raise QueryError(f"from: {bounds['from']} is after to ({bounds['to']})")
    fan = doc.get("for-all-nodes")
    if fan is not None and (not isinstance(fan, list) or not all(isinstance(m, str) and m for m in fan)):
        raise QueryError(f"for-all-nodes: must be a list of metric names, got {fan!r}")
    raw_queries = doc.get("queries")
    if raw_queries is None:
        raw_queries = []
    if not isinstance(raw_queries, list):
        raise QueryError(f"queries: must be a list, got {type(raw_queries).__name__}")
    queries = [_parse_query(q, f"queries[{i}].") for i, q in enumerate(raw_queries)]
    return QueryRequest(
        cluster=cluster,
        frm=bounds["from"],
        to=bounds["to"],
        queries=queries,
        for_all_nodes=list(fan) if fan is not None else None,
        with_stats=_bool(doc, "with-stats", True, ""),
        with_data=_bool(doc, "with-data", True, ""),
        with_padding=_bool(doc, "with-padding", True, ""),
    )


def check_range(frm: int, to: int, frequency: int, metric: str) -> None:
    """Refuse ranges that would produce more than MAX_POINTS_PER_SERIES points per series."""
    if frequency > 0 and (to - frm) / frequency > MAX_POINTS_PER_SERIES:
        raise QueryError(
            f"from/to: {to - frm} s at the {frequency} s frequency of metric '{metric}' is "
            f"{(to - frm) // frequency} points per series; at most {MAX_POINTS_PER_SERIES} allowed"
        )
