"""Server-side sessions (revocation across requests and restarts, rotation, admin ending sessions),
login throttling by (address, user) pair, and client addresses behind trusted proxies."""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest

from cc.db import _sessions as store
from cc.db import _users as users
from cc.db import connect, migrate
from cc.netacl import IPAllowList, ProxyTrust
from cc.webd.auth import LoginLimiter
from tests.helpers import Installation

# -- login throttling (unit) ---------------------------------------------------------------------


def test_limiter_blocks_only_the_guessing_pair_and_backs_off():
    lim = LoginLimiter(free=3, base=2.0, cap=60.0)
    t = 1000.0
    for _ in range(3):
        assert lim.retry_after("10.0.0.66", "alice", t) == 0
        lim.failed("10.0.0.66", "alice", t)
    assert lim.retry_after("10.0.0.66", "alice", t) == 2           # blocked after the free tries
    assert lim.retry_after("10.0.0.7", "alice", t) == 0            # the owner elsewhere: untouched
    assert lim.retry_after("10.0.0.66", "bob", t) == 0             # other accounts from there: untouched
    lim.failed("10.0.0.66", "alice", t + 2)
    assert lim.retry_after("10.0.0.66", "alice", t + 2) == 4       # doubling
    for i in range(10):
        lim.failed("10.0.0.66", "alice", t + 10 + i)
    assert lim.retry_after("10.0.0.66", "alice", t + 19) == 60     # capped
    assert lim.retry_after("10.0.0.66", "alice", t + 19 + 60) == 0  # and over afterwards
    lim.succeeded("10.0.0.66", "alice")
    lim.failed("10.0.0.66", "alice", t + 100)
    assert lim.retry_after("10.0.0.66", "alice", t + 100) == 0     # a success starts over


def test_limiter_forgets_and_stays_bounded():
    lim = LoginLimiter(free=1, base=10, forget=100, max_pairs=50)
    lim.failed("1.1.1.1", "u", 0)
    assert lim.retry_after("1.1.1.1", "u", 5) == 5
    lim.failed("1.1.1.1", "u", 5)
    assert lim.retry_after("1.1.1.1", "u", 200) == 0
    lim.failed("1.1.1.1", "u", 200)   # counted from zero again: the first failure is free
    assert lim.retry_after("1.1.1.1", "u", 200) == 10
    for i in range(200):
        lim.failed(f"10.0.{i}.1", "x", 300)
    assert len(lim.pairs) == 50


# -- trusted proxies (unit) ----------------------------------------------------------------------

class H(dict):
    """Headers with repeated fields, as the web server hands them over."""

    def getlist(self, name):
        v = self.get(name.lower())
        return v if isinstance(v, list) else ([v] if v else [])


def test_forwarded_headers_only_from_trusted_proxies_and_rightmost_untrusted_hop():
    trust = ProxyTrust(["10.1.0.0/16", "::1"])
    spoof = H({"x-forwarded-for": "6.6.6.6, 192.0.2.10", "x-forwarded-proto": "https"})
    c = trust.client("10.1.2.3", "http", "Monitor:8080", spoof)
    assert (c.ip, c.scheme, c.host, c.via_proxy) == ("192.0.2.10", "https", "monitor:8080", True)
    # the client's own "X-Forwarded-For: 6.6.6.6" is left of the first untrusted hop: not believed
    chain = H({"x-forwarded-for": ["6.6.6.6, 192.0.2.10", "10.1.9.9"]})  # two proxies, two header lines
    assert trust.client("10.1.2.3", "http", "m", chain).ip == "192.0.2.10"
    # not from a proxy: the headers count for nothing
    c = trust.client("192.0.2.99", "http", "m", spoof)
    assert (c.ip, c.scheme, c.via_proxy) == ("192.0.2.99", "http", False)
    assert ProxyTrust([]).client("10.1.2.3", "http", "m", spoof).ip == "10.1.2.3"
    # RFC 7239 when there is no X-Forwarded-For; IPv6 and mapped addresses
    fwd = H({"forwarded": 'for="[2001:db8::7]:4711";proto=https;host=cc.example.org'})
    c = trust.client("::1", "http", "127.0.0.1:8080", fwd)
    assert (c.ip, c.scheme, c.host) == ("2001:db8::7", "https", "cc.example.org")
    assert trust.client("::ffff:10.1.0.5", "http", "m", H({"x-forwarded-for": "192.0.2.1"})).ip == "192.0.2.1"
    assert trust.client("10.1.0.5", "http", "m", H({"x-forwarded-for": "unknown"})).ip == "10.1.0.5"
    with pytest.raises(ValueError, match="main.trusted-proxies: 'nope'"):
        ProxyTrust(["nope"])
    assert IPAllowList(["10.0.0.0/8"]).allows("::ffff:10.2.3.4") and not IPAllowList(["10.0.0.0/8"]).allows("x")


