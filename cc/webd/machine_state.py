"""``GET|PUT|POST /api/machine_state/<cluster>/<host>``: one JSON document per node, kept as a file.

cc-backend's machine-state store (``main.machine-state-dir``): a node agent or an admin
script stores what it knows about a host (hardware inventory, firmware, anything JSON)
and reads it back later.  Files are ``<dir>/<cluster>/<host>.json``.  Cluster and host
names must look like names (letters, digits, ``.``, ``_``, ``-``; not starting with a
dot), so no request reaches a path outside the directory.  Unlike cc-backend, which
stores any body, the body must be JSON: it is served back as ``application/json``.
Without ``main.machine-state-dir`` every call answers 404.
"""

from __future__ import annotations

import os
import re
from email.utils import formatdate
from pathlib import Path

import orjson
import trio
from quart import Blueprint, Response, current_app, request

from cc.fsio import replace_atomically
from cc.webd.auth import rest_route
from cc.webd.errors import APIError

bp = Blueprint("machine_state", __name__)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def _file(cluster: str, host: str) -> Path:
    base = current_app.config["CC"].cfg.machine_state_dir
    if base is None:
        raise APIError(404, "machine state not enabled (set main.machine-state-dir)")
    for what, value in (("cluster name", cluster), ("host name", host)):
        if not NAME.fullmatch(value) or ".." in value:
            raise APIError(400, f"invalid {what} {value[:60]!r}: letters, digits, '.', '_' and '-' only, "
                                "not starting with '.'")
    return base / cluster / f"{host}.json"


@bp.route("/api/machine_state/<cluster>/<host>", methods=["GET"])
@rest_route("api")
async def get_machine_state(cluster: str, host: str) -> Response:
    path = _file(cluster, host)

    def read() -> tuple[bytes, float] | None:
        try:
            with open(path, "rb") as f:
                return f.read(), os.fstat(f.fileno()).st_mtime
        except FileNotFoundError:
            return None

    found = await trio.to_thread.run_sync(read)
    if found is None:
        raise APIError(404, f"no machine state stored for host {host!r} of cluster {cluster!r}")
    resp = Response(found[0], mimetype="application/json")
    resp.headers["Last-Modified"] = formatdate(found[1], usegmt=True)
    return resp


@bp.route("/api/machine_state/<cluster>/<host>", methods=["PUT", "POST"])
@rest_route("api")
async def put_machine_state(cluster: str, host: str) -> Response:
    path = _file(cluster, host)
    body = await request.get_data()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise APIError(400, f"machine state must be a JSON document: {e}") from None

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, body)

    try:
        await trio.to_thread.run_sync(write)
    except OSError as e:
        raise APIError(500, f"storing the machine state of {host!r} failed: {e.strerror}") from None
    return Response(b"", status=201)
