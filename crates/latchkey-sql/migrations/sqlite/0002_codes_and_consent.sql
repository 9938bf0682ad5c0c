-- Latchkey schema 2 (SQLite): authorization codes and remembered consent.
--
-- Codes are keyed by the SHA-256 digest of their value, like tokens; the value itself is
-- never stored. A code is single use: taking it sets `used`, and a used code is kept until it
-- expires so that a replay is recognised (RFC 6749 §4.1.2). Expired codes are swept by the
-- writer. Neither table has foreign keys: a store forgets codes and consent explicitly when
-- their client or user is deleted.

CREATE TABLE codes (
    digest            BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    client_id         TEXT    NOT NULL,
    redirect_uri      TEXT    NOT NULL,
    -- 1 if the authorization request carried redirect_uri (RFC 6749 §4.1.3).
    redirect_uri_sent INTEGER NOT NULL,
    subject           TEXT    NOT NULL,
    username          TEXT    NOT NULL,
    -- Space-separated scope tokens.
    scope             TEXT    NOT NULL,
    -- The PKCE method (RFC 7636: "S256" or "plain") and challenge, both or neither.
    challenge_method  TEXT,
    challenge         TEXT,
    -- The OpenID Connect nonce, when one was sent.
    nonce             TEXT,
    family            TEXT    NOT NULL,
    issued_at         INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    used              INTEGER NOT NULL DEFAULT 0,
    CHECK ((challenge_method IS NULL) = (challenge IS NULL))
) STRICT;

CREATE INDEX codes_expires_at ON codes (expires_at);
CREATE INDEX codes_client_id ON codes (client_id);
CREATE INDEX codes_subject ON codes (subject);

-- The scopes a resource owner (subject) has approved for a client; one row per pair,
-- replaced when they approve again.
CREATE TABLE consents (
    subject    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    -- Space-separated scope tokens.
    scope      TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (subject, client_id)
) STRICT;

CREATE INDEX consents_client_id ON consents (client_id);