# -- the session table (unit) ---------------------------------------------------------------------

def test_session_rows_expire_go_with_their_user_and_role_changes(tmp_path):
    path = tmp_path / "job.db"
    migrate(path)
    conn = connect(path)
    try:
        users.add_user(conn, "alice", ["user"], "pw")
        store.create_session(conn, store.SessionRecord("h1", "alice", 100, 200, "10.0.0.1", "ua"))
        store.create_session(conn, store.SessionRecord("h2", "alice", 100, 0, "10.0.0.2", "ua"))
        assert store.session_user(conn, "h1", 199).username == "alice"
        assert store.session_user(conn, "h1", 200) is None                    # expired at its max age
        assert store.session_user(conn, "h2", 10**10).username == "alice"     # 0: no expiry
        assert [s["ip"] for s in store.list_sessions(conn, "alice", 150)] == ["10.0.0.1", "10.0.0.2"]
        assert store.purge_expired(conn, 250) == 1
        assert store.session_user(conn, "nope", 150) is None
        users.update_user(conn, "alice", add_role="support")                  # new rights: log in again
        assert store.list_sessions(conn, "alice", 150) == []
        store.create_session(conn, store.SessionRecord("h3", "alice", 100, 0, "", ""))
        users.set_password(conn, "alice", "new")
        assert store.list_sessions(conn, None, 150) == []
        store.create_session(conn, store.SessionRecord("h4", "alice", 100, 0, "", ""))
        users.delete_user(conn, "alice")
        assert conn.execute("SELECT count(*) FROM web_session").fetchone()[0] == 0
        with pytest.raises(sqlite3.IntegrityError):  # no session for a user who does not exist
            store.create_session(conn, store.SessionRecord("h5", "ghost", 100, 0, "", ""))
    finally:
        conn.close()


# -- against the real supervisor -----------------------------------------------------------------

@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = Installation(tmp_path_factory.mktemp("sessions"), ingest_workers=1,
                     extra_config={"main": {"trusted-proxies": ["127.0.0.1"], "session-max-age": "2h"}})
    for spec in ("admin:admin:pw-admin", "alice:user:pw-alice", "bob:user:pw-bob", "carol:user:pw-carol"):
        assert i.cli("add-user", spec).returncode == 0
    i.start()
    try:
        yield i
    finally:
        i.stop()


def login(inst, user: str, password: str, **headers) -> httpx.Client:
    c = httpx.Client(base_url=inst.web, timeout=30)
    r = c.post("/login", json={"username": user, "password": password}, headers=headers)
    assert r.status_code == 200, r.text
    return c


def me(client: httpx.Client) -> int:
    """Status of a session-only request (the settings page's token endpoint: 200 logged in, 401 not)."""
    return client.get("/frontend/jwt/").status_code


def copy_of(c: httpx.Client) -> httpx.Client:
    other = httpx.Client(base_url=str(c.base_url), timeout=30)
    other.cookies.set("session", c.cookies["session"])
    return other


def test_logout_revokes_the_session_for_copies_of_the_cookie_and_after_a_restart(inst):
    alice = login(inst, "alice", "pw-alice")
    thief = copy_of(alice)
    assert me(alice) == me(thief) == 200
    bob = login(inst, "bob", "pw-bob")
    assert alice.post("/logout", json={}).status_code == 200
    assert "session" not in alice.cookies
    assert me(thief) == 401                      # the copied cookie died with the session
    r = thief.post("/query", json={"query": "{ tags { id } }"})
    assert r.status_code == 401
    # a restarted web process still refuses it, and still knows the sessions that are alive
    assert inst.cli("restart", "web").returncode == 0
    inst.wait_ready()
    assert me(thief) == 401
    assert me(bob) == 200


def test_login_rotates_the_session_id(inst):
    c = login(inst, "carol", "pw-carol")
    before = c.cookies["session"]
    old = copy_of(c)
    assert c.post("/login", json={"username": "carol", "password": "pw-carol"}).status_code == 200
    assert c.cookies["session"] != before
    assert me(c) == 200 and me(old) == 401      # the id of before the login is gone
    # the session record: created now, expiring after main.session-max-age (2h), with the client address
    conn = connect(inst.cfg.db_path)
    try:
        created, expires, ip = conn.execute("SELECT created, expires, ip FROM web_session WHERE username = 'carol'"
                                            ).fetchone()
    finally:
        conn.close()
    assert abs(created - time.time()) < 60 and expires - created == 7200 and ip == "127.0.0.1"


