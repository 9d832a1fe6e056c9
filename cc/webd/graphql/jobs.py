"""Jobs: ``job``, ``jobs`` (filter, order, page), the ``Job`` type's fields, tags and users."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo

from cc.db import FilterError, Job, Tag
from cc.db import _jobs as jobsdb
from cc.db import _stats as statsdb
from cc.db import _tags as tagsdb
from cc.db._filters import build_where
from cc.db._users import get_config
from cc.webd.graphql.context import (
    GQLContext,
    check_filters,
    check_order,
    check_page,
    db_id,
    filter_error,
    gctx,
    resolver,
    selected,
)

DEFAULT_PAGE = {"itemsPerPage": 50, "page": 1}
CONCURRENT_MIN_DURATION = 600  # cc-backend looks for concurrent jobs only on shared jobs longer than this


async def visible_job(c: GQLContext, raw_id: Any, arg: str = "id", with_tags: bool = False) -> Job:
    """The job with that database id if the caller may see it, else an error naming the argument."""
    jid = db_id(raw_id, arg)
    viewer = c.viewer

    def find(conn):
        job = jobsdb.find_job(conn, jid, viewer)
        if job is not None and with_tags:
            job.tags = tagsdb.job_tags(conn, jid, viewer)
        return job

    job = await c.read(find)
    if job is None:
        raise GraphQLError(f"argument '{arg}': no job with id {jid} (or you may not see it)")
    if with_tags:
        c.tags_loaded.add(jid)
    return job


def may_see_user(c: GQLContext, username: str) -> bool:
    """cc-backend's FetchUserInCtx rule: yourself, or with the admin, support or manager role."""
    return username == c.viewer.username or c.viewer.has("admin", "support", "manager") or c.viewer.roles == ("api",)


# -- Query --------------------------------------------------------------------------------------

@resolver("Query", "job")
async def resolve_job(_: Any, info: GraphQLResolveInfo, id: str) -> Job:
    return await visible_job(gctx(info), id, with_tags="tags" in selected(info))


@resolver("Query", "jobs")
async def resolve_jobs(_: Any, info: GraphQLResolveInfo, filter: list | None = None, page: dict | None = None,
                       order: dict | None = None) -> dict[str, Any]:
    c = gctx(info)
    filters = check_filters(filter)
    order_sql = check_order(order)
    page = page or DEFAULT_PAGE
    limit, offset = check_page(page)
    want = selected(info)
    item_fields = selected(info, "items")
    viewer, now = c.viewer, c.now

    def query(conn) -> dict[str, Any]:
        where = build_where(filters, viewer, now)
        # one row more than the page tells whether there is a next page without a second query
        extra = 1 if limit is not None and "hasNextPage" in want else 0
        found = statsdb.jobs_page(conn, where, order_sql, None if limit is None else limit + extra, offset)
        has_next = len(found) > limit if extra else False
        if extra:
            found = found[:limit]
        out: dict[str, Any] = {"items": found, "offset": offset, "limit": limit if limit is not None else len(found),
                               "hasNextPage": has_next, "count": None}
        if "count" in want:
            out["count"] = conn.execute("SELECT count(*) FROM job" + where.sql(), where.params).fetchone()[0]
        if "tags" in item_fields and found:
            tag_map = tagsdb.tags_of_jobs(conn, [j.id for j in found], viewer)
            for j in found:
                j.tags = tag_map[j.id]
        if "userData" in item_fields and found:
            out["users"] = statsdb.users_by_name(conn, [j.user for j in found])
        return out

    try:
        result = await c.read(query)
    except FilterError as e:
        raise filter_error(e, "filter") from None
    if "tags" in item_fields:
        c.tags_loaded.update(j.id for j in result["items"])
    for username in {j.user for j in result["items"]} if "users" in result else ():
        c.users[username] = result["users"].get(username)
    return result


@resolver("Query", "tags")
async def resolve_tags(_: Any, info: GraphQLResolveInfo) -> list[Tag]:
    c = gctx(info)
    return await c.read(tagsdb.list_tags, c.viewer)


async def fetch_user(c: GQLContext, username: str) -> dict[str, str] | None:
    if username not in c.users:
        c.users[username] = (await c.read(statsdb.users_by_name, [username])).get(username)
    return c.users[username]


