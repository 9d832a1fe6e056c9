"""cc-backend's GraphQL API (``POST /query``) on graphql-core, executed under Trio.

``schema`` builds the executable schema from ``schemas/graphql/schema.graphqls``; the
resolver modules (clusters, jobs, metrics, stats, nodes, mutations) register their
field resolvers; ``endpoint`` is the Quart blueprint.
"""

from cc.webd.graphql.endpoint import bp

__all__ = ["bp"]
