"""``POST /login`` and ``/logout``: session cookies for the web UI (local users, bcrypt passwords)."""

from __future__ import annotations

import logging
from urllib.parse import quote

import trio
from quart import Blueprint, Response, current_app, redirect, request

from cc.db._users import check_password, get_user
from cc.webd.auth import client_ip
from cc.webd.errors import error_response, json_response
from cc.webd.params import json_body
from cc.webd.sessions import begin_session, end_session

log = logging.getLogger("web.login")
bp = Blueprint("login", __name__)


def _wants_json() -> bool:
    return request.is_json or "application/json" in request.headers.get("accept", "")


def _safe_target(target: str | None) -> str:
    """Only local paths: an open redirect after login would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@bp.route("/login", methods=["POST"])
async def login() -> Response:
    ctx = current_app.config["CC"]
    if request.is_json:
        body = await json_body(required=False) or {}
        username, password, target = body.get("username", ""), body.get("password", ""), body.get("redirect")
    else:
        form = await request.form
        username, password, target = form.get("username", ""), form.get("password", ""), form.get("redirect")
    username = str(username).strip()
    ip = client_ip()
    wait = ctx.login_limiter.retry_after(ip, username)
    if wait:
        log.warning("login refused for %r from %s: too many failures", username, ip)
        if _wants_json():
            resp = error_response(429, f"too many failed logins; try again in {wait} s")
            resp.headers["Retry-After"] = str(wait)
            return resp
        return redirect(f"/login?error={quote('Too many failed logins, try again later')}", 303)
    user = await ctx.db.read(get_user, username) if username else None
    ok = user is not None and await trio.to_thread.run_sync(check_password, user, str(password))
    if not ok:
        ctx.login_limiter.failed(ip, username)
        log.info("failed login for %r from %s", username, ip)
        if _wants_json():
            return error_response(401, "wrong username or password")
        return redirect(f"/login?error={quote('Wrong username or password')}", 303)
    ctx.login_limiter.succeeded(username)
    begin_session(user)
    log.info("user %r logged in from %s", username, ip)
    if _wants_json():
        return json_response({"username": user.username, "roles": user.roles})
    return redirect(_safe_target(target), 303)


@bp.route("/logout", methods=["GET", "POST"])
async def logout() -> Response:
    end_session()
    if _wants_json():
        return json_response({"msg": "logged out"})
    return redirect("/login", 303)
