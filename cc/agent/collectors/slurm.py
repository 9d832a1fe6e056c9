"""``slurm_cgroup``: memory and CPU of running Slurm jobs from their cgroups, per hwthread.

cgroup v2 (``sys/fs/cgroup/cgroup.controllers`` exists): the job directories ``job_<id>`` below
``cgroup_base`` (default ``/sys/fs/cgroup/system.slice/slurmstepd.scope``) with ``memory.current``,
``memory.peak``, ``memory.max``, ``cpu.stat`` (``user_usec``, ``system_usec``) and
``cpuset.cpus.effective`` (or ``cpuset.cpus``).  cgroup v1 (no ``cgroup_base`` configured, no v2):
Slurm's ``slurm/uid_<uid>/job_<id>`` directories under the ``memory``, ``cpuacct`` and ``cpuset``
controllers (``memory.usage_in_bytes``, ``memory.max_usage_in_bytes``, ``memory.limit_in_bytes``,
``cpuacct.stat`` in clock ticks, ``cpuset.cpus``).

Each of the job's hwthreads gets the job's value divided by its hwthread count, as upstream:
``job_mem_used``, ``job_max_mem_used``, ``job_mem_limit`` (Bytes; no limit -- ``max`` -- sends
no ``job_mem_limit``), ``job_user_cpu``, ``job_sys_cpu`` (%).  Unlike upstream, which sends the
user/system split of all CPU time the job ever used, the CPU metrics are the utilisation since
the previous round (CPU time over wall time, so a job keeping all its hwthreads busy in user mode
shows 100 on each); a job's first round has none.  Every metric carries ``job_id``; hwthreads
of ``/sys/devices/system/cpu/online`` without a job get 0 (no ``job_id``), as upstream.
``use_sudo`` reads the files through ``sudo -n cat`` for an agent that does not run as root.
"""

from __future__ import annotations

import os
import re
import subprocess

from cc.agent.collectors._base import Collector, CollectorUnavailable, Rates
from cc.agent.message import Message

DEFAULT_BASE = "/sys/fs/cgroup/system.slice/slurmstepd.scope"
_JOB_RE = re.compile(r"^job_(\d+)$")
_METRICS = ("job_mem_used", "job_max_mem_used", "job_mem_limit", "job_user_cpu", "job_sys_cpu")
_UNITS = {"job_user_cpu": "%", "job_sys_cpu": "%"}
_CLK = os.sysconf("SC_CLK_TCK")


