-- Holds: money reserved now, posted later or released; expiry without a
-- sweep; point-in-time balances and history paging (ARCHITECTURE §7).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT ledger_open_account('bank', 'EUR', NULL) > 0 AS bank,
       ledger_open_account('alice', 'EUR') > 0 AS alice,
       ledger_open_account('shop', 'EUR') > 0 AS shop,
       ledger_open_account('usd', 'USD') > 0 AS usd;
SELECT ledger_transfer('bank', 'alice', 1000) > 0 AS funded;

-- a hold reserves: the balance stays, what is available shrinks
SELECT ledger_hold('alice', 300) AS hold_1;
SELECT ledger_balance('alice') AS balance, ledger_available('alice') AS available;

-- no posting spends what the hold reserves: debits, transfers, batches, holds
SELECT ledger_debit('alice', 701);
SELECT ledger_debit('alice', 701, 'over-key');
SELECT ledger_transfer('alice', 'shop', 701);
SELECT * FROM ledger_debit_batch(ARRAY['alice'], ARRAY[701]);
SELECT * FROM ledger_transfer_batch(ARRAY['alice'], ARRAY['shop'], ARRAY[701]);
SELECT ledger_hold('alice', 701);
SELECT ledger_debit('alice', 700) AS down_to_what_is_held;
SELECT ledger_available('alice') AS nothing_available;
SELECT ledger_debit('alice', 1);
SELECT ledger_hold('alice', 1);

-- a partial capture to the shop: the rest of the hold is released
SELECT ledger_capture(1, 200, 'shop') AS alice_after;
SELECT ledger_balance('alice') AS alice, ledger_available('alice') AS available,
       ledger_balance('shop') AS shop;
-- the same capture again returns the first result; other arguments are LG003
SELECT ledger_capture(1, 200, 'shop') AS replayed;
SELECT ledger_capture(1, 100, 'shop');
SELECT ledger_capture(1, 200);
SELECT ledger_capture(1);
-- a captured hold cannot be released
SELECT ledger_release(1);

-- a release ends a pending hold; again, it is false
SELECT ledger_hold('alice', 50) AS hold_2;
SELECT ledger_available('alice') AS available;
SELECT ledger_release(2) AS released, ledger_release(2) AS released_again,
       ledger_available('alice') AS available;
SELECT ledger_capture(2);

-- the whole hold captured as a debit; a key replays a hold
SELECT ledger_hold('alice', 40, NULL, 'hold-key') AS hold_3;
SELECT ledger_hold('alice', 40, NULL, 'hold-key') AS replayed_hold_3;
SELECT ledger_hold('alice', 41, NULL, 'hold-key');
SELECT ledger_hold('alice', 40, '1 day', 'hold-key');
SELECT ledger_debit('alice', 40, 'hold-key');
SELECT ledger_capture(3) AS debited;
SELECT ledger_capture(3, 40) AS replayed_with_its_amount;
SELECT ledger_hold('alice', 40, NULL, 'hold-key') AS still_replays_after_the_end;
SELECT amount, balance_after FROM ledger_history('alice', 1);

-- interval equality: the same hold by another spelling replays
SELECT ledger_hold('alice', 5, '1 day', 'day-key') AS hold_4;
SELECT ledger_hold('alice', 5, '24 hours', 'day-key') AS replayed_hold_4;
SELECT ledger_release(4) AS released;

-- expiry is exact, without a sweep: what expired reserves nothing and
-- cannot be captured
SELECT ledger_hold('alice', 10, '1 millisecond') AS hold_5;
SELECT pg_sleep(0.05);
SELECT ledger_available('alice') = ledger_balance('alice') AS all_available;
SELECT status FROM ledger_holds('alice', 1);
SELECT ledger_capture(5);
SELECT ledger_debit('alice', ledger_balance('alice')) AS spent_what_expired_held;
SELECT ledger_transfer('bank', 'alice', 500) > 0 AS refunded;
-- a release of a hold that expired records the expiry: false
SELECT ledger_release(5) AS released_expired;
SELECT ledger_expire_holds() AS nothing_left_to_sweep;

