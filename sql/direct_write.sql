-- Postings without a key and batches write journal entries and balances
-- through the table access method (src/direct_write.c).  What a statement
-- would add on top -- triggers, rules, column defaults, an owner's domain --
-- must still happen: then they write through SQL.  amcheck proves every
-- heap row has its index entries.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
CREATE EXTENSION IF NOT EXISTS amcheck;
RESET client_min_messages;
\set VERBOSITY sqlstate

SELECT count(ledger_open_account('bw-' || g)) AS opened,
       sum(ledger_credit('bw-' || g, 1000)) AS credited
  FROM generate_series(1, 20) g;

-- indexes_intact: every index of the ledger's tables holds every heap row
CREATE FUNCTION indexes_intact() RETURNS bool LANGUAGE sql AS $$
	SELECT count(bt_index_check(i.indexrelid, true)) = count(*)
	  FROM pg_index i
	 WHERE i.indrelid IN ('ledger.accounts'::regclass, 'ledger.entries'::regclass,
						  'ledger.transfers'::regclass)
$$;

-- 1. sixty batches over the same twenty rows in one transaction: their pages
-- fill with row versions, so later updates cannot be HOT and must add index
-- entries for the new versions
BEGIN;
SELECT count(*) AS applied
  FROM generate_series(1, 60) r,
	   LATERAL ledger_debit_batch(ARRAY(SELECT 'bw-' || g FROM generate_series(1, 20) g),
								  array_fill(r / r::bigint, ARRAY[20])) b
 WHERE b.status = 'ok';
SELECT n_tup_upd AS updates, n_tup_upd > n_tup_hot_upd AS some_not_hot
  FROM pg_stat_xact_user_tables WHERE relid = 'ledger.accounts'::regclass;
COMMIT;
-- the name index finds the newest version of every row
SELECT count(*) AS accounts, min(ledger_balance('bw-' || g)), max(ledger_balance('bw-' || g))
  FROM generate_series(1, 20) g;
SELECT count(*) AS entries, min(balance_after), max(balance_after)
  FROM ledger.entries e JOIN ledger.accounts a USING (account_id)
 WHERE a.name LIKE 'bw-%' AND e.amount = -1;
SELECT indexes_intact(), count(*) AS problems FROM ledger_verify();

-- the same for single postings: 60 debits and 60 credits per account in one
-- transaction, so their later row versions cannot be HOT either
BEGIN;
SELECT count(ledger_debit('bw-' || g, 2)) AS debits, count(ledger_credit('bw-' || g, 1)) AS credits
  FROM generate_series(1, 60) r, generate_series(1, 20) g;
SELECT n_tup_upd AS updates, n_tup_upd > n_tup_hot_upd AS some_not_hot
  FROM pg_stat_xact_user_tables WHERE relid = 'ledger.accounts'::regclass;
COMMIT;
SELECT count(*) AS accounts, min(ledger_balance('bw-' || g)), max(ledger_balance('bw-' || g))
  FROM generate_series(1, 20) g;
SELECT (SELECT count(*) FROM ledger_history('bw-1', 1000)) AS history_rows,
       (SELECT balance_after FROM ledger_history('bw-1', 1)) AS last_balance;
SELECT indexes_intact(), count(*) AS problems FROM ledger_verify();

-- a refused item leaves its account's row alone: one debit applies, one not
SELECT * FROM ledger_debit_batch(ARRAY['bw-1', 'bw-2'], ARRAY[5, 100000]);
SELECT ledger_balance('bw-1') AS bw1, ledger_balance('bw-2') AS bw2;

-- 2. an AFTER INSERT trigger on the journal (say, an outbox) sees every
-- entry of a batch, and a trigger on accounts every balance change.
-- Triggers run inside the ledger's functions, under their search_path
-- (pg_catalog, pg_temp), so they name their tables with the schema.
CREATE TABLE outbox (account_id bigint, amount bigint, balance_after bigint);
CREATE FUNCTION outbox_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.outbox VALUES (NEW.account_id, NEW.amount, NEW.balance_after);
	RETURN NULL;
END
$$;
CREATE TABLE balance_log (name text, old_balance bigint, new_balance bigint);
CREATE FUNCTION balance_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.balance_log VALUES (NEW.name, OLD.balance, NEW.balance);
	RETURN NULL;
END
$$;
CREATE TRIGGER entries_outbox AFTER INSERT ON ledger.entries
	FOR EACH ROW EXECUTE FUNCTION outbox_copy();
CREATE TRIGGER accounts_balance_log AFTER UPDATE ON ledger.accounts
	FOR EACH ROW EXECUTE FUNCTION balance_copy();

