"""Which source serves a cluster or subcluster: cc-backend's ``GetMetricDataRepo`` rule.

``<cluster>-<subcluster>`` first, then ``<cluster>``, then ``*``, then the built-in store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import trio

from cc.clusters import Cluster
from cc.config import ExternalStore
from cc.metricsource._base import MetricSource, MetricSourceError
from cc.metricsource._external import ExternalSource

T = TypeVar("T")


class MetricSources:
    def __init__(self, builtin: MetricSource, external: Iterable[ExternalStore] = ()):
        self.builtin = builtin
        self.by_scope: dict[str, MetricSource] = {}
        clients: dict[tuple[str, str], ExternalSource] = {}  # one client per (url, token)
        for ext in external:
            key = (ext.url, ext.token)
            if key not in clients:
                clients[key] = ExternalSource(ext.url, ext.token)
            self.by_scope[ext.scope] = clients[key]
        self.external = list(clients.values())

    def describe(self) -> list[str]:
        """``scope -> url`` lines for the start-up log."""
        return [f"{scope} -> {src.name}" for scope, src in self.by_scope.items()]

    def for_subcluster(self, cluster: str, subcluster: str | None) -> MetricSource:
        if subcluster:
            got = self.by_scope.get(f"{cluster}-{subcluster}")
            if got is not None:
                return got
        return self.by_scope.get(cluster) or self.by_scope.get("*") or self.builtin

    def for_host(self, cluster: Cluster, host: str) -> MetricSource:
        sc = cluster.subcluster_for_host(host)
        return self.for_subcluster(cluster.name, sc.name if sc is not None else None)

    def group_hosts(self, cluster: Cluster, hosts: Iterable[str]) -> list[tuple[MetricSource, list[str]]]:
        """The hosts of each source, in the order the hosts came."""
        groups: dict[int, tuple[MetricSource, list[str]]] = {}
        for h in hosts:
            src = self.for_host(cluster, h)
            groups.setdefault(id(src), (src, []))[1].append(h)
        return list(groups.values())

    def sources_of(self, cluster: Cluster) -> list[MetricSource]:
        """Every source serving some part of a cluster (hosts outside all subclusters: the cluster's)."""
        found = {id(s): s for s in [self.for_subcluster(cluster.name, None),
                                    *(self.for_subcluster(cluster.name, sc.name) for sc in cluster.subclusters)]}
        return list(found.values())

    async def hosts(self, cluster: Cluster) -> list[str]:
        """Hosts with data in the sources of a cluster; each source counts only for the hosts routed to it."""
        sources = self.sources_of(cluster)
        metric = next(iter(cluster.metrics), "")
        found = await gather([(src, cluster.name) for src in sources], lambda src, name: src.hosts(name, metric))
        if len(sources) == 1:
            return sorted(found[0])
        return sorted({h for src, hosts in zip(sources, found, strict=True) for h in hosts
                       if self.for_host(cluster, h) is src})

    async def health(self, cluster: Cluster, hosts: list[str]) -> dict[str, dict[str, Any]]:
        """Health of each host against its subcluster's metrics, from the source that holds its data.

        A failing source leaves its hosts out (cc-backend then records them as ``failed``);
        the failure is logged by the source.
        """
        groups: dict[tuple[int, str], tuple[MetricSource, list[str], list[str]]] = {}
        for h in hosts:
            sc = cluster.subcluster_for_host(h)
            src = self.for_subcluster(cluster.name, sc.name if sc is not None else None)
            metrics = sorted(sc.metrics) if sc is not None else sorted(cluster.metrics)
            groups.setdefault((id(src), sc.name if sc is not None else ""), (src, metrics, []))[2].append(h)
        out: dict[str, dict[str, Any]] = {}

        async def one(src: MetricSource, group: tuple[list[str], list[str]]) -> None:
            try:
                out.update(await src.health(cluster.name, group[1], group[0]))
            except MetricSourceError:
                pass

        await gather([(src, (metrics, hs)) for src, metrics, hs in groups.values()], one)
        return out

    async def aclose(self) -> None:
        for src in self.external:
            await src.aclose()


async def gather(calls: list[tuple[MetricSource, Any]], fn: Callable[[MetricSource, Any], Awaitable[T]]) -> list[T]:
    """``await fn(source, arg)`` for every pair, concurrently; the results in order.

    The first failure is raised once all calls finished, as itself (not in an exception
    group), so callers catch :class:`MetricSourceError` or :class:`cc.query.QueryError`
    as from a single source.
    """
    if len(calls) == 1:
        return [await fn(*calls[0])]
    out: list[Any] = [None] * len(calls)
    errors: list[Exception] = []

    async def one(i: int, src: MetricSource, arg: Any) -> None:
        try:
            out[i] = await fn(src, arg)
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other sources answered
            errors.append(e)

    async with trio.open_nursery() as nursery:
        for i, (src, arg) in enumerate(calls):
            nursery.start_soon(one, i, src, arg)
    if errors:
        raise errors[0]
    return out
