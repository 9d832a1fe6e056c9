"""schemas/openapi.yaml documents exactly the REST routes the web process serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from quart_trio import QuartTrio

from cc.webd import (
    admin_api,
    jobs_api,
    login,
    machine_state,
    metrics_api,
    metricstore_api,
    pages,
    session_api,
    tags_api,
    userapi,
)

SPEC = Path(__file__).resolve().parents[1] / "schemas" / "openapi.yaml"
SESSION_PATHS = ("/login", "/logout", "/jwt-login", "/oidc-login", "/oidc-callback", "/metrics")


def served() -> set[tuple[str, str]]:
    app = QuartTrio("openapi-check")
    for bp in (jobs_api.bp, admin_api.bp, metricstore_api.bp, login.bp, pages.bp, session_api.bp, userapi.bp,
               tags_api.bp, machine_state.bp, metrics_api.bp):
        app.register_blueprint(bp)
    out = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "{id}" if m.group(1) in ("raw_id", "username")
                      else "{" + m.group(1).removeprefix("raw_") + "}", rule.rule)
        if not (path.startswith(("/api/", "/userapi/")) or path in SESSION_PATHS):
            continue
        path = path if path.endswith("/") or "{" in path or path in SESSION_PATHS else path + "/"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((path, method.lower()))
    return out


def documented() -> set[tuple[str, str]]:
    spec = yaml.safe_load(SPEC.read_text())
    out = set()
    for path, ops in spec["paths"].items():
        norm = path if path.endswith("/") or "{" in path or path in SESSION_PATHS else path + "/"
        out.update((norm, m) for m in ops if m in ("get", "post", "put", "patch", "delete"))
    return out


def test_every_documented_route_is_served():
    missing = documented() - served()
    assert not missing, f"documented but not served: {sorted(missing)}"


def test_every_served_route_is_documented_modulo_aliases():
    # cc-backend accepts PUT as an alias of POST for start/stop/nodestate, PATCH for tag_job,
    # POST for edit_meta and GET for /api/write's friends; the spec lists the primary method.
    aliases = {"put", "patch", "get", "post"}
    undocumented = {(p, m) for p, m in served() - documented()
                    if not (m in aliases and any(p == q for q, _ in documented()))}
    assert not undocumented, f"served but not documented: {sorted(undocumented)}"
