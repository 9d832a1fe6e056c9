"""The two taggers of cc-backend: applications on job start, job classes on job stop.

App tagger: the job script (``metaData.jobScript``) is matched case-insensitively
against every app's patterns; each app with a matching pattern becomes an ``app`` tag
(upstream stops at the first app; a Python driver around LAMMPS is both, so we tag all).
Comments do not count: lines whose first non-blank character is ``#`` -- the shebang and
``#SBATCH``/``#PBS`` directives included, a job *name* is no evidence of what runs -- and
the rest of a line after a blank followed by ``#`` are removed before matching.

Job classifier: for each class, the environment holds ``job.*``, the class's parameters,
and for each of its metrics ``avg``/``min``/``max`` (the archived statistics) and
``limits.peak/normal/caution/alert`` (cluster.json, subcluster overrides applied).  A job
lacking one of the metrics is not classified by that rule.  Requirements must all be
true, then variables are computed in order, then the rule decides; a match adds the
``jobClass`` tag and the rendered hint.  Hints of all matching classes are stored one per
line in the job's ``metaData.message`` (upstream's key; upstream keeps only the last).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from cc.clusters import Cluster
from cc.db import Job
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.tagger._expr import EvalError
from cc.tagger._rules import JobClass, RuleSet, load_rules, stamp

log = logging.getLogger("tagger")

APP_TAG_TYPE = "app"
CLASS_TAG_TYPE = "jobClass"
MESSAGE_KEY = "message"
RELOAD_CHECK_SECONDS = 1.0
_COMMENT_LINE = re.compile(r"^[ \t]*#.*$", re.M)
_TRAILING_COMMENT = re.compile(r"[ \t]+#.*$", re.M)


def strip_comments(script: str) -> str:
    """The script without comment lines and trailing comments (what is matched)."""
    return _TRAILING_COMMENT.sub("", _COMMENT_LINE.sub("", script))


def metric_limits(cluster: Cluster | None, subcluster: str, metric: str) -> dict[str, float]:
    limits = {"peak": 0.0, "normal": 0.0, "caution": 0.0, "alert": 0.0}
    if cluster is None:
        return limits
    sc = cluster.subcluster(subcluster) or (cluster.subclusters[0] if cluster.subclusters else None)
    m = (sc.metrics.get(metric) if sc else None) or cluster.metrics.get(metric)
    if m is not None:
        for k in limits:
            v = m.raw.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                limits[k] = float(v)
    return limits


def job_env(job: Job) -> dict[str, Any]:
    return {"shared": job.shared, "duration": job.duration, "numCores": job.num_hwthreads,
            "numNodes": job.num_nodes, "jobState": job.state, "numAcc": job.num_acc, "smt": job.smt,
            "walltime": job.walltime}


class Taggers:
    """Loaded rules, reloaded when a rule file changes (checked at most once a second)."""

    def __init__(self, site_dir: Path | None):
        self.site_dir = site_dir
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = 0.0
        self.rules = RuleSet()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> RuleSet:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._checked < RELOAD_CHECK_SECONDS:
                return self.rules
            self._checked = now
            st = stamp(self.site_dir)
            if st != self._stamp:
                rules = load_rules(self.site_dir)
                for e in rules.errors:
                    log.error("tagger rule skipped: %s", e)
                log.info("tagger rules loaded: %d apps, %d job classes%s", len(rules.apps), len(rules.classes),
                         f", {len(rules.errors)} errors" if rules.errors else "")
                self.rules, self._stamp = rules, st
            return self.rules

    # -- matching (pure) --------------------------------------------------------------------

    def apps_of(self, script: str) -> list[str]:
        text = strip_comments(script)
        return [a.name for a in self.refresh().apps if any(p.search(text) for p in a.patterns)]

    def classify(self, job: Job, statistics: dict[str, Any], cluster: Cluster | None) -> list[tuple[str, str]]:
        """(tag, hint) of every job class that matches."""
        out = []
        base = job_env(job)
        limits: dict[tuple[str, str], dict[str, float]] = {}
        for jc in self.refresh().classes:
            try:
                hint = evaluate(jc, base, job, statistics, cluster, limits)
            except EvalError as e:
                log.warning("job class %s (%s) on job %s: %s", jc.tag, jc.source, job.id, e)
                continue
            if hint is not None:
                out.append((jc.tag, hint))
        return out

    # -- applying (on a connection inside a transaction) ------------------------------------

    def tag_start(self, conn: sqlite3.Connection, job: Job) -> list[str]:
        script = job.meta_data.get("jobScript") if job.meta_data else None
        if not isinstance(script, str) or not script or job.id is None:
            return []
        names = self.apps_of(script)
        for name in names:
            tags.add_tag(conn, None, job.id, APP_TAG_TYPE, name, "global")
        return names

    def tag_stop(self, conn: sqlite3.Connection, job: Job, statistics: dict[str, Any] | None,
                 cluster: Cluster | None) -> list[str]:
        if not statistics or job.id is None:
            return []
        found = self.classify(job, statistics, cluster)
        for tag, _ in found:
            tags.add_tag(conn, None, job.id, CLASS_TAG_TYPE, tag, "global")
        if found:
            message = "\n".join(h for _, h in found if h)
            if message and (job.meta_data or {}).get(MESSAGE_KEY) != message:
                job.meta_data = jobs.edit_meta(conn, job.id, MESSAGE_KEY, message) or job.meta_data
        return [t for t, _ in found]


def evaluate(jc: JobClass, base: dict[str, Any], job: Job, statistics: dict[str, Any],
             cluster: Cluster | None, limits: dict[tuple[str, str], dict[str, float]]) -> str | None:
    """The hint if the class matches the job, None if not (or a metric is missing)."""
    env: dict[str, Any] = dict(jc.params)
    env["job"] = base
    for m in jc.metrics:
        st = statistics.get(m)
        if not isinstance(st, dict):
            return None
        key = (m, job.subcluster)
        lim = limits.get(key)
        if lim is None:
            lim = limits[key] = metric_limits(cluster, job.subcluster, m)
        env[m] = {"avg": st.get("avg"), "min": st.get("min"), "max": st.get("max"), "limits": lim}
    for req in jc.requirements:
        ok = req(env)
        if not isinstance(ok, bool):
            raise EvalError(f"requirement {req.text!r} gave {ok!r}, not true/false")
        if not ok:
            return None
    for name, ex in jc.variables:
        env[name] = ex(env)
    ok = jc.rule(env)
    if not isinstance(ok, bool):
        raise EvalError(f"rule {jc.rule.text!r} gave {ok!r}, not true/false")
    return jc.hint.render(env) if ok else None
