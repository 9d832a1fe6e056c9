"""Reading archives written in the field: schema deviations that do not stop a job from being used.

cc-backend itself imports archives whose files stray from the strict schemas (a
``unit.base`` of ``load`` for ``cpu_load``, an unknown prefix, an extra field), so
``init-db`` and ``import-job`` take such jobs too: :func:`check` separates the errors that
make a job unusable (a missing required field, a wrong identity or shape field that the
database row or the archive path is built from) from mere deviations, which are collected
by :class:`Deviations` and reported once per kind (field and message), naming the first
file and how many files share it.  What cc-py writes is still checked strictly.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from cc.archive._schema import SchemaError, _uri, _validator, describe, is_valid

# meta.json fields the job row, its archive path or its checks are built from: an error there is fatal
ESSENTIAL = frozenset({"jobId", "user", "project", "cluster", "subCluster", "numNodes", "numHwthreads", "numAcc",
                       "shared", "startTime", "jobState", "duration", "walltime", "resources", "arrayJobId",
                       "monitoringStatus", "submitTime", "smt", "statistics", "tags"})
MAX_ERRORS = 200  # per document; more deviations than that in one file are summarised by the first ones
_INDEX = re.compile(r"\[\d+\]")


def _fatal(kind: str, err) -> bool:
    parts = list(err.absolute_path)
    if err.validator == "required" or not parts:
        return True
    if kind == "job-meta":
        top = parts[0]
        if top in ESSENTIAL:
            # inside statistics only the shape matters (objects of numbers); units and the like are descriptive
            return not (top == "statistics" and len(parts) >= 3 and parts[2] == "unit")
    if kind == "job-data":
        return len(parts) < 3 or parts[2] not in ("unit",)  # metric -> scope -> {unit: ...} is descriptive
    return False


def check(kind: str, doc: Any) -> list[tuple[str, str]]:
    """(field, message) of every tolerated deviation of ``doc`` from schema ``kind``; SchemaError if unusable."""
    if is_valid(kind, doc):
        return []
    out: list[tuple[str, str]] = []
    for err in itertools.islice(_validator(_uri(kind, False)).iter_errors(doc), MAX_ERRORS):
        path, message = describe(err)
        if _fatal(kind, err):
            raise SchemaError(f"{path}: {message}", path)
        out.append((path, message))
    if not out:  # the compiled check and jsonschema disagree: trust jsonschema, which found nothing
        return []
    return out


@dataclass
class Deviations:
    """Tolerated deviations by kind: ``(field with list indices as [*], message)`` -> first file, count."""

    kinds: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def add(self, path: str, devs: list[tuple[str, str]]) -> None:
        seen: set[tuple[str, str]] = set()
        for fld, message in devs:
            key = (_INDEX.sub("[*]", fld), _INDEX.sub("[*]", message))
            if key in seen:
                continue
            seen.add(key)
            entry = self.kinds.get(key)
            if entry is None:
                self.kinds[key] = [path, fld, message, 1]
            else:
                entry[3] += 1

    def __len__(self) -> int:
        return len(self.kinds)

    def warnings(self) -> list[str]:
        """One line per kind: first file, field, message, and how many files have it."""
        return [f"{first}: {fld}: {message} (accepted: outside the schema, but usable"
                + (f"; {n} files have this)" if n > 1 else ")")
                for first, fld, message, n in self.kinds.values()]

