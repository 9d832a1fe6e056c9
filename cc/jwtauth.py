"""Ed25519 JSON Web Tokens in ClusterCockpit's key format.

``JWT_PRIVATE_KEY`` is base64 of the 64-byte NaCl secret key (seed followed by the
public key), ``JWT_PUBLIC_KEY`` base64 of the 32-byte public key, so keys made by
cc-backend's tools work here and ours work there.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import jwt
import nacl.signing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class AuthError(Exception):
    """The token is missing, malformed, expired or not signed by our key."""


def generate_keypair() -> tuple[str, str]:
    """(JWT_PUBLIC_KEY, JWT_PRIVATE_KEY) as base64 strings."""
    sk = nacl.signing.SigningKey.generate()
    pub = bytes(sk.verify_key)
    return base64.b64encode(pub).decode(), base64.b64encode(bytes(sk) + pub).decode()


def load_private_key(b64: str) -> Ed25519PrivateKey:
    raw = base64.b64decode(b64)
    if len(raw) not in (32, 64):
        raise AuthError(f"JWT_PRIVATE_KEY must decode to 64 bytes (seed + public key), got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw[:32])


def load_public_key(b64: str) -> Ed25519PublicKey:
    raw = base64.b64decode(b64)
    if len(raw) != 32:
        raise AuthError(f"JWT_PUBLIC_KEY must decode to 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_token(key: Ed25519PrivateKey, user: str, roles: list[str], max_age: float,
               now: float | None = None) -> str:
    now = int(time.time() if now is None else now)
    claims = {"sub": user, "roles": list(roles), "iat": now}
    if max_age > 0:
        claims["exp"] = now + int(max_age)
    return jwt.encode(claims, key, algorithm="EdDSA")


@dataclass(frozen=True)
class Claims:
    user: str
    roles: tuple[str, ...]
    exp: int
    raw: dict


class TokenVerifier:
    """Verifies tokens against one public key, caching good ones until they expire."""

    def __init__(self, public_key: Ed25519PublicKey, cache_size: int = 4096):
        self.key = public_key
        self.cache: dict[str, Claims] = {}
        self.cache_size = cache_size

    def verify(self, token: str) -> Claims:
        now = time.time()
        c = self.cache.get(token)
        if c is not None:
            if c.exp > now:
                return c
            del self.cache[token]
            raise AuthError("token expired")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise AuthError(f"malformed token: {e}") from None
        if header.get("alg") != "EdDSA":
            raise AuthError(f"token algorithm {header.get('alg')!r} not accepted (only EdDSA/Ed25519)")
        try:
            raw = jwt.decode(token, self.key, algorithms=["EdDSA"], options={"require": ["exp"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.MissingRequiredClaimError:
            raise AuthError("token has no 'exp' claim") from None
        except jwt.PyJWTError as e:
            raise AuthError(f"invalid token: {e}") from None
        roles = raw.get("roles") or []
        if not isinstance(roles, list):
            roles = []
        claims = Claims(str(raw.get("sub", "")), tuple(str(r) for r in roles), int(raw["exp"]), raw)
        if len(self.cache) >= self.cache_size:
            self.cache.clear()
        self.cache[token] = claims
        return claims


def token_from_headers(headers) -> str | None:
    """The JWT of a request: ``Authorization: Bearer`` or ``X-Auth-Token`` (as cc-metric-collector sends)."""
    auth = headers.get("authorization") or headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    tok = headers.get("x-auth-token") or headers.get("X-Auth-Token")
    return tok.strip() if tok else None


def load_hs_key(b64: str) -> bytes:
    """``CROSS_LOGIN_JWT_HS512_KEY``: base64 of the shared HMAC secret (as cc-backend reads it)."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise AuthError("CROSS_LOGIN_JWT_HS512_KEY is not valid base64") from None
    if not raw:
        raise AuthError("CROSS_LOGIN_JWT_HS512_KEY is empty")
    return raw


class CrossLoginVerifier:
    """Login tokens made by another service (``/jwt-login``, the ``auth.jwts.cookie-name`` cookie).

    Accepted, as cc-backend does: HS256/HS512 signed with ``CROSS_LOGIN_JWT_HS512_KEY``;
    EdDSA whose ``iss`` is ``auth.jwts.trusted-issuer``, signed with
    ``CROSS_LOGIN_JWT_PUBLIC_KEY``; EdDSA without ``iss``, signed with our own key.  Any
    other issuer is refused, and so is a token without ``exp`` (a login token ends up in
    browser histories and proxy logs: it must not be valid forever) or ``sub``.
    """

    def __init__(self, *, own_key: Ed25519PublicKey | None, cross_key: Ed25519PublicKey | None = None,
                 hs_key: bytes | None = None, trusted_issuer: str | None = None):
        self.own_key, self.cross_key, self.hs_key = own_key, cross_key, hs_key
        self.trusted_issuer = trusted_issuer

    def verify(self, token: str) -> dict:
        """The verified claims; :class:`AuthError` naming what is wrong otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise AuthError(f"malformed token: {e}") from None
        alg, issuer = header.get("alg"), unverified.get("iss") or None
        if issuer is not None and issuer != self.trusted_issuer:
            raise AuthError(f"untrusted token issuer {issuer!r}")
        if alg in ("HS256", "HS512"):
            if not self.hs_key:
                raise AuthError(f"{alg} login tokens need CROSS_LOGIN_JWT_HS512_KEY, which is not set")
            key = self.hs_key
        elif alg == "EdDSA":
            key = self.cross_key if issuer else self.own_key
            if key is None:
                raise AuthError("EdDSA tokens of the trusted issuer need CROSS_LOGIN_JWT_PUBLIC_KEY, which is not set"
                                if issuer else "no JWT_PUBLIC_KEY to verify our own tokens")
        else:
            raise AuthError(f"token algorithm {alg!r} not accepted for login (HS256, HS512 or EdDSA)")
        try:
            claims = jwt.decode(token, key, algorithms=[alg], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.MissingRequiredClaimError as e:
            raise AuthError(f"token has no {e.claim!r} claim") from None
        except jwt.PyJWTError as e:
            raise AuthError(f"invalid token: {e}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthError("token has no user name ('sub' claim)")
        return claims
