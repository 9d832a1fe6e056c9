"""``POST /query`` (cc-backend's GraphQL endpoint) and, in development mode, ``/playground`` and ``/swagger/``.

Callers authenticate with the UI's session cookie or a JWT (``Authorization: Bearer``).
With the cookie, a request must come from this server's pages (same Origin/Referer) and be
``Content-Type: application/json``: a foreign page can make a browser send a ``text/plain``
or form POST with the victim's cookie without asking (no CORS preflight), but not a JSON one.
Responses follow GraphQL over HTTP as gqlgen (cc-backend) answers it: 200 with
``{"data", "errors"}`` once the operation ran, 422 when the document does not parse or
validate, 400 for a body that is not a GraphQL request.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from graphql import ExecutionResult, GraphQLError, execute, parse, validate
from graphql.language import DocumentNode
from graphql.pyutils import is_awaitable
from quart import Blueprint, Response, abort, current_app, redirect, request, send_file

from cc.db import FilterError, Viewer
from cc.jwtauth import token_from_headers
from cc.webd.auth import authenticate_jwt, require_same_origin, session_viewer
from cc.webd.errors import APIError, json_response, log_internal_error
from cc.webd.graphql.context import GQLContext
from cc.webd.graphql.executor import TrioExecutor
from cc.webd.graphql.schema import SCHEMA
from cc.webd.openapi import installation_yaml

log = logging.getLogger("web.graphql")
bp = Blueprint("graphql", __name__)

ROOT = Path(__file__).resolve().parents[3]
PLAYGROUND = Path(__file__).with_name("playground.html")
OPENAPI = ROOT / "schemas" / "openapi.yaml"
SWAGGER_DIST = ROOT / "frontend" / "node_modules" / "swagger-ui-dist"
DOCUMENT_CACHE_SIZE = 256
# A parsed document takes ~100 bytes per character of query text, so the cache is bounded by
# the text it holds too (256 KiB: ~25 MiB of documents; a count alone let 256 queries of 100 KB
# pin 2.5 GiB).  The UI's queries are 0.1-1.6 KB each.
DOCUMENT_CACHE_CHARS = 256 << 10
MAX_QUERY_CHARS = 100_000  # the UI's largest query is a few KB; bigger ones are mistakes or abuse

class _DocumentCache:
    """Query text -> parsed document or its parse/validation errors (LRU, by count and by text size).

    The UI sends the same few queries over and over; parsing and validating them again would
    cost more than running most of them.
    """

    def __init__(self, entries: int = DOCUMENT_CACHE_SIZE, chars: int = DOCUMENT_CACHE_CHARS):
        self.entries, self.chars = entries, chars
        self._docs: OrderedDict[str, DocumentNode | list[GraphQLError]] = OrderedDict()
        self._held = 0  # characters of query text held

    def get(self, source: str) -> DocumentNode | list[GraphQLError]:
        got = self._docs.get(source)
        if got is not None:
            self._docs.move_to_end(source)
            return got
        try:
            doc: DocumentNode | list[GraphQLError] = parse(source)
        except GraphQLError as e:
            doc = [e]
        else:
            errors = validate(SCHEMA, doc)
            if errors:
                doc = list(errors)
        if len(source) <= self.chars // 16:  # big one-off queries are parsed, not kept
            self._docs[source] = doc
            self._held += len(source)
            while len(self._docs) > self.entries or self._held > self.chars:
                old, _ = self._docs.popitem(last=False)
                self._held -= len(old)
        return doc

    def info(self) -> dict[str, int]:
        return {"entries": len(self._docs), "chars": self._held}


_documents = _DocumentCache()
_document = _documents.get


def _errors(status: int, *messages: str) -> Response:
    return json_response({"errors": [{"message": m} for m in messages]}, status)


async def _viewer() -> Viewer:
    """The session's user, else the JWT's; 401 without either."""
    viewer = await session_viewer()
    if viewer is not None:
        require_same_origin()
        if request.mimetype != "application/json":
            raise APIError(415, f"Content-Type must be application/json, not {request.mimetype or 'none'!r}")
    else:
        if current_app.config["CC"].verifier is not None and not token_from_headers(request.headers):
            raise APIError(401, "not logged in: send the session cookie (POST /login) or "
                                "'Authorization: Bearer <JWT>'")
        _, viewer = await authenticate_jwt()
    if not viewer.roles:
        raise APIError(403, f"user {viewer.username!r} has no roles")
    return viewer


async def _request_body() -> dict[str, Any] | Response:
    raw = await request.get_data()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as e:
        return _errors(400, f"request body is not JSON: {e}")
    if not isinstance(body, dict):
        return _errors(400, "request body must be a JSON object {\"query\": ..., \"variables\": ...}")
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        return _errors(400, "'query' (the GraphQL document, a string) is required")
    if len(body["query"]) > MAX_QUERY_CHARS:
        return _errors(400, f"'query' is longer than {MAX_QUERY_CHARS} characters")
    if body.get("variables") is not None and not isinstance(body["variables"], dict):
        return _errors(400, "'variables' must be an object")
    if body.get("operationName") is not None and not isinstance(body["operationName"], str):
        return _errors(400, "'operationName' must be a string")
    return body


def _formatted(result: ExecutionResult) -> dict[str, Any]:
    """``result.formatted`` with every unexpected resolver failure replaced by a generic error.

    User errors (GraphQLError, a filter naming its field) keep their message; anything
    else is a bug: its traceback goes to the log under a request id, and the client sees
    only that id, like the REST API's 500.
    """
    out = result.formatted
    if not result.errors:
        return out
    errors = []
    for e in result.errors:
        doc = e.formatted
        original = e.original_error
        if original is not None and not isinstance(original, (GraphQLError, FilterError)):
            rid = log_internal_error(original, "resolver of " + ".".join(map(str, e.path or ())))
            doc = {**doc, "message": f"internal server error (request id {rid}; the server log has the details)",
                   "extensions": {"requestId": rid}}
        errors.append(doc)
    out["errors"] = errors
    return out


@bp.route("/query", methods=["POST"])
async def query() -> Response:
    viewer = await _viewer()
    body = await _request_body()
    if isinstance(body, Response):
        return body
    doc = _document(body["query"])
    if isinstance(doc, list):
        return json_response({"errors": [e.formatted for e in doc]}, 422)
    context = GQLContext(current_app.config["CC"], viewer)
    result = execute(SCHEMA, doc, context_value=context, variable_values=body.get("variables"),
                     operation_name=body.get("operationName"), executor_class=TrioExecutor)
    if is_awaitable(result):
        result = await result
    return json_response(_formatted(result))


# -- development pages ------------------------------------------------------------------------

def dev_mode() -> bool:
    """``main.dev: true`` in config.json (cc-backend: the -dev flag) or CC_DEV=1 in the environment."""
    return current_app.config["CC"].cfg.main.get("dev") is True or os.environ.get("CC_DEV") == "1"


@bp.route("/playground", methods=["GET"])
async def playground() -> Response:
    if not dev_mode():
        abort(404)
    return await send_file(PLAYGROUND, mimetype="text/html")


@bp.route("/swagger", methods=["GET"])
async def swagger_redirect() -> Response:
    if not dev_mode():
        abort(404)
    return redirect("/swagger/", 301)


SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cc-py REST API</title>
<link rel="stylesheet" href="assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="assets/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "openapi.yaml", dom_id: "#swagger-ui", persistAuthorization: true,
                                   validatorUrl: null});</script>
</body></html>
"""
SWAGGER_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cc-py REST API</title></head>
<body><h1>cc-py REST API</h1>
<p>Swagger UI is not installed: run <code>npm ci</code> in <code>frontend/</code> (part of <code>make</code>).</p>
<p>The description itself: <a href="openapi.yaml">openapi.yaml</a>.</p></body></html>
"""


@bp.route("/swagger/", methods=["GET"])
async def swagger() -> Response:
    if not dev_mode():
        abort(404)
    page = SWAGGER_PAGE if (SWAGGER_DIST / "swagger-ui-bundle.js").is_file() else SWAGGER_MISSING
    return Response(page, mimetype="text/html")


@bp.route("/swagger/openapi.yaml", methods=["GET"])
async def swagger_spec() -> Response:
    """schemas/openapi.yaml with this installation's cluster names (cc.webd.openapi)."""
    if not dev_mode() or not OPENAPI.is_file():
        abort(404)
    spec = current_app.config.get("OPENAPI_YAML")
    if spec is None:  # the clusters are read once at start: so is this
        spec = current_app.config["OPENAPI_YAML"] = installation_yaml(current_app.config["CC"].clusters)
    return Response(spec, mimetype="application/yaml")


@bp.route("/swagger/assets/<name>", methods=["GET"])
async def swagger_asset(name: str) -> Response:
    path = SWAGGER_DIST / name
    if not dev_mode() or "/" in name or name.startswith(".") or not path.is_file():
        abort(404)
    return await send_file(path)
