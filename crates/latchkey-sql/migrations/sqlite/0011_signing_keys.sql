-- Latchkey schema 11 (SQLite): the provider's signing keys (OpenID Connect, JWT access tokens).
--
-- One row per key, named by its RFC 7638 thumbprint. The private key is PKCS#8 sealed with
-- AES-256-GCM under the key-encryption key, which is never stored here. A key's state follows
-- from its times: published from `created_at`, signing from `activates_at`, no longer signing
-- from `retires_at`, gone from the JWKS (and deleted) from `removes_at`.
--
-- `signing_key_generation` holds one row; every change of the keys compares and bumps it in
-- the same transaction, so two nodes rotating at once cannot both add a key.

CREATE TABLE signing_keys (
    kid            TEXT    NOT NULL PRIMARY KEY,
    alg            TEXT    NOT NULL,
    public_jwk     TEXT    NOT NULL,
    sealed_private BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    activates_at   INTEGER NOT NULL,
    retires_at     INTEGER,
    removes_at     INTEGER
) STRICT;

CREATE TABLE signing_key_generation (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
) STRICT;

INSERT INTO signing_key_generation (id, generation) VALUES (1, 0);
