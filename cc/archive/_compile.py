"""JSON Schema (the subset our schema files use) compiled to Python source for a fast yes/no check.

Each schema node becomes one generated function ``def _sN(x) -> bool``; references
become calls, so recursive schemas work.  The generated code answers only *whether* a
document is valid; :mod:`cc.archive._schema` asks jsonschema *why* when it is not.
Keywords outside :data:`KEYWORDS` are refused when compiling, so a schema change can
never be silently ignored by the fast path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from referencing._core import Resolver  # what Registry.resolver() returns (not re-exported)

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "$comment", "examples", "default"}
KEYWORDS = {"$ref", "allOf", "anyOf", "type", "enum", "minimum", "exclusiveMinimum", "required", "properties",
            "additionalProperties", "minProperties", "propertyNames", "items", "minItems", "uniqueItems",
            "contains"}
_PY_TYPES = {"object": "dict", "array": "list", "string": "str", "boolean": "bool", "null": "NoneType",
             "number": "int, float"}


def canonical(x: Any) -> Any:
    """A hashable form in which JSON-equal values are equal (1 == 1.0, True != 1, key order irrelevant)."""
    if type(x) is dict:
        return ("o", frozenset((k, canonical(v)) for k, v in x.items()))
    if type(x) is list:
        return ("a", tuple(canonical(v) for v in x))
    if type(x) is float and x.is_integer():
        return int(x)
    if type(x) is bool:
        return ("b", x)
    return x


def compile_schema(schema: Any, resolver: Resolver) -> Callable[[Any], bool]:
    gen = _Generator()
    name = gen.function(schema, resolver)
    namespace: dict[str, Any] = {"NoneType": type(None), "canonical": canonical, **gen.consts}
    exec(compile("\n".join(gen.lines + gen.tail), "<cc.archive compiled schema>", "exec"), namespace)  # noqa: S102
    return namespace[name]


class _Generator:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.names: dict[int, str] = {}
        self.tail: list[str] = []  # tables that refer to generated functions, defined after them
        self._keep: list[Any] = []  # schema objects whose id() is a key of names

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def function(self, schema: Any, resolver: Resolver) -> str:
        """The name of the generated function checking ``schema`` (generated on first use)."""
        if schema is True or schema == {}:
            schema = {}
        key = id(schema)
        self._keep.append(schema)
        if key in self.names:
            return self.names[key]
        if schema is False:
            name = self.names[key] = f"_s{len(self.names)}"
            self.lines += [f"def {name}(x):", "    return False", ""]
            return name
        only_ref = set(schema) - ANNOTATIONS == {"$ref"}
        if only_ref:  # a pure reference: use the target's function directly
            target = resolver.lookup(schema["$ref"])
            name = self.function(target.contents, target.resolver)
            self.names[key] = name
            return name
        name = self.names[key] = f"_s{len(self.names)}"
        body: list[str] = []
        self._body(schema, resolver, body)
        self.lines += [f"def {name}(x):", *("    " + ln for ln in body), "    return True", ""]
        return name

    def _body(self, s: dict[str, Any], resolver: Resolver, out: list[str]) -> None:
        unknown = set(s) - ANNOTATIONS - KEYWORDS
        if unknown:
            raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported by the compiled validator")
        if "$ref" in s:
            target = resolver.lookup(s["$ref"])
            out.append(f"if not {self.function(target.contents, target.resolver)}(x): return False")
        for sub in s.get("allOf", ()):
            out.append(f"if not {self.function(sub, resolver)}(x): return False")
        if "anyOf" in s:
            alts = " or ".join(f"{self.function(sub, resolver)}(x)" for sub in s["anyOf"])
            out.append(f"if not ({alts}): return False")
        if "type" in s:
            out.append(f"if not ({self._type_test(s['type'], 'x')}): return False")
        if "enum" in s:
            values = s["enum"]
            if all(v is None or isinstance(v, str) for v in values):
                out.append(f"if not ((x is None or type(x) is str) and x in {self.const(frozenset(values))}): "
                           "return False")
            else:
                out.append(f"if canonical(x) not in {self.const({canonical(v) for v in values})}: return False")
        for kw, op in (("minimum", ">="), ("exclusiveMinimum", ">")):
            if kw in s:
                out.append(f"if (type(x) is int or type(x) is float) and not (x {op} {s[kw]!r}): return False")
        self._object(s, resolver, out)
        self._array(s, resolver, out)

    @staticmethod
    def _type_test(t: str | list[str], var: str) -> str:
        names = [t] if isinstance(t, str) else list(t)
        tests = []
        plain = [n for n in names if n != "integer"]
        if plain:
            types = ", ".join(_PY_TYPES[n] for n in plain)
            tests.append(f"type({var}) in ({types},)")
        if "integer" in names:
            tests.append(f"type({var}) is int or (type({var}) is float and {var}.is_integer())")
        return " or ".join(tests)

    def _object(self, s: dict[str, Any], resolver: Resolver, out: list[str]) -> None:
        keys = ("required", "properties", "additionalProperties", "minProperties", "propertyNames")
        if not any(k in s for k in keys):
            return
        out.append("if type(x) is dict:")
        for k in s.get("required", ()):
            out.append(f"    if {k!r} not in x: return False")
        if "minProperties" in s:
            out.append(f"    if len(x) < {int(s['minProperties'])}: return False")
        props = s.get("properties") or {}
        extra = self.function(s["additionalProperties"], resolver) if "additionalProperties" in s else None
        names = self.function(s["propertyNames"], resolver) if "propertyNames" in s else None
        if extra is None and names is None:
            for k, sub in props.items():  # only declared properties matter: look them up
                out.append(f"    v = x.get({k!r}, x)")
                out.append(f"    if v is not x and not ({self.test(sub, resolver, 'v')}): return False")
            return
        out.append("    for k, v in x.items():")
        if names is not None:
            out.append(f"        if not {names}(k): return False")
        if len(props) > 3:  # dispatch by name through a table (filled in once all functions exist)
            table = f"_t{len(self.tail)}"
            entries = ", ".join(f"{k!r}: {self.function(sub, resolver)}" for k, sub in props.items())
            self.tail.append(f"{table} = {{{entries}}}")
            out.append(f"        f = {table}.get(k)")
            out.append("        if f is not None:")
            out.append("            if not f(v): return False")
            if extra is not None:
                out.append(f"        elif not {extra}(v): return False")
            return
        for i, (k, sub) in enumerate(props.items()):
            out.append(f"        {'if' if i == 0 else 'elif'} k == {k!r}:")
            out.append(f"            if not ({self.test(sub, resolver, 'v')}): return False")
        if extra is not None:
            out.append(f"        {'elif' if props else 'if'} not {extra}(v): return False")

    def test(self, schema: Any, resolver: Resolver, var: str) -> str:
        """A boolean expression checking ``var``: inlined for plain type/enum/bound schemas, else a call."""
        while isinstance(schema, dict) and set(schema) - ANNOTATIONS == {"$ref"}:
            target = resolver.lookup(schema["$ref"])
            schema, resolver = target.contents, target.resolver
        if isinstance(schema, dict) and set(schema) - ANNOTATIONS <= {"type", "enum", "minimum", "exclusiveMinimum"} \
                and "enum" not in schema:
            parts = []
            if "type" in schema:
                parts.append(f"({self._type_test(schema['type'], var)})")
            for kw, op in (("minimum", ">="), ("exclusiveMinimum", ">")):
                if kw in schema:
                    parts.append(f"(not (type({var}) is int or type({var}) is float) or {var} {op} {schema[kw]!r})")
            return " and ".join(parts) or "True"
        return f"{self.function(schema, resolver)}({var})"

    def _array(self, s: dict[str, Any], resolver: Resolver, out: list[str]) -> None:
        if not any(k in s for k in ("items", "minItems", "uniqueItems", "contains")):
            return
        out.append("if type(x) is list:")
        if "minItems" in s:
            out.append(f"    if len(x) < {int(s['minItems'])}: return False")
        items = s.get("items")
        if isinstance(items, dict) and set(items) - ANNOTATIONS == {"type"} and "integer" not in (
                [items["type"]] if isinstance(items["type"], str) else items["type"]):
            t = items["type"]
            types = frozenset().union(*({int, float} if n == "number" else {
                {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}[n]}
                for n in ([t] if isinstance(t, str) else t)))
            out.append(f"    if not set(map(type, x)) <= {self.const(types)}: return False")
        elif items is not None:
            out.append("    for v in x:")
            out.append(f"        if not ({self.test(items, resolver, 'v')}): return False")
        if "contains" in s:
            c = s["contains"]
            if c == {"type": "number", "minimum": 0}:
                out.append("    if not any((type(v) is float or type(v) is int) and v >= 0 for v in x): return False")
            else:
                fn = self.function(c, resolver)
                out.append(f"    if not any({fn}(v) for v in x): return False")
        if s.get("uniqueItems"):
            out.append("    if len({canonical(v) for v in x}) != len(x): return False")
