"""JSON error responses in ClusterCockpit's shape: ``{"status": "<reason phrase>", "error": "..."}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from quart import Response


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
