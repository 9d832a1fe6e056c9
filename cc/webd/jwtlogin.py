"""JWT cross-login (cc-backend's JWT session and JWT cookie authenticators): ``/jwt-login``.

Another service (a portal, a second cc-backend) sends the browser to
``/jwt-login?login-token=<JWT>`` (``?token=`` works too; or ``Authorization: Bearer``),
or sets the cookie named ``auth.jwts.cookie-name`` and sends it to ``/jwt-login``.  The
token is checked by :class:`cc.jwtauth.CrossLoginVerifier`; then, as in cc-backend:
with ``validate-user`` the user must exist here and keeps the roles of the database,
otherwise name, roles and projects come from the token and ``sync-user-on-login`` /
``update-user-on-login`` decide whether the database follows.  ``?redirect=/path``
chooses the page after the login.
"""

from __future__ import annotations

import logging

from quart import Blueprint, Response, current_app, redirect, request

from cc.db import ROLES, User
from cc.db._users import AUTH_TOKEN, get_user
from cc.jwtauth import AuthError
from cc.webd.auth import client_ip
from cc.webd.errors import error_response, json_response
from cc.webd.sitelogin import LoginRefused, login_page, open_session, safe_target, wants_json

log = logging.getLogger("web.login")
bp = Blueprint("jwtlogin", __name__)


def claimed_user(claims: dict) -> User:
    """The user a verified token describes (cc-backend's getUserFromJWT without validate-user)."""
    name = claims.get("name")
    if isinstance(name, dict) and isinstance(name.get("values"), list):  # {name: {values: [...]}}
        name = " ".join(str(v) for v in name["values"])
    roles = claims.get("roles") if isinstance(claims.get("roles"), list) else []
    projects = claims.get("projects") if isinstance(claims.get("projects"), list) else []
    return User(username=claims["sub"], name=name if isinstance(name, str) and name else None,
                roles=[r for r in roles if r in ROLES], projects=[p for p in projects if isinstance(p, str)],
                auth_source=AUTH_TOKEN)


def _token() -> tuple[str | None, bool]:
    """(the login token of this request, whether it came from the cross-login cookie)."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip(), False
    for param in ("login-token", "token"):
        if request.args.get(param):
            return request.args[param], False
    name = current_app.config["CC"].logins.settings.jwts.cookie_name
    if name and request.cookies.get(name):
        return request.cookies[name], True
    return None, False


async def _refuse(message: str, status: int, target: str) -> Response:
    if wants_json():
        return error_response(status, message)
    return await login_page(message, status, target)


@bp.route("/jwt-login", methods=["GET", "POST"])
async def jwt_login() -> Response:
    ctx = current_app.config["CC"]
    target = safe_target(request.args.get("redirect"))
    verifier = ctx.logins.cross
    if verifier is None:
        return await _refuse("JWT login is not configured here (CROSS_LOGIN_JWT_HS512_KEY, "
                             "CROSS_LOGIN_JWT_PUBLIC_KEY or auth.jwts.cookie-name)", 404, target)
    token, from_cookie = _token()
    if not token:
        return await _refuse("no login token (send ?login-token=<JWT>)", 400, target)
    try:
        claims = verifier.verify(token)
    except AuthError as e:
        log.warning("JWT login refused from %s: %s", client_ip(), e)
        resp = await _refuse(f"login token refused: {e}", 401, target)
        return _drop_cookie(resp, from_cookie)
    jc = ctx.logins.settings.jwts
    try:
        if jc.validate_user:
            user = await ctx.db.read(get_user, claims["sub"])
            if user is None:
                log.warning("JWT login of %r refused: unknown user (auth.jwts.validate-user)", claims["sub"])
                raise LoginRefused(f"user {claims['sub']!r} is not registered here")
            user = await open_session(ctx, user, sync=False, update=False, source="JWT")
        else:
            user = await open_session(ctx, claimed_user(claims), sync=jc.sync_user_on_login,
                                      update=jc.update_user_on_login, source="JWT")
    except LoginRefused as e:
        return _drop_cookie(await _refuse(str(e), 403, target), from_cookie)
    if wants_json():
        resp = json_response({"username": user.username, "roles": user.roles})
    else:
        resp = redirect(target, 303)
    return _drop_cookie(resp, from_cookie)


def _drop_cookie(resp: Response, from_cookie: bool) -> Response:
    """The browser is asked to forget the cross-login cookie once used (as cc-backend does)."""
    if from_cookie:
        resp.delete_cookie(current_app.config["CC"].logins.settings.jwts.cookie_name, path="/", httponly=True)
    return resp
