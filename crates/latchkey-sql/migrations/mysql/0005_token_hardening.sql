-- Latchkey schema 5 (MySQL 8 / MariaDB 10.6+): introspection permission and the absolute
-- lifetime of a grant family (issue 14).
--
-- A client may introspect other clients' tokens only when `introspect` is set (a resource
-- server); every client may still introspect its own. A token records when its family's first
-- token was issued, so rotation never carries a refresh token past the family's maximum
-- lifetime; tokens issued before this migration count their family from their own issue.
--
-- MySQL cannot roll DDL back and MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so each column is
-- added only when `information_schema` does not list it yet: a run interrupted halfway is
-- simply run again.

SET @add_introspect = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'clients' AND column_name = 'introspect') = 0,
    'ALTER TABLE clients ADD COLUMN introspect BOOLEAN NOT NULL DEFAULT FALSE',
    'DO 0');
PREPARE add_introspect FROM @add_introspect;
EXECUTE add_introspect;
DEALLOCATE PREPARE add_introspect;

SET @add_family_issued_at = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'tokens' AND column_name = 'family_issued_at') = 0,
    'ALTER TABLE tokens ADD COLUMN family_issued_at BIGINT',
    'DO 0');
PREPARE add_family_issued_at FROM @add_family_issued_at;
EXECUTE add_family_issued_at;
DEALLOCATE PREPARE add_family_issued_at;

UPDATE tokens SET family_issued_at = issued_at WHERE family_issued_at IS NULL;
