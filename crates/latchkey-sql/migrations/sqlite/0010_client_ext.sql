-- Latchkey schema 10 (SQLite): one `ext` column on clients for the metadata that has no
-- column of its own (OpenID Connect and logout settings, client keys: issue 16).
--
-- It holds `latchkey_core::client::ClientMetadata` as JSON text
-- (`latchkey_core::store::codec::encode_client_ext`), or NULL when nothing is registered.
-- Clients written before this migration read as NULL: no metadata. A metadata field added
-- later goes into that object, so it needs no further column.

ALTER TABLE clients ADD COLUMN ext TEXT;
