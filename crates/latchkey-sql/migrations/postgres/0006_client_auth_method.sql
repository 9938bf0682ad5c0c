-- Latchkey schema 6 (PostgreSQL): each client's token_endpoint_auth_method (RFC 7591 §2).
--
-- NULL means the client's type decides, as before this migration: a confidential client may
-- send its secret in the Authorization header or in the body, a public client sends none.
-- Otherwise the one method the client must use: `client_secret_basic`, `client_secret_post`
-- or `none`.

ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT;
