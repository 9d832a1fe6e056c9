"""LDAP as a password backend and a source of users (``auth.ldap``), as in cc-backend.

Login binds to the directory as the user (``user-bind`` with ``{username}`` replaced);
the search account (``search-dn`` + ``LDAP_ADMIN_PASSWORD`` from ``.env``) reads the
user entries for ``sync-user-on-login`` and the sync.  ldaps:// and StartTLS check the
server certificate against ``ca-file`` (or the system's CAs).  ldap3 blocks: every call
here is synchronous and callers on an event loop use ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

import ldap3
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from cc.authconfig import LdapSettings, LoginSourceUnavailable

log = logging.getLogger("web.ldap")

CONNECT_TIMEOUT = 10  # seconds, as cc-backend
RECEIVE_TIMEOUT = 30  # ldap3 needs whole seconds


# bind results that mean "this name and password do not fit" (no such DN, malformed name)
_WRONG_CREDENTIALS = frozenset({"invalidCredentials", "invalidDNSyntax", "noSuchObject", "inappropriateAuthentication"})


class LdapUnavailable(LoginSourceUnavailable):
    """The directory cannot be asked: unreachable, TLS failure, or the search account is refused."""


@dataclass(frozen=True)
class DirectoryUser:
    username: str
    name: str | None


class LdapDirectory:
    """One configured directory; each operation opens its own short connection (no shared state)."""

    def __init__(self, settings: LdapSettings, search_password: str | None):
        self.settings = settings
        self.search_password = search_password
        tls = None
        if settings.url.lower().startswith("ldaps:") or settings.start_tls:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED,
                            ca_certs_file=str(settings.ca_file) if settings.ca_file else None)
        self.server = ldap3.Server(settings.url, tls=tls, connect_timeout=CONNECT_TIMEOUT, get_info=ldap3.NONE)

    # -- connections ------------------------------------------------------------------------

    def _open(self, dn: str, password: str) -> ldap3.Connection:
        """A connection (TLS started if configured) not yet bound as ``dn``."""
        conn = ldap3.Connection(self.server, user=dn, password=password, authentication=ldap3.SIMPLE,
                                receive_timeout=RECEIVE_TIMEOUT, raise_exceptions=False, auto_referrals=False)
        try:
            conn.open(read_server_info=False)
            if self.settings.start_tls:
                conn.start_tls(read_server_info=False)
        except (lx.LDAPException, OSError) as e:
            _close(conn)
            raise LdapUnavailable(f"cannot connect to the LDAP server {self.settings.url}: {_reason(e)}") from None
        return conn

    def _bind(self, conn: ldap3.Connection) -> bool:
        """False for wrong credentials; anything else that fails means the directory is not usable."""
        try:
            if conn.bind(read_server_info=False):
                return True
        except lx.LDAPException as e:
            raise LdapUnavailable(f"LDAP server {self.settings.url}: {e}") from None
        desc = (conn.result or {}).get("description")
        if desc in _WRONG_CREDENTIALS:
            return False
        raise LdapUnavailable(f"LDAP server {self.settings.url} refused the bind: {desc} "
                              f"{(conn.result or {}).get('message') or ''}".strip())

    def _search_connection(self) -> ldap3.Connection:
        if not self.search_password:
            raise LdapUnavailable("LDAP_ADMIN_PASSWORD is not set (in .env or the environment): "
                                  "the directory cannot be searched")
        conn = self._open(self.settings.search_dn, self.search_password)
        if not self._bind(conn):
            _close(conn)
            raise LdapUnavailable(f"LDAP refused the search account {self.settings.search_dn!r} "
                                  "(auth.ldap.search-dn and LDAP_ADMIN_PASSWORD)")
        return conn

    # -- users ------------------------------------------------------------------------------

    def _attrs(self) -> list[str]:
        return sorted({self.settings.uid_attr, self.settings.username_attr, "cn"})

    def _entry_user(self, entry) -> DirectoryUser | None:
        attrs = entry.get("attributes", {})

        def first(name: str) -> str | None:
            v = attrs.get(name)
            if isinstance(v, list):
                v = v[0] if v else None
            return str(v) if v not in (None, "") else None

        uid = first(self.settings.uid_attr)
        if uid is None:
            return None
        return DirectoryUser(uid, first(self.settings.username_attr) or first("cn"))

    def _find(self, conn: ldap3.Connection, username: str) -> DirectoryUser | None:
        s = self.settings
        flt = f"(&{s.user_filter}({s.uid_attr}={escape_filter_chars(username)}))"
        try:
            ok = conn.search(s.user_base, flt, ldap3.SUBTREE, attributes=self._attrs(), size_limit=2)
        except lx.LDAPException as e:
            raise LdapUnavailable(f"LDAP search for {username!r} failed: {e}") from None
        if not ok and conn.result.get("description") not in ("success", "noSuchObject", "sizeLimitExceeded"):
            raise LdapUnavailable(f"LDAP search for {username!r} failed: {conn.result.get('description')} "
                                  f"{conn.result.get('message') or ''}".strip())
        found = [u for u in map(self._entry_user, (e for e in conn.response or [] if e.get("type") == "searchResEntry"))
                 if u is not None and u.username == username]
        if len(found) != 1:
            if len(found) > 1:
                log.warning("LDAP: %d entries for %r under %s; refusing the login", len(found), username, s.user_base)
            return None
        return found[0]

    def user_dn(self, username: str) -> str:
        return self.settings.user_bind.replace("{username}", escape_rdn(username))

    def login(self, username: str, password: str, *, want_entry: bool) -> DirectoryUser | None | bool:
        """Bind as ``username``: False for a wrong password; True when ``want_entry`` is false;
        else the user's entry under ``user-base`` matching ``user-filter`` (None if there is none).

        An empty password is always wrong: LDAP treats a bind without password as an
        anonymous bind, which "succeeds" for every name.
        """
        if not password:
            return False
        conn = self._open(self.user_dn(username), password)
        try:
            if not self._bind(conn):
                return False
            if not want_entry:
                return True
            if self.search_password:
                search = self._search_connection()
                try:
                    return self._find(search, username)
                finally:
                    _close(search)
            return self._find(conn, username)  # read with the user's own rights
        finally:
            _close(conn)

    def list_users(self) -> tuple[dict[str, str | None], int]:
        """Every user under ``user-base`` matching ``user-filter`` (uid -> full name), with the
        number of entries lacking ``uid-attr``; paged, so a server size limit does not cut it short."""
        s = self.settings
        conn = self._search_connection()
        users: dict[str, str | None] = {}
        without_uid = 0
        try:
            for entry in conn.extend.standard.paged_search(s.user_base, s.user_filter, ldap3.SUBTREE,
                                                           attributes=self._attrs(), paged_size=500,
                                                           generator=True):
                if entry.get("type") != "searchResEntry":
                    continue
                u = self._entry_user(entry)
                if u is None:
                    without_uid += 1
                else:
                    users[u.username] = u.name
            result = dict(conn.result or {})
        except lx.LDAPException as e:
            raise LdapUnavailable(f"LDAP search under {s.user_base!r} failed: {e}") from None
        finally:
            _close(conn)
        if result.get("description") not in (None, "success"):
            raise LdapUnavailable(f"LDAP search under {s.user_base!r} failed: {result.get('description')} "
                                  f"{result.get('message') or ''}".strip())
        return users, without_uid


def _close(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except (lx.LDAPException, OSError):
        pass  # a broken connection: nothing left to close politely


def _reason(e: Exception) -> str:
    if isinstance(e, lx.LDAPCertificateError) or "doesn't match any name" in str(e):
        return "the server certificate is not for this host name (check auth.ldap.url)"
    text = str(e)
    return text if len(text) <= 300 else text[:300] + " ..."


def directory_users(directory: LdapDirectory) -> dict[str, str | None]:
    """The users of the directory (blocking), warning about entries without ``uid-attr``."""
    found, without_uid = directory.list_users()
    if without_uid:
        log.warning("LDAP sync: %d entries without the attribute %r skipped (auth.ldap.uid-attr)",
                    without_uid, directory.settings.uid_attr)
    return found


def sync_users(directory: LdapDirectory, db_write, progress=None):
    """One directory sync (blocking): read the directory, then apply it in one transaction.

    ``db_write(fn, *args)`` runs ``fn(conn, *args)`` in a write transaction (the CLI's
    :func:`cc.db.transaction` on its connection).  Returns a :class:`cc.db._users.DirectorySync`.
    ``progress(done, total)`` follows the users being applied (the CLI's progress bar).
    """
    from cc.db._users import sync_directory_users

    result = db_write(sync_directory_users, directory_users(directory), directory.settings.sync_del_old_users,
                      progress)
    if result.skipped:
        log.warning("LDAP sync: user names not usable here skipped: %s", ", ".join(result.skipped))
    return result
