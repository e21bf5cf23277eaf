-- ledger_history: newest first, running balances, limits, errors.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('alice') > 0 AS opened;
SELECT ledger_open_account('bank', 'XXX', NULL) > 0 AS opened;
SELECT ledger_credit('alice', 100, 'h1') AS b;
SELECT ledger_debit('alice', 40) AS b;
SELECT ledger_transfer('bank', 'alice', 500, 'h3') AS transfer_id;
SELECT ledger_debit('alice', 60, 'h4') AS b;

-- newest first, debits negative, balance_after running
SELECT entry_id, amount, balance_after, transfer_id, idempotency_key,
       created_at IS NOT NULL AS has_time
  FROM ledger_history('alice');
SELECT entry_id, amount, balance_after, transfer_id, idempotency_key
  FROM ledger_history('bank');

-- max_rows
SELECT entry_id, amount FROM ledger_history('alice', 2);
SELECT count(*) AS none FROM ledger_history('alice', 0);
SELECT count(*) AS all_rows FROM ledger_history('alice', 1000);
SELECT count(*) AS empty_account FROM ledger_history('bank', 0);

-- errors
SELECT * FROM ledger_history('alice', -1);
SELECT * FROM ledger_history('alice', NULL);
SELECT * FROM ledger_history(NULL);
SELECT * FROM ledger_history('nobody');
SELECT * FROM ledger_history('');

\set VERBOSITY default
SELECT * FROM ledger_history('alice', -1);
SELECT * FROM ledger_history('nobody');
