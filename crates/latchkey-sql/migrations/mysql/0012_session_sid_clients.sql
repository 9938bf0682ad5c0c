-- Latchkey schema 12 (MySQL 8 / MariaDB 10.6+): the OpenID Connect side of login sessions
-- (issue 16). See the SQLite migration 14: a public, random, unique `sid` and the JSON array
-- of the clients that got a code or a token in the session. Sessions that existed before get
-- a random `sid`.
--
-- MySQL cannot roll DDL back and MySQL 8 has no `ADD COLUMN IF NOT EXISTS`, so each column and
-- the index are added only when `information_schema` does not list them yet: a run
-- interrupted halfway is simply run again.

SET @add_sessions_sid = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'sessions' AND column_name = 'sid') = 0,
    'ALTER TABLE sessions ADD COLUMN sid VARCHAR(64)',
    'DO 0');
PREPARE add_sessions_sid FROM @add_sessions_sid;
EXECUTE add_sessions_sid;
DEALLOCATE PREPARE add_sessions_sid;

SET @add_sessions_clients = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'sessions' AND column_name = 'clients') = 0,
    'ALTER TABLE sessions ADD COLUMN clients TEXT',
    'DO 0');
PREPARE add_sessions_clients FROM @add_sessions_clients;
EXECUTE add_sessions_clients;
DEALLOCATE PREPARE add_sessions_clients;

UPDATE sessions SET sid = MD5(CONCAT(RAND(), HEX(digest))) WHERE sid IS NULL;

SET @add_sessions_sid_index = IF(
    (SELECT COUNT(*) FROM information_schema.statistics
     WHERE table_schema = DATABASE() AND table_name = 'sessions' AND index_name = 'sessions_sid') = 0,
    'CREATE UNIQUE INDEX sessions_sid ON sessions (sid)',
    'DO 0');
PREPARE add_sessions_sid_index FROM @add_sessions_sid_index;
EXECUTE add_sessions_sid_index;
DEALLOCATE PREPARE add_sessions_sid_index;
