-- Job database at parity with cc-backend's schema version 11 (fresh databases start here).
-- Column names, types and CHECK constraints match cc-backend so that its tools and ours
-- can read the same file; the index set is ours (see 011_indexes.sql).

CREATE TABLE IF NOT EXISTS hpc_user (
    username  TEXT PRIMARY KEY NOT NULL,
    password  TEXT DEFAULT NULL,         -- bcrypt hash; NULL for accounts that cannot log in
    ldap      TINYINT NOT NULL DEFAULT 0, -- auth source: 0 local, 1 LDAP, 2 token
    name      TEXT DEFAULT NULL,
    roles     TEXT NOT NULL DEFAULT '[]', -- JSON array: user, manager, support, admin, api
    email     TEXT DEFAULT NULL,
    projects  TEXT NOT NULL DEFAULT '[]'  -- JSON array: projects a manager oversees
);

CREATE TABLE IF NOT EXISTS configuration (
    username TEXT,
    confkey  TEXT,
    value    TEXT,
    PRIMARY KEY (username, confkey),
    FOREIGN KEY (username) REFERENCES hpc_user (username) ON DELETE CASCADE ON UPDATE NO ACTION
);

CREATE TABLE IF NOT EXISTS job (
    id                INTEGER PRIMARY KEY,
    job_id            BIGINT NOT NULL,
    cluster           TEXT NOT NULL,
    subcluster        TEXT NOT NULL,
    submit_time       BIGINT NOT NULL DEFAULT 0,
    start_time        BIGINT NOT NULL DEFAULT 0,
    hpc_user          TEXT NOT NULL,
    project           TEXT NOT NULL,
    cluster_partition TEXT,
    array_job_id      BIGINT,
    duration          INT NOT NULL,
    walltime          INT NOT NULL,
    job_state         TEXT NOT NULL CHECK (job_state IN (
        'boot_fail', 'cancelled', 'completed', 'deadline', 'failed', 'node_fail',
        'out_of_memory', 'pending', 'preempted', 'running', 'suspended', 'timeout')),
    meta_data         TEXT,            -- JSON object of strings
    resources         TEXT NOT NULL,   -- JSON array of {hostname, hwthreads, accelerators, configuration}
    num_nodes         INT NOT NULL,
    num_hwthreads     INT,
    num_acc           INT,
    smt               INT NOT NULL DEFAULT 1,
    shared            TEXT NOT NULL CHECK (shared IN ('none', 'single_user', 'multi_user')),
    monitoring_status TINYINT NOT NULL DEFAULT 1 CHECK (monitoring_status IN (0, 1, 2, 3)),
    energy            REAL NOT NULL DEFAULT 0.0,
    energy_footprint  TEXT DEFAULT NULL, -- JSON object metric -> kWh
    footprint         TEXT DEFAULT NULL, -- JSON object "<metric>_<avg|min|max>" -> value
    UNIQUE (job_id, cluster, start_time)
);

-- cc-backend keeps freshly started jobs here before moving them to `job`; we insert
-- directly into `job` and keep the table only so that cc-backend can open the file.
CREATE TABLE IF NOT EXISTS job_cache (
    id                INTEGER PRIMARY KEY,
    job_id            BIGINT NOT NULL,
    cluster           TEXT NOT NULL,
    subcluster        TEXT NOT NULL,
    submit_time       BIGINT NOT NULL DEFAULT 0,
    start_time        BIGINT NOT NULL DEFAULT 0,
    hpc_user          TEXT NOT NULL,
    project           TEXT NOT NULL,
    cluster_partition TEXT,
    array_job_id      BIGINT,
    duration          INT NOT NULL,
    walltime          INT NOT NULL,
    job_state         TEXT NOT NULL CHECK (job_state IN (
        'boot_fail', 'cancelled', 'completed', 'deadline', 'failed', 'node_fail',
        'out_of_memory', 'pending', 'preempted', 'running', 'suspended', 'timeout')),
    meta_data         TEXT,
    resources         TEXT NOT NULL,
    num_nodes         INT NOT NULL,
    num_hwthreads     INT,
    num_acc           INT,
    smt               TINYINT NOT NULL DEFAULT 1 CHECK (smt IN (0, 1)),
    shared            TEXT NOT NULL CHECK (shared IN ('none', 'single_user', 'multi_user')),
    monitoring_status TINYINT NOT NULL DEFAULT 1 CHECK (monitoring_status IN (0, 1, 2, 3)),
    energy            REAL NOT NULL DEFAULT 0.0,
    energy_footprint  TEXT DEFAULT NULL,
    footprint         TEXT DEFAULT NULL,
    UNIQUE (job_id, cluster, start_time)
);

CREATE TABLE IF NOT EXISTS tag (
    id        INTEGER PRIMARY KEY,
    tag_type  TEXT NOT NULL,
    tag_name  TEXT NOT NULL,
    insert_ts TEXT DEFAULT CURRENT_TIMESTAMP,
    tag_scope TEXT NOT NULL DEFAULT 'global', -- 'global', 'admin' or a username (private)
    UNIQUE (tag_type, tag_name)
);

CREATE TABLE IF NOT EXISTS jobtag (
    job_id    INTEGER,
    tag_id    INTEGER,
    insert_ts TEXT DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (job_id, tag_id),
    FOREIGN KEY (job_id) REFERENCES job (id) ON DELETE CASCADE,
    FOREIGN KEY (tag_id) REFERENCES tag (id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS node (
    id         INTEGER PRIMARY KEY,
    hostname   TEXT NOT NULL,
    cluster    TEXT NOT NULL,
    subcluster TEXT NOT NULL,
    meta_data  TEXT,
    UNIQUE (hostname, cluster)
);

CREATE TABLE IF NOT EXISTS node_state (
    id               INTEGER PRIMARY KEY,
    time_stamp       INTEGER NOT NULL,
    jobs_running     INTEGER DEFAULT 0 NOT NULL,
    cpus_allocated   INTEGER DEFAULT 0 NOT NULL,
    memory_allocated INTEGER DEFAULT 0 NOT NULL,
    gpus_allocated   INTEGER DEFAULT 0 NOT NULL,
    node_state       TEXT NOT NULL CHECK (node_state IN (
        'allocated', 'reserved', 'idle', 'mixed', 'down', 'unknown')),
    health_state     TEXT NOT NULL CHECK (health_state IN ('full', 'partial', 'failed')),
    health_metrics   TEXT,
    node_id          INTEGER,
    FOREIGN KEY (node_id) REFERENCES node (id)
);
