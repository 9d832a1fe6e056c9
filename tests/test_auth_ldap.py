"""LDAP login and user sync against a real OpenLDAP server (Debian's slapd, started by the tests)."""

from __future__ import annotations

import sqlite3
import time

import httpx
import orjson
import pytest

from cc.authconfig import LdapSettings
from cc.config import ConfigError, load_config
from cc.webd.ldapauth import LdapDirectory, LdapUnavailable
from tests import slapd as ldapsrv
from tests.helpers import Installation, free_port
from tests.slapd import ADMIN_DN, ADMIN_PASSWORD, PEOPLE, Slapd
from tests.tlsfiles import make_tls_files

pytestmark = pytest.mark.skipif(not ldapsrv.available(), reason="slapd/ldap-utils not installed (make system-deps)")

FILTER = "(&(objectClass=posixAccount)(gidNumber=100))"  # gid 200 = not a user of the cluster


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    server = Slapd(tmp_path_factory.mktemp("slapd")).start()
    server.add_user("alice", "alice-pw", gecos="Alice Liddell", uid_number=10001)
    server.add_user("bob", "bob-pw", cn="Bob Builder", uid_number=10002)
    server.add_user("carol", "carol-pw", gecos="Carol C", uid_number=10003)
    server.add_user("mallory", "mallory-pw", gecos="Not Staff", uid_number=10004, gid_number=200)
    server.add_user("shadow", "shadow-pw", gecos="Shadow Local", uid_number=10005)  # also a local user
    yield server
    server.stop()


def ldap_config(url: str, **extra) -> dict:
    return {"url": url, "user-base": PEOPLE, "search-dn": ADMIN_DN, "user-bind": f"uid={{username}},{PEOPLE}",
            "user-filter": FILTER, **extra}


def installation(root, ldap: dict, admin_password: str | None = ADMIN_PASSWORD) -> Installation:
    inst = Installation(root, ingest_workers=1, extra_config={"auth": {"ldap": ldap}})
    if admin_password:
        with open(root / ".env", "a") as f:
            f.write(f'LDAP_ADMIN_PASSWORD="{admin_password}"\n')
    return inst


def db_users(inst) -> dict[str, dict]:
    conn = sqlite3.connect(inst.cfg.db_path)
    try:
        return {r[0]: {"ldap": r[1], "name": r[2], "roles": orjson.loads(r[3] or "[]")}
                for r in conn.execute("SELECT username, ldap, name, roles FROM hpc_user")}
    finally:
        conn.close()


def login(inst, username: str, password: str) -> tuple[httpx.Response, httpx.Client]:
    c = httpx.Client(base_url=inst.web, timeout=30)
    r = c.post("/login", json={"username": username, "password": password})
    return r, c


def logged_in(c: httpx.Client) -> bool:
    return c.get("/", follow_redirects=False).status_code == 200


@pytest.fixture(scope="module")
def inst(directory, tmp_path_factory):
    cfg = ldap_config(directory.url, **{"sync-user-on-login": True, "update-user-on-login": True,
                                        "sync-del-old-users": True})
    with _started(installation(tmp_path_factory.mktemp("ldapinst"), cfg)) as i:
        assert i.cli("add-user", "local:user,admin:local-pw").returncode == 0
        assert i.cli("add-user", "shadow:user:local-shadow-pw").returncode == 0
        yield i


class _started:
    def __init__(self, inst: Installation):
        self.inst = inst

    def __enter__(self) -> Installation:
        try:
            self.inst.start()
        except BaseException:
            self.inst.stop()
            raise
        return self.inst

    def __exit__(self, *exc) -> None:
        self.inst.stop()


# -- login ------------------------------------------------------------------------------------------