SELECT * FROM ledger_debit_batch(ARRAY['bw-3', 'bw-4', 'bw-3'], ARRAY[10, 20, 30]);
SELECT * FROM ledger_transfer_batch(ARRAY['bw-5'], ARRAY['bw-6'], ARRAY[7]);
SELECT ledger_debit('bw-11', 5) AS debited, ledger_credit('bw-12', 6) AS credited;
SELECT ledger_debit('bw-15', 8, 'dw-key-1') AS keyed_debit,
       ledger_transfer('bw-16', 'bw-17', 9) > 0 AS transferred;
SELECT a.name, o.amount, o.balance_after
  FROM outbox o JOIN ledger.accounts a USING (account_id) ORDER BY a.name, o.amount;
SELECT * FROM balance_log ORDER BY name;

DROP TRIGGER entries_outbox ON ledger.entries;
DROP TRIGGER accounts_balance_log ON ledger.accounts;

-- 3. a column an administrator added with a default gets it on batch
-- entries; once it is dropped the batch writes directly again
SELECT max(entry_id) AS mark FROM ledger.entries \gset
ALTER TABLE ledger.entries ADD COLUMN region text NOT NULL DEFAULT 'eu';
SELECT * FROM ledger_debit_batch(ARRAY['bw-7', 'bw-8'], ARRAY[1, 2]);
SELECT ledger_debit('bw-13', 1) AS debited, ledger_credit('bw-14', 2) AS credited;
SELECT ledger_credit('bw-15', 3, 'dw-key-2') AS keyed_credit,
       ledger_transfer('bw-16', 'bw-17', 4) > 0 AS transferred;
SELECT a.name, e.amount, e.region
  FROM ledger.entries e JOIN ledger.accounts a USING (account_id)
 WHERE e.entry_id > :mark ORDER BY a.name;
ALTER TABLE ledger.entries DROP COLUMN region;

-- the same for a column added to the transfers
ALTER TABLE ledger.transfers ADD COLUMN channel text NOT NULL DEFAULT 'api';
SELECT ledger_transfer('bw-18', 'bw-19', 5) > 0 AS transferred;
SELECT * FROM ledger_transfer_batch(ARRAY['bw-19'], ARRAY['bw-18'], ARRAY[2]);
SELECT f.name AS from_account, t.name AS to_account, x.amount, x.channel
  FROM ledger.transfers x
  JOIN ledger.accounts f ON f.account_id = x.from_account_id
  JOIN ledger.accounts t ON t.account_id = x.to_account_id
 WHERE f.name IN ('bw-18', 'bw-19') ORDER BY x.transfer_id;
ALTER TABLE ledger.transfers DROP COLUMN channel;
SELECT ledger_transfer('bw-18', 'bw-19', 1) > 0 AS transferred;
SELECT ledger_balance('bw-18') AS bw18, ledger_balance('bw-19') AS bw19;
SELECT * FROM ledger_transfer_batch(ARRAY['bw-7', 'bw-8'], ARRAY['bw-9', 'bw-10'], ARRAY[3, 4]);
SELECT a.name, e.amount, e.balance_after, e.transfer_id IS NOT NULL AS has_transfer
  FROM ledger.entries e JOIN ledger.accounts a USING (account_id)
 WHERE e.entry_id > :mark ORDER BY e.entry_id;

-- 4. constraints the code does not enforce itself are still checked: a
-- CHECK added to the journal (23514), a publication that needs a replica
-- identity (55000); a NOT NULL is at the end
SELECT ledger_open_account('bw-big') > 0 AS opened, ledger_credit('bw-big', 100000) AS credited;
ALTER TABLE ledger.entries ADD CONSTRAINT small_amounts CHECK (abs(amount) < 5000) NOT VALID;
SELECT ledger_credit('bw-big', 6000);
SELECT ledger_debit('bw-big', 6000, 'dw-key-3');
SELECT * FROM ledger_debit_batch(ARRAY['bw-big'], ARRAY[6000]);
SELECT ledger_transfer('bw-big', 'bw-1', 6000);
SELECT ledger_credit('bw-big', 10) AS small_credit_passes;
ALTER TABLE ledger.entries DROP CONSTRAINT small_amounts;
SET client_min_messages = error;
CREATE PUBLICATION ledger_pub FOR TABLE ledger.accounts;
RESET client_min_messages;
ALTER TABLE ledger.accounts REPLICA IDENTITY NOTHING;
SELECT ledger_credit('bw-big', 1);
SELECT * FROM ledger_debit_batch(ARRAY['bw-big'], ARRAY[1]);
-- ... but what writes nothing (locks only) is not refused, as with FOR UPDATE
SELECT ledger_debit('bw-15', 8, 'dw-key-1') AS replayed;
SELECT ledger_debit('nobody', 1, 'dw-key-6');
SELECT * FROM ledger_debit_batch(ARRAY['bw-big', 'nobody'], ARRAY[1000000000, 1]);
ALTER TABLE ledger.accounts REPLICA IDENTITY DEFAULT;
DROP PUBLICATION ledger_pub;
SELECT ledger_balance('bw-big') AS unchanged;

