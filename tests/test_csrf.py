"""Cross-site request forgery: a foreign page must not use a logged-in browser's session cookie.

Each request here is what a browser would send for a page of another site (form or
``fetch`` with ``mode: no-cors``: Origin, Referer, Sec-Fetch-Site, text/plain or form
bodies), with the victim's cookie; the same request from our own pages must work.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.helpers import Installation

EVIL = "http://evil.example"
MUTATION = 'mutation { createTag(type: "csrf", name: "%s", scope: "global") { id } }'


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = Installation(tmp_path_factory.mktemp("csrf"), ingest_workers=1,
                     extra_config={"main": {"trusted-proxies": ["127.0.0.1"]}})
    for spec in ("admin:admin:pw-admin", "alice:user:pw-alice"):
        assert i.cli("add-user", spec).returncode == 0
    i.start()
    try:
        yield i
    finally:
        i.stop()


@pytest.fixture
def admin(inst):
    with httpx.Client(base_url=inst.web, timeout=30) as c:
        assert c.post("/login", json={"username": "admin", "password": "pw-admin"}).status_code == 200
        yield c


def tag_names(inst) -> set[str]:
    r = httpx.post(inst.web + "/query", json={"query": "{ tags { name } }"},
                   headers={"Authorization": f"Bearer {inst.token('admin', ['admin', 'api'])}"})
    return {t["name"] for t in r.json()["data"]["tags"]}


def test_graphql_text_plain_post_is_refused(inst, admin):
    # <form enctype="text/plain"> or fetch(no-cors) can send this cross-site without any preflight
    body = orjson.dumps({"query": MUTATION % "plain"})
    r = admin.post("/query", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = admin.post("/query", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    r = admin.post("/query", content=body)  # no Content-Type at all
    assert r.status_code == 415
    assert "plain" not in tag_names(inst)


def test_graphql_from_a_foreign_origin_is_refused(inst, admin):
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Referer": EVIL + "/page"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Origin": inst.web.replace("127.0.0.1", "localhost")}):
        r = admin.post("/query", json={"query": MUTATION % "foreign"}, headers=headers)
        assert r.status_code == 403 and "cross-origin" in r.json()["error"], headers
    assert "foreign" not in tag_names(inst)


def test_graphql_from_our_own_pages_works(inst, admin):
    for i, headers in enumerate(({"Origin": inst.web}, {"Referer": inst.web + "/monitoring/jobs/"},
                                 {"Sec-Fetch-Site": "same-origin"}, {})):
        r = admin.post("/query", json={"query": MUTATION % f"own{i}"}, headers=headers)
        assert r.status_code == 200 and not r.json().get("errors"), (headers, r.text)
    assert {"own0", "own1", "own2", "own3"} <= tag_names(inst)


def test_jwt_calls_are_not_affected(inst):
    token = inst.token("admin", ["admin", "api"])
    r = httpx.post(inst.web + "/query", content=orjson.dumps({"query": MUTATION % "jwt"}),
                   headers={"Authorization": f"Bearer {token}", "Origin": EVIL, "Content-Type": "text/plain"})
    assert r.status_code == 200 and not r.json().get("errors")
    assert "jwt" in tag_names(inst)


def test_settings_routes_refuse_foreign_origins(inst, admin):
    own = {"Origin": inst.web}
    for headers in ({"Origin": EVIL}, {"Referer": EVIL + "/x"}, {"Sec-Fetch-Site": "same-site"}):
        r = admin.post("/config/users/", data={"username": "eve", "password": "x", "role": "admin"}, headers=headers)
        assert r.status_code == 403, headers
        r = admin.post("/config/notice/", data={"new-content": "pwned"}, headers=headers)
        assert r.status_code == 403
    assert not (inst.cfg.var_dir / "notice.txt").exists() or "pwned" not in (inst.cfg.var_dir / "notice.txt").read_text()
    r = admin.post("/config/users/", data={"username": "eve2", "password": "x", "role": "user"}, headers=own)
    assert r.status_code == 200, r.text
    assert admin.request("DELETE", "/config/users/", data={"username": "eve2"}, headers=own).status_code == 200


def test_login_and_logout_from_foreign_pages_are_refused(inst, admin):
    # login CSRF: another site logging the victim's browser into an account it controls
    r = httpx.post(inst.web + "/login", data={"username": "alice", "password": "pw-alice"}, headers={"Origin": EVIL})
    assert r.status_code == 403
    assert admin.post("/logout", headers={"Origin": EVIL}).status_code == 403
    assert admin.get("/frontend/jwt/").status_code == 200     # still logged in
    assert admin.post("/logout", headers={"Origin": inst.web}).status_code in (200, 303)
    assert admin.get("/frontend/jwt/").status_code == 401


def test_own_origin_behind_a_trusted_proxy(inst, admin):
    """The proxy rewrites Host; the browser's Origin is the public name, which X-Forwarded-Host carries."""
    # the cookie by hand: the answers mark it Secure, and httpx would then keep it off plain HTTP
    public = {"X-Forwarded-Host": "monitor.example.org", "X-Forwarded-Proto": "https",
              "Cookie": f"session={admin.cookies['session']}"}
    r = httpx.post(inst.web + "/query", json={"query": "{ tags { id } }"}, headers={**public, "Origin": inst.web})
    assert r.status_code == 403
    r = httpx.post(inst.web + "/query", json={"query": "{ tags { id } }"},
                   headers={**public, "Origin": "https://monitor.example.org"})
    assert r.status_code == 200
    assert "Secure" in r.headers["set-cookie"]  # the browser talks HTTPS to the proxy
