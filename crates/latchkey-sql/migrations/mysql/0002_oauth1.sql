-- Latchkey schema 2 (MySQL 8 / MariaDB 10.6+): OAuth 1.0a (RFC 5849). See the SQLite
-- migration 4 for the model: token digests only (secrets are derived from the server's key),
-- nonces kept until their timestamp leaves the window, their primary key refusing a replay.

CREATE TABLE IF NOT EXISTS oauth1_consumers (
    client_id      VARCHAR(255) NOT NULL PRIMARY KEY,
    rsa_public_key TEXT,
    created_at     BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS oauth1_request_tokens (
    digest     BINARY(32)   NOT NULL PRIMARY KEY,
    client_id  VARCHAR(255) NOT NULL,
    callback   TEXT         NOT NULL,
    realms     TEXT         NOT NULL,
    subject    VARCHAR(255),
    username   TEXT,
    verifier   BINARY(32),
    expires_at BIGINT       NOT NULL,
    KEY oauth1_request_tokens_expires_at (expires_at),
    KEY oauth1_request_tokens_client_id (client_id),
    KEY oauth1_request_tokens_subject (subject)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS oauth1_access_tokens (
    digest     BINARY(32)   NOT NULL PRIMARY KEY,
    client_id  VARCHAR(255) NOT NULL,
    subject    VARCHAR(255) NOT NULL,
    username   TEXT,
    realms     TEXT         NOT NULL,
    issued_at  BIGINT       NOT NULL,
    expires_at BIGINT,
    revoked    BOOLEAN      NOT NULL DEFAULT FALSE,
    KEY oauth1_access_tokens_expires_at (expires_at),
    KEY oauth1_access_tokens_client_id (client_id),
    KEY oauth1_access_tokens_subject (subject)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS oauth1_nonces (
    digest     BINARY(32) NOT NULL PRIMARY KEY,
    expires_at BIGINT     NOT NULL,
    KEY oauth1_nonces_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
