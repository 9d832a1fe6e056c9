"""The report as text: coloured bars on a terminal (rich), plain aligned lines when piped."""

from __future__ import annotations

import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

BAR_WIDTH = 30


def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.1f} {unit}"
    return f"{n:.0f} B"


def _rate(n: float | None, unit: str) -> str:
    if n is None:
        return "-"
    for p, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.2f} {p}{unit}"
    return f"{n:.2f} {unit}"


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:g}%"


def _duration(s: int) -> str:
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def _colour(pct: float, lower_is_better: bool = False) -> str:
    """Bar colour: utilisation wants high values; memory wants use without coming near the limit."""
    if lower_is_better:  # memory: red close to the limit, yellow when most of it lies idle
        return "red" if pct > 90 else ("yellow" if pct > 80 or pct < 25 else "green")
    return "green" if pct >= 50 else ("yellow" if pct >= 25 else "red")


def _rows(rep: dict[str, Any]) -> list[tuple[str, float | None, str, bool]]:
    """(label, percent for the bar, text, lower is better) for the overall part."""
    o = rep["overall"]
    rows = [("CPU utilisation", o["cpu"]["util_pct"], _pct(o["cpu"]["util_pct"]), False),
            ("Memory used", o["memory"]["pct"],
             f"{_bytes(o['memory']['used_bytes'])} of {_bytes(o['memory']['allocated_bytes'])} "
             f"({_pct(o['memory']['pct'])})", True)]
    if o["gpu"]:
        g = o["gpu"]
        rows += [(f"GPU utilisation ({g['count']} GPUs)", g["util_pct"], _pct(g["util_pct"]), False),
                 ("GPU memory used", g["mem_pct"],
                  f"{_bytes(g['mem_used_bytes'])} of {_bytes(g['mem_total_bytes'])} ({_pct(g['mem_pct'])})", True)]
    rows += [("Flop rate (flops_any)", o["flops"]["pct"],
              f"{_rate(o['flops']['value'], 'F/s')} of {_rate(o['flops']['peak'], 'F/s')} peak "
              f"({_pct(o['flops']['pct'])})", False),
             ("Memory bandwidth", o["mem_bw"]["pct"],
              f"{_rate(o['mem_bw']['value'], 'B/s')} of {_rate(o['mem_bw']['peak'], 'B/s')} peak "
              f"({_pct(o['mem_bw']['pct'])})", False)]
    return rows


def _header(rep: dict[str, Any], source: str) -> list[str]:
    j = rep["job"]
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["startTime"]))
    gpus = f", {j['numAcc']} GPUs" if j["numAcc"] else ""
    return [f"Job {j['jobId']} on {j['cluster']}/{j['subCluster']} (database id {j['id']}), {j['state']}, "
            f"data from the {source}",
            f"User {j['user']}, project {j['project'] or '-'}; started {start}, ran {_duration(j['duration'])}; "
            f"{j['numNodes']} nodes, {j['numHwthreads']} hardware threads{gpus}"]


def _energy_line(rep: dict[str, Any]) -> str:
    e = rep["overall"]["energy"]
    if e["kwh"] is None:
        return "Energy: no power metrics"
    co2 = (f", {e['co2_kg']:g} kg CO2 at {e['emission_constant_g_per_kwh']:g} g/kWh" if e["co2_kg"] is not None
           else " (CO2: main.emission-constant is not set)")
    return f"Energy: {e['kwh']:g} kWh{co2}"


