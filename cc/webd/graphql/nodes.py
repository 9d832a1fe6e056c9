"""Nodes: states from the ``node``/``node_state`` tables, metric data of whole nodes from the metric sources.

Like cc-backend, node queries are for administrators and support staff only;
``allocatedNodes`` (hosts with running jobs per subcluster) is open to everyone.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from cc.db import FilterError
from cc.db import _stats as statsdb
from cc.db._nodes import NODE_STATES
from cc.metricsource import MetricSourceError
from cc.query import QueryError
from cc.webd.graphql.context import GQLContext, check_page, db_id, gctx, resolver
from cc.webd.graphql.nodedata import load_nodes, store_hosts

PREFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


async def _nodes(c: GQLContext, filters: list | None, page: dict | None = None) -> list[dict[str, Any]]:
    try:
        return await c.read(statsdb.query_nodes, filters, page)
    except FilterError as e:
        raise GraphQLError(f"argument 'filter': {e}") from None


@resolver("Query", "node")
async def resolve_node(_: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    c = gctx(info)
    c.require_staff("node")
    return await c.read(statsdb.node_by_id, db_id(id, "id"))


@resolver("Query", "nodes")
async def resolve_nodes(_: Any, info: GraphQLResolveInfo, filter: list | None = None,
                        order: dict | None = None) -> dict[str, Any]:
    c = gctx(info)
    c.require_staff(info.field_name)
    items = await _nodes(c, filter)
    return {"items": items, "count": len(items)}


resolver("Query", "nodesWithMeta")(resolve_nodes)


@resolver("Node", "metaData")
def resolve_node_meta(node: dict[str, Any], _info: GraphQLResolveInfo) -> Any:
    return node.get("metaData") or {}


@resolver("Node", "healthData")
def resolve_node_health(node: dict[str, Any], _info: GraphQLResolveInfo) -> Any:
    return node.get("healthData") or {}


@resolver("Query", "nodeStates")
async def resolve_node_states(_: Any, info: GraphQLResolveInfo, filter: list | None = None) -> list[dict[str, Any]]:
    """Nodes per scheduler state, followed by nodes per health state (newest state of each node)."""
    c = gctx(info)
    c.require_staff("nodeStates")
    try:
        return (await c.read(statsdb.count_node_states, filter, "node_state")
                + await c.read(statsdb.count_node_states, filter, "health_state"))
    except FilterError as e:
        raise GraphQLError(f"argument 'filter': {e}") from None


@resolver("Query", "nodeStatesTimed")
async def resolve_node_states_timed(_: Any, info: GraphQLResolveInfo, type: str,
                                    filter: list | None = None) -> list[dict[str, Any]]:
    c = gctx(info)
    c.require_staff("nodeStatesTimed")
    column = {"node": "node_state", "health": "health_state"}.get(type)
    if column is None:
        raise GraphQLError(f"argument 'type': expected 'node' or 'health', got {type!r}")
    try:
        return await c.read(statsdb.node_state_history, filter, column)
    except FilterError as e:
        raise GraphQLError(f"argument 'filter': {e}") from None


@resolver("Query", "allocatedNodes")
async def resolve_allocated(_: Any, info: GraphQLResolveInfo, cluster: str) -> list[dict[str, Any]]:
    c = gctx(info)
    found = await c.read(statsdb.allocated_nodes, cluster)
    return [{"name": sub, "count": len(hosts)} for sub, hosts in sorted(found.items())]


# -- metric data of nodes -----------------------------------------------------------------------

def _metrics(c: GQLContext, cluster: str, metrics: list[str] | None) -> list[str]:
    known = list(c.cluster(cluster).metrics)
    return known if metrics is None else [m for m in metrics if m in known]


def _range(frm: int, to: int) -> None:
    if frm > to:
        raise GraphQLError(f"arguments 'from'/'to': from ({frm}) is after to ({to})")


async def _states(c: GQLContext, cluster: str) -> dict[str, dict[str, Any]]:
    return {n["hostname"]: n for n in await _nodes(c, [{"cluster": {"eq": cluster}}])}


async def _load(c: GQLContext, cluster: str, hosts: list[str], metrics: list[str], scopes: list[str], frm: int,
                to: int, resolution: int) -> dict[str, Any]:
    try:
        return await load_nodes(c.web, c.cluster(cluster), hosts, metrics, scopes, frm, to, resolution,
                                c.minimum_points)
    except (QueryError, MetricSourceError) as e:
        raise GraphQLError(f"loading node data failed: {e}") from None


async def _store_hosts(c: GQLContext, cluster: str) -> list[str]:
    try:
        return await store_hosts(c.web, c.cluster(cluster))
    except MetricSourceError as e:
        raise GraphQLError(f"listing the nodes of cluster {cluster!r} failed: {e}") from None


def _node_metrics(c: GQLContext, cluster: str, host: str, data: dict[str, Any], states: dict[str, Any],
                  node_scope_only: bool = False) -> dict[str, Any]:
    sc = c.cluster(cluster).subcluster_for_host(host)
    state = states.get(host) or {}
    return {"host": host, "nodeState": state.get("schedulerState") or "", "metricHealth": state.get("healthState") or "",
            "subCluster": sc.name if sc is not None else "",
            "metrics": [{"name": m, "scope": "node" if node_scope_only else scope, "metric": jm}
                        for m, scoped in data.items() for scope, jm in scoped.items()]}


@resolver("Query", "nodeMetrics")
async def resolve_node_metrics(_: Any, info: GraphQLResolveInfo, cluster: str, to: int, nodes: list[str] | None = None,
                               scopes: list[str] | None = None, metrics: list[str] | None = None,
                               resolution: int | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Data of the given hosts (all hosts the store has, without ``nodes``).

    Without ``scopes``: node scope, as cc-backend.  With ``scopes`` (our extension, for the
    node view's scope selector) each metric comes at every listed scope it can be served at,
    labelled with that scope.  ``resolution`` (extension) downsamples like ``jobMetrics``.
    """
    c = gctx(info)
    c.require_staff("nodeMetrics")
    frm = kw["from"]
    _range(frm, to)
    if resolution is not None and resolution < 0:
        raise GraphQLError("argument 'resolution': must be >= 0 (seconds; 0 = the metric's timestep)")
    names = _metrics(c, cluster, metrics)
    hosts = nodes if nodes is not None else await _store_hosts(c, cluster)
    data = await _load(c, cluster, hosts, names, scopes or ["node"], frm, to, resolution or 0)
    states = await _states(c, cluster)
    return [_node_metrics(c, cluster, h, data[h], states, node_scope_only=not scopes) for h in hosts if data.get(h)]


