"""``ibstat``: InfiniBand port counters from ``/sys/class/infiniband/<device>/ports/<port>/counters``.

Every port with a LID (a ``lid`` file other than ``0x0``) of a device not in ``exclude_devices``
is read.  ``port_rcv_data``/``port_xmit_data`` count 4-byte words (the 4 lanes), so bytes are the
counter times 4 (``ib_recv``, ``ib_xmit``); packets are ``ib_recv_pkts``/``ib_xmit_pkts``.
``send_abs_values`` (default true) sends the counters, ``send_derived_values`` (default false) the
rates ``<name>_bw`` (bytes/sec, packets/sec), ``send_total_values`` the sums ``ib_total``,
``ib_total_pkts`` (and ``ib_total_bw``, ``ib_total_pkts_bw`` with rates), only when both directions
were read.  A counter that went
down (the port was reset, ``perfquery -R``) gives no rate that round -- upstream sends the
unsigned wrap-around, a huge bogus bandwidth -- and rates resume from the new value.

Tags as upstream: ``type=node``, ``device``, ``port``, ``lid``.
"""

from __future__ import annotations

import logging
import os

from cc.agent.collectors._base import Collector, CollectorUnavailable, Rates
from cc.agent.message import Message

log = logging.getLogger("agent.ibstat")

IB_BASE = "sys/class/infiniband"
#: metric, counter file, factor, total it adds to
_COUNTERS = (
    ("ib_recv", "port_rcv_data", 4, "ib_total"),
    ("ib_xmit", "port_xmit_data", 4, "ib_total"),
    ("ib_recv_pkts", "port_rcv_packets", 1, "ib_total_pkts"),
    ("ib_xmit_pkts", "port_xmit_packets", 1, "ib_total_pkts"),
)
_UNITS = {"ib_total": "bytes", "ib_total_pkts": "packets"}


class IbstatCollector(Collector):
    name = "ibstat"
    source = "InfinibandCollector"
    group = "Network"
    options = {"exclude_devices": list, "send_abs_values": bool, "send_total_values": bool,
               "send_derived_values": bool, "exclude_metrics": list, "only_metrics": list}

    def init(self, now: float) -> None:
        base = self.path(IB_BASE)
        try:
            devices = sorted(os.listdir(base))
        except OSError as e:
            raise CollectorUnavailable(f"no InfiniBand devices: {base}: {e.strerror}") from None
        excluded = set(self.cfg.get("exclude_devices", ()))
        self.abs = self.cfg.get("send_abs_values", True)
        self.total = self.cfg.get("send_total_values", False)
        self.derived = self.cfg.get("send_derived_values", False)
        self.ports: list[tuple[str, dict[str, str]]] = []
        for dev in devices:
            if dev in excluded:
                continue
            try:
                ports = sorted(os.listdir(f"{base}/{dev}/ports"), key=lambda p: (len(p), p))
            except OSError:
                continue
            for port in ports:
                pdir = f"{base}/{dev}/ports/{port}"
                try:
                    lid = self.read_text(f"{pdir}/lid").strip()
                except OSError:
                    continue
                if lid in ("", "0x0"):
                    continue
                missing = [f for _, f, _, _ in _COUNTERS if not self._readable(f"{pdir}/counters/{f}")]
                if missing:
                    log.warning("ibstat: %s port %s: cannot read %s; port left out", dev, port, ", ".join(missing))
                    continue
                self.ports.append((f"{pdir}/counters", {"type": "node", "device": dev, "port": port, "lid": lid}))
        if not self.ports:
            raise CollectorUnavailable(f"no InfiniBand port with a LID (and readable counters) in {base}")
        self.rates = Rates()
        self._read(now, [])

    def _readable(self, path: str) -> bool:
        try:
            int(self.read_text(path).strip())
        except (OSError, ValueError):
            return False
        return True

    def _read(self, now: float, out: list[Message]) -> None:
        for cdir, tags in self.ports:
            totals: dict[str, list[int]] = {}        # total -> [sum, counters in it]
            total_rates: dict[str, list[float]] = {}
            for name, fname, factor, total in _COUNTERS:
                key = (cdir, fname)
                try:
                    raw = int(self.read_text(f"{cdir}/{fname}").strip())
                except (OSError, ValueError):
                    self.rates.last.pop(key, None)
                    continue
                value = raw * factor
                unit = "bytes" if factor == 4 else "packets"
                if self.abs and self.want(name):
                    out.append(self.msg(name, tags, value, now, unit))
                t = totals.setdefault(total, [0, 0])
                t[0] += value
                t[1] += 1
                r = self.rates.update(key, value, now)
                if r is not None and self.derived:
                    if self.want(name + "_bw"):
                        out.append(self.msg(name + "_bw", tags, r, now, unit + "/sec"))
                    tr = total_rates.setdefault(total, [0.0, 0])
                    tr[0] += r
                    tr[1] += 1
            if not self.total:
                continue
            for total, (v, n) in totals.items():  # a sum of both directions or nothing
                if n == 2 and self.want(total):
                    out.append(self.msg(total, tags, v, now, _UNITS[total]))
            for total, (r, n) in total_rates.items():
                if n == 2 and self.want(total + "_bw"):
                    out.append(self.msg(total + "_bw", tags, r, now, _UNITS[total] + "/sec"))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out
