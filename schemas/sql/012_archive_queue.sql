-- Version 12 (ours): the archiver's durable work queue.
-- A stopped job with monitoring_status = 1 (running or archiving) still waits for the
-- archiver; the partial index keeps finding those cheap however large `job` grows.
-- job_archive_status remembers failures so that retries back off and errors are visible.

CREATE INDEX IF NOT EXISTS jobs_archive_queue ON job (id)
    WHERE monitoring_status = 1 AND job_state <> 'running';

CREATE TABLE IF NOT EXISTS job_archive_status (
    job_id       INTEGER PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    last_attempt BIGINT,
    next_attempt BIGINT NOT NULL DEFAULT 0
);
