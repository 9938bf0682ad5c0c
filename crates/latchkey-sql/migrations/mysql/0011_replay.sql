-- The one replay cache (client-assertion and DPoP jti): digests remembered until they expire,
-- the primary key refusing a second insert of a live one. OAuth 1.0a nonces keep their own
-- table (oauth1_nonces) so that nodes of an older build sharing this database see them.
CREATE TABLE IF NOT EXISTS replay_keys (
    digest     BINARY(32) NOT NULL PRIMARY KEY,
    expires_at BIGINT     NOT NULL,
    KEY replay_keys_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
