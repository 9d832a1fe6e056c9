"""cc-backend's REST job API: start/stop, list, fetch with metric data, tags, metadata, delete.

Paths, payloads and status codes follow cc-backend (the swagger file where it agrees
with the code).  Everything under ``/api/jobs`` needs the ``api`` role, as in cc-backend;
people read their jobs through ``/userapi/jobs`` (:mod:`cc.webd.userapi`).  Reads filter
by the caller's role (user: own jobs, manager: own and projects' jobs, support/admin and
api-only tokens: all).
Every change runs in one database transaction: an error leaves nothing half-written.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
import trio
from quart import Blueprint, Response, current_app, g
from werkzeug.routing import BaseConverter

from cc import tagger
from cc.db import JOB_STATES, FilterError, Job, TagPermissionError
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.jobcheck import PayloadError, check_start_payload
from cc.metricsource import MetricSourceError
from cc.webd.auth import rest_route
from cc.webd.errors import APIError, json_response
from cc.webd.jobview import attach_statistics, job_data, job_json, load_statistics, notify_archiver
from cc.webd.params import (
    field_int,
    field_str,
    json_body,
    only_query_params,
    path_int,
    query_bool,
    query_enum,
    query_int,
    query_list,
    query_str,
)

log = logging.getLogger("web.jobs")
bp = Blueprint("jobs_api", __name__)


class JobIdConverter(BaseConverter):
    """``/api/jobs/<jobid:raw_id>``: any segment but the fixed names beside it, so that ``POST
    /api/jobs/used_nodes`` is a 405 (with the right ``Allow``), not a job id 'used_nodes'."""

    regex = r"(?!used_nodes$)[^/]+"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("jobid", JobIdConverter))


def _ctx():
    return current_app.config["CC"]


def _db_id(raw: str) -> int:
    return path_int(raw, "id")


async def _visible_job(db_id: int, status: int = 422) -> Job:
    job = await _ctx().db.read(jobs.find_job, db_id, g.viewer)
    if job is None:
        raise APIError(status, f"finding job with db id {db_id} failed: no such job (or not visible to you)")
    return job


# -- start / stop -------------------------------------------------------------------------------

@bp.route("/api/jobs/start_job/", methods=["POST", "PUT"])
@bp.route("/api/jobs/start_job", methods=["POST", "PUT"])
@rest_route("api")
async def start_job() -> Response:
    ctx = _ctx()
    doc = await json_body()
    try:
        job = check_start_payload(doc, ctx.clusters)
    except PayloadError as e:
        raise APIError(400, str(e)) from None
    viewer = g.viewer
    taggers = tagger.for_config(ctx.cfg)

    def start(conn):
        dup = jobs.recent_duplicate(conn, job)
        if dup is not None:
            return None, dup
        jobs.insert_job(conn, job)
        for t in job.tags:
            tags.add_tag(conn, viewer, job.id, t.type, t.name, t.scope or "global")
        if taggers is not None:  # main.enable-job-taggers: application tags from the job script
            tagger.tag_start_safely(conn, taggers, job)
        return job.id, None

    try:
        db_id, dup = await ctx.db.write(start)
    except TagPermissionError as e:
        raise APIError(403, str(e)) from None
    if dup is not None:
        raise APIError(422, f"a job with that jobId, cluster and startTime already exists: dbid: {dup.id}, "
                            f"jobid: {dup.job_id} (started {dup.start_time}, within 24 h of {job.start_time})")
    log.info("new job (id: %d): cluster=%s, jobId=%d, user=%s, startTime=%d", db_id, job.cluster, job.job_id,
             job.user, job.start_time)
    return json_response({"msg": "success", "id": db_id}, 201)


@bp.route("/api/jobs/stop_job/", methods=["POST", "PUT"])
@bp.route("/api/jobs/stop_job", methods=["POST", "PUT"])
@rest_route("api")
async def stop_job() -> Response:
    ctx = _ctx()
    doc = await json_body()
    job_id = field_int(doc, "jobId", required=True, minimum=0)
    stop_time = field_int(doc, "stopTime", required=True, minimum=0)
    start_time = field_int(doc, "startTime", minimum=0)
    state = field_str(doc, "jobState")
    state = "completed" if state is None else state
    if state not in JOB_STATES or state == "running":
        raise APIError(400, f"'jobState': invalid requested job state: {state!r}")
    cluster = field_str(doc, "cluster")

    def stop(conn):
        found = jobs.find_jobs(conn, job_id, cluster, start_time)
        if not found:
            return None, 404
        job = max(found, key=lambda j: j.id)
        if job.state != "running":
            return job, 422
        if job.start_time > stop_time:
            return job, 400
        job.duration = stop_time - job.start_time
        job.state = state
        jobs.stop_job(conn, job.id, state, job.duration, job.monitoring_status)
        return job, 200

    job, status = await ctx.db.write(stop)
    if status == 404:
        raise APIError(404, f"finding job failed: no job with jobId {job_id}"
                            + (f" on cluster {cluster}" if cluster else "")
                            + (f" started at {start_time}" if start_time is not None else ""))
    if status == 422:
        raise APIError(422, f"jobId {job.job_id} (id {job.id}) on {job.cluster}: job has already been stopped "
                            f"(state is: {job.state})")
    if status == 400:
        raise APIError(400, f"jobId {job.job_id} (id {job.id}) on {job.cluster}: stopTime {stop_time} must be "
                            f"larger/equal than startTime {job.start_time}")
    log.info("stopped job (id: %d): jobId=%d, state=%s, duration=%d", job.id, job.job_id, job.state, job.duration)
    if job.monitoring_status:
        current_app.nursery.start_soon(notify_archiver, ctx)
    job.tags = await ctx.db.read(tags.job_tags, job.id, g.viewer)
    return json_response(job_json(job))


# -- queries ------------------------------------------------------------------------------------

GET_JOBS_PARAMS = {"state", "cluster", "project", "start-time", "page", "items-per-page", "with-metadata"}
START_TIME_RANGE = re.compile(r"([0-9]{1,11})-([0-9]{1,11})")  # unix seconds: 11 digits reach the year 5138
MAX_META_VALUE = 1 << 20  # job scripts live in metaData; a MiB is plenty
METRIC_SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")


@bp.route("/api/jobs/", methods=["GET"])
@bp.route("/api/jobs", methods=["GET"])
@rest_route("api")
async def get_jobs() -> Response:
    return await list_jobs()


async def list_jobs() -> Response:
    """``GET /api/jobs/`` and ``/userapi/jobs/``: a page of the jobs ``g.viewer`` may see."""
    ctx = _ctx()
    only_query_params(GET_JOBS_PARAMS)
    filt: dict[str, Any] = {}
    states = query_list("state", JOB_STATES)
    if states:
        filt["state"] = states
    for key in ("cluster", "project"):
        value = query_str(key, max_length=255)
        if value:
            filt[key] = {"eq": value}
    start_time = query_str("start-time")
    if start_time is not None:
        m = START_TIME_RANGE.fullmatch(start_time)
        if m is None:
            raise APIError(400, "query parameter 'start-time': expected FROM-TO in unix seconds, "
                                f"got {start_time[:40]!r}")
        filt["startTime"] = {"from": int(m[1]), "to": int(m[2])}
    per_page = query_int("items-per-page", 25, minimum=1)
    page = query_int("page", 1, minimum=1)
    with_meta = query_bool("with-metadata")
    viewer = g.viewer

    def query(conn) -> bytes:
        # one worker-thread call for the page: rows, tags, archived statistics and the JSON
        found = jobs.query_jobs(conn, [filt], viewer, None, {"itemsPerPage": per_page, "page": page})
        tag_map = tags.tags_of_jobs(conn, [j.id for j in found], viewer)
        for j in found:
            j.tags = tag_map[j.id]
        load_statistics(ctx, found)
        return orjson.dumps({"jobs": [job_json(j, with_meta=with_meta) for j in found], "items": per_page,
                             "page": page})

    try:
        body = await ctx.db.read(query)
    except FilterError as e:
        raise APIError(400, str(e)) from None
    return Response(body, mimetype="application/json")


async def _job_data_or_422(ctx, job: Job, metrics: list[str] | None, scopes: list[str]) -> dict:
    try:
        return await job_data(ctx, job, metrics, scopes)
    except (ValueError, LookupError) as e:  # cluster no longer configured, too many points ...
        raise APIError(422, f"loading the metric data of job {job.id} failed: {e}") from None


def _default_scopes(job: Job) -> list[str]:
    return ["core"] if job.num_nodes == 1 else ["node"]


@bp.route("/api/jobs/<jobid:raw_id>", methods=["GET"])
@rest_route("api")
async def get_complete_job(raw_id: str) -> Response:
    return await complete_job(raw_id)


async def complete_job(raw_id: str) -> Response:
    """One job with (``all-metrics=true``) all its metric data.

    The keys are ``Meta`` and ``Data``: cc-backend's response struct has no JSON tags, so Go
    encodes its field names as they are (its swagger file's lowercase is not what it sends).
    """
    ctx = _ctx()
    db_id, all_metrics = _db_id(raw_id), query_bool("all-metrics")
    job = await _visible_job(db_id)
    job.tags = await ctx.db.read(tags.job_tags, job.id, g.viewer)
    await attach_statistics(ctx, [job])
    data = None
    if all_metrics:
        data = await _job_data_or_422(ctx, job, None, _default_scopes(job))
    return json_response({"Meta": job_json(job), "Data": data})


@bp.route("/api/jobs/<jobid:raw_id>", methods=["POST"])
@rest_route("api")
async def get_job_metrics_by_list(raw_id: str) -> Response:
    return await job_metrics_by_list(raw_id)


async def job_metrics_by_list(raw_id: str) -> Response:
    """One job and the listed metrics (all when the list is empty), as ``Meta``/``Data`` like cc-backend."""
    ctx = _ctx()
    db_id = _db_id(raw_id)
    metrics = await json_body("list", required=False) or []
    if not all(isinstance(m, str) for m in metrics):
        raise APIError(400, "decoding request failed: expected a list of metric names")
    job = await _visible_job(db_id)
    job.tags = await ctx.db.read(tags.job_tags, job.id, g.viewer)
    await attach_statistics(ctx, [job])
    data = await _job_data_or_422(ctx, job, metrics or None, _default_scopes(job))
    out = [{"name": name, "scope": scope, "metric": jm} for name, scopes in data.items() for scope, jm in scopes.items()]
    return json_response({"Meta": job_json(job), "Data": out})


@bp.route("/api/jobs/metrics/<raw_id>", methods=["GET"])
@rest_route("api")
async def get_job_metrics(raw_id: str) -> Response:
    return await job_metrics(raw_id)


async def job_metrics(raw_id: str) -> Response:
    """Metric data of one job by name and scope, in GraphQL's ``{data: {jobMetrics}, error}`` shape."""
    ctx = _ctx()
    db_id = _db_id(raw_id)
    metrics = query_list("metric", max_length=255) or None
    scopes = query_list("scope", METRIC_SCOPES)
    job = await _visible_job(db_id)
    scopes = scopes or _default_scopes(job)
    try:
        data = await job_data(ctx, job, metrics, scopes)
    except (ValueError, LookupError, MetricSourceError) as e:
        return json_response({"data": None, "error": {"message": str(e)}})
    out = [{"name": name, "scope": scope, "metric": jm} for name, sc in data.items() for scope, jm in sc.items()]
    return json_response({"data": {"jobMetrics": out}, "error": None})


@bp.route("/api/jobs/used_nodes", methods=["GET"])
@rest_route("api")
async def used_nodes() -> Response:
    ts = query_int("ts", required=True)
    return json_response({"usedNodes": await _ctx().db.read(jobs.used_nodes, ts)})


# -- tags and metadata ---------------------------------------------------------------------------

def _tag_list(doc: list) -> list[tuple[str, str, str]]:
    out = []
    for i, t in enumerate(doc):
        if not isinstance(t, dict) or not isinstance(t.get("type"), str) or not isinstance(t.get("name"), str) \
                or not t["type"] or not t["name"]:
            raise APIError(400, f"tag [{i}] needs non-empty string 'type' and 'name'")
        scope = t.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise APIError(400, f"'[{i}].scope' must be a string, got {scope!r}")
        scope = scope or "global"
        out.append((t["type"], t["name"], scope))
    return out


async def _change_tags(raw_id: str, add: bool) -> Response:
    ctx = _ctx()
    db_id = _db_id(raw_id)
    wanted = _tag_list(await json_body("list"))
    viewer = g.viewer

    def change(conn):
        job = jobs.find_job(conn, db_id, viewer)
        if job is None:
            return None
        for tag_type, name, scope in wanted:
            if add:
                tags.add_tag(conn, viewer, db_id, tag_type, name, scope)
            elif tags.remove_tag(conn, viewer, db_id, tag_type, name) is None:
                raise LookupError(f"no tag {tag_type}:{name}")
        job.tags = tags.job_tags(conn, db_id, viewer)
        return job

    try:
        job = await ctx.db.write(change)
    except TagPermissionError as e:
        raise APIError(403, str(e)) from None
    except LookupError as e:
        raise APIError(404, str(e)) from None
    if job is None:
        raise APIError(404, f"finding job failed: no job with db id {db_id}")
    await _sync_archived_tags(ctx, job)
    return json_response(job_json(job))


async def _sync_archived_tags(ctx, job: Job) -> None:
    """A finished job's tags also live in its archived meta.json (cc-backend writes them there)."""
    if job.state == "running" or ctx.archive is None:
        return
    all_tags = await ctx.db.read(tags.job_tags, job.id, None)
    try:
        await trio.to_thread.run_sync(lambda: ctx.archive.update_meta(
            job.cluster, job.job_id, job.start_time, tags=[t.to_json() for t in all_tags]))
    except FileNotFoundError:
        pass  # not archived yet: the archiver writes the tags it finds then


@bp.route("/api/jobs/tag_job/<raw_id>", methods=["POST", "PATCH"])
@rest_route("api")
async def tag_job(raw_id: str) -> Response:
    return await _change_tags(raw_id, add=True)


@bp.route("/api/jobs/tag_job/<raw_id>", methods=["DELETE"])
@rest_route("api")
async def remove_tag_job(raw_id: str) -> Response:
    return await _change_tags(raw_id, add=False)


def _meta_payload(payload: Any, where: str = "") -> dict[str, str]:
    if not isinstance(payload, dict):
        raise APIError(400, f"expected {where or 'the body'} to be {{\"key\": \"...\", \"value\": \"...\"}}")
    prefix = f"{where}." if where else ""
    field_str(payload, "key", required=True, non_empty=True, where=prefix)
    field_str(payload, "value", required=True, max_length=MAX_META_VALUE, where=prefix)
    return payload


async def _edit_meta(db_id: int, payload: dict[str, str]) -> Response:
    ctx = _ctx()
    viewer = g.viewer

    def edit(conn):
        job = jobs.find_job(conn, db_id, viewer)
        if job is None:
            return None
        job.meta_data = jobs.edit_meta(conn, db_id, payload["key"], payload["value"])
        job.tags = tags.job_tags(conn, db_id, viewer)
        return job

    job = await ctx.db.write(edit)
    if job is None:
        raise APIError(404, f"job with db id {db_id} does not exist")
    return json_response(job_json(job))


@bp.route("/api/jobs/edit_meta/<raw_id>", methods=["PATCH", "POST"])
@rest_route("api")
async def edit_meta(raw_id: str) -> Response:
    db_id = _db_id(raw_id)
    return await _edit_meta(db_id, _meta_payload(await json_body()))


@bp.route("/api/jobs/edit_meta/", methods=["PATCH", "POST"])
@rest_route("api")
async def edit_meta_by_request() -> Response:
    doc = await json_body()
    payload = _meta_payload(doc.get("payload"), "payload")
    found = await _find_by_request(doc)
    return await _edit_meta(found.id, payload)


async def _find_by_request(doc: dict) -> Job:
    job_id = field_int(doc, "jobId", required=True, minimum=0)
    cluster = field_str(doc, "cluster")
    start_time = field_int(doc, "startTime", minimum=0)
    found = await _ctx().db.read(jobs.find_jobs, job_id, cluster, start_time)
    visible = [j for j in found if await _ctx().db.read(jobs.find_job, j.id, g.viewer)]
    if not visible:
        raise APIError(404, f"finding job failed: no job with jobId {job_id}")
    return max(visible, key=lambda j: j.id)


# -- deleting -------------------------------------------------------------------------------------

@bp.route("/api/jobs/delete_job/", methods=["DELETE"])
@rest_route("api")
async def delete_job_by_request() -> Response:
    job = await _find_by_request(await json_body())
    await _ctx().db.write(jobs.delete_job, job.id)
    return json_response({"msg": f"Successfully deleted job {job.id}"})


@bp.route("/api/jobs/delete_job/<raw_id>", methods=["DELETE"])
@rest_route("api")
async def delete_job_by_id(raw_id: str) -> Response:
    db_id = _db_id(raw_id)
    if not await _ctx().db.write(jobs.delete_job, db_id):
        raise APIError(404, f"finding job failed: no job with db id {db_id}")
    return json_response({"msg": f"Successfully deleted job {db_id}"})


OMIT_TAGGED_VALUES = (*jobs.OMIT_TAGGED, "true", "false")


@bp.route("/api/jobs/delete_job_before/<raw_ts>", methods=["DELETE"])
@rest_route("api")
async def delete_job_before(raw_ts: str) -> Response:
    ts = path_int(raw_ts, "ts")
    omit = query_enum("omit-tagged", OMIT_TAGGED_VALUES, "none")
    omit = {"true": "all", "false": "none"}.get(omit, omit)  # cc-py before 2025: a boolean
    n = await _ctx().db.write(jobs.delete_jobs_before, ts, omit)
    return json_response({"msg": f"Successfully deleted {n} jobs"})

