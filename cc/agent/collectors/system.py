"""Node-wide collectors: ``loadavg``, ``memstat`` (with NUMA domains), ``numastats``.

Standard metrics: ``cpu_load`` (= ``load_one``) and ``mem_used`` in GB.  ``mem_used`` keeps
its upstream name, so with standard metrics on (the default) it is sent in GB -- what
every ClusterCockpit ``cluster.json`` expects and what cc-metric-collector sends after the
usual ``change_unit_prefix`` rule (its ``kB`` counted as 1000 bytes, as cc-units does);
with ``"standard_metrics": false`` it stays in kB like the other ``mem_*`` metrics.

Unlike upstream, memstat sends only the lines the kernel has (upstream sends 0 for
missing ones, and always 0 for ``HugePages_*``, which have no unit column), and
``mem_used`` = MemTotal - MemFree - Buffers - (Cached - Shmem): Cached already contains
Shmem, which upstream subtracts a second time -- on nodes with big tmpfs or shared-memory
segments (this metric store keeps its buffers in /dev/shm) that goes negative.
"""

from __future__ import annotations

import os
import re

from cc.agent.collectors._base import Collector, CollectorUnavailable, Rates
from cc.agent.message import Message

_MEMINFO = {
    "MemTotal": "mem_total", "SwapTotal": "swap_total", "SReclaimable": "mem_sreclaimable", "Slab": "mem_slab",
    "MemFree": "mem_free", "Buffers": "mem_buffers", "Cached": "mem_cached", "MemAvailable": "mem_available",
    "SwapFree": "swap_free", "Shmem": "mem_shared", "Active": "mem_active", "Inactive": "mem_inactive",
    "Dirty": "mem_dirty", "Writeback": "mem_writeback", "AnonPages": "mem_anon_pages", "Mapped": "mem_mapped",
    "VmallocTotal": "mem_vmalloc_total", "AnonHugePages": "mem_anon_hugepages",
    "ShmemHugePages": "mem_shared_hugepages", "ShmemPmdMapped": "mem_shared_pmd_mapped",
    "HugePages_Total": "mem_hugepages_total", "HugePages_Free": "mem_hugepages_free",
    "HugePages_Rsvd": "mem_hugepages_reserved", "HugePages_Surp": "mem_hugepages_surplus",
    "Hugepagesize": "mem_hugepages_size", "DirectMap4k": "mem_direct_mapped_4k", "DirectMap4M": "mem_direct_mapped_4m",
    "DirectMap2M": "mem_direct_mapped_2m", "DirectMap1G": "mem_direct_mapped_1g", "Mlocked": "mem_locked",
    "PageTables": "mem_pagetables", "KernelStack": "mem_kernelstack",
}
_NODE_DIR_RE = re.compile(r"node(\d+)$")


class LoadavgCollector(Collector):
    """/proc/loadavg: ``load_one``, ``load_five``, ``load_fifteen``, ``proc_run``, ``proc_total``."""

    name = "loadavg"
    source = "LoadavgCollector"
    group = "LOAD"

    def init(self, now: float) -> None:
        self.file = self.need("proc/loadavg")

    def read(self, now: float) -> list[Message]:
        f = self.read_text(self.file).split()
        node = {"type": "node"}
        out = []
        for i, n in enumerate(("load_one", "load_five", "load_fifteen")):
            if self.want(n):
                out.append(self.msg(n, node, float(f[i]), now))
        run, _, total = f[3].partition("/")
        for n, v in (("proc_run", run), ("proc_total", total)):
            if self.want(n):
                out.append(self.msg(n, node, int(v), now))
        if self.ctx.standard and self.want("cpu_load"):
            out.append(self.msg("cpu_load", node, float(f[0]), now))
        return out


def parse_meminfo(text: str) -> dict[str, tuple[float, str]]:
    """``Key: value [unit]`` lines (also ``Node N Key: value [unit]``) -> {key: (value, unit)}."""
    stats: dict[str, tuple[float, str]] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        if key.startswith("Node "):
            key = key.split()[-1]
        parts = rest.split()
        if not parts:
            continue
        try:
            v = float(parts[0])
        except ValueError:
            continue
        stats[key.strip()] = (v, parts[1] if len(parts) > 1 else "")
    return stats


