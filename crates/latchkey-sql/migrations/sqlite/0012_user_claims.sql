-- Latchkey schema 12 (SQLite): the OpenID Connect claims of a built-in user (issue 16).
--
-- One `claims` text column holds the user's standard claims (OpenID Connect Core §5.1) as the
-- core codec writes them (`latchkey_core::store::codec::encode_user_claims`): a JSON object,
-- or NULL when the user has none. Rows written before this migration read as NULL: no claims.

ALTER TABLE users ADD COLUMN claims TEXT;
