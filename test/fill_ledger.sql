-- test/fill_ledger.sql: a ledger that has seen every kind of posting, for
-- the dump/restore and logical replication tests: accounts with each kind
-- of floor and two currencies, unkeyed debits and credits (the direct
-- fast path), keyed ones, transfers, both batch functions with refused
-- items, holds captured (partly, to another account), released, expired
-- and recorded, and pending.  Run as a superuser (it creates money).
-- Expects :round set (1, 2, ...) so that it can run more than once.
\set ON_ERROR_STOP 1
SELECT ledger_open_account('bank', 'EUR', NULL) > 0 AS bank,
       ledger_open_account('usd-bank', 'USD', NULL) > 0 AS usd_bank,
       ledger_open_account('shop', 'EUR') > 0 AS shop,
       ledger_open_account('over', 'EUR', -500) > 0 AS over;
SELECT count(ledger_open_account('acct-' || i, 'EUR')) AS opened
  FROM generate_series(1, 20) i;
SELECT count(ledger_transfer('bank', 'acct-' || i, 10000, :'round' || '-deposit-' || i)) AS deposits
  FROM generate_series(1, 20) i;
SELECT count(ledger_debit('acct-' || (i % 20 + 1), 7)) AS fast_debits
  FROM generate_series(1, 200) i;
SELECT count(ledger_credit('acct-' || (i % 20 + 1), 3)) AS fast_credits
  FROM generate_series(1, 100) i;
SELECT count(ledger_debit('acct-' || (i % 20 + 1), 11, :'round' || '-debit-' || i)) AS keyed_debits
  FROM generate_series(1, 100) i;
SELECT count(ledger_transfer('acct-' || (i % 20 + 1), 'acct-' || ((i + 7) % 20 + 1), 13)) AS transfers
  FROM generate_series(1, 100) i;
SELECT count(*) FILTER (WHERE status = 'ok') AS batch_ok, count(*) AS batch_items
  FROM ledger_debit_batch((SELECT array_agg('acct-' || (i % 20 + 1)) FROM generate_series(1, 300) i),
						  (SELECT array_agg(CASE WHEN i % 50 = 0 THEN 1000000 ELSE 5 END::bigint)
							 FROM generate_series(1, 300) i),
						  (SELECT array_agg(:'round' || '-batch-' || i) FROM generate_series(1, 300) i));
SELECT count(*) FILTER (WHERE status = 'ok') AS transfer_batch_ok
  FROM ledger_transfer_batch((SELECT array_agg('acct-' || (i % 20 + 1)) FROM generate_series(1, 100) i),
							 (SELECT array_agg('shop'::text) FROM generate_series(1, 100) i),
							 (SELECT array_agg(2::bigint) FROM generate_series(1, 100) i));
-- into the overdraft and most of the way back, so each round ends 100 lower
SELECT ledger_debit('over', 400, :'round' || '-overdraft') AS into_the_overdraft,
       ledger_transfer('bank', 'over', 300, :'round' || '-repay') AS repaid;
-- holds: captured whole, captured partly to the shop, released, expired
-- (recorded by the sweep), and pending (one with a key, one expiring late)
SELECT ledger_capture(ledger_hold('acct-1', 100)) IS NOT NULL AS captured;
SELECT ledger_capture(ledger_hold('acct-2', 100, '1 day', :'round' || '-hold'), 60, 'shop') IS NOT NULL
	   AS captured_partly;
SELECT ledger_release(ledger_hold('acct-3', 50)) AS released;
SELECT ledger_hold('acct-4', 40, '1 millisecond') > 0 AS will_expire;
SELECT pg_sleep(0.01);
SELECT ledger_expire_holds() >= 1 AS swept;
SELECT ledger_hold('acct-5', 30, NULL, :'round' || '-pending') > 0 AS pending_keyed,
       ledger_hold('acct-6', 20, '30 days') > 0 AS pending_late;
SELECT ledger_open_account('usd-1', 'USD') > 0 AS usd_account,
       ledger_transfer('usd-bank', 'usd-1', 500, :'round' || '-usd') > 0 AS usd_deposit;
-- cross-shard transfers' source side (1.4): one finished, one still held
SELECT ledger_transfer_out('acct-7', 'far-away', 'EUR', 10, :'round' || '-out-done') > 0 AS sent_out,
       ledger_transfer_finish(:'round' || '-out-done') > 0 AS finished;
SELECT ledger_transfer_out('acct-8', 'far-away', 'EUR', 5, :'round' || '-out-held') > 0 AS held_out;
