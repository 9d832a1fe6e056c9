"""Validating documents against ``schemas/json``: a fast compiled check, jsonschema for the message.

``jsonschema`` needs about a millisecond for one ``meta.json``, which would cap
``init-db`` near 1,000 jobs/s.  So each schema is also compiled into generated Python
code (:mod:`cc.archive._compile`) for the keywords our schema files use (anything
else is refused at compile time, so no keyword is silently ignored).  A document that passes the closures is
valid; one that fails is run through ``jsonschema`` (with the same ``referencing``
registry) to produce the error message and field path, so messages and semantics stay
jsonschema's.  ``tests/test_archive_schema.py`` checks that both agree.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from cc.archive._compile import compile_schema

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"
URN = "urn:cc-py:schema:"
KINDS = ("job-meta", "job-data", "job-start", "cluster", "job-metric-data", "job-metric-statistics", "unit")
STRICT_KINDS = ("job-meta", "job-data")

Check = Callable[[Any], bool]


class SchemaError(ValueError):
    """A document does not match its schema; the message starts with the field path."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


# -- registry ---------------------------------------------------------------------------------

_lock = threading.Lock()
_registry: Registry | None = None
_compiled: dict[str, Check] = {}
_validators: dict[str, Draft202012Validator] = {}


def registry() -> Registry:
    """All schema files of ``schemas/json`` by their ``$id``."""
    global _registry
    with _lock:
        if _registry is None:
            resources = []
            for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
                doc = orjson.loads(path.read_bytes())
                resources.append((doc["$id"], Resource.from_contents(doc)))
            _registry = Registry().with_resources(resources)
        return _registry


def _uri(kind: str, strict: bool) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown schema kind {kind!r} (one of {', '.join(KINDS)})")
    if strict:
        if kind not in STRICT_KINDS:
            raise ValueError(f"schema kind {kind!r} has no strict profile")
        return f"{URN}{kind}.strict"
    return URN + kind


def _validator(uri: str) -> Draft202012Validator:
    v = _validators.get(uri)
    if v is None:
        v = _validators[uri] = Draft202012Validator({"$ref": uri}, registry=registry())
    return v


def _check(uri: str) -> Check:
    c = _compiled.get(uri)
    if c is None:
        reg = registry()
        resolved = reg.resolver().lookup(uri)
        c = _compiled[uri] = compile_schema(resolved.contents, resolved.resolver)
    return c


def validate(kind: str, doc: Any, *, strict: bool = False) -> None:
    """Raise :class:`SchemaError` naming the offending field if ``doc`` is not a valid ``kind``.

    ``kind`` is one of "job-meta", "job-data", "job-start", "cluster" (or a sub-schema
    "job-metric-data", "job-metric-statistics", "unit").  ``strict`` adds ClusterCockpit's
    lists of mandatory metrics (see ``schemas/json/README.md``).
    """
    uri = _uri(kind, strict)
    if _check(uri)(doc):
        return
    errors = itertools.islice(_validator(uri).iter_errors(doc), 50)
    err = best_match(errors)
    if err is None:  # the compiled check and jsonschema disagree: trust jsonschema, but say so
        raise SchemaError(f"(document): rejected by the compiled check of {kind} but not by jsonschema")
    path, message = describe(err)
    raise SchemaError(f"{path}: {message}", path)


def is_valid(kind: str, doc: Any, *, strict: bool = False) -> bool:
    return _check(_uri(kind, strict))(doc)


# -- error messages ---------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def field_path(parts) -> str:
    """``['resources', 0, 'hostname']`` -> ``resources[0].hostname``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _IDENT.match(p):
            out += ("." if out else "") + p
        else:
            out += f"[{orjson.dumps(p).decode()}]"
    return out or "(document)"


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}


def describe(err: ValidationError) -> tuple[str, str]:
    """(field path, message) for one jsonschema error, without dumping huge instances."""
    parts = list(err.absolute_path)
    v, inst, want = err.validator, err.instance, err.validator_value
    if v == "required" and isinstance(inst, dict):
        missing = [k for k in want if k not in inst]
        if missing:
            return field_path([*parts, missing[0]]), "is required"
    if v == "type":
        types = " or ".join(want) if isinstance(want, list) else want
        return field_path(parts), f"must be of type {types}, got {_TYPE_NAMES.get(type(inst), '?')} {_short(inst)}"
    if v == "enum":
        return field_path(parts), f"{_short(inst)} is not one of {', '.join(_short(x) for x in want)}"
    if v in ("minimum", "exclusiveMinimum"):
        op = ">=" if v == "minimum" else ">"
        return field_path(parts), f"must be {op} {want}, got {_short(inst)}"
    if v == "minItems":
        return field_path(parts), f"must have at least {want} item(s), got {len(inst)}"
    if v == "minProperties":
        return field_path(parts), f"must have at least {want} entr{'y' if want == 1 else 'ies'}"
    if v == "uniqueItems":
        return field_path(parts), "items must be unique"
    if v == "contains":
        return field_path(parts), "must contain at least one non-negative number"
    if v == "propertyNames":
        return field_path(parts), f"{_short(err.instance)}: {err.message}"
    msg = err.message
    return field_path(parts), msg if len(msg) <= 200 else msg[:197] + "..."
