-- Latchkey schema 9 (MySQL 8 / MariaDB 10.6+): the provider's signing keys. See the SQLite
-- migration 11: private keys sealed under the key-encryption key (never stored here), states
-- from times, and one generation row compared and bumped by every change. Every statement
-- may run twice (MySQL cannot roll DDL back): a run interrupted halfway is run again.

CREATE TABLE IF NOT EXISTS signing_keys (
    kid            VARCHAR(64) NOT NULL PRIMARY KEY,
    alg            VARCHAR(16) NOT NULL,
    public_jwk     TEXT        NOT NULL,
    sealed_private BLOB        NOT NULL,
    created_at     BIGINT      NOT NULL,
    activates_at   BIGINT      NOT NULL,
    retires_at     BIGINT      NULL,
    removes_at     BIGINT      NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS signing_key_generation (
    id         INT    NOT NULL PRIMARY KEY,
    generation BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT IGNORE INTO signing_key_generation (id, generation) VALUES (1, 0);
