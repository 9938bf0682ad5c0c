-- Latchkey schema 18 (SQLite): a counter of changes to `clients`, so that a server can keep
-- decoded clients in memory and still see, at its next request, a change made by any
-- connection or process (its own writer, or the `latchkey client` CLI run beside it).
--
-- The triggers bump the counter inside the transaction of the change, so a reader that sees
-- the counter unchanged sees every client row unchanged too. The counter only grows.
-- Rebuilding `clients` in a later migration (create, copy, drop, rename) drops these
-- triggers with the old table: such a migration must create them again.
CREATE TABLE client_changes (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    n  INTEGER NOT NULL
) STRICT;

INSERT INTO client_changes (id, n) VALUES (0, 0);

CREATE TRIGGER clients_changed_on_insert AFTER INSERT ON clients
BEGIN
    UPDATE client_changes SET n = n + 1 WHERE id = 0;
END;

CREATE TRIGGER clients_changed_on_update AFTER UPDATE ON clients
BEGIN
    UPDATE client_changes SET n = n + 1 WHERE id = 0;
END;

CREATE TRIGGER clients_changed_on_delete AFTER DELETE ON clients
BEGIN
    UPDATE client_changes SET n = n + 1 WHERE id = 0;
END;
