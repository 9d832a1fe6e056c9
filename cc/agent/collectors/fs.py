"""Network file system clients: ``lustrestat`` (lctl), ``nfs3stat``/``nfs4stat`` (nfsstat), ``nfsiostat`` (mountstats).

``lustrestat`` runs ``lctl get_param llite.<fs>.stats`` per Lustre client (found with
``llite.*.stats``) and sends per ``device``: counts (``lustre_open``, ``lustre_read_requests``...)
and byte sums (``lustre_read_bytes``, ``lustre_write_bytes``) with ``send_abs_values`` (here the
default: upstream sends nothing unless one of the three switches is set), differences since the
previous round ``<name>_diff`` with ``send_diff_values``, and ``lustre_read_bw``,
``lustre_write_bw``, ``lustre_read_requests_rate``, ``lustre_write_requests_rate`` with
``send_derived_values``.  A counter that went down (the client was remounted) gives no
difference/rate that round (upstream sends 0).

``nfs3stat``/``nfs4stat`` run ``nfsstat -l --all`` and send, per operation, the calls since the
previous round (``nfs3_getattr``...; client lines only -- upstream mixes in the server's lines
of the same names).  ``exclude_metrics`` takes the bare operation (``total``, as upstream reads
it) or the metric name.

``nfsiostat`` reads the ``bytes:`` line of every NFS mount in ``/proc/self/mountstats``:
``nfsio_nread``, ``nfsio_nwrite``, ``nfsio_dread``, ``nfsio_dwrite`` (O_DIRECT), ``nfsio_nfsread``,
``nfsio_nfswrite``, ``nfsio_pageread``, ``nfsio_pagewrite`` (bytes; the page counts in pages) and
with ``send_derived_values`` their rates ``<name>_bw``; tagged ``stype=filesystem`` with the mount
point (or the server, ``use_server_as_stype``) as ``stype-id``.
"""

from __future__ import annotations

import re

from cc.agent.collectors._base import Collector, CollectorUnavailable, Rates
from cc.agent.collectors._cmd import CommandFailed, find_command, run_command
from cc.agent.message import Message

#: metric, line in the stats file, field (1 = count, 6 = sum), unit
_LUSTRE = (
    ("lustre_read_requests", "read_bytes", 1, "requests"), ("lustre_write_requests", "write_bytes", 1, "requests"),
    ("lustre_read_bytes", "read_bytes", 6, "bytes"), ("lustre_write_bytes", "write_bytes", 6, "bytes"),
    ("lustre_open", "open", 1, ""), ("lustre_close", "close", 1, ""), ("lustre_setattr", "setattr", 1, ""),
    ("lustre_getattr", "getattr", 1, ""), ("lustre_statfs", "statfs", 1, ""),
    ("lustre_inode_permission", "inode_permission", 1, ""),
)
_LUSTRE_RATES = {"lustre_read_bytes": ("lustre_read_bw", "bytes/sec"),
                 "lustre_write_bytes": ("lustre_write_bw", "bytes/sec"),
                 "lustre_read_requests": ("lustre_read_requests_rate", "requests/sec"),
                 "lustre_write_requests": ("lustre_write_requests_rate", "requests/sec")}
_LLITE_RE = re.compile(r"^llite\.(.+)\.stats=", re.M)


def parse_llite_stats(text: str) -> dict[str, list[str]]:
    """``name count samples [unit] min max sum`` lines -> {name: fields}."""
    return {f[0]: f for line in text.splitlines() if len(f := line.split()) >= 2}


class LustrestatCollector(Collector):
    name = "lustrestat"
    source = "LustreCollector"
    group = "Lustre"
    options = {"lctl_command": str, "exclude_metrics": list, "only_metrics": list, "send_abs_values": bool,
               "send_derived_values": bool, "send_diff_values": bool, "use_sudo": bool}

    def _lctl(self, device: str) -> str:
        return run_command([*self.sudo, self.lctl, "get_param", f"llite.{device}.stats"])

    def init(self, now: float) -> None:
        self.lctl = find_command(self.cfg.get("lctl_command"), "lctl", self.where)
        self.sudo = [find_command(None, "sudo", self.where), "-n"] if self.cfg.get("use_sudo") else []
        self.abs = self.cfg.get("send_abs_values", True)
        self.diff = self.cfg.get("send_diff_values", False)
        self.derived = self.cfg.get("send_derived_values", False)
        try:
            self.devices = sorted(set(_LLITE_RE.findall(self._lctl("*"))))
        except CommandFailed as e:
            raise CollectorUnavailable(f"no Lustre client statistics: {e}") from None
        if not self.devices:
            raise CollectorUnavailable("no Lustre file systems mounted (lctl lists no llite.*.stats)")
        self.last: dict[tuple[str, str], int] = {}
        self.rates = Rates()
        self._read(now, [])

    def _read(self, now: float, out: list[Message]) -> None:
        for dev in self.devices:
            try:
                stats = parse_llite_stats(self._lctl(dev))
            except CommandFailed:
                continue
            tags = {"type": "node", "device": dev}
            for name, line, field, unit in _LUSTRE:
                f = stats.get(line)
                try:
                    v = int(f[field]) if f else 0  # a line appears with the first operation of its kind
                except (IndexError, ValueError):
                    continue
                if self.abs and self.want(name):
                    out.append(self.msg(name, tags, v, now, unit or None))
                prev = self.last.get((dev, name))
                self.last[(dev, name)] = v
                if self.diff and prev is not None and v >= prev and self.want(name + "_diff"):
                    out.append(self.msg(name + "_diff", tags, v - prev, now, unit or None))
                r = self.rates.update((dev, name), v, now)
                if self.derived and name in _LUSTRE_RATES and r is not None:
                    rname, runit = _LUSTRE_RATES[name]
                    if self.want(rname):
                        out.append(self.msg(rname, tags, r, now, runit))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out


