"""The executable schema: our SDL file, the custom scalars, and the resolvers bound onto its fields.

Resolvers are attached to the schema's fields (not passed as a root value), so every
resolver has graphql-core's ``(source, info, **args)`` signature.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLScalarType,
    GraphQLSchema,
    ValueNode,
    build_schema,
    value_from_ast_untyped,
)

from cc.clusters import SCOPES
from cc.db import JOB_STATES
from cc.db._filters import MAX_TIME, FilterError, parse_time
from cc.db._nodes import HEALTH_STATES, NODE_STATES
from cc.webd.graphql import clusters, jobs, metrics, mutations, nodes, stats  # noqa: F401 (register resolvers)
from cc.webd.graphql.context import RESOLVERS

NAN = float("nan")
SDL_PATH = Path(__file__).resolve().parents[3] / "schemas" / "graphql" / "schema.graphqls"


def _time_out(value: Any) -> str:
    if isinstance(value, datetime):
        value = value.timestamp()
    if not 0 <= value <= MAX_TIME:  # RFC 3339 has four-digit years
        raise GraphQLError(f"Time: {value} is outside what RFC 3339 can write (0..{MAX_TIME} unix seconds)")
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time_in(value: Any) -> int:
    try:
        return parse_time(value, "Time")
    except FilterError:
        raise GraphQLError(f"Time: expected an RFC 3339 time or unix seconds, got {value!r}") from None


def _nullable_float_out(value: Any) -> float:
    """Missing values become NaN, which the JSON encoder (orjson) writes as null.

    cc-backend writes null even where the SDL says ``NullableFloat!`` (list items);
    returning None there would make graphql-core reject the value, NaN passes.
    """
    return NAN if value is None else float(value)


def _nullable_float_in(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GraphQLError(f"NullableFloat: expected a number or null, got {value!r}")
    return float(value)


def _enum_string(name: str, allowed: tuple[str, ...]):
    def parse(value: Any) -> str:
        if value not in allowed:
            raise GraphQLError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _literal(parse):
    def from_ast(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
        return parse(value_from_ast_untyped(node, variables))

    return from_ast


def _scalar(schema: GraphQLSchema, name: str, out, parse) -> None:
    """Set a scalar's coercions (graphql-core 3.3 names, and the older ones it still reads in places)."""
    t = schema.type_map[name]
    assert isinstance(t, GraphQLScalarType)
    t.serialize = t.coerce_output_value = out
    t.parse_value = t.coerce_input_value = parse
    t.parse_literal = _literal(parse)
    t.coerce_input_literal = lambda node: parse(value_from_ast_untyped(node))


def _identity(value: Any) -> Any:
    return value


def build() -> GraphQLSchema:
    schema = build_schema(SDL_PATH.read_text())
    _scalar(schema, "Time", _time_out, _time_in)
    _scalar(schema, "Any", _identity, _identity)
    _scalar(schema, "NullableFloat", _nullable_float_out, _nullable_float_in)
    _scalar(schema, "MetricScope", str, _enum_string("MetricScope", SCOPES))
    _scalar(schema, "JobState", str, _enum_string("JobState", JOB_STATES))
    _scalar(schema, "SchedulerState", str, _enum_string("SchedulerState", NODE_STATES))
    _scalar(schema, "MonitoringState", str, _enum_string("MonitoringState", HEALTH_STATES))
    missing = []
    for (type_name, field_name), fn in RESOLVERS.items():
        t = schema.type_map.get(type_name)
        fld = getattr(t, "fields", {}).get(field_name) if t is not None else None
        if fld is None:
            missing.append(f"{type_name}.{field_name}")
            continue
        fld.resolve = fn
    if missing:
        raise RuntimeError(f"resolvers for fields the SDL does not have: {', '.join(missing)}")
    return schema


SCHEMA = build()