async def _candidate_hosts(c: GQLContext, cluster: str, sub: str) -> list[str]:
    """Hosts of a cluster (or one subcluster): from the node lists of cluster.json and the metric store."""
    cl = c.cluster(cluster)
    hosts = {h for sc in cl.subclusters if sub in ("", sc.name) for h in sc.nodes.hosts()}
    for h in await _store_hosts(c, cluster):
        sc = cl.subcluster_for_host(h)
        if sub == "" or (sc is not None and sc.name == sub):
            hosts.add(h)
    return sorted(hosts)


def _slice(hosts: list[str], limit: int | None, offset: int) -> tuple[list[str], bool]:
    if limit is None:
        return hosts, False
    return hosts[offset:offset + limit], offset + limit < len(hosts)


@resolver("Query", "nodeMetricsList")
async def resolve_node_metrics_list(_: Any, info: GraphQLResolveInfo, cluster: str, subCluster: str,  # noqa: N803
                                    stateFilter: str, nodeFilter: str, to: int,  # noqa: N803
                                    scopes: list[str] | None = None, metrics: list[str] | None = None,
                                    page: dict | None = None, resolution: int | None = None,
                                    **kw: Any) -> dict[str, Any]:
    """A page of nodes (by scheduler state and name) with their data, as cc-backend's node list view.

    ``stateFilter``: a scheduler state, ``all``, or ``notindb`` (nodes known from
    cluster.json or the metric store but absent from the node table).  Without any node
    in the table, ``all`` lists the nodes of cluster.json and the metric store.
    """
    c = gctx(info)
    c.require_staff("nodeMetricsList")
    frm = kw["from"]
    _range(frm, to)
    c.cluster(cluster)
    if subCluster and c.cluster(cluster).subcluster(subCluster) is None:
        raise GraphQLError(f"argument 'subCluster': cluster {cluster!r} has no subcluster {subCluster!r}")
    if stateFilter not in (*NODE_STATES, "all", "notindb"):
        raise GraphQLError(f"argument 'stateFilter': expected one of {', '.join(NODE_STATES)}, all, notindb")
    limit, offset = check_page(page)
    filters: list[dict[str, Any]] = [{"cluster": {"eq": cluster}}]
    if subCluster:
        filters.append({"subCluster": {"eq": subCluster}})
    if nodeFilter and stateFilter != "notindb":
        filters.append({"hostname": {"contains": nodeFilter}})
    if stateFilter not in ("all", "notindb"):
        filters.append({"schedulerState": stateFilter})
    states: dict[str, dict[str, Any]] = {}
    if stateFilter == "notindb":
        in_db = {n["hostname"] for n in await _nodes(c, filters)}
        missing = [h for h in statsdb.hosts_matching(await _candidate_hosts(c, cluster, subCluster), nodeFilter)
                   if h not in in_db]
        total = len(missing)
        hosts, has_next = _slice(missing, limit, offset)
    else:
        rows = await _nodes(c, filters, page)
        states = {n["hostname"]: n for n in rows}
        hosts = [n["hostname"] for n in rows]
        total = await c.read(statsdb.count_nodes, filters)
        has_next = limit is not None and offset + limit < total
        if stateFilter == "all" and total == 0:
            candidates = statsdb.hosts_matching(await _candidate_hosts(c, cluster, subCluster), nodeFilter)
            total = len(candidates)
            hosts, has_next = _slice(candidates, limit, offset)
    res = c.resolution_default if resolution is None else resolution
    data = await _load(c, cluster, hosts, _metrics(c, cluster, metrics), scopes or ["node"], frm, to, res)
    items = [_node_metrics(c, cluster, h, data.get(h) or {}, states) for h in hosts]
    return {"items": items, "offset": offset, "limit": limit if limit is not None else len(items),
            "count": len(items), "totalNodes": total, "hasNextPage": has_next}