class _NfsCollector(Collector):
    version = ""
    prefix = ""
    options = {"nfsstat": str, "exclude_metrics": list, "only_metrics": list}

    def _counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in run_command([self.cmd, "-l", "--all"]).splitlines():
            f = line.split()
            if len(f) == 5 and f[1] == self.version and f[2] == "client" and f[4].isdigit():
                out[f[3].rstrip(":")] = int(f[4])
        return out

    def init(self, now: float) -> None:
        self.cmd = find_command(self.cfg.get("nfsstat"), "nfsstat", self.where)
        try:
            self.last = self._counts()
        except CommandFailed as e:
            raise CollectorUnavailable(str(e)) from None
        if not self.last:
            raise CollectorUnavailable(f"nfsstat reports no NFS {self.version} client statistics")

    def read(self, now: float) -> list[Message]:
        counts = self._counts()
        out = []
        tags = {"type": "node"}
        for op, v in counts.items():
            prev = self.last.get(op)
            name = f"{self.prefix}_{op}"
            if prev is not None and v >= prev and op not in self.exclude and self.want(name):
                m = self.msg(name, tags, v - prev, now)
                m.meta["version"] = self.version
                out.append(m)
        self.last = counts
        return out


class Nfs3statCollector(_NfsCollector):
    name = "nfs3stat"
    source = "Nfs3Collector"
    group = "NFS"
    version, prefix = "v3", "nfs3"


class Nfs4statCollector(_NfsCollector):
    name = "nfs4stat"
    source = "Nfs4Collector"
    group = "NFS"
    version, prefix = "v4", "nfs4"


_DEVICE_RE = re.compile(r"device (\S+) mounted on (\S+) with fstype nfs\d* statvers=")
_NFSIO = ("nread", "nwrite", "dread", "dwrite", "nfsread", "nfswrite", "pageread", "pagewrite")


class NfsiostatCollector(Collector):
    name = "nfsiostat"
    source = "NfsIOStatCollector"
    group = "NFS"
    options = {"exclude_metrics": list, "only_metrics": list, "exclude_filesystem": list,
               "use_server_as_stype": bool, "send_abs_values": bool, "send_derived_values": bool}

    def _mounts(self) -> dict[str, list[int]]:
        """{mount point or server: the 8 byte counters}."""
        out: dict[str, list[int]] = {}
        current = None
        for line in self.read_text(self.file).splitlines():
            if line.startswith("device "):
                m = _DEVICE_RE.match(line)
                current = None if m is None else m.group(1 if self.by_server else 2)
                if current in self.skip_fs:
                    current = None
            elif current is not None and line.lstrip().startswith("bytes:"):
                try:
                    values = [int(x) for x in line.split()[1:9]]
                except ValueError:
                    continue
                if len(values) == 8:
                    out[current] = values
                current = None
        return out

    def init(self, now: float) -> None:
        self.file = self.need("proc/self/mountstats")
        self.by_server = self.cfg.get("use_server_as_stype", False)
        self.skip_fs = set(self.cfg.get("exclude_filesystem", ()))
        self.abs = self.cfg.get("send_abs_values", True)
        self.derived = self.cfg.get("send_derived_values", False)
        self.names = [(i, n, f"nfsio_{n}") for i, n in enumerate(_NFSIO)
                      if n not in self.exclude and self.want(f"nfsio_{n}")]
        self.rates = Rates()  # no NFS mount yet is fine: automounts come and go
        self._read(now, [])

    def _read(self, now: float, out: list[Message]) -> None:
        mounts = self._mounts()
        for fs, values in mounts.items():
            tags = {"type": "node", "stype": "filesystem", "stype-id": fs}
            for i, n, name in self.names:
                v = values[i]
                if self.abs:
                    out.append(self.msg(name, tags, v, now, "bytes"))
                r = self.rates.update((fs, n), v, now)
                if self.derived and r is not None:
                    out.append(self.msg(name + "_bw", tags, r, now,
                                        "4K_pages/s" if n.startswith("page") else "bytes/sec"))
        for k in [k for k in self.rates.last if k[0] not in mounts]:  # unmounted
            del self.rates.last[k]

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out
