-- Latchkey schema 4 (MySQL 8 / MariaDB 10.6+): a random salt per OAuth 1.0a registration. See
-- the SQLite migration 6: NULL (rows from before) keeps the legacy derivation until a rotation.
--
-- MySQL has no `ADD COLUMN IF NOT EXISTS` (MariaDB has), so the column is added only when the
-- information schema does not list it yet: the migration can run again after an interruption.

SET @latchkey_add_salt = (
    SELECT IF(COUNT(*) = 0,
              'ALTER TABLE oauth1_consumers ADD COLUMN secret_salt VARCHAR(64) NULL',
              'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE()
      AND table_name = 'oauth1_consumers'
      AND column_name = 'secret_salt'
);
PREPARE latchkey_add_salt FROM @latchkey_add_salt;
EXECUTE latchkey_add_salt;
DEALLOCATE PREPARE latchkey_add_salt;
