"""Network and disk collectors: ``netstat`` (/proc/net/dev), ``iostat`` (/proc/diskstats),
``diskstat`` (mounted file systems).

Standard metrics (node scope, bytes per second):

* ``net_bw`` -- received plus sent over the measured network devices; ``eth_read_bw``/
  ``eth_write_bw`` over the Ethernet ones and ``ic_read_bw``/``ic_write_bw`` over the
  InfiniBand (IPoIB) ones (``/sys/class/net/DEV/type`` 1 and 32).
* ``file_bw`` -- read plus written on whole physical disks (``/sys/block/DEV/device``
  exists), so partitions, device-mapper and md devices do not count twice.

Without ``include_devices`` (upstream requires the list) netstat measures the devices
that have hardware behind them (``/sys/class/net/DEV/device``), so loopback, bridges,
veth and ifb devices stay out.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cc.agent.collectors._base import AgentConfigError, Collector, CollectorUnavailable, Rates
from cc.agent.message import Message

_NET_FIELDS = (("net_bytes_in", 0, "bytes"), ("net_pkts_in", 1, "packets"),
               ("net_bytes_out", 8, "bytes"), ("net_pkts_out", 9, "packets"))
ARPHRD_ETHER, ARPHRD_INFINIBAND = 1, 32


class NetstatCollector(Collector):
    name = "netstat"
    source = "NetstatCollector"
    group = "Network"
    options = {"include_devices": list, "send_abs_values": bool, "send_derived_values": bool,
               "interface_aliases": dict, "exclude_metrics": list}

    def init(self, now: float) -> None:
        self.file = self.need("proc/net/dev")
        aliases = self.cfg.get("interface_aliases", {})
        self.canonical: dict[str, str] = {}
        for canon, names in aliases.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise AgentConfigError(f"{self.where}.interface_aliases.{canon}: expected a list of names")
            for n in names:
                self.canonical[n] = canon
        self.include = self.cfg.get("include_devices")
        self.abs = self.cfg.get("send_abs_values", True)
        self.derived = self.cfg.get("send_derived_values", False)
        self.rates = Rates()
        self.devices: dict[str, tuple[dict[str, str], int]] = {}
        for dev, _ in self._counters():
            canon = self.canonical.get(dev, dev)
            if self.include is not None:
                if canon not in self.include:
                    continue
            elif not os.path.exists(self.path(f"sys/class/net/{dev}/device")):
                continue
            self.devices[dev] = ({"stype": "network", "stype-id": dev, "type": "node"}, self._arp_type(dev))
        if not self.devices:
            raise CollectorUnavailable("no network devices to measure"
                                       + (f" (include_devices: {self.include})" if self.include else ""))
        self._read(now, [])

    def _arp_type(self, dev: str) -> int:
        try:
            return int(self.read_text(f"sys/class/net/{dev}/type").strip())
        except (OSError, ValueError):
            return 0

    def _counters(self) -> list[tuple[str, list[int]]]:
        out = []
        for line in self.read_text(self.file).splitlines():
            dev, sep, rest = line.partition(":")
            if not sep or "|" in line:
                continue
            try:
                out.append((dev.strip(), [int(x) for x in rest.split()]))
            except ValueError:
                continue
        return out

    def _read(self, now: float, out: list[Message]) -> None:
        sums = {"net_bw": 0.0, "eth_read_bw": 0.0, "eth_write_bw": 0.0, "ic_read_bw": 0.0, "ic_write_bw": 0.0}
        have_rate = False
        for dev, vals in self._counters():
            known = self.devices.get(dev)
            if known is None or len(vals) < 10:
                continue
            tags, arp = known
            for name, idx, unit in _NET_FIELDS:
                v = vals[idx]
                if self.abs and self.want(name):
                    out.append(self.msg(name, tags, v, now, unit))
                r = self.rates.update((dev, idx), v, now)
                if r is None:
                    continue
                have_rate = True
                if self.derived and self.want(name + "_bw"):
                    out.append(self.msg(name + "_bw", tags, r, now, unit + "/sec"))
                if unit == "bytes":
                    sums["net_bw"] += r
                    prefix = "eth" if arp == ARPHRD_ETHER else "ic" if arp == ARPHRD_INFINIBAND else None
                    if prefix:
                        sums[f"{prefix}_{'read' if idx == 0 else 'write'}_bw"] += r
        if self.ctx.standard and have_rate:
            node = {"type": "node"}
            kinds = {arp for _, arp in self.devices.values()}
            for name, v in sums.items():
                if not self.want(name):
                    continue
                if name.startswith("eth") and ARPHRD_ETHER not in kinds:
                    continue
                if name.startswith("ic") and ARPHRD_INFINIBAND not in kinds:
                    continue
                out.append(self.msg(name, node, v, now, "B/s"))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out


_IOSTAT_FIELDS = {
    "io_reads": 3, "io_reads_merged": 4, "io_read_sectors": 5, "io_read_ms": 6, "io_writes": 7,
    "io_writes_merged": 8, "io_writes_sectors": 9, "io_writes_ms": 10, "io_ioops": 11, "io_ioops_ms": 12,
    "io_ioops_weighted_ms": 13, "io_discards": 14, "io_discards_merged": 15, "io_discards_sectors": 16,
    "io_discards_ms": 17, "io_flushes": 18, "io_flushes_ms": 19,
}
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size


class IostatCollector(Collector):
    """/proc/diskstats: per device, how much each counter grew since the previous round."""

    name = "iostat"
    source = "IOstatCollector"
    group = "Disk"
    options = {"exclude_metrics": list, "exclude_devices": list}

    def init(self, now: float) -> None:
        self.file = self.need("proc/diskstats")
        self.exclude_devices = set(self.cfg.get("exclude_devices", ()))
        self.fields = [(n, i) for n, i in _IOSTAT_FIELDS.items() if self.want(n)]
        self.last: dict[str, list[int]] = {}
        self.disks: set[str] = set()
        for dev, vals in self._devices():
            self.last[dev] = vals
            if os.path.exists(self.path(f"sys/block/{dev}/device")):
                self.disks.add(dev)
        self.rates = Rates()
        self._file_bw(now)
        if not self.last:
            raise CollectorUnavailable(f"no block devices in {self.file}")

    def _devices(self) -> list[tuple[str, list[int]]]:
        out = []
        for line in self.read_text(self.file).splitlines():
            f = line.split()
            if len(f) < 14:
                continue
            dev = f[2]
            if "loop" in dev or dev in self.exclude_devices:
                continue
            try:
                out.append((dev, [0, 0, 0] + [int(x) for x in f[3:]]))
            except ValueError:
                continue
        return out

    def _file_bw(self, now: float, devices: list[tuple[str, list[int]]] | None = None) -> float | None:
        total = sum((v[5] + v[9]) for d, v in (devices or self._devices()) if d in self.disks)
        r = self.rates.update("file_bw", total * SECTOR, now)
        return r

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        devices = self._devices()
        for dev, vals in devices:
            prev = self.last.get(dev)
            if prev is None:  # appeared after start: upstream ignores it too
                continue
            tags = {"device": dev, "type": "node"}
            for name, idx in self.fields:
                if idx < len(vals) and idx < len(prev):
                    out.append(self.msg(name, tags, vals[idx] - prev[idx], now))
            self.last[dev] = vals
        r = self._file_bw(now, devices)
        if self.ctx.standard and r is not None and self.want("file_bw"):
            out.append(self.msg("file_bw", {"type": "node"}, r, now, "B/s"))
        return out


class DiskstatCollector(Collector):
    """Size and free space of mounted /dev file systems (``disk_total``, ``disk_free``, ``part_max_used``)."""

    name = "diskstat"
    source = "DiskstatCollector"
    group = "Disk"
    options = {"exclude_metrics": list, "exclude_mounts": list}
    #: how file systems are measured; tests replace it to get exact numbers from fixture trees
    statvfs: Callable[[str], os.statvfs_result] = staticmethod(os.statvfs)

    def init(self, now: float) -> None:
        self.file = self.need("proc/self/mounts")
        self.exclude_mounts = list(self.cfg.get("exclude_mounts", ()))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        max_used = 0
        for line in self.read_text(self.file).splitlines():
            f = line.split()
            if len(f) < 2 or not f[0].startswith("/dev") or "loop" in f[0] or "boot" in f[1]:
                continue
            mount = f[1].replace("\\040", " ")
            if any(x in mount for x in self.exclude_mounts):
                continue
            try:
                st = self.statvfs(str(self.root / mount.lstrip("/")))
            except OSError:
                continue
            if st.f_blocks == 0 or st.f_bsize == 0:
                continue
            tags = {"type": "node", "device": f[0]}
            total = st.f_blocks * st.f_bsize // 1_000_000_000
            free = st.f_bfree * st.f_bsize // 1_000_000_000
            if self.want("disk_total"):
                out.append(self.msg("disk_total", tags, total, now, "GBytes"))
            if self.want("disk_free"):
                out.append(self.msg("disk_free", tags, free, now, "GBytes"))
            if total > 0:
                max_used = max(max_used, 100 * (total - free) // total)
        if self.want("part_max_used"):
            out.append(self.msg("part_max_used", {"type": "node"}, max_used, now, "percent"))
        return out
