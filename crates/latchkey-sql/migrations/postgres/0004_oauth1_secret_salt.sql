-- Latchkey schema 4 (PostgreSQL): a random salt per OAuth 1.0a registration. See the SQLite
-- migration 6: NULL (rows from before) keeps the legacy derivation until a rotation.

ALTER TABLE oauth1_consumers ADD COLUMN IF NOT EXISTS secret_salt TEXT;
