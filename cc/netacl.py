"""Client addresses: ``main.api-allowed-ips`` (who may use the API) and ``main.trusted-proxies``
(whose ``X-Forwarded-*`` / ``Forwarded`` headers we believe).

Behind a reverse proxy every request comes from the proxy's address, so login throttling,
the API allow list and the ``Secure`` cookie decision need the address and scheme the
proxy saw.  Those headers are trivially forged by anyone else, so they count only when the
TCP peer is a configured proxy, and then only up to the first hop that is not one: the
rightmost untrusted address of ``X-Forwarded-For`` is the client (every hop appends, so
anything left of it may have been written by the client itself).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """An address as peers and headers write it (``::ffff:`` mapped, ``[v6]``, ``v4:port``, zone) or None."""
    s = text.strip().strip('"')
    if s.startswith("["):  # [v6] or [v6]:port
        s = s[1:].split("]", 1)[0]
    elif s.count(":") == 1:  # v4:port
        s = s.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(s.split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def parse_networks(entries: Iterable[str], key: str) -> list[Network]:
    """Addresses or CIDR networks; a bad entry is an error naming ``key``."""
    out = []
    for e in entries:
        if not isinstance(e, str):
            raise ValueError(f"{key}: {e!r} is not a string")
        try:
            net = ipaddress.ip_network(e.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{key}: {e!r} is not an address or network") from None
        if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped and net.prefixlen >= 96:
            net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
        out.append(net)
    return out


class IPAllowList:
    """``main.api-allowed-ips``: entries are ``*``, single addresses or CIDR networks (``10.0.0.0/8``)."""

    def __init__(self, entries: list[str]):
        self.any = not entries or "*" in entries
        self.networks = parse_networks([e for e in entries if e != "*"], "main.api-allowed-ips")

    def allows(self, peer: str) -> bool:
        if self.any:
            return True
        addr = parse_address(peer)
        return addr is not None and any(addr in n for n in self.networks)


@dataclass(frozen=True)
class ClientInfo:
    """What a request's client is, after believing trusted proxies."""

    ip: str          # the client's address ("" if unknown)
    scheme: str      # "https" or "http", as the client used it
    host: str        # Host the client addressed (for same-origin checks), lower case
    via_proxy: bool  # the TCP peer is a trusted proxy


def _header_values(headers: Mapping[str, str] | object, name: str) -> list[str]:
    """Every comma-separated item of every instance of a header, in order."""
    getlist = getattr(headers, "getlist", None) or getattr(headers, "get_all", None)
    raw = getlist(name) if getlist else ([headers.get(name)] if headers.get(name) else [])  # type: ignore[union-attr]
    return [item.strip() for value in raw or () for item in value.split(",") if item.strip()]


def _forwarded_pairs(headers) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded: for=1.2.3.4;proto=https;host=x, for=...`` as one dict per hop."""
    hops = []
    for element in _header_values(headers, "forwarded"):
        hop = {}
        for pair in element.split(";"):
            k, sep, v = pair.partition("=")
            if sep:
                hop[k.strip().lower()] = v.strip().strip('"')
        hops.append(hop)
    return hops


class ProxyTrust:
    """``main.trusted-proxies``: the reverse proxies whose forwarding headers are believed.

    Headers used: ``X-Forwarded-For`` (else RFC 7239 ``Forwarded``) for the client address,
    ``X-Forwarded-Proto`` / ``Forwarded: proto=`` for the scheme and ``X-Forwarded-Host`` /
    ``Forwarded: host=`` for the host; of proto and host the rightmost value counts (the one
    the nearest trusted proxy set).  With no trusted proxies every header is ignored.
    """

    def __init__(self, entries: list[str] | None):
        self.networks = parse_networks(entries or [], "main.trusted-proxies")

    def trusts(self, addr: Address | None) -> bool:
        return addr is not None and any(addr in n for n in self.networks)

    def client(self, peer: str, scheme: str, host: str, headers) -> ClientInfo:
        peer_addr = parse_address(peer) if peer else None
        direct = ClientInfo(str(peer_addr) if peer_addr else peer, scheme, host.lower(), False)
        if not self.networks or not self.trusts(peer_addr):
            return direct
        forwarded = _forwarded_pairs(headers)
        chain = _header_values(headers, "x-forwarded-for")
        if not chain and forwarded:
            chain = [hop.get("for", "") for hop in forwarded]
        ip = direct.ip
        for hop in reversed(chain):  # the nearest hop first
            addr = parse_address(hop)
            if addr is None:  # garbage ("unknown", obfuscated): stop believing here
                break
            ip = str(addr)
            if not self.trusts(addr):
                break
        protos = _header_values(headers, "x-forwarded-proto") or [h["proto"] for h in forwarded if "proto" in h]
        hosts = _header_values(headers, "x-forwarded-host") or [h["host"] for h in forwarded if "host" in h]
        proto = protos[-1].lower() if protos else scheme
        return ClientInfo(ip, proto if proto in ("http", "https") else scheme,
                          (hosts[-1] if hosts else host).lower(), True)
