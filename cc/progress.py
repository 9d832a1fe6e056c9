"""Progress of long CLI work: a bar with rate and ETA on a terminal, one summary line otherwise.

Every long operation (init-db, import-job, migrate-db, sync-ldap, history generation,
tagging, archive conversion, retention and compression) reports through the same callable,
``bar(done, total)``, so logs of cron jobs get one line per run and an operator at a
terminal sees how long is left.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}:{s % 60:02d}"


class ProgressBar:
    """``[#####.....]  45,000/100,000 jobs  12,345 jobs/s  ETA 0:04`` on a terminal.

    Not on a terminal (``stream.isatty()`` false), nothing until the work is done, then one
    line: ``100,000 jobs in 8.1s (12,345 jobs/s)``.  ``finish()`` writes that line (and
    ends the bar) early, for work that stops before ``done == total``; it is idempotent.
    """

    def __init__(self, stream: TextIO | None = None, what: str = "jobs", width: int = 30, *,
                 tty: bool | None = None, min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.what = what
        self.width = width
        self.started = time.perf_counter()
        self.tty = self._isatty() if tty is None else tty
        self.min_interval = min_interval
        self.done = 0
        self.total = 0
        self._drawn_at = -1.0
        self._finished = False

    def _isatty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):
            return False

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def rate(self) -> float:
        return self.done / max(1e-9, self.elapsed())

    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before the first unit is done."""
        if self.done <= 0 or self.total <= 0:
            return None
        return max(0, self.total - self.done) / max(1e-9, self.rate())

    def line(self) -> str:
        """The terminal bar as text (without carriage return)."""
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        eta = self.eta()
        bar = "#" * int(frac * self.width)
        return (f"[{bar:<{self.width}}] {frac:4.0%} {self.done:,}/{self.total:,} {self.what}  "
                f"{self.rate():,.0f} {self.what}/s  ETA {'-' if eta is None else _duration(eta)}")

    def summary(self) -> str:
        elapsed = self.elapsed()
        of = f"{self.done:,}" if self.done >= self.total else f"{self.done:,} of {self.total:,}"
        return f"{of} {self.what} in {elapsed:.1f}s ({self.rate():,.0f} {self.what}/s)"

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self._finished:
            return
        if done >= total:
            self.finish()
            return
        if not self.tty:
            return
        now = self.elapsed()
        if now - self._drawn_at < self.min_interval:
            return
        self._drawn_at = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()

    def finish(self) -> None:
        """End the bar: the final bar and a newline on a terminal, the summary line otherwise."""
        if self._finished:
            return
        self._finished = True
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line() + "\n")
        else:
            self.stream.write(self.summary() + "\n")
        self.stream.flush()

    def clear_line(self) -> None:
        """Wipe the bar so a message can be printed; the next update draws it again."""
        if self.tty and not self._finished:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn_at = -1.0
