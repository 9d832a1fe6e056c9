"""The OpenID Connect client behind :mod:`cc.webd.oidc` (authlib, joserfc; imported only when
``auth.oidc`` is configured).

Authorization-code flow with PKCE (S256), ``state`` and ``nonce``, through authlib's
httpx client.  The provider is found by discovery from ``auth.oidc.provider`` (its
issuer URL) on first use and remembered, so the web process starts even while the
provider is down.  The flow's secrets live in a short-lived signed cookie restricted to
the callback path; a ``state`` is accepted once (the provider refuses a second use of a
code as well).  Who logged in: ``preferred_username`` (userinfo, else ID token); roles
from Keycloak's ``realm_access.roles`` and ``resource_access.<our client>.roles``;
projects from the ``projects`` claim, as in cc-backend.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
import trio
from authlib.common.security import generate_token
from authlib.oidc.core import CodeIDToken
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from cc.authconfig import OidcSettings
from cc.db import ROLES
from cc.webd.oidc import FLOW_MAX_AGE, OidcError

with warnings.catch_warnings():
    # authlib >= 1.9 prefers the httpx2 fork and warns at import that plain httpx (which we use
    # everywhere, and which it still supports) is deprecated; nothing for a site to act on.
    warnings.filterwarnings("ignore", message=".*httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

log = logging.getLogger("web.oidc")

SCOPES = "openid profile roles"  # as cc-backend ("roles" is Keycloak's scope for the role claims)
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class OidcIdentity:
    username: str
    name: str | None
    roles: list[str]
    projects: list[str]


class OidcClient:
    def __init__(self, settings: OidcSettings, client_id: str, client_secret: str, session_key: str):
        self.settings = settings
        self.client_id, self.client_secret = client_id, client_secret
        self.cookies = URLSafeTimedSerializer(session_key, salt="cc-oidc-flow")
        self.metadata: dict[str, Any] | None = None
        self.jwks: dict[str, Any] | None = None
        self._lock = trio.Lock()
        self._used_states: dict[str, float] = {}  # state -> expiry (one web process)

    def _http(self, **kw) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(client_id=self.client_id, client_secret=self.client_secret, scope=SCOPES,
                                 code_challenge_method="S256", timeout=HTTP_TIMEOUT, **kw)

    async def discover(self) -> dict[str, Any]:
        """The provider's metadata (``/.well-known/openid-configuration``), fetched once."""
        async with self._lock:
            if self.metadata is not None:
                return self.metadata
            url = self.settings.provider + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
                    r = await http.get(url)
                r.raise_for_status()
                meta = r.json()
            except (httpx.HTTPError, ValueError) as e:
                log.warning("OpenID Connect discovery at %s failed: %s", url, e)
                raise OidcError("the login provider cannot be reached; try again later", 503) from None
            if not isinstance(meta, dict) or str(meta.get("issuer", "")).rstrip("/") != self.settings.provider:
                log.warning("OpenID Connect discovery at %s: issuer %r is not auth.oidc.provider %r", url,
                            meta.get("issuer") if isinstance(meta, dict) else None, self.settings.provider)
                raise OidcError("the login provider is misconfigured (issuer mismatch)", 502)
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not meta.get(key):
                    raise OidcError(f"the login provider announces no {key}", 502)
            self.metadata = meta
            return meta

    # -- /oidc-login -----------------------------------------------------------------------

    async def start(self, redirect_uri: str, target: str) -> tuple[str, str]:
        """(URL of the provider's authorization page, value of the flow cookie)."""
        meta = await self.discover()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        async with self._http(redirect_uri=redirect_uri) as client:
            url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state, nonce=nonce,
                                                     code_verifier=verifier)
        cookie = self.cookies.dumps({"state": state, "nonce": nonce, "verifier": verifier,
                                     "redirect_uri": redirect_uri, "target": target})
        return url, cookie

    # -- /oidc-callback --------------------------------------------------------------------

    def read_flow(self, cookie: str | None, state: str | None) -> dict[str, str]:
        """The flow started by /oidc-login in this browser, checked against the callback's ``state``."""
        if not cookie:
            raise OidcError("no login in progress in this browser (or it took longer than "
                            f"{FLOW_MAX_AGE // 60} minutes): start again")
        try:
            flow = self.cookies.loads(cookie, max_age=FLOW_MAX_AGE)
        except BadSignature:
            raise OidcError("the login attempt expired or was tampered with: start again") from None
        if not state or state != flow.get("state"):
            raise OidcError("state mismatch: this answer of the login provider is not for this browser's login")
        now = time.time()
        for s, exp in list(self._used_states.items()):
            if exp < now:
                del self._used_states[s]
        if state in self._used_states:
            raise OidcError("this login answer was already used")
        self._used_states[state] = now + FLOW_MAX_AGE
        return flow

    async def finish(self, flow: dict[str, str], code: str) -> OidcIdentity:
        """Exchange ``code`` (with the PKCE verifier), verify the ID token, read userinfo."""
        meta = await self.discover()
        async with self._http(redirect_uri=flow["redirect_uri"]) as client:
            try:
                token = await client.fetch_token(meta["token_endpoint"], grant_type="authorization_code", code=code,
                                                 code_verifier=flow["verifier"])
            except Exception as e:  # authlib raises OAuthError, httpx errors, or ValueError for bad JSON
                log.warning("OpenID Connect token exchange failed: %s", e)
                raise OidcError("the login provider refused the login (token exchange failed)", 400) from None
            if "id_token" not in token:
                raise OidcError("the login provider sent no ID token", 502)
            claims = await self._verify_id_token(token, flow["nonce"])
            userinfo: dict[str, Any] = {}
            if meta.get("userinfo_endpoint"):
                try:
                    r = await client.get(meta["userinfo_endpoint"])
                    r.raise_for_status()
                    userinfo = r.json()
                except (httpx.HTTPError, ValueError) as e:
                    log.warning("OpenID Connect userinfo failed: %s", e)
                    raise OidcError("the login provider did not tell who logged in (userinfo failed)", 502) from None
                if userinfo.get("sub") != claims.get("sub"):
                    raise OidcError("userinfo is about another subject than the ID token", 502)
        return self.identity(claims, userinfo)

    async def _verify_id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        meta = await self.discover()
        algs = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=[a for a in algs if a != "none"])
        for attempt in (0, 1):  # a key id we do not know: the provider rotated its keys, fetch them again
            jwks = await self._jwks(force=attempt == 1)
            try:
                decoded = jose_jwt.decode(token["id_token"], KeySet.import_key_set(jwks), registry=registry)
                break
            except JoseError as e:
                if attempt == 0 and "kid" in str(e).lower():
                    continue
                log.warning("OpenID Connect ID token refused: %s", e)
                raise OidcError("the ID token of the login provider is not valid", 400) from None
        claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [meta["issuer"]]}},
                             {"nonce": nonce, "client_id": self.client_id, "access_token": token.get("access_token")})
        try:
            claims.validate(leeway=120)
        except Exception as e:  # authlib's claim errors (expired, wrong audience, nonce, ...)
            log.warning("OpenID Connect ID token refused: %s", e)
            raise OidcError(f"the ID token of the login provider is not valid: {e}", 400) from None
        return dict(claims)

    async def _jwks(self, force: bool = False) -> dict[str, Any]:
        if self.jwks is not None and not force:
            return self.jwks
        meta = await self.discover()
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
                r = await http.get(meta["jwks_uri"])
            r.raise_for_status()
            self.jwks = r.json()
        except (httpx.HTTPError, ValueError) as e:
            log.warning("OpenID Connect keys at %s: %s", meta["jwks_uri"], e)
            raise OidcError("the login provider's keys cannot be read", 502) from None
        return self.jwks

    def identity(self, id_claims: dict[str, Any], userinfo: dict[str, Any]) -> OidcIdentity:
        username = _str(userinfo.get("preferred_username")) or _str(id_claims.get("preferred_username"))
        if not username:
            raise OidcError("the login provider sent no user name (preferred_username claim)", 400)
        name = _str(userinfo.get("name")) or _str(id_claims.get("name"))
        found: list[str] = []
        for claims in (id_claims, userinfo):
            found += _list((claims.get("realm_access") or {}).get("roles") if isinstance(
                claims.get("realm_access"), dict) else None)
            access = claims.get("resource_access")
            if isinstance(access, dict) and isinstance(access.get(self.client_id), dict):
                found += _list(access[self.client_id].get("roles"))
        roles = [r for r in ROLES if r in found] or ["user"]
        projects = _list(id_claims.get("projects")) or _list(userinfo.get("projects"))
        return OidcIdentity(username, name, roles, projects)


def _str(v: Any) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def _list(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []
