"""Authentication of API requests in the web process (JWT, api-allowed-ips, roles)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from quart import current_app, g, request

from cc.jwtauth import AuthError, Claims, token_from_headers
from cc.webd.errors import APIError


def client_ip() -> str:
    return request.remote_addr or ""


def authenticate_api(required_role: str | None = "api") -> Claims | None:
    """Check the request's JWT; returns its claims (None when authentication is disabled)."""
    ctx = current_app.config["CC"]
    if not ctx.allow.allows(client_ip()):
        raise APIError(403, f"address {client_ip()} is not in main.api-allowed-ips")
    if ctx.verifier is None:
        return None
    token = token_from_headers(request.headers)
    if not token:
        raise APIError(401, "missing JWT (send 'Authorization: Bearer <token>' or 'X-Auth-Token')")
    try:
        claims = ctx.verifier.verify(token)
    except AuthError as e:
        raise APIError(401, str(e)) from None
    if required_role and required_role not in claims.roles:
        raise APIError(403, f"token of user {claims.user!r} lacks the {required_role!r} role")
    return claims


def api_route(required_role: str | None = "api"):
    """Decorator: JWT-authenticate, then call the handler with ``g.claims`` set."""

    def deco(fn: Callable[..., Awaitable[Any]]):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            g.claims = authenticate_api(required_role)
            return await fn(*args, **kwargs)

        return wrapper

    return deco
