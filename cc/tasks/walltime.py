"""``main.stop-jobs-exceeding-walltime``: running jobs past walltime + grace are stopped as ``timeout``.

cc-backend marks such jobs failed and never archives them; here they are stopped as
``timeout`` with duration = walltime (the scheduler ends a job at its walltime, so its
metrics end there) and join the archive queue like any stopped job (unless monitoring is off for them).  This covers jobs
whose stop never arrived (an adapter down, a lost event).
"""

from __future__ import annotations

import sqlite3
import time


def stop_jobs_exceeding_walltime(conn: sqlite3.Connection, grace: int, now: float | None = None) -> list[int]:
    """Stop every running job with a walltime that ended more than ``grace`` seconds ago; their ids."""
    now = int(time.time() if now is None else now)
    rows = conn.execute("UPDATE job SET job_state = 'timeout', duration = walltime "
                        "WHERE job_state = 'running' AND walltime > 0 AND start_time + walltime + ? < ? "
                        "RETURNING id", (grace, now)).fetchall()
    return sorted(r[0] for r in rows)
