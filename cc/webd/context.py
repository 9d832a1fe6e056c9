"""Everything a request handler of the web process may need, built once at start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from cc.clusters import Cluster, MetricCatalog
from cc.config import Config
from cc.db import Database
from cc.jwtauth import TokenVerifier
from cc.metricsource import MetricSources
from cc.netacl import IPAllowList
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

    @property
    def store_socket(self):
        return self.cfg.run_dir / "store.sock"
