-- The shard side of a transfer between shards (extension 1.4,
-- ARCHITECTURE §9): what ledger_router calls on the source and the
-- destination shard.  One database plays both shards here; test/router.sh
-- runs the whole protocol over four.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('bank', 'EUR', NULL) > 0 AS bank,
       ledger_open_account('alice', 'EUR') > 0 AS alice,
       ledger_open_account('bob', 'EUR') > 0 AS bob,
       ledger_open_account('usd', 'USD') > 0 AS usd;
SELECT ledger_transfer('bank', 'alice', 100) > 0 AS funded;

-- step 0, on the destination: its currency, after the checks of
-- ledger_transfer's arguments; it writes nothing
SELECT ledger_transfer_check('alice', 'bob', 10, 'k') AS currency;
SELECT ledger_transfer_check('alice', 'usd', 10, 'k') AS currency;
SELECT ledger_transfer_check('alice', 'nobody', 10, 'k');
SELECT ledger_transfer_check('alice', 'bob', 0, 'k');
SELECT ledger_transfer_check('alice', 'bob', NULL, 'k');
SELECT ledger_transfer_check('alice', 'bob', 10, NULL);
SELECT ledger_transfer_check('alice', 'bob', 10, '');
SELECT ledger_transfer_check(NULL, 'bob', 10, 'k');
SELECT ledger_transfer_check('alice', 'alice', 10, 'k');
SELECT ledger_transfer_check('alice', repeat('x', 256), 10, 'k');

-- step 1, on the source: a hold that never expires, and the intent
SELECT ledger_transfer_out('alice', 'bob', 'EUR', 30, 't-1') AS t1 \gset
SELECT ledger_balance('alice') AS balance, ledger_available('alice') AS available;
SELECT transfer_id = :t1 AS same_id, idempotency_key, from_account, to_account, amount,
       status, captured
  FROM ledger_transfers_out('t-1');
SELECT amount, status, expires_at, idempotency_key ~ '^lr/out/[0-9a-f]{64}$' AS key_of_transfers
  FROM ledger_holds('alice');
-- the same key again is the same transfer; another request under it, LG003
SELECT ledger_transfer_out('alice', 'bob', 'EUR', 30, 't-1') = :t1 AS replayed;
SELECT ledger_transfer_out('alice', 'bob', 'EUR', 31, 't-1');
SELECT ledger_transfer_out('alice', 'carol', 'EUR', 30, 't-1');
SELECT ledger_transfer_out('bank', 'bob', 'EUR', 30, 't-1');
-- refusals hold nothing
SELECT ledger_transfer_out('alice', 'bob', 'EUR', 71, 't-2');
SELECT ledger_transfer_out('alice', 'bob', 'USD', 1, 't-2');
SELECT ledger_transfer_out('nobody', 'bob', 'EUR', 1, 't-2');
SELECT ledger_transfer_out('alice', 'alice', 'EUR', 1, 't-2');
SELECT ledger_transfer_out('alice', 'bob', 'eur', 1, 't-2');
SELECT ledger_transfer_out('alice', 'bob', 'EUR', -1, 't-2');
SELECT ledger_transfer_out('alice', 'bob', 'EUR', 1, NULL);
SELECT ledger_transfer_out('alice', NULL, 'EUR', 1, 't-2');
SELECT ledger_transfer_out('alice', 'bob', NULL, 1, 't-2');
SELECT ledger_available('alice') AS available, count(*) AS intents FROM ledger_transfers_out();

-- recovery's list: transfers held at least that long
SELECT idempotency_key, from_account, to_account, amount FROM ledger_transfers_unfinished('0');
SELECT count(*) AS young FROM ledger_transfers_unfinished('1 hour');
SELECT ledger_transfers_unfinished(NULL);
SELECT ledger_transfers_unfinished('-1 second');

-- the hold of a transfer ends only by its finish (55000); no other hold
-- may take a key of its kind (22023)
SELECT ledger_release(hold_id) FROM ledger_holds('alice');
SELECT ledger_capture(hold_id) FROM ledger_holds('alice');
SELECT ledger_capture(hold_id, 30, 'bob') FROM ledger_holds('alice');
-- keys beginning with "lr/" are the ledger's own, for every posting
SELECT ledger_hold('alice', 1, NULL, 'lr/out/mine');
SELECT ledger_credit('bob', 1, 'lr/in/origin-1');
SELECT ledger_debit('alice', 1, 'lr/');
SELECT * FROM ledger_debit_batch(ARRAY['alice'], ARRAY[1], ARRAY['lr/x']);
SELECT ledger_transfer_out('alice', 'bob', 'EUR', 1, 'lr/x');
SELECT ledger_hold('alice', 1, NULL, 'lr-outside') > 0 AS other_prefixes_are_fine;

-- step 2 on the destination: a credit under the key "lr/in/<origin>" (the
-- router makes the origin of the source account and the transfer's key), in
-- the transfer's currency; the audit reads it back
SELECT ledger_transfer_in('bob', 'USD', 30, 'origin-1');
SELECT ledger_transfer_in('nobody', 'EUR', 30, 'origin-1');
SELECT ledger_transfer_in('bob', 'EUR', 30, NULL);
SELECT ledger_transfer_in('bob', 'EUR', 30, '');
SELECT ledger_transfer_in('bob', 'EUR', 30, repeat('o', 250));
SELECT ledger_transfer_in('bob', 'EUR', 0, 'origin-1');
SELECT ledger_transfer_in('bob', 'EUR', 30, 'origin-1') AS bob;
SELECT ledger_transfer_in('bob', 'EUR', 30, 'origin-1') AS bob_again;
SELECT ledger_transfer_in('bob', 'EUR', 31, 'origin-1');
SELECT * FROM ledger_transfers_in(ARRAY['lr/in/origin-1', 'lr/in/origin-0', 'bank-key']);
SELECT account, amount FROM ledger_transfers_in(NULL);

-- step 3, on the source: the hold captured whole; again, the same id
SELECT ledger_transfer_finish('t-1') = :t1 AS finished;
SELECT ledger_transfer_finish('t-1') = :t1 AS finished_again;
SELECT ledger_balance('alice') AS balance, ledger_available('alice') AS available;
SELECT status, captured FROM ledger_transfers_out('t-1');
SELECT count(*) AS unfinished FROM ledger_transfers_unfinished('0');
SELECT ledger_transfer_finish('t-none');
SELECT ledger_transfer_finish(NULL);
-- a replay after the finish is still the same transfer, and holds nothing
SELECT ledger_transfer_out('alice', 'bob', 'EUR', 30, 't-1') = :t1 AS replayed_after_finish;
SELECT ledger_available('alice') AS available;
-- ids come from the sequence of local transfers: a local one never has the same
SELECT ledger_transfer('alice', 'bob', 1) <> :t1 AS distinct_ids;
SELECT * FROM ledger_verify();

-- intents are append-only, for every role
UPDATE ledger.transfers_out SET amount = 1;
DELETE FROM ledger.transfers_out;
TRUNCATE ledger.transfers_out;
SELECT count(*) AS intents FROM ledger_transfers_out();
