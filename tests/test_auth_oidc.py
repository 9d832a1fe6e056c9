"""OpenID Connect login against a real provider (npm ``oidc-provider``, started with node by the tests).

The browser is played by httpx: /oidc-login, the provider's authorization endpoint, its
dev-interactions login and consent forms, back to /oidc-callback, then the session.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import orjson
import pytest

from cc.authconfig import OidcSettings
from cc.config import ConfigError, load_config
from cc.proc import stop_subprocess
from cc.webd.oidc import OidcError
from cc.webd.oidcclient import OidcClient
from tests.helpers import Installation, free_port

HERE = Path(__file__).parent / "oidc"
CLIENT_ID, CLIENT_SECRET = "cc-web", "cc-web-secret-0123456789abcdef"

pytestmark = pytest.mark.skipif(
    not (HERE / "node_modules" / "oidc-provider").is_dir() or not shutil.which("node"),
    reason="the test OIDC provider is not installed (make test-oidc)")

ACCOUNTS = {
    # Keycloak-style claims: realm roles, roles per client (only our client's count), a projects attribute
    "alice": {"name": "Alice Admin", "realm_access": {"roles": ["admin", "offline_access"]},
              "resource_access": {CLIENT_ID: {"roles": ["manager"]}, "other-app": {"roles": ["support"]}},
              "projects": ["proj-a", "proj-b"]},
    "bob": {"name": "Bob Plain"},  # no role claims: role user
    "carol": {"name": "Carol Renamed", "realm_access": {"roles": ["support"]}},
}


class Provider:
    def __init__(self, root: Path, redirect_uris: list[str]):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "provider.json").write_bytes(orjson.dumps({
            "port": self.port, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris, "accounts": ACCOUNTS}))
        log = open(root / "provider.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(["node", str(HERE / "provider.mjs"), str(root / "provider.json")],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=HERE)
        log.close()
        self.log = root / "provider.log"
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("oidc-provider exited:\n" + self.log.read_text())
            try:
                if httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError("oidc-provider did not answer:\n" + self.log.read_text())
            time.sleep(0.1)

    def stop(self) -> None:
        stop_subprocess(self.proc, 10)


def start_installation(root: Path, web_port: int, issuer: str, **oidc) -> Installation:
    inst = Installation(root, ingest_workers=1, extra_config={
        "main": {"addr": f"127.0.0.1:{web_port}"}, "auth": {"oidc": {"provider": issuer, **oidc}}})
    with open(root / ".env", "a") as f:
        f.write(f'OID_CLIENT_ID="{CLIENT_ID}"\nOID_CLIENT_SECRET="{CLIENT_SECRET}"\n')
    try:
        inst.start()
    except BaseException:
        inst.stop()
        raise
    return inst


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One provider; installation ``sync`` adds and updates users, ``strict`` does neither."""
    root = tmp_path_factory.mktemp("oidc")
    ports = {"sync": free_port(), "strict": free_port()}
    provider = Provider(root / "provider", [f"http://127.0.0.1:{p}/oidc-callback" for p in ports.values()])
    insts: dict[str, Installation] = {}
    try:
        insts["sync"] = start_installation(root / "sync", ports["sync"], provider.issuer,
                                           **{"sync-user-on-login": True, "update-user-on-login": True})
        insts["strict"] = start_installation(root / "strict", ports["strict"], provider.issuer)
        yield provider, insts
    finally:
        for i in insts.values():
            i.stop()
        provider.stop()


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


def provider_login(c: httpx.Client, inst, username: str, target: str = "/") -> str:
    """Start at /oidc-login, log in at the provider's form, consent; the callback URL it sends us to."""
    r = c.get("/oidc-login", params={"redirect": target})
    assert r.status_code == 302, r.text
    auth = urlsplit(r.headers["location"])
    q = parse_qs(auth.query)
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) >= 43  # PKCE
    assert q["state"][0] and q["nonce"][0] and q["client_id"] == [CLIENT_ID]
    assert q["redirect_uri"] == [inst.web + "/oidc-callback"]
    url = r.headers["location"]
    for _ in range(20):
        r = c.get(url)
        if r.status_code in (302, 303):
            url = urljoin(url, r.headers["location"])
            if url.startswith(inst.web + "/oidc-callback"):
                return url
            continue
        assert r.status_code == 200, r.text
        form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post">.*?name="prompt" value="(\w+)"', r.text, re.S)
        assert form, r.text
        action, prompt = urljoin(url, form.group(1)), form.group(2)
        data = {"prompt": prompt, **({"login": username, "password": "any"} if prompt == "login" else {})}
        r = c.post(action, data=data)
        assert r.status_code in (302, 303), r.text
        url = urljoin(action, r.headers["location"])
        if url.startswith(inst.web + "/oidc-callback"):
            return url
    raise AssertionError("the provider never sent the browser back")


