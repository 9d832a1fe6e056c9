"""The metric query engine behind ``/api/query`` (cc-metric-store's JSON shape), served from shared memory.

* :func:`parse_request` validates a decoded request body into a :class:`QueryRequest`
  (raising :class:`QueryError` with the offending field named).
* :func:`execute` answers it from a :class:`cc.shm.Store`: scope selection and derivation
  through the cluster topology, aggregation, statistics, padding and resampling.
* :func:`lttb` / :func:`resample` are cc-lib's downsampling, vectorised over rows.
"""

from cc.query._engine import execute
from cc.query._request import MAX_POINTS_PER_SERIES, Query, QueryError, QueryRequest, parse_request
from cc.query._resample import lttb, resample

__all__ = [
    "MAX_POINTS_PER_SERIES",
    "Query",
    "QueryError",
    "QueryRequest",
    "execute",
    "lttb",
    "parse_request",
    "resample",
]
