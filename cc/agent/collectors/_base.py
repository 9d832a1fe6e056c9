"""What every collector shares: its configuration check, the root directory, counters to rates.

A collector reads files below ``root`` (``/`` normally; a copy of /proc and /sys in tests),
so ``path("proc/stat")`` is ``root/proc/stat``.  ``init()`` takes the first readings
(at ``now``; rates need a previous value) and raises :class:`CollectorUnavailable` when the machine
lacks what the collector reads -- the agent then logs that and carries on without it, as
cc-metric-collector does.  ``read(now)`` returns one round of messages stamped ``now``;
rates divide by the difference of the ``now`` values, so tests get exact numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cc.agent.message import Message

__all__ = ["AgentConfigError", "CollectorUnavailable", "Collector", "Context", "Rates"]


class AgentConfigError(ValueError):
    """Bad agent configuration; the message names the key."""


class CollectorUnavailable(Exception):
    """This machine lacks what the collector reads (no GPU, no cpufreq in sysfs...)."""


@dataclass
class Context:
    """What collectors need to know about the agent."""

    root: Path = Path("/")
    standard: bool = True        # also emit the ClusterCockpit standard metrics
    active: frozenset[str] = frozenset()  # names of all configured collectors
    started: set[str] = field(default_factory=set)  # the ones that initialised (filled by the agent)
    duration: float = 1.0        # main.duration: how long a measuring collector (likwid) measures


class Rates:
    """Per-second rates of monotonic counters from one reading to the next."""

    def __init__(self) -> None:
        self.last: dict[Any, tuple[float, float]] = {}

    def update(self, key: Any, value: float, now: float) -> float | None:
        """The rate since the previous reading of ``key``; None first, after a reset, or for dt <= 0."""
        prev = self.last.get(key)
        self.last[key] = (value, now)
        if prev is None:
            return None
        dv, dt = value - prev[0], now - prev[1]
        if dt <= 0 or dv < 0:
            return None
        return dv / dt

    def update_wrapping(self, key: Any, value: float, now: float, wrap: float) -> float | None:
        """Like :meth:`update` for a counter that restarts at 0 after ``wrap`` (RAPL's max_energy_range_uj).

        A smaller reading is taken as one wrap-around when ``wrap`` > 0; otherwise as a reset (None).
        """
        prev = self.last.get(key)
        self.last[key] = (value, now)
        if prev is None:
            return None
        dv, dt = value - prev[0], now - prev[1]
        if dv < 0 and wrap > 0:
            dv += wrap
        if dt <= 0 or dv < 0:
            return None
        return dv / dt


class Collector:
    """Base class; subclasses set ``name``, ``source``, ``group`` and ``options``."""

    name: ClassVar[str] = ""
    source: ClassVar[str] = ""
    group: ClassVar[str] = ""
    #: accepted configuration keys -> expected type(s)
    options: ClassVar[dict[str, type | tuple[type, ...]]] = {"exclude_metrics": list}
    #: list options whose items are objects (checked by the collector), not strings
    object_lists: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, cfg: dict[str, Any] | None, ctx: Context):
        cfg = cfg or {}
        where = f"collectors.{self.name}"
        if not isinstance(cfg, dict):
            raise AgentConfigError(f"{where}: expected an object, got {type(cfg).__name__}")
        options = {"only_metrics": list, **self.options}  # every collector takes only_metrics
        for k, v in cfg.items():
            if k not in options:
                known = ", ".join(sorted(options)) or "none"
                raise AgentConfigError(f"{where}: unknown key {k!r} (known: {known})")
            if not isinstance(v, options[k]) or isinstance(v, bool) and options[k] is not bool:
                raise AgentConfigError(f"{where}.{k}: expected {_type_name(options[k])}, got {v!r}")
            if isinstance(v, list) and k not in self.object_lists and not all(isinstance(x, str) for x in v):
                raise AgentConfigError(f"{where}.{k}: expected a list of strings, got {v!r}")
        self.cfg = cfg
        self.where = where
        self.ctx = ctx
        self.root = ctx.root
        self.exclude = frozenset(cfg.get("exclude_metrics", ()))
        only = cfg.get("only_metrics")
        self.only = frozenset(only) if only is not None else None
        self.meta = {"source": self.source, "group": self.group}

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read_text(self, rel: str | Path) -> str:
        p = rel if isinstance(rel, Path) else self.path(rel)
        with open(p, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def need(self, rel: str) -> Path:
        p = self.path(rel)
        if not os.access(p, os.R_OK):
            raise CollectorUnavailable(f"cannot read {p}")
        return p

    def want(self, metric: str) -> bool:
        """Not in ``exclude_metrics`` and, when ``only_metrics`` is given, listed there."""
        return metric not in self.exclude and (self.only is None or metric in self.only)

    def msg(self, name: str, tags: dict[str, str], value: float | int, now: float,
            unit: str | None = None) -> Message:
        meta = dict(self.meta)
        if unit:
            meta["unit"] = unit
        return Message(name, dict(tags), meta, value, now)

    def init(self, now: float) -> None:
        """Check what this collector needs and take first readings (at wall-clock time ``now``)."""

    def read(self, now: float) -> list[Message]:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (libraries, handles)."""


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {list: "a list of strings", bool: "true or false", dict: "an object", str: "a string",
             int: "an integer", float: "a number"}
    ts = t if isinstance(t, tuple) else (t,)
    return " or ".join(names.get(x, x.__name__) for x in ts)
