"""``self`` (the agent's own health) and ``customcmd`` (line protocol from site commands and files).

``self``, as upstream's keys map onto a Python process (all default false, as upstream):
``read_mem_stats`` sends ``mem_rss``/``mem_rss_peak``/``mem_vms`` (Bytes, from
``/proc/self/status``) -- Go's heap statistics have no Python counterpart -- and ``heap_objects``
(memory blocks the interpreter's allocator holds, ``sys.getallocatedblocks``: cheap, unlike
walking the garbage collector's objects); ``read_goroutines`` sends ``num_threads`` (the process's
threads, the Python analogue of goroutines); ``read_rusage`` sends upstream's ``rusage_user_time``,
``rusage_system_time`` (seconds), ``rusage_vol_ctx_switch``, ``rusage_invol_ctx_switch``,
``rusage_signals``, ``rusage_major_pgfaults``, ``rusage_minor_pgfaults``.  ``read_cgo_calls`` has
no meaning here: true is a configuration error rather than silently sending nothing.

``customcmd`` runs each of ``commands`` (split on whitespace, no shell) and reads each of
``files`` every round, taking InfluxDB line protocol from them (numeric ``value`` field; the
round's timestamp replaces the line's).  Lines that do not parse are skipped (counted in one
log line per source and round); ``exclude_metrics`` drops by name.  A command or file that fails at
start is left out, as upstream.
"""

from __future__ import annotations

import logging
import re
import resource
import shlex
import sys
import threading

from cc.agent.collectors._base import AgentConfigError, Collector, CollectorUnavailable
from cc.agent.collectors._cmd import CommandFailed, run_command
from cc.agent.message import Message

log = logging.getLogger("agent.customcmd")

_STATUS = {"VmRSS": "mem_rss", "VmHWM": "mem_rss_peak", "VmSize": "mem_vms"}


class SelfCollector(Collector):
    name = "self"
    source = "SelfCollector"
    group = "Self"
    options = {"read_mem_stats": bool, "read_goroutines": bool, "read_cgo_calls": bool, "read_rusage": bool,
               "exclude_metrics": list, "only_metrics": list}

    def init(self, now: float) -> None:
        if self.cfg.get("read_cgo_calls"):
            raise AgentConfigError(f"{self.where}.read_cgo_calls: this agent is not a Go program (no cgo calls "
                                   "to count); remove the key or set it to false")
        self.mem = self.cfg.get("read_mem_stats", False)
        self.threads = self.cfg.get("read_goroutines", False)
        self.rusage = self.cfg.get("read_rusage", False)
        if not (self.mem or self.threads or self.rusage):
            raise CollectorUnavailable("none of read_mem_stats, read_goroutines, read_rusage is enabled")
        if self.mem:
            self.status = self.need("proc/self/status")

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        node = {"type": "node"}
        if self.mem:
            for line in self.read_text(self.status).splitlines():
                key, _, rest = line.partition(":")
                name = _STATUS.get(key)
                if name and self.want(name):
                    kb = rest.split()
                    out.append(self.msg(name, node, int(kb[0]) * 1024, now, "Bytes"))
            if self.want("heap_objects"):
                out.append(self.msg("heap_objects", node, sys.getallocatedblocks(), now))
        if self.threads and self.want("num_threads"):
            out.append(self.msg("num_threads", node, threading.active_count(), now))
        if self.rusage:
            r = resource.getrusage(resource.RUSAGE_SELF)
            for name, v, unit in (("rusage_user_time", r.ru_utime, "seconds"),
                                  ("rusage_system_time", r.ru_stime, "seconds"),
                                  ("rusage_vol_ctx_switch", r.ru_nvcsw, None),
                                  ("rusage_invol_ctx_switch", r.ru_nivcsw, None),
                                  ("rusage_signals", r.ru_nsignals, None),
                                  ("rusage_major_pgfaults", r.ru_majflt, None),
                                  ("rusage_minor_pgfaults", r.ru_minflt, None)):
                if self.want(name):
                    out.append(self.msg(name, node, v, now, unit))
        return out


_SPLIT_RE = re.compile(r"(?<!\\) ")
_COMMA_RE = re.compile(r"(?<!\\),")
_UNESCAPE_RE = re.compile(r"\\([ ,=\"\\])")


def parse_line(line: str) -> tuple[str, dict[str, str], float] | None:
    """(measurement, tags, value) of one line-protocol line with a numeric ``value`` field; None otherwise."""
    parts = _SPLIT_RE.split(line.strip(), maxsplit=2)
    if len(parts) < 2:
        return None
    head, fields = parts[0], parts[1]
    name, *tag_parts = _COMMA_RE.split(head)
    tags: dict[str, str] = {}
    for t in tag_parts:
        k, sep, v = t.partition("=")
        if not sep or not k or not v:
            return None
        tags[_UNESCAPE_RE.sub(r"\1", k)] = _UNESCAPE_RE.sub(r"\1", v)
    for f in _COMMA_RE.split(fields):
        k, sep, v = f.partition("=")
        if k == "value" and sep:
            v = v[:-1] if v[-1:] in ("i", "u") and v[:-1].lstrip("-").isdigit() else v
            try:
                return (_UNESCAPE_RE.sub(r"\1", name), tags, float(v)) if name else None
            except ValueError:
                return None
    return None


class CustomcmdCollector(Collector):
    name = "customcmd"
    source = "CustomCmdCollector"
    group = "Custom"
    options = {"commands": list, "files": list, "exclude_metrics": list, "only_metrics": list}

    def init(self, now: float) -> None:
        self.commands: list[list[str]] = []
        for c in self.cfg.get("commands", ()):
            argv = shlex.split(c)
            try:
                run_command(argv)
            except (CommandFailed, IndexError) as e:
                log.warning("customcmd: command %r left out: %s", c, e)
                continue
            self.commands.append(argv)
        self.files: list[str] = []
        for f in self.cfg.get("files", ()):
            try:
                self.read_text(self.path(f.lstrip("/")))
            except OSError as e:
                log.warning("customcmd: file %r left out: %s", f, e.strerror)
                continue
            self.files.append(f)
        if not self.commands and not self.files:
            raise CollectorUnavailable("no command or file of commands/files could be read")

    def _parse(self, text: str, source: str, now: float, out: list[Message]) -> None:
        bad = 0
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            p = parse_line(line)
            if p is None:
                bad += 1
            elif self.want(p[0]):
                out.append(Message(p[0], p[1], dict(self.meta), p[2], now))
        if bad:
            log.warning("customcmd: %s: %d line(s) not in line protocol with a numeric value field", source, bad)

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        for argv in self.commands:
            try:
                self._parse(run_command(argv), argv[0], now, out)
            except CommandFailed as e:
                log.warning("customcmd: %s", e)
        for f in self.files:
            try:
                self._parse(self.read_text(self.path(f.lstrip("/"))), f, now, out)
            except OSError as e:
                log.warning("customcmd: %s: %s", f, e.strerror)
        return out
