-- Latchkey schema 3 (PostgreSQL): server-side login sessions. See the SQLite migration 5:
-- keyed by the digest of the id the browser holds, never the id itself.

CREATE TABLE sessions (
    digest     BYTEA  NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    subject    TEXT   NOT NULL,
    username   TEXT   NOT NULL,
    auth_time  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
