"""CPU collectors: ``cpustat`` (/proc/stat), ``cpufreq`` (sysfs), ``cpufreq_cpuinfo``, ``schedstat``.

Names, scopes and units as cc-metric-collector's collectors of the same name.  Where the
upstream value is questionable we keep the name and fix the value, and say so:

* ``cpu_used`` leaves out ``guest``/``guest_nice``, which /proc/stat already counts in
  ``user``/``nice`` (upstream adds them twice).
* ``cpufreq`` from sysfs is in kHz as the kernel reports it; upstream labels the same
  number "Hz", we label it ``kHz``.

Standard metric: ``clock`` (MHz, every hwthread) from sysfs, else from /proc/cpuinfo
(``cpufreq_cpuinfo`` stands down when ``cpufreq`` works, so nothing is sent twice).
"""

from __future__ import annotations

import os
import re

from cc.agent.collectors._base import Collector, CollectorUnavailable, Rates
from cc.agent.message import Message

_CPUSTAT_FIELDS = ("cpu_user", "cpu_nice", "cpu_system", "cpu_idle", "cpu_iowait", "cpu_irq", "cpu_softirq",
                   "cpu_steal", "cpu_guest", "cpu_guest_nice")
_USED = ("cpu_user", "cpu_nice", "cpu_system", "cpu_iowait", "cpu_irq", "cpu_softirq", "cpu_steal")
_CPU_DIR_RE = re.compile(r"cpu(\d+)$")


def hwthreads(root_sys_cpu: str) -> list[int]:
    """Hardware thread ids that have a directory in /sys/devices/system/cpu."""
    try:
        names = os.listdir(root_sys_cpu)
    except OSError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _CPU_DIR_RE.match(n)))


class CpustatCollector(Collector):
    """Time shares of /proc/stat per hwthread and for the node, in percent."""

    name = "cpustat"
    source = "CpustatCollector"
    group = "CPU"

    def init(self, now: float) -> None:
        self.file = self.need("proc/stat")
        self.clk_tck = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self.rates = Rates()
        self.fields = [n for n in _CPUSTAT_FIELDS if self.want(n)]
        self.tags: dict[str, dict[str, str]] = {}
        self._parse(now, [])
        if not self.tags:
            raise CollectorUnavailable(f"no cpu lines in {self.file}")

    def _parse(self, now: float, out: list[Message]) -> None:
        ncpus = 0
        want_used = self.want("cpu_used")
        for line in self.read_text(self.file).splitlines():
            if not line.startswith("cpu"):
                continue
            f = line.split()
            label = f[0]
            if label == "cpu":
                tags = {"type": "node"}
            else:
                ncpus += 1
                tags = self.tags.get(label) or {"type": "hwthread", "type-id": str(int(label[3:]))}
            self.tags[label] = tags
            vals = [int(x) for x in f[1:11]] + [0] * (11 - len(f))
            shares = {}
            for i, n in enumerate(_CPUSTAT_FIELDS):
                r = self.rates.update((label, i), vals[i], now)
                if r is not None:
                    shares[n] = r / self.clk_tck * 100.0
            if not shares:
                continue
            for n in self.fields:
                if n in shares:
                    m = self.msg(n, tags, shares[n], now)
                    m.tags["unit"] = "Percent"  # upstream puts the unit into a tag here
                    out.append(m)
            if want_used:
                m = self.msg("cpu_used", tags, sum(shares.get(n, 0.0) for n in _USED), now)
                m.tags["unit"] = "Percent"
                out.append(m)
        if out and self.want("num_cpus"):
            out.append(self.msg("num_cpus", {"type": "node"}, ncpus, now))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._parse(now, out)
        return out


class Topology:
    """hwthread -> (core key, package id), from sysfs or, failing that, /proc/cpuinfo."""

    def __init__(self, collector: Collector):
        self.core: dict[int, tuple[str, str]] = {}
        base = collector.path("sys/devices/system/cpu")
        for cpu in hwthreads(str(base)):
            t = base / f"cpu{cpu}" / "topology"
            try:
                core = (t / "core_id").read_text().strip()
                pkg = (t / "physical_package_id").read_text().strip()
            except OSError:
                continue
            self.core[cpu] = (f"{pkg}:{core}", pkg)
        if not self.core:
            for block in _cpuinfo_blocks(collector):
                if "processor" in block:
                    pkg = block.get("physical id", "0")
                    self.core[int(block["processor"])] = (f"{pkg}:{block.get('core id', block['processor'])}", pkg)

    def first_threads(self) -> set[int]:
        """One hwthread per core (the lowest id), as upstream reports frequencies only for those."""
        seen: dict[str, int] = {}
        for cpu in sorted(self.core):
            seen.setdefault(self.core[cpu][0], cpu)
        return set(seen.values())

    def package(self, cpu: int) -> str:
        return self.core.get(cpu, ("", "0"))[1]


