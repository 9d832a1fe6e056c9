"""cc-backend's tagger administration: ``GET /config/taggers/`` and ``POST /config/taggers/run/`` (admins).

The list has upstream's fields (``name``, ``type`` start|stop, ``running``) plus ours:
``rules`` (how many loaded), ``errors`` (rule files that failed, ``file: field: problem``)
and ``lastRun`` (jobs, tags added, seconds, errors of the last run in this process).  A run
(form field ``name`` = ``AppTagger`` or ``JobClassTagger``) goes over every job in the
background in batches, so the writer connection is never held for long; it answers at
once with upstream's text ``Tagger NAME started`` (409 while that tagger still runs).
A manual run works with ``main.enable-job-taggers`` off too: that key decides only the
automatic tagging on job start and stop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio
from quart import Blueprint, Response, current_app, g

from cc import tagger
from cc.archive.dbsync import load_archive_clusters
from cc.tagger import KINDS, ApplyResult, Taggers
from cc.webd.config_api import _fields, session_route
from cc.webd.errors import APIError, json_response

log = logging.getLogger("web.tagger")
bp = Blueprint("tagger_api", __name__)

TYPES = {"AppTagger": "start", "JobClassTagger": "stop"}
_running: set[str] = set()
_last: dict[str, dict[str, Any]] = {}


def _ctx():
    return current_app.config["CC"]


def _taggers(cfg) -> Taggers:
    return tagger.for_config(cfg) or _manual(cfg)


_manual_cache: dict[Any, Taggers] = {}


def _manual(cfg) -> Taggers:
    """Taggers for manual runs when automatic tagging is off (same rule directories)."""
    d = tagger.site_dir(cfg)
    if d not in _manual_cache:
        _manual_cache[d] = Taggers(d)
    return _manual_cache[d]


def tagger_list(taggers: Taggers) -> list[dict[str, Any]]:
    rules = taggers.refresh()
    counts = {"AppTagger": len(rules.apps), "JobClassTagger": len(rules.classes)}
    errs = {"AppTagger": [e for e in rules.errors if "/apps/" in e],
            "JobClassTagger": [e for e in rules.errors if "/apps/" not in e]}
    return [{"name": n, "type": TYPES[n], "running": n in _running, "rules": counts[n], "errors": errs[n],
             "lastRun": _last.get(n)} for n in KINDS]


@bp.route("/config/taggers/", methods=["GET"])
@session_route()
async def get_taggers() -> Response:
    taggers = _taggers(_ctx().cfg)
    return json_response(await trio.to_thread.run_sync(tagger_list, taggers))


@bp.route("/config/taggers/run/", methods=["POST"])
@session_route()
async def run_tagger() -> Response:
    name = (await _fields()).get("name") or ""
    if not name:
        raise APIError(400, "missing required parameter: name")
    if name not in TYPES:
        raise APIError(409, f"unknown tagger: {name} (known: {', '.join(KINDS)})")
    if name in _running:
        raise APIError(409, f"tagger {name} is already running")
    _running.add(name)
    log.info("admin %r started tagger %s", g.viewer.username, name)
    current_app.nursery.start_soon(_run, _ctx(), name)
    return Response(f"Tagger {name} started", 200, content_type="text/plain; charset=utf-8")


async def _run(ctx, name: str) -> None:
    res = ApplyResult()
    started = time.perf_counter()
    try:
        taggers = _taggers(ctx.cfg)
        await trio.to_thread.run_sync(taggers.refresh, True)
        clusters, _ = await trio.to_thread.run_sync(load_archive_clusters, ctx.cfg.archive_path)
        kinds = (name,)
        after = 0
        while True:
            batch = await ctx.db.read(tagger.read_batch, after, 500)
            if not batch:
                break
            planned = await trio.to_thread.run_sync(tagger.plan_batch, batch, ctx.archive, kinds, res)
            await ctx.db.write(tagger.apply_batch, taggers, planned, clusters, kinds, res)
            after = batch[-1].id or after
            res.jobs += len(batch)
    except Exception as e:  # a background task: report, never crash the web process
        log.exception("tagger %s failed", name)
        res.errors.append(f"{type(e).__name__}: {e}")
    finally:
        _running.discard(name)
        res.seconds = time.perf_counter() - started
        _last[name] = {"jobs": res.jobs, "tags": res.app_tags + res.class_tags, "seconds": round(res.seconds, 3),
                       "finished": int(time.time()), "errors": res.errors[:20]}
        log.info("tagger %s finished: %d jobs in %.1fs, %d errors", name, res.jobs, res.seconds, len(res.errors))
