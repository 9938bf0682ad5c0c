-- Latchkey schema 1 (SQLite): clients, users and issued tokens.
--
-- Tokens are keyed by the SHA-256 digest of their value; the value itself is never stored.
-- STRICT tables make SQLite refuse a value of the wrong type instead of storing it.

CREATE TABLE clients (
    id                TEXT    NOT NULL PRIMARY KEY,
    name              TEXT    NOT NULL,
    -- SHA-256 of the client secret; NULL for public clients.
    secret_digest     BLOB    CHECK (secret_digest IS NULL OR length(secret_digest) = 32),
    -- A JSON array of strings.
    redirect_uris     TEXT    NOT NULL,
    -- Space-separated grant type names (RFC 7591 §2).
    grant_types       TEXT    NOT NULL,
    -- Space-separated scope tokens; NULL means the server's setting.
    scopes            TEXT,
    default_scopes    TEXT,
    -- Seconds; NULL means the server's setting.
    access_token_ttl  INTEGER,
    refresh_token_ttl INTEGER,
    created_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    -- Argon2id PHC string.
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    kind       TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    subject    TEXT,
    username   TEXT,
    scope      TEXT    NOT NULL,
    grant_type TEXT    NOT NULL,
    family     TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    rotated    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX tokens_family ON tokens (family);
CREATE INDEX tokens_client_id ON tokens (client_id);
CREATE INDEX tokens_subject ON tokens (subject);
CREATE INDEX tokens_expires_at ON tokens (expires_at);
