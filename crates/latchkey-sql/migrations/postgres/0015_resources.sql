-- Latchkey schema 15 (PostgreSQL): resources registered at run time (RFC 8707; issue 18).
-- See the SQLite migration 17: keyed by the SHA-256 of the identifier; `scopes` and
-- `clients` are JSON arrays of strings, NULL for any scope or every client.
CREATE TABLE registered_resources (
    id_digest BYTEA NOT NULL PRIMARY KEY CHECK (length(id_digest) = 32),
    id        TEXT  NOT NULL,
    name      TEXT,
    scopes    TEXT,
    clients   TEXT
);
