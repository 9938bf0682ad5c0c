-- Latchkey schema 6 (SQLite): a random salt per OAuth 1.0a registration.
--
-- The consumer secret is derived from the server's OAuth 1.0a key, the client id and this
-- salt, so registering the same client id again, or rotating the secret, yields a new secret.
-- Rows from before this migration keep NULL: their secret stays the legacy derivation from
-- the client id alone until it is rotated.

ALTER TABLE oauth1_consumers ADD COLUMN secret_salt TEXT;
