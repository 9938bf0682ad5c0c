-- The one replay cache (client-assertion and DPoP jti): digests remembered until they expire,
-- the primary key refusing a second insert of a live one. OAuth 1.0a nonces keep their own
-- table (oauth1_nonces) so that nodes of an older build sharing this database see them.
CREATE TABLE replay_keys (
    digest     BYTEA  NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    expires_at BIGINT NOT NULL
);

CREATE INDEX replay_keys_expires_at ON replay_keys (expires_at);