def test_stateless_cookies_of_the_old_kind_are_not_accepted(inst):
    from quart import Quart
    from quart.sessions import SecureCookieSessionInterface

    # what the previous version put in the cookie: just the user name, signed with SESSION_KEY
    app = Quart("forger")
    app.secret_key = inst.cfg.secret("SESSION_KEY")
    forged = SecureCookieSessionInterface().get_signing_serializer(app).dumps({"user": "admin", "_permanent": True})
    with httpx.Client(base_url=inst.web) as c:
        c.cookies.set("session", forged)
        assert me(c) == 401


def test_admin_lists_and_ends_a_users_sessions(inst):
    a1 = login(inst, "alice", "pw-alice", **{"X-Forwarded-For": "192.0.2.1", "User-Agent": "laptop"})
    a2 = login(inst, "alice", "pw-alice", **{"X-Forwarded-For": "192.0.2.2", "User-Agent": "phone"})
    token = inst.token("admin", ["admin", "api"])
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.get(inst.web + "/api/user/alice/sessions", headers=auth)
    assert r.status_code == 200
    listed = {s["ip"]: s for s in r.json()}
    assert {"192.0.2.1", "192.0.2.2"} <= set(listed) and listed["192.0.2.2"]["userAgent"] == "phone"
    # one session ...
    r = httpx.delete(inst.web + "/api/user/alice/sessions", params={"id": listed["192.0.2.2"]["id"]}, headers=auth)
    assert r.status_code == 200 and r.json()["ended"] == 1
    assert me(a2) == 401 and me(a1) == 200
    assert httpx.delete(inst.web + "/api/user/alice/sessions", params={"id": "x"}, headers=auth).status_code == 400
    # ... or all of them, from the settings page (admin's session cookie, same origin)
    admin = login(inst, "admin", "pw-admin")
    r = admin.request("DELETE", "/config/user/alice/sessions", headers={"Origin": inst.web})
    assert r.status_code == 200 and r.json()["ended"] >= 1
    assert me(a1) == 401
    assert admin.request("DELETE", "/config/user/alice/sessions",
                         headers={"Origin": "http://evil.example"}).status_code == 403
    assert httpx.get(inst.web + "/api/user/nobody/sessions", headers=auth).status_code == 404
    user_token = {"Authorization": f"Bearer {inst.token('alice', ['user', 'api'])}"}
    assert httpx.get(inst.web + "/api/user/alice/sessions", headers=user_token).status_code == 403
    # the CLI too
    a3 = login(inst, "alice", "pw-alice")
    r = inst.cli("end-sessions", "alice")
    assert r.returncode == 0 and "ended 1" in r.stdout
    assert me(a3) == 401


def test_role_change_and_deletion_end_sessions(inst):
    assert inst.cli("add-user", "dave:user:pw-dave").returncode == 0
    dave = login(inst, "dave", "pw-dave")
    auth = {"Authorization": f"Bearer {inst.token('admin', ['admin', 'api'])}"}
    assert httpx.post(inst.web + "/api/user/dave", json={"add-role": "support"}, headers=auth).status_code == 200
    assert me(dave) == 401
    dave = login(inst, "dave", "pw-dave")
    assert httpx.request("DELETE", inst.web + "/api/users/", data={"username": "dave"}, headers=auth
                         ).status_code == 200
    assert me(dave) == 401


def _login_status(inst, user, password, ip):
    r = httpx.post(inst.web + "/login", json={"username": user, "password": password},
                   headers={"X-Forwarded-For": ip}, timeout=30)
    return r.status_code, r.headers.get("Retry-After")


def test_guesses_from_one_address_do_not_lock_out_the_owner(inst):
    for _ in range(8):  # an attacker behind the proxy keeps guessing admin's password
        status, _ = _login_status(inst, "admin", "guess", "198.51.100.66")
    assert status == 429
    assert _login_status(inst, "admin", "pw-admin", "198.51.100.66")[0] == 429  # blocked: even the right one
    assert _login_status(inst, "admin", "pw-admin", "198.51.100.7")[0] == 200   # the owner, elsewhere


def test_right_password_works_after_the_backoff(inst):
    ip = "198.51.100.8"
    statuses = [_login_status(inst, "bob", "typo", ip)[0] for _ in range(5)]
    assert statuses == [401] * 5
    status, retry = _login_status(inst, "bob", "pw-bob", ip)
    assert status == 429 and int(retry) >= 1                 # the fifth failure started a 1 s backoff
    deadline = time.monotonic() + 30
    while True:
        status, _ = _login_status(inst, "bob", "pw-bob", ip)
        if status != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200


def test_secure_cookie_when_the_trusted_proxy_saw_https(inst):
    r = httpx.post(inst.web + "/login", json={"username": "bob", "password": "pw-bob"},
                   headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert r.headers["strict-transport-security"].startswith("max-age=")
    r = httpx.post(inst.web + "/login", json={"username": "bob", "password": "pw-bob"})
    assert "Secure" not in r.headers["set-cookie"] and "strict-transport-security" not in r.headers
