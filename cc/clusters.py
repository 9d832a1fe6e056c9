"""Cluster descriptions (``cluster.json``): metric configs, subclusters, topology.

cc-backend reads one ``<archive>/<cluster>/cluster.json`` per cluster; so do we.
This module turns those files into small objects that the metric store (timestep,
aggregation), the query engine (topology for scope aggregation) and the job API
(subcluster assignment from node-list expressions) all share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cc.config import Config, ConfigError, MetricSpec

SCOPES = ("node", "socket", "memoryDomain", "die", "llc", "core", "hwthread", "accelerator")
# Coarse to fine; used to decide whether one scope can be derived from another.
SCOPE_RANK = {"node": 0, "socket": 1, "memoryDomain": 2, "die": 2, "llc": 3, "core": 4, "hwthread": 5,
              "accelerator": 5}


MAX_NODES = 1_000_000  # per node-list expression


class NodeList:
    """A node-list expression such as ``f[0101-0188],cn-00[13-18,22-24],login`` or ``*``.

    Ranges inside brackets are zero-padded to the width of their bounds, as in
    cc-backend; a single number (``[07]``) is accepted too.
    """

    _TERM_RE = re.compile(r"([A-Za-z0-9-]*)(?:\[([^\]]*)\])?")

    def __init__(self, expr: str):
        self.expr = expr.strip()
        self.any = self.expr in ("*", "")
        self.terms: list[tuple[str, list[tuple[int, int, int]] | None, str]] = []
        if self.any:
            return
        for raw in _split_top_level(self.expr):
            self.terms.append(self._parse_term(raw))
        size = sum(1 if r is None else sum(hi - lo + 1 for lo, hi, _ in r) for _, r, _ in self.terms)
        if size > MAX_NODES:  # hosts() expands the list (web UI, simulator)
            raise ConfigError(f"node list: {self.expr[:80]!r} names {size} nodes, more than {MAX_NODES}")

    @staticmethod
    def _parse_term(raw: str) -> tuple[str, list[tuple[int, int, int]] | None, str]:
        m = re.fullmatch(r"([A-Za-z0-9._-]*)(?:\[([0-9,\- ]+)\]([A-Za-z0-9._-]*))?", raw.strip())
        if not m:
            raise ConfigError(f"node list: cannot parse term {raw!r}")
        prefix, ranges_s, suffix = m.group(1), m.group(2), m.group(3) or ""
        if ranges_s is None:
            return prefix, None, ""
        ranges = []
        for part in ranges_s.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            hi = hi if sep else lo
            if not lo.isdigit() or not hi.isdigit() or len(lo) != len(hi):
                raise ConfigError(f"node list: range {part!r} in {raw!r} must be NN-MM with equal widths")
            if int(lo) > int(hi):
                raise ConfigError(f"node list: range {part!r} in {raw!r} is reversed")
            ranges.append((int(lo), int(hi), len(lo)))
        return prefix, ranges, suffix

    def contains(self, host: str) -> bool:
        if self.any:
            return True
        for prefix, ranges, suffix in self.terms:
            if ranges is None:
                if host == prefix:
                    return True
                continue
            if not host.startswith(prefix) or not host.endswith(suffix):
                continue
            rest = host[len(prefix): len(host) - len(suffix) if suffix else None]
            for lo, hi, width in ranges:
                if len(rest) == width and rest.isdigit() and lo <= int(rest) <= hi:
                    return True
        return False

    def hosts(self) -> list[str]:
        """Expand to the explicit host names (empty for ``*``)."""
        out: list[str] = []
        for prefix, ranges, suffix in self.terms:
            if ranges is None:
                out.append(prefix)
                continue
            for lo, hi, width in ranges:
                out.extend(f"{prefix}{i:0{width}d}{suffix}" for i in range(lo, hi + 1))
        return out


def _split_top_level(expr: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expr):
        if ch == "[":
            if depth:
                raise ConfigError(f"node list: nested '[' in {expr!r}")
            depth = 1
        elif ch == "]":
            if not depth:
                raise ConfigError(f"node list: unmatched ']' in {expr!r}")
            depth = 0
        elif ch == "," and not depth:
            parts.append(expr[start:i])
            start = i + 1
    if depth:
        raise ConfigError(f"node list: unclosed '[' in {expr!r}")
    parts.append(expr[start:])
    return [p for p in parts if p.strip()]


@dataclass
class Topology:
    """Hardware threads grouped by scope, as listed in ``cluster.json``."""

    node: list[int]
    socket: list[list[int]] = field(default_factory=list)
    memoryDomain: list[list[int]] = field(default_factory=list)  # noqa: N815 (cluster.json name)
    die: list[list[int]] = field(default_factory=list)
    core: list[list[int]] = field(default_factory=list)
    accelerators: list[dict[str, Any]] = field(default_factory=list)

    def groups(self, scope: str) -> list[list[int]]:
        """Hardware-thread lists for each id of ``scope`` (index = scope id)."""
        if scope == "node":
            return [self.node]
        if scope == "hwthread":
            return [[t] for t in self.node]
        return list(getattr(self, scope, None) or [])

    def accelerator_ids(self) -> list[str]:
        return [str(a.get("id")) for a in self.accelerators]


@dataclass
class ClusterMetric:
    """One entry of ``metricConfig`` with subcluster overrides already applied."""

    name: str
    scope: str
    timestep: int
    aggregation: str | None
    unit: dict[str, Any]
    raw: dict[str, Any]


def footprint_key(m: ClusterMetric) -> str | None:
    """The ``job.footprint`` key of a metric marked ``footprint`` (``flops_any_avg``); None if it is not."""
    stat = m.raw.get("footprint")
    return f"{m.name}_{stat}" if stat in ("avg", "min", "max") else None


@dataclass
class SubCluster:
    name: str
    nodes: NodeList
    topology: Topology
    raw: dict[str, Any]
    metrics: dict[str, ClusterMetric] = field(default_factory=dict)


@dataclass
class Cluster:
    name: str
    raw: dict[str, Any]
    metrics: dict[str, ClusterMetric]
    subclusters: list[SubCluster]
    path: Path | None = None

    def subcluster_for_host(self, host: str) -> SubCluster | None:
        """The subcluster whose node list holds ``host`` (cc-backend's rule: explicit lists first, then ``*``)."""
        for sc in self.subclusters:
            if not sc.nodes.any and sc.nodes.contains(host):
                return sc
        for sc in self.subclusters:
            if sc.nodes.any:
                return sc
        return None

    def footprint_keys(self) -> set[str]:
        """``<metric>_<avg|min|max>`` of every metric some subcluster marks ``footprint`` (keys of job.footprint)."""
        return {k for sc in self.subclusters for m in sc.metrics.values() if (k := footprint_key(m))}

    def subcluster(self, name: str) -> SubCluster | None:
        for sc in self.subclusters:
            if sc.name == name:
                return sc
        return None


def parse_cluster(doc: dict[str, Any], source: str) -> Cluster:
    """Build a :class:`Cluster` from a parsed ``cluster.json``; errors name the file and field."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: top level must be an object")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: 'name' is required")
    metrics: dict[str, ClusterMetric] = {}
    mcs = doc.get("metricConfig")
    if not isinstance(mcs, list) or not mcs:
        raise ConfigError(f"{source}: 'metricConfig' must be a non-empty list")
    for i, mc in enumerate(mcs):
        where = f"{source}: metricConfig[{i}]"
        if not isinstance(mc, dict) or not isinstance(mc.get("name"), str):
            raise ConfigError(f"{where}: 'name' is required")
        scope = mc.get("scope", "node")
        if scope not in SCOPES:
            raise ConfigError(f"{where} ({mc['name']}): scope {scope!r} is not one of {', '.join(SCOPES)}")
        ts = mc.get("timestep")
        if isinstance(ts, bool) or not isinstance(ts, int) or ts <= 0:
            raise ConfigError(f"{where} ({mc['name']}): 'timestep' must be a positive integer, got {ts!r}")
        agg = mc.get("aggregation")
        if agg not in (None, "sum", "avg"):
            raise ConfigError(f"{where} ({mc['name']}): 'aggregation' must be 'sum' or 'avg', got {agg!r}")
        if mc.get("unit") is not None and not isinstance(mc["unit"], dict):
            raise ConfigError(f"{where} ({mc['name']}).unit: must be an object like {{\"base\": \"B/s\"}}")
        overrides = mc.get("subClusters")
        if overrides is not None and (not isinstance(overrides, list) or not all(
                isinstance(o, dict) and isinstance(o.get("name"), str) for o in overrides)):
            raise ConfigError(f"{where} ({mc['name']}).subClusters: must be a list of objects with a 'name'")
        metrics[mc["name"]] = ClusterMetric(mc["name"], scope, ts, agg, mc.get("unit") or {}, mc)
    subclusters: list[SubCluster] = []
    scs = doc.get("subClusters")
    if not isinstance(scs, list) or not scs:
        raise ConfigError(f"{source}: 'subClusters' must be a non-empty list")
    for i, sc in enumerate(scs):
        where = f"{source}: subClusters[{i}]"
        if not isinstance(sc, dict) or not isinstance(sc.get("name"), str):
            raise ConfigError(f"{where}: 'name' is required")
        topo = sc.get("topology")
        if not isinstance(topo, dict) or not isinstance(topo.get("node"), list):
            raise ConfigError(f"{where} ({sc['name']}): 'topology.node' is required")
        topology = _topology(topo, f"{where} ({sc['name']}).topology")
        if "nodes" in sc and not isinstance(sc["nodes"], str):
            raise ConfigError(f"{where} ({sc['name']}).nodes: must be a node-list string, got {sc['nodes']!r:.60}")
        try:
            nodes = NodeList(str(sc.get("nodes", "*")))
        except ConfigError as e:
            raise ConfigError(f"{where} ({sc['name']}).nodes: {e}") from None
        subclusters.append(SubCluster(sc["name"], nodes, topology, sc))
    for sub in subclusters:
        for m in metrics.values():
            override = next((o for o in m.raw.get("subClusters") or [] if o.get("name") == sub.name), None)
            if override and override.get("remove"):
                continue
            raw = dict(m.raw)
            raw.pop("subClusters", None)
            if override:
                for key in ("peak", "normal", "caution", "alert", "footprint", "energy", "lowerIsBetter",
                            "restrict"):
                    if key in override:
                        raw[key] = override[key]
            sub.metrics[m.name] = ClusterMetric(m.name, m.scope, m.timestep, m.aggregation, m.unit, raw)
    return Cluster(name, doc, metrics, subclusters)


def _int_list(x: Any) -> bool:
    return isinstance(x, list) and all(type(v) is int and v >= 0 for v in x)


def _topology(topo: dict[str, Any], where: str) -> Topology:
    """The topology of a subcluster; hardware-thread ids are non-negative integers everywhere."""
    if not _int_list(topo["node"]):
        raise ConfigError(f"{where}.node: must be a list of hardware-thread ids (non-negative integers)")
    groups = {}
    for name in ("socket", "memoryDomain", "die", "core"):
        v = topo.get(name) or []
        if not isinstance(v, list) or not all(_int_list(g) for g in v):
            raise ConfigError(f"{where}.{name}: must be a list of lists of hardware-thread ids")
        groups[name] = v
    accs = topo.get("accelerators") or []
    if not isinstance(accs, list) or not all(isinstance(a, dict) and isinstance(a.get("id"), (str, int))
                                             and not isinstance(a.get("id"), bool) for a in accs):
        raise ConfigError(f"{where}.accelerators: must be a list of objects with an 'id'")
    return Topology(node=list(topo["node"]), accelerators=accs, **groups)


def load_cluster_file(path: Path) -> Cluster:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    cluster = parse_cluster(doc, str(path))
    if cluster.name != path.parent.name:
        raise ConfigError(f"{path}: cluster name {cluster.name!r} does not match its directory {path.parent.name!r}")
    cluster.path = path
    return cluster


def load_clusters(archive_path: Path) -> dict[str, Cluster]:
    """All clusters of a job archive (each directory holding a ``cluster.json``)."""
    clusters: dict[str, Cluster] = {}
    if not archive_path.is_dir():
        return clusters
    for entry in sorted(archive_path.iterdir()):
        f = entry / "cluster.json"
        if entry.is_dir() and f.is_file():
            c = load_cluster_file(f)
            clusters[c.name] = c
    return clusters


class MetricCatalog:
    """(cluster, metric) -> :class:`MetricSpec` for the metric store.

    ``cluster.json`` wins; the standalone ``metrics`` map of config.json covers every
    cluster (and clusters without a ``cluster.json``), as in cc-metric-store.
    """

    def __init__(self, clusters: dict[str, Cluster], metrics: dict[str, MetricSpec]):
        self.clusters = clusters
        self.global_metrics = dict(metrics)
        self._by_cluster: dict[str, dict[str, MetricSpec]] = {}
        for c in clusters.values():
            specs = dict(self.global_metrics)
            for m in c.metrics.values():
                specs[m.name] = MetricSpec(m.timestep, m.aggregation)
            self._by_cluster[c.name] = specs

    def get(self, cluster: str, metric: str) -> MetricSpec | None:
        specs = self._by_cluster.get(cluster)
        if specs is not None:
            return specs.get(metric)
        return self.global_metrics.get(metric)

    def frequencies(self) -> list[int]:
        freqs = {s.frequency for s in self.global_metrics.values()}
        for specs in self._by_cluster.values():
            freqs.update(s.frequency for s in specs.values())
        return sorted(freqs)

    def metrics_of(self, cluster: str) -> dict[str, MetricSpec]:
        return dict(self._by_cluster.get(cluster, self.global_metrics))


def load_catalog(cfg: Config) -> MetricCatalog:
    return MetricCatalog(load_clusters(cfg.archive_path), cfg.metrics)
