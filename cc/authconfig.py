"""The site login settings of ``config.json``: ``auth.ldap``, ``auth.oidc`` and ``auth.jwts``.

cc-backend's key names and meanings (its ``internal/auth/schema.go``), plus
``auth.ldap.ca-file`` and ``auth.ldap.start-tls`` (ours: TLS to the directory with a
site CA).  Parsed once by :func:`cc.config.load_config`, so a wrong value stops the
supervisor at start with a message naming the key, not the first login.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class AuthConfigError(ValueError):
    """A login setting has a wrong value (the message names the key)."""


class LoginSourceUnavailable(Exception):
    """A configured login source (the LDAP directory) cannot answer now; the message says why.

    Here rather than beside the LDAP client so that code catching it need not import ldap3.
    """


@dataclass(frozen=True)
class LdapSettings:
    url: str
    user_base: str
    search_dn: str
    user_bind: str
    user_filter: str
    username_attr: str = "gecos"
    uid_attr: str = "uid"
    sync_interval: float = 0.0  # seconds; 0 = no periodic sync
    sync_del_old_users: bool = False
    sync_user_on_login: bool = False
    update_user_on_login: bool = False
    ca_file: Path | None = None
    start_tls: bool = False


@dataclass(frozen=True)
class OidcSettings:
    provider: str
    sync_user_on_login: bool = False
    update_user_on_login: bool = False


@dataclass(frozen=True)
class JwtLoginSettings:
    cookie_name: str | None = None
    validate_user: bool = False
    trusted_issuer: str | None = None
    sync_user_on_login: bool = False
    update_user_on_login: bool = False


@dataclass(frozen=True)
class AuthSettings:
    ldap: LdapSettings | None = None
    oidc: OidcSettings | None = None
    jwts: JwtLoginSettings = field(default_factory=JwtLoginSettings)


def _object(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise AuthConfigError(f"config key '{where}' must be an object, got {type(d).__name__}")
    return d


def _bool(d: dict[str, Any], key: str, where: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise AuthConfigError(f"config key '{where}.{key}' must be true or false, got {v!r}")
    return v


def _str(d: dict[str, Any], key: str, where: str, *, required: bool = False, default: str | None = None) -> str | None:
    v = d.get(key)
    if v is None or v == "":
        if required:
            raise AuthConfigError(f"config key '{where}.{key}' is required")
        return default
    if not isinstance(v, str):
        raise AuthConfigError(f"config key '{where}.{key}' must be a string, got {v!r}")
    return v


def _ldap(d: dict[str, Any], base: Path, parse_duration) -> LdapSettings:
    w = "auth.ldap"
    url = _str(d, "url", w, required=True)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("ldap", "ldaps") or not urlsplit(url).hostname:
        raise AuthConfigError(f"config key '{w}.url' must be ldap://HOST[:PORT] or ldaps://HOST[:PORT], got {url!r}")
    user_bind = _str(d, "user-bind", w, required=True)
    if "{username}" not in user_bind:
        raise AuthConfigError(f"config key '{w}.user-bind' must contain the placeholder {{username}}, "
                              f"e.g. 'uid={{username}},ou=people,dc=example,dc=com'; got {user_bind!r}")
    user_filter = _str(d, "user-filter", w, required=True)
    if not (user_filter.startswith("(") and user_filter.endswith(")")):
        raise AuthConfigError(f"config key '{w}.user-filter' must be an LDAP filter in parentheses, "
                              f"e.g. '(objectclass=posixAccount)'; got {user_filter!r}")
    interval = d.get("sync-interval") or 0
    sync_interval = parse_duration(interval, what=f"{w}.sync-interval")  # raises cc.config.ConfigError
    if sync_interval < 0:
        raise AuthConfigError(f"config key '{w}.sync-interval' must not be negative")
    ca = _str(d, "ca-file", w)
    ca_file = None
    if ca is not None:
        ca_file = Path(ca) if Path(ca).is_absolute() else (base / ca).resolve()
        if not ca_file.is_file():
            raise AuthConfigError(f"config key '{w}.ca-file': {ca_file} does not exist")
    start_tls = _bool(d, "start-tls", w)
    if start_tls and scheme == "ldaps":
        raise AuthConfigError(f"config key '{w}.start-tls' is for ldap:// URLs; ldaps:// is TLS already")
    return LdapSettings(
        url=url, user_base=_str(d, "user-base", w, required=True), search_dn=_str(d, "search-dn", w, required=True),
        user_bind=user_bind, user_filter=user_filter,
        username_attr=_str(d, "username-attr", w, default="gecos"), uid_attr=_str(d, "uid-attr", w, default="uid"),
        sync_interval=sync_interval, sync_del_old_users=_bool(d, "sync-del-old-users", w),
        sync_user_on_login=_bool(d, "sync-user-on-login", w), update_user_on_login=_bool(d, "update-user-on-login", w),
        ca_file=ca_file, start_tls=start_tls)


def _oidc(d: dict[str, Any]) -> OidcSettings:
    w = "auth.oidc"
    provider = _str(d, "provider", w, required=True)
    parts = urlsplit(provider)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AuthConfigError(f"config key '{w}.provider' must be the issuer URL (https://...), got {provider!r}")
    return OidcSettings(provider=provider.rstrip("/"), sync_user_on_login=_bool(d, "sync-user-on-login", w),
                        update_user_on_login=_bool(d, "update-user-on-login", w))


def _jwts(d: dict[str, Any], where: str) -> JwtLoginSettings:
    return JwtLoginSettings(
        cookie_name=_str(d, "cookie-name", where), validate_user=_bool(d, "validate-user", where),
        trusted_issuer=_str(d, "trusted-issuer", where),
        sync_user_on_login=_bool(d, "sync-user-on-login", where),
        update_user_on_login=_bool(d, "update-user-on-login", where))


def parse_auth(auth: dict[str, Any], jwts: dict[str, Any], jwts_where: str, base: Path,
               parse_duration) -> AuthSettings:
    """``auth`` is the ``auth`` object of config.json, ``jwts`` the JWT options (``auth.jwts``,
    or cc-backend's older ``main.jwts``); relative paths are resolved against ``base``."""
    ldap = _ldap(_object(auth["ldap"], "auth.ldap"), base, parse_duration) if auth.get("ldap") is not None else None
    oidc = _oidc(_object(auth["oidc"], "auth.oidc")) if auth.get("oidc") is not None else None
    return AuthSettings(ldap=ldap, oidc=oidc, jwts=_jwts(_object(jwts, jwts_where), jwts_where))
