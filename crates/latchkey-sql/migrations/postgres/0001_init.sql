-- Latchkey schema 1 (PostgreSQL): clients, users, issued tokens, authorization codes and
-- remembered consent.
--
-- The same tables and columns as the SQLite schema (migrations 1 to 3 there), in one step.
-- Tokens and codes are keyed by the SHA-256 digest of their value; the value itself is never
-- stored. A used code is kept until it expires, so that a replay is recognised (RFC 6749
-- §4.1.2). Expired tokens and codes are deleted by the store's own writes, through the
-- `expires_at` indexes. No table has foreign keys: the store forgets tokens, codes and consent
-- explicitly when their client or user is deleted.

CREATE TABLE clients (
    id                TEXT    NOT NULL PRIMARY KEY,
    name              TEXT    NOT NULL,
    -- SHA-256 of the client secret; NULL for public clients.
    secret_digest     BYTEA   CHECK (secret_digest IS NULL OR length(secret_digest) = 32),
    -- A JSON array of strings.
    redirect_uris     TEXT    NOT NULL,
    -- Space-separated grant type names (RFC 7591 §2).
    grant_types       TEXT    NOT NULL,
    -- Space-separated scope tokens; NULL means the server's setting.
    scopes            TEXT,
    default_scopes    TEXT,
    -- Seconds; NULL means the server's setting.
    access_token_ttl  BIGINT,
    refresh_token_ttl BIGINT,
    created_at        BIGINT  NOT NULL,
    -- Bind tokens to the User-Agent and IP address they were issued to (basic_oauth).
    bind_tokens       BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE users (
    id            TEXT   NOT NULL PRIMARY KEY,
    username      TEXT   NOT NULL UNIQUE,
    -- Argon2id PHC string.
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE tokens (
    digest           BYTEA   NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    kind             TEXT    NOT NULL,
    client_id        TEXT    NOT NULL,
    subject          TEXT,
    username         TEXT,
    scope            TEXT    NOT NULL,
    grant_type       TEXT    NOT NULL,
    family           TEXT    NOT NULL,
    issued_at        BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    revoked          BOOLEAN NOT NULL DEFAULT false,
    rotated          BOOLEAN NOT NULL DEFAULT false,
    -- SHA-256 (hex) of the User-Agent and the client IP a bound token was issued to.
    bound_user_agent TEXT,
    bound_ip         TEXT,
    CHECK ((bound_user_agent IS NULL) = (bound_ip IS NULL))
);

CREATE INDEX tokens_family ON tokens (family);
CREATE INDEX tokens_client_id ON tokens (client_id);
CREATE INDEX tokens_subject ON tokens (subject);
CREATE INDEX tokens_expires_at ON tokens (expires_at);

CREATE TABLE codes (
    digest            BYTEA   NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    client_id         TEXT    NOT NULL,
    redirect_uri      TEXT    NOT NULL,
    -- Whether the authorization request carried redirect_uri (RFC 6749 §4.1.3).
    redirect_uri_sent BOOLEAN NOT NULL,
    subject           TEXT    NOT NULL,
    username          TEXT    NOT NULL,
    -- Space-separated scope tokens.
    scope             TEXT    NOT NULL,
    -- The PKCE method (RFC 7636: "S256" or "plain") and challenge, both or neither.
    challenge_method  TEXT,
    challenge         TEXT,
    -- The OpenID Connect nonce, when one was sent.
    nonce             TEXT,
    family            TEXT    NOT NULL,
    issued_at         BIGINT  NOT NULL,
    expires_at        BIGINT  NOT NULL,
    used              BOOLEAN NOT NULL DEFAULT false,
    CHECK ((challenge_method IS NULL) = (challenge IS NULL))
);

CREATE INDEX codes_expires_at ON codes (expires_at);
CREATE INDEX codes_client_id ON codes (client_id);
CREATE INDEX codes_subject ON codes (subject);

-- The scopes a resource owner (subject) has approved for a client; one row per pair,
-- replaced when they approve again.
CREATE TABLE consents (
    subject    TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    -- Space-separated scope tokens.
    scope      TEXT   NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (subject, client_id)
);

CREATE INDEX consents_client_id ON consents (client_id);
