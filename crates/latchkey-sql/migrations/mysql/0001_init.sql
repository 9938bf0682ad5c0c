-- Latchkey schema 1 (MySQL 8 / MariaDB 10.6+): clients, users, issued tokens, authorization
-- codes and remembered consent.
--
-- The same tables and columns as the SQLite schema (migrations 1 to 3 there), in one step.
-- Tokens and codes are keyed by the SHA-256 digest of their value, BINARY(32); the value
-- itself is never stored. A used code is kept until it expires, so that a replay is
-- recognised (RFC 6749 §4.1.2). Expired tokens and codes are deleted by the store's own
-- writes, through the `expires_at` indexes. No table has foreign keys: the store forgets
-- tokens, codes and consent explicitly when their client or user is deleted.
--
-- Text is utf8mb4 with the binary collation, so user names and identifiers compare exactly
-- ("Zoë" is not "zoë") and sort in code-point order like the other stores. Indexed text is
-- VARCHAR(255), which keeps every key within InnoDB's limit.
--
-- MySQL cannot roll DDL back, so each statement is idempotent (`IF NOT EXISTS`, indexes
-- inline): a migration interrupted halfway is completed by the next open.

CREATE TABLE IF NOT EXISTS clients (
    id                VARCHAR(255) NOT NULL PRIMARY KEY,
    name              TEXT         NOT NULL,
    -- SHA-256 of the client secret; NULL for public clients.
    secret_digest     BINARY(32),
    -- A JSON array of strings.
    redirect_uris     MEDIUMTEXT   NOT NULL,
    -- Space-separated grant type names (RFC 7591 §2).
    grant_types       TEXT         NOT NULL,
    -- Space-separated scope tokens; NULL means the server's setting.
    scopes            TEXT,
    default_scopes    TEXT,
    -- Seconds; NULL means the server's setting.
    access_token_ttl  BIGINT,
    refresh_token_ttl BIGINT,
    created_at        BIGINT       NOT NULL,
    -- Bind tokens to the User-Agent and IP address they were issued to (basic_oauth).
    bind_tokens       BOOLEAN      NOT NULL DEFAULT FALSE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS users (
    id            VARCHAR(255) NOT NULL PRIMARY KEY,
    username      VARCHAR(255) NOT NULL,
    -- Argon2id PHC string.
    password_hash TEXT         NOT NULL,
    created_at    BIGINT       NOT NULL,
    UNIQUE KEY users_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS tokens (
    digest           BINARY(32)   NOT NULL PRIMARY KEY,
    kind             VARCHAR(16)  NOT NULL,
    client_id        VARCHAR(255) NOT NULL,
    subject          VARCHAR(255),
    username         TEXT,
    scope            TEXT         NOT NULL,
    grant_type       VARCHAR(64)  NOT NULL,
    family           VARCHAR(255) NOT NULL,
    issued_at        BIGINT       NOT NULL,
    expires_at       BIGINT       NOT NULL,
    revoked          BOOLEAN      NOT NULL DEFAULT FALSE,
    rotated          BOOLEAN      NOT NULL DEFAULT FALSE,
    -- SHA-256 (hex) of the User-Agent and the client IP a bound token was issued to.
    bound_user_agent TEXT,
    bound_ip         TEXT,
    KEY tokens_family (family),
    KEY tokens_client_id (client_id),
    KEY tokens_subject (subject),
    KEY tokens_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS codes (
    digest            BINARY(32)   NOT NULL PRIMARY KEY,
    client_id         VARCHAR(255) NOT NULL,
    redirect_uri      TEXT         NOT NULL,
    -- Whether the authorization request carried redirect_uri (RFC 6749 §4.1.3).
    redirect_uri_sent BOOLEAN      NOT NULL,
    subject           VARCHAR(255) NOT NULL,
    username          TEXT         NOT NULL,
    -- Space-separated scope tokens.
    scope             TEXT         NOT NULL,
    -- The PKCE method (RFC 7636: "S256" or "plain") and challenge, both or neither.
    challenge_method  VARCHAR(16),
    challenge         TEXT,
    -- The OpenID Connect nonce, when one was sent.
    nonce             TEXT,
    family            VARCHAR(255) NOT NULL,
    issued_at         BIGINT       NOT NULL,
    expires_at        BIGINT       NOT NULL,
    used              BOOLEAN      NOT NULL DEFAULT FALSE,
    KEY codes_expires_at (expires_at),
    KEY codes_client_id (client_id),
    KEY codes_subject (subject)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The scopes a resource owner (subject) has approved for a client; one row per pair,
-- replaced when they approve again.
CREATE TABLE IF NOT EXISTS consents (
    subject    VARCHAR(255) NOT NULL,
    client_id  VARCHAR(255) NOT NULL,
    -- Space-separated scope tokens.
    scope      TEXT         NOT NULL,
    granted_at BIGINT       NOT NULL,
    PRIMARY KEY (subject, client_id),
    KEY consents_client_id (client_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
