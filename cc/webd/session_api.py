"""Admins list and end users' web sessions: ``/api/user/{name}/sessions`` (JWT, REST) and
``/config/user/{name}/sessions`` (the settings page's session cookie).

``GET`` lists the live sessions (``id`` - a prefix of the stored hash, enough to name one
session and useless as a cookie -, ``created``, ``expires``, ``ip``, ``userAgent``);
``DELETE`` ends all of them or, with ``?id=``, one.  An ended session is refused at its
next request by every process.
"""

from __future__ import annotations

import logging
import re
import time

from quart import Blueprint, Response, current_app, g, request

from cc.db import _sessions as store
from cc.db._users import get_user
from cc.webd.auth import rest_route
from cc.webd.config_api import session_route
from cc.webd.errors import APIError, json_response

log = logging.getLogger("web.sessions")
bp = Blueprint("session_api", __name__)

_ID = re.compile(rf"[0-9a-f]{{{store.LISTED_ID_CHARS}}}")


async def _list(username: str) -> Response:
    db = current_app.config["CC"].db
    if await db.read(get_user, username) is None:
        raise APIError(404, f"no user {username!r}")
    return json_response(await db.read(store.list_sessions, username, int(time.time())))


async def _end(username: str) -> Response:
    db = current_app.config["CC"].db
    if await db.read(get_user, username) is None:
        raise APIError(404, f"no user {username!r}")
    one = request.args.get("id")
    if one is not None and not _ID.fullmatch(one):
        raise APIError(400, f"'id' must be the {store.LISTED_ID_CHARS} hex characters a session is listed with")
    n = await db.write(store.end_user_sessions, username, one)
    if one is not None and n == 0:
        raise APIError(404, f"user {username!r} has no session {one!r}")
    log.info("%r ended %d session(s) of %r", g.viewer.username, n, username)
    return json_response({"msg": f"ended {n} session(s) of {username}", "ended": n})


@bp.route("/api/user/<username>/sessions", methods=["GET"])
@rest_route("admin")
async def rest_list(username: str) -> Response:
    return await _list(username)


@bp.route("/api/user/<username>/sessions", methods=["DELETE"])
@rest_route("admin")
async def rest_end(username: str) -> Response:
    return await _end(username)


@bp.route("/config/user/<username>/sessions", methods=["GET"])
@session_route()
async def config_list(username: str) -> Response:
    return await _list(username)


@bp.route("/config/user/<username>/sessions", methods=["DELETE"])
@session_route()
async def config_end(username: str) -> Response:
    return await _end(username)
