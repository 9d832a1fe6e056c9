"""``cc-supervise report``: one job's efficiency (or a table of a user's jobs) for support staff and users."""

from __future__ import annotations

import time
from typing import Any

from cc.config import Config
from cc.report._figures import figures
from cc.report._load import JobRecord, ReportError, find_job, load_data, parse_since, user_jobs
from cc.report._render import render, render_table

__all__ = ["JobRecord", "ReportError", "build", "find_job", "hints", "parse_since", "render", "render_table",
           "user_jobs"]


def emission_constant(cfg: Config) -> float | None:
    v = cfg.main.get("emission-constant")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0 else None


def hints(rec: JobRecord) -> list[str]:
    """Job-class hints: tags of type ``jobClass`` and metaData entries a tagger left (``message``, ``*hint*``)."""
    out = [t.name for t in rec.tags if t.type == "jobClass"]
    for key, value in sorted((rec.job.meta_data or {}).items()):
        if key == "message" or "hint" in key.lower():
            out.append(f"{key}: {value}")
    return out


def build(cfg: Config, rec: JobRecord, now: float | None = None) -> dict[str, Any]:
    """The report of one job as a JSON-able document (what ``--json`` prints)."""
    data = load_data(cfg, rec)
    rep = figures(rec.job, rec.cluster, data, now=now or time.time(), emission_constant=emission_constant(cfg))
    rep["source"] = rec.source
    rep["tags"] = [t.to_json() for t in rec.tags]
    rep["hints"] = hints(rec)
    return rep
