"""Clusters, subclusters and metric configuration (from ``cluster.json``), and ``globalMetrics``.

Metrics marked ``restrict: true`` are left out for callers without the support or
admin role, as cc-backend does for its global metric list of plain users.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from cc.clusters import Cluster, ClusterMetric, SubCluster
from cc.db import _stats as statsdb
from cc.webd.graphql.context import GQLContext, gctx, resolver


@resolver("Query", "clusters")
def resolve_clusters(_: Any, info: GraphQLResolveInfo) -> list[Cluster]:
    return list(gctx(info).web.clusters.values())


@resolver("Cluster", "partitions")
async def resolve_partitions(cluster: Cluster, info: GraphQLResolveInfo) -> list[str]:
    return await gctx(info).read(statsdb.partitions, cluster.name)


@resolver("Cluster", "subClusters")
def resolve_subclusters(cluster: Cluster, info: GraphQLResolveInfo) -> list[tuple[Cluster, SubCluster]]:
    return [(cluster, sc) for sc in cluster.subclusters]


def _sub_raw(key: str, default: Any = None):
    def get(src: tuple[Cluster, SubCluster], _info: GraphQLResolveInfo) -> Any:
        value = src[1].raw.get(key)
        return default if value is None else value

    return get


for _key, _default in (("processorType", ""), ("socketsPerNode", 0), ("coresPerSocket", 0), ("threadsPerCore", 0)):
    resolver("SubCluster", _key)(_sub_raw(_key, _default))


def _metric_value(key: str):
    def get(src: tuple[Cluster, SubCluster], _info: GraphQLResolveInfo) -> dict[str, Any]:
        v = src[1].raw.get(key) or {}
        return {"name": v.get("name"), "unit": _unit(v.get("unit")), "value": float(v.get("value") or 0)}

    return get


for _key in ("flopRateScalar", "flopRateSimd", "memoryBandwidth"):
    resolver("SubCluster", _key)(_metric_value(_key))


def _unit(doc: Any) -> dict[str, Any]:
    doc = doc if isinstance(doc, dict) else {}
    return {"base": doc.get("base") or "", "prefix": doc.get("prefix")}


@resolver("SubCluster", "name")
def resolve_sc_name(src: tuple[Cluster, SubCluster], _info: GraphQLResolveInfo) -> str:
    return src[1].name


@resolver("SubCluster", "nodes")
def resolve_sc_nodes(src: tuple[Cluster, SubCluster], _info: GraphQLResolveInfo) -> str:
    return src[1].nodes.expr


@resolver("SubCluster", "numberOfNodes")
def resolve_sc_count(src: tuple[Cluster, SubCluster], _info: GraphQLResolveInfo) -> int:
    return len(src[1].nodes.hosts())


@resolver("SubCluster", "topology")
def resolve_topology(src: tuple[Cluster, SubCluster], _info: GraphQLResolveInfo) -> dict[str, Any]:
    topo = src[1].raw.get("topology") or {}
    accs = [{"id": str(a.get("id", "")), "type": a.get("type") or "", "model": a.get("model") or ""}
            for a in topo.get("accelerators") or []]
    return {"node": topo.get("node"), "socket": topo.get("socket"), "memoryDomain": topo.get("memoryDomain"),
            "die": topo.get("die"), "core": topo.get("core"), "accelerators": accs or None}


def _visible_metrics(c: GQLContext, cluster: Cluster, sc: SubCluster) -> list[ClusterMetric]:
    hidden = c.restricted(cluster.name, sc.name)
    return [m for m in sc.metrics.values() if m.name not in hidden]


@resolver("SubCluster", "metricConfig")
def resolve_sc_metrics(src: tuple[Cluster, SubCluster], info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    cluster, sc = src
    return [metric_config(m, cluster.metrics[m.name].raw) for m in _visible_metrics(gctx(info), cluster, sc)]


@resolver("SubCluster", "footprint")
def resolve_sc_footprint(src: tuple[Cluster, SubCluster], info: GraphQLResolveInfo) -> list[str]:
    return [m.name for m in _visible_metrics(gctx(info), *src) if m.raw.get("footprint")]


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def metric_config(m: ClusterMetric, cluster_raw: dict[str, Any]) -> dict[str, Any]:
    """A MetricConfig: the subcluster's effective values, plus the cluster-level override list."""
    r = m.raw
    overrides = [{"name": o.get("name", ""), "peak": _float(o.get("peak")), "normal": _float(o.get("normal")),
                  "caution": _float(o.get("caution")), "alert": _float(o.get("alert")), "remove": o.get("remove")}
                 for o in cluster_raw.get("subClusters") or []]
    return {"name": m.name, "unit": _unit(m.unit), "scope": m.scope, "aggregation": m.aggregation or "",
            "timestep": m.timestep, "peak": float(r.get("peak") or 0), "normal": _float(r.get("normal")),
            "caution": float(r.get("caution") or 0), "alert": float(r.get("alert") or 0),
            "lowerIsBetter": r.get("lowerIsBetter"), "subClusters": overrides}


@resolver("Query", "globalMetrics")
def resolve_global_metrics(_: Any, info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    """Each metric once, with the subclusters of each cluster that have it (cc-backend's GlobalMetricList)."""
    c = gctx(info)
    items: dict[str, dict[str, Any]] = {}
    for cluster in c.web.clusters.values():
        for name, m in cluster.metrics.items():
            subs = []
            for sc in cluster.subclusters:
                eff = sc.metrics.get(name)
                if eff is None or (eff.raw.get("restrict") and not c.privileged):
                    continue
                subs.append(sc.name)
                if eff.raw.get("footprint") and name in items:
                    items[name]["footprint"] = eff.raw["footprint"]
            if not subs:
                continue
            item = items.setdefault(name, {"name": name, "unit": _unit(m.unit), "scope": m.scope,
                                           "footprint": m.raw.get("footprint") or None, "availability": []})
            if not item["footprint"]:
                item["footprint"] = next((sc.metrics[name].raw.get("footprint") for sc in cluster.subclusters
                                          if name in sc.metrics and sc.metrics[name].raw.get("footprint")), None)
            item["availability"].append({"cluster": cluster.name, "subClusters": subs})
    return list(items.values())
