-- Latchkey schema 7 (SQLite): introspection permission and the absolute lifetime of a grant
-- family (issue 14).
--
-- A client may introspect other clients' tokens only when `introspect` is set (a resource
-- server); every client may still introspect its own. A token records when its family's first
-- token was issued, so rotation never carries a refresh token past the family's maximum
-- lifetime; tokens issued before this migration count their family from their own issue.

ALTER TABLE clients ADD COLUMN introspect INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN family_issued_at INTEGER;
UPDATE tokens SET family_issued_at = issued_at WHERE family_issued_at IS NULL;
