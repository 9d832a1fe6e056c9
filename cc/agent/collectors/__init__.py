"""The collectors, by the names cc-metric-collector's ``collectors`` section uses."""

from __future__ import annotations

from cc.agent.collectors._base import AgentConfigError, Collector, CollectorUnavailable, Context, Rates
from cc.agent.collectors.cpu import (
    CpufreqCollector,
    CpufreqCpuinfoCollector,
    CpustatCollector,
    SchedstatCollector,
)
from cc.agent.collectors.custom import CustomcmdCollector, SelfCollector
from cc.agent.collectors.fs import (
    LustrestatCollector,
    Nfs3statCollector,
    Nfs4statCollector,
    NfsiostatCollector,
)
from cc.agent.collectors.health import IpmistatCollector, SmartmonCollector, TempstatCollector
from cc.agent.collectors.io import DiskstatCollector, IostatCollector, NetstatCollector
from cc.agent.collectors.likwid import LikwidCollector
from cc.agent.collectors.network import IbstatCollector
from cc.agent.collectors.nvidia import NvidiaCollector
from cc.agent.collectors.parallelfs import BeegfsMetaCollector, BeegfsStorageCollector, GpfsCollector
from cc.agent.collectors.power import RaplCollector
from cc.agent.collectors.rocm import RocmSmiCollector
from cc.agent.collectors.slurm import SlurmCgroupCollector
from cc.agent.collectors.system import LoadavgCollector, MemstatCollector, NumastatsCollector

__all__ = ["AgentConfigError", "Collector", "CollectorUnavailable", "Context", "Rates", "REGISTRY",
           "DEFAULT_COLLECTORS", "make_collector"]

REGISTRY: dict[str, type[Collector]] = {c.name: c for c in (
    CpustatCollector, CpufreqCollector, CpufreqCpuinfoCollector, SchedstatCollector, LoadavgCollector,
    MemstatCollector, NumastatsCollector, NetstatCollector, IostatCollector, DiskstatCollector, NvidiaCollector,
    RaplCollector, IbstatCollector, TempstatCollector, SlurmCgroupCollector, LustrestatCollector,
    Nfs3statCollector, Nfs4statCollector, NfsiostatCollector, GpfsCollector, BeegfsMetaCollector,
    BeegfsStorageCollector, IpmistatCollector, SelfCollector, CustomcmdCollector,
    SmartmonCollector, LikwidCollector, RocmSmiCollector,
)}

#: what runs when the configuration has no ``collectors`` section: everything that works anywhere
#: (slurm_cgroup only when configured: on a node without jobs it would send zeros for every hwthread)
#: (likwid needs its event sets configured)
DEFAULT_COLLECTORS: dict[str, dict] = {name: {} for name in REGISTRY if name not in ("slurm_cgroup", "likwid")}


def make_collector(name: str, cfg: dict | None, ctx: Context) -> Collector:
    cls = REGISTRY.get(name)
    if cls is None:
        raise AgentConfigError(f"collectors.{name}: unknown collector (known: {', '.join(sorted(REGISTRY))})")
    return cls(cfg, ctx)
