-- Latchkey schema 5 (SQLite): server-side login sessions.
--
-- A session is keyed by the SHA-256 digest of the random id the browser holds in its cookie;
-- the id itself is never stored. `auth_time` is when the user typed their password (checked
-- against `max_age`). Deleting a user, changing their password or "log out everywhere" deletes
-- every row of the subject; the writer sweeps expired rows.

CREATE TABLE sessions (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    subject    TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
