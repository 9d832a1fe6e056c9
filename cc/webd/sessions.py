"""Starting and ending a web UI session, whatever proved who the user is.

Every login path (local password today; LDAP, OpenID Connect and JWT cross-login are
meant to end here too) calls :func:`begin_session`, logout calls :func:`end_session`,
so how a session is kept lives in one place.
"""

from __future__ import annotations

from quart import session

from cc.db import User


def begin_session(user: User) -> None:
    """Log ``user`` in: a fresh session (never one an attacker could have planted)."""
    session.clear()
    session["user"] = user.username
    session.permanent = True


def end_session() -> None:
    session.clear()


def session_username() -> str | None:
    """The user name the session cookie carries (not yet checked against the database)."""
    return session.get("user") or None
