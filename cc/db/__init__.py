"""The job database (SQLite): schema migrations, jobs, tags, users.

Repository functions take a ``sqlite3.Connection`` as first argument and block; Trio
code calls them through :class:`Database` (``await db.read(fn, ...)``,
``await db.write(fn, ...)``), which runs them in worker threads.
"""

from cc.db._conn import Database, connect, transaction
from cc.db._filters import INT64_MAX, INT64_MIN, FilterError, Viewer, sql_int
from cc.db._migrate import SCHEMA_VERSION, MigrationError, MigrationResult, check_version, migrate
from cc.db._model import (
    JOB_STATES,
    MONITORING_ARCHIVING_FAILED,
    MONITORING_ARCHIVING_SUCCESSFUL,
    MONITORING_DISABLED,
    MONITORING_RUNNING_OR_ARCHIVING,
    ROLES,
    SHARED,
    Job,
    Tag,
    job_from_json,
)
from cc.db._tags import TagPermissionError
from cc.db._users import User, UserError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "JOB_STATES",
    "MONITORING_ARCHIVING_FAILED",
    "MONITORING_ARCHIVING_SUCCESSFUL",
    "MONITORING_DISABLED",
    "MONITORING_RUNNING_OR_ARCHIVING",
    "ROLES",
    "SCHEMA_VERSION",
    "SHARED",
    "Database",
    "FilterError",
    "Job",
    "MigrationError",
    "MigrationResult",
    "Tag",
    "TagPermissionError",
    "User",
    "UserError",
    "Viewer",
    "check_version",
    "connect",
    "job_from_json",
    "migrate",
    "sql_int",
    "transaction",
]