def logged_in(c: httpx.Client) -> bool:
    return c.get("/", follow_redirects=False).status_code == 200


# -- the flow -----------------------------------------------------------------------------------------


def test_login_page_offers_single_sign_on(setup):
    _, insts = setup
    page = browser(insts["sync"]).get("/login", params={"redirect": "/monitoring/jobs/"}).text
    assert 'href="/oidc-login?redirect=/monitoring/jobs/"' in page and "single sign-on" in page


def test_full_flow_creates_the_user_with_roles_and_projects_from_the_claims(setup):
    _, insts = setup
    inst = insts["sync"]
    c = browser(inst)
    callback = provider_login(c, inst, "alice", target="/monitoring/jobs/")
    r = c.get(callback)
    assert r.status_code == 303 and r.headers["location"] == "/monitoring/jobs/", r.text
    assert logged_in(c)
    # admin from realm_access, manager from our client's resource_access; not other-app's support
    assert db_user(inst, "alice") == {"source": 3, "name": "Alice Admin", "roles": ["manager", "admin"],
                                      "projects": ["proj-a", "proj-b"]}
    me = c.post("/query", json={"query": "{ jobs { count } }"}, headers={"content-type": "application/json"})
    assert me.status_code == 200 and "errors" not in me.json(), me.text

    c2 = browser(inst)
    assert c2.get(provider_login(c2, inst, "bob")).status_code == 303 and logged_in(c2)
    assert db_user(inst, "bob")["roles"] == ["user"]  # no role claims: user


def test_update_user_on_login_brings_name_and_roles_in_line(setup):
    _, insts = setup
    inst = insts["sync"]
    assert inst.cli("add-user", "carol:user,admin:").returncode == 0
    c = browser(inst)
    assert c.get(provider_login(c, inst, "carol")).status_code == 303
    assert db_user(inst, "carol") == {"source": 0, "name": "Carol Renamed", "roles": ["support"], "projects": []}


def test_state_mismatch_and_a_foreign_browser_are_refused(setup):
    _, insts = setup
    inst = insts["sync"]
    c = browser(inst)
    callback = urlsplit(provider_login(c, inst, "bob"))
    q = {k: v[0] for k, v in parse_qs(callback.query).items()}
    forged = urlunsplit(callback._replace(query=urlencode({**q, "state": "not-the-state"})))
    r = c.get(forged)
    assert r.status_code == 400 and "state mismatch" in r.text and not logged_in(c)
    other = browser(inst)  # the right URL, but in a browser that did not start this login
    r = other.get(urlunsplit(callback))
    assert r.status_code == 400 and "no login in progress" in r.text and not logged_in(other)


def test_a_replayed_answer_or_code_is_refused(setup):
    _, insts = setup
    inst = insts["sync"]
    c = browser(inst)
    callback = provider_login(c, inst, "bob")
    flow_cookie = c.cookies.get("cc_oidc_flow")
    assert c.get(callback).status_code == 303 and logged_in(c)
    # the same answer again, with the flow cookie a thief would have copied
    thief = browser(inst)
    thief.cookies.set("cc_oidc_flow", flow_cookie)
    r = thief.get(callback)
    assert r.status_code == 400 and "already used" in r.text and not logged_in(thief)
    # a new login of this browser, answered with the old (redeemed) code: the provider refuses it
    c3 = browser(inst)
    fresh = urlsplit(provider_login(c3, inst, "bob"))
    old_code = parse_qs(urlsplit(callback).query)["code"][0]
    q = {k: v[0] for k, v in parse_qs(fresh.query).items()}
    r = c3.get(urlunsplit(fresh._replace(query=urlencode({**q, "code": old_code}))))
    assert r.status_code == 400 and "token exchange failed" in r.text and not logged_in(c3)


