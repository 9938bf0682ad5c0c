-- Latchkey schema 7 (MySQL 8 / MariaDB 10.6+): one `ext` column for the record fields that
-- have no column of their own (issue 15).
--
-- It holds the core codec's extension object of the record as JSON text
-- (`latchkey_core::store::codec::encode_token_ext` / `encode_code_ext`), today the data the
-- application attached at authorization, or NULL when the record has none. Rows written
-- before this migration read as NULL: nothing attached. A record field added later goes into
-- that object, so it needs no further column.
--
-- MySQL cannot roll DDL back and MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so each column is
-- added only when `information_schema` does not list it yet: a run interrupted halfway is
-- simply run again.

SET @add_tokens_ext = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'tokens' AND column_name = 'ext') = 0,
    'ALTER TABLE tokens ADD COLUMN ext TEXT',
    'DO 0');
PREPARE add_tokens_ext FROM @add_tokens_ext;
EXECUTE add_tokens_ext;
DEALLOCATE PREPARE add_tokens_ext;

SET @add_codes_ext = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'codes' AND column_name = 'ext') = 0,
    'ALTER TABLE codes ADD COLUMN ext TEXT',
    'DO 0');
PREPARE add_codes_ext FROM @add_codes_ext;
EXECUTE add_codes_ext;
DEALLOCATE PREPARE add_codes_ext;
