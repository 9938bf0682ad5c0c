-- Latchkey schema 14 (SQLite): the OpenID Connect side of login sessions (issue 16).
--
-- `sid` is the public session identifier put in ID tokens and logout tokens (OpenID Connect
-- Back-Channel Logout §2.4): random, unrelated to the cookie's secret, unique. `clients` lists,
-- as a JSON array, the clients that got a code or a token in the session: who receives a
-- back-channel logout when it ends (NULL: none yet). Sessions that existed before this
-- migration get a random `sid` here and an empty client list.

ALTER TABLE sessions ADD COLUMN sid TEXT;
ALTER TABLE sessions ADD COLUMN clients TEXT;

UPDATE sessions SET sid = lower(hex(randomblob(16))) WHERE sid IS NULL;

CREATE UNIQUE INDEX sessions_sid ON sessions (sid);
