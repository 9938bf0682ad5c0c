-- Latchkey schema 4 (SQLite): OAuth 1.0a (RFC 5849).
--
-- Consumers are registered clients with a row here (and their RSA public key, if they sign
-- with RSA-SHA1). Request and access tokens are keyed by the SHA-256 digest of their value;
-- neither the value nor its secret is stored (secrets are derived from the server's key).
-- Nonces are remembered, by the digest of consumer, token, timestamp and nonce, until their
-- timestamp leaves the accepted window: the primary key refuses a replay. The writer sweeps
-- expired rows of all three token tables.

CREATE TABLE oauth1_consumers (
    client_id      TEXT    NOT NULL PRIMARY KEY,
    rsa_public_key TEXT,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE oauth1_request_tokens (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    client_id  TEXT    NOT NULL,
    callback   TEXT    NOT NULL,
    -- Space-separated realms.
    realms     TEXT    NOT NULL,
    -- Set once, when the resource owner approves.
    subject    TEXT,
    username   TEXT,
    verifier   BLOB CHECK (verifier IS NULL OR length(verifier) = 32),
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX oauth1_request_tokens_expires_at ON oauth1_request_tokens (expires_at);
CREATE INDEX oauth1_request_tokens_client_id ON oauth1_request_tokens (client_id);

CREATE TABLE oauth1_access_tokens (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    client_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    username   TEXT,
    realms     TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    -- NULL: valid until revoked.
    expires_at INTEGER,
    revoked    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX oauth1_access_tokens_expires_at ON oauth1_access_tokens (expires_at);
CREATE INDEX oauth1_access_tokens_client_id ON oauth1_access_tokens (client_id);

CREATE TABLE oauth1_nonces (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX oauth1_nonces_expires_at ON oauth1_nonces (expires_at);
