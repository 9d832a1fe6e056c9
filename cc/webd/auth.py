"""Who is calling: JWT for the REST API, session cookies for the web UI, roles and allowed IPs.

The REST API authenticates every request by JWT (``Authorization: Bearer`` or
``X-Auth-Token``), as cc-backend does; the UI and its GraphQL endpoint use the
session cookie set by ``POST /login`` (server-side sessions, :mod:`cc.webd.sessions`).
Both end in a :class:`cc.db.Viewer`, which decides what the caller may see.

Also here, because every caller needs the same answer: the client's address and scheme
behind trusted proxies (:func:`client`), the same-origin check that protects
cookie-authenticated state changes from cross-site requests (:func:`require_same_origin`)
and login throttling (:class:`LoginLimiter`).
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from quart import current_app, g, has_request_context, request, websocket

from cc.db import Viewer
from cc.db._users import get_user
from cc.jwtauth import AuthError, Claims, token_from_headers
from cc.netacl import ClientInfo
from cc.webd.errors import APIError
from cc.webd.sessions import session_user


def _incoming():
    """The HTTP request or, in a WebSocket handler, the WebSocket handshake."""
    return request if has_request_context() else websocket


def client() -> ClientInfo:
    """The client's address, scheme and host, believing ``X-Forwarded-*`` only from ``main.trusted-proxies``."""
    info = g.get("cc_client")
    if info is None:
        r = _incoming()
        info = _ctx().proxies.client(r.remote_addr or "", r.scheme, r.headers.get("Host") or "", r.headers)
        g.cc_client = info
    return info

#: Set only by in-process callers (the NATS event consumer, cc/webd/natsapi.py) around a request
#: they make to a REST route themselves; nothing a client sends can set it.
INTERNAL_VIEWER: contextvars.ContextVar[Viewer | None] = contextvars.ContextVar("internal_viewer", default=None)


def client_ip() -> str:
    """The one place every caller takes the client's address from (throttling, allow list, logs)."""
    return client().ip


def request_is_secure() -> bool:
    """HTTPS between the browser and us (our TLS, or a trusted proxy's): session cookies get ``Secure``."""
    return client().scheme == "https"


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None, int | None]:
    """(host, explicit port or None, default port of the scheme)."""
    host, port = netloc.lower(), None
    if host.startswith("["):
        h, _, rest = host[1:].partition("]")
        host, port = h, rest[1:] if rest.startswith(":") else None
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        explicit = int(port) if port else None
    except ValueError:
        explicit = -1  # never matches
    return host, explicit, _DEFAULT_PORTS.get(scheme)


def _same_host(url: str, own: ClientInfo) -> bool:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return False
    host, port, default = _host_port(parts.netloc, parts.scheme.lower())
    own_host, own_port, own_default = _host_port(own.host, own.scheme)
    if not own_host or host != own_host:
        return False
    if port is None and own_port is None:
        return True  # both on their scheme's default port (e.g. TLS ended by a proxy that sends no proto)
    return (port if port is not None else default) == (own_port if own_port is not None else own_default)


def cross_site_reason() -> str | None:
    """Why this request does not come from our own pages, or None when it does (or from no browser).

    Browsers send ``Origin`` with every POST (and every cross-origin request), so a
    foreign or ``null`` Origin is refused; without it a foreign ``Referer`` is, and last
    the browser's own verdict ``Sec-Fetch-Site``.  A request with none of them is not
    from a browser page, so no cookie of a victim rides along with it.
    """
    r = _incoming()
    own = client()
    origin = r.headers.get("Origin")
    if origin is not None:
        if origin.strip().lower() == "null" or not _same_host(origin, own):
            return f"Origin {origin!r} is not this server ({own.scheme}://{own.host})"
        return None
    referer = r.headers.get("Referer")
    if referer:
        if not _same_host(referer, own):
            return f"Referer {urlsplit(referer).netloc!r} is not this server ({own.host})"
        return None
    if (r.headers.get("Sec-Fetch-Site") or "").lower() in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site is {r.headers['Sec-Fetch-Site']!r}"
    return None


