"""REST endpoints around jobs: clusters, users (admins), node states from the scheduler adapter."""

from __future__ import annotations

from quart import Blueprint, Response, current_app, g, request

from cc.db import UserError
from cc.db import _users as users
from cc.webd import health
from cc.webd.auth import rest_route
from cc.webd.errors import APIError, json_response
from cc.webd.params import json_body, query_bool, query_str

bp = Blueprint("admin_api", __name__)


def _ctx():
    return current_app.config["CC"]


async def delete_user_for(admin: str, username: str | None) -> None:
    """Delete a user on behalf of an admin (REST API and settings page alike); never oneself."""
    if not username:
        raise APIError(400, "'username' is required")
    if username == admin:
        raise APIError(403, "you may not delete yourself")
    if not await _ctx().db.write(users.delete_user, username):
        raise APIError(404, f"no user {username!r}")


@bp.route("/api/clusters/", methods=["GET"])
@bp.route("/api/clusters", methods=["GET"])
@rest_route()
async def get_clusters() -> Response:
    ctx = _ctx()
    name = query_str("cluster")
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
    everyone = query_bool("not-just-user")
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
        body = await json_body()
    else:
        body = dict(await request.form)
    changes = {UPDATE_FIELDS[k]: v for k, v in body.items() if k in UPDATE_FIELDS and v}
    unknown = set(body) - set(UPDATE_FIELDS)
    if unknown:
        raise APIError(400, f"unknown field {sorted(unknown)[0]!r} (one of {', '.join(UPDATE_FIELDS)})")
    if len(changes) != 1 or len(body) != 1:
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
    return json_response(await health.update_node_states(_ctx(), await json_body()))
