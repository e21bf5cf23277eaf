-- ledger_credit and ledger_debit: results, floors, bigint range,
-- transactions and savepoints, every error.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('alice') > 0 AS opened;
SELECT ledger_open_account('overdraft', 'XXX', -500) > 0 AS opened;
SELECT ledger_open_account('source', 'XXX', NULL) > 0 AS opened;

-- credit and debit return the new balance
SELECT ledger_credit('alice', 1000) AS after_credit;
SELECT ledger_debit('alice', 300) AS after_debit;
SELECT ledger_debit('alice', 700) AS down_to_the_floor;

-- one cent below the floor: LG001, and nothing changes
SELECT ledger_debit('alice', 1);
SELECT ledger_balance('alice') AS still_zero;
SELECT count(*) AS entries FROM ledger.entries e JOIN ledger.accounts a USING (account_id) WHERE a.name = 'alice';

-- an overdraft floor of -500
SELECT ledger_debit('overdraft', 500) AS at_overdraft_limit;
SELECT ledger_debit('overdraft', 1);
SELECT ledger_credit('overdraft', 501) AS back_above;

-- no floor: a source account goes as negative as bigint allows
SELECT ledger_debit('source', 9223372036854775807) AS most_negative_but_one;
SELECT ledger_debit('source', 1) AS int64_min;
SELECT ledger_debit('source', 1);
SELECT ledger_credit('source', 9223372036854775807) AS minus_one;
SELECT ledger_credit('source', 9223372036854775807) AS int64_max_minus_one;
SELECT ledger_credit('source', 1) AS int64_max;
SELECT ledger_credit('source', 1);
SELECT ledger_balance('source') AS unchanged_by_overflow;

-- a floor and a debit so large the subtraction leaves bigint: LG001, not 22003
SELECT ledger_debit('overdraft', 9223372036854775807);

-- bad amounts: 22023; NULLs: 22004; unknown account: LG002
SELECT ledger_credit('alice', 0);
SELECT ledger_debit('alice', 0);
SELECT ledger_debit('alice', -1);
SELECT ledger_credit('alice', -9223372036854775808);
SELECT ledger_debit('alice', -9223372036854775808);
SELECT ledger_debit('alice', 9223372036854775808::bigint);
SELECT ledger_debit(NULL, 1);
SELECT ledger_debit('alice', NULL);
SELECT ledger_credit(NULL, 1);
SELECT ledger_credit('alice', NULL);
SELECT ledger_debit('', 1);
SELECT ledger_debit(repeat('x', 256), 1);
SELECT ledger_debit('nobody', 1);
SELECT ledger_credit('nobody', 1);

-- a rolled-back debit leaves no trace
SELECT ledger_credit('alice', 100) AS funded;
BEGIN;
SELECT ledger_debit('alice', 60) AS inside;
ROLLBACK;
SELECT ledger_balance('alice') AS after_rollback;
SELECT count(*) AS entries FROM ledger.entries e JOIN ledger.accounts a USING (account_id) WHERE a.name = 'alice';

-- a failed debit inside a savepoint leaves the outer transaction usable
BEGIN;
SELECT ledger_debit('alice', 10) AS first;
SAVEPOINT attempt;
SELECT ledger_debit('alice', 1000);
ROLLBACK TO SAVEPOINT attempt;
SELECT ledger_debit('alice', 20) AS second;
COMMIT;
SELECT ledger_balance('alice') AS after_savepoint;

-- the caller's transaction sees its own postings
BEGIN;
SELECT ledger_credit('alice', 5) AS credited;
SELECT ledger_balance('alice') AS seen_inside;
COMMIT;

SELECT * FROM ledger_verify();

-- the messages, in full
\set VERBOSITY default
SELECT ledger_debit('alice', 1000);
SELECT ledger_debit('overdraft', 9223372036854775807);
SELECT ledger_credit('source', 9223372036854775807);
SELECT ledger_debit('alice', 0);
SELECT ledger_debit('alice', NULL);
SELECT ledger_debit('nobody', 1);
