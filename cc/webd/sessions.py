"""Starting and ending a web UI session, whatever proved who the user is.

Every login path (local password, LDAP, OpenID Connect, JWT cross-login) calls
:func:`begin_session`, logout calls :func:`end_session`, so how a session is kept lives
in one place.

Sessions are server-side: the signed cookie carries only a random session id, the job
database keeps the session (``web_session``, under the id's SHA-256, so a copy of the
database opens no session), and every request looks the id up.  So logout, an admin
ending a user's sessions, deleting a user or changing their roles take effect at once
in every process reading the database, and a copied cookie dies with its session.
``main.session-max-age`` (0 = no expiry) bounds each session; expired ones are refused
and purged.

``begin_session``/``end_session`` are called from request handlers and only record what
to do; the database write happens before the response leaves (:func:`commit`, an
``after_request`` hook), so a browser never holds an id the database does not know.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

import trio
from quart import Quart, Response, current_app, g, has_request_context, request, session
from quart.sessions import SecureCookieSessionInterface

from cc.db import Database, User
from cc.db import _sessions as store

log = logging.getLogger("web.sessions")

PURGE_INTERVAL = 3600.0
MAX_USER_AGENT = 200


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _pending() -> list[tuple]:
    ops = g.get("cc_session_ops")
    if ops is None:
        ops = g.cc_session_ops = []
    return ops


def begin_session(user: User) -> None:
    """Log ``user`` in: a fresh session id (never one an attacker could have planted); the old one ends."""
    from cc.webd.auth import client_ip  # auth imports us

    old = session.get("sid")
    session.clear()
    sid = secrets.token_urlsafe(32)
    session["sid"] = sid
    session.permanent = True
    now = int(time.time())
    max_age = current_app.config["CC"].cfg.session_max_age
    ua = (request.headers.get("User-Agent") or "")[:MAX_USER_AGENT]
    ops = _pending()
    if isinstance(old, str):
        ops.append(("end", _hash(old)))
    ops.append(("begin", store.SessionRecord(_hash(sid), user.username, now, now + max_age if max_age else 0,
                                             client_ip(), ua)))
    g.cc_session_viewer = user.viewer()


def end_session() -> None:
    """Log out: the cookie is dropped and its session revoked, so a copy of the cookie is refused too."""
    old = session.get("sid")
    session.clear()
    if isinstance(old, str):
        _pending().append(("end", _hash(old)))
    g.cc_session_viewer = None


async def commit(response: Response) -> Response:
    """``after_request``: write the session changes the handler made before its response is sent."""
    ops = g.get("cc_session_ops")
    if not ops:
        return response
    g.cc_session_ops = []

    def apply(conn) -> None:
        for op, arg in ops:
            if op == "begin":
                store.create_session(conn, arg)
            else:
                store.delete_session(conn, arg)

    await current_app.config["CC"].db.write(apply)
    return response


async def session_user(db: Database) -> User | None:
    """The user of this request's session cookie, or None (not logged in, session ended or expired)."""
    sid = session.get("sid")
    if not isinstance(sid, str) or not sid:
        if "user" in session:  # a stateless cookie of an older version: not revocable, so not accepted
            session.clear()
        return None
    user = await db.read(store.session_user, _hash(sid), int(time.time()))
    if user is None:
        session.clear()  # revoked or expired: the browser drops the cookie
    return user


class SessionCookies(SecureCookieSessionInterface):
    """Quart's signed cookie, ``Secure`` whenever the browser talks HTTPS to us (directly or via a trusted proxy)."""

    def get_cookie_secure(self, app: Quart) -> bool:
        from cc.webd.auth import request_is_secure

        return has_request_context() and request_is_secure()


def init_app(app: Quart, session_key: str, max_age: int) -> None:
    app.session_interface = SessionCookies()
    app.secret_key = session_key
    app.config["SESSION_COOKIE_NAME"] = "session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # The cookie's own lifetime; the session record's expiry is what counts (0 = none: 10 years).
    app.config["PERMANENT_SESSION_LIFETIME"] = max_age or 10 * 365 * 86400
    app.after_request(commit)


async def purge_expired(db: Database, *, every: float = PURGE_INTERVAL) -> None:
    """Delete expired sessions, at start and then every ``every`` seconds (web process background task)."""
    while True:
        try:
            n = await db.write(store.purge_expired, int(time.time()))
        except Exception as e:  # a busy or broken database must not end the web process
            log.warning("purging expired sessions failed: %s", e)
        else:
            if n:
                log.info("purged %d expired sessions", n)
        await trio.sleep(every)
