"""Tags and their visibility scopes: 'global', 'admin', or a username (private)."""

from __future__ import annotations

import sqlite3

from cc.db._filters import Viewer
from cc.db._model import Tag


class TagPermissionError(PermissionError):
    pass


def can_read(viewer: Viewer | None, scope: str) -> bool:
    if viewer is None or scope == "global":
        return True
    if scope == "admin":  # api-only tokens may write admin tags (as in cc-backend), so they may read them
        return viewer.has("admin", "support") or viewer.roles == ("api",)
    return scope == viewer.username


def can_write(viewer: Viewer | None, scope: str) -> bool:
    if viewer is None:
        return True
    api_only = viewer.roles == ("api",)
    if scope == "admin":
        return viewer.has("admin") or api_only
    if scope == "global":
        return viewer.has("admin", "support") or api_only
    return scope == viewer.username


def _tag(row) -> Tag:
    return Tag(id=row[0], type=row[1], name=row[2], scope=row[3])


def list_tags(conn: sqlite3.Connection, viewer: Viewer | None) -> list[Tag]:
    rows = conn.execute("SELECT id, tag_type, tag_name, tag_scope FROM tag ORDER BY tag_type, tag_name")
    return [t for t in map(_tag, rows) if can_read(viewer, t.scope)]


def job_tags(conn: sqlite3.Connection, db_id: int, viewer: Viewer | None) -> list[Tag]:
    rows = conn.execute("SELECT tag.id, tag_type, tag_name, tag_scope FROM tag JOIN jobtag ON jobtag.tag_id = tag.id "
                        "WHERE jobtag.job_id = ? ORDER BY tag_type, tag_name", (db_id,))
    return [t for t in map(_tag, rows) if can_read(viewer, t.scope)]


def tags_of_jobs(conn: sqlite3.Connection, ids: list[int], viewer: Viewer | None) -> dict[int, list[Tag]]:
    out: dict[int, list[Tag]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = conn.execute("SELECT jobtag.job_id, tag.id, tag_type, tag_name, tag_scope FROM tag JOIN jobtag ON "
                            f"jobtag.tag_id = tag.id WHERE jobtag.job_id IN ({','.join('?' * len(chunk))}) "
                            "ORDER BY tag_type, tag_name", chunk)
        for r in rows:
            t = Tag(id=r[1], type=r[2], name=r[3], scope=r[4])
            if can_read(viewer, t.scope):
                out[r[0]].append(t)
    return out


def find_tag(conn: sqlite3.Connection, tag_type: str, name: str) -> Tag | None:
    row = conn.execute("SELECT id, tag_type, tag_name, tag_scope FROM tag WHERE tag_type = ? AND tag_name = ?",
                       (tag_type, name)).fetchone()
    return _tag(row) if row else None


def get_tag(conn: sqlite3.Connection, tag_id: int) -> Tag | None:
    row = conn.execute("SELECT id, tag_type, tag_name, tag_scope FROM tag WHERE id = ?", (tag_id,)).fetchone()
    return _tag(row) if row else None


def create_tag(conn: sqlite3.Connection, viewer: Viewer | None, tag_type: str, name: str, scope: str) -> Tag:
    if not can_write(viewer, scope):
        raise TagPermissionError(f"not allowed to create tags with scope {scope!r}")
    existing = find_tag(conn, tag_type, name)
    if existing:
        return existing
    cur = conn.execute("INSERT INTO tag (tag_type, tag_name, tag_scope) VALUES (?, ?, ?)", (tag_type, name, scope))
    return Tag(int(cur.lastrowid), tag_type, name, scope)


def add_tag(conn: sqlite3.Connection, viewer: Viewer | None, db_id: int, tag_type: str, name: str,
            scope: str = "global") -> Tag:
    """Attach a tag to a job, creating the tag if needed (cc-backend's AddTagOrCreate)."""
    tag = find_tag(conn, tag_type, name)
    if tag is None:
        tag = create_tag(conn, viewer, tag_type, name, scope)
    elif not can_write(viewer, tag.scope):
        raise TagPermissionError(f"not allowed to use tag {tag_type}:{name} (scope {tag.scope!r})")
    conn.execute("INSERT OR IGNORE INTO jobtag (job_id, tag_id) VALUES (?, ?)", (db_id, tag.id))
    return tag


def remove_tag(conn: sqlite3.Connection, viewer: Viewer | None, db_id: int, tag_type: str, name: str) -> Tag | None:
    tag = find_tag(conn, tag_type, name)
    if tag is None:
        return None
    if not can_write(viewer, tag.scope):
        raise TagPermissionError(f"not allowed to remove tag {tag_type}:{name} (scope {tag.scope!r})")
    conn.execute("DELETE FROM jobtag WHERE job_id = ? AND tag_id = ?", (db_id, tag.id))
    return tag


def delete_tag(conn: sqlite3.Connection, viewer: Viewer | None, tag_id: int) -> bool:
    tag = get_tag(conn, tag_id)
    if tag is None:
        return False
    if not can_write(viewer, tag.scope):
        raise TagPermissionError(f"not allowed to delete tag {tag.type}:{tag.name} (scope {tag.scope!r})")
    conn.execute("DELETE FROM jobtag WHERE tag_id = ?", (tag_id,))
    conn.execute("DELETE FROM tag WHERE id = ?", (tag_id,))
    return True
