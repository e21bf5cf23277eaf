-- Escrow mode (1.3): postings on hot accounts admitted in shared memory,
-- journal entries folded into the balance row by the folder.  The test
-- cluster preloads the library (test/run_all.sh); test/escrow.sh shows a
-- server without it.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

-- wait until the folder has folded every committed entry (at most 30 s)
CREATE FUNCTION pg_temp.folded() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 3000 LOOP
		IF NOT EXISTS (SELECT FROM ledger.entries WHERE balance_after IS NULL) THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN false;
END $$;

SELECT ledger_open_account('bank', 'EUR', NULL) AS bank,
       ledger_open_account('hot', 'EUR') AS hot,
       ledger_open_account('cold', 'EUR') AS cold,
       ledger_open_account('usd', 'USD') AS usd;
SELECT ledger_transfer('bank', 'hot', 1000, 'deposit') > 0 AS funded;

-- the mode: locked by default; the previous mode is returned
SELECT ledger_account_mode('hot') AS mode;
SELECT ledger_set_account_mode('hot', 'escrow') AS previous;
SELECT ledger_account_mode('hot') AS mode;
SELECT ledger_set_account_mode('hot', 'escrow') AS previous;

-- postings insert entries without balance_after; a debit returns the
-- balance as if its transaction committed next
SELECT ledger_debit('hot', 100) AS debit, ledger_credit('hot', 7) AS credit,
       ledger_debit('hot', 50, 'k1') AS keyed, ledger_debit('hot', 50, 'k1') AS replayed;
SELECT ledger_debit('hot', 51, 'k1');
SELECT ledger_balance('hot') AS balance;
SELECT pg_temp.folded() AS folded;
SELECT amount, balance_after FROM ledger_history('hot', 10);
SELECT balance FROM ledger.accounts WHERE name = 'hot';

-- the floor, against the worst case; transfers both ways and across modes
SELECT ledger_debit('hot', 858);
SELECT ledger_transfer('hot', 'cold', 57) > 0 AS to_cold, ledger_transfer('cold', 'hot', 7) > 0 AS back;
SELECT ledger_transfer('hot', 'usd', 1);
SELECT ledger_balance('hot') AS hot, ledger_balance('cold') AS cold;

-- batches
SELECT * FROM ledger_debit_batch(ARRAY['hot', 'hot', 'cold', 'hot'], ARRAY[100, 1000, 1, 50]);
SELECT status, result > 0 AS has_id
  FROM ledger_transfer_batch(ARRAY['hot', 'bank'], ARRAY['cold', 'hot'], ARRAY[10, 200]);
SELECT ledger_balance('hot') AS hot;

-- holds on an escrow account: reserved against every posting; captured,
-- released
SELECT ledger_hold('hot', 300) AS hold_1;
SELECT ledger_available('hot') AS available, ledger_balance('hot') AS balance;
SELECT ledger_debit('hot', ledger_available('hot') + 1);
SELECT ledger_capture(1, 100, 'cold') AS hot_after;
SELECT ledger_hold('hot', 10, '1 millisecond') AS hold_2;
SELECT pg_sleep(0.01);
SELECT ledger_available('hot') = ledger_balance('hot') AS expired_reserves_nothing;
SELECT ledger_release(2) AS released;
SELECT ledger_hold('hot', 5) AS hold_3;
SELECT ledger_release(3) AS released;
SELECT ledger_available('hot') AS available, ledger_balance('hot') AS balance;

-- several holds in one transaction: each sees the others, once
BEGIN;
SELECT ledger_hold('hot', 300) > 0 AS h4, ledger_hold('hot', 400) > 0 AS h5;
SELECT ledger_available('hot') AS available;
SELECT ledger_hold('hot', ledger_available('hot') + 1);
ROLLBACK;
BEGIN;
SELECT ledger_hold('hot', 300) > 0 AS h6;
SELECT ledger_hold('hot', 400) > 0 AS h7;
SELECT ledger_release(h) AS released
  FROM (SELECT hold_id AS h FROM ledger.pending_holds ORDER BY hold_id) p;
COMMIT;
SELECT held, ledger_available('hot') = ledger_balance('hot') AS all_available
  FROM ledger.accounts WHERE name = 'hot';

