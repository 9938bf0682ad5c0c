-- Latchkey schema 8 (MySQL 8 / MariaDB 10.6+): one `ext` column on clients for the metadata
-- that has no column of its own (OpenID Connect and logout settings, client keys: issue 16).
--
-- It holds `latchkey_core::client::ClientMetadata` as JSON text
-- (`latchkey_core::store::codec::encode_client_ext`), or NULL when nothing is registered.
-- Clients written before this migration read as NULL: no metadata. A metadata field added
-- later goes into that object, so it needs no further column.
--
-- MySQL cannot roll DDL back and MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so the column is
-- added only when `information_schema` does not list it yet: a run interrupted halfway is
-- simply run again.

SET @add_clients_ext = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'clients' AND column_name = 'ext') = 0,
    'ALTER TABLE clients ADD COLUMN ext TEXT',
    'DO 0');
PREPARE add_clients_ext FROM @add_clients_ext;
EXECUTE add_clients_ext;
DEALLOCATE PREPARE add_clients_ext;
