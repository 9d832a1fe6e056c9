"""``cc-agent``: the node agent (a Python take on cc-metric-collector).

Collectors read /proc and /sys (and NVML when present) once per interval, the router
renames, drops, tags and rescales messages as cc-metric-collector's ``process_messages``
does, and sinks deliver ClusterCockpit line protocol over HTTP (``/api/write``), over one
persistent WebSocket (``/api/ws`` of the ingest workers, acknowledged batches), or to
stdout/a file.

Layout: :mod:`.message` (the message and its line-protocol form), :mod:`.expr` (the
condition language), :mod:`.units` (unit names and prefixes), :mod:`.router`,
:mod:`.collectors`, :mod:`.sinks`, :mod:`.config`, :mod:`.agent` (the loop), :mod:`.cli`.
"""
