"""Periodic maintenance tasks (cc-backend's ``internal/taskmanager``), run by the archiver process.

The archiver process owns the work on finished jobs and reads the metric store, so the
tasks that touch running jobs and old rows live there too: the duration worker, stopping
jobs past their walltime (they join the archive queue), the footprint worker for running
jobs and node-state retention.  :class:`TaskRunner` runs each on its interval and keeps
what happened (:meth:`TaskRunner.state`), which ``cc-supervise status`` shows.
"""

from cc.tasks._runner import TaskRunner, TaskState
from cc.tasks._settings import NodeStateRetention, TaskSettings, parse_tasks

__all__ = ["NodeStateRetention", "TaskRunner", "TaskSettings", "TaskState", "parse_tasks"]
