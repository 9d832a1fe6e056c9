-- Down from version 13 to 12 (cc-supervise revert-db): the web sessions go (everyone logs in again).
DROP INDEX IF EXISTS web_session_expiry;
DROP INDEX IF EXISTS web_session_user;
DROP TABLE IF EXISTS web_session;
