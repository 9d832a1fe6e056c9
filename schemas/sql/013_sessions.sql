-- Version 13 (ours): server-side web UI sessions.
-- The session cookie carries a random id; this table holds its SHA-256 (so a copy of the
-- database opens no session).  A request whose id has no row here, or whose row has
-- expired, is not logged in: logout, an admin ending a user's sessions or deleting the
-- user take effect at once in every process.

CREATE TABLE IF NOT EXISTS web_session (
    id         TEXT PRIMARY KEY NOT NULL,  -- hex SHA-256 of the session id
    username   TEXT NOT NULL REFERENCES hpc_user (username) ON DELETE CASCADE ON UPDATE CASCADE,
    created    BIGINT NOT NULL,            -- unix time of the login
    expires    BIGINT NOT NULL DEFAULT 0,  -- unix time; 0 = no expiry (main.session-max-age 0)
    ip         TEXT,                       -- client address at login (behind trusted proxies: the forwarded one)
    user_agent TEXT
);

CREATE INDEX IF NOT EXISTS web_session_user ON web_session (username);
CREATE INDEX IF NOT EXISTS web_session_expiry ON web_session (expires) WHERE expires <> 0;
