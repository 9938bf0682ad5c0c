-- Latchkey schema 7 (PostgreSQL): one `ext` column for the record fields that have no column
-- of their own (issue 15).
--
-- It holds the core codec's extension object of the record as JSON text
-- (`latchkey_core::store::codec::encode_token_ext` / `encode_code_ext`), today the data the
-- application attached at authorization, or NULL when the record has none. Rows written
-- before this migration read as NULL: nothing attached. A record field added later goes into
-- that object, so it needs no further column.

ALTER TABLE tokens ADD COLUMN ext TEXT;
ALTER TABLE codes ADD COLUMN ext TEXT;
