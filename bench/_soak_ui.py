"""The GraphQL queries the web UI sends, read from its own source (``frontend/static/js``).

Why read them from the JavaScript instead of copying them: the soak must exercise what
browsers really send; a copy would drift.  Each page module declares its queries as
``const NAME = `...```; fields shared between modules (``JOB_FIELDS``, ``METRIC_FIELDS``)
are ``${NAME}`` substitutions resolved here the way the browser resolves the imports.
A query the soak needs that disappears from the UI is an error naming file and constant.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

JS = Path(__file__).resolve().parents[1] / "frontend" / "static" / "js"

_CONST = re.compile(r'^(?:export\s+)?const\s+([A-Z][A-Z0-9_]*)\s*=\s*(`[^`]*`|"[^"\n]*")\s*;', re.M)
_SUBST = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _constants(path: Path) -> dict[str, str]:
    return {name: raw[1:-1] for name, raw in _CONST.findall(path.read_text())}


def load_queries(js_dir: Path = JS) -> dict[str, str]:
    """``"<module>.<CONST>"`` (module = file name without ``.js``, pages too) -> query text, substituted."""
    files = sorted(js_dir.glob("*.js")) + sorted((js_dir / "pages").glob("*.js"))
    per_file = {p.stem if p.parent == js_dir else f"pages/{p.stem}": _constants(p) for p in files}
    exported = {k: v for name, consts in per_file.items() if "/" not in name for k, v in consts.items()}
    out: dict[str, str] = {}
    for module, consts in per_file.items():
        for name, text in consts.items():
            def sub(m: re.Match, module=module, consts=consts, name=name) -> str:
                ref = m.group(1)
                value = consts.get(ref, exported.get(ref))
                if value is None:
                    raise LookupError(f"{js_dir}/{module}.js: {name} uses ${{{ref}}}, which no module defines")
                return value
            out[f"{module}.{name}"] = _SUBST.sub(sub, text)
    return out


def joblist_metrics_query(queries: dict[str, str], n: int) -> str:
    """What ``metricsQuery(n)`` in joblist.js builds: the metric data of ``n`` jobs in one request."""
    fields = queries["joblist.METRIC_FIELDS"]
    decl = ", ".join(f"$i{i}: ID!" for i in range(n))
    body = "\n".join(f"j{i}: jobMetrics(id: $i{i}, metrics: $metrics, scopes: [node]) {{ {fields} }}" for i in range(n))
    return f"query({decl}, $metrics: [String!]) {{\n{body}\n}}"


NEEDED = (
    "gql.CLUSTERS_QUERY", "joblist.JOBS_QUERY", "joblist.METRIC_FIELDS",
    "pages/job.JOB_QUERY", "pages/job.INITIAL_QUERY", "pages/job.METRICS_QUERY", "pages/job.STATS_QUERY",
    "pages/job.SCOPED_STATS_QUERY", "pages/systems.DATA_QUERY", "pages/systems.NODES_QUERY",
    "pages/node.DATA_QUERY", "pages/node.INFO_QUERY", "pages/status.QUERY", "pages/list.QUERY",
    "pages/user.STATS_QUERY", "pages/analysis.STATS_QUERY",
)

TAGS_QUERY = "{ tags { id type name scope } }"  # inline in several page modules


@dataclass
class Request:
    """One GraphQL request of a page view: a name for the statistics, the query, its variables."""

    name: str
    query: str
    variables: dict[str, Any] = field(default_factory=dict)


class PageViews:
    """Page loads of the UI as sequences of GraphQL requests, with the variables the pages send.

    ``cluster``, ``hosts``, and the metric names by scope describe the soak's cluster; job
    ids come from the caller (the jobs it started).
    """

    def __init__(self, cluster: str, hosts: list[str], metrics: dict[str, str], rng: random.Random):
        q = load_queries()
        missing = [k for k in NEEDED if k not in q]
        if missing:
            raise LookupError(f"the UI no longer declares {', '.join(missing)} in {JS}: update bench/_soak_ui.py")
        self.q, self.cluster, self.hosts, self.metrics, self.rng = q, cluster, hosts, metrics, rng

    def _range(self, now: int, seconds: int) -> tuple[str, str]:
        from datetime import datetime

        def iso(t: int) -> str:
            return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return iso(now - seconds), iso(now)

    def job_list(self, job_ids: list[int]) -> list[Request]:
        """/monitoring/jobs/: cluster info, tags, a page of jobs, their metric plots in batches of 10."""
        q, c = self.q, self.cluster
        filt = [{"cluster": {"eq": c}}] + ([{"state": ["running"]}] if self.rng.random() < 0.5 else [])
        order = self.rng.choice([{"field": "startTime", "type": "col", "order": "DESC"},
                                 {"field": "duration", "type": "col", "order": "ASC"},
                                 {"field": "numNodes", "type": "col", "order": "DESC"}])
        out = [Request("clusters", q["gql.CLUSTERS_QUERY"]), Request("tags", TAGS_QUERY),
               Request("jobs", q["joblist.JOBS_QUERY"], {"filter": filt, "order": order,
                                                          "page": {"itemsPerPage": 50, "page": 1}})]
        ids = job_ids[-20:]
        metrics = sorted(self.metrics)[:4]
        for i in range(0, len(ids), 10):
            batch = ids[i:i + 10]
            out.append(Request("jobMetrics batch", joblist_metrics_query(q, len(batch)),
                               {**{f"i{k}": str(j) for k, j in enumerate(batch)}, "metrics": metrics}))
        return out

    def job_view(self, job_id: int) -> list[Request]:
        """/monitoring/job/<id>: the job, its plots (native scopes), statistics, one re-scoped plot."""
        q = self.q
        cpu = sorted(self.metrics)
        node_metrics = [m for m, s in self.metrics.items() if s == "node"]
        some = self.rng.choice(cpu)
        return [
            Request("clusters", q["gql.CLUSTERS_QUERY"]),
            Request("job", q["pages/job.JOB_QUERY"], {"id": str(job_id)}),
            Request("job initial metrics", q["pages/job.INITIAL_QUERY"],
                    {"id": str(job_id), "cpu": cpu, "acc": [], "cpuScopes": ["node", "socket", "hwthread"],
                     "accScopes": ["accelerator"]}),
            Request("jobStats", q["pages/job.STATS_QUERY"], {"id": str(job_id), "metrics": node_metrics}),
            Request("scopedJobStats", q["pages/job.SCOPED_STATS_QUERY"],
                    {"id": str(job_id), "metrics": cpu, "scopes": ["node"]}),
            Request("jobMetrics", q["pages/job.METRICS_QUERY"],
                    {"id": str(job_id), "metrics": [some], "scopes": [self.metrics[some]], "res": None}),
        ]

    def systems(self, now: int) -> list[Request]:
        """/monitoring/systems/<cluster>: one metric of every node over the last 15 minutes."""
        frm, to = self._range(now, 900)
        metric = self.rng.choice(sorted(self.metrics))
        return [Request("clusters", self.q["gql.CLUSTERS_QUERY"]),
                Request("nodeMetrics (all nodes)", self.q["pages/systems.DATA_QUERY"],
                        {"cluster": self.cluster, "metrics": [metric], "from": frm, "to": to, "res": 60}),
                Request("nodes", self.q["pages/systems.NODES_QUERY"], {"cluster": self.cluster})]

    def node(self, now: int) -> list[Request]:
        """/monitoring/node/<cluster>/<host>: node info, its jobs, every metric at node scope."""
        host = self.rng.choice(self.hosts)
        frm, to = self._range(now, 600)
        base = [{"cluster": {"eq": self.cluster}}, {"node": {"eq": host}}]
        return [Request("clusters", self.q["gql.CLUSTERS_QUERY"]),
                Request("node info", self.q["pages/node.INFO_QUERY"],
                        {"cluster": self.cluster, "host": host, "running": [*base, {"state": ["running"]}],
                         "recent": [*base, {"state": ["completed", "failed", "cancelled"]}]}),
                Request("nodeMetrics (one node)", self.q["pages/node.DATA_QUERY"],
                        {"cluster": self.cluster, "nodes": [host], "metrics": sorted(self.metrics),
                         "scopes": ["node"], "from": frm, "to": to, "res": None})]

    def status(self, now: int) -> list[Request]:
        """/monitoring/status/<cluster>: allocation, top users/projects, histograms, flop rate and bandwidth."""
        frm, to = self._range(now, 300)
        flt = [{"cluster": {"eq": self.cluster}}, {"state": ["running"]}]
        return [Request("clusters", self.q["gql.CLUSTERS_QUERY"]),
                Request("status", self.q["pages/status.QUERY"],
                        {"cluster": self.cluster, "filter": flt, "sortBy": "TOTALNODES", "from": frm, "to": to,
                         "metrics": ["flops_any", "mem_bw"]})]

    def statistics(self) -> list[Request]:
        """/monitoring/users/, a user page and the analysis view's totals."""
        flt = [{"cluster": {"eq": self.cluster}}]
        return [Request("users list", self.q["pages/list.QUERY"], {"filter": flt, "groupBy": "USER"}),
                Request("user stats", self.q["pages/user.STATS_QUERY"],
                        {"filter": [*flt, {"user": {"eq": "alice"}}], "metrics": ["flops_any", "cpu_load"],
                         "bins": "1h", "mbins": 10}),
                Request("analysis stats", self.q["pages/analysis.STATS_QUERY"],
                        {"filter": flt, "groupBy": "PROJECT", "sortBy": "TOTALJOBS"})]

    def random_view(self, now: int, running: list[int], finished: list[int]) -> tuple[str, list[Request]]:
        """One page load, weighted as people use the UI: mostly job lists and job views."""
        kinds = ["job list", "job list", "systems", "node", "status", "statistics"]
        if running or finished:
            kinds += ["job view"] * 3
        kind = self.rng.choice(kinds)
        if kind == "job list":
            return kind, self.job_list(running + finished)
        if kind == "job view":
            pool = running if running and (not finished or self.rng.random() < 0.6) else finished
            return kind, self.job_view(self.rng.choice(pool))
        if kind == "systems":
            return kind, self.systems(now)
        if kind == "node":
            return kind, self.node(now)
        if kind == "status":
            return kind, self.status(now)
        return kind, self.statistics()
