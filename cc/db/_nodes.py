"""Nodes and their scheduler/health states over time (``node``, ``node_state``)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

NODE_STATES = ("allocated", "reserved", "idle", "mixed", "down", "unknown")
HEALTH_STATES = ("full", "partial", "failed")


@dataclass
class NodeStateUpdate:
    hostname: str
    cluster: str
    subcluster: str
    time_stamp: int
    node_state: str
    health_state: str
    health_metrics: str | None = None
    cpus_allocated: int = 0
    memory_allocated: int = 0
    gpus_allocated: int = 0
    jobs_running: int = 0


def scheduler_state(states: list[str]) -> str:
    """Slurm's state strings → one of NODE_STATES (cc-backend's precedence)."""
    s = {x.lower() for x in states}
    if "allocated" in s:
        return "allocated"
    if "reserved" in s:
        return "reserved"
    if "idle" in s and "down" in s:
        return "down"
    if "idle" in s:
        return "idle"
    if "down" in s:
        return "down"
    if "mixed" in s:
        return "mixed"
    return "unknown"


def node_id(conn: sqlite3.Connection, hostname: str, cluster: str, subcluster: str) -> int:
    row = conn.execute("SELECT id FROM node WHERE hostname = ? AND cluster = ?", (hostname, cluster)).fetchone()
    if row:
        return row[0]
    cur = conn.execute("INSERT INTO node (hostname, cluster, subcluster) VALUES (?, ?, ?)",
                       (hostname, cluster, subcluster))
    return int(cur.lastrowid)


def add_node_states(conn: sqlite3.Connection, updates: list[NodeStateUpdate]) -> int:
    rows = []
    for u in updates:
        nid = node_id(conn, u.hostname, u.cluster, u.subcluster)
        rows.append((u.time_stamp, u.jobs_running, u.cpus_allocated, u.memory_allocated, u.gpus_allocated,
                     u.node_state, u.health_state, u.health_metrics, nid))
    conn.executemany("INSERT INTO node_state (time_stamp, jobs_running, cpus_allocated, memory_allocated, "
                     "gpus_allocated, node_state, health_state, health_metrics, node_id) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def latest_node_states(conn: sqlite3.Connection, cluster: str | None = None) -> list[dict[str, Any]]:
    """The newest state of every node (optionally of one cluster)."""
    sql = ("SELECT node.hostname, node.cluster, node.subcluster, s.time_stamp, s.node_state, s.health_state, "
           "s.health_metrics, s.cpus_allocated, s.memory_allocated, s.gpus_allocated, s.jobs_running "
           "FROM node JOIN node_state AS s ON s.node_id = node.id "
           "WHERE s.time_stamp = (SELECT max(time_stamp) FROM node_state WHERE node_id = node.id)")
    params: list[Any] = []
    if cluster:
        sql += " AND node.cluster = ?"
        params.append(cluster)
    keys = ("hostname", "cluster", "subCluster", "timeStamp", "schedulerState", "healthState", "healthMetrics",
            "cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning")
    return [dict(zip(keys, r, strict=True)) for r in conn.execute(sql + " ORDER BY node.cluster, node.hostname",
                                                                  params)]