-- 5. a read-only transaction gets 25006, whatever the path
BEGIN READ ONLY;
SELECT ledger_credit('bw-big', 1);
ROLLBACK;
BEGIN READ ONLY;
SELECT ledger_debit('bw-big', 1, 'dw-key-4');
ROLLBACK;
BEGIN READ ONLY;
SELECT * FROM ledger_debit_batch(ARRAY['bw-big', 'nobody'], ARRAY[1000000, 1]);
ROLLBACK;

-- 6. what only a statement honours makes the direct writes step aside, and
-- no constraint is skipped because of its name:
-- a rule on the journal fires for every path
CREATE TABLE entry_log (entry_id bigint);
CREATE RULE log_entries AS ON INSERT TO ledger.entries
	DO ALSO INSERT INTO entry_log VALUES (NEW.entry_id);
SELECT ledger_credit('bw-2', 3) AS credited, ledger_debit('bw-2', 1) AS debited,
       ledger_debit('bw-2', 1, 'dw-key-7') AS keyed;
SELECT * FROM ledger_debit_batch(ARRAY['bw-2'], ARRAY[1]);
SELECT count(*) AS logged_entries FROM entry_log;
DROP RULE log_entries ON ledger.entries;
DROP TABLE entry_log;
-- a column's type swapped for an owner's domain with a rule of its own
CREATE DOMAIN not_777 AS bigint CHECK (VALUE <> 777);
ALTER TABLE ledger.transfers ALTER COLUMN amount TYPE not_777;
SELECT ledger_transfer('bw-3', 'bw-4', 777);
SELECT * FROM ledger_transfer_batch(ARRAY['bw-3'], ARRAY['bw-4'], ARRAY[777]);
SELECT ledger_transfer('bw-3', 'bw-4', 7) > 0 AS other_amounts_pass;
ALTER TABLE ledger.transfers ALTER COLUMN amount TYPE ledger.positive_amount;
DROP DOMAIN not_777;
-- the floor CHECK replaced, under its own name, by a stricter one
ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_balance_floor,
	ADD CONSTRAINT accounts_balance_floor
		CHECK ((min_balance IS NULL OR balance >= min_balance) AND balance <> 777) NOT VALID;
SELECT ledger_balance('bw-5') AS bw5;
SELECT ledger_debit('bw-5', ledger_balance('bw-5') - 777);
SELECT ledger_debit('bw-5', ledger_balance('bw-5') - 777, 'dw-key-8');
SELECT * FROM ledger_debit_batch(ARRAY['bw-5'], ARRAY[ledger_balance('bw-5') - 777]);
SELECT ledger_debit('bw-5', 1) AS other_balances_pass;
ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_balance_floor,
	ADD CONSTRAINT accounts_balance_floor
		CHECK (min_balance IS NULL OR balance >= min_balance);

-- entry ids still increase per account in the order the items applied
SELECT count(*) AS out_of_order
  FROM (SELECT balance_after, amount,
			   lag(balance_after) OVER (PARTITION BY account_id ORDER BY entry_id) AS before
		  FROM ledger.entries) e
 WHERE e.before IS NOT NULL AND e.balance_after <> e.before + e.amount;

SELECT indexes_intact(), count(*) AS problems FROM ledger_verify();
DROP FUNCTION indexes_intact();

-- a NOT NULL added (on empty tables) where a posting may write NULL
SET client_min_messages = warning;
DROP EXTENSION ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
SELECT ledger_open_account('fresh', 'XXX', NULL) > 0 AS opened;
ALTER TABLE ledger.entries ALTER COLUMN transfer_id SET NOT NULL;
SELECT ledger_credit('fresh', 1);
SELECT * FROM ledger_debit_batch(ARRAY['fresh'], ARRAY[1]);
ALTER TABLE ledger.entries ALTER COLUMN transfer_id DROP NOT NULL;
SELECT ledger_credit('fresh', 1) AS credited;

-- an index on name that is not valid (a cancelled CREATE INDEX
-- CONCURRENTLY leaves one) is never used for lookups: here one that was
-- built, then marked as such a leftover that inserts do not maintain
CREATE UNIQUE INDEX accounts_name_leftover ON ledger.accounts (name COLLATE "C");
UPDATE pg_index SET indisvalid = false, indisready = false
 WHERE indexrelid = 'ledger.accounts_name_leftover'::regclass;
SELECT ledger_open_account('after-leftover') > 0 AS opened;
SELECT ledger_credit('after-leftover', 5) AS credited, ledger_debit('after-leftover', 2) AS debited,
       ledger_debit('after-leftover', 1, 'dw-key-5') AS keyed;
SELECT * FROM ledger_debit_batch(ARRAY['after-leftover', 'fresh'], ARRAY[1, 1]);
DROP INDEX ledger.accounts_name_leftover;
