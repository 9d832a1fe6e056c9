"""Mutations: tags (with their scope permissions) and per-user UI settings.

Tag scopes: ``global`` tags may be used by support and admins, ``admin`` tags by
admins, private tags (scope = a username) by their owner only; everyone sees global
tags, admin tags are visible to support and admins.  Each mutation is one database
transaction: a refused tag in a list leaves the job unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson
from graphql import GraphQLError, GraphQLResolveInfo

from cc.db import Tag, TagPermissionError
from cc.db import _jobs as jobsdb
from cc.db import _tags as tagsdb
from cc.db._users import get_user, set_config
from cc.webd.graphql.context import GQLContext, db_id, gctx, resolver
from cc.webd.jobs_api import _sync_archived_tags  # a finished job's tags live in its meta.json too

MAX_CONFIG_BYTES = 64 * 1024


def _tag_ids(raw: list[Any], arg: str = "tagIds") -> list[int]:
    return [db_id(r, f"{arg}[{i}]") for i, r in enumerate(raw)]


@resolver("Mutation", "createTag")
async def resolve_create_tag(_: Any, info: GraphQLResolveInfo, type: str, name: str, scope: str) -> Tag:
    c = gctx(info)
    for arg, value in (("type", type), ("name", name), ("scope", scope)):
        if not value.strip():
            raise GraphQLError(f"argument '{arg}': must not be empty")
    viewer = c.viewer

    def create(conn) -> Tag:
        existing = tagsdb.find_tag(conn, type, name)
        if existing is not None:
            if existing.scope != scope or not tagsdb.can_read(viewer, existing.scope):
                raise GraphQLError(f"a tag {type}:{name} already exists (with another scope)")
            return existing
        return tagsdb.create_tag(conn, viewer, type, name, scope)

    try:
        return await c.write(create)
    except TagPermissionError:
        raise GraphQLError(f"argument 'scope': not allowed to create tags with scope {scope!r}") from None


def _usable_tags(conn, viewer, tag_ids: list[int]) -> list[Tag]:
    tags = []
    for i, tid in enumerate(tag_ids):
        tag = tagsdb.get_tag(conn, tid)
        if tag is None or not tagsdb.can_read(viewer, tag.scope):
            raise GraphQLError(f"argument 'tagIds[{i}]': tag does not exist (ID): {tid}")
        if not tagsdb.can_write(viewer, tag.scope):
            raise GraphQLError(f"argument 'tagIds[{i}]': not allowed to use tag {tag.type}:{tag.name} "
                               f"(scope {tag.scope!r})")
        tags.append(tag)
    return tags


async def _change_job_tags(c: GQLContext, job_raw: str, tag_raw: list[Any], add: bool) -> list[Tag]:
    jid = db_id(job_raw, "job")
    tag_ids = _tag_ids(tag_raw)
    viewer = c.viewer

    def change(conn):
        job = jobsdb.find_job(conn, jid, viewer)
        if job is None:
            raise GraphQLError(f"argument 'job': no job with id {jid} (or you may not see it)")
        for tag in _usable_tags(conn, viewer, tag_ids):
            if add:
                conn.execute("INSERT OR IGNORE INTO jobtag (job_id, tag_id) VALUES (?, ?)", (jid, tag.id))
            else:
                conn.execute("DELETE FROM jobtag WHERE job_id = ? AND tag_id = ?", (jid, tag.id))
        return job, tagsdb.job_tags(conn, jid, viewer)

    job, tags = await c.write(change)
    await _sync_archived_tags(c.web, job)
    c.tags_loaded.discard(jid)
    return tags


@resolver("Mutation", "addTagsToJob")
async def resolve_add_tags(_: Any, info: GraphQLResolveInfo, job: str, tagIds: list[str]) -> list[Tag]:  # noqa: N803
    return await _change_job_tags(gctx(info), job, tagIds, add=True)


@resolver("Mutation", "removeTagsFromJob")
async def resolve_remove_tags(_: Any, info: GraphQLResolveInfo, job: str, tagIds: list[str]) -> list[Tag]:  # noqa: N803
    return await _change_job_tags(gctx(info), job, tagIds, add=False)


def _may_delete(viewer, tag: Tag) -> bool:
    """cc-backend's rule for deleting a tag everywhere: admins global and admin tags, owners private ones."""
    if tag.scope in ("global", "admin"):
        return viewer.has("admin") or viewer.roles == ("api",)
    return tag.scope == viewer.username


async def _delete_tags(c: GQLContext, tag_ids: list[int], arg: str) -> list[int]:
    viewer = c.viewer

    def delete(conn) -> list[int]:
        for i, tid in enumerate(tag_ids):
            tag = tagsdb.get_tag(conn, tid)
            label = f"{arg}[{i}]" if arg == "tagIds" else arg
            if tag is None or not tagsdb.can_read(viewer, tag.scope):
                raise GraphQLError(f"argument '{label}': tag does not exist (ID): {tid}")
            if not _may_delete(viewer, tag):
                raise GraphQLError(f"argument '{label}': not allowed to delete tag {tag.type}:{tag.name} "
                                   f"(scope {tag.scope!r})")
            conn.execute("DELETE FROM jobtag WHERE tag_id = ?", (tid,))
            conn.execute("DELETE FROM tag WHERE id = ?", (tid,))
        return tag_ids

    return await c.write(delete)


@resolver("Mutation", "removeTagFromList")
async def resolve_remove_tag_from_list(_: Any, info: GraphQLResolveInfo, tagIds: list[str]) -> list[int]:  # noqa: N803
    return await _delete_tags(gctx(info), _tag_ids(tagIds), "tagIds")


@resolver("Mutation", "deleteTag")
async def resolve_delete_tag(_: Any, info: GraphQLResolveInfo, id: str) -> str:
    tid = db_id(id, "id")
    await _delete_tags(gctx(info), [tid], "id")
    return str(tid)


@resolver("Mutation", "updateConfiguration")
async def resolve_update_configuration(_: Any, info: GraphQLResolveInfo, name: str, value: str) -> None:
    """Store one UI setting of the caller; ``value`` is JSON text, as cc-backend's frontend sends it."""
    c = gctx(info)
    if not name.strip() or len(name) > 255:
        raise GraphQLError("argument 'name': must be a non-empty key of at most 255 characters")
    if len(value) > MAX_CONFIG_BYTES:
        raise GraphQLError(f"argument 'value': larger than {MAX_CONFIG_BYTES} bytes")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise GraphQLError(f"argument 'value': not JSON text ({e})") from None
    username = c.viewer.username

    def update(conn) -> None:
        if get_user(conn, username) is None:
            raise GraphQLError(f"user {username!r} is not in the user database: settings cannot be stored")
        set_config(conn, username, name, decoded)

    await c.write(update)
    return None