def parse_cpus(text: str) -> list[int]:
    """A cpuset list (``0-3,8,10-11``) as numbers; ValueError when malformed."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if sep else (int(lo),))
    return out


class SlurmCgroupCollector(Collector):
    name = "slurm_cgroup"
    source = "SlurmCgroupCollector"
    group = "SLURM"
    options = {"cgroup_base": str, "exclude_metrics": list, "only_metrics": list, "use_sudo": bool}

    def _cat(self, path: str) -> str:
        if self.cfg.get("use_sudo"):
            p = subprocess.run(["sudo", "-n", "cat", path], capture_output=True, timeout=5, check=False)
            if p.returncode != 0:
                raise OSError(f"sudo cat {path}: {p.stderr.decode(errors='replace').strip()}")
            return p.stdout.decode("utf-8", "replace")
        return self.read_text(path)

    def _number(self, path: str) -> float | None:
        try:
            return float(self._cat(path).strip())
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None

    def init(self, now: float) -> None:
        try:
            self.cpus = parse_cpus(self.read_text("sys/devices/system/cpu/online"))
        except (OSError, ValueError) as e:
            raise CollectorUnavailable(f"cannot read the online CPUs: {e}") from None
        base = self.cfg.get("cgroup_base")
        if base is None and not self.path("sys/fs/cgroup/cgroup.controllers").exists() \
                and self.path("sys/fs/cgroup/memory/slurm").is_dir():
            self.v2 = False
            self.base = str(self.path("sys/fs/cgroup"))
        else:
            self.v2 = True
            self.base = str(self.path((base or DEFAULT_BASE).lstrip("/")))
            if not os.path.isdir(self.base):
                raise CollectorUnavailable(f"no Slurm job cgroups: {self.base} is not a directory")
        self.rates = Rates()
        self._read(now, [])

    def _jobs(self) -> list[tuple[str, dict[str, str]]]:
        """(job id, {role: directory}) of the running jobs."""
        if self.v2:
            return [(m.group(1), {"all": f"{self.base}/{n}"}) for n in sorted(os.listdir(self.base))
                    if (m := _JOB_RE.match(n))]
        jobs: dict[str, dict[str, str]] = {}
        for ctl in ("memory", "cpuacct", "cpuset"):
            top = f"{self.base}/{ctl}/slurm"
            try:
                users = sorted(u for u in os.listdir(top) if u.startswith("uid_"))
            except OSError:
                continue
            for u in users:
                try:
                    names = sorted(os.listdir(f"{top}/{u}"))
                except OSError:  # the user's last job ended while we looked
                    continue
                for n in names:
                    if m := _JOB_RE.match(n):
                        jobs.setdefault(m.group(1), {})[ctl] = f"{top}/{u}/{n}"
        return sorted(jobs.items(), key=lambda kv: int(kv[0]))

    def _job(self, dirs: dict[str, str]) -> tuple[dict[str, float | None], float | None, float | None, list[int]]:
        """Memory values, user and system CPU seconds, and the cpuset of one job."""
        user = system = None
        if self.v2:
            d = dirs["all"]
            limit_text = self._text(f"{d}/memory.max")
            mem = {"job_mem_used": self._number(f"{d}/memory.current"),
                   "job_max_mem_used": self._number(f"{d}/memory.peak"),
                   "job_mem_limit": None if limit_text in (None, "max") else _float(limit_text)}
            stat = _keyed(self._text(f"{d}/cpu.stat"))
            if "user_usec" in stat and "system_usec" in stat:
                user, system = stat["user_usec"] * 1e-6, stat["system_usec"] * 1e-6
            cpus = self._text(f"{d}/cpuset.cpus.effective") or self._text(f"{d}/cpuset.cpus")
        else:
            m, c, s = dirs.get("memory"), dirs.get("cpuacct"), dirs.get("cpuset")
            limit = self._number(f"{m}/memory.limit_in_bytes") if m else None
            mem = {"job_mem_used": self._number(f"{m}/memory.usage_in_bytes") if m else None,
                   "job_max_mem_used": self._number(f"{m}/memory.max_usage_in_bytes") if m else None,
                   # v1 "no limit" is a huge page-aligned number (PAGE_COUNTER_MAX pages)
                   "job_mem_limit": limit if limit is not None and limit < 2**62 else None}
            stat = _keyed(self._text(f"{c}/cpuacct.stat")) if c else {}
            if "user" in stat and "system" in stat:
                user, system = stat["user"] / _CLK, stat["system"] / _CLK
            cpus = self._text(f"{s}/cpuset.cpus") if s else None
        try:
            cpuset = parse_cpus(cpus or "")
        except ValueError:
            cpuset = []
        return mem, user, system, cpuset

    def _text(self, path: str) -> str | None:
        try:
            return self._cat(path).strip()
        except (OSError, subprocess.TimeoutExpired):
            return None

    def _read(self, now: float, out: list[Message]) -> None:
        busy: set[int] = set()
        seen: set[str] = set()
        try:
            jobs = self._jobs()
        except OSError:
            jobs = []
        for job, dirs in jobs:
            mem, user, system, cpuset = self._job(dirs)
            seen.add(job)
            values = dict(mem)
            for what, secs in (("job_user_cpu", user), ("job_sys_cpu", system)):
                r = self.rates.update((job, what), secs, now) if secs is not None else None
                values[what] = None if r is None or not cpuset else r * 100.0 / len(cpuset)
            if not cpuset:
                continue
            n = len(cpuset)
            for cpu in cpuset:
                busy.add(cpu)
                tags = {"type": "hwthread", "type-id": str(cpu), "job_id": job}
                for name in _METRICS:
                    v = values[name]
                    if v is not None and self.want(name):
                        per = v / n if name not in _UNITS else v
                        out.append(self.msg(name, tags, per, now, _UNITS.get(name, "Bytes")))
        for key in [k for k in self.rates.last if k[0] not in seen]:  # ended jobs
            del self.rates.last[key]
        for cpu in self.cpus:
            if cpu in busy:
                continue
            tags = {"type": "hwthread", "type-id": str(cpu)}
            for name in _METRICS:
                if self.want(name):
                    out.append(self.msg(name, tags, 0, now, _UNITS.get(name, "Bytes")))

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        self._read(now, out)
        return out


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _keyed(text: str | None) -> dict[str, float]:
    """``key value`` lines as a dict of numbers."""
    out: dict[str, float] = {}
    for line in (text or "").splitlines():
        p = line.split()
        if len(p) == 2:
            try:
                out[p[0]] = float(p[1])
            except ValueError:
                continue
    return out
