-- ledger_transfer: double entry, currencies, floors, every error.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('bank', 'EUR', NULL) > 0 AS opened;
SELECT ledger_open_account('alice', 'EUR') > 0 AS opened;
SELECT ledger_open_account('bob', 'EUR') > 0 AS opened;
SELECT ledger_open_account('carol', 'USD') > 0 AS opened;
SELECT ledger_open_account('big', 'EUR', NULL) > 0 AS opened;

-- a transfer returns its id; the ids increase
SELECT ledger_transfer('bank', 'alice', 1000) AS first_transfer;
SELECT ledger_transfer('alice', 'bob', 400) AS second_transfer;
SELECT ledger_balance('bank') AS bank, ledger_balance('alice') AS alice, ledger_balance('bob') AS bob;

-- two entries per transfer that sum to zero
SELECT t.transfer_id, a.name, e.amount, e.balance_after
  FROM ledger.entries e
  JOIN ledger.transfers t USING (transfer_id)
  JOIN ledger.accounts a ON a.account_id = e.account_id
 ORDER BY e.entry_id;
SELECT transfer_id, sum(amount) AS net FROM ledger.entries GROUP BY transfer_id ORDER BY 1;

-- in either direction, whichever id is lower
SELECT ledger_transfer('bob', 'alice', 100) AS reverse_direction;

-- refused transfers change nothing
SELECT ledger_transfer('alice', 'bob', 701);
SELECT ledger_transfer('alice', 'carol', 1);
SELECT ledger_transfer('alice', 'alice', 1);
SELECT ledger_transfer('alice', 'nobody', 1);
SELECT ledger_transfer('nobody', 'alice', 1);
SELECT ledger_transfer('nobody', 'nobody2', 1);
SELECT ledger_transfer('alice', 'bob', 0);
SELECT ledger_transfer('alice', 'bob', -5);
SELECT ledger_transfer(NULL, 'bob', 1);
SELECT ledger_transfer('alice', NULL, 1);
SELECT ledger_transfer('alice', 'bob', NULL);
SELECT ledger_transfer('', 'bob', 1);
SELECT ledger_transfer('alice', repeat('b', 256), 1);

-- the receiving balance would leave bigint: 22003
SELECT ledger_credit('big', 9223372036854775000) > 0 AS big_is_big;
SELECT ledger_transfer('bank', 'big', 1000);

SELECT ledger_balance('bank') AS bank, ledger_balance('alice') AS alice, ledger_balance('bob') AS bob;
SELECT count(*) AS transfers FROM ledger.transfers;
SELECT * FROM ledger_verify();

-- the messages, in full
\set VERBOSITY default
SELECT ledger_transfer('alice', 'bob', 701);
SELECT ledger_transfer('alice', 'carol', 1);
SELECT ledger_transfer('alice', 'alice', 1);
SELECT ledger_transfer('alice', 'nobody', 1);
SELECT ledger_transfer('bank', 'big', 1000);