class MemstatCollector(Collector):
    """/proc/meminfo (``node_stats``) and per NUMA domain meminfo (``numa_stats``)."""

    name = "memstat"
    source = "MemstatCollector"
    group = "Memory"
    options = {"exclude_metrics": list, "node_stats": bool, "numa_stats": bool}

    def init(self, now: float) -> None:
        self.node_stats = self.cfg.get("node_stats", True)
        self.files: list[tuple[str, dict[str, str]]] = []
        if self.node_stats:
            f = self.need("proc/meminfo")
            if not parse_meminfo(self.read_text(f)):
                raise CollectorUnavailable(f"no data in {f}")
            self.files.append((str(f), {"type": "node"}))
        if self.cfg.get("numa_stats", False):
            for node, d in numa_nodes(self):
                f = d + "/meminfo"
                self.files.append((f, {"type": "memoryDomain", "type-id": node}))
        if not self.files:
            raise CollectorUnavailable("neither node_stats nor numa_stats (with NUMA nodes) enabled")
        self.matches = [(k, n) for k, n in _MEMINFO.items() if self.want(n)]

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        for f, tags in self.files:
            try:
                stats = parse_meminfo(self.read_text(f))
            except OSError:
                continue
            for key, name in self.matches:
                if key in stats:
                    v, unit = stats[key]
                    out.append(self.msg(name, tags, v, now, unit or None))
            if self.want("mem_used") and "MemTotal" in stats and "MemFree" in stats:
                total, unit = stats["MemTotal"]
                used = total - stats["MemFree"][0]
                if "Buffers" in stats:  # node meminfo files have no Buffers/Cached: total - free there
                    # Cached includes Shmem (tmpfs, shared memory), which cannot be reclaimed: it is used
                    cached = stats.get("Cached", (0.0,))[0] - stats.get("Shmem", (0.0,))[0]
                    used -= stats["Buffers"][0] + max(cached, 0.0)
                if self.ctx.standard and unit == "kB":
                    out.append(self.msg("mem_used", tags, used * 1e-6, now, "GB"))
                else:
                    out.append(self.msg("mem_used", tags, used, now, unit or None))
        return out


def numa_nodes(c: Collector) -> list[tuple[str, str]]:
    """(node id, directory) of each NUMA node in sysfs."""
    base = c.path("sys/devices/system/node")
    try:
        names = sorted((int(m.group(1)), n) for n in os.listdir(base) if (m := _NODE_DIR_RE.match(n)))
    except OSError:
        return []
    return [(str(i), f"{base}/{n}") for i, n in names]


class NumastatsCollector(Collector):
    """``/sys/devices/system/node/node*/numastat`` per memory domain, counters and rates."""

    name = "numastats"
    source = "NUMAStatsCollector"
    group = "NUMA"
    options = {"send_abs_values": bool, "send_derived_values": bool, "exclude_metrics": list}

    def init(self, now: float) -> None:
        self.nodes = [(node, d + "/numastat") for node, d in numa_nodes(self)]
        if not self.nodes:
            raise CollectorUnavailable(f"no NUMA nodes in {self.path('sys/devices/system/node')}")
        self.abs = self.cfg.get("send_abs_values", True)
        self.derived = self.cfg.get("send_derived_values", False)
        self.rates = Rates()
        self._read(now, [])

    def _read(self, now: float, out: list[Message]) -> None:
        for node, f in self.nodes:
            tags = {"type": "memoryDomain", "type-id": node}
            try:
                text = self.read_text(f)
            except OSError:
                continue
            for line in text.splitlines():
                p = line.split()
                if len(p) != 2 or not p[1].isdigit():
                    continue
                key, value = p[0], int(p[1])
                name = f"numastats_{key}"
                if self.abs and self.want(name):
                    out.append(self.msg(name, tags, value, now))
                r = self.rates.update((node, key), value, now)
                if self.derived and r is not None and self.want(name + "_rate"):
                    out.append(self.msg(name + "_rate", tags, r, now))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out