-- the sweep records what expired, once
SELECT ledger_hold('alice', 5, '1 millisecond') AS hold_6,
       ledger_hold('alice', 6, '1 millisecond') AS hold_7,
       ledger_hold('alice', 7, '1 hour') AS hold_8;
SELECT pg_sleep(0.05);
SELECT ledger_expire_holds() AS swept;
SELECT ledger_expire_holds() AS swept_again;
SELECT hold_id, amount, captured, status, created_at <= now() AS made,
       expires_at IS NULL AS never_expires, expires_at - created_at AS expires_after
  FROM ledger_holds('alice');
SELECT ledger_available('alice') AS available, ledger_balance('alice') AS balance;
SELECT ledger_release(8) AS released;

-- capture of a hold on a source needs the right to create money (a
-- superuser has it); capture to another currency is refused
SELECT ledger_hold('bank', 100) AS hold_9;
SELECT ledger_capture(9, NULL, 'usd');
SELECT ledger_capture(9, 25, 'alice') AS bank_after;

-- bad input: the documented SQLSTATE, and nothing changes
SELECT ledger_available('alice') AS before_bad_input;
SELECT ledger_hold(NULL, 1);
SELECT ledger_hold('alice', NULL);
SELECT ledger_hold('alice', 0);
SELECT ledger_hold('alice', -1);
SELECT ledger_hold('alice', 1, '0 seconds');
SELECT ledger_hold('alice', 1, '-1 day');
-- past the timestamp range, over 1000 years, or positive by interval
-- comparison (30-day months) but ending before it starts (12 months are
-- 365 or 366 days): 22023
SELECT ledger_hold('alice', 1, '300000 years');
SELECT ledger_hold('alice', 1, '2147483647 days');
SELECT ledger_hold('alice', 1, '1001 years');
SELECT ledger_hold('alice', 1, '-12 months 361 days');
SELECT ledger_hold('', 1);
SELECT ledger_hold(repeat('x', 256), 1);
SELECT ledger_hold('nobody', 1);
SELECT ledger_hold('alice', 1, NULL, '');
SELECT ledger_hold('alice', 1, NULL, repeat('k', 256));
SELECT ledger_hold('alice', 1000000);
SELECT ledger_hold('alice', 1, NULL, 'day-key');
SELECT ledger_hold('alice', 10) AS hold_10;
SELECT ledger_capture(NULL);
SELECT ledger_capture(99999);
SELECT ledger_capture(-1);
SELECT ledger_capture(10, 0);
SELECT ledger_capture(10, -5);
SELECT ledger_capture(10, 11);
SELECT ledger_capture(10, NULL, 'usd');
SELECT ledger_capture(10, NULL, 'alice');
SELECT ledger_capture(10, NULL, 'nobody');
SELECT ledger_capture(10, NULL, '');
SELECT ledger_release(NULL);
SELECT ledger_release(99999);
SELECT ledger_available(NULL);
SELECT ledger_available('nobody');
SELECT * FROM ledger_holds(NULL);
SELECT * FROM ledger_holds('alice', NULL);
SELECT * FROM ledger_holds('alice', -1);
SELECT * FROM ledger_holds('nobody');
SELECT count(*) AS none FROM ledger_holds('alice', 0);
SELECT ledger_balance_at(NULL, now());
SELECT ledger_balance_at('alice', NULL);
SELECT ledger_balance_at('nobody', now());
SELECT ledger_available('alice') AS after_bad_input;
SELECT ledger_release(10) AS released;

-- the messages, once each
\set VERBOSITY default
SELECT ledger_capture(99999);
SELECT ledger_capture(1, 5);
SELECT ledger_release(1);
SELECT ledger_capture(2);
SELECT ledger_capture(9, 1000);
SELECT ledger_hold('alice', 1, '-1 hour');
SELECT ledger_hold('alice', 1, '300000 years');
SELECT ledger_hold('alice', 10) AS hold_11;
SELECT ledger_debit('alice', ledger_balance('alice'));
SELECT ledger_release(11) AS released;
\set VERBOSITY sqlstate

