-- Down from version 12 to 11 (cc-supervise revert-db): the archiver's retry bookkeeping goes.
-- Running jobs stay in `job` (cc-backend 11 also finds them there); its job_cache stays empty.
DROP TABLE IF EXISTS job_archive_status;
DROP INDEX IF EXISTS jobs_archive_queue;
