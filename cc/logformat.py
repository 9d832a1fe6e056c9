"""One log line format for every process, and reading it back (the web UI's log view).

A record is ``2026-12-06T01:08:11.123Z WARNING web web.pages: message`` -- UTC time with
milliseconds, level, process name (``supervisor``, ``store``, ``web``, ``archiver``,
``ingest-N``, ...), logger name, message.  Lines that do not start that way (tracebacks,
a library printing to stderr) belong to the record before them.

The files are ``var/log/<process>.log`` (plus ``.log.1``, the rotated one); which process
names may be read is fixed by :data:`PROCESS_RE`, so no request can name another file.
"""

from __future__ import annotations

import calendar
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATEFMT = "%Y-%m-%dT%H:%M:%S"
FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s {process} %(name)s: %(message)s"
LINE_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                     r"([\w.-]+) ([^\s:]+): (.*)")
PROCESS_RE = re.compile(r"supervisor|forkserver|store|web|archiver|adapter|ingest-\d{1,4}")
# syslog priorities, as journald and cc-backend's log view number them
PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}
LEVEL_NAMES = {"crit": "CRITICAL", "critical": "CRITICAL", "err": "ERROR", "error": "ERROR", "warn": "WARNING",
               "warning": "WARNING", "info": "INFO", "debug": "DEBUG"}
READ_BYTES = 4 * 1024 * 1024  # at most this much of the end of each file is read per request


class UTCFormatter(logging.Formatter):
    converter = time.gmtime


def formatter(process: str) -> logging.Formatter:
    return UTCFormatter(FORMAT.format(process=process.replace("%", "")), DATEFMT)


def configure(process: str, level: int | str = logging.INFO) -> None:
    """Root logging to stderr in the common format (the supervisor sends children's stderr to their log file)."""
    if isinstance(level, str):
        level = getattr(logging, LEVEL_NAMES.get(level.lower(), level.upper()), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(process))
    logging.basicConfig(level=level, handlers=[handler], force=True)


@dataclass
class Entry:
    process: str
    time_us: int        # microseconds since the epoch (0: a line of unknown time)
    level: str
    logger: str
    message: str

    @property
    def priority(self) -> int:
        return PRIORITY.get(self.level, 6)

    def to_json(self) -> dict[str, Any]:
        """cc-backend's log entry (``timestamp`` in µs as a string, ``priority``, ``message``, ``unit``) and ours."""
        iso = time.strftime(DATEFMT, time.gmtime(self.time_us / 1e6)) + f".{self.time_us // 1000 % 1000:03d}Z"
        return {"timestamp": str(self.time_us), "priority": self.priority, "message": self.message,
                "unit": self.process, "process": self.process, "level": self.level, "logger": self.logger,
                "time": iso if self.time_us else None}


def parse(lines: Iterable[str], process: str) -> list[Entry]:
    """Records of one file in file order; continuation lines are appended to the record before them."""
    out: list[Entry] = []
    for line in lines:
        m = LINE_RE.fullmatch(line)
        if m is None:
            if out:
                out[-1].message += "\n" + line
            elif line.strip():
                out.append(Entry(process, 0, "INFO", "", line))
            continue
        secs = _timegm(m[1])
        out.append(Entry(process, secs * 1_000_000 + int(m[2]) * 1000, m[3], m[5], m[6]))
    return out


def _timegm(text: str) -> int:
    y, mo, d, h, mi, s = (int(x) for x in re.split(r"[-T:]", text))
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


def _tail(path: Path, limit: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if size > limit else lines  # the first line may be cut


def processes(log_dir: Path) -> list[str]:
    """Process names with a log file in ``log_dir`` (only names :data:`PROCESS_RE` allows)."""
    try:
        names = {p.name.split(".log")[0] for p in log_dir.iterdir() if p.name.endswith((".log", ".log.1"))}
    except FileNotFoundError:
        return []
    return sorted(n for n in names if PROCESS_RE.fullmatch(n))


def read(log_dir: Path, procs: list[str], *, min_priority: int | None = None, since_us: int = 0,
         until_us: int | None = None, after_us: int | None = None, search: str = "", limit: int = 200) -> list[Entry]:
    """The newest ``limit`` records of these processes matching the filters, newest first.

    ``min_priority``: records at this syslog priority or more severe (4 = warnings and
    worse); ``after_us``: only records of that time or newer (the follow mode asks with the
    newest time it shows and drops what it already has: times have millisecond resolution).  Every name must match :data:`PROCESS_RE` (ValueError otherwise).
    """
    needle = search.lower()
    found: list[tuple[int, int, Entry]] = []
    for proc in procs:
        if not PROCESS_RE.fullmatch(proc):
            raise ValueError(f"unknown process {proc!r}")
        for suffix in (".log.1", ".log"):
            for e in parse(_tail(log_dir / f"{proc}{suffix}", READ_BYTES), proc):
                if min_priority is not None and e.priority > min_priority:
                    continue
                if e.time_us < since_us or (until_us is not None and e.time_us > until_us):
                    continue
                if after_us is not None and e.time_us < after_us:
                    continue
                if needle and needle not in e.message.lower():
                    continue
                found.append((e.time_us, len(found), e))
    found.sort(key=lambda t: t[:2], reverse=True)  # within a millisecond: later lines first
    return [e for _, _, e in found[:limit]]
