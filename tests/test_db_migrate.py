"""Upgrading a job database shaped like cc-backend's schema version 10 (built here, with rows)."""

from __future__ import annotations

import sqlite3

import pytest

from cc.db import SCHEMA_VERSION, MigrationError, check_version, connect, migrate
from cc.db import _jobs as jobs
from cc.db import _tags as tags
from cc.db import _users as users

# The tables of a cc-backend database after its migration 10 (job and job_cache with the
# 'shared' column, renamed hpc_user table, tag scopes, node tables), written for this test.
V10_TABLES = """
CREATE TABLE hpc_user (username varchar(255) PRIMARY KEY NOT NULL, password varchar(255) DEFAULT NULL,
    ldap tinyint NOT NULL DEFAULT 0, name varchar(255) DEFAULT NULL, roles varchar(255) NOT NULL DEFAULT "[]",
    email varchar(255) DEFAULT NULL, projects varchar(255) NOT NULL DEFAULT "[]");
CREATE TABLE configuration (username varchar(255), confkey varchar(255), value text,
    PRIMARY KEY (username, confkey),
    FOREIGN KEY (username) REFERENCES hpc_user (username) ON DELETE CASCADE ON UPDATE NO ACTION);
CREATE TABLE tag (id INTEGER PRIMARY KEY, tag_type VARCHAR(255) NOT NULL, tag_name VARCHAR(255) NOT NULL,
    insert_ts TEXT DEFAULT CURRENT_TIMESTAMP, tag_scope TEXT NOT NULL DEFAULT 'global', UNIQUE (tag_type, tag_name));
CREATE TABLE jobtag (job_id INTEGER, tag_id INTEGER, insert_ts TEXT DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (job_id, tag_id), FOREIGN KEY (job_id) REFERENCES job (id) ON DELETE CASCADE,
    FOREIGN KEY (tag_id) REFERENCES tag (id) ON DELETE CASCADE);
CREATE TABLE node (id INTEGER PRIMARY KEY, hostname VARCHAR(255) NOT NULL, cluster VARCHAR(255) NOT NULL,
    subcluster VARCHAR(255) NOT NULL, meta_data TEXT, UNIQUE (hostname, cluster));
CREATE TABLE node_state (id INTEGER PRIMARY KEY, time_stamp INTEGER NOT NULL,
    jobs_running INTEGER DEFAULT 0 NOT NULL, cpus_allocated INTEGER DEFAULT 0 NOT NULL,
    memory_allocated INTEGER DEFAULT 0 NOT NULL, gpus_allocated INTEGER DEFAULT 0 NOT NULL,
    node_state VARCHAR(255) NOT NULL, health_state VARCHAR(255) NOT NULL, health_metrics TEXT,
    node_id INTEGER, FOREIGN KEY (node_id) REFERENCES node (id));
CREATE TABLE schema_migrations (version uint64, dirty bool);
CREATE INDEX jobs_cluster_user ON job (cluster, hpc_user);
CREATE INDEX jobs_jobstate_starttime_duration ON job (job_state, start_time, duration);
CREATE INDEX tags_jobid ON jobtag (job_id);
"""

JOB_TABLE = """
CREATE TABLE {name} (id INTEGER PRIMARY KEY, job_id BIGINT NOT NULL, cluster TEXT NOT NULL, subcluster TEXT NOT NULL,
    submit_time BIGINT NOT NULL DEFAULT 0, start_time BIGINT NOT NULL DEFAULT 0, hpc_user TEXT NOT NULL,
    project TEXT NOT NULL, cluster_partition TEXT, array_job_id BIGINT, duration INT NOT NULL, walltime INT NOT NULL,
    job_state TEXT NOT NULL, meta_data TEXT, resources TEXT NOT NULL, num_nodes INT NOT NULL, num_hwthreads INT,
    num_acc INT, smt INT NOT NULL DEFAULT 1, shared TEXT NOT NULL, monitoring_status TINYINT NOT NULL DEFAULT 1,
    energy REAL NOT NULL DEFAULT 0.0, energy_footprint TEXT DEFAULT NULL, footprint TEXT DEFAULT NULL,
    UNIQUE (job_id, cluster, start_time));
"""

COLS = ("job_id, cluster, subcluster, submit_time, start_time, hpc_user, project, cluster_partition, array_job_id, "
        "duration, walltime, job_state, meta_data, resources, num_nodes, num_hwthreads, num_acc, smt, shared, "
        "monitoring_status, energy, energy_footprint, footprint")


