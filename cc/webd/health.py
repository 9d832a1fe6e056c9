"""Node health from the metric store, and the scheduler's node states (cc-backend's ``updateNodeStates``).

cc-backend routes both ``POST /api/nodestate/`` and ``POST /api/healthcheck`` to its
node-state update; ours also answers cc-metric-store's health check on the latter, so
:func:`is_node_state_body` tells the two bodies apart: cc-backend's lists node objects
(``{"hostname", "states", ...}``), cc-metric-store's lists host names.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from cc.db import INT64_MAX
from cc.db import _nodes as nodes
from cc.webd.errors import APIError
from cc.webd.params import field_int, field_str, only_fields

NODE_FIELDS = ("hostname", "states", "cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning")
MAX_NAME = 255

#: The scheduler adapter and the collectors start together, so the first node-state report arrives before a
#: node can have sent metrics.  For this long after this web process first got a report of a node, "no metric
#: data at all" is still recorded as ``failed`` (cc-backend's rule) but its health data say ``waiting``, and
#: the UI shows a neutral "metrics: waiting" badge instead of a red failure.
HEALTH_GRACE = 120.0
MAX_TRACKED_NODES = 100_000
_first_report: dict[tuple[str, str], float] = {}


def first_report(cluster: str, host: str, now: float) -> float:
    """When this process first got a state report of the node (now, for a new one)."""
    if len(_first_report) >= MAX_TRACKED_NODES and (cluster, host) not in _first_report:
        _first_report.clear()  # hostnames are the client's: never an unbounded map
    return _first_report.setdefault((cluster, host), now)


def waiting_health(health: dict[str, Any], first: float, now: float) -> str | None:
    """The health data of a node still in its grace period without any metric data (else None)."""
    if health.get("State") != "failed" or health.get("degraded") or not health.get("missing") \
            or now - first >= HEALTH_GRACE:
        return None
    return orjson.dumps({"missing": health["missing"], "degraded": [], "waiting": True,
                         "firstReport": int(first)}).decode()


def is_node_state_body(body: Any) -> bool:
    """cc-backend's node-state form: ``nodes`` is a non-empty list of objects."""
    return isinstance(body, dict) and isinstance(body.get("nodes"), list) and bool(body["nodes"]) \
        and all(isinstance(n, dict) for n in body["nodes"])


async def _node_updates(ctx: Any, body: Any, received: int) -> list[nodes.NodeStateUpdate]:
    """Validate a node-state body (every error names the field) and build the rows to insert.

    Health comes from the store holding each node's metrics (built-in or metric-store-external).
    """
    if not isinstance(body, dict):
        raise APIError(400, "parsing request body failed: expected {\"cluster\": ..., \"nodes\": [...]}")
    only_fields(body, ("cluster", "nodes"))
    name = field_str(body, "cluster", required=True, max_length=MAX_NAME)
    raw_nodes = body.get("nodes")
    if not isinstance(raw_nodes, list):
        raise APIError(400, "'nodes' must be a list of {hostname, states, ...}")
    cluster = ctx.clusters.get(name)
    if cluster is None:
        raise APIError(400, f"'cluster': unknown cluster {name!r}")
    checked = []
    for i, n in enumerate(raw_nodes):
        where = f"nodes[{i}]."
        if not isinstance(n, dict):
            raise APIError(400, f"nodes[{i}] must be an object {{hostname, states, ...}}")
        only_fields(n, NODE_FIELDS, where)
        host = field_str(n, "hostname", required=True, non_empty=True, max_length=MAX_NAME, where=where)
        states = n.get("states")
        states = [] if states is None else states
        if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
            raise APIError(400, f"'{where}states' must be a list of strings")
        counts = {k: field_int(n, k, minimum=0, maximum=INT64_MAX, where=where) or 0
                  for k in ("cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning")}
        checked.append((host, nodes.scheduler_state(states), counts))
    health_of = await ctx.sources.health(cluster, [h for h, state, _ in checked if state != "down"])
    updates = []
    for host, state, counts in checked:
        sc = cluster.subcluster_for_host(host)
        health, metrics_json = "full", None
        first = first_report(cluster.name, host, received)
        if state != "down":
            h = health_of.get(host) or {"State": "failed", "HealthMetrics": None}
            health, metrics_json = h["State"], waiting_health(h, first, received) or h["HealthMetrics"]
        updates.append(nodes.NodeStateUpdate(
            hostname=host, cluster=cluster.name, subcluster=sc.name if sc else "", time_stamp=received,
            node_state=state, health_state=health, health_metrics=metrics_json,
            cpus_allocated=counts["cpusAllocated"], memory_allocated=counts["memoryAllocated"],
            gpus_allocated=counts["gpusAllocated"], jobs_running=counts["jobsRunning"]))
    return updates


async def update_node_states(ctx: Any, body: Any) -> dict[str, str]:
    """Store the scheduler states of a node-state body, health taken from the metric store at arrival."""
    updates = await _node_updates(ctx, body, int(time.time()))
    count = await ctx.db.write(nodes.add_node_states, updates)
    return {"msg": f"updated {count} node states"}
