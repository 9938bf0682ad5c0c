-- Latchkey schema 2 (PostgreSQL): OAuth 1.0a (RFC 5849). See the SQLite migration 4 for the
-- model: token digests only (secrets are derived from the server's key), nonces kept until
-- their timestamp leaves the window, their primary key refusing a replay.

CREATE TABLE oauth1_consumers (
    client_id      TEXT   NOT NULL PRIMARY KEY,
    rsa_public_key TEXT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE oauth1_request_tokens (
    digest     BYTEA  NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    client_id  TEXT   NOT NULL,
    callback   TEXT   NOT NULL,
    realms     TEXT   NOT NULL,
    subject    TEXT,
    username   TEXT,
    verifier   BYTEA CHECK (verifier IS NULL OR length(verifier) = 32),
    expires_at BIGINT NOT NULL
);

CREATE INDEX oauth1_request_tokens_expires_at ON oauth1_request_tokens (expires_at);
CREATE INDEX oauth1_request_tokens_client_id ON oauth1_request_tokens (client_id);

CREATE TABLE oauth1_access_tokens (
    digest     BYTEA   NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    client_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    username   TEXT,
    realms     TEXT    NOT NULL,
    issued_at  BIGINT  NOT NULL,
    expires_at BIGINT,
    revoked    BOOLEAN NOT NULL DEFAULT false
);

CREATE INDEX oauth1_access_tokens_expires_at ON oauth1_access_tokens (expires_at);
CREATE INDEX oauth1_access_tokens_client_id ON oauth1_access_tokens (client_id);
CREATE INDEX oauth1_access_tokens_subject ON oauth1_access_tokens (subject);

CREATE TABLE oauth1_nonces (
    digest     BYTEA  NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    expires_at BIGINT NOT NULL
);

CREATE INDEX oauth1_nonces_expires_at ON oauth1_nonces (expires_at);
