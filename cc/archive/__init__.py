"""The job archive (ClusterCockpit archive version 3) and the JSON schemas of its files.

* :func:`validate` checks ``meta.json`` ("job-meta"), ``data.json`` ("job-data"), the
  start_job payload ("job-start") and ``cluster.json`` ("cluster") against
  ``schemas/json``; :class:`SchemaError` names the offending field
  (``resources[0].hostname: is required``).
* :class:`JobArchive` reads and atomically writes jobs, with an LRU cache of loaded
  documents, over a file tree, a SQLite file or an S3 bucket (:func:`open_archive`).
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
from cc.archivecfg import ArchiveSettings, S3Settings

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
    "open_archive",
    "validate",
]


def open_archive(settings: ArchiveSettings, **kwargs) -> JobArchive:
    """The job archive a configuration names (``archive.kind`` file, sqlite or s3)."""
    from cc.archive._storage import FileStore, SqliteStore

    if settings.kind == "sqlite":
        assert settings.db_path is not None
        return JobArchive(SqliteStore(settings.db_path), **kwargs)
    if settings.kind == "s3":
        return JobArchive(s3_store(settings.s3), **kwargs)
    return JobArchive(FileStore(settings.path), **kwargs)


def s3_store(s3: S3Settings | None):
    from cc.archive._storage import S3Store

    assert s3 is not None
    return S3Store(endpoint=s3.endpoint, bucket=s3.bucket, access_key=s3.access_key, secret_key=s3.secret_key,
                   region=s3.region, use_path_style=s3.use_path_style)