def _cpuinfo_blocks(collector: Collector) -> list[dict[str, str]]:
    try:
        text = collector.read_text("proc/cpuinfo")
    except OSError:
        return []
    blocks: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
            cur = {}
            continue
        k, sep, v = line.partition(":")
        if sep:
            cur[k.strip()] = v.strip()
    if cur:
        blocks.append(cur)
    return blocks


class CpufreqCollector(Collector):
    """Current frequency of each core from sysfs ``scaling_cur_freq`` (kHz)."""

    name = "cpufreq"
    source = "CPUFreqCollector"
    group = "CPU"

    def init(self, now: float) -> None:
        base = self.path("sys/devices/system/cpu")
        self.files: list[tuple[int, str, bool]] = []
        topo = Topology(self)
        firsts = topo.first_threads()
        for cpu in hwthreads(str(base)):
            f = base / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq"
            if not os.access(f, os.R_OK):
                raise CollectorUnavailable(f"cannot read {f} (no cpufreq driver?)")
            self.files.append((cpu, str(f), cpu in firsts or not firsts))
        if not self.files:
            raise CollectorUnavailable(f"no hwthreads in {base}")
        self.tags = {cpu: {"type": "hwthread", "type-id": str(cpu), "package_id": topo.package(cpu)}
                     for cpu, _, _ in self.files}

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        clock = self.ctx.standard and self.want("clock")
        for cpu, f, first in self.files:
            try:
                with open(f, "rb") as fh:
                    khz = int(fh.read().strip())
            except (OSError, ValueError):
                continue
            if first and self.want("cpufreq"):
                out.append(self.msg("cpufreq", self.tags[cpu], khz, now, "kHz"))
            if clock:
                out.append(self.msg("clock", {"type": "hwthread", "type-id": str(cpu)}, khz / 1000.0, now, "MHz"))
        return out


class CpufreqCpuinfoCollector(Collector):
    """``cpu MHz`` of each core from /proc/cpuinfo."""

    name = "cpufreq_cpuinfo"
    source = "CPUFreqCpuInfoCollector"
    group = "CPU"

    def init(self, now: float) -> None:
        self.need("proc/cpuinfo")
        if "cpufreq" in self.ctx.started:
            raise CollectorUnavailable("the cpufreq collector already reports frequencies from sysfs")
        self.emit_clock = self.ctx.standard and self.want("clock")
        blocks = _cpuinfo_blocks(self)
        seen: set[str] = set()
        self.first: dict[int, bool] = {}
        self.tags: dict[int, dict[str, str]] = {}
        for b in blocks:
            if "cpu MHz" not in b or "processor" not in b:
                continue
            cpu = int(b["processor"])
            pkg = b.get("physical id", "0")
            core = f"{pkg}:{b.get('core id', b['processor'])}"
            self.first[cpu] = core not in seen
            seen.add(core)
            self.tags[cpu] = {"type": "hwthread", "type-id": str(cpu), "package_id": pkg}
        if not self.tags:
            raise CollectorUnavailable(f"no 'cpu MHz' lines in {self.path('proc/cpuinfo')}")

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        want = self.want("cpufreq")
        for b in _cpuinfo_blocks(self):
            if "cpu MHz" not in b or "processor" not in b:
                continue
            cpu = int(b["processor"])
            try:
                mhz = float(b["cpu MHz"])
            except ValueError:
                continue
            if want and self.first.get(cpu, False):
                out.append(self.msg("cpufreq", self.tags[cpu], mhz, now, "MHz"))
            if self.emit_clock:
                out.append(self.msg("clock", {"type": "hwthread", "type-id": str(cpu)}, mhz, now, "MHz"))
        return out


class SchedstatCollector(Collector):
    """``cpu_load_core``: running plus waiting time per hwthread from /proc/schedstat, per second."""

    name = "schedstat"
    source = "SchedstatCollector"
    group = "SCHEDSTAT"

    def init(self, now: float) -> None:
        self.file = self.need("proc/schedstat")
        self.rates = Rates()
        if not self._lines(now):
            raise CollectorUnavailable(f"no cpu lines in {self.file}")

    def _lines(self, now: float) -> list[tuple[str, float | None]]:
        out = []
        for line in self.read_text(self.file).splitlines():
            f = line.split()
            if len(f) < 9 or not f[0].startswith("cpu") or f[0] == "cpu":
                continue
            total = int(f[7]) + int(f[8])  # time running + time waiting on the run queue, ns
            r = self.rates.update(f[0], total, now)
            out.append((f[0][3:], None if r is None else r / 1e9))
        return out

    def read(self, now: float) -> list[Message]:
        if not self.want("cpu_load_core"):
            return []
        return [self.msg("cpu_load_core", {"type": "hwthread", "type-id": cpu}, v, now)
                for cpu, v in self._lines(now) if v is not None]
