"""OpenID Connect login (``auth.oidc``): ``/oidc-login`` -> provider -> ``/oidc-callback`` -> session.

The protocol (discovery, PKCE, ID token checks) is :class:`cc.webd.oidcclient.OidcClient`;
this module only has the two routes, so a web process without ``auth.oidc`` never
imports the OAuth libraries.
"""

from __future__ import annotations

import logging

from quart import Blueprint, Response, abort, current_app, redirect, request

from cc.db import User
from cc.db._users import AUTH_OIDC
from cc.webd.sitelogin import LoginRefused, login_page, open_session, safe_target

log = logging.getLogger("web.oidc")

FLOW_COOKIE = "cc_oidc_flow"
FLOW_MAX_AGE = 600  # seconds from /oidc-login to the callback


class OidcError(Exception):
    """The login cannot finish; the message is safe to show the user."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# -- routes -------------------------------------------------------------------------------------

bp = Blueprint("oidc", __name__)


def _client():
    """The :class:`cc.webd.oidcclient.OidcClient` of this installation (404 without ``auth.oidc``)."""
    client = current_app.config["CC"].logins.oidc
    if client is None:
        abort(404)
    return client


def _callback_url() -> str:
    return request.host_url.rstrip("/") + "/oidc-callback"


@bp.route("/oidc-login", methods=["GET"])
async def oidc_login() -> Response:
    client = _client()
    target = safe_target(request.args.get("redirect"))
    try:
        url, cookie = await client.start(_callback_url(), target)
    except OidcError as e:
        return await login_page(str(e), e.status, target)
    resp = redirect(url, 302)
    resp.set_cookie(FLOW_COOKIE, cookie, max_age=FLOW_MAX_AGE, path="/oidc-callback", httponly=True,
                    samesite="Lax", secure=request.scheme == "https")
    return resp


@bp.route("/oidc-callback", methods=["GET"])
async def oidc_callback() -> Response:
    client = _client()
    ctx = current_app.config["CC"]
    target = "/"
    try:
        flow = client.read_flow(request.cookies.get(FLOW_COOKIE), request.args.get("state"))
        target = flow.get("target") or "/"
        if request.args.get("error"):
            raise OidcError(f"the login provider answered: {request.args.get('error_description') or request.args['error']}",
                            401)
        code = request.args.get("code")
        if not code:
            raise OidcError("the login provider sent no authorization code")
        who = await client.finish(flow, code)
        s = client.settings
        await open_session(ctx, User(who.username, roles=who.roles, projects=who.projects, name=who.name,
                                     auth_source=AUTH_OIDC),
                           sync=s.sync_user_on_login, update=s.update_user_on_login, source="OpenID Connect")
    except OidcError as e:
        log.info("OpenID Connect login failed: %s", e)
        resp = await login_page(str(e), e.status, target)
    except LoginRefused as e:
        resp = await login_page(str(e), 403, target)
    else:
        resp = redirect(safe_target(target), 303)
    resp.delete_cookie(FLOW_COOKIE, path="/oidc-callback")
    return resp
