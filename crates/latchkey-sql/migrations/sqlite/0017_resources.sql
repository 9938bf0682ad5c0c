-- Latchkey schema 17 (SQLite): resources registered at run time (RFC 8707; issue 18), beside
-- the `[[resources]]` of the settings. Keyed by the SHA-256 of the identifier, so an
-- identifier of any length (up to 2048 bytes) is one fixed-size key in every dialect.
-- `scopes` and `clients` are JSON arrays of strings; NULL: any scope, every client.
CREATE TABLE registered_resources (
    id_digest BLOB NOT NULL PRIMARY KEY CHECK (length(id_digest) = 32),
    id        TEXT NOT NULL,
    name      TEXT,
    scopes    TEXT,
    clients   TEXT
) STRICT;