def _node_table(rep: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    gpu = rep["overall"]["gpu"] is not None
    head = ["node", "CPU", "memory", "flops", "mem bw"] + (["GPU", "GPU mem"] if gpu else [])
    rows = []
    for n in rep["nodes"]:
        row = [n["hostname"], _pct(n["cpu_util_pct"]), f"{_bytes(n['mem_used_bytes'])} ({_pct(n['mem_pct'])})",
               _rate(n["flops"], "F/s"), _rate(n["mem_bw"], "B/s")]
        if gpu:
            row += [_pct(n.get("gpu_util_pct")), f"{_bytes(n.get('gpu_mem_used_bytes'))} ({_pct(n.get('gpu_mem_pct'))})"]
        rows.append(row)
    return head, rows


def render(rep: dict[str, Any], tags: list[dict[str, Any]], hints: list[str], source: str, stream: TextIO, *,
           tty: bool) -> None:
    """Write the report of one job; ``tty`` chooses rich's coloured bars over plain text."""
    roof = rep["overall"]["roofline"]
    tag_text = ", ".join(f"{t['type']}:{t['name']}" for t in tags) or "none"
    if not tty:
        w = stream.write
        for line in _header(rep, source):
            w(line + "\n")
        w("\n")
        for label, _, text, _ in _rows(rep):
            w(f"{label + ':':<30} {text}\n")
        w(f"{'Roofline:':<30} {roof['text'] if roof else 'no flop rate or bandwidth data'}\n")
        w(_energy_line(rep) + "\n")
        w(f"Tags: {tag_text}\n")
        for h in hints:
            w(f"Job class: {h}\n")
        head, rows = _node_table(rep)
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        w("\nPer node:\n")
        for r in [head, *rows]:
            w("  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() + "\n")
        if rep["advice"]:
            w("\nAdvice:\n")
            for a in rep["advice"]:
                w(f"  * {a}\n")
        return
    con = Console(file=stream, force_terminal=True, color_system="standard", width=110, highlight=False)
    for i, line in enumerate(_header(rep, source)):
        con.print(Text(line, style="bold" if i == 0 else ""))
    t = Table.grid(padding=(0, 1))
    for label, pct, text, lower in _rows(rep):
        bar: Any = Text("")
        if pct is not None:
            bar = ProgressBar(total=100, completed=min(100.0, pct), width=BAR_WIDTH,
                              complete_style=_colour(pct, lower), finished_style=_colour(pct, lower))
        t.add_row(Text(label, style="bold"), bar, Text(text))
    con.print(t)
    con.print(Text("Roofline: ", style="bold") + Text(roof["text"] if roof else "no flop rate or bandwidth data"))
    con.print(Text(_energy_line(rep)))
    con.print(Text("Tags: ", style="bold") + Text(tag_text))
    for h in hints:
        con.print(Text("Job class: ", style="bold magenta") + Text(h))
    head, rows = _node_table(rep)
    nt = Table(*head, title="Per node", title_justify="left")
    for r in rows:
        nt.add_row(*r)
    con.print(nt)
    for a in rep["advice"]:
        con.print(Text("! ", style="bold red") + Text(a))


def render_table(reports: list[dict[str, Any]], stream: TextIO, *, tty: bool) -> None:
    """One line per job: the overall figures (``--user``)."""
    head = ["jobId", "cluster", "state", "start", "duration", "nodes", "CPU", "mem", "GPU", "flops", "kWh", "advice"]
    rows = []
    for rep in reports:
        j, o = rep["job"], rep["overall"]
        rows.append([str(j["jobId"]), j["cluster"], j["state"],
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(j["startTime"])), _duration(j["duration"]),
                     str(j["numNodes"]), _pct(o["cpu"]["util_pct"]), _pct(o["memory"]["pct"]),
                     _pct(o["gpu"]["util_pct"]) if o["gpu"] else "-", _pct(o["flops"]["pct"]),
                     "-" if o["energy"]["kwh"] is None else f"{o['energy']['kwh']:g}", str(len(rep["advice"]))])
    if not tty:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for r in [head, *rows]:
            stream.write("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() + "\n")
        return
    con = Console(file=stream, force_terminal=True, color_system="standard", width=140, highlight=False)
    t = Table(*head)
    for rep, r in zip(reports, rows, strict=True):
        cpu = rep["overall"]["cpu"]["util_pct"]
        t.add_row(*r, style=None if cpu is None else _colour(cpu))
    con.print(t)
