"""Per-request state of a GraphQL operation and small helpers every resolver module uses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionSetNode,
)

from cc.clusters import Cluster
from cc.db import INT64_MAX, FilterError, Viewer
from cc.db._filters import Where, apply_filter, order_clause, page_clause

T = TypeVar("T")
MAX_JOBS_FOR_ANALYSIS = 500  # cc-backend's limit for footprints, roofline and metric stats over many jobs

# resolvers by (type name, field name); filled by the resolver modules, bound by cc.webd.graphql.schema
RESOLVERS: dict[tuple[str, str], Callable[..., Any]] = {}


def resolver(type_name: str, field_name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        RESOLVERS[(type_name, field_name)] = fn
        return fn

    return deco


@dataclass
class GQLContext:
    """What resolvers see as ``info.context``: the web process and the caller."""

    web: Any  # cc.webd.context.WebContext
    viewer: Viewer
    now: float = field(default_factory=time.time)
    tags_loaded: set[int] = field(default_factory=set)
    users: dict[str, dict[str, str] | None] = field(default_factory=dict)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.web.db.read(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.web.db.write(fn, *args)

    @property
    def privileged(self) -> bool:
        """Support, admin and api-only callers: see restricted metrics and node data."""
        return self.viewer.sees_all

    def cluster(self, name: str, arg: str = "cluster") -> Cluster:
        c = self.web.clusters.get(name)
        if c is None:
            raise GraphQLError(f"argument '{arg}': no cluster {name!r} (known: {', '.join(self.web.clusters)})")
        return c

    def restricted(self, cluster: str, subcluster: str | None = None) -> set[str]:
        """Metrics a plain user may not see on this cluster/subcluster (``restrict: true``)."""
        if self.privileged:
            return set()
        c = self.web.clusters.get(cluster)
        if c is None:
            return set()
        subs = [s for s in c.subclusters if subcluster in (None, "", s.name)] or c.subclusters
        out: set[str] = set()
        for m in c.metrics:
            if all(s.metrics.get(m) is None or s.metrics[m].raw.get("restrict") for s in subs):
                out.add(m)
        return out

    def require_staff(self, what: str) -> None:
        if not self.viewer.has("admin", "support"):
            raise GraphQLError(f"{what}: you need to be administrator or support staff for this query")

    @property
    def resolution_default(self) -> int:
        """cc-backend: the coarsest configured resampling resolution, else the metric's timestep (0)."""
        res = (self.web.cfg.main.get("resampling") or {}).get("resolutions") or []
        return max(int(r) for r in res) if res else 0

    @property
    def minimum_points(self) -> int:
        return int((self.web.cfg.main.get("resampling") or {}).get("minimum-points", 1000) or 1000)

    @property
    def short_threshold(self) -> int:
        return int(self.web.cfg.main.get("short-running-jobs-duration", 300) or 300)


def gctx(info: GraphQLResolveInfo) -> GQLContext:
    return info.context


# -- arguments ---------------------------------------------------------------------------------

def check_filters(filters: list[dict[str, Any]] | None, arg: str = "filter") -> list[dict[str, Any]]:
    """Validate each JobFilter up front so errors name the argument and the list index."""
    for i, f in enumerate(filters or []):
        try:
            apply_filter(f, Where())
        except FilterError as e:
            raise GraphQLError(f"argument '{arg}'[{i}].{e}") from None
    return list(filters or [])


def check_order(order: dict[str, Any] | None) -> str:
    try:
        return order_clause(order)
    except FilterError as e:
        raise GraphQLError(f"argument 'order': {str(e).removeprefix('order.')}") from None


def check_page(page: dict[str, Any] | None, arg: str = "page") -> tuple[int | None, int]:
    """(limit or None for all, offset)."""
    if page is None:
        return None, 0
    try:
        clause, params = page_clause(page)
    except FilterError as e:
        raise GraphQLError(f"argument '{arg}': {str(e).removeprefix('page: ')}") from None
    return (params[0], params[1]) if clause else (None, 0)


def db_id(raw: Any, arg: str) -> int:
    """A GraphQL ``ID`` argument as a database id (digits, within SQLite's 64-bit integers)."""
    s = str(raw).strip()
    if not s.isdigit() or len(s) > 19 or int(s) > INT64_MAX:
        raise GraphQLError(f"argument '{arg}': {str(raw)[:40]!r} is not a database id (0..{INT64_MAX})")
    return int(s)


def filter_error(e: FilterError, arg: str) -> GraphQLError:
    return GraphQLError(f"argument '{arg}': {e}")


# -- selections --------------------------------------------------------------------------------

def _subfields(info: GraphQLResolveInfo, selection_sets: Iterable[SelectionSetNode | None]) -> dict[str, list]:
    """Field name -> selection sets below it, through fragments (aliases merged)."""
    out: dict[str, list] = {}
    stack = [s for s in selection_sets if s is not None]
    while stack:
        sset = stack.pop()
        for sel in sset.selections:
            if isinstance(sel, FieldNode):
                out.setdefault(sel.name.value, []).append(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                stack.append(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                frag = info.fragments.get(sel.name.value)
                if frag is not None:
                    stack.append(frag.selection_set)
    return out


def selected(info: GraphQLResolveInfo, *path: str) -> set[str]:
    """Names of the fields selected below this field (following ``path`` first)."""
    sets: list = [f.selection_set for f in info.field_nodes]
    for name in path:
        sets = _subfields(info, sets).get(name, [])
    return set(_subfields(info, sets))
