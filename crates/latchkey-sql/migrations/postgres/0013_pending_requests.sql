-- Latchkey schema 13 (PostgreSQL): the one pending-request record (issue 17). See the SQLite
-- migration 15: pushed authorization requests and device authorizations, keyed by the digest
-- of their secret handle, with a lookup digest unique among live rows (expired rows are
-- deleted before a new record takes their handles; NULLs never clash), an opaque body and a
-- compare-and-swap version.
CREATE TABLE pending_requests (
    digest     BYTEA        NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    kind       VARCHAR(16)  NOT NULL,
    lookup     BYTEA                 CHECK (lookup IS NULL OR length(lookup) = 32),
    client_id  VARCHAR(255) NOT NULL,
    body       BYTEA        NOT NULL,
    expires_at BIGINT       NOT NULL,
    version    BIGINT       NOT NULL CHECK (version >= 0)
);

CREATE UNIQUE INDEX pending_requests_lookup ON pending_requests (lookup);
CREATE INDEX pending_requests_expires_at ON pending_requests (expires_at);
