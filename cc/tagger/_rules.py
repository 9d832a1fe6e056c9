"""Loading tagger rules: app pattern files (``apps/*.txt``) and job classes (``jobclasses/*.json``).

Rules come from two directories: the defaults shipped in ``cc/tagger/rules`` and the
site's ``var/tagger`` (upstream's ``./var/tagger``).  A site file replaces the shipped file
of the same name, other site files add to them; a site ``parameters.json`` is merged over
the shipped one.  Every problem is collected as ``file: field: message`` and only that
file's rule is dropped; the rest keep working.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cc.tagger._expr import Compiled, ExprError, compile_expr

SHIPPED = Path(__file__).with_name("rules")
PARAMETERS = "parameters.json"
JOB_FIELDS = ("shared", "duration", "numCores", "numNodes", "jobState", "numAcc", "smt", "walltime")
METRIC_FIELDS = ("avg", "min", "max", "limits.peak", "limits.normal", "limits.caution", "limits.alert")
TAG_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_FIELD_REF = re.compile(r"^\s*\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")


@dataclass
class AppRule:
    """One application: its tag name (the file name without ``.txt``) and its patterns."""

    name: str
    patterns: list[re.Pattern[str]]
    source: str


@dataclass
class Hint:
    """A hint template: literal text and ``{{.dotted.name}}`` placeholders, alternating."""

    parts: list[str | tuple[str, ...]]

    def render(self, env: dict[str, Any]) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            v: Any = env
            for k in p:
                v = v.get(k) if isinstance(v, dict) else None
            out.append(format_value(v))
        return "".join(out)


@dataclass
class JobClass:
    name: str
    tag: str
    source: str
    params: dict[str, Any]
    metrics: list[str]
    requirements: list[Compiled]
    variables: list[tuple[str, Compiled]]
    rule: Compiled
    hint: Hint


@dataclass
class RuleSet:
    apps: list[AppRule] = field(default_factory=list)
    classes: list[JobClass] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def format_value(v: Any) -> str:
    """Numbers in hints: at most two decimals, no trailing zeros (``95.33``, ``1.2``, ``40``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        text = f"{v:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    return "" if v is None else str(v)


def rule_files(site: Path | None, sub: str, suffix: str) -> dict[str, Path]:
    """File name -> path, shipped files first and site files replacing them by name."""
    out: dict[str, Path] = {}
    for base in (SHIPPED, site):
        if base is None:
            continue
        try:
            entries = sorted(os.scandir(base / sub), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if e.name.endswith(suffix) and not e.name.startswith(".") and e.is_file():
                out[e.name] = Path(e.path)
    return out


def stamp(site: Path | None) -> tuple:
    """What changes when a rule file is added, removed or edited (mtime and size of each)."""
    items = []
    for sub, suffix in (("apps", ".txt"), ("jobclasses", ".json")):
        for name, p in rule_files(site, sub, suffix).items():
            try:
                st = p.stat()
                items.append((sub, name, str(p), st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                pass
    return tuple(items)


def load_app(path: Path) -> AppRule:
    """One pattern per line, case-insensitive; blank lines and lines starting with ``#`` are comments."""
    name = path.name[:-len(".txt")]
    if not TAG_NAME.match(name):
        raise ValueError(f"{path}: file name {name!r} is not a usable tag name (letters, digits, _ . + -)")
    patterns: list[re.Pattern[str]] = []
    for no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            patterns.append(re.compile(text, re.IGNORECASE | re.MULTILINE))
        except (re.error, OverflowError, RecursionError) as e:
            raise ValueError(f"{path}: line {no}: invalid regular expression {text!r}: {e}") from None
    if not patterns:
        raise ValueError(f"{path}: no patterns (one regular expression per line)")
    try:  # one search per app instead of one per pattern
        combined = re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.IGNORECASE | re.MULTILINE)
    except re.error:  # e.g. a global flag like (?x) inside one pattern: keep them apart
        return AppRule(name, patterns, str(path))
    return AppRule(name, [combined], str(path))


def load_parameters(site: Path | None, errors: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for base in (SHIPPED, site):
        if base is None:
            continue
        p = base / "jobclasses" / PARAMETERS
        try:
            doc = orjson.loads(p.read_bytes())
        except FileNotFoundError:
            continue
        except (OSError, orjson.JSONDecodeError) as e:
            errors.append(f"{p}: cannot read: {e}")
            continue
        if not isinstance(doc, dict):
            errors.append(f"{p}: top level must be an object of name: number")
            continue
        for k, v in doc.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                errors.append(f"{p}: {k}: must be a number or a string")
            else:
                params[k] = v
    return params


def _strings(doc: dict[str, Any], key: str, where: str) -> list[str]:
    v = doc.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"{where}: {key}: must be a list of non-empty strings")
    return v


def _expr(text: Any, where: str, known: set[str]) -> Compiled:
    try:
        c = compile_expr(text)
    except ExprError as e:
        raise ValueError(f"{where}: {e}") from None
    unknown = sorted(n for n in c.names if n not in known)
    if unknown:
        raise ValueError(f"{where}: unknown name {unknown[0]!r} in {text!r} (known: job.*, the rule's parameters, "
                         "its metrics' avg/min/max/limits.*, and variables defined before)")
    return c


def _hint(text: Any, where: str, known: set[str]) -> Hint:
    if not isinstance(text, str):
        raise ValueError(f"{where}: must be a string")
    parts: list[str | tuple[str, ...]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        ref = _FIELD_REF.match(m.group(1))
        if ref is None:
            raise ValueError(f"{where}: {m.group()!r}: only {{{{.name}}}} placeholders are supported")
        if ref.group(1) not in known:
            raise ValueError(f"{where}: {m.group()!r}: unknown name {ref.group(1)!r}")
        parts += [text[pos:m.start()], tuple(ref.group(1).split("."))]
        pos = m.end()
    if "{{" in text[pos:]:
        raise ValueError(f"{where}: unclosed '{{{{'")
    parts.append(text[pos:])
    return Hint([p for p in parts if p != ""])


def load_class(path: Path, params: dict[str, Any]) -> JobClass:
    """A job class file; ``ValueError('file: field: problem')`` for anything wrong."""
    src = str(path)
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{src}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{src}: top level must be an object")
    for key in ("name", "tag", "rule"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ValueError(f"{src}: {key}: required, a non-empty string")
    if not TAG_NAME.match(doc["tag"]):
        raise ValueError(f"{src}: tag: {doc['tag']!r} is not a usable tag name (letters, digits, _ . + -)")
    names = _strings(doc, "parameters", src)
    missing = [p for p in names if p not in params]
    if missing:
        raise ValueError(f"{src}: parameters: {missing[0]!r} is not defined in {PARAMETERS}")
    metrics = _strings(doc, "metrics", src)
    known = {f"job.{f}" for f in JOB_FIELDS} | set(names)
    known |= {f"{m}.{f}" for m in metrics for f in METRIC_FIELDS}
    reqs = doc.get("requirements", [])
    if not isinstance(reqs, list):
        raise ValueError(f"{src}: requirements: must be a list of expressions")
    requirements = [_expr(r, f"{src}: requirements[{i}]", known) for i, r in enumerate(reqs)]
    raw_vars = doc.get("variables", [])
    if not isinstance(raw_vars, list):
        raise ValueError(f"{src}: variables: must be a list of {{name, expr}} objects")
    variables = []
    for i, v in enumerate(raw_vars):
        where = f"{src}: variables[{i}]"
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not re.match(
                r"^[A-Za-z_][A-Za-z0-9_]*$", v["name"]):
            raise ValueError(f"{where}: name: required, an identifier")
        if v["name"] in known or v["name"] == "job" or v["name"] in metrics:
            raise ValueError(f"{where}: name: {v['name']!r} is already defined")
        variables.append((v["name"], _expr(v.get("expr"), f"{where}: expr", known)))
        known.add(v["name"])
    rule = _expr(doc["rule"], f"{src}: rule", known)
    hint = _hint(doc.get("hint", ""), f"{src}: hint", known)
    return JobClass(doc["name"], doc["tag"], src, {p: params[p] for p in names}, metrics, requirements, variables,
                    rule, hint)


def load_rules(site: Path | None) -> RuleSet:
    """Every rule that loads; the others as errors."""
    rs = RuleSet()
    for path in rule_files(site, "apps", ".txt").values():
        try:
            rs.apps.append(load_app(path))
        except (OSError, ValueError) as e:
            rs.errors.append(str(e))
    params = load_parameters(site, rs.errors)
    tags: dict[str, str] = {}
    for name, path in rule_files(site, "jobclasses", ".json").items():
        if name == PARAMETERS:
            continue
        try:
            jc = load_class(path, params)
        except (OSError, ValueError) as e:
            rs.errors.append(str(e))
            continue
        if jc.tag in tags:
            rs.errors.append(f"{path}: tag: {jc.tag!r} is already the tag of {tags[jc.tag]} (this file is ignored)")
            continue
        tags[jc.tag] = str(path)
        rs.classes.append(jc)
    return rs