@resolver("Query", "clusterMetrics")
async def resolve_cluster_metrics(_: Any, info: GraphQLResolveInfo, cluster: str, to: int,
                                  metrics: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    """Node-scope data summed over all nodes of a cluster, in units of prefix T, rounded to 2 decimals."""
    c = gctx(info)
    c.require_staff("clusterMetrics")
    frm = kw["from"]
    _range(frm, to)
    names = _metrics(c, cluster, metrics)
    hosts = await _store_hosts(c, cluster)
    data = await _load(c, cluster, hosts, names, ["node"], frm, to, 0)
    sums: dict[str, list[float]] = {}
    info_of: dict[str, dict[str, Any]] = {}
    for host in hosts:
        for m, scoped in (data.get(host) or {}).items():
            jm = scoped.get("node")
            if jm is None:
                continue
            info_of.setdefault(m, jm)
            for s in jm["series"]:
                acc = sums.get(m)
                if acc is None:
                    if s["data"]:
                        sums[m] = [0.0 if v != v else float(v) for v in s["data"]]
                elif len(acc) == len(s["data"]):
                    for i, v in enumerate(s["data"]):
                        if v == v:
                            acc[i] += v
    out = []
    for m, acc in sums.items():
        unit = info_of[m]["unit"]
        factor = PREFIX.get(unit.get("prefix") or "", 1.0) / PREFIX["T"]
        out.append({"name": m, "unit": {"base": unit.get("base") or "", "prefix": "T"},
                    "timestep": info_of[m]["timestep"], "data": [round(v * factor, 2) for v in acc]})
    return {"nodeCount": len(hosts), "metrics": out}
