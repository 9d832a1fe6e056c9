"""``likwid``: hardware performance counters through ``likwid-perfctr``, with upstream's event-set configuration.

Each of ``eventsets`` (``events``: counter -> event, ``metrics``: ``name``, ``calc``, ``type``
``hwthread``/``socket``, ``publish``, ``unit``, ``send_core|socket|node_total_values``) is measured
in turn for ``main.duration`` by ``likwid-perfctr -C <all hwthreads> -g EVENT:COUNTER,... -S <d> -O``
(the tool drives the counters in direct, accessdaemon or perf_event mode as it was built);
formulas see the counters, ``time`` (the measured seconds) and ``inverseClock`` (1 / base
clock).  ``globalmetrics`` combine event-set metrics by name.  ``socket`` metrics use the
socket's first hwthread, where LIKWID reports uncore and energy counters.  NaN/Inf results
are dropped, or sent as 0 with ``invalid_to_zero``; ``publish: false`` metrics only feed
global metrics.

Upstream links liblikwid itself; here ``liblikwid_path`` goes into the tool's library search
path, ``force_overwrite`` is ``-f`` and ``access_mode`` ``direct``/``accessdaemon`` is ``-M 0/1``.
``accessdaemon_path`` and a ``lockfile_path`` other than LIKWID's default cannot be passed to
the tool and are configuration errors.  ``likwid_perfctr_path`` (ours) names the tool.

Without the tool the collector is off with one message saying whether the machine has
hardware counters at all (a ``cpu`` PMU in ``/sys/bus/event_source/devices``: virtual
machines usually have none); when the tool fails (counters in use, no access), that is logged
once, the round sends nothing, and the next success is logged again.
"""

from __future__ import annotations

import ast
import logging
import math
import operator
import os
import re
from collections.abc import Callable
from typing import Any

from cc.agent.collectors._base import AgentConfigError, Collector, CollectorUnavailable
from cc.agent.collectors._cmd import CommandFailed, find_command, run_command
from cc.agent.collectors.cpu import Topology
from cc.agent.message import Message

log = logging.getLogger("agent.likwid")

DEFAULT_LOCKFILE = "/var/run/likwid.lock"
_METRIC_KEYS = {"name": str, "calc": str, "type": str, "publish": bool, "unit": str,
                "send_core_total_values": bool, "send_socket_total_values": bool, "send_node_total_values": bool}
_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow}
Formula = Callable[[dict[str, float]], float]


