-- Latchkey schema 12 (PostgreSQL): the OpenID Connect side of login sessions (issue 16). See
-- the SQLite migration 14: a public, random, unique `sid` and the JSON array of the clients
-- that got a code or a token in the session. Sessions that existed before get a random `sid`.

ALTER TABLE sessions ADD COLUMN sid TEXT;
ALTER TABLE sessions ADD COLUMN clients TEXT;

UPDATE sessions SET sid = md5(random()::text || encode(digest, 'hex')) WHERE sid IS NULL;

ALTER TABLE sessions ALTER COLUMN sid SET NOT NULL;
CREATE UNIQUE INDEX sessions_sid ON sessions (sid);
