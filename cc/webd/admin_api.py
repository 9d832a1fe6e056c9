"""REST endpoints around jobs: clusters, users (admins), node states from the scheduler adapter."""

from __future__ import annotations

import time

import orjson
from quart import Blueprint, Response, current_app, g, request

from cc.db import UserError
from cc.db import _nodes as nodes
from cc.db import _users as users
from cc.webd.auth import rest_route
from cc.webd.errors import APIError, json_response

bp = Blueprint("admin_api", __name__)


def _ctx():
    return current_app.config["CC"]


async def delete_user_for(admin: str, username: str | None) -> None:
    """Delete a user on behalf of an admin (REST API and settings page alike); never oneself."""
    if not username:
        raise APIError(400, "'username' is required")
    if username == admin:
        raise APIError(422, "you cannot delete yourself")
    if not await _ctx().db.write(users.delete_user, username):
        raise APIError(404, f"no user {username!r}")


@bp.route("/api/clusters/", methods=["GET"])
@bp.route("/api/clusters", methods=["GET"])
@rest_route()
async def get_clusters() -> Response:
    ctx = _ctx()
    name = request.args.get("cluster")
    if name:
        if name not in ctx.clusters:
            raise APIError(400, f"unknown cluster: {name}")
        found = [ctx.clusters[name]]
    else:
        found = list(ctx.clusters.values())
    return json_response({"clusters": [c.raw for c in found]})


@bp.route("/api/users/", methods=["GET"])
@bp.route("/api/users", methods=["GET"])
@rest_route("admin")
async def get_users() -> Response:
    everyone = request.args.get("not-just-user") == "true"
    found = await _ctx().db.read(users.list_users, not everyone)
    return json_response([u.to_json() for u in found])


@bp.route("/api/users/", methods=["DELETE"])
@bp.route("/api/users", methods=["DELETE"])
@rest_route("admin")
async def delete_user() -> Response:
    form = await request.form
    username = form.get("username") or request.args.get("username")
    await delete_user_for(g.viewer.username, username)
    return json_response({"msg": f"Deleted user {username}"})


UPDATE_FIELDS = {"add-role": "add_role", "remove-role": "remove_role", "add-project": "add_project",
                 "remove-project": "remove_project"}
MESSAGES = {"add_role": "Add Role Success", "remove_role": "Remove Role Success",
            "add_project": "Add Project Success", "remove_project": "Remove Project Success"}


@bp.route("/api/user/<username>", methods=["POST"])
@rest_route("admin")
async def update_user(username: str) -> Response:
    if request.is_json or (await request.get_data()).lstrip().startswith(b"{"):
        try:
            body = orjson.loads(await request.get_data())
        except orjson.JSONDecodeError as e:
            raise APIError(400, f"decoding request failed: {e}") from None
        if not isinstance(body, dict):
            raise APIError(400, "decoding request failed: expected an object")
    else:
        body = dict(await request.form)
    changes = {UPDATE_FIELDS[k]: v for k, v in body.items() if k in UPDATE_FIELDS and v}
    unknown = set(body) - set(UPDATE_FIELDS)
    if unknown:
        raise APIError(400, f"unknown field {sorted(unknown)[0]!r} (one of {', '.join(UPDATE_FIELDS)})")
    if len(changes) != 1:
        raise APIError(400, f"send exactly one of {', '.join(UPDATE_FIELDS)}")
    (field, value), = changes.items()
    if not isinstance(value, str):
        raise APIError(400, f"'{field.replace('_', '-')}' must be a string")
    try:
        await _ctx().db.write(lambda conn: users.update_user(conn, username, **changes))
    except LookupError as e:
        raise APIError(422, str(e)) from None
    except UserError as e:
        raise APIError(422, str(e)) from None
    return json_response({"msg": f"{MESSAGES[field]} for user {username}"})


@bp.route("/api/nodestate/", methods=["POST", "PUT"])
@bp.route("/api/nodestate", methods=["POST", "PUT"])
@rest_route("api")
async def update_node_states() -> Response:
    ctx = _ctx()
    try:
        body = orjson.loads(await request.get_data())
    except orjson.JSONDecodeError as e:
        raise APIError(400, f"parsing request body failed: {e}") from None
    if not isinstance(body, dict) or not isinstance(body.get("cluster"), str) or not isinstance(body.get("nodes"),
                                                                                                  list):
        raise APIError(400, "expected {\"cluster\": ..., \"nodes\": [{hostname, states, ...}]}")
    cluster = ctx.clusters.get(body["cluster"])
    if cluster is None:
        raise APIError(400, f"unknown cluster: {body['cluster']}")
    received = int(time.time())
    checked = []
    for i, n in enumerate(body["nodes"]):
        if not isinstance(n, dict) or not isinstance(n.get("hostname"), str) or not n["hostname"]:
            raise APIError(400, f"nodes[{i}].hostname is required")
        states = n.get("states") or []
        if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
            raise APIError(400, f"nodes[{i}].states must be a list of strings")
        for key in ("cpusAllocated", "memoryAllocated", "gpusAllocated", "jobsRunning"):
            v = n.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise APIError(400, f"nodes[{i}].{key} must be a non-negative integer")
        checked.append((n, nodes.scheduler_state(states)))
    # health from the store that holds each node's metrics (metric-store-external or built-in)
    health_of = await ctx.sources.health(cluster, [n["hostname"] for n, state in checked if state != "down"])
    updates = []
    for n, state in checked:
        sc = cluster.subcluster_for_host(n["hostname"])
        health, metrics_json = "full", None
        if state != "down":
            h = health_of.get(n["hostname"]) or {"State": "failed", "HealthMetrics": None}
            health, metrics_json = h["State"], h["HealthMetrics"]
        updates.append(nodes.NodeStateUpdate(
            hostname=n["hostname"], cluster=cluster.name, subcluster=sc.name if sc else "", time_stamp=received,
            node_state=state, health_state=health, health_metrics=metrics_json,
            cpus_allocated=n.get("cpusAllocated", 0), memory_allocated=n.get("memoryAllocated", 0),
            gpus_allocated=n.get("gpusAllocated", 0), jobs_running=n.get("jobsRunning", 0)))
    count = await ctx.db.write(nodes.add_node_states, updates)
    return json_response({"msg": f"updated {count} node states"})
