"""cc-backend's REST job API: start/stop, list, fetch with metric data, tags, metadata, delete.

Paths, payloads and status codes follow cc-backend (the swagger file where it agrees
with the code).  Write endpoints need the ``api`` role; reads filter by the caller's
role (user: own jobs, manager: own and projects' jobs, support/admin/api: all).
Every change runs in one database transaction: an error leaves nothing half-written.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import trio
from quart import Blueprint, Response, current_app, g, request

from cc.db import JOB_STATES, FilterError, Job, TagPermissionError
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.jobcheck import PayloadError, check_start_payload
from cc.metricsource import MetricSourceError
from cc.webd.auth import rest_route
from cc.webd.errors import APIError, json_response
from cc.webd.jobview import attach_statistics, job_data, job_json, load_statistics, notify_archiver

log = logging.getLogger("web.jobs")
bp = Blueprint("jobs_api", __name__)


def _ctx():
    return current_app.config["CC"]


async def _body(kind: str = "object") -> Any:
    raw = await request.get_data()
    try:
        doc = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as e:
        raise APIError(400, f"parsing request body failed: {e}") from None
    if kind == "object" and not isinstance(doc, dict):
        raise APIError(400, "parsing request body failed: expected a JSON object")
    if kind == "list" and not isinstance(doc, list):
        raise APIError(400, "parsing request body failed: expected a JSON array")
    return doc


def _db_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise APIError(400, f"integer expected in path for id, got {raw!r}") from None


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
    doc = await _body()
    try:
        job = check_start_payload(doc, ctx.clusters)
    except PayloadError as e:
        raise APIError(400, str(e)) from None
    viewer = g.viewer

    def start(conn):
        dup = jobs.recent_duplicate(conn, job)
        if dup is not None:
            return None, dup
        jobs.insert_job(conn, job)
        for t in job.tags:
            tags.add_tag(conn, viewer, job.id, t.type, t.name, t.scope or "global")
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
    doc = await _body()
    job_id, stop_time = doc.get("jobId"), doc.get("stopTime")
    if job_id is None:
        raise APIError(400, "the field 'jobId' is required")
    for key in ("jobId", "stopTime", "startTime"):
        v = doc.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise APIError(400, f"'{key}' must be an integer, got {v!r}")
    if stop_time is None:
        raise APIError(400, "the field 'stopTime' is required")
    state = doc.get("jobState") or "completed"
    if state not in JOB_STATES or state == "running":
        raise APIError(400, f"invalid requested job state: {state!r}")
    cluster = doc.get("cluster")
    if cluster is not None and not isinstance(cluster, str):
        raise APIError(400, "'cluster' must be a string")

    def stop(conn):
        found = jobs.find_jobs(conn, job_id, cluster, doc.get("startTime"))
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
                            + (f" started at {doc['startTime']}" if doc.get("startTime") else ""))
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


@bp.route("/api/jobs/", methods=["GET"])
@bp.route("/api/jobs", methods=["GET"])
@rest_route()
async def get_jobs() -> Response:
    ctx = _ctx()
    args = request.args
    unknown = set(args) - GET_JOBS_PARAMS
    if unknown:
        raise APIError(400, f"invalid query parameter: {sorted(unknown)[0]}")
    filt: dict[str, Any] = {}
    states = args.getlist("state")
    for s in states:
        if s not in JOB_STATES:
            raise APIError(400, f"invalid query parameter value: state={s!r}")
    if states:
        filt["state"] = states
    if args.get("cluster"):
        filt["cluster"] = {"eq": args["cluster"]}
    if args.get("project"):
        filt["project"] = {"eq": args["project"]}
    if "start-time" in args:
        parts = args["start-time"].split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise APIError(400, "invalid query parameter value: start-time (expected FROM-TO in unix seconds)")
        filt["startTime"] = {"from": int(parts[0]), "to": int(parts[1])}
    try:
        per_page = int(args.get("items-per-page", 25))
        page = int(args.get("page", 1))
    except ValueError:
        raise APIError(400, "page and items-per-page must be integers") from None
    if per_page < 1 or page < 1:
        raise APIError(400, "page and items-per-page must be >= 1")
    with_meta = "with-metadata" in args and args["with-metadata"] not in ("false", "0")
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


def _default_scopes(job: Job) -> list[str]:
    return ["core"] if job.num_nodes == 1 else ["node"]


@bp.route("/api/jobs/<raw_id>", methods=["GET"])
@rest_route()
async def get_complete_job(raw_id: str) -> Response:
    ctx = _ctx()
    job = await _visible_job(_db_id(raw_id))
    job.tags = await ctx.db.read(tags.job_tags, job.id, g.viewer)
    await attach_statistics(ctx, [job])
    data = None
    if request.args.get("all-metrics") == "true":
        data = await job_data(ctx, job, None, _default_scopes(job))
    return json_response({"meta": job_json(job), "data": data})


@bp.route("/api/jobs/<raw_id>", methods=["POST"])
@rest_route()
async def get_job_metrics_by_list(raw_id: str) -> Response:
    ctx = _ctx()
    job = await _visible_job(_db_id(raw_id))
    metrics = await _body("list")
    if not all(isinstance(m, str) for m in metrics):
        raise APIError(400, "decoding request failed: expected a list of metric names")
    job.tags = await ctx.db.read(tags.job_tags, job.id, g.viewer)
    await attach_statistics(ctx, [job])
    data = await job_data(ctx, job, metrics or None, _default_scopes(job))
    out = [{"name": name, "scope": scope, "metric": jm} for name, scopes in data.items() for scope, jm in scopes.items()]
    return json_response({"meta": job_json(job), "data": out})


@bp.route("/api/jobs/metrics/<raw_id>", methods=["GET"])
@rest_route()
async def get_job_metrics(raw_id: str) -> Response:
    ctx = _ctx()
    job = await _visible_job(_db_id(raw_id))
    metrics = request.args.getlist("metric") or None
    scopes = request.args.getlist("scope") or _default_scopes(job)
    bad = [s for s in scopes if s not in ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")]
    if bad:
        raise APIError(400, f"unmarshaling scope failed: {bad[0]!r} is not a metric scope")
    try:
        data = await job_data(ctx, job, metrics, scopes)
    except (ValueError, LookupError, MetricSourceError) as e:
        return json_response({"data": None, "error": {"message": str(e)}})
    out = [{"name": name, "scope": scope, "metric": jm} for name, sc in data.items() for scope, jm in sc.items()]
    return json_response({"data": {"jobMetrics": out}, "error": None})


@bp.route("/api/jobs/used_nodes", methods=["GET"])
@rest_route("api")
async def used_nodes() -> Response:
    raw = request.args.get("ts")
    if not raw:
        raise APIError(400, "missing required query parameter: ts")
    try:
        ts = int(raw)
    except ValueError:
        raise APIError(400, f"invalid timestamp format: {raw!r}") from None
    return json_response({"usedNodes": await _ctx().db.read(jobs.used_nodes, ts)})


# -- tags and metadata ---------------------------------------------------------------------------

def _tag_list(doc: list) -> list[tuple[str, str, str]]:
    out = []
    for i, t in enumerate(doc):
        if not isinstance(t, dict) or not isinstance(t.get("type"), str) or not isinstance(t.get("name"), str) \
                or not t["type"] or not t["name"]:
            raise APIError(400, f"tag [{i}] needs non-empty string 'type' and 'name'")
        scope = t.get("scope") or "global"
        if not isinstance(scope, str):
            raise APIError(400, f"tag [{i}].scope must be a string")
        out.append((t["type"], t["name"], scope))
    return out


async def _change_tags(raw_id: str, add: bool) -> Response:
    ctx = _ctx()
    db_id = _db_id(raw_id)
    wanted = _tag_list(await _body("list"))
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


async def _edit_meta(db_id: int, payload: Any) -> Response:
    ctx = _ctx()
    if not isinstance(payload, dict) or not isinstance(payload.get("key"), str) or not payload["key"] \
            or not isinstance(payload.get("value"), str):
        raise APIError(400, "expected {\"key\": \"...\", \"value\": \"...\"} with string values")
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
    return await _edit_meta(_db_id(raw_id), await _body())


@bp.route("/api/jobs/edit_meta/", methods=["PATCH", "POST"])
@rest_route("api")
async def edit_meta_by_request() -> Response:
    doc = await _body()
    found = await _find_by_request(doc)
    return await _edit_meta(found.id, doc.get("payload"))


async def _find_by_request(doc: dict) -> Job:
    job_id = doc.get("jobId")
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise APIError(400, "the field 'jobId' (integer) is required")
    found = await _ctx().db.read(jobs.find_jobs, job_id, doc.get("cluster"), doc.get("startTime"))
    visible = [j for j in found if await _ctx().db.read(jobs.find_job, j.id, g.viewer)]
    if not visible:
        raise APIError(404, f"finding job failed: no job with jobId {job_id}")
    return max(visible, key=lambda j: j.id)


# -- deleting -------------------------------------------------------------------------------------

@bp.route("/api/jobs/delete_job/", methods=["DELETE"])
@rest_route("api")
async def delete_job_by_request() -> Response:
    job = await _find_by_request(await _body())
    await _ctx().db.write(jobs.delete_job, job.id)
    return json_response({"msg": f"Successfully deleted job {job.id}"})


@bp.route("/api/jobs/delete_job/<raw_id>", methods=["DELETE"])
@rest_route("api")
async def delete_job_by_id(raw_id: str) -> Response:
    db_id = _db_id(raw_id)
    if not await _ctx().db.write(jobs.delete_job, db_id):
        raise APIError(404, f"finding job failed: no job with db id {db_id}")
    return json_response({"msg": f"Successfully deleted job {db_id}"})


@bp.route("/api/jobs/delete_job_before/<raw_ts>", methods=["DELETE"])
@rest_route("api")
async def delete_job_before(raw_ts: str) -> Response:
    try:
        ts = int(raw_ts)
    except ValueError:
        raise APIError(400, f"integer expected in path for ts, got {raw_ts!r}") from None
    omit = request.args.get("omit-tagged") in ("true", "1")
    n = await _ctx().db.write(jobs.delete_jobs_before, ts, omit)
    return json_response({"msg": f"Successfully deleted {n} jobs"})

