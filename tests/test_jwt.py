"""Ed25519 JWTs in ClusterCockpit's key format."""

from __future__ import annotations

import base64
import time

import jwt as pyjwt
import nacl.signing
import pytest

from cc.jwtauth import (
    AuthError,
    TokenVerifier,
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_token,
    token_from_headers,
)


def test_keypair_is_nacl_compatible():
    pub, priv = generate_keypair()
    raw = base64.b64decode(priv)
    assert len(raw) == 64 and raw[32:] == base64.b64decode(pub)
    # a signature made with NaCl directly verifies with the cryptography key we load
    sk = nacl.signing.SigningKey(raw[:32])
    msg = b"hello"
    load_public_key(pub).verify(sk.sign(msg).signature, msg)


def test_sign_and_verify_roundtrip():
    pub, priv = generate_keypair()
    tok = sign_token(load_private_key(priv), "alice", ["api", "user"], 3600)
    claims = TokenVerifier(load_public_key(pub)).verify(tok)
    assert claims.user == "alice" and claims.roles == ("api", "user")
    assert claims.exp > time.time()


def test_rejections():
    pub, priv = generate_keypair()
    other_pub, other_priv = generate_keypair()
    v = TokenVerifier(load_public_key(pub))
    with pytest.raises(AuthError, match="expired"):
        v.verify(sign_token(load_private_key(priv), "a", [], 10, now=time.time() - 100))
    with pytest.raises(AuthError, match="exp"):
        v.verify(sign_token(load_private_key(priv), "a", [], 0))
    with pytest.raises(AuthError, match="invalid"):
        v.verify(sign_token(load_private_key(other_priv), "a", [], 60))
    hs = pyjwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "secret" * 6, algorithm="HS256")
    with pytest.raises(AuthError, match="HS256"):
        v.verify(hs)
    with pytest.raises(AuthError, match="malformed"):
        v.verify("not-a-token")


def test_cached_token_still_expires():
    pub, priv = generate_keypair()
    v = TokenVerifier(load_public_key(pub))
    tok = sign_token(load_private_key(priv), "a", ["api"], 1)
    v.verify(tok)
    time.sleep(1.1)
    with pytest.raises(AuthError, match="expired"):
        v.verify(tok)


def test_token_from_headers():
    assert token_from_headers({"authorization": "Bearer abc"}) == "abc"
    assert token_from_headers({"x-auth-token": "xyz"}) == "xyz"
    assert token_from_headers({"authorization": "Basic abc"}) is None
    assert token_from_headers({}) is None


def test_bad_key_material():
    with pytest.raises(AuthError, match="64 bytes"):
        load_private_key(base64.b64encode(b"short").decode())
    with pytest.raises(AuthError, match="32 bytes"):
        load_public_key(base64.b64encode(b"x" * 31).decode())
