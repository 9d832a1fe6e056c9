"""JWT cross-login (``/jwt-login``, the ``auth.jwts.cookie-name`` cookie) against the real web process."""

from __future__ import annotations

import base64
import html
import os
import sqlite3
import time

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cc.config import ConfigError, load_config
from cc.jwtauth import AuthError, CrossLoginVerifier, load_private_key
from tests.helpers import Installation

HS_KEY = os.urandom(64)
PORTAL_KEY = Ed25519PrivateKey.generate()  # the trusted issuer's own Ed25519 key
PORTAL = "https://portal.example"
COOKIE = "cc_cross_login"


def portal_public_b64() -> str:
    return base64.b64encode(PORTAL_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def claims(sub: str = "dora", *, ttl: int = 300, **extra) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, **({"exp": now + ttl} if ttl is not None else {}), **extra}


def hs(c: dict, alg: str = "HS512", key: bytes = HS_KEY) -> str:
    return jwt.encode(c, key, algorithm=alg)


def portal(c: dict) -> str:
    return jwt.encode({"iss": PORTAL, **c}, PORTAL_KEY, algorithm="EdDSA")


def start(root, jwts: dict, env: dict[str, str]) -> Installation:
    inst = Installation(root, ingest_workers=1, extra_config={"auth": {"jwts": {"max-age": "1h", **jwts}}})
    with open(root / ".env", "a") as f:
        for k, v in env.items():
            f.write(f'{k}="{v}"\n')
    try:
        inst.start()
    except BaseException:
        inst.stop()
        raise
    return inst


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = start(tmp_path_factory.mktemp("jwtsync"),
              {"cookie-name": COOKIE, "trusted-issuer": PORTAL, "sync-user-on-login": True,
               "update-user-on-login": True},
              {"CROSS_LOGIN_JWT_HS512_KEY": base64.b64encode(HS_KEY).decode(),
               "CROSS_LOGIN_JWT_PUBLIC_KEY": portal_public_b64()})
    yield i
    i.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    i = start(tmp_path_factory.mktemp("jwtvalidate"), {"validate-user": True},
              {"CROSS_LOGIN_JWT_HS512_KEY": base64.b64encode(HS_KEY).decode()})
    yield i
    i.stop()


def db_user(inst, name: str) -> dict | None:
    conn = sqlite3.connect(inst.cfg.db_path)
    try:
        row = conn.execute("SELECT ldap, name, roles, projects FROM hpc_user WHERE username = ?", (name,)).fetchone()
    finally:
        conn.close()
    return None if row is None else {"source": row[0], "name": row[1], "roles": orjson.loads(row[2]),
                                     "projects": orjson.loads(row[3])}


def browser(inst) -> httpx.Client:
    return httpx.Client(base_url=inst.web, timeout=30, trust_env=False)


def logged_in(c: httpx.Client) -> bool:
    return c.get("/", follow_redirects=False).status_code == 200


def jwt_login(inst, token: str, how: str = "login-token", **params) -> tuple[httpx.Response, httpx.Client]:
    c = browser(inst)
    if how == "header":
        r = c.get("/jwt-login", headers={"Authorization": f"Bearer {token}"}, params=params)
    elif how == "cookie":
        c.cookies.set(COOKIE, token)
        r = c.get("/jwt-login", params=params)
    else:
        r = c.get("/jwt-login", params={how: token, **params})
    return r, c


# -- accepted tokens ---------------------------------------------------------------------------------


def test_hs512_login_token_creates_the_user_from_its_claims(inst):
    r, c = jwt_login(inst, hs(claims("dora", roles=["user", "manager", "bogus"], projects=["p1"],
                                     name={"values": ["Dora", "Explorer"]})), redirect="/monitoring/jobs/")
    assert r.status_code == 303 and r.headers["location"] == "/monitoring/jobs/", r.text
    assert logged_in(c)
    assert db_user(inst, "dora") == {"source": 2, "name": "Dora Explorer", "roles": ["user", "manager"],
                                     "projects": ["p1"]}


@pytest.mark.parametrize("make, how", [
    (lambda: hs(claims("erik", roles=["user"]), alg="HS256"), "token"),
    (lambda: hs(claims("erik", roles=["user"])), "header"),
    (lambda: portal(claims("erik", roles=["user"])), "login-token"),  # the trusted issuer's Ed25519 key
    (lambda: portal(claims("erik", roles=["user"])), "cookie"),
])
def test_every_token_kind_and_place_logs_in(inst, make, how):
    r, c = jwt_login(inst, make(), how)
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    assert logged_in(c)
    if how == "cookie":  # used once: the browser is told to drop it
        assert any(h.startswith(f"{COOKIE}=;") and "Max-Age=0" in h or f"{COOKIE}=\"\"" in h
                   for h in r.headers.get_list("set-cookie")), r.headers.get_list("set-cookie")


def test_our_own_ed25519_tokens_log_in_too(inst):
    token = jwt.encode(claims("frida", roles=["user"]), load_private_key(inst.cfg.secret("JWT_PRIVATE_KEY")),
                       algorithm="EdDSA")
    r, c = jwt_login(inst, token, "header")
    assert r.status_code == 303 and logged_in(c)


