-- Latchkey schema 15 (SQLite): the one pending-request record (issue 17): pushed authorization
-- requests (RFC 9126) and device authorizations (RFC 8628) waiting on a person.
--
-- `digest` is the SHA-256 of the secret handle (a request_uri's random part, a device_code);
-- `lookup` the SHA-256 of a second, typed handle (a user_code), unique while the row lives
-- (an expired row is deleted before a new one takes its handles; several NULLs never clash).
-- `body` is the core's opaque, versioned state; `version` the compare-and-swap counter.
CREATE TABLE pending_requests (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    kind       TEXT    NOT NULL,
    lookup     BLOB             CHECK (lookup IS NULL OR length(lookup) = 32),
    client_id  TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    expires_at INTEGER NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 0)
) STRICT;

CREATE UNIQUE INDEX pending_requests_lookup ON pending_requests (lookup);
CREATE INDEX pending_requests_expires_at ON pending_requests (expires_at);
