"""The collectors, by the names cc-metric-collector's ``collectors`` section uses."""

from __future__ import annotations

from cc.agent.collectors._base import AgentConfigError, Collector, CollectorUnavailable, Context, Rates
from cc.agent.collectors.cpu import (
    CpufreqCollector,
    CpufreqCpuinfoCollector,
    CpustatCollector,
    SchedstatCollector,
)
from cc.agent.collectors.io import DiskstatCollector, IostatCollector, NetstatCollector
from cc.agent.collectors.nvidia import NvidiaCollector
from cc.agent.collectors.system import LoadavgCollector, MemstatCollector, NumastatsCollector

__all__ = ["AgentConfigError", "Collector", "CollectorUnavailable", "Context", "Rates", "REGISTRY",
           "DEFAULT_COLLECTORS", "make_collector"]

REGISTRY: dict[str, type[Collector]] = {c.name: c for c in (
    CpustatCollector, CpufreqCollector, CpufreqCpuinfoCollector, SchedstatCollector, LoadavgCollector,
    MemstatCollector, NumastatsCollector, NetstatCollector, IostatCollector, DiskstatCollector, NvidiaCollector,
)}

#: what runs when the configuration has no ``collectors`` section: everything that works anywhere
DEFAULT_COLLECTORS: dict[str, dict] = {name: {} for name in REGISTRY}


def make_collector(name: str, cfg: dict | None, ctx: Context) -> Collector:
    cls = REGISTRY.get(name)
    if cls is None:
        raise AgentConfigError(f"collectors.{name}: unknown collector (known: {', '.join(sorted(REGISTRY))})")
    return cls(cfg, ctx)
