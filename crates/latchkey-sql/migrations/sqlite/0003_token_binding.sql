-- Latchkey schema 3 (SQLite): token binding (basic_oauth).
--
-- A client may bind its tokens to the User-Agent (SHA-256, hex) and client IP address they
-- were issued to; a token used from elsewhere is revoked.

ALTER TABLE clients ADD COLUMN bind_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN bound_user_agent TEXT;
ALTER TABLE tokens ADD COLUMN bound_ip TEXT;
