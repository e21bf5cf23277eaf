-- ledger_open_account and ledger_balance: results, odd names, every error.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

-- defaults: currency XXX, floor 0
SELECT ledger_open_account('alice') AS alice;
SELECT name, currency, min_balance, balance FROM ledger.accounts ORDER BY account_id;

-- explicit currency, an overdraft floor, no floor
SELECT ledger_open_account('bob', 'EUR', -500) AS bob;
SELECT ledger_open_account('equity', 'EUR', NULL) AS equity;
SELECT ledger_open_account('usd_1', 'US_D1') AS digits_and_underscore;
SELECT ledger_open_account('sixteen', 'ABCDEFGHIJKLMNOP') AS sixteen_char_currency;

-- opening again with identical parameters returns the same id
SELECT ledger_open_account('alice') = ledger_open_account('alice', 'XXX', 0) AS same_id;
SELECT ledger_open_account('bob', 'EUR', -500) AS bob_again;
SELECT ledger_open_account('equity', 'EUR', NULL) AS equity_again;

-- ... and with different parameters is LG005
SELECT ledger_open_account('alice', 'EUR');
SELECT ledger_open_account('alice', 'XXX', -1);
SELECT ledger_open_account('alice', 'XXX', NULL);
SELECT ledger_open_account('equity', 'EUR', 0);

-- odd names are data, stored and found byte for byte
SELECT ledger_open_account('Robert''); DROP TABLE ledger.accounts; --') > 0 AS injection_is_a_name;
SELECT ledger_open_account('semi;colon "quoted" \back') > 0 AS punctuation;
SELECT ledger_open_account('zoë ☕ 账户') > 0 AS unicode;
SELECT ledger_open_account(repeat('x', 255)) > 0 AS exactly_255_bytes;
SELECT ledger_open_account(repeat('é', 127) || 'x') > 0 AS unicode_255_bytes;
SELECT ledger_open_account('ALICE') <> ledger_open_account('alice') AS case_sensitive;
SELECT ledger_balance('Robert''); DROP TABLE ledger.accounts; --') AS injection_balance;
SELECT ledger_balance('zoë ☕ 账户') AS unicode_balance;
SELECT count(*) AS accounts FROM ledger.accounts;

-- bad names: 22023
SELECT ledger_open_account('');
SELECT ledger_open_account(repeat('x', 256));
SELECT ledger_open_account(repeat('é', 128));

-- bad currencies: 22023
SELECT ledger_open_account('c1', 'eur');
SELECT ledger_open_account('c2', '');
SELECT ledger_open_account('c3', 'ABCDEFGHIJKLMNOPQ');
SELECT ledger_open_account('c4', 'EU R');
SELECT ledger_open_account('c5', 'EUR-');
SELECT ledger_open_account('c6', 'ÉUR');

-- a positive floor is refused: a new account starts at 0
SELECT ledger_open_account('c7', 'XXX', 1);

-- NULLs: 22004
SELECT ledger_open_account(NULL);
SELECT ledger_open_account('c8', NULL);
SELECT ledger_balance(NULL);

-- balance of a new account, of a missing one (LG002)
SELECT ledger_balance('alice') AS alice_balance;
SELECT ledger_balance('nobody');

-- nothing above left a stray account behind
SELECT count(*) AS accounts FROM ledger.accounts WHERE name LIKE 'c_';

-- the messages, in full
\set VERBOSITY default
SELECT ledger_open_account('alice', 'EUR');
SELECT ledger_open_account('equity', 'EUR', 0);
SELECT ledger_open_account(repeat('x', 256));
SELECT ledger_open_account('c1', 'eur');
SELECT ledger_open_account('c1', repeat('Z', 100));
SELECT ledger_open_account('c7', 'XXX', 1);
SELECT ledger_open_account(NULL);
SELECT ledger_balance('nobody');
