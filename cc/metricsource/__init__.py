"""Where the web process and the archiver read metric data, chosen per cluster and subcluster.

cc-backend's ``metric-store-external`` routes a cluster (``"fritz"``), a subcluster
(``"fritz-spr1tb"``) or everything else (``"*"``) to a cc-metric-store-compatible
``/api/query``: another installation of ours or a real cc-metric-store.  What no entry
claims comes from the built-in store (shared memory).  Every reader of metric data in
the web process and the archiver goes through a :class:`MetricSource`:

* :class:`BuiltinSource` - the query engine over this installation's shared memory;
* :class:`ExternalSource` - the same request as JSON to an external store (httpx);
* :class:`MetricSources` - the routing (subcluster, then cluster, then ``*``, then built-in);
  :func:`gather` asks several sources at once;
* :class:`MetricSourceError` - an external store failed (down, 401, timeout, bad answer):
  the message names its URL.
"""

from cc.metricsource._base import MetricSource, MetricSourceError
from cc.metricsource._builtin import BuiltinSource, health_of_host
from cc.metricsource._external import ExternalSource
from cc.metricsource._router import MetricSources, gather

__all__ = [
    "BuiltinSource",
    "ExternalSource",
    "MetricSource",
    "MetricSourceError",
    "MetricSources",
    "gather",
    "health_of_host",
]
