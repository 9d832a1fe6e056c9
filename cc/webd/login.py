"""``POST /login`` and ``/logout``: session cookies for the web UI.

Passwords are checked where the user comes from, as in cc-backend: local users against
their bcrypt hash, LDAP users (``hpc_user.ldap`` = 1) by a bind to the directory; a
name unknown here is tried against LDAP when ``auth.ldap.sync-user-on-login`` is set and
added on success.  The OpenID Connect (:mod:`cc.webd.oidc`) and JWT cross-login
(:mod:`cc.webd.jwtlogin`) routes hang off this blueprint; every path ends in
:func:`cc.webd.sessions.begin_session`.  The periodic LDAP sync (``sync-interval``)
runs here, in the web process, because it is the one process that writes users.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import trio
from quart import Blueprint, Response, current_app, redirect, request

from cc.authconfig import LoginSourceUnavailable
from cc.db import User, UserError
from cc.db._users import (
    AUTH_LDAP,
    AUTH_LOCAL,
    DirectorySync,
    check_password,
    get_user,
    sync_directory_users,
    update_from_source,
)
from cc.webd import jwtlogin, oidc
from cc.webd.auth import client_ip, require_same_origin
from cc.webd.errors import error_response, json_response
from cc.webd.params import json_body
from cc.webd.sessions import end_session
from cc.webd.sitelogin import LoginRefused, open_session, safe_target, wants_json

log = logging.getLogger("web.login")
bp = Blueprint("login", __name__)
bp.register_blueprint(oidc.bp)
bp.register_blueprint(jwtlogin.bp)


@bp.app_context_processor
def _login_options() -> dict:
    """The login page offers single sign-on when ``auth.oidc`` is configured."""
    ctx = current_app.config["CC"]
    return {"oidc_login": getattr(ctx, "logins", None) is not None and ctx.logins.oidc is not None}


def _failure(status: int, message: str) -> Response:
    if wants_json():
        return error_response(status, message)
    return redirect(f"/login?error={quote(message)}", 303)


async def _ldap_login(ctx, user: User | None, username: str, password: str) -> User | None:
    """The user if the directory accepts the password (adding or updating them as configured), else None.

    Raises :class:`LoginSourceUnavailable` when the directory cannot answer.
    """
    ldap, s = ctx.logins.ldap, ctx.logins.settings.ldap
    if user is not None:  # a known LDAP user: bind, and refresh the name if asked to
        entry = await trio.to_thread.run_sync(
            lambda: ldap.login(username, password, want_entry=s.update_user_on_login))
        if entry is False:
            return None
        if s.update_user_on_login and entry is not True and entry is not None:
            await ctx.db.write(lambda conn: update_from_source(conn, user, name=entry.name))
            user = await ctx.db.read(get_user, username)
        return user
    entry = await trio.to_thread.run_sync(lambda: ldap.login(username, password, want_entry=True))
    if entry is False:
        return None
    if entry is None or entry is True:
        log.warning("LDAP login of %r: the password is right, but no entry under %s matches %s; not added",
                    username, s.user_base, s.user_filter)
        return None
    return User(username, roles=["user"], name=entry.name, auth_source=AUTH_LDAP)


@bp.route("/login", methods=["POST"])
async def login() -> Response:
    ctx = current_app.config["CC"]
    require_same_origin()  # another site must not log the browser into an account of its choosing
    if request.is_json:
        body = await json_body(required=False) or {}
        username, password, target = body.get("username", ""), body.get("password", ""), body.get("redirect")
    else:
        form = await request.form
        username, password, target = form.get("username", ""), form.get("password", ""), form.get("redirect")
    username, password = str(username).strip(), str(password)
    ip = client_ip()
    wait = ctx.login_limiter.retry_after(ip, username)
    if wait:
        log.warning("login refused for %r from %s: too many failures", username, ip)
        if wants_json():
            resp = error_response(429, f"too many failed logins; try again in {wait} s")
            resp.headers["Retry-After"] = str(wait)
            return resp
        return redirect(f"/login?error={quote('Too many failed logins, try again later')}", 303)
    user = await ctx.db.read(get_user, username) if username else None
    ldap = ctx.logins.ldap if ctx.logins is not None else None
    ok: User | None = None
    source = "password"
    try:
        if user is not None and user.auth_source == AUTH_LOCAL:
            ok = user if await trio.to_thread.run_sync(check_password, user, password) else None
        elif user is not None and user.auth_source == AUTH_LDAP:
            source = "LDAP"
            if ldap is None:
                log.warning("login of LDAP user %r refused: auth.ldap is not configured", username)
            else:
                ok = await _ldap_login(ctx, user, username, password)
        elif user is None and username and ldap is not None and ctx.logins.settings.ldap.sync_user_on_login:
            source = "LDAP"
            claimed = await _ldap_login(ctx, None, username, password)
            if claimed is not None:
                ok = await open_session(ctx, claimed, sync=True, update=False, source="LDAP")
    except LoginSourceUnavailable as e:
        log.warning("LDAP login of %r from %s failed: %s", username, ip, e)
        return _failure(503, "The LDAP server cannot be reached; try again later")
    except LoginRefused as e:
        return _failure(403, str(e))
    if ok is None:
        ctx.login_limiter.failed(ip, username)
        log.info("failed login for %r from %s", username, ip)
        return _failure(401, "Wrong username or password" if not wants_json() else "wrong username or password")
    ctx.login_limiter.succeeded(ip, username)
    if user is not None:  # a new LDAP user got their session in open_session already
        ok = await open_session(ctx, ok, sync=False, update=False, source=source)
    if wants_json():
        return json_response({"username": ok.username, "roles": ok.roles})
    return redirect(safe_target(target), 303)


@bp.route("/logout", methods=["GET", "POST"])
async def logout() -> Response:
    require_same_origin()
    end_session()
    if wants_json():
        return json_response({"msg": "logged out"})
    return redirect("/login", 303)


# -- periodic LDAP sync ------------------------------------------------------------------------

@bp.before_app_serving
async def _start_ldap_sync() -> None:
    ctx = current_app.config["CC"]
    logins = getattr(ctx, "logins", None)
    if logins is not None and logins.ldap is not None and logins.settings.ldap.sync_interval > 0:
        current_app.add_background_task(ldap_sync_loop, ctx)


async def ldap_sync_loop(ctx) -> None:
    """Every ``auth.ldap.sync-interval`` (first run one interval after start, as cc-backend);
    a failed run is logged and the next one tries again."""
    interval = ctx.logins.settings.ldap.sync_interval
    log.info("LDAP sync every %g s", interval)
    while True:
        await trio.sleep(interval)
        await run_ldap_sync(ctx)


async def run_ldap_sync(ctx) -> DirectorySync | None:
    """One sync: the directory is read in a worker thread, the database written in one transaction."""
    from cc.webd.ldapauth import directory_users  # loaded already: ctx.logins.ldap is one of its objects

    ldap = ctx.logins.ldap
    try:
        found = await trio.to_thread.run_sync(directory_users, ldap)
        result = await ctx.db.write(sync_directory_users, found, ldap.settings.sync_del_old_users)
    except (LoginSourceUnavailable, UserError) as e:
        log.warning("LDAP sync failed: %s", e)
        return None
    if result.skipped:
        log.warning("LDAP sync: user names not usable here skipped: %s", ", ".join(result.skipped))
    if result.added or result.removed:
        log.info("LDAP sync: added %s; removed %s", ", ".join(result.added) or "nobody",
                 ", ".join(result.removed) or "nobody")
    return result
