"""JSON error responses in ClusterCockpit's shape: ``{"status": "<reason phrase>", "error": "..."}``.

Unexpected failures answer a generic 500 with a request id (body and ``X-Request-Id``
header); the traceback goes to the web log under that id.  Exception text never
reaches a client: it can name files, SQL or internals an outsider should not see.
"""

from __future__ import annotations

import logging
import secrets
from http import HTTPStatus
from typing import Any

import orjson
from quart import Response, has_request_context, request

log = logging.getLogger("web")


def json_response(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), status=status,
                    mimetype="application/json")


def error_response(status: int, message: str, **extra: Any) -> Response:
    return json_response({"status": HTTPStatus(status).phrase, "error": message, **extra}, status)


class APIError(Exception):
    """Raise from a handler to answer with a JSON error."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def new_request_id() -> str:
    return secrets.token_hex(8)


def log_internal_error(exc: BaseException | None, what: str = "") -> str:
    """Log ``exc`` with its traceback under a fresh request id, and return the id."""
    rid = new_request_id()
    where = f"{request.method} {request.path}" if has_request_context() else "-"
    exc_info = (type(exc), exc, exc.__traceback__) if isinstance(exc, BaseException) else None
    log.error("internal error [request id %s] %s%s: %s", rid, where, f" ({what})" if what else "",
              type(exc).__name__ if exc is not None else "unknown", exc_info=exc_info)
    return rid


def internal_error(exc: BaseException | None) -> Response:
    """The generic 500: a request id to quote, nothing about the failure itself."""
    rid = log_internal_error(exc)
    resp = error_response(500, f"internal server error (request id {rid}; the server log has the details)",
                          requestId=rid)
    resp.headers["X-Request-Id"] = rid
    return resp
