-- The upgrade path from the first shipped version.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger VERSION '1.0';
RESET client_min_messages;

SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT ledger_open_account('alice') > 0 AS opened;
SELECT ledger_credit('alice', 100, 'before-upgrade') AS balance;
SELECT count(*) AS batch_functions FROM pg_proc WHERE proname LIKE 'ledger\_%\_batch';

ALTER EXTENSION ledger UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'ledger';

-- data and keys survive, the new functions work, and PUBLIC cannot run them
SELECT ledger_credit('alice', 100, 'before-upgrade') AS replayed;
SELECT * FROM ledger_debit_batch(ARRAY['alice'], ARRAY[40]);
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute,
       p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.proname LIKE 'ledger\_%\_batch'
 ORDER BY 1;
SELECT * FROM ledger_verify();

-- a fresh install is the same as an upgraded one
SET client_min_messages = warning;
DROP EXTENSION ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
