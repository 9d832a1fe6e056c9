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
