"""``DELETE /api/tags/``: remove tags everywhere (cc-backend's removeTags).

The body is a list of ``{type, name, scope}``; each tag is matched on all three and
detached from every job, and the finished jobs' archived ``meta.json`` files lose it
too.  Only ``global`` and ``admin`` tags can be deleted this way (private tags are
skipped, as in cc-backend); the answer counts what was deleted.  Unlike cc-backend,
which deletes one by one and stops at the first unknown tag, the whole list is one
transaction: an unknown tag answers 404 and nothing is deleted.
"""

from __future__ import annotations

import logging

from quart import Blueprint, Response, current_app, g

from cc.db import _jobs as jobs
from cc.webd.auth import rest_route
from cc.webd.errors import APIError
from cc.webd.jobs_api import _sync_archived_tags
from cc.webd.params import json_body

log = logging.getLogger("web.tags")
bp = Blueprint("tags_api", __name__)

TAG_FIELDS = {"type", "name", "scope"}


class _NoSuchTag(Exception):
    pass


def _requested(doc: list) -> list[tuple[str, str, str]]:
    out = []
    for i, t in enumerate(doc):
        if not isinstance(t, dict):
            raise APIError(400, f"decoding request failed: [{i}] must be an object {{type, name, scope}}")
        unknown = set(t) - TAG_FIELDS
        if unknown:
            raise APIError(400, f"decoding request failed: [{i}] has unknown field {sorted(unknown)[0]!r}")
        for key in ("type", "name", "scope"):
            if not isinstance(t.get(key), str):
                raise APIError(400, f"decoding request failed: [{i}].{key} must be a string")
        out.append((t["type"], t["name"], t["scope"]))
    return out


@bp.route("/api/tags/", methods=["DELETE"])
@bp.route("/api/tags", methods=["DELETE"])
@rest_route("api")
async def remove_tags() -> Response:
    ctx = current_app.config["CC"]
    wanted = _requested(await json_body("list"))
    viewer = g.viewer
    if not (viewer.has("admin") or viewer.roles == ("api",)):
        raise APIError(403, f"user {viewer.username!r}: deleting tags needs an api-only token or the admin role")

    def delete(conn) -> tuple[int, list]:
        deleted, touched = 0, set()
        for i, (tag_type, name, scope) in enumerate(wanted):
            if scope not in ("global", "admin"):
                continue  # private tags cannot be deleted through the API
            row = conn.execute("SELECT id FROM tag WHERE tag_type = ? AND tag_name = ? AND tag_scope = ?",
                               (tag_type, name, scope)).fetchone()
            if row is None:
                raise _NoSuchTag(f"[{i}]: tag does not exist (type, name, scope): {tag_type}, {name}, {scope}")
            touched.update(r[0] for r in conn.execute("SELECT job_id FROM jobtag WHERE tag_id = ?", (row[0],)))
            conn.execute("DELETE FROM jobtag WHERE tag_id = ?", (row[0],))
            conn.execute("DELETE FROM tag WHERE id = ?", (row[0],))
            deleted += 1
        found = [jobs.find_job(conn, db_id, None) for db_id in sorted(touched)]
        return deleted, [j for j in found if j is not None]

    try:
        deleted, touched = await ctx.db.write(delete)
    except _NoSuchTag as e:
        raise APIError(404, f"removing tag failed: {e}") from None
    for job in touched:
        await _sync_archived_tags(ctx, job)
    log.info("%r deleted %d of %d tags (%d jobs had them)", viewer.username, deleted, len(wanted), len(touched))
    return Response(f"Deleted Tags from DB: {deleted} successfull of {len(wanted)} requested\n",
                    mimetype="text/plain")
