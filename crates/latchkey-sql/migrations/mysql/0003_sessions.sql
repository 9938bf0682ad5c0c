-- Latchkey schema 3 (MySQL 8 / MariaDB 10.6+): server-side login sessions. See the SQLite
-- migration 5: keyed by the digest of the id the browser holds, never the id itself.

CREATE TABLE IF NOT EXISTS sessions (
    digest     BINARY(32)   NOT NULL PRIMARY KEY,
    subject    VARCHAR(255) NOT NULL,
    username   TEXT         NOT NULL,
    auth_time  BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    KEY sessions_subject (subject),
    KEY sessions_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
