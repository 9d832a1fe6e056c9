"""Users (``hpc_user``), their roles and projects, and per-user UI settings (``configuration``).

``hpc_user.ldap`` is cc-backend's auth source (0 local password, 1 LDAP, 2 token, 3 OpenID
Connect): the LDAP sync only ever adds or removes users whose source is LDAP, so local
users are never touched by it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import orjson

from cc.db._filters import Viewer
from cc.db._model import ROLES

AUTH_LOCAL, AUTH_LDAP, AUTH_TOKEN, AUTH_OIDC = 0, 1, 2, 3


class UserError(ValueError):
    pass


@dataclass
class User:
    username: str
    roles: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    name: str | None = None
    email: str | None = None
    auth_source: int = AUTH_LOCAL
    password_hash: str | None = None

    def viewer(self) -> Viewer:
        return Viewer(self.username, tuple(self.roles), tuple(self.projects))

    def to_json(self) -> dict[str, Any]:
        return {"username": self.username, "name": self.name or "", "email": self.email or "",
                "roles": self.roles, "projects": self.projects}


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()


def check_password(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return bcrypt.checkpw(password.encode(), user.password_hash.encode())
    except ValueError:
        return False


def _user(row) -> User:
    return User(username=row[0], password_hash=row[1], auth_source=row[2] or 0, name=row[3],
                roles=list(orjson.loads(row[4] or "[]")), email=row[5], projects=list(orjson.loads(row[6] or "[]")))


_COLS = "username, password, ldap, name, roles, email, projects"


def get_user(conn: sqlite3.Connection, username: str) -> User | None:
    row = conn.execute(f"SELECT {_COLS} FROM hpc_user WHERE username = ?", (username,)).fetchone()
    return _user(row) if row else None


def list_users(conn: sqlite3.Connection, special_only: bool = False) -> list[User]:
    users = [_user(r) for r in conn.execute(f"SELECT {_COLS} FROM hpc_user ORDER BY username")]
    if special_only:
        users = [u for u in users if set(u.roles) - {"user"}]
    return users


def check_username(username: str) -> str:
    if not username or any(c in username for c in "/\\\n\t ") or len(username) > 255:
        raise UserError(f"invalid username {username!r}")
    return username


def validate_roles(roles: list[str]) -> list[str]:
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise UserError(f"unknown role {bad[0]!r} (valid: {', '.join(ROLES)})")
    return roles


def add_user(conn: sqlite3.Connection, username: str, roles: list[str], password: str | None = None,
             name: str | None = None, email: str | None = None, projects: list[str] | None = None,
             auth_source: int = AUTH_LOCAL) -> User:
    check_username(username)
    validate_roles(roles)
    if get_user(conn, username):
        raise UserError(f"user {username!r} already exists")
    pw = hash_password(password) if password else None
    conn.execute(f"INSERT INTO hpc_user ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (username, pw, auth_source, name, orjson.dumps(roles).decode(), email,
                  orjson.dumps(projects or []).decode()))
    return get_user(conn, username)  # type: ignore[return-value]


def delete_user(conn: sqlite3.Connection, username: str) -> bool:
    return conn.execute("DELETE FROM hpc_user WHERE username = ?", (username,)).rowcount > 0


def end_sessions(conn: sqlite3.Connection, username: str) -> int:
    """Log a user out everywhere (their web sessions end at the next request, in every process)."""
    return conn.execute("DELETE FROM web_session WHERE username = ?", (username,)).rowcount


def set_password(conn: sqlite3.Connection, username: str, password: str) -> bool:
    """A new password also ends the user's sessions: whoever knew the old one is logged out."""
    changed = conn.execute("UPDATE hpc_user SET password = ? WHERE username = ?",
                           (hash_password(password), username)).rowcount > 0
    if changed:
        end_sessions(conn, username)
    return changed


def update_user(conn: sqlite3.Connection, username: str, *, add_role: str | None = None,
                remove_role: str | None = None, add_project: str | None = None,
                remove_project: str | None = None) -> User:
    """cc-backend's single-field changes of ``POST /api/user/{id}``.

    A role change also ends the user's web sessions, so no session outlives the rights it was opened with.
    """
    user = get_user(conn, username)
    if user is None:
        raise LookupError(f"no user {username!r}")
    if add_role:
        validate_roles([add_role])
        if add_role in user.roles:
            raise UserError(f"user {username!r} already has role {add_role!r}")
        user.roles.append(add_role)
    if remove_role:
        if remove_role not in user.roles:
            raise UserError(f"user {username!r} does not have role {remove_role!r}")
        if remove_role == "manager" and user.projects:
            raise UserError("remove the manager's projects before the manager role")
        user.roles.remove(remove_role)
    if add_project:
        if "manager" not in user.roles:
            raise UserError(f"user {username!r} is not a manager; only managers have projects")
        if add_project in user.projects:
            raise UserError(f"user {username!r} already manages project {add_project!r}")
        user.projects.append(add_project)
    if remove_project:
        if remove_project not in user.projects:
            raise UserError(f"user {username!r} does not manage project {remove_project!r}")
        user.projects.remove(remove_project)
    conn.execute("UPDATE hpc_user SET roles = ?, projects = ? WHERE username = ?",
                 (orjson.dumps(user.roles).decode(), orjson.dumps(user.projects).decode(), username))
    if add_role or remove_role:
        end_sessions(conn, username)
    return user