def compile_formula(text: str, names: set[str], where: str) -> Formula:
    """An arithmetic formula over ``names`` (``+ - * / **``, parentheses, numbers); never ``eval``."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        raise AgentConfigError(f"{where}: cannot parse {text!r}: {e.msg}") from None

    def build(n: ast.AST) -> Formula:
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float) and not isinstance(n.value, bool):
            v = float(n.value)
            return lambda env: v
        if isinstance(n, ast.Name):
            if n.id not in names:
                raise AgentConfigError(f"{where}: unknown name {n.id!r} in {text!r} (known: {', '.join(sorted(names))})")
            name = n.id
            return lambda env: env.get(name, math.nan)
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            op, a, b = _OPS[type(n.op)], build(n.left), build(n.right)

            def binop(env: dict[str, float]) -> float:
                try:
                    return op(a(env), b(env))
                except (ZeroDivisionError, OverflowError):
                    return math.nan
            return binop
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub | ast.UAdd):
            inner, sign = build(n.operand), -1.0 if isinstance(n.op, ast.USub) else 1.0
            return lambda env: sign * inner(env)
        raise AgentConfigError(f"{where}: {text!r}: only numbers, names, + - * / ** and parentheses")
    return build(tree)


class Metric:
    def __init__(self, cfg: Any, names: set[str], where: str):
        if not isinstance(cfg, dict):
            raise AgentConfigError(f"{where}: expected an object, got {cfg!r}")
        for k, v in cfg.items():
            if k not in _METRIC_KEYS:
                raise AgentConfigError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(_METRIC_KEYS))})")
            if not isinstance(v, _METRIC_KEYS[k]):
                raise AgentConfigError(f"{where}.{k}: expected {_METRIC_KEYS[k].__name__}, got {v!r}")
        for k in ("name", "calc", "type"):
            if k not in cfg:
                raise AgentConfigError(f"{where}: {k!r} is required")
        if cfg["type"] not in ("hwthread", "socket"):
            raise AgentConfigError(f"{where}.type: expected 'hwthread' or 'socket', got {cfg['type']!r}")
        self.name: str = cfg["name"]
        self.type: str = cfg["type"]
        self.publish: bool = cfg.get("publish", False)
        self.unit: str | None = cfg.get("unit") or None
        self.totals = {t for t in ("core", "socket", "node") if cfg.get(f"send_{t}_total_values")}
        self.formula = compile_formula(cfg["calc"], names, f"{where}.calc")


class LikwidCollector(Collector):
    name = "likwid"
    source = "LikwidCollector"
    group = "PerfCounter"
    options = {"eventsets": list, "globalmetrics": list, "force_overwrite": bool, "invalid_to_zero": bool,
               "access_mode": str, "accessdaemon_path": str, "liblikwid_path": str, "lockfile_path": str,
               "likwid_perfctr_path": str, "exclude_metrics": list, "only_metrics": list}
    object_lists = frozenset({"eventsets", "globalmetrics"})

    def __init__(self, cfg: dict[str, Any] | None, ctx: Any):
        super().__init__(cfg, ctx)
        c, w = self.cfg, self.where
        if "accessdaemon_path" in c:
            raise AgentConfigError(f"{w}.accessdaemon_path: likwid-perfctr uses the access daemon it was built "
                                   "with; remove the key")
        if c.get("lockfile_path", DEFAULT_LOCKFILE) != DEFAULT_LOCKFILE:
            raise AgentConfigError(f"{w}.lockfile_path: likwid-perfctr always uses {DEFAULT_LOCKFILE}")
        if c.get("access_mode", "perf_event") not in ("direct", "accessdaemon", "perf_event"):
            raise AgentConfigError(f"{w}.access_mode: expected 'direct', 'accessdaemon' or 'perf_event', "
                                   f"got {c['access_mode']!r}")
        if not c.get("eventsets"):
            raise AgentConfigError(f"{w}.eventsets: at least one event set is required")
        self.eventsets: list[tuple[dict[str, str], list[Metric]]] = []
        produced: set[str] = set()
        for i, es in enumerate(c["eventsets"]):
            ew = f"{w}.eventsets[{i}]"
            if not isinstance(es, dict) or set(es) - {"events", "metrics"}:
                raise AgentConfigError(f"{ew}: expected an object with 'events' and 'metrics'")
            events = es.get("events")
            if not isinstance(events, dict) or not events or not all(
                    isinstance(k, str) and isinstance(v, str) and k and v for k, v in events.items()):
                raise AgentConfigError(f"{ew}.events: expected an object counter -> event")
            names = set(events) | {"time", "inverseClock"}
            metrics = [Metric(m, names, f"{ew}.metrics[{j}]") for j, m in enumerate(es.get("metrics") or [])]
            produced |= {m.name for m in metrics}
            self.eventsets.append((events, metrics))
        self.globals = [Metric(m, produced, f"{w}.globalmetrics[{j}]")
                        for j, m in enumerate(c.get("globalmetrics") or [])]

    def init(self, now: float) -> None:
        try:
            tool = find_command(self.cfg.get("likwid_perfctr_path"), "likwid-perfctr", self.where)
        except CollectorUnavailable as e:
            pmu = self.path("sys/bus/event_source/devices/cpu").exists()
            raise CollectorUnavailable(
                f"{e}; " + ("this machine has hardware counters (a cpu PMU), install LIKWID to read them" if pmu
                            else "this machine exposes no hardware performance counters (no cpu PMU in "
                                 "/sys/bus/event_source/devices, usual in virtual machines)")) from None
        topo = Topology(self)
        if not topo.core:
            raise CollectorUnavailable("no hwthreads in sysfs or /proc/cpuinfo")
        self.cpus = sorted(topo.core)
        self.socket = {cpu: topo.package(cpu) for cpu in self.cpus}
        self.socket_first = {}
        for cpu in self.cpus:
            self.socket_first.setdefault(self.socket[cpu], cpu)
        cores = sorted({topo.core[c][0] for c in self.cpus}, key=lambda k: tuple(int(x) for x in k.split(":")))
        self.core_of = {cpu: str(cores.index(topo.core[cpu][0])) for cpu in self.cpus}
        self.argv = [tool, "-C", ",".join(map(str, self.cpus))]
        if self.cfg.get("force_overwrite"):
            self.argv.append("-f")
        mode = self.cfg.get("access_mode")
        if mode in ("direct", "accessdaemon"):
            self.argv += ["-M", "0" if mode == "direct" else "1"]
        self.env = None
        if "liblikwid_path" in self.cfg:
            libdir = os.path.dirname(self.cfg["liblikwid_path"]) or "."
            self.env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(
                x for x in (libdir, os.environ.get("LD_LIBRARY_PATH")) if x)}
        self.failing = False
        self.to_zero = self.cfg.get("invalid_to_zero", False)

    def _measure(self, events: dict[str, str]) -> tuple[dict[int, dict[str, float]], float]:
        """Counter values per hwthread and the inverse clock of one event set's measurement."""
        group = ",".join(f"{ev}:{ctr}" for ctr, ev in events.items())
        ms = max(1, round(self.ctx.duration * 1000))
        text = run_command([*self.argv, "-g", group, "-S", f"{ms}ms", "-O"],
                           timeout=self.ctx.duration + 30, env=self.env)
        return parse_perfctr_csv(text)

    def _value(self, v: float) -> float | None:
        if math.isfinite(v):
            return v
        return 0.0 if self.to_zero else None

    def read(self, now: float) -> list[Message]:
        out: list[Message] = []
        results: dict[int, dict[str, float]] = {cpu: {} for cpu in self.cpus}
        for events, metrics in self.eventsets:
            try:
                counters, inv_clock = self._measure(events)
            except CommandFailed as e:
                if not self.failing:
                    log.warning("likwid: measuring failed, sending no counter metrics until it works: %s", e)
                self.failing = True
                return []
            for m in metrics:
                values = {}
                for cpu in self.cpus:
                    env = {**counters.get(cpu, {}), "inverseClock": inv_clock}
                    env.setdefault("time", self.ctx.duration)
                    values[cpu] = m.formula(env)
                    results[cpu][m.name] = values[cpu]
                self._emit(m, values, now, out)
        if self.failing:
            log.info("likwid: measuring works again")
            self.failing = False
        for m in self.globals:
            self._emit(m, {cpu: m.formula(results[cpu]) for cpu in self.cpus}, now, out)
        return out

    def _emit(self, m: Metric, values: dict[int, float], now: float, out: list[Message]) -> None:
        if not m.publish or not self.want(m.name):
            return
        if m.type == "socket":
            for sock, cpu in self.socket_first.items():
                if (v := self._value(values[cpu])) is not None:
                    out.append(self.msg(m.name, {"type": "socket", "type-id": sock}, v, now, m.unit))
            return
        sums: dict[tuple[str, str], float] = {}
        for cpu in self.cpus:
            v = self._value(values[cpu])
            if v is None:
                continue
            out.append(self.msg(m.name, {"type": "hwthread", "type-id": str(cpu)}, v, now, m.unit))
            for scope, tid in (("core", self.core_of[cpu]), ("socket", self.socket[cpu]), ("node", "")):
                if scope in m.totals:
                    sums[(scope, tid)] = sums.get((scope, tid), 0.0) + v
        for (scope, tid), v in sums.items():
            tags = {"type": scope} if scope == "node" else {"type": scope, "type-id": tid}
            out.append(self.msg(m.name, tags, v, now, m.unit))


