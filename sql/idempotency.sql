-- Idempotency keys: replay, conflicts, failed calls, key validation.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('alice') > 0 AS opened;
SELECT ledger_open_account('bob') > 0 AS opened;
SELECT ledger_open_account('bank', 'XXX', NULL) > 0 AS opened;

-- a committed key replays its original result and changes nothing
SELECT ledger_credit('alice', 100, 'k-credit') AS first;
SELECT ledger_credit('alice', 100, 'k-credit') AS replayed;
SELECT ledger_debit('alice', 30, 'k-debit') AS first;
SELECT ledger_credit('alice', 1000) AS moved_on;
SELECT ledger_debit('alice', 30, 'k-debit') AS replays_original_balance;
SELECT ledger_balance('alice') AS balance;
SELECT count(*) AS entries_with_key FROM ledger.entries WHERE idempotency_key IN ('k-credit', 'k-debit');

-- a replay is answered even when the request would now be refused
SELECT ledger_debit('alice', 1070, 'k-drain') AS drained;
SELECT ledger_debit('alice', 1070, 'k-drain') AS replayed_not_lg001;

-- transfers replay their id
SELECT ledger_transfer('bank', 'bob', 50, 'k-transfer') AS transfer_id;
SELECT ledger_transfer('bank', 'bob', 50, 'k-transfer') AS same_transfer_id;
SELECT count(*) AS transfers FROM ledger.transfers;
SELECT ledger_balance('bob') AS bob;

-- the same key for a different request: LG003, nothing changes
SELECT ledger_debit('alice', 31, 'k-debit');
SELECT ledger_debit('bob', 30, 'k-debit');
SELECT ledger_credit('alice', 30, 'k-debit');
SELECT ledger_transfer('bank', 'alice', 50, 'k-transfer');
SELECT ledger_transfer('bob', 'bank', 50, 'k-transfer');
SELECT ledger_transfer('bank', 'bob', 51, 'k-transfer');
SELECT ledger_debit('bob', 50, 'k-transfer');
SELECT ledger_balance('alice') AS alice, ledger_balance('bob') AS bob;

-- a failed call leaves its key unused: the retry is evaluated afresh
SELECT ledger_debit('bob', 500, 'k-retry');
SELECT count(*) AS key_rows FROM ledger.idempotency_keys WHERE idempotency_key = 'k-retry';
SELECT ledger_credit('bob', 1000) AS topped_up;
SELECT ledger_debit('bob', 500, 'k-retry') AS retry_applies;
SELECT ledger_debit('bob', 500, 'k-retry') AS then_replays;

-- so does a rolled-back one
BEGIN;
SELECT ledger_debit('bob', 1, 'k-rolled-back') AS inside;
ROLLBACK;
SELECT ledger_debit('bob', 2, 'k-rolled-back') AS different_amount_is_fine;

-- a key for an unknown account is not consumed
SELECT ledger_debit('nobody', 1, 'k-nobody');
SELECT ledger_credit('alice', 1, 'k-nobody') AS key_still_free;

-- keys are 1 to 255 bytes of any text; NULL means no key
SELECT ledger_credit('alice', 1, repeat('k', 255)) AS key_255_bytes;
SELECT ledger_credit('alice', 1, 'ключ; DROP TABLE x; --''"') AS odd_key;
SELECT ledger_credit('alice', 1, 'ключ; DROP TABLE x; --''"') AS odd_key_replays;
SELECT ledger_credit('alice', 1, NULL) AS no_key;
SELECT ledger_credit('alice', 1, NULL) AS no_key_applies_again;
SELECT ledger_credit('alice', 1, '');
SELECT ledger_credit('alice', 1, repeat('k', 256));
SELECT ledger_transfer('bank', 'alice', 1, '');

-- keys are case- and byte-exact
SELECT ledger_credit('alice', 1, 'K-CREDIT') AS other_key;

SELECT * FROM ledger_verify();

-- the messages, in full
\set VERBOSITY default
SELECT ledger_debit('alice', 31, 'k-debit');
SELECT ledger_transfer('bob', 'bank', 50, 'k-transfer');
SELECT ledger_credit('alice', 1, repeat('k', 256));
