"""cc-backend's user API (``/userapi/jobs/...``) and the UI's ``POST /frontend/configuration/``.

``/userapi`` serves the job reads of ``/api/jobs`` to people: any token with a role
(user, manager, support, admin or api) is accepted, and the caller sees the jobs its
role allows (a user only their own).  ``/api/jobs`` itself needs the ``api`` role, as in
cc-backend.  Unlike cc-backend, which also wants the ``api`` role on ``/userapi``, a
plain user token (as the settings page hands out) is enough here: that is the point of a
user-scoped API.  ``main.api-allowed-ips`` does not apply (as in cc-backend).
"""

from __future__ import annotations

import orjson
from quart import Blueprint, Response, current_app, g

from cc.db import ROLES
from cc.db._users import get_user, set_config
from cc.webd import jobs_api
from cc.webd.auth import rest_route
from cc.webd.config_api import _fields, session_route
from cc.webd.errors import APIError
from cc.webd.graphql.mutations import MAX_CONFIG_BYTES

bp = Blueprint("userapi", __name__)

user_route = rest_route(*ROLES, check_ip=False)


@bp.route("/userapi/jobs/", methods=["GET"])
@bp.route("/userapi/jobs", methods=["GET"])
@user_route
async def user_jobs() -> Response:
    return await jobs_api.list_jobs()


@bp.route("/userapi/jobs/<jobid:raw_id>", methods=["GET"])
@user_route
async def user_complete_job(raw_id: str) -> Response:
    return await jobs_api.complete_job(raw_id)


@bp.route("/userapi/jobs/<jobid:raw_id>", methods=["POST"])
@user_route
async def user_job_metrics_by_list(raw_id: str) -> Response:
    return await jobs_api.job_metrics_by_list(raw_id)


@bp.route("/userapi/jobs/metrics/<raw_id>", methods=["GET"])
@user_route
async def user_job_metrics(raw_id: str) -> Response:
    return await jobs_api.job_metrics(raw_id)


@bp.route("/frontend/configuration/", methods=["POST"])
@session_route(admin=False)
async def update_configuration() -> Response:
    """One UI setting of the logged-in user (form fields ``key`` and ``value``, JSON text), as cc-backend.

    The same table as GraphQL's ``updateConfiguration``; answers ``success`` in plain text.
    """
    f = await _fields()
    key, value = f.get("key") or "", f.get("value")
    if not key.strip() or len(key) > 255:
        raise APIError(400, "'key': must be a non-empty key of at most 255 characters")
    if value is None:
        raise APIError(400, "'value' is required (JSON text)")
    if len(value) > MAX_CONFIG_BYTES:
        raise APIError(400, f"'value': larger than {MAX_CONFIG_BYTES} bytes")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise APIError(400, f"'value': not JSON text ({e})") from None
    username = g.viewer.username

    def update(conn) -> bool:
        if get_user(conn, username) is None:
            return False
        set_config(conn, username, key, decoded)
        return True

    if not await current_app.config["CC"].db.write(update):
        raise APIError(422, f"user {username!r} is not in the user database: settings cannot be stored")
    return Response("success", mimetype="text/plain")