@resolver("Query", "user")
async def resolve_user(_: Any, info: GraphQLResolveInfo, username: str) -> dict[str, str] | None:
    c = gctx(info)
    if not may_see_user(c, username):
        raise GraphQLError(f"argument 'username': you may not look up user {username!r}")
    return await fetch_user(c, username)


@resolver("Query", "userConfig")
async def resolve_user_config(_: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    c = gctx(info)
    return await c.read(get_config, c.viewer.username)


# -- Job ----------------------------------------------------------------------------------------

def _attr(name: str):
    def get(job: Job, _info: GraphQLResolveInfo) -> Any:
        return getattr(job, name)

    return get


for _field, _name in {"jobId": "job_id", "numNodes": "num_nodes", "subCluster": "subcluster", "startTime": "start_time",
                      "numHWThreads": "num_hwthreads", "numAcc": "num_acc", "SMT": "smt", "state": "state",
                      "partition": "partition", "arrayJobId": "array_job_id", "monitoringStatus": "monitoring_status",
                      "metaData": "meta_data", "walltime": "walltime", "energy": "energy"}.items():
    resolver("Job", _field)(_attr(_name))


@resolver("Job", "duration")
def resolve_duration(job: Job, info: GraphQLResolveInfo) -> int:
    return job.current_duration(gctx(info).now)


# Tags and user data of listed jobs are loaded with the list; answering those synchronously
# (no coroutine) keeps graphql-core from gathering every list item (3x faster job lists).

@resolver("Job", "tags")
def resolve_job_tags(job: Job, info: GraphQLResolveInfo) -> list[Tag] | Awaitable[list[Tag]]:
    c = gctx(info)
    return job.tags if job.id in c.tags_loaded else _load_tags(c, job)


async def _load_tags(c: GQLContext, job: Job) -> list[Tag]:
    job.tags = await c.read(tagsdb.job_tags, job.id, c.viewer)
    c.tags_loaded.add(job.id)
    return job.tags


@resolver("Job", "userData")
def resolve_user_data(job: Job, info: GraphQLResolveInfo) -> dict[str, str] | None | Awaitable[dict | None]:
    c = gctx(info)
    if not may_see_user(c, job.user):
        raise GraphQLError("userData: forbidden")
    return c.users[job.user] if job.user in c.users else fetch_user(c, job.user)


@resolver("Job", "footprint")
def resolve_footprint(job: Job, info: GraphQLResolveInfo) -> list[dict[str, Any]] | None:
    """``{"flops_any_avg": 1.5}`` -> ``[{name: "flops_any", stat: "avg", value: 1.5}]`` (restricted metrics left out)."""
    if not job.footprint:
        return None
    hidden = gctx(info).restricted(job.cluster, job.subcluster)
    out = []
    for key, value in job.footprint.items():
        name, _, stat = key.rpartition("_")
        if name not in hidden and value is not None:
            out.append({"name": name, "stat": stat, "value": value})
    return out


_HARDWARE = ((re.compile("cpu", re.I), "CPU"), (re.compile("acc", re.I), "Accelerator"),
             (re.compile("mem", re.I), "Memory"), (re.compile("core", re.I), "Core"))


@resolver("Job", "energyFootprint")
def resolve_energy_footprint(job: Job, info: GraphQLResolveInfo) -> list[dict[str, Any]] | None:
    """Energy per metric, classified by its name as cc-backend does (cpu, acc, mem, core, other)."""
    if not job.energy_footprint:
        return None
    out = []
    for metric, value in job.energy_footprint.items():
        if value is None:
            continue
        hardware = next((hw for rx, hw in _HARDWARE if rx.search(metric)), "Other")
        out.append({"hardware": hardware, "metric": metric, "value": value})
    return out


@resolver("Job", "concurrentJobs")
async def resolve_concurrent(job: Job, info: GraphQLResolveInfo) -> dict[str, Any] | None:
    """Jobs sharing this job's nodes at the same time; only asked for shared jobs longer than 10 minutes."""
    c = gctx(info)
    if job.shared == "none" or job.current_duration(c.now) <= CONCURRENT_MIN_DURATION:
        return None
    found = await c.read(statsdb.concurrent_jobs, job, c.viewer, c.now)
    query = f"cluster={job.cluster}" + "".join(f"&jobId={jid}" for _, jid in found)
    return {"listQuery": query, "items": [{"id": i, "jobId": jid} for i, jid in found], "count": len(found)}