def test_update_user_on_login_takes_roles_and_name_from_the_token(inst):
    assert inst.cli("add-user", "gus:user:gus-pw").returncode == 0
    r, c = jwt_login(inst, hs(claims("gus", roles=["support"], name="Gus G")))
    assert r.status_code == 303 and logged_in(c)
    assert db_user(inst, "gus") == {"source": 0, "name": "Gus G", "roles": ["support"], "projects": []}


def test_a_json_client_gets_json(inst):
    c = browser(inst)
    r = c.get("/jwt-login", params={"login-token": hs(claims("dora", roles=["user"]))},
              headers={"accept": "application/json"})
    assert r.status_code == 200 and r.json()["username"] == "dora"
    r = c.get("/jwt-login", params={"login-token": "x.y.z"}, headers={"accept": "application/json"})
    assert r.status_code == 401 and "malformed token" in r.json()["error"]


def test_an_outside_redirect_target_is_ignored(inst):
    r, _ = jwt_login(inst, hs(claims("dora", roles=["user"])), redirect="//evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/"


# -- refused tokens ----------------------------------------------------------------------------------


REFUSED = {
    "expired": (lambda: hs(claims(ttl=-10)), "token expired"),
    "no expiry": (lambda: hs(claims(ttl=None)), "no 'exp' claim"),
    "no subject": (lambda: hs({"exp": int(time.time()) + 60}), "no 'sub' claim"),
    "foreign issuer (HS)": (lambda: hs(claims(iss="https://evil.example")), "untrusted token issuer"),
    "foreign issuer (EdDSA)": (lambda: jwt.encode(claims(iss="https://evil.example"), PORTAL_KEY, algorithm="EdDSA"),
                               "untrusted token issuer"),
    "portal key without issuer": (lambda: jwt.encode(claims(), PORTAL_KEY, algorithm="EdDSA"), "invalid token"),
    "wrong HMAC key": (lambda: hs(claims(), key=os.urandom(64)), "invalid token"),
    "alg none": (lambda: jwt.encode(claims(), None, algorithm="none"), "not accepted"),
    "RS-style alg name": (lambda: hs(claims(), alg="HS384"), "not accepted"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_bad_tokens_are_refused_and_give_no_session(inst, case):
    make, message = REFUSED[case]
    r, c = jwt_login(inst, make())
    assert r.status_code == 401 and message in html.unescape(r.text), r.text
    assert not logged_in(c)


def test_a_refused_cookie_is_dropped_as_well(inst):
    r, c = jwt_login(inst, hs(claims(ttl=-10)), "cookie")
    assert r.status_code == 401
    assert any(h.startswith(f"{COOKIE}=") for h in r.headers.get_list("set-cookie"))


def test_no_token_at_all(inst):
    r = browser(inst).get("/jwt-login")
    assert r.status_code == 400 and "no login token" in r.text


# -- validate-user -----------------------------------------------------------------------------------


def test_validate_user_refuses_unknown_users_and_keeps_database_roles(strict):
    r, c = jwt_login(strict, hs(claims("hank", roles=["admin"])))
    assert r.status_code == 403 and "not registered here" in r.text and not logged_in(c)
    assert db_user(strict, "hank") is None
    assert strict.cli("add-user", "hank:user:").returncode == 0
    r, c = jwt_login(strict, hs(claims("hank", roles=["admin"], name="Hank H")))
    assert r.status_code == 303 and logged_in(c)
    assert db_user(strict, "hank") == {"source": 0, "name": None, "roles": ["user"], "projects": []}


def test_validate_user_also_applies_to_api_tokens(strict):
    r = httpx.get(strict.web + "/api/jobs/", headers={"Authorization": f"Bearer {strict.token('ghost', ['api'])}"})
    assert r.status_code == 401 and "unknown user 'ghost'" in r.json()["error"]
    assert strict.cli("add-user", "robot:api,admin:").returncode == 0
    r = httpx.get(strict.web + "/api/jobs/", headers={"Authorization": f"Bearer {strict.token('robot', ['user'])}"})
    assert r.status_code == 200, r.text  # the database's api role counts, not the token's


def test_cookie_logins_are_off_without_cookie_name(strict):
    r, c = jwt_login(strict, hs(claims("hank")), "cookie")
    assert r.status_code == 400 and not logged_in(c)


# -- the verifier and the settings -------------------------------------------------------------------


def test_verifier_without_keys_names_the_missing_one():
    v = CrossLoginVerifier(own_key=None, trusted_issuer=PORTAL)
    with pytest.raises(AuthError, match="CROSS_LOGIN_JWT_HS512_KEY, which is not set"):
        v.verify(hs(claims()))
    with pytest.raises(AuthError, match="CROSS_LOGIN_JWT_PUBLIC_KEY, which is not set"):
        v.verify(portal(claims()))


@pytest.mark.parametrize("jwts, message", [
    ({"cookie-name": 5}, r"'auth\.jwts\.cookie-name' must be a string"),
    ({"validate-user": "true"}, r"'auth\.jwts\.validate-user' must be true or false"),
    ({"trusted-issuers": "x"}, r"unknown config key 'auth\.jwts\.trusted-issuers'"),
])
def test_bad_jwt_settings_stop_the_start_naming_the_key(tmp_path, jwts, message):
    (tmp_path / "config.json").write_bytes(orjson.dumps({"auth": {"jwts": {"max-age": "1h", **jwts}}}))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "config.json")