-- balances at a time: 0 before the first entry, the running balance after
SELECT ledger_balance_at('alice', '-infinity') AS before_the_first,
       ledger_balance_at('alice', 'infinity') = ledger_balance('alice') AS now;
SELECT bool_and(ledger_balance_at('alice', created_at) = balance_after) AS at_each_entry
  FROM (SELECT DISTINCT ON (created_at) created_at, balance_after
		  FROM ledger_history('alice', 1000)
		 ORDER BY created_at, entry_id DESC) last_of_each_instant;

-- history, page by page: before_entry_id
SELECT count(*) AS entries FROM ledger_history('alice', 1000);
SELECT (SELECT array_agg(entry_id ORDER BY entry_id DESC) FROM (
		  SELECT entry_id FROM ledger_history('alice', 3)
		  UNION ALL
		  SELECT entry_id FROM ledger_history('alice', 3,
				(SELECT min(entry_id) FROM ledger_history('alice', 3)))) pages)
	   = (SELECT array_agg(entry_id ORDER BY entry_id DESC) FROM ledger_history('alice', 6))
	   AS two_pages_are_the_newest_six;
SELECT amount FROM ledger_history('alice', 2);
SELECT amount FROM ledger_history('alice', 2,
	(SELECT min(entry_id) FROM ledger_history('alice', 2)));
SELECT count(*) AS older_than_the_oldest
  FROM ledger_history('alice', 10, (SELECT min(entry_id) FROM ledger_history('alice', 1000)));
SELECT * FROM ledger_history('alice', 10, NULL) LIMIT 0;

-- the audit: clean; and it sees a tampered held amount, and a pending hold
-- that vanished from the pending ones
SELECT * FROM ledger_verify();
UPDATE ledger.accounts SET held = held + 7 WHERE name = 'shop';
SELECT * FROM ledger_verify();
UPDATE ledger.accounts SET held = held - 7 WHERE name = 'shop';
SELECT ledger_hold('shop', 3) AS hold_12;
CREATE TEMP TABLE vanished AS SELECT * FROM ledger.pending_holds WHERE hold_id = 12;
DELETE FROM ledger.pending_holds WHERE hold_id = 12;
SELECT * FROM ledger_verify();
INSERT INTO ledger.pending_holds SELECT * FROM vanished;
SELECT count(*) AS problems FROM ledger_verify();

-- the longest expiry: 1000 years
SELECT ledger_release(ledger_hold('alice', 1, '1000 years')) AS held_for_1000_years;

-- what is held stays in bigint: on a source of money, and on an account
-- whose floor lets it hold more than bigint
SELECT ledger_open_account('src', 'EUR', NULL) > 0 AS src,
       ledger_open_account('carol', 'EUR', -500) > 0 AS carol;
SELECT ledger_hold('src', 9223372036854775807) AS src_hold;
SELECT ledger_hold('src', 9223372036854775807);
SELECT ledger_credit('carol', 9223372036854775807) AS carol_rich;
SELECT ledger_hold('carol', 9223372036854775807) AS carol_hold;
SELECT ledger_hold('carol', 500);
\set VERBOSITY default
SELECT ledger_hold('carol', 1);
\set VERBOSITY sqlstate
SELECT ledger_available('src') AS src_available, ledger_available('carol') AS carol_available;
SELECT ledger_release(h) AS released FROM (SELECT hold_id AS h FROM ledger.pending_holds
  WHERE account_id IN (SELECT account_id FROM ledger.accounts WHERE name IN ('src', 'carol'))
  ORDER BY hold_id) p;
SELECT count(*) AS problems FROM ledger_verify();

-- the guard names the statement it refused
CREATE ROLE regress_ledger_etl;
GRANT pg_write_all_data TO regress_ledger_etl;
SET ROLE regress_ledger_etl;
\set VERBOSITY default
DELETE FROM ledger.pending_holds;
\set VERBOSITY sqlstate
RESET ROLE;
DROP ROLE regress_ledger_etl;
SELECT count(*) AS still_pending FROM ledger.pending_holds;
