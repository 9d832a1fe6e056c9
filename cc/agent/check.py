"""``cc-agent check``: every unknown key of a configuration, with its file and path.

The agent itself stops at the first error; a site moving its cc-metric-collector files
over wants the whole list at once.  ``check`` walks each file by the same key sets the
components validate with (collectors' ``options``, sinks' and receivers' ``options``, the
router's and the message processor's keys), reports every key it does not know as
``FILE: PATH: unknown key 'K'``, and then builds the components to report the first
value error of each.  Collectors cc-metric-collector has and this agent does not are
reported as such (the agent skips them with a warning).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from cc.agent.collectors import REGISTRY, Context
from cc.agent.collectors._base import AgentConfigError
from cc.agent.config import UPSTREAM_COLLECTORS

__all__ = ["check_files", "UPSTREAM_COLLECTORS"]

_TOP = {"main", "interval", "duration", "hostname", "root", "standard_metrics", "align_interval"}
_COMPONENTS = ("collectors", "router", "sinks", "receivers")


class _Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []

    def unknown(self, file: Path, path: str, key: str, known: set[str] | None = None) -> None:
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        self.problems.append(f"{file}: {path}: unknown key {key!r}{hint}")

    def error(self, file: Path, text: str) -> None:
        self.problems.append(f"{file}: {text}")


def _keys(rep: _Report, file: Path, path: str, doc: Any, known: set[str]) -> None:
    if isinstance(doc, dict):
        for k in doc:
            if k not in known:
                rep.unknown(file, path, k, known)


def _processor(rep: _Report, file: Path, path: str, doc: Any) -> None:
    from cc.agent.router import _UNSUPPORTED, STAGES

    if not isinstance(doc, dict):
        return
    known = set(STAGES.values()) | {"add_base_env", "stage_order"}
    for k in doc:
        if k in _UNSUPPORTED:
            rep.error(file, f"{path}.{k}: field operations are not supported (a metric has one field, 'value')")
        elif k not in known:
            rep.unknown(file, path, k, known)
    for key in ("add_tags_if", "delete_tags_if", "move_tag_to_meta_if", "add_meta_if", "delete_meta_if",
                "move_meta_to_tag_if"):
        for i, r in enumerate(doc.get(key) or [] if isinstance(doc.get(key), list) else []):
            _keys(rep, file, f"{path}.{key}[{i}]", r, {"if", "key", "value"})


def _collectors(rep: _Report, file: Path, path: str, doc: Any) -> None:
    if not isinstance(doc, dict):
        rep.error(file, f"{path}: expected an object {{name: options}}")
        return
    for name, opts in doc.items():
        cls = REGISTRY.get(name)
        if cls is None:
            if name in UPSTREAM_COLLECTORS:
                rep.notes.append(f"{file}: {path}.{name}: cc-metric-collector's {name} collector is not part of "
                                 "this cc-agent; the agent skips it")
            else:
                rep.error(file, f"{path}.{name}: unknown collector (known: {', '.join(sorted(REGISTRY))})")
            continue
        _keys(rep, file, f"{path}.{name}", opts, set(cls.options) | {"only_metrics"})  # every collector takes it


def _router(rep: _Report, file: Path, path: str, doc: Any) -> None:
    from cc.agent.router import _ROUTER_KEYS

    if not isinstance(doc, dict):
        rep.error(file, f"{path}: expected an object")
        return
    _keys(rep, file, path, doc, set(_ROUTER_KEYS))
    _processor(rep, file, f"{path}.process_messages", doc.get("process_messages"))
    for key in ("add_tags", "delete_tags"):
        for i, r in enumerate(doc.get(key) if isinstance(doc.get(key), list) else []):
            _keys(rep, file, f"{path}.{key}[{i}]", r, {"if", "key", "value"})
    for i, a in enumerate(doc.get("interval_aggregates") if isinstance(doc.get("interval_aggregates"), list) else []):
        _keys(rep, file, f"{path}.interval_aggregates[{i}]", a, {"name", "if", "function", "tags", "meta"})


def _typed(rep: _Report, file: Path, path: str, doc: Any, kind: str) -> None:
    if kind == "sinks":
        from cc.agent.sinks import TYPES
    else:
        from cc.agent.receivers import TYPES  # type: ignore[assignment]
    if not isinstance(doc, dict):
        rep.error(file, f"{path}: expected an object {{name: {{type, ...}}}}")
        return
    for name, c in doc.items():
        w = f"{path}.{name}"
        if not isinstance(c, dict) or c.get("type") not in TYPES:
            t = c.get("type") if isinstance(c, dict) else None
            rep.error(file, f"{w}.type: expected one of {', '.join(TYPES)}, got {t!r}")
            continue
        cls = TYPES[c["type"]]
        known = set(cls.options) | set(cls.common)
        device_keys = getattr(cls, "device_keys", None)
        if device_keys is not None:
            known |= set(device_keys) | {"client_config", "interval", "fanout"}
            for i, cc in enumerate(c.get("client_config") if isinstance(c.get("client_config"), list) else []):
                _keys(rep, file, f"{w}.client_config[{i}]", cc, set(device_keys) | {"host_list"})
        _keys(rep, file, w, c, known)
        _processor(rep, file, f"{w}.process_messages", c.get("process_messages"))


_WALK = {"collectors": _collectors, "router": _router,
         "sinks": lambda r, f, p, d: _typed(r, f, p, d, "sinks"),
         "receivers": lambda r, f, p, d: _typed(r, f, p, d, "receivers")}


def _load(rep: _Report, file: Path) -> Any:
    try:
        return orjson.loads(file.read_bytes())
    except OSError as e:
        rep.error(file, f"cannot read: {e.strerror or e}")
    except orjson.JSONDecodeError as e:
        rep.error(file, f"not valid JSON: {e}")
    return None


def _kind(file: Path, doc: Any) -> str:
    stem = file.stem.lower()
    for k in _COMPONENTS:
        if stem.startswith(k.rstrip("s")) or stem.endswith(k):
            return k
    return "combined"


def _build(rep: _Report, file: Path, kind: str, doc: Any, where: str) -> None:
    """Construct the component as the agent would, reporting its first value error."""
    from cc.agent.receivers import make_receiver
    from cc.agent.router import Router, RouterConfigError
    from cc.agent.sinks import make_sink

    try:
        if kind == "router":
            Router(doc, "checkhost", where)
        elif kind in ("sinks", "receivers") and isinstance(doc, dict):
            make = make_sink if kind == "sinks" else make_receiver
            for name, c in doc.items():
                make(name, c)
        elif kind == "collectors" and isinstance(doc, dict):
            ctx = Context(Path("/"), True, frozenset(doc))
            for name, c in doc.items():
                if name in REGISTRY and (c is None or isinstance(c, dict)):
                    REGISTRY[name](c, ctx)
    except (AgentConfigError, RouterConfigError) as e:
        text = str(e)
        if not any(text in p or p.endswith(text) for p in rep.problems) and "unknown key" not in text:
            rep.error(file, text)


def _check_component(rep: _Report, file: Path, kind: str, doc: Any, where: str) -> None:
    before = len(rep.problems)
    _WALK[kind](rep, file, where, doc)
    if len(rep.problems) == before:
        _build(rep, file, kind, doc, where)


def check_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """Problems (unknown keys, bad values) and notes for the given files; each line names file and path."""
    rep = _Report()
    for p in paths:
        file = Path(p)
        doc = _load(rep, file)
        if doc is None:
            continue
        kind = _kind(file, doc)
        if kind == "combined" or (isinstance(doc, dict) and ("main" in doc or any(
                f"{c}-file" in doc for c in _COMPONENTS))):
            _check_combined(rep, file, doc)
        else:
            _check_component(rep, file, kind, doc, kind)
    return rep.problems, rep.notes


def _check_combined(rep: _Report, file: Path, doc: Any) -> None:
    if not isinstance(doc, dict):
        rep.error(file, "the configuration must be a JSON object")
        return
    known = _TOP | set(_COMPONENTS) | {f"{c}-file" for c in _COMPONENTS}
    _keys(rep, file, "(top level)", doc, known)
    _keys(rep, file, "main", doc.get("main"), _TOP - {"main"})
    for c in _COMPONENTS:
        if f"{c}-file" in doc:
            ref = doc[f"{c}-file"]
            if not isinstance(ref, str) or not ref:
                rep.error(file, f"{c}-file: expected a path")
                continue
            sub = Path(ref) if os.path.isabs(ref) else file.parent / ref
            sdoc = _load(rep, sub)
            if sdoc is not None:
                _check_component(rep, sub, c, sdoc, c)
        elif c in doc:
            _check_component(rep, file, c, doc[c], c)
    from cc.agent.config import parse_agent_config

    try:  # main's values (interval, root...), as the agent reads them
        parse_agent_config({k: v for k, v in doc.items() if k in _TOP}, file.parent, file)
    except AgentConfigError as e:
        rep.error(file, str(e))
