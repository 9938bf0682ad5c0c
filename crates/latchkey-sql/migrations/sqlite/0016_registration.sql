-- Latchkey schema 16 (SQLite): dynamic client registration (RFC 7591, RFC 7592; issue 18).
-- Initial access tokens an operator hands out, and for each self-registered client the
-- SHA-256 of its registration access token and the day it was last used (registered or got
-- a token), which the sweep of unused clients reads by its index. Only digests are stored.
CREATE TABLE registration_initial_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    digest      BLOB    NOT NULL UNIQUE CHECK (length(digest) = 32),
    description TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- NULL: never expires.
    expires_at  INTEGER,
    -- NULL: any number of registrations.
    uses_left   INTEGER
) STRICT;

CREATE TABLE client_registrations (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    token_digest  BLOB    NOT NULL CHECK (length(token_digest) = 32),
    created_at    INTEGER NOT NULL,
    last_used     INTEGER NOT NULL,
    initial_token TEXT
) STRICT;

CREATE INDEX client_registrations_last_used ON client_registrations (last_used);
