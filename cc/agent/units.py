"""Unit names and prefixes with cc-units' semantics (``normalize_units``, ``change_unit_prefix``).

Collectors report units as the kernel spells them (``kB``, ``bytes/sec``, ``watts``,
``Percent``); the router can rewrite them to one spelling and rescale values to another
prefix.  Decimal prefixes are powers of 1000 and binary ones (``Ki``, ``Mi``...) powers of
1024, so ``kB`` from /proc/meminfo counts as 1000 bytes exactly as in cc-metric-collector
(the kernel means KiB; changing the prefix to ``G`` gives the same numbers upstream shows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Unit", "parse_unit", "parse_prefix", "normalize", "change_prefix"]

# (factor, short, regex) -- the order matters only for readability; regexes are exclusive.
_PREFIXES: list[tuple[float, str, str]] = [
    (1.0, "", r""),
    (1e3, "K", r"[kK]"), (1e6, "M", r"M"), (1e9, "G", r"[gG]"), (1e12, "T", r"[tT]"),
    (1e15, "P", r"[pP]"), (1e18, "E", r"[eE]"), (1e21, "Z", r"[zZ]"), (1e24, "Y", r"[yY]"),
    (1e-3, "m", r"m"), (1e-6, "u", r"u"), (1e-9, "n", r"n"),
    (1024.0, "Ki", r"[kK]i"), (1024.0**2, "Mi", r"Mi"), (1024.0**3, "Gi", r"[gG]i"),
    (1024.0**4, "Ti", r"[tT]i"), (1024.0**5, "Pi", r"[pP]i"), (1024.0**6, "Ei", r"[eE]i"),
    (1024.0**7, "Zi", r"[zZ]i"), (1024.0**8, "Yi", r"[yY]i"),
]
_PREFIX_RES = [(f, s, re.compile(f"^{rx}$")) for f, s, rx in _PREFIXES]

_MEASURES: list[tuple[str, str]] = [
    ("B", r"[bB][yY]?[tT]?[eE]?[sS]?"),
    ("Flops", r"[fF][lL]?[oO]?[pP]?[sS]?"),
    ("%", r"%|[pP]ercent"),
    ("degC", r"deg[Cc]|°[cC]"),
    ("degF", r"deg[fF]|°[fF]"),
    ("RPM", r"[rR][pP][mM]"),
    ("Hz", r"[hH][eE]?[rR]?[tT]?[zZ]"),
    ("s", r"[sS][eE]?[cC]?[oO]?[nN]?[dD]?[sS]?"),
    ("cyc", r"[cC][yY][cC]?[lL]?[eE]?[sS]?"),
    ("W", r"[wW][aA]?[tT]?[tT]?[sS]?"),
    ("J", r"[jJ][oO]?[uU]?[lL]?[eE]?[sS]?"),
    ("requests", r"[rR][eE][qQ][uU]?[eE]?[sS]?[tT]?[sS]?"),
    ("packets", r"[pP][aA]?[cC]?[kK][eE]?[tT][sS]?"),
    ("events", r"[eE][vV]?[eE]?[nN][tT][sS]?"),
]
_MEASURE_RES = [(s, re.compile(f"^(?:{rx})")) for s, rx in _MEASURES]
_COUNTED = {"B", "Flops", "packets", "events", "cyc", "requests"}
_SPLIT_RE = re.compile(r"^([kKmMgGtTpPeEzZyY]?i?)(.*)$", re.S)


@dataclass(frozen=True)
class Unit:
    factor: float      # the prefix as a number (1e3 for K)
    prefix: str        # short prefix ("K", "Mi", "")
    measure: str       # short measure ("B", "Hz", "%")
    per: str = ""      # short denominator measure ("s" in B/s), "" if none

    @property
    def short(self) -> str:
        return f"{self.prefix}{self.measure}" + (f"/{self.per}" if self.per else "")


def parse_prefix(text: str) -> tuple[float, str] | None:
    """``"G"`` -> ``(1e9, "G")``; None if ``text`` is no prefix."""
    for f, s, rx in _PREFIX_RES:
        if rx.match(text):
            return f, s
    return None


def _measure(text: str) -> str | None:
    for s, rx in _MEASURE_RES:
        if rx.match(text):
            return s
    return None


def parse_unit(text: str) -> Unit | None:
    """Parse a unit string as cc-units does; None if it names no known measure."""
    m = _SPLIT_RE.match(text or "")
    if not m or not text:
        return None
    pre = parse_prefix(m.group(1))
    parts = m.group(2).split("/")
    meas = _measure(parts[0]) if parts[0] else None
    if meas is None:
        # "Percent", "packets", "events": the first letter was no prefix after all.
        whole = _measure(text.split("/")[0])
        if whole is None:
            return None
        pre, meas = (1.0, ""), whole
    if pre is None:
        return None
    per = ""
    if len(parts) > 1:
        per = _measure(parts[1]) or ""
    if meas in _COUNTED and pre[1] == "m":
        pre = (1e6, "M")  # "mB" means megabytes, nobody counts milli-bytes
    if meas == "%":
        pre = (1.0, "")
    return Unit(pre[0], pre[1], meas, per)


def normalize(text: str) -> str | None:
    """The canonical short spelling of ``text`` (``bytes/sec`` -> ``B/s``); None if unknown."""
    u = parse_unit(text)
    return u.short if u else None


def change_prefix(text: str, new_prefix: str) -> tuple[float, str] | None:
    """(factor to multiply values by, new unit string); None if either side is not understood."""
    u = parse_unit(text)
    p = parse_prefix(new_prefix)
    if u is None or p is None:
        return None
    return u.factor / p[0], Unit(p[0], p[1], u.measure, u.per).short
