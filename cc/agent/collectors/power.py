"""``rapl``: average power per RAPL zone from the powercap energy counters in sysfs.

Each zone ``/sys/devices/virtual/powercap/intel-rapl/intel-rapl:N`` (and its sub-zones
``intel-rapl:N:M``: core, uncore, dram) has a microjoule counter ``energy_uj`` that restarts at 0
after ``max_energy_range_uj``; a smaller reading is one wrap-around, so the difference is taken
modulo that range.  ``rapl_average_power`` (Watt) is the energy since the previous round over the
time since then -- the first round only takes the reading.

Tags as upstream (``id``, ``zone_name``, ``sub_zone_name``) plus the scope the metric store needs:
zones named ``package-N`` and their sub-zones are ``type=socket,type-id=N``, others (``psys``)
``type=node``.  Zones whose counter cannot be read (``energy_uj`` is root-only on current
kernels) are left out at start, with one log line naming them.

Standard metrics (unless the ``likwid`` collector runs, which measures the same): ``cpu_power``
per socket from the package zones and ``mem_power`` from their ``dram`` sub-zones, in W.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from cc.agent.collectors._base import Collector, CollectorUnavailable, Rates
from cc.agent.message import Message

log = logging.getLogger("agent.rapl")

POWERCAP = "sys/devices/virtual/powercap/intel-rapl"
_ZONE_RE = re.compile(r"intel-rapl:(\d+)$")
_SUBZONE_RE = re.compile(r"intel-rapl:(\d+):(\d+)$")
_PACKAGE_RE = re.compile(r"package-(\d+)$")


@dataclass
class Zone:
    id: str
    name: str
    energy_file: str
    wrap: int
    tags: dict[str, str]
    standard: str | None  # cpu_power / mem_power / None
    package: str | None   # the socket of package-N zones and their sub-zones


class RaplCollector(Collector):
    name = "rapl"
    source = "RAPLCollector"
    group = "energy"
    options = {"exclude_device_by_id": list, "exclude_device_by_name": list, "exclude_metrics": list,
               "only_metrics": list}

    def _zone(self, path: str, zid: str, parent: str | None, package: str | None) -> Zone | None:
        try:
            zname = self.read_text(f"{path}/name").strip()
            wrap = int(self.read_text(f"{path}/max_energy_range_uj").strip())
            int(self.read_text(f"{path}/energy_uj").strip())
        except (OSError, ValueError) as e:
            self.unreadable.append(f"{zid} ({type(e).__name__})")
            return None
        if parent is None and (pm := _PACKAGE_RE.match(zname)):
            package = pm.group(1)
        tags = {"type": "socket", "type-id": package} if package is not None else {"type": "node"}
        if parent is None:
            tags.update(id=zid, zone_name=zname)
            standard = "cpu_power" if package is not None else None
        else:
            tags.update(id=zid, zone_name=parent, sub_zone_name=zname)
            standard = "mem_power" if package is not None and zname == "dram" else None
        return Zone(zid, zname, f"{path}/energy_uj", wrap, tags, standard, package)

    def init(self, now: float) -> None:
        base = self.path(POWERCAP)
        try:
            names = sorted(os.listdir(base))
        except OSError as e:
            raise CollectorUnavailable(f"no RAPL zones: {base}: {e.strerror}") from None
        by_id = set(self.cfg.get("exclude_device_by_id", ()))
        by_name = set(self.cfg.get("exclude_device_by_name", ()))
        self.zones: list[Zone] = []
        self.unreadable: list[str] = []
        for n in names:
            if not (m := _ZONE_RE.match(n)):
                continue
            zpath = f"{base}/{n}"
            zid = m.group(1)
            zone = self._zone(zpath, zid, None, None)
            if zone is not None and zid not in by_id and zone.name not in by_name:
                self.zones.append(zone)
            if zone is None:  # its sub-zones may still be readable
                try:
                    zname = self.read_text(f"{zpath}/name").strip()
                except OSError:
                    continue
                pm = _PACKAGE_RE.match(zname)
                parent, package = zname, pm.group(1) if pm else None
            else:
                parent, package = zone.name, zone.package
            try:
                subs = sorted(os.listdir(zpath))
            except OSError:
                continue
            for s in subs:
                if not (sm := _SUBZONE_RE.match(s)) or sm.group(1) != zid:
                    continue
                sid = f"{zid}:{sm.group(2)}"
                sub = self._zone(f"{zpath}/{s}", sid, parent, package)
                if sub is not None and sid not in by_id and sub.name not in by_name:
                    self.zones.append(sub)
        if self.unreadable:
            log.warning("rapl: cannot read zone(s) %s (energy_uj is root-only on recent kernels)",
                        ", ".join(self.unreadable))
        if not self.zones:
            raise CollectorUnavailable(f"no readable, non-excluded RAPL zones in {base}")
        self.standard = self.ctx.standard and "likwid" not in self.ctx.active
        self.rates = Rates()
        self._read(now, [])

    def _read(self, now: float, out: list[Message]) -> None:
        for z in self.zones:
            try:
                energy = int(self.read_text(z.energy_file).strip())
            except (OSError, ValueError):
                self.rates.last.pop(z.id, None)  # a gap: no rate across it
                continue
            r = self.rates.update_wrapping(z.id, energy, now, z.wrap)
            if r is None:
                continue
            watts = r * 1e-6
            if self.want("rapl_average_power"):
                out.append(self.msg("rapl_average_power", z.tags, watts, now, "Watt"))
            if self.standard and z.standard and self.want(z.standard):
                out.append(self.msg(z.standard, {"type": "socket", "type-id": z.tags["type-id"]}, watts, now, "W"))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out
