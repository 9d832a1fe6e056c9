"""The job archive (ClusterCockpit archive version 3) and the JSON schemas of its files.

* :func:`validate` checks ``meta.json`` ("job-meta"), ``data.json`` ("job-data"), the
  start_job payload ("job-start") and ``cluster.json`` ("cluster") against
  ``schemas/json``; :class:`SchemaError` names the offending field
  (``resources[0].hostname: is required``).
* :class:`JobArchive` reads and atomically writes job directories, with an LRU cache of
  loaded metric data.
* :func:`job_meta` builds a job's ``meta.json`` from the database record.
* :mod:`cc.archive.dbsync` rebuilds the job tables from the archive (``init-db``) and
  imports finished jobs (``import-job``).
"""

from cc.archive._jobarchive import (
    ARCHIVE_VERSION,
    GZIP_THRESHOLD,
    ArchiveError,
    ArchivePathError,
    JobArchive,
    check_cluster_name,
    job_meta,
)
from cc.archive._schema import SchemaError, field_path, is_valid, validate

__all__ = [
    "ARCHIVE_VERSION",
    "GZIP_THRESHOLD",
    "ArchiveError",
    "ArchivePathError",
    "JobArchive",
    "SchemaError",
    "check_cluster_name",
    "field_path",
    "is_valid",
    "job_meta",
    "validate",
]
