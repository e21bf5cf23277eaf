-- ledger_debit_batch and ledger_transfer_batch: per-item statuses, order,
-- idempotency per item, whole-call errors.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('alice') > 0 AS opened;
SELECT ledger_open_account('bob') > 0 AS opened;
SELECT ledger_open_account('carol', 'USD') > 0 AS opened;
SELECT ledger_open_account('bank', 'XXX', NULL) > 0 AS opened;
SELECT ledger_open_account('big', 'XXX', NULL) > 0 AS opened;
SELECT ledger_credit('alice', 100) AS alice, ledger_credit('bob', 50) AS bob;

-- items apply in order; a refused item changes nothing and stops nothing
SELECT * FROM ledger_debit_batch(
	ARRAY['alice', 'alice', 'nobody', 'alice', 'bob', 'alice', '', 'bob'],
	ARRAY[30, 80, 5, 70, 0, 1, 1, 50]);
SELECT ledger_balance('alice') AS alice, ledger_balance('bob') AS bob;
SELECT a.name, e.amount, e.balance_after
  FROM ledger.entries e JOIN ledger.accounts a USING (account_id)
 ORDER BY e.entry_id;

-- bigint range: no floor, so the source can fall to the bottom and no further
SELECT * FROM ledger_debit_batch(ARRAY['big', 'big', 'big'],
								 ARRAY[9223372036854775807, 1, 1]);

-- transfers: double entry per item, currencies, self-transfers, overflow
SELECT ledger_credit('big', 9223372036854775807) AS refilled, ledger_credit('big', 9223372036854775807) AS near_max;
SELECT ordinal, status, result IS NOT NULL AS has_id FROM ledger_transfer_batch(
	ARRAY['bank', 'alice', 'alice', 'alice', 'nobody', 'bank', 'bank', 'bob'],
	ARRAY['alice', 'bob', 'carol', 'alice', 'bob', 'big', 'bob', 'alice'],
	ARRAY[100, 60, 1, 1, 1, 2, -1, 40]);
SELECT ledger_balance('alice') AS alice, ledger_balance('bob') AS bob, ledger_balance('bank') AS bank;
SELECT count(*) AS transfers FROM ledger.transfers;
SELECT result AS batch_transfer_id FROM ledger_transfer_batch(ARRAY['bank'], ARRAY['alice'], ARRAY[1]) \gset
SELECT :batch_transfer_id = max(transfer_id) AS ids_match FROM ledger.transfers;

-- idempotency per item: replays, conflicts, duplicates inside one batch
SELECT * FROM ledger_debit_batch(ARRAY['alice', 'alice'], ARRAY[10, 10], ARRAY['b1', NULL]);
SELECT * FROM ledger_debit_batch(ARRAY['alice', 'alice', 'alice', 'alice', 'bob'],
								 ARRAY[10, 10, 11, 5, 1],
								 ARRAY['b1', 'b2', 'b2', 'b2', 'b1']);
SELECT ledger_debit('alice', 10, 'b1') AS single_call_replays_batch_key;
SELECT ledger_debit('alice', 5, 'b2');
SELECT count(*) AS b_keys FROM ledger.idempotency_keys WHERE idempotency_key LIKE 'b_';
-- a failed item leaves its key unused, even when a later item reuses it
SELECT * FROM ledger_debit_batch(ARRAY['bob', 'bob'], ARRAY[1000000, 1], ARRAY['b3', 'b3']);
-- transfer keys replay the transfer id, also inside the batch
SELECT count(DISTINCT result) AS one_transfer, count(*) AS two_items
  FROM ledger_transfer_batch(ARRAY['bank', 'bank'], ARRAY['bob', 'bob'], ARRAY[7, 7], ARRAY['t1', 't1']);
SELECT r.result = k.result AS replays_id
  FROM ledger_transfer_batch(ARRAY['bank'], ARRAY['bob'], ARRAY[7], ARRAY['t1']) r,
	   ledger.idempotency_keys k WHERE k.idempotency_key = 't1';
SELECT ledger_transfer('bank', 'bob', 7, 't1') = (SELECT result FROM ledger.idempotency_keys WHERE idempotency_key = 't1') AS single_replays;
SELECT status FROM ledger_debit_batch(ARRAY['alice'], ARRAY[1], ARRAY['']);
SELECT status FROM ledger_debit_batch(ARRAY['alice'], ARRAY[1], ARRAY[repeat('k', 256)]);

-- empty batches
SELECT count(*) AS no_rows FROM ledger_debit_batch('{}', '{}');
SELECT count(*) AS no_rows FROM ledger_transfer_batch('{}', '{}', '{}');

-- whole-call errors: nothing is applied
SELECT * FROM ledger_debit_batch(ARRAY['alice', 'bob'], ARRAY[1]);
SELECT * FROM ledger_debit_batch(ARRAY['alice'], ARRAY[1], ARRAY['x', 'y']);
SELECT * FROM ledger_transfer_batch(ARRAY['alice'], ARRAY['bob', 'bob'], ARRAY[1]);
SELECT * FROM ledger_transfer_batch(ARRAY['alice'], ARRAY['bob'], ARRAY[1, 2]);
SELECT * FROM ledger_debit_batch(ARRAY['alice', NULL], ARRAY[1, 1]);
SELECT * FROM ledger_debit_batch(ARRAY['alice'], ARRAY[NULL::bigint]);
SELECT * FROM ledger_debit_batch(NULL, ARRAY[1]);
SELECT * FROM ledger_debit_batch(ARRAY['alice'], NULL);
SELECT * FROM ledger_transfer_batch(ARRAY['alice'], ARRAY[NULL], ARRAY[1]);
SELECT * FROM ledger_transfer_batch(ARRAY['alice'], NULL, ARRAY[1]);
SELECT * FROM ledger_debit_batch(ARRAY[['alice']], ARRAY[[1]]);
SELECT count(*) FROM ledger_debit_batch(array_fill('alice'::text, ARRAY[1000001]),
										array_fill(1::bigint, ARRAY[1000001]));

-- a batch rolled back with its transaction leaves no trace
BEGIN;
SELECT status FROM ledger_debit_batch(ARRAY['alice'], ARRAY[1], ARRAY['rolled-back']);
ROLLBACK;
SELECT count(*) AS unused FROM ledger.idempotency_keys WHERE idempotency_key = 'rolled-back';

SELECT * FROM ledger_verify();

\set VERBOSITY default
SELECT count(*) FROM ledger_debit_batch(array_fill('alice'::text, ARRAY[1000001]),
										array_fill(1::bigint, ARRAY[1000001]));
SELECT * FROM ledger_debit_batch(ARRAY['alice', 'bob'], ARRAY[1]);
SELECT * FROM ledger_debit_batch(ARRAY['alice', NULL], ARRAY[1, 1]);
SELECT * FROM ledger_debit_batch(ARRAY[['alice']], ARRAY[[1]]);
