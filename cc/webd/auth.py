"""Who is calling: JWT for the REST API, session cookies for the web UI, roles and allowed IPs.

The REST API authenticates every request by JWT (``Authorization: Bearer`` or
``X-Auth-Token``), as cc-backend does; the UI and its GraphQL endpoint use the
session cookie set by ``POST /login``.  Both end in a :class:`cc.db.Viewer`, which
decides what the caller may see.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from quart import current_app, g, request

from cc.db import Viewer
from cc.db._users import get_user
from cc.jwtauth import AuthError, Claims, token_from_headers
from cc.webd.errors import APIError
from cc.webd.sessions import end_session, session_username


def client_ip() -> str:
    return request.remote_addr or ""


def _ctx():
    return current_app.config["CC"]


async def viewer_for(username: str, roles: tuple[str, ...] | None) -> Viewer:
    """Roles from the token (or the database when the token has none); projects from the database."""
    ctx = _ctx()
    user = await ctx.db.read(get_user, username) if ctx.db is not None else None
    if roles is None:
        roles = tuple(user.roles) if user else ()
    projects = tuple(user.projects) if user else ()
    return Viewer(username, tuple(roles), projects)


def _verified_claims() -> Claims | None:
    """The request's address and JWT checked (None: authentication is disabled)."""
    ctx = _ctx()
    if not ctx.allow.allows(client_ip()):
        raise APIError(403, f"address {client_ip()} is not in main.api-allowed-ips")
    if ctx.verifier is None:
        return None
    token = token_from_headers(request.headers)
    if not token:
        raise APIError(401, "missing JWT (send 'Authorization: Bearer <token>' or 'X-Auth-Token')")
    try:
        return ctx.verifier.verify(token)
    except AuthError as e:
        raise APIError(401, str(e)) from None


async def authenticate_jwt() -> tuple[Claims | None, Viewer | None]:
    claims = _verified_claims()
    if claims is None:
        return None, Viewer("anonymous", ("admin", "api"))
    return claims, await viewer_for(claims.user, claims.roles or None)


def authenticate_api(required_role: str | None = "api") -> Claims | None:
    """Synchronous JWT check for endpoints that need no database (metric store API)."""
    claims = _verified_claims()
    if claims is None:
        return None
    if required_role and required_role not in claims.roles:
        raise APIError(403, f"token of user {claims.user!r} lacks the {required_role!r} role")
    return claims


def api_route(required_role: str | None = "api"):
    """JWT-only endpoints of the metric store: check the token and role, set ``g.claims``."""

    def deco(fn: Callable[..., Awaitable[Any]]):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            g.claims = authenticate_api(required_role)
            return await fn(*args, **kwargs)

        return wrapper

    return deco


def rest_route(*roles: str):
    """REST endpoints: authenticate by JWT; with ``roles``, the caller needs one of them.

    Sets ``g.viewer`` for visibility checks in the handler.
    """

    def deco(fn: Callable[..., Awaitable[Any]]):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            _, viewer = await authenticate_jwt()
            if roles and not viewer.has(*roles):
                raise APIError(403, f"user {viewer.username!r} lacks the role: {' or '.join(roles)}")
            if not viewer.roles:
                raise APIError(403, f"user {viewer.username!r} has no roles")
            g.viewer = viewer
            return await fn(*args, **kwargs)

        return wrapper

    return deco


async def session_viewer() -> Viewer | None:
    """The logged-in user of the session cookie (None if not logged in or the user is gone)."""
    username = session_username()
    if not username:
        return None
    ctx = _ctx()
    user = await ctx.db.read(get_user, username)
    if user is None:
        end_session()
        return None
    return user.viewer()


class LoginLimiter:
    """Refuse logins after too many failures from one address or for one username.

    In memory of the web process: a restart forgets, which is acceptable for a brute
    force brake (the attacker loses far more time than the restart gives back).
    """

    def __init__(self, per_user: int = 5, per_ip: int = 20, window: float = 300.0):
        self.limits = {"user": per_user, "ip": per_ip}
        self.window = window
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float, *, create: bool = False) -> deque[float]:
        """Failures of ``key`` within the window; keys without any are forgotten (not kept empty:
        every login attempt with a new name would otherwise stay in memory)."""
        q = self.failures.get(key)
        if q is None:
            q = deque()
            if not create:
                return q
            self.failures[key] = q
        while q and q[0] < now - self.window:
            q.popleft()
        if not q and not create:
            del self.failures[key]
        return q

    def retry_after(self, ip: str, username: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        worst = 0.0
        for kind, key in (("ip", f"ip:{ip}"), ("user", f"user:{username}")):
            q = self._recent(key, now)
            if len(q) >= self.limits[kind]:
                worst = max(worst, q[0] + self.window - now)
        return int(worst) + 1 if worst > 0 else 0

    def failed(self, ip: str, username: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for key in (f"ip:{ip}", f"user:{username}"):
            self._recent(key, now, create=True).append(now)
        if len(self.failures) > 100_000:
            self.failures.clear()

    def succeeded(self, username: str) -> None:
        self.failures.pop(f"user:{username}", None)
