-- Latchkey schema 14 (MySQL 8 / MariaDB 10.6+): dynamic client registration (RFC 7591,
-- RFC 7592; issue 18). See the SQLite migration 16: initial access tokens, and the
-- registration access token digest and last-used day of each self-registered client. Only
-- digests are stored. `IF NOT EXISTS`, so a run interrupted halfway is simply run again.
CREATE TABLE IF NOT EXISTS registration_initial_tokens (
    id          VARCHAR(64)  NOT NULL PRIMARY KEY,
    digest      BINARY(32)   NOT NULL,
    description TEXT         NOT NULL,
    created_at  BIGINT       NOT NULL,
    expires_at  BIGINT,
    uses_left   BIGINT,
    UNIQUE KEY registration_initial_tokens_digest (digest)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS client_registrations (
    client_id     VARCHAR(255) NOT NULL PRIMARY KEY,
    token_digest  BINARY(32)   NOT NULL,
    created_at    BIGINT       NOT NULL,
    last_used     BIGINT       NOT NULL,
    initial_token VARCHAR(64),
    KEY client_registrations_last_used (last_used)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
