"""``schemas/openapi.yaml`` as this installation serves it (Swagger UI in dev mode).

The file is exact for every installation; a few values are exact only for one: the
configured clusters and subclusters.  Schemas marked ``x-cc-enum: clusters`` (or
``subclusters``) get those names as ``enum`` here, so Swagger UI offers them and a
tool generating requests from the served description (schemathesis in
``tests/test_schemathesis.py``) reaches the accepting paths of the code.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

from cc.clusters import Cluster

OPENAPI = Path(__file__).resolve().parents[2] / "schemas" / "openapi.yaml"


@functools.cache
def _spec() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text())


def _names(clusters: dict[str, Cluster], kind: str) -> list[str]:
    if kind == "clusters":
        return sorted(clusters)
    if kind == "subclusters":
        return sorted({sc.name for c in clusters.values() for sc in c.subclusters})
    raise ValueError(f"x-cc-enum: unknown kind {kind!r} in {OPENAPI}")


def _narrow(node: Any, clusters: dict[str, Cluster]) -> None:
    if isinstance(node, dict):
        kind = node.get("x-cc-enum")
        if kind is not None:
            names = _names(clusters, kind)
            node.pop("pattern", None)
            node["enum"] = names + [""] if node.get("x-cc-enum-empty") else names
            if node.get("nullable"):
                node["enum"].append(None)
        for value in node.values():
            _narrow(value, clusters)
    elif isinstance(node, list):
        for value in node:
            _narrow(value, clusters)


def installation_spec(clusters: dict[str, Cluster]) -> dict[str, Any]:
    """The OpenAPI document with this installation's cluster and subcluster names as enums."""
    doc = copy.deepcopy(_spec())
    _narrow(doc, clusters)
    return doc


def installation_yaml(clusters: dict[str, Cluster]) -> str:
    return yaml.safe_dump(installation_spec(clusters), sort_keys=False, allow_unicode=True)