_CLOCK_RE = re.compile(r"^CPU clock:,([\d.]+) GHz", re.M)


def parse_perfctr_csv(text: str) -> tuple[dict[int, dict[str, float]], float]:
    """From ``likwid-perfctr -O`` output: {hwthread: {counter (and ``time``): value}}, 1/clock."""
    m = _CLOCK_RE.search(text)
    inv_clock = 1.0 / (float(m.group(1)) * 1e9) if m and float(m.group(1)) > 0 else math.nan
    out: dict[int, dict[str, float]] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if not (line.startswith("TABLE,") and " Raw," in line and "Raw STAT" not in line):
            continue
        header = next(lines, "").split(",")
        if header[:2] != ["Event", "Counter"]:
            continue
        cpus = [int(h.split()[1]) if h.startswith("HWThread ") else None for h in header[2:]]
        for row in lines:
            if row.startswith(("TABLE,", "STRUCT,")):
                break
            f = row.split(",")
            if len(f) < 2:
                continue
            key = "time" if f[1] == "TSC" else f[1]
            for cpu, raw in zip(cpus, f[2:], strict=False):
                if cpu is None:
                    continue
                try:
                    out.setdefault(cpu, {})[key] = float(raw)
                except ValueError:
                    out.setdefault(cpu, {})[key] = math.nan
        break
    if not out:
        raise CommandFailed("likwid-perfctr printed no raw counter table")
    return out, inv_clock
