-- Latchkey schema 13 (MySQL 8 / MariaDB 10.6+): the one pending-request record (issue 17).
-- See the SQLite migration 15: pushed authorization requests and device authorizations, keyed
-- by the digest of their secret handle, with a lookup digest unique among live rows (expired
-- rows are deleted before a new record takes their handles; NULLs never clash), an opaque body
-- and a compare-and-swap version. `IF NOT EXISTS`: a run interrupted halfway is run again.
CREATE TABLE IF NOT EXISTS pending_requests (
    digest     BINARY(32)      NOT NULL PRIMARY KEY,
    kind       VARCHAR(16)     NOT NULL,
    lookup     BINARY(32)      NULL,
    client_id  VARCHAR(255)    NOT NULL,
    body       MEDIUMBLOB      NOT NULL,
    expires_at BIGINT          NOT NULL,
    version    BIGINT          NOT NULL,
    UNIQUE KEY pending_requests_lookup (lookup),
    KEY pending_requests_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
