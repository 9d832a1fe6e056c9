"""Parallel file systems: ``gpfs`` (mmpmon) and ``beegfs_meta``/``beegfs_storage`` (beegfs-ctl clientstats).

``gpfs`` feeds ``once fs_io_s`` to ``mmpmon -p -s`` and reads its ``_fs_io_s_`` lines (key/value
pairs; ``_rc_`` 0 only) per ``filesystem``: ``send_abs_values`` (here the default; upstream sends
nothing without a switch) the counters ``gpfs_bytes_read``, ``gpfs_bytes_written``,
``gpfs_num_opens``, ``gpfs_num_closes``, ``gpfs_num_reads``, ``gpfs_num_writes``,
``gpfs_num_readdirs``, ``gpfs_num_inode_updates``; ``send_diff_values`` their ``_diff``;
``send_derived_values`` the rates ``gpfs_bw_read``, ``gpfs_bw_write``, ``gpfs_opens_rate``,
``gpfs_closes_rate``, ``gpfs_reads_rate``, ``gpfs_writes_rate``, ``gpfs_readdirs_rate``,
``gpfs_inode_updates_rate`` (``send_bandwidths`` only the two bandwidths); ``send_total_values``
adds ``gpfs_bytes_total``, ``gpfs_iops`` (reads + writes) and ``gpfs_metaops`` (opens, closes,
readdirs, inode updates) in each of those forms (``gpfs_bw_total``, ``gpfs_iops_rate``...).
Rates divide by mmpmon's own timestamps (``_t_``, ``_tu_``).  A counter that went down (file
system remounted) gives no difference or rate that round.

``beegfs_meta``/``beegfs_storage`` run ``beegfs-ctl --clientstats --nodetype=meta|storage
--mount=<mp> --allstats`` for each BeeOND mount in /proc/mounts (device ``beegfs_ondemand``)
and send the ``Sum:`` line's counts as ``beegfs_cmeta_<op>``/``beegfs_cstorage_<op>``; operations
listed in ``exclude_metrics`` (or unknown ones) are added up in ``..._other``.
"""

from __future__ import annotations

import re

from cc.agent.collectors._base import Collector, CollectorUnavailable, Rates
from cc.agent.collectors._cmd import CommandFailed, find_command, run_command
from cc.agent.message import Message

#: mmpmon key -> (counter metric, rate metric, unit)
_GPFS = {
    "_br_": ("gpfs_bytes_read", "gpfs_bw_read", "bytes"),
    "_bw_": ("gpfs_bytes_written", "gpfs_bw_write", "bytes"),
    "_oc_": ("gpfs_num_opens", "gpfs_opens_rate", "requests"),
    "_cc_": ("gpfs_num_closes", "gpfs_closes_rate", "requests"),
    "_rdc_": ("gpfs_num_reads", "gpfs_reads_rate", "requests"),
    "_wc_": ("gpfs_num_writes", "gpfs_writes_rate", "requests"),
    "_dir_": ("gpfs_num_readdirs", "gpfs_readdirs_rate", "requests"),
    "_iu_": ("gpfs_num_inode_updates", "gpfs_inode_updates_rate", "requests"),
}
_GPFS_TOTALS = {
    "bytesTotal": (("_br_", "_bw_"), "gpfs_bytes_total", "gpfs_bw_total", "bytes"),
    "iops": (("_rdc_", "_wc_"), "gpfs_iops", "gpfs_iops_rate", "requests"),
    "metaops": (("_oc_", "_cc_", "_dir_", "_iu_"), "gpfs_metaops", "gpfs_metaops_rate", "requests"),
}


