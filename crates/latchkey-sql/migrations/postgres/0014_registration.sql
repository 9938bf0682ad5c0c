-- Latchkey schema 14 (PostgreSQL): dynamic client registration (RFC 7591, RFC 7592; issue 18).
-- See the SQLite migration 16: initial access tokens, and the registration access token
-- digest and last-used day of each self-registered client. Only digests are stored.
CREATE TABLE registration_initial_tokens (
    id          TEXT   NOT NULL PRIMARY KEY,
    digest      BYTEA  NOT NULL UNIQUE CHECK (length(digest) = 32),
    description TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    uses_left   BIGINT
);

CREATE TABLE client_registrations (
    client_id     TEXT   NOT NULL PRIMARY KEY,
    token_digest  BYTEA  NOT NULL CHECK (length(token_digest) = 32),
    created_at    BIGINT NOT NULL,
    last_used     BIGINT NOT NULL,
    initial_token TEXT
);

CREATE INDEX client_registrations_last_used ON client_registrations (last_used);
