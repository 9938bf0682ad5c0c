-- Latchkey schema 10 (MySQL 8 / MariaDB 10.6+): the OpenID Connect claims of a built-in user
-- (issue 16).
--
-- One `claims` text column holds the user's standard claims (OpenID Connect Core §5.1) as the
-- core codec writes them (`latchkey_core::store::codec::encode_user_claims`): a JSON object,
-- or NULL when the user has none. Rows written before this migration read as NULL: no claims.
--
-- MySQL cannot roll DDL back and MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so the column is
-- added only when `information_schema` does not list it yet: a run interrupted halfway is
-- simply run again.

SET @add_users_claims = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'users' AND column_name = 'claims') = 0,
    'ALTER TABLE users ADD COLUMN claims TEXT',
    'DO 0');
PREPARE add_users_claims FROM @add_users_claims;
EXECUTE add_users_claims;
DEALLOCATE PREPARE add_users_claims;
