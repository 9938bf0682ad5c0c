-- Latchkey schema 10 (PostgreSQL): the OpenID Connect claims of a built-in user (issue 16).
--
-- One `claims` text column holds the user's standard claims (OpenID Connect Core §5.1) as the
-- core codec writes them (`latchkey_core::store::codec::encode_user_claims`): a JSON object,
-- or NULL when the user has none. Rows written before this migration read as NULL: no claims.
-- Text, not jsonb: every backend stores the codec's bytes unchanged.

ALTER TABLE users ADD COLUMN claims TEXT;
