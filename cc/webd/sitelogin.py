"""What every login path shares: the configured site logins, and turning a vouched-for user into a session.

Built once at start from ``auth.ldap``, ``auth.oidc``, ``auth.jwts`` and the secrets in
``.env`` (``LDAP_ADMIN_PASSWORD``, ``OID_CLIENT_ID``/``OID_CLIENT_SECRET``,
``CROSS_LOGIN_JWT_HS512_KEY``, ``CROSS_LOGIN_JWT_PUBLIC_KEY``).  A session always
belongs to a user of the database (its roles and projects are read from there on every
request), so a login source that vouches for somebody unknown here either adds them
(``sync-user-on-login``) or the login is refused with a message saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quart import Response, render_template, request

from cc.authconfig import AuthSettings
from cc.db import User
from cc.db._users import login_user
from cc.jwtauth import AuthError, CrossLoginVerifier, load_hs_key, load_public_key
from cc.webd.auth import client_ip
from cc.webd.sessions import begin_session

if TYPE_CHECKING:
    from cc.webd.ldapauth import LdapDirectory
    from cc.webd.oidcclient import OidcClient

log = logging.getLogger("web.login")


@dataclass
class SiteLogins:
    settings: AuthSettings
    ldap: LdapDirectory | None = None
    oidc: OidcClient | None = None
    cross: CrossLoginVerifier | None = None  # None: /jwt-login is not configured


def build_site_logins(cfg) -> SiteLogins:
    """The login sources of ``cfg``; a source configured without its secrets stops the start."""
    s = cfg.auth
    logins = SiteLogins(settings=s)
    if s.ldap is not None:
        from cc.webd.ldapauth import LdapDirectory  # ldap3 only where LDAP is configured

        password = cfg.secret("LDAP_ADMIN_PASSWORD")
        if not password:
            log.warning("LDAP_ADMIN_PASSWORD is not set: LDAP logins of known users work, but the LDAP sync "
                        "and auth.ldap.sync-user-on-login cannot search the directory")
        logins.ldap = LdapDirectory(s.ldap, password)
    if s.oidc is not None:
        from cc.webd.oidcclient import OidcClient  # authlib only where OIDC is configured

        cid, secret = cfg.secret("OID_CLIENT_ID"), cfg.secret("OID_CLIENT_SECRET")
        if not cid or not secret:
            raise SystemExit("auth.oidc is configured but OID_CLIENT_ID or OID_CLIENT_SECRET is not set "
                             "(in .env or the environment)")
        logins.oidc = OidcClient(s.oidc, cid, secret, cfg.secret("SESSION_KEY") or "")
    hs, cross_pub = cfg.secret("CROSS_LOGIN_JWT_HS512_KEY"), cfg.secret("CROSS_LOGIN_JWT_PUBLIC_KEY")
    if hs or cross_pub or s.jwts.cookie_name:
        own = cfg.secret("JWT_PUBLIC_KEY")
        try:
            logins.cross = CrossLoginVerifier(
                own_key=load_public_key(own) if own else None,
                cross_key=load_public_key(cross_pub) if cross_pub else None,
                hs_key=load_hs_key(hs) if hs else None, trusted_issuer=s.jwts.trusted_issuer)
        except (AuthError, ValueError) as e:
            raise SystemExit(f"JWT cross-login: {e}") from None
        if hs and len(load_hs_key(hs)) < 32:
            log.warning("CROSS_LOGIN_JWT_HS512_KEY is shorter than 32 bytes: tokens signed with it can be forged "
                        "by guessing the key")
        if cross_pub and not s.jwts.trusted_issuer:
            log.warning("CROSS_LOGIN_JWT_PUBLIC_KEY is set but auth.jwts.trusted-issuer is not: "
                        "no token is checked against that key")
    return logins


def wants_json() -> bool:
    return request.is_json or "application/json" in request.headers.get("accept", "")


def safe_target(target: str | None) -> str:
    """Only local paths: an open redirect after login would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class LoginRefused(Exception):
    """The source vouched for the user, but this installation does not let them in."""


async def open_session(ctx, claimed: User, *, sync: bool, update: bool, source: str) -> User:
    """Add or update the user as configured, then begin the session (cc-backend's handleUserSync).

    Raises :class:`LoginRefused` when the user is not in the database and ``sync`` is off.
    """
    user = await ctx.db.write(lambda conn: login_user(conn, claimed, sync=sync, update=update))
    if user is None:
        log.warning("%s login of %r refused: not a user of this installation (sync-user-on-login is off)",
                    source, claimed.username)
        raise LoginRefused(f"user {claimed.username!r} is not registered here: ask an administrator to add "
                           "the account")
    begin_session(user)
    log.info("user %r logged in by %s from %s (roles %s)", user.username, source, client_ip(),
             ",".join(user.roles) or "-")
    return user


async def login_page(error: str, status: int, target: str = "/") -> Response:
    """The login page with an error, answered directly (for GET flows: OIDC callback, /jwt-login)."""
    body = await render_template("login.html", title="Login", error=error[:300], target=safe_target(target),
                                 notice="")
    return Response(body, status=status, mimetype="text/html")