def test_unknown_ldap_user_is_created_on_first_login_with_name_and_role(inst):
    assert "alice" not in db_users(inst)
    r, c = login(inst, "alice", "alice-pw")
    assert r.status_code == 200, r.text
    assert r.json() == {"username": "alice", "roles": ["user"]}
    assert logged_in(c)
    assert db_users(inst)["alice"] == {"ldap": 1, "name": "Alice Liddell", "roles": ["user"]}
    r, c = login(inst, "bob", "bob-pw")  # no gecos: the name is the cn
    assert r.status_code == 200 and db_users(inst)["bob"]["name"] == "Bob Builder"


def test_wrong_password_unknown_user_and_empty_password_are_refused(inst):
    for user, pw in (("carol", "nope"), ("nobody", "x"), ("carol", "")):
        r, c = login(inst, user, pw)
        assert r.status_code == 401 and r.json()["error"] == "wrong username or password"
        assert not logged_in(c)
    assert "carol" not in db_users(inst) and "nobody" not in db_users(inst)
    r, c = login(inst, "carol*", "carol-pw")  # filter characters are escaped, not a wildcard
    assert r.status_code == 401


def test_directory_users_outside_the_user_filter_are_not_let_in(inst):
    r, c = login(inst, "mallory", "mallory-pw")  # the bind succeeds, but gidNumber=200 is not in user-filter
    assert r.status_code == 401 and not logged_in(c)
    assert "mallory" not in db_users(inst)


def test_local_users_keep_logging_in_with_their_password_not_ldaps(inst):
    r, c = login(inst, "local", "local-pw")
    assert r.status_code == 200 and logged_in(c)
    r, _ = login(inst, "shadow", "shadow-pw")  # the LDAP password of a same-named local user does not work
    assert r.status_code == 401
    r, _ = login(inst, "shadow", "local-shadow-pw")
    assert r.status_code == 200
    assert db_users(inst)["shadow"]["ldap"] == 0


def test_update_user_on_login_takes_the_new_name_from_the_directory(inst, directory):
    assert login(inst, "carol", "carol-pw")[0].status_code == 200
    assert db_users(inst)["carol"]["name"] == "Carol C"
    directory.replace(f"uid=carol,{PEOPLE}", "gecos", "Carol Changed")
    assert login(inst, "carol", "carol-pw")[0].status_code == 200
    assert db_users(inst)["carol"]["name"] == "Carol Changed"


def test_a_form_login_lands_on_the_requested_page(inst):
    c = httpx.Client(base_url=inst.web, timeout=30)
    r = c.post("/login", data={"username": "alice", "password": "alice-pw", "redirect": "/monitoring/jobs/"})
    assert r.status_code == 303 and r.headers["location"] == "/monitoring/jobs/"
    r = c.post("/login", data={"username": "alice", "password": "bad"})
    assert r.status_code == 303 and "error=Wrong" in r.headers["location"]


# -- sync ---------------------------------------------------------------------------------------------


def test_sync_adds_new_directory_users_removes_vanished_ones_and_keeps_local_users(inst, directory):
    directory.add_user("dave", "dave-pw", gecos="Dave D", uid_number=10006)
    directory.add_user("erin", "erin-pw", cn="Erin E", uid_number=10007)
    r = inst.cli("sync-ldap")
    assert r.returncode == 0, r.stderr
    users = db_users(inst)
    assert users["dave"] == {"ldap": 1, "name": "Dave D", "roles": ["user"]}
    assert users["erin"]["name"] == "Erin E"
    assert "mallory" not in users  # outside user-filter
    assert users["shadow"]["ldap"] == 0  # a local user of the same name stays local
    assert "dave" in r.stdout and "added" in r.stdout
    # a synced user logs in without being created again
    assert login(inst, "dave", "dave-pw")[0].status_code == 200

    directory.delete(f"uid=erin,{PEOPLE}")
    directory.delete(f"uid=shadow,{PEOPLE}")
    r = inst.cli("sync-ldap")
    assert r.returncode == 0, r.stderr
    users = db_users(inst)
    assert "erin" not in users and "erin" in r.stdout and "removed" in r.stdout
    assert "shadow" in users and "local" in users  # local users are never removed
    assert "dave" in users and "alice" in users