-- a transaction's reservation ends with it: rolled back, a savepoint
BEGIN;
SELECT ledger_debit('hot', 600) AS debit;
SAVEPOINT s;
SELECT ledger_debit('hot', 0 + ledger_balance('hot')) AS all_of_it;
ROLLBACK TO s;
SELECT ledger_balance('hot') AS balance;
ROLLBACK;
SELECT ledger_debit('hot', ledger_balance('hot')) AS emptied;
SELECT ledger_credit('hot', 1000) AS refilled;

-- no 40001 under REPEATABLE READ: an escrow posting updates no row
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ledger_balance('hot') AS seen;
SELECT ledger_debit('hot', 1) AS debit;
COMMIT;

-- PREPARE TRANSACTION after an escrow posting: 0A000, and it is undone
BEGIN;
SELECT ledger_debit('hot', 1) AS debit;
PREPARE TRANSACTION 'escrow';
SELECT ledger_balance('hot') AS balance;
-- ... and after a mode switch alone, which is undone too
BEGIN;
SELECT ledger_set_account_mode('hot', 'locked') AS previous;
PREPARE TRANSACTION 'escrow';
SELECT ledger_account_mode('hot') AS still_escrow;

-- a point in time and the audit, folded and not
SELECT pg_temp.folded() AS folded;
SELECT bool_and(ledger_balance_at('hot', created_at) = balance_after) AS at_each_entry
  FROM (SELECT DISTINCT ON (created_at) created_at, balance_after
		  FROM ledger_history('hot', 1000)
		 ORDER BY created_at, entry_id DESC) last_of_each_instant;
SELECT * FROM ledger_verify();
SELECT count(*) AS escrow_keys FROM ledger.idempotency_keys WHERE escrow;

-- back to locked mode: everything folded first; postings lock the row again
SELECT ledger_set_account_mode('hot', 'locked') AS previous;
SELECT count(*) AS unfolded FROM ledger.entries WHERE balance_after IS NULL;
SELECT ledger_debit('hot', 1) AS locked_debit;
SELECT * FROM ledger_verify();

-- the audit sees an unfolded entry older than a folded one, and a
-- balance_after below the floor (tampered with, then rolled back)
SELECT ledger_set_account_mode('cold', 'escrow') AS previous;
SELECT ledger_debit('cold', 1) AS debit;
SELECT pg_temp.folded() AS folded;
BEGIN;
ALTER TABLE ledger.entries DISABLE TRIGGER entries_append_only;
UPDATE ledger.entries SET balance_after = NULL
 WHERE entry_id = (SELECT min(entry_id) FROM ledger.entries
					 WHERE account_id = (SELECT account_id FROM ledger.accounts WHERE name = 'cold'));
UPDATE ledger.entries SET balance_after = -1
 WHERE entry_id = (SELECT max(entry_id) FROM ledger.entries
					 WHERE account_id = (SELECT account_id FROM ledger.accounts WHERE name = 'cold'));
SELECT * FROM ledger_verify();
ROLLBACK;
SELECT count(*) AS problems FROM ledger_verify();

-- bad input: the documented SQLSTATE, and nothing changes
SELECT ledger_set_account_mode(NULL, 'escrow');
SELECT ledger_set_account_mode('hot', NULL);
SELECT ledger_set_account_mode('hot', 'fast');
SELECT ledger_set_account_mode('nobody', 'escrow');
SELECT ledger_set_account_mode('', 'escrow');
SELECT ledger_account_mode(NULL);
SELECT ledger_account_mode('nobody');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ledger_set_account_mode('hot', 'escrow');
ROLLBACK;
SELECT ledger_account_mode('hot') AS unchanged;

-- the messages, once each
\set VERBOSITY default
SELECT ledger_set_account_mode('hot', 'fast');
BEGIN;
SELECT ledger_set_account_mode('cold', 'locked') IS NOT NULL AS switched;
SELECT ledger_set_account_mode('hot', 'escrow') AS previous;
SELECT ledger_debit('hot', 1) > 0 AS debited;
PREPARE TRANSACTION 'escrow';
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT ledger_set_account_mode('hot', 'locked');
ROLLBACK;