def build_v10(path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(JOB_TABLE.format(name="job") + JOB_TABLE.format(name="job_cache") + V10_TABLES)
    ins = f"INSERT INTO {{}} ({COLS}) VALUES ({', '.join('?' * 23)})"
    conn.execute(ins.format("job"), (1001, "fritz", "main", 1600000000, 1600000100, "alice", "p1", "main", None,
                                     3600, 7200, "completed", '{"jobName":"a"}', '[{"hostname":"f0101"}]', 1, 72, None,
                                     1, "none", 3, 1.5, '{"acc_power":1.5}', '{"flops_any_avg":12.5}'))
    conn.execute(ins.format("job"), (1002, "fritz", "main", 0, 1600000200, "bob", "p2", None, None, 60, 0,
                                     "failed", None, '[{"hostname":"f0102","hwthreads":[0,1]}]', 1, 2, None, 1,
                                     "multi_user", 3, 0.0, None, None))
    conn.execute(ins.format("job_cache"), (1003, "fritz", "main", 0, 1600000300, "carol", "p1", "main", None, 0, 600,
                                           "running", None, '[{"hostname":"f0103"}]', 1, 72, None, 1, "none", 1,
                                           0.0, None, None))
    conn.execute("INSERT INTO hpc_user (username, roles, projects) VALUES ('alice', '[\"user\"]', '[]')")
    conn.execute("INSERT INTO configuration VALUES ('alice', 'plot_list_jobsPerPage', '50')")
    conn.execute("INSERT INTO tag (id, tag_type, tag_name, tag_scope) VALUES (7, 'app', 'vasp', 'global')")
    conn.execute("INSERT INTO jobtag (job_id, tag_id) VALUES (1, 7)")
    conn.execute("INSERT INTO node (hostname, cluster, subcluster) VALUES ('f0101', 'fritz', 'main')")
    conn.execute("INSERT INTO schema_migrations VALUES (10, 0)")
    conn.commit()
    conn.close()


def test_v10_database_is_upgraded_in_place_with_a_backup(tmp_path):
    path = tmp_path / "job.db"
    build_v10(path)
    assert check_version(path) == 10
    res = migrate(path)
    assert (res.from_version, res.to_version) == (10, SCHEMA_VERSION) == (10, 13)
    assert res.backup is not None and res.backup.exists() and res.backup.parent == tmp_path
    old = sqlite3.connect(res.backup)  # the copy is the untouched version-10 database
    assert old.execute("SELECT version FROM schema_migrations").fetchone()[0] == 10
    assert old.execute("SELECT count(*) FROM job").fetchone()[0] == 2
    assert old.execute("SELECT count(*) FROM job_cache").fetchone()[0] == 1
    old.close()
    assert check_version(path) == 13
    conn = connect(path)
    try:
        a = jobs.find_jobs(conn, 1001, "fritz")[0]
        assert (a.user, a.state, a.duration, a.energy, a.footprint, a.meta_data) == \
               ("alice", "completed", 3600, 1.5, {"flops_any_avg": 12.5}, {"jobName": "a"})
        b = jobs.find_jobs(conn, 1002, "fritz")[0]
        assert b.shared == "multi_user" and b.resources == [{"hostname": "f0102", "hwthreads": [0, 1]}]
        running = jobs.find_jobs(conn, 1003, "fritz")  # moved over from cc-backend's job_cache
        assert len(running) == 1 and running[0].state == "running"
        assert conn.execute("SELECT count(*) FROM job_cache").fetchone()[0] == 0
        assert [t.name for t in tags.job_tags(conn, a.id, None)] == ["vasp"]
        assert users.get_user(conn, "alice").roles == ["user"]
        assert conn.execute("SELECT value FROM configuration").fetchone()[0] == "50"
        assert jobs.archive_queue(conn) == [] and jobs.queue_length(conn) == 0  # the version-12 queue works
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
        assert {"job_archive_status", "jobs_archive_queue", "jobs_cluster_user", "web_session"} <= names
    finally:
        conn.close()
    assert migrate(path).backup is None  # already current: nothing to do


def test_dirty_or_unknown_databases_are_refused(tmp_path):
    path = tmp_path / "job.db"
    build_v10(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_migrations SET dirty = 1")
    conn.commit()
    conn.close()
    with pytest.raises(MigrationError, match="dirty"):
        migrate(path)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.executescript(JOB_TABLE.format(name="job"))
    conn.close()
    with pytest.raises(MigrationError, match="no schema_migrations"):
        migrate(other)


def test_version_12_database_gets_the_session_table(tmp_path):
    """A database made by the previous release (our version 12) is brought to 13 without touching its rows."""
    path = tmp_path / "job.db"
    build_v10(path)
    migrate(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE web_session")
    conn.execute("UPDATE schema_migrations SET version = 12")
    conn.commit()
    conn.close()
    res = migrate(path)
    assert (res.from_version, res.to_version) == (12, 13) and res.backup is not None
    conn = connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM job").fetchone()[0] == 3
        conn.execute("INSERT INTO web_session (id, username, created) VALUES ('h', 'alice', 1)")
        users.delete_user(conn, "alice")  # sessions go with their user
        assert conn.execute("SELECT count(*) FROM web_session").fetchone()[0] == 0
    finally:
        conn.close()