def test_a_directory_answer_without_users_deletes_nobody(inst, tmp_path):
    cfg = orjson.loads(inst.cfg.path.read_bytes())
    cfg["auth"]["ldap"]["user-filter"] = "(uid=no-such-user-anywhere)"
    cfg["main"]["db"] = str(inst.cfg.db_path)
    other = tmp_path / "config.json"
    other.write_bytes(orjson.dumps(cfg))
    (tmp_path / ".env").write_text((inst.root / ".env").read_text())
    before = db_users(inst)
    r = inst.cli("--config", str(other), "sync-ldap")
    assert r.returncode == 1 and "found no users" in r.stderr
    assert db_users(inst) == before


# -- LDAP down, and TLS --------------------------------------------------------------------------------


def test_ldap_down_gives_a_clear_error_and_local_users_still_log_in(directory, tmp_path):
    dead = f"ldap://127.0.0.1:{free_port()}"
    with _started(installation(tmp_path / "i", ldap_config(dead, **{"sync-user-on-login": True}))) as i:
        assert i.cli("add-user", "local:user:local-pw").returncode == 0
        r, c = login(i, "alice", "alice-pw")
        assert r.status_code == 503 and "LDAP server cannot be reached" in r.json()["error"]
        assert not logged_in(c)
        c = httpx.Client(base_url=i.web, timeout=30)
        r = c.post("/login", data={"username": "alice", "password": "alice-pw"})
        assert r.status_code == 303 and "LDAP%20server%20cannot%20be%20reached" in r.headers["location"]
        r, c = login(i, "local", "local-pw")
        assert r.status_code == 200 and logged_in(c)
        log = (i.cfg.log_dir / "web.log").read_text()
        assert "WARNING" in log and "cannot connect to the LDAP server" in log
        r = i.cli("sync-ldap")
        assert r.returncode == 1 and "cannot connect to the LDAP server" in r.stderr


def test_ldaps_login_and_periodic_sync(directory, tmp_path):
    """ldaps:// checked against the site CA (auth.ldap.ca-file); the web process syncs every sync-interval."""
    ldap = ldap_config(directory.ldaps_url, **{"ca-file": str(directory.tls.ca), "sync-interval": "1s",
                                                "sync-user-on-login": True})
    with _started(installation(tmp_path / "i", ldap)) as i:
        r, c = login(i, "alice", "alice-pw")
        assert r.status_code == 200 and logged_in(c)
        directory.add_user("frank", "frank-pw", gecos="Frank F", uid_number=10010)
        deadline = time.time() + 30
        while "frank" not in db_users(i):
            assert time.time() < deadline, "the periodic LDAP sync did not add frank:\n" + \
                (i.cfg.log_dir / "web.log").read_text()[-3000:]
            time.sleep(0.2)
        assert db_users(i)["frank"] == {"ldap": 1, "name": "Frank F", "roles": ["user"]}


def settings(url: str, **kw) -> LdapSettings:
    return LdapSettings(url=url, user_base=PEOPLE, search_dn=ADMIN_DN, user_bind=f"uid={{username}},{PEOPLE}",
                        user_filter=FILTER, **kw)


