-- Latchkey schema 9 (PostgreSQL): the provider's signing keys. See the SQLite migration 11:
-- private keys sealed under the key-encryption key (never stored here), states from times,
-- and one generation row compared and bumped by every change.

CREATE TABLE signing_keys (
    kid            TEXT   NOT NULL PRIMARY KEY,
    alg            TEXT   NOT NULL,
    public_jwk     TEXT   NOT NULL,
    sealed_private BYTEA  NOT NULL,
    created_at     BIGINT NOT NULL,
    activates_at   BIGINT NOT NULL,
    retires_at     BIGINT,
    removes_at     BIGINT
);

CREATE TABLE signing_key_generation (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    generation BIGINT  NOT NULL
);

INSERT INTO signing_key_generation (id, generation) VALUES (1, 0);
