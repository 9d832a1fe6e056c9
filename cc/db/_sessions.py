"""Web UI sessions (``web_session``): one row per logged-in browser, keyed by the SHA-256 of its session id.

Deleting a row ends that session in every process at its next request; rows go with
their user (``ON DELETE CASCADE``), with a role change (:func:`cc.db._users.update_user`)
and with their expiry.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from cc.db._users import _COLS, User, _user, end_sessions


@dataclass(frozen=True)
class SessionRecord:
    id_hash: str
    username: str
    created: int
    expires: int  # unix time; 0 = no expiry
    ip: str
    user_agent: str


def create_session(conn: sqlite3.Connection, rec: SessionRecord) -> None:
    conn.execute("INSERT INTO web_session (id, username, created, expires, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
                 (rec.id_hash, rec.username, rec.created, rec.expires, rec.ip, rec.user_agent))


def delete_session(conn: sqlite3.Connection, id_hash: str) -> bool:
    return conn.execute("DELETE FROM web_session WHERE id = ?", (id_hash,)).rowcount > 0


def session_user(conn: sqlite3.Connection, id_hash: str, now: int) -> User | None:
    """The user of a live session (one query: the session check costs what the user lookup did)."""
    cols = ", ".join(f"u.{c.strip()}" for c in _COLS.split(","))
    row = conn.execute(f"SELECT {cols} FROM web_session s JOIN hpc_user u ON u.username = s.username "
                       "WHERE s.id = ? AND (s.expires = 0 OR s.expires > ?)", (id_hash, now)).fetchone()
    return _user(row) if row else None


def end_user_sessions(conn: sqlite3.Connection, username: str, id_prefix: str | None = None) -> int:
    """End all sessions of a user (or the one whose listed id is ``id_prefix``); returns how many."""
    if id_prefix:
        return conn.execute("DELETE FROM web_session WHERE username = ? AND substr(id, 1, ?) = ?",
                            (username, len(id_prefix), id_prefix)).rowcount
    return end_sessions(conn, username)


LISTED_ID_CHARS = 16  # enough to name a session, far too little to be of use to anyone else


def list_sessions(conn: sqlite3.Connection, username: str | None, now: int) -> list[dict[str, Any]]:
    """Live sessions (of one user, or everyone's), newest first; ``id`` is a prefix of the stored hash."""
    where, args = "(expires = 0 OR expires > ?)", [now]
    if username is not None:
        where += " AND username = ?"
        args.append(username)
    rows = conn.execute(f"SELECT id, username, created, expires, ip, user_agent FROM web_session WHERE {where} "
                        "ORDER BY created DESC, id", args).fetchall()
    return [{"id": r[0][:LISTED_ID_CHARS], "username": r[1], "created": r[2], "expires": r[3] or None,
             "ip": r[4] or "", "userAgent": r[5] or ""} for r in rows]


def purge_expired(conn: sqlite3.Connection, now: int) -> int:
    return conn.execute("DELETE FROM web_session WHERE expires <> 0 AND expires <= ?", (now,)).rowcount