def parse_mmpmon(text: str) -> list[dict[str, str]]:
    """The ``_fs_io_s_`` records of ``mmpmon -p`` output as key/value dicts."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == "_fs_io_s_":
            out.append(dict(zip(f[1::2], f[2::2], strict=False)))
    return out


class GpfsCollector(Collector):
    name = "gpfs"
    source = "GpfsCollector"
    group = "GPFS"
    options = {"mmpmon_path": str, "use_sudo": bool, "exclude_filesystem": list, "exclude_metrics": list,
               "only_metrics": list, "send_abs_values": bool, "send_diff_values": bool,
               "send_derived_values": bool, "send_total_values": bool, "send_bandwidths": bool}

    def init(self, now: float) -> None:
        c = self.cfg
        self.mmpmon = find_command(c.get("mmpmon_path"), "mmpmon", self.where)
        self.sudo = [find_command(None, "sudo", self.where), "-n"] if c.get("use_sudo") else []
        self.abs = c.get("send_abs_values", True)
        self.diff = c.get("send_diff_values", False)
        self.derived = c.get("send_derived_values", False)
        self.bandwidths = self.derived or c.get("send_bandwidths", False)
        self.totals = c.get("send_total_values", False)
        self.skip = set(c.get("exclude_filesystem", ()))
        self.rates = Rates()
        self.last: dict[tuple[str, str], int] = {}
        try:
            self._read(now, [])
        except CommandFailed as e:
            raise CollectorUnavailable(str(e)) from None

    def _emit(self, out: list[Message], tags: dict[str, str], fs: str, key: str, v: int, t: float, now: float,
              names: tuple[str, str, str], bandwidth: bool, total: bool) -> None:
        counter, rate, unit = names
        wanted = self.totals or not total  # the sums only with send_total_values
        if self.abs and wanted and self.want(counter):
            out.append(self.msg(counter, tags, v, now, unit))
        prev = self.last.get((fs, key))
        self.last[(fs, key)] = v
        if self.diff and wanted and prev is not None and v >= prev and self.want(counter + "_diff"):
            out.append(self.msg(counter + "_diff", tags, v - prev, now, unit))
        r = self.rates.update((fs, key), v, t)
        send_rate = (self.derived and wanted) or (bandwidth and self.bandwidths)
        if r is not None and send_rate and self.want(rate):
            out.append(self.msg(rate, tags, r, now, unit + "/sec"))

    def _read(self, now: float, out: list[Message]) -> None:
        text = run_command([*self.sudo, self.mmpmon, "-p", "-s"], stdin=b"once fs_io_s\n")
        for rec in parse_mmpmon(text):
            fs = rec.get("_fs_")
            if fs is None or fs in self.skip or rec.get("_rc_") != "0":
                continue
            try:
                t = int(rec["_t_"]) + int(rec["_tu_"]) * 1e-6
                values = {k: int(rec[k]) for k in _GPFS if k in rec}
            except (KeyError, ValueError):
                continue
            tags = {"type": "node", "filesystem": fs}
            for k, v in values.items():
                self._emit(out, tags, fs, k, v, t, now, _GPFS[k], k in ("_br_", "_bw_"), False)
            for k, (parts, counter, rate, unit) in _GPFS_TOTALS.items():
                if all(p in values for p in parts):
                    self._emit(out, tags, fs, k, sum(values[p] for p in parts), t, now, (counter, rate, unit),
                               k == "bytesTotal", True)

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out


_BEEGFS_META = (
    "sum", "ack", "close", "entInf", "fndOwn", "mkdir", "create", "rddir", "refrEnt", "mdsInf", "rmdir",
    "rmLnk", "mvDirIns", "mvFiIns", "open", "ren", "sChDrct", "sAttr", "sDirPat", "stat", "statfs", "trunc",
    "symlnk", "unlnk", "lookLI", "statLI", "revalLI", "openLI", "createLI", "hardlnk", "flckAp", "flckEn",
    "flckRg", "dirparent", "listXA", "getXA", "rmXA", "setXA", "mirror",
)
_BEEGFS_STORAGE = (
    "sum", "ack", "sChDrct", "getFSize", "sAttr", "statfs", "trunc", "close", "fsync", "ops-rd", "MiB-rd/s",
    "ops-wr", "MiB-wr/s", "gendbg", "hrtbeat", "remNode", "storInf", "unlnk",
)
_SUM_RE = re.compile(r"^Sum:\s+(.*)$", re.M)
_PAIR_RE = re.compile(r"([\d.]+)\s+\[([^\]]+)\]")


class _BeegfsCollector(Collector):
    options = {"beegfs_path": str, "exclude_filesystem": list, "exclude_metrics": list}
    nodetype = ""
    prefix = ""
    known: tuple[str, ...] = ()

    def init(self, now: float) -> None:
        self.ctl = find_command(self.cfg.get("beegfs_path"), "beegfs-ctl", self.where)
        self.skip = set(self.cfg.get("exclude_filesystem", ()))
        self.mounts_file = self.need("proc/mounts")
        self.sends = [op for op in self.known if op not in self.exclude]
        self.other = len(self.sends) < len(self.known)

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        for line in self.read_text(self.mounts_file).splitlines():
            f = line.split()
            if len(f) < 2 or "beegfs_ondemand" not in f[0] or f[1] in self.skip:
                continue
            try:
                text = run_command([self.ctl, "--clientstats", f"--nodetype={self.nodetype}", f"--mount={f[1]}",
                                    "--allstats"], stdin=b"\n")
            except CommandFailed:
                continue
            m = _SUM_RE.search(text)
            if m is None:
                continue
            values = {name: float(v) for v, name in _PAIR_RE.findall(m.group(1))}
            tags = {"type": "node", "filesystem": f[1]}
            for op in self.sends:
                out.append(self.msg(self.prefix + op, tags, values.get(op, 0.0), now))
            rest = [v for op, v in values.items() if op not in self.sends]
            if self.other or rest:
                out.append(self.msg(self.prefix + "other", tags, sum(rest), now))
        return out


class BeegfsMetaCollector(_BeegfsCollector):
    name = "beegfs_meta"
    source = "BeegfsMetaCollector"
    group = "BeegfsMeta"
    nodetype, prefix, known = "meta", "beegfs_cmeta_", _BEEGFS_META


class BeegfsStorageCollector(_BeegfsCollector):
    name = "beegfs_storage"
    source = "BeegfsStorageCollector"
    group = "BeegfsStorage"
    nodetype, prefix, known = "storage", "beegfs_cstorage_", _BEEGFS_STORAGE
