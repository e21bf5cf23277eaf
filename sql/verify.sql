-- ledger_verify: silent on a healthy ledger, loud on a tampered one.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('alice') > 0 AS opened;
SELECT ledger_open_account('bob') > 0 AS opened;
SELECT ledger_open_account('bank', 'XXX', NULL) > 0 AS opened;
SELECT ledger_transfer('bank', 'alice', 100) AS t;
SELECT ledger_transfer('alice', 'bob', 30) AS t;
SELECT ledger_debit('bob', 10) AS b;

SELECT * FROM ledger_verify();

-- a balance changed behind the ledger's back (the owner can write accounts)
BEGIN;
UPDATE ledger.accounts SET balance = balance + 5 WHERE name = 'bob';
SELECT * FROM ledger_verify();
ROLLBACK;

-- a journal entry written behind the ledger's back (appending is allowed)
BEGIN;
INSERT INTO ledger.entries (account_id, amount, balance_after, transfer_id, created_at)
SELECT account_id, 7, 99, 1, now() FROM ledger.accounts WHERE name = 'alice';
SELECT * FROM ledger_verify();
ROLLBACK;

-- a transfer with a missing leg
BEGIN;
INSERT INTO ledger.transfers (from_account_id, to_account_id, amount, created_at)
SELECT f.account_id, t.account_id, 9, now()
  FROM ledger.accounts f, ledger.accounts t WHERE f.name = 'alice' AND t.name = 'bob';
SELECT * FROM ledger_verify();
ROLLBACK;

-- a floor lowered behind the ledger's back, then the balance below the old one
BEGIN;
ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_balance_floor;
UPDATE ledger.accounts SET balance = -1 WHERE name = 'bob';
SELECT * FROM ledger_verify();
ROLLBACK;

SELECT * FROM ledger_verify();
