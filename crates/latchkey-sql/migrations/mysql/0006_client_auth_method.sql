-- Latchkey schema 6 (MySQL 8 / MariaDB 10.6+): each client's token_endpoint_auth_method
-- (RFC 7591 §2).
--
-- NULL means the client's type decides, as before this migration: a confidential client may
-- send its secret in the Authorization header or in the body, a public client sends none.
-- Otherwise the one method the client must use: `client_secret_basic`, `client_secret_post`
-- or `none`.
--
-- MySQL cannot roll DDL back and MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so the column is
-- added only when `information_schema` does not list it yet: a run interrupted halfway is
-- simply run again.

SET @add_auth_method = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'clients'
       AND column_name = 'token_endpoint_auth_method') = 0,
    'ALTER TABLE clients ADD COLUMN token_endpoint_auth_method VARCHAR(32)',
    'DO 0');
PREPARE add_auth_method FROM @add_auth_method;
EXECUTE add_auth_method;
DEALLOCATE PREPARE add_auth_method;
