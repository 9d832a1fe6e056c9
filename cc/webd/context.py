"""Everything a request handler of the web process may need, built once at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from cc.clusters import Cluster, MetricCatalog
from cc.config import Config
from cc.db import Database
from cc.jwtauth import TokenVerifier
from cc.metricsource import MetricSources
from cc.netacl import IPAllowList, ProxyTrust
from cc.shm import Store


@dataclass
class WebContext:
    cfg: Config
    store: Store
    clusters: dict[str, Cluster]
    catalog: MetricCatalog
    verifier: TokenVerifier | None
    allow: IPAllowList
    ingest_url: str
    slot: int
    query_limiter: trio.CapacityLimiter
    db: Database
    archive: Any
    login_limiter: Any
    sources: MetricSources  # where metric data of each cluster/subcluster comes from (metric-store-external)
    logins: Any = None  # cc.webd.sitelogin.SiteLogins: LDAP, OpenID Connect, JWT cross-login
    proxies: ProxyTrust = field(default_factory=lambda: ProxyTrust([]))  # main.trusted-proxies
    tls_cert_pem: bytes | None = None  # our certificate (pinned for forwarding to TLS ingest workers)

    @property
    def store_socket(self):
        return self.cfg.run_dir / "store.sock"
