"""Administration from the web UI's settings page: cc-backend's session-authenticated ``/config/...``
endpoints (users, roles, projects, the notice banner) and ``/frontend/jwt/`` (API tokens).

These use the UI's session cookie, not a JWT: the REST API under ``/api/`` stays
token-only.  Everything here except ``/frontend/jwt/`` for one's own account needs the
admin role.  State-changing requests must come from this server's own pages
(:func:`cc.webd.auth.require_same_origin`: a foreign ``Origin``/``Referer`` is refused, on
top of the ``SameSite=Lax`` session cookie).  Requests take form fields (as cc-backend's
frontend sends them) or a JSON object; answers are JSON (``{"msg": ...}`` or cc's error
shape), except the token, which is plain text as in cc-backend.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from quart import Blueprint, Response, current_app, g, request

from cc.db import ROLES, UserError
from cc.db import _users as users
from cc.fsio import replace_atomically
from cc.jwtauth import AuthError, load_private_key, sign_token
from cc.webd.admin_api import delete_user_for
from cc.webd.auth import require_same_origin, session_viewer
from cc.webd.errors import APIError, json_response

log = logging.getLogger("web.config")
bp = Blueprint("config_api", __name__)

MAX_NOTICE_LENGTH = 10000           # cc-backend's limit
DEFAULT_TOKEN_AGE = 2000 * 3600     # as `cc-supervise jwt` when auth.jwts.max-age is not set
UPDATE_FIELDS = {"add-role": "add_role", "remove-role": "remove_role", "add-project": "add_project",
                 "remove-project": "remove_project"}
MESSAGES = {"add_role": "Add Role Success", "remove_role": "Remove Role Success",
            "add_project": "Add Project Success", "remove_project": "Remove Project Success"}


def _ctx():
    return current_app.config["CC"]


def session_route(admin: bool = True):
    """Endpoints of the UI: a logged-in session (with the admin role unless ``admin=False``), sets ``g.viewer``."""

    def deco(fn: Callable[..., Awaitable[Any]]):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            require_same_origin()
            viewer = await session_viewer()
            if viewer is None or not viewer.roles:
                raise APIError(401, "not logged in")
            if admin and not viewer.has("admin"):
                raise APIError(403, f"user {viewer.username!r} is not an administrator")
            g.viewer = viewer
            return await fn(*args, **kwargs)

        return wrapper

    return deco


async def _fields() -> dict[str, str]:
    """Form fields or a JSON object of strings."""
    raw = await request.get_data()
    if request.is_json or raw.lstrip().startswith(b"{"):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise APIError(400, f"decoding request failed: {e}") from None
        if not isinstance(body, dict):
            raise APIError(400, "decoding request failed: expected an object")
        return {str(k): v if isinstance(v, str) else "" if v is None else str(v) for k, v in body.items()}
    form = await request.form
    out = {k: v for k, v in form.items()}
    out.update({k: v for k, v in request.args.items() if k not in out})
    return out


@bp.route("/config/roles/", methods=["GET"])
@session_route()
async def get_roles() -> Response:
    return json_response(list(ROLES))


@bp.route("/config/users/", methods=["GET"])
@session_route()
async def get_users() -> Response:
    everyone = request.args.get("not-just-user") == "true"
    found = await _ctx().db.read(users.list_users, not everyone)
    return json_response([u.to_json() for u in found])


@bp.route("/config/users/", methods=["POST"])
@session_route()
async def create_user() -> Response:
    f = await _fields()
    username, password, role = (f.get("username") or "").strip(), f.get("password") or "", f.get("role") or "user"
    name, email, project = (f.get("name") or "").strip(), (f.get("email") or "").strip(), (f.get("project") or "").strip()
    if not username or len(username) > 100:
        raise APIError(400, "username must be between 1 and 100 characters")
    if role not in ROLES:
        raise APIError(400, f"unknown role {role!r} (valid: {', '.join(ROLES)})")
    if not password and role != "api":
        raise APIError(400, "only API users are allowed to have a blank password (login will be impossible)")
    if project and role != "manager":
        raise APIError(400, "only managers require a project (can be changed later)")
    if not project and role == "manager":
        raise APIError(400, "managers require a project to manage (can be changed later)")
    try:
        await _ctx().db.write(lambda conn: users.add_user(conn, username, [role], password or None, name or None,
                                                           email or None, [project] if project else []))
    except UserError as e:
        raise APIError(422, f"adding user failed: {e}") from None
    log.info("admin %r created user %r (role %s)", g.viewer.username, username, role)
    return json_response({"msg": f"User {username} successfully created!"})


@bp.route("/config/users/", methods=["DELETE"])
@session_route()
async def delete_user() -> Response:
    username = (await _fields()).get("username") or ""
    await delete_user_for(g.viewer.username, username)
    log.info("admin %r deleted user %r", g.viewer.username, username)
    return json_response({"msg": f"Deleted user {username}"})


@bp.route("/config/user/<username>", methods=["POST"])
@session_route()
async def update_user(username: str) -> Response:
    body = await _fields()
    changes = {UPDATE_FIELDS[k]: v.strip() for k, v in body.items() if k in UPDATE_FIELDS and v and v.strip()}
    if len(changes) != 1:
        raise APIError(400, f"send exactly one of {', '.join(UPDATE_FIELDS)}")
    (field, _), = changes.items()
    if field == "remove_role" and changes[field] == "admin" and username == g.viewer.username:
        raise APIError(422, "you cannot remove your own admin role")
    try:
        await _ctx().db.write(lambda conn: users.update_user(conn, username, **changes))
    except (LookupError, UserError) as e:
        raise APIError(422, str(e).strip("'\"")) from None
    return json_response({"msg": f"{MESSAGES[field]} for user {username}"})


@bp.route("/config/notice/", methods=["POST"])
@session_route()
async def edit_notice() -> Response:
    content = (await _fields()).get("new-content") or ""
    if len(content) > MAX_NOTICE_LENGTH:
        raise APIError(400, f"notice content exceeds maximum length of {MAX_NOTICE_LENGTH} characters")
    try:
        replace_atomically(_ctx().cfg.var_dir / "notice.txt", content.encode(), durable=False)
    except OSError as e:
        log.error("writing %s failed: %s", _ctx().cfg.var_dir / "notice.txt", e)
        raise APIError(500, "writing the notice file failed (the server log says why)") from None
    log.info("admin %r %s the notice", g.viewer.username, "updated" if content.strip() else "cleared")
    return json_response({"msg": "Update Notice Content Success" if content else "Empty Notice Content Success"})


@bp.route("/frontend/jwt/", methods=["GET"])
@session_route(admin=False)
async def get_jwt() -> Response:
    """A fresh token for a user with the roles of the database; admins for anyone, others for themselves."""
    ctx = _ctx()
    username = request.args.get("username") or g.viewer.username
    if username != g.viewer.username and not g.viewer.has("admin"):
        raise APIError(403, "only admins are allowed to sign JWTs not for themselves")
    user = await ctx.db.read(users.get_user, username)
    if user is None:
        raise APIError(404, f"no user {username!r}")
    priv = ctx.cfg.secret("JWT_PRIVATE_KEY")
    if not priv:
        raise APIError(500, "JWT_PRIVATE_KEY is not set: this server cannot sign tokens")
    try:
        token = sign_token(load_private_key(priv), user.username, user.roles, ctx.cfg.jwt_max_age or DEFAULT_TOKEN_AGE)
    except AuthError as e:
        raise APIError(500, str(e)) from None
    log.info("%r generated a JWT for %r", g.viewer.username, username)
    return Response(token, mimetype="text/plain")
