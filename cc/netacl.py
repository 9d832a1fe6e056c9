"""``main.api-allowed-ips``: which client addresses may use the API."""

from __future__ import annotations

import ipaddress


class IPAllowList:
    """Entries are ``*``, single addresses or CIDR networks (``10.0.0.0/8``)."""

    def __init__(self, entries: list[str]):
        self.any = not entries or "*" in entries
        self.networks = []
        for e in entries:
            if e == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(e.strip(), strict=False))
            except ValueError:
                raise ValueError(f"main.api-allowed-ips: {e!r} is not an address or network") from None

    def allows(self, peer: str) -> bool:
        if self.any:
            return True
        try:
            addr = ipaddress.ip_address(peer.split("%")[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in n for n in self.networks)
