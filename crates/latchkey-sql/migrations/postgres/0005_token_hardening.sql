-- Latchkey schema 5 (PostgreSQL): introspection permission and the absolute lifetime of a grant
-- family (issue 14).
--
-- A client may introspect other clients' tokens only when `introspect` is set (a resource
-- server); every client may still introspect its own. A token records when its family's first
-- token was issued, so rotation never carries a refresh token past the family's maximum
-- lifetime; tokens issued before this migration count their family from their own issue.

ALTER TABLE clients ADD COLUMN introspect BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE tokens ADD COLUMN family_issued_at BIGINT;
UPDATE tokens SET family_issued_at = issued_at WHERE family_issued_at IS NULL;
