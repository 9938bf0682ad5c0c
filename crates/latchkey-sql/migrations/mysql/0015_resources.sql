-- Latchkey schema 15 (MySQL 8 / MariaDB 10.6+): resources registered at run time (RFC 8707;
-- issue 18). See the SQLite migration 17: keyed by the SHA-256 of the identifier (an
-- identifier may be longer than an index allows); `scopes` and `clients` are JSON arrays of
-- strings, NULL for any scope or every client. `IF NOT EXISTS`, so a run interrupted
-- halfway is simply run again.
CREATE TABLE IF NOT EXISTS registered_resources (
    id_digest BINARY(32) NOT NULL PRIMARY KEY,
    id        TEXT       NOT NULL,
    name      TEXT,
    scopes    TEXT,
    clients   TEXT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