def test_without_sync_an_unknown_user_is_refused_and_a_known_one_keeps_database_roles(setup):
    _, insts = setup
    inst = insts["strict"]
    c = browser(inst)
    r = c.get(provider_login(c, inst, "alice"))
    assert r.status_code == 403 and "not registered here" in r.text and not logged_in(c)
    assert db_user(inst, "alice") is None
    assert inst.cli("add-user", "alice:user:").returncode == 0
    c = browser(inst)
    assert c.get(provider_login(c, inst, "alice")).status_code == 303 and logged_in(c)
    assert db_user(inst, "alice")["roles"] == ["user"]  # the token's admin role does not count here
    assert "refused: not a user of this installation" in (inst.cfg.log_dir / "web.log").read_text()


def test_the_provider_saying_no_is_shown(setup):
    _, insts = setup
    inst = insts["sync"]
    c = browser(inst)
    r = c.get("/oidc-login")
    state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
    r = c.get("/oidc-callback", params={"state": state, "error": "access_denied",
                                        "error_description": "End-User aborted interaction"})
    assert r.status_code == 401 and "aborted" in r.text and not logged_in(c)


# -- without a web process ---------------------------------------------------------------------------


async def test_an_unreachable_provider_is_a_clear_error():
    client = OidcClient(OidcSettings(provider=f"http://127.0.0.1:{free_port()}"), "id", "secret", "k" * 32)
    with pytest.raises(OidcError, match="cannot be reached") as e:
        await client.start("http://127.0.0.1/oidc-callback", "/")
    assert e.value.status == 503


def test_roles_come_only_from_known_names_and_our_client():
    client = OidcClient(OidcSettings(provider="https://sso.example/realms/hpc"), "cc", "s", "k" * 32)
    who = client.identity({"preferred_username": "x", "realm_access": {"roles": ["api", "uma_authorization"]},
                           "resource_access": {"cc": {"roles": ["support"]}, "x": {"roles": ["admin"]}}}, {})
    assert who.roles == ["support", "api"] and who.projects == []
    with pytest.raises(OidcError, match="preferred_username"):
        client.identity({"sub": "1234"}, {})


@pytest.mark.parametrize("oidc, message", [
    ({}, r"'auth\.oidc\.provider' is required"),
    ({"provider": "sso.example"}, r"'auth\.oidc\.provider' must be the issuer URL"),
    ({"provider": "https://sso.example", "sync-user-on-login": 1}, r"'auth\.oidc\.sync-user-on-login' must be true"),
    ({"provider": "https://sso.example", "client-id": "x"}, r"unknown config key 'auth\.oidc\.client-id'"),
])
def test_bad_oidc_settings_stop_the_start_naming_the_key(tmp_path, oidc, message):
    (tmp_path / "config.json").write_bytes(orjson.dumps({"auth": {"oidc": oidc}}))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "config.json")


def test_jwt_login_is_off_unless_configured(setup):
    _, insts = setup
    r = browser(insts["strict"]).get("/jwt-login", params={"login-token": "x.y.z"})
    assert r.status_code == 404 and "JWT login is not configured" in r.text


def test_a_real_browser_logs_in_with_the_sso_button(setup, tmp_path):
    """Chromium: the job list sends us to the login page, its SSO button to the provider, and back."""
    from tests.ui_helpers import Browser, browser_available

    missing = browser_available()
    if missing:
        pytest.skip(missing)
    _, insts = setup
    web = insts["sync"].web
    b = Browser(tmp_path)
    try:
        b.get(web + "/monitoring/jobs/")
        b.wait("return location.pathname === '/login'", what="the login page")
        b.screenshot(tmp_path / "login-page.png")
        b.click("[data-oidc-login]")
        b.wait("return document.querySelector('input[name=login]') !== null", what="the provider's login form")
        b.type("input[name=login]", "bob")
        b.type("input[name=password]", "anything")
        b.click("button[type=submit]")
        b.wait("return document.querySelector('input[name=prompt][value=consent]') !== null", what="consent")
        b.click("button[type=submit]")
        b.wait("return location.origin === arguments[0] && location.pathname === '/monitoring/jobs/'", web,
               what="back on the job list, logged in")
        b.screenshot(tmp_path / "after-sso.png")
        assert "bob" in b.text("body")
    finally:
        b.quit()