def require_same_origin() -> None:
    """Refuse (403) a state-changing request authenticated by cookie that another site made the browser send."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    reason = cross_site_reason()
    if reason:
        raise APIError(403, f"cross-origin request refused: {reason}")


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


def _verified_claims(check_ip: bool = True) -> Claims | None:
    """The request's address and JWT checked (None: authentication is disabled).

    ``check_ip=False`` for ``/userapi``: as in cc-backend, ``main.api-allowed-ips`` guards the
    service API only; people call the user API from their own machines.
    """
    ctx = _ctx()
    if check_ip and not ctx.allow.allows(client_ip()):
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


async def authenticate_jwt(check_ip: bool = True) -> tuple[Claims | None, Viewer | None]:
    internal = INTERNAL_VIEWER.get()
    if internal is not None:
        return None, internal
    claims = _verified_claims(check_ip)
    if claims is None:
        return None, Viewer("anonymous", ("admin", "api"))
    if _ctx().cfg.auth.jwts.validate_user:  # cc-backend: only users of the database, with its roles
        user = await _ctx().db.read(get_user, claims.user)
        if user is None:
            raise APIError(401, f"token of unknown user {claims.user!r} (auth.jwts.validate-user)")
        return claims, user.viewer()
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


def rest_route(*roles: str, check_ip: bool = True):
    """REST endpoints: authenticate by JWT; with ``roles``, the caller needs one of them.

    Sets ``g.viewer`` for visibility checks in the handler.
    """

    def deco(fn: Callable[..., Awaitable[Any]]):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            _, viewer = await authenticate_jwt(check_ip)
            if roles and not viewer.has(*roles):
                raise APIError(403, f"user {viewer.username!r} lacks the role: {' or '.join(roles)}")
            if not viewer.roles:
                raise APIError(403, f"user {viewer.username!r} has no roles")
            g.viewer = viewer
            return await fn(*args, **kwargs)

        return wrapper

    return deco



async def session_viewer() -> Viewer | None:
    """The logged-in user of the session cookie (None if not logged in, the session ended or the user is gone)."""
    if "cc_session_viewer" in g:
        return g.cc_session_viewer
    user = await session_user(_ctx().db)
    g.cc_session_viewer = viewer = user.viewer() if user is not None else None
    return viewer


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class LoginLimiter:
    """Slow down password guessing per (client address, username) pair, with exponential backoff.

    Why per pair: a limit per account lets anyone lock its owner out by guessing wrong,
    and a limit per address locks out everyone behind one NAT or proxy.  A pair gets
    ``free`` failures, then each further failure blocks the pair for ``base`` seconds,
    doubling up to ``cap``; while blocked even the right password is refused (that is what
    slows the guesser), for that pair only.  A success or ``forget`` seconds without
    failures reset it.  In memory of the web process: a restart forgets, which is
    acceptable for a brake (the attacker loses far more time than a restart gives back).
    """

    def __init__(self, free: int = 5, base: float = 1.0, cap: float = 900.0, forget: float = 86400.0,
                 max_pairs: int = 100_000):
        self.free, self.base, self.cap, self.forget, self.max_pairs = free, base, cap, forget, max_pairs
        self.pairs: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def _get(self, key: tuple[str, str], now: float) -> _Failures | None:
        f = self.pairs.get(key)
        if f is not None and now - f.last > self.forget:
            del self.pairs[key]
            return None
        return f

    def retry_after(self, ip: str, username: str, now: float | None = None) -> int:
        """Seconds until this pair may try again (0: now)."""
        now = time.time() if now is None else now
        f = self._get((ip, username), now)
        if f is None or f.blocked_until <= now:
            return 0
        return max(1, int(f.blocked_until - now + 0.999))

    def failed(self, ip: str, username: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        key = (ip, username)
        f = self._get(key, now) or _Failures()
        f.count += 1
        f.last = now
        if f.count >= self.free:
            f.blocked_until = now + min(self.cap, self.base * 2 ** (f.count - self.free))
        self.pairs[key] = f
        self.pairs.move_to_end(key)
        while len(self.pairs) > self.max_pairs:  # the least recently failing pairs go first
            self.pairs.popitem(last=False)

    def succeeded(self, ip: str, username: str) -> None:
        self.pairs.pop((ip, username), None)