def test_starttls_and_ldaps_verify_the_server_certificate(directory, tmp_path):
    ok = [LdapDirectory(settings(directory.url, start_tls=True, ca_file=directory.tls.ca), ADMIN_PASSWORD),
          LdapDirectory(settings(directory.ldaps_url, ca_file=directory.tls.ca), ADMIN_PASSWORD)]
    for d in ok:
        assert d.login("alice", "alice-pw", want_entry=True).name == "Alice Liddell"
        assert d.login("alice", "wrong", want_entry=False) is False
        assert "alice" in d.list_users()[0]
    other_ca = make_tls_files(tmp_path / "other", prefix="other").ca
    bad = [LdapDirectory(settings(directory.ldaps_url), ADMIN_PASSWORD),  # not signed by a system CA
           LdapDirectory(settings(directory.ldaps_url, ca_file=other_ca), ADMIN_PASSWORD),
           LdapDirectory(settings(directory.url, start_tls=True, ca_file=other_ca), ADMIN_PASSWORD)]
    for d in bad:
        with pytest.raises(LdapUnavailable, match="cannot connect"):
            d.login("alice", "alice-pw", want_entry=False)


def test_a_certificate_for_another_host_name_is_refused(tmp_path):
    server = Slapd(tmp_path / "s")
    real = ldapsrv.make_tls_files
    ldapsrv.make_tls_files = lambda d, prefix: real(d, names=("ldap.elsewhere.example",), prefix=prefix)
    try:
        server.start()
    finally:
        ldapsrv.make_tls_files = real
    try:
        for d in (LdapDirectory(settings(server.ldaps_url, ca_file=server.tls.ca), ADMIN_PASSWORD),
                  LdapDirectory(settings(server.url, start_tls=True, ca_file=server.tls.ca), ADMIN_PASSWORD)):
            with pytest.raises(LdapUnavailable, match="not for this host name"):
                d.list_users()
    finally:
        server.stop()


def test_wrong_search_password_is_a_clear_error(directory):
    d = LdapDirectory(settings(directory.url), "not-the-password")
    with pytest.raises(LdapUnavailable, match="refused the search account"):
        d.list_users()
    assert LdapDirectory(settings(directory.url), None).login("alice", "alice-pw", want_entry=True).name == \
        "Alice Liddell"  # without a search password the user's own bind reads the entry


# -- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"user-bnd": "x"}, r"unknown config key 'auth\.ldap\.user-bnd'"),
    ({"url": None}, r"'auth\.ldap\.url' is required"),
    ({"url": "http://ldap.example"}, r"'auth\.ldap\.url' must be ldap://"),
    ({"user-bind": "uid=alice,ou=people"}, r"'auth\.ldap\.user-bind' must contain the placeholder \{username\}"),
    ({"user-filter": "objectClass=posixAccount"}, r"'auth\.ldap\.user-filter' must be an LDAP filter"),
    ({"sync-interval": "often"}, r"auth\.ldap\.sync-interval: cannot parse duration"),
    ({"sync-del-old-users": "yes"}, r"'auth\.ldap\.sync-del-old-users' must be true or false"),
    ({"ca-file": "missing-ca.pem"}, r"'auth\.ldap\.ca-file': .*missing-ca\.pem does not exist"),
    ({"url": "ldaps://ldap.example", "start-tls": True}, r"'auth\.ldap\.start-tls' is for ldap:// URLs"),
])
def test_bad_ldap_settings_stop_the_start_naming_the_key(tmp_path, change, message):
    ldap = ldap_config("ldap://ldap.example")
    for k, v in change.items():
        if v is None:
            ldap.pop(k)
        else:
            ldap[k] = v
    (tmp_path / "config.json").write_bytes(orjson.dumps({"auth": {"ldap": ldap}}))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "config.json")


def test_good_ldap_settings_are_parsed_with_cc_backends_defaults(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    ldap = ldap_config("ldap://ldap.example", **{"sync-interval": "24h", "ca-file": "ca.pem", "start-tls": True})
    (tmp_path / "config.json").write_bytes(orjson.dumps({"auth": {"ldap": ldap}}))
    cfg = load_config(tmp_path / "config.json")
    s = cfg.auth.ldap
    assert (s.username_attr, s.uid_attr, s.sync_interval, s.ca_file, s.start_tls) == \
        ("gecos", "uid", 86400.0, tmp_path / "ca.pem", True)
    assert cfg.warnings == []
