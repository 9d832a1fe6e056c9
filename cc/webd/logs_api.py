"""The processes' logs in the web UI (admins only): the Logs page and its JSON.

``GET /frontend/logs/`` (also ``/config/logs/``, the path cc-backend's Logs page asks) answers
a JSON list of records, newest first, in cc-backend's shape (``timestamp`` in µs as a string,
``priority`` 0-7, ``message``, ``unit``) plus ours (``process``, ``level``, ``logger``,
``time``).  Parameters: ``process`` (repeatable; default all), ``level`` (a syslog priority
0-7 or a name: that level and worse), ``since`` (``15m``, ``2h``, ``7d`` or cc-backend's
``1 hour ago``; default all that is kept), ``after`` (µs: records of that time or newer -- the
page's follow mode), ``search`` (a substring, any case), ``lines`` (1-1000, default 200).

The records come from ``var/log/<process>.log`` (see :mod:`cc.logformat`); a process name is
checked against a fixed pattern before it becomes part of a path.
"""

from __future__ import annotations

import re
import time

import trio
from quart import Blueprint, Response, current_app, g, request

from cc import logformat
from cc.webd.config_api import session_route
from cc.webd.errors import APIError, json_response
from cc.webd.pages import forbidden, page_route, render

bp = Blueprint("logs_api", __name__)

MAX_LINES = 1000
SINCE_RE = re.compile(r"(\d{1,6})\s*([smhdw])")
PHRASE_RE = re.compile(r"(\d{1,6})\s*(sec|second|seconds|min|minute|minutes|hour|hours|day|days|week|weeks) ago")
UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PARAMS = {"process", "level", "since", "after", "search", "lines"}


def _ctx():
    return current_app.config["CC"]


def _since(text: str) -> int:
    """Seconds back from now: ``15m``, ``2h``, ``7d`` or ``1 hour ago`` (cc-backend's journalctl phrases)."""
    text = text.strip().lower()
    m = SINCE_RE.fullmatch(text) or PHRASE_RE.fullmatch(text)
    if m is None:
        raise APIError(400, f"query parameter 'since': expected e.g. 15m, 2h, 7d or '1 hour ago', got {text[:40]!r}")
    return int(m[1]) * UNIT[m[2][0]]


def _level(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    name = logformat.LEVEL_NAMES.get(text.lower())
    if name is None:
        raise APIError(400, f"query parameter 'level': expected 0-7 or one of debug, info, warning, error, "
                            f"critical, got {text[:40]!r}")
    return logformat.PRIORITY[name]


def _int(name: str, text: str, lo: int, hi: int) -> int:
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise APIError(400, f"query parameter {name!r}: expected an integer from {lo} to {hi}, got {text[:40]!r}")
    return int(text)


@bp.route("/frontend/logs/", methods=["GET"])
@bp.route("/config/logs/", methods=["GET"])
@session_route(admin=True)
async def get_logs() -> Response:
    args = request.args
    unknown = sorted(set(args) - PARAMS)
    if unknown:
        raise APIError(400, f"unknown query parameter(s): {', '.join(unknown)[:200]}")
    log_dir = _ctx().cfg.log_dir
    available = logformat.processes(log_dir)
    procs = [p for p in args.getlist("process") if p]
    for p in procs:
        if not logformat.PROCESS_RE.fullmatch(p):
            raise APIError(400, f"query parameter 'process': no process named {p[:40]!r} "
                                f"(one of: {', '.join(available)})")
    procs = [p for p in procs if p in available] if procs else available
    since_us = 0
    if args.get("since"):
        since_us = int((time.time() - _since(args["since"])) * 1e6)
    after = _int("after", args["after"], 0, 10**17) if args.get("after") else None
    level = _level(args["level"]) if args.get("level") else None
    lines = _int("lines", args["lines"], 1, MAX_LINES) if args.get("lines") else 200
    search = args.get("search", "")[:200]
    entries = await trio.to_thread.run_sync(lambda: logformat.read(
        log_dir, procs, min_priority=level, since_us=since_us, after_us=after, search=search, limit=lines))
    return json_response([e.to_json() for e in entries])


@bp.route("/monitoring/logs", methods=["GET"])
@bp.route("/monitoring/logs/", methods=["GET"])
@page_route
async def logs_page() -> Response:
    if not g.viewer.has("admin"):
        return await forbidden("The logs are for administrators.")
    procs = await trio.to_thread.run_sync(logformat.processes, _ctx().cfg.log_dir)
    return await render("logs.html", "Logs - ClusterCockpit", nav="logs", script="logs",
                        page={"processes": procs, "maxLines": MAX_LINES})
