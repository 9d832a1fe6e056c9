"""One validation layer for REST input: path, query and JSON body values.

Every REST handler reads its inputs through these helpers, so bad input of any kind
answers 400 in cc-backend's error shape naming the parameter or field, never a 500:
integers must be plain decimal digits and fit SQLite's signed 64-bit integers (an id
of 10**23 would otherwise reach SQLite and raise ``OverflowError``), booleans are
``true``/``false``, enums name their values, strings have length limits.
``schemas/openapi.yaml`` states the same constraints (``tests/test_schemathesis.py``
checks that both agree).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson
from quart import request

from cc.db import INT64_MAX, INT64_MIN
from cc.webd.errors import APIError

_INTEGER = re.compile(r"-?[0-9]+")
MAX_STRING = 4096  # query parameters and plain string fields: longer is a mistake or abuse


def _parse_int(raw: str, what: str, minimum: int, maximum: int) -> int:
    if len(raw) > 30 or not _INTEGER.fullmatch(raw):
        raise APIError(400, f"{what}: expected an integer, got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise APIError(400, f"{what}: {value} is out of range ({minimum}..{maximum})")
    return value


def path_int(raw: str, name: str, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer path segment, e.g. a database id."""
    return _parse_int(raw, f"integer expected in path for {name}", minimum, maximum)


def query_int(name: str, default: int | None = None, *, minimum: int = 0, maximum: int = INT64_MAX,
              required: bool = False) -> int | None:
    raw = request.args.get(name)
    if raw is None or (raw == "" and not required):
        if required:
            raise APIError(400, f"missing required query parameter: {name}")
        return default
    return _parse_int(raw, f"query parameter '{name}'", minimum, maximum)


def query_bool(name: str, default: bool = False) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise APIError(400, f"query parameter '{name}': expected true or false, got {raw[:40]!r}")
    return raw == "true"


def query_str(name: str, default: str | None = None, *, max_length: int = MAX_STRING) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if len(raw) > max_length:
        raise APIError(400, f"query parameter '{name}': longer than {max_length} characters")
    return raw


def query_list(name: str, allowed: Iterable[str] | None = None, *, max_length: int = MAX_STRING) -> list[str]:
    """A repeatable parameter (``?state=a&state=b``), each value checked."""
    values = request.args.getlist(name)
    choices = tuple(allowed) if allowed is not None else None
    for v in values:
        if choices is not None and v not in choices:
            raise APIError(400, f"query parameter '{name}': {v[:40]!r} is not one of {', '.join(choices)}")
        if len(v) > max_length:
            raise APIError(400, f"query parameter '{name}': longer than {max_length} characters")
    return values


def query_enum(name: str, allowed: Iterable[str], default: str | None = None) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    choices = tuple(allowed)
    if raw not in choices:
        raise APIError(400, f"query parameter '{name}': {raw[:40]!r} is not one of {', '.join(choices)}")
    return raw


def only_query_params(allowed: Iterable[str]) -> None:
    """cc-backend refuses unknown parameters on some endpoints (``GET /api/jobs/``)."""
    unknown = set(request.args) - set(allowed)
    if unknown:
        raise APIError(400, f"invalid query parameter: {sorted(unknown)[0]}")


# -- JSON bodies --------------------------------------------------------------------------------

async def json_body(kind: str = "object", *, required: bool = True) -> Any:
    """The request body as JSON: ``kind`` is "object", "list" or "any"; None if empty and not required."""
    raw = await request.get_data()
    if not raw.strip():
        if not required:
            return None
        raise APIError(400, f"parsing request body failed: expected a JSON {_KINDS[kind]}, got an empty body")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise APIError(400, f"parsing request body failed: {e}") from None
    if doc is None and not required:
        return None
    if kind == "object" and not isinstance(doc, dict):
        raise APIError(400, "parsing request body failed: expected a JSON object")
    if kind == "list" and not isinstance(doc, list):
        raise APIError(400, "parsing request body failed: expected a JSON array")
    return doc


_KINDS = {"object": "object", "list": "array", "any": "document"}


def is_int(value: Any) -> bool:
    """A JSON integer that fits a signed 64-bit SQLite column (orjson reads up to 2**64-1 as int)."""
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def field_int(doc: dict, key: str, *, required: bool = False, minimum: int = INT64_MIN,
              maximum: int = INT64_MAX, where: str = "") -> int | None:
    """``doc[key]`` as an integer in range (None if absent or null and not required)."""
    name = f"{where}{key}"
    v = doc.get(key)
    if v is None:
        if required:
            raise APIError(400, f"the field '{name}' is required")
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise APIError(400, f"'{name}' must be an integer, got {_short(v)}")
    lo, hi = max(minimum, INT64_MIN), min(maximum, INT64_MAX)
    if not lo <= v <= hi:
        raise APIError(400, f"'{name}' is out of range ({lo}..{hi}), got {v}")
    return v


def field_str(doc: dict, key: str, *, required: bool = False, non_empty: bool = False,
              max_length: int = MAX_STRING, where: str = "") -> str | None:
    name = f"{where}{key}"
    v = doc.get(key)
    if v is None:
        if required:
            raise APIError(400, f"the field '{name}' is required")
        return None
    if not isinstance(v, str):
        raise APIError(400, f"'{name}' must be a string, got {_short(v)}")
    if non_empty and not v:
        raise APIError(400, f"'{name}' must not be empty")
    if len(v) > max_length:
        raise APIError(400, f"'{name}' is longer than {max_length} characters")
    return v


def only_fields(doc: dict, allowed: Iterable[str], where: str = "") -> None:
    """cc-backend decodes bodies with DisallowUnknownFields: an unknown field is a 400 naming it."""
    unknown = set(doc) - set(allowed)
    if unknown:
        raise APIError(400, f"unknown field '{where}{sorted(unknown)[0]}'")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
