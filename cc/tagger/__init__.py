"""Automatic job tags (cc-backend's ``main.enable-job-taggers``): applications and job classes.

Rules: the defaults shipped in ``cc/tagger/rules`` plus the site's ``var/tagger/apps/*.txt``
and ``var/tagger/jobclasses/*.json`` (see :mod:`cc.tagger._rules`); matching semantics in
:mod:`cc.tagger._taggers`; the bulk run in :mod:`cc.tagger._apply`.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from cc.config import Config, ConfigError
from cc.db import Job
from cc.tagger._apply import KINDS, ApplyResult, apply_all, apply_batch, plan_batch, read_batch
from cc.tagger._rules import SHIPPED, RuleSet, load_rules
from cc.tagger._taggers import APP_TAG_TYPE, CLASS_TAG_TYPE, MESSAGE_KEY, Taggers, strip_comments

__all__ = ["APP_TAG_TYPE", "CLASS_TAG_TYPE", "KINDS", "MESSAGE_KEY", "SHIPPED", "ApplyResult", "RuleSet", "Taggers",
           "apply_all", "apply_batch", "enabled", "for_config", "load_rules", "plan_batch", "read_batch",
           "site_dir", "strip_comments", "tag_start_safely"]

_cache: dict[Path, Taggers] = {}


def enabled(cfg: Config) -> bool:
    """``main.enable-job-taggers`` (default false, as upstream)."""
    v: Any = cfg.main.get("enable-job-taggers", False)
    if not isinstance(v, bool):
        raise ConfigError(f"main.enable-job-taggers must be true or false, not {v!r}")
    return v


def site_dir(cfg: Config) -> Path:
    """The site's rule directory: ``var/tagger`` of the installation (upstream's ``./var/tagger``)."""
    return cfg.var_dir / "tagger"


def for_config(cfg: Config) -> Taggers | None:
    """This process's taggers, or None when ``main.enable-job-taggers`` is off."""
    if not enabled(cfg):
        return None
    d = site_dir(cfg)
    t = _cache.get(d)
    if t is None:
        t = _cache[d] = Taggers(d)
    return t


def tag_start_safely(conn: sqlite3.Connection, taggers: Taggers, job: Job) -> list[str]:
    """App tags inside the start transaction; a tagger failure is logged and never refuses the job."""
    conn.execute("SAVEPOINT app_tagger")
    try:
        names = taggers.tag_start(conn, job)
    except Exception as e:  # noqa: BLE001 - a broken rule must not lose a job start
        conn.execute("ROLLBACK TO app_tagger")
        conn.execute("RELEASE app_tagger")
        logging.getLogger("tagger").error("job %s (jobId %d): app tagger failed: %s", job.id, job.job_id, e,
                                          exc_info=True)
        return []
    conn.execute("RELEASE app_tagger")
    return names