# -- users from a site login (LDAP, OpenID Connect, JWT cross-login) --------------------------------


def login_user(conn: sqlite3.Connection, claimed: User, *, sync: bool, update: bool) -> User | None:
    """The database user for someone an external source vouched for (cc-backend's handleUserSync).

    ``sync``: a user unknown here is added with the claimed name, roles and projects;
    ``update``: a known user's name, roles and projects are set to the claimed ones
    (roles ``None`` = the source has no say on roles, as for LDAP).  Returns the user as
    now stored, None when unknown and not synced.
    """
    user = get_user(conn, claimed.username)
    if user is None:
        if not sync:
            return None
        roles = [r for r in (claimed.roles or ["user"]) if r in ROLES]
        return add_user(conn, claimed.username, roles, name=claimed.name, email=claimed.email,
                        projects=claimed.projects if "manager" in roles else [], auth_source=claimed.auth_source)
    if update:
        update_from_source(conn, user, name=claimed.name, email=claimed.email,
                           roles=claimed.roles if claimed.roles else None, projects=claimed.projects)
        user = get_user(conn, claimed.username)
    return user


def update_from_source(conn: sqlite3.Connection, user: User, *, name: str | None = None,
                       email: str | None = None, roles: list[str] | None = None,
                       projects: list[str] | None = None) -> None:
    """Bring a user in line with what the login source says; ``None`` leaves a field as it is.

    Only managers keep projects (a user losing the manager role loses them, as in cc-backend).
    """
    sets: dict[str, Any] = {}
    if name and name != user.name:
        sets["name"] = name
    if email and email != user.email:
        sets["email"] = email
    if roles is not None:
        roles = [r for r in roles if r in ROLES]
        if sorted(roles) != sorted(user.roles):
            sets["roles"] = orjson.dumps(roles).decode()
        new_projects = (projects or []) if "manager" in roles else []
        if new_projects != user.projects:
            sets["projects"] = orjson.dumps(new_projects).decode()
    if sets:
        cols = ", ".join(f"{k} = ?" for k in sets)  # keys are the literals above, never input
        conn.execute(f"UPDATE hpc_user SET {cols} WHERE username = ?", (*sets.values(), user.username))
    if "roles" in sets:  # as for an admin's role change: no session outlives the rights it was opened with
        end_sessions(conn, user.username)


def ldap_usernames(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT username FROM hpc_user WHERE ldap = ? ORDER BY username",
                                       (AUTH_LDAP,))]


@dataclass
class DirectorySync:
    """What :func:`sync_directory_users` changed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # names this database cannot hold


def sync_directory_users(conn: sqlite3.Connection, found: dict[str, str | None], delete_old: bool,
                         progress: Callable[[int, int], None] | None = None) -> DirectorySync:
    """Make the LDAP users of the database those of the directory (``found``: uid -> full name).

    New directory users are added with role ``user`` (a local user of the same name is left
    alone); with ``delete_old``, LDAP users the directory no longer has are removed.  An
    empty directory answer never deletes anybody: that is a wrong ``user-base`` or
    ``user-filter`` far more often than a site without users.  ``progress(done, total)``
    is called per directory and vanished user.
    """
    result = DirectorySync()
    known = set(ldap_usernames(conn))
    if delete_old and not found and known:
        raise UserError(f"the LDAP search found no users; not removing the {len(known)} LDAP users of the "
                        "database (check auth.ldap.user-base and user-filter)")
    gone = sorted(known - set(found)) if delete_old else []
    total, done = len(found) + len(gone), 0
    for username, name in sorted(found.items()):
        done += 1
        if progress is not None:
            progress(done, total)
        if username in known:
            continue
        try:
            check_username(username)
        except UserError:
            result.skipped.append(username)
            continue
        cur = conn.execute("INSERT OR IGNORE INTO hpc_user (username, name, roles, projects, ldap) "
                           "VALUES (?, ?, ?, ?, ?)", (username, name, '["user"]', "[]", AUTH_LDAP))
        if cur.rowcount:
            result.added.append(username)
    for username in gone:
        conn.execute("DELETE FROM hpc_user WHERE username = ? AND ldap = ?", (username, AUTH_LDAP))
        result.removed.append(username)
        done += 1
        if progress is not None:
            progress(done, total)
    if progress is not None and not total:
        progress(0, 0)
    return result


def get_config(conn: sqlite3.Connection, username: str) -> dict[str, Any]:
    out = {}
    for key, value in conn.execute("SELECT confkey, value FROM configuration WHERE username = ?", (username,)):
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value
    return out


def set_config(conn: sqlite3.Connection, username: str, key: str, value: Any) -> None:
    conn.execute("INSERT INTO configuration (username, confkey, value) VALUES (?, ?, ?) "
                 "ON CONFLICT(username, confkey) DO UPDATE SET value = excluded.value",
                 (username, key, orjson.dumps(value).decode()))
