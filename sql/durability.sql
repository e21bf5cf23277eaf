-- The durability settings as SQL sees them.  The forced synchronous
-- commit itself is proven by test/crash.sh and test/durability.sh.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('alice') > 0 AS opened;

-- the forced synchronous commit lasts for the transaction only: the
-- session's own choice is back afterwards
SET synchronous_commit = off;
SELECT ledger_credit('alice', 10) AS credited;
SHOW synchronous_commit;
BEGIN;
SELECT ledger_credit('alice', 10) AS credited;
SET LOCAL synchronous_commit = local;
COMMIT;
SHOW synchronous_commit;
RESET synchronous_commit;

-- ledger.data_is_disposable: off by default, superuser only
SHOW ledger.data_is_disposable;
SET client_min_messages = warning;
DROP ROLE IF EXISTS ledger_regress_user;
CREATE ROLE ledger_regress_user;
RESET client_min_messages;
SET ROLE ledger_regress_user;
SET ledger.data_is_disposable = on;
RESET ROLE;
DROP ROLE ledger_regress_user;

-- the ledger.* prefix is reserved: a typo is an error, not a silent no-op
SET ledger.data_is_disposeable = on;
