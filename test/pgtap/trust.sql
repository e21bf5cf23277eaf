/*
 * trust.sql: the trust boundary.
 *
 * Proves that
 *	- a member of pg_write_all_data (which may write every table) cannot
 *	  write the ledger's tables: no forged idempotency key, no changed
 *	  floor or balance, no hand-made journal row (42501, the guard's
 *	  message); nor the hold tables of 1.2: no forged hold or hold end, no
 *	  pending hold removed, added or made to expire, no changed
 *	  accounts.held, so a hold keeps reserving what it reserves; a
 *	  superuser still can, and ledger_verify() then reports a stored key
 *	  that no posting backs;
 *	- the README's two role recipes: an application role that moves money
 *	  but cannot create it (no credit, no account that may go below zero,
 *	  no money out of an account without a floor), and an operator role
 *	  that can;
 *	- the right to create money is the session's role's: a SECURITY
 *	  DEFINER function of the operator's does not lend it to its callers;
 *	- holds follow the same line: the application holds and captures on
 *	  accounts with a floor, also into a source, but cannot hold money of
 *	  a source nor capture such a hold (that takes money out of it); the
 *	  operator can;
 *	- cross-shard transfers (1.4) too: the application sends one out of an
 *	  account with a floor, not out of a source; it cannot run the credit
 *	  or the finish of one (42501, even granted them: they are the
 *	  router's), end such a transfer's hold (55000), post under the
 *	  ledger's own keys (22023), nor forge, change or delete an intent.
 *
 * Roles are created inside the transaction, so the final ROLLBACK removes
 * them from the cluster again.
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;

BEGIN;
CREATE EXTENSION ledger;

SELECT plan(72);

/* The operator recipe of the README: may create money. */
CREATE ROLE tap_operator NOLOGIN;
GRANT EXECUTE ON FUNCTION
	ledger_open_account(text, text, bigint),
	ledger_credit(text, bigint, text),
	ledger_debit(text, bigint, text),
	ledger_transfer(text, text, bigint, text),
	ledger_balance(text),
	ledger_history(text, int, bigint),
	ledger_verify(),
	ledger_debit_batch(text[], bigint[], text[]),
	ledger_transfer_batch(text[], text[], bigint[], text[]),
	ledger_hold(text, bigint, interval, text),
	ledger_capture(bigint, bigint, text),
	ledger_release(bigint),
	ledger_available(text),
	ledger_holds(text, int),
	ledger_expire_holds(),
	ledger_balance_at(text, timestamptz),
	ledger_account_mode(text),
	ledger_set_account_mode(text, text)
	TO tap_operator;

/* The application recipe: moves money, cannot create it. */
CREATE ROLE tap_mover NOLOGIN;
GRANT EXECUTE ON FUNCTION
	ledger_open_account(text, text, bigint),
	ledger_debit(text, bigint, text),
	ledger_transfer(text, text, bigint, text),
	ledger_balance(text),
	ledger_history(text, int, bigint),
	ledger_debit_batch(text[], bigint[], text[]),
	ledger_transfer_batch(text[], text[], bigint[], text[]),
	ledger_hold(text, bigint, interval, text),
	ledger_capture(bigint, bigint, text),
	ledger_release(bigint),
	ledger_available(text),
	ledger_holds(text, int),
	ledger_balance_at(text, timestamptz),
	ledger_account_mode(text)
	TO tap_mover;

/* An ETL or restore tool, granted the predefined roles. */
CREATE ROLE tap_etl NOLOGIN;
GRANT pg_write_all_data, pg_read_all_data TO tap_etl;

/* ---- the operator sets up the books ------------------------------------------ */

SET ROLE tap_operator;
SELECT lives_ok($$SELECT ledger_open_account('bank', 'EUR', NULL),
						 ledger_open_account('overdraft', 'EUR', -500),
						 ledger_open_account('alice', 'EUR'),
						 ledger_open_account('bob', 'EUR')$$,
				'the operator opens a source, an overdraft and two plain accounts');
SELECT is(ledger_transfer('bank', 'alice', 1000, 'deposit-1'), 1::bigint,
		  'the operator deposits: money out of the source');
SELECT is(ledger_credit('bob', 100), 100::bigint, 'the operator credits');
SELECT is(ledger_hold('alice', 100, NULL, 'auth-1'), 1::bigint,
		  'the operator holds 100 of alice''s money');
SELECT is(ledger_hold('bank', 50), 2::bigint, 'and 50 of the source''s');
SELECT is(ledger_hold('bob', 10), 3::bigint, 'and 10 of bob''s');
SELECT ok(ledger_release(3), 'and releases bob''s hold');
RESET ROLE;

/* ---- pg_write_all_data cannot write the ledger -------------------------------- */

SET ROLE tap_etl;
SELECT is((SELECT balance FROM ledger.accounts WHERE name = 'alice'), 1000::bigint,
		  'pg_read_all_data reads the tables');
SELECT throws_ok($$INSERT INTO ledger.idempotency_keys
					(idempotency_key, operation, account, amount, result)
					VALUES ('order-42', 'debit', 'alice', 700, 300)$$,
				 '42501', 'only the ledger''s functions write ledger table "idempotency_keys"',
				 'pg_write_all_data cannot forge an idempotency key');
SELECT throws_ok($$UPDATE ledger.accounts SET min_balance = NULL WHERE name = 'alice'$$,
				 '42501', 'only the ledger''s functions write ledger table "accounts"',
				 'pg_write_all_data cannot remove a floor');
SELECT throws_ok($$UPDATE ledger.accounts SET balance = balance + 1000000 WHERE name = 'bob'$$,
				 '42501', 'only the ledger''s functions write ledger table "accounts"',
				 'pg_write_all_data cannot change a balance');
SELECT throws_ok($$INSERT INTO ledger.accounts (name, currency, min_balance)
					VALUES ('forged', 'EUR', NULL)
					ON CONFLICT (name) DO UPDATE SET min_balance = NULL$$,
				 '42501', 'only the ledger''s functions write ledger table "accounts"',
				 'pg_write_all_data cannot open a floorless account by hand');
SELECT throws_ok($$INSERT INTO ledger.entries (account_id, amount, balance_after, created_at)
					VALUES (3, 5, 1005, now())$$,
				 '42501', 'only the ledger''s functions write ledger table "entries"',
				 'pg_write_all_data cannot append to the journal');
SELECT throws_ok($$INSERT INTO ledger.transfers (from_account_id, to_account_id, amount, created_at)
					VALUES (1, 3, 5, now())$$,
				 '42501', 'only the ledger''s functions write ledger table "transfers"',
				 'pg_write_all_data cannot add a transfer');
SELECT throws_ok($$DELETE FROM ledger.idempotency_keys$$, '42501', NULL,
				 'pg_write_all_data cannot delete keys');

/* the hold tables of 1.2, and what a hold reserves */
SELECT throws_ok($$INSERT INTO ledger.holds (account_id, amount, created_at)
					VALUES (4, 5, now())$$,
				 '42501', 'only the ledger''s functions write ledger table "holds"',
				 'pg_write_all_data cannot make a hold by hand');
SELECT throws_ok($$UPDATE ledger.holds SET amount = 1 WHERE hold_id = 1$$,
				 '42501', 'only the ledger''s functions write ledger table "holds"',
				 'pg_write_all_data cannot shrink a hold');
SELECT throws_ok($$DELETE FROM ledger.holds WHERE hold_id = 1$$, '42501', NULL,
				 'pg_write_all_data cannot delete a hold');
SELECT throws_ok($$INSERT INTO ledger.hold_ends (hold_id, status, ended_at)
					VALUES (1, 'released', now())$$,
				 '42501', 'only the ledger''s functions write ledger table "hold_ends"',
				 'pg_write_all_data cannot forge the end of a hold');
SELECT throws_ok($$DELETE FROM ledger.hold_ends$$, '42501', NULL,
				 'pg_write_all_data cannot delete the end of a hold');
SELECT throws_ok($$INSERT INTO ledger.pending_holds (hold_id, account_id, amount)
					VALUES (99, 4, 100)$$,
				 '42501', 'only the ledger''s functions write ledger table "pending_holds"',
				 'pg_write_all_data cannot add a pending hold');
SELECT throws_ok($$DELETE FROM ledger.pending_holds WHERE hold_id = 1$$,
				 '42501', 'only the ledger''s functions write ledger table "pending_holds"',
				 'pg_write_all_data cannot remove a pending hold');
SELECT throws_ok($$UPDATE ledger.pending_holds SET expires_at = '-infinity' WHERE hold_id = 1$$,
				 '42501', 'only the ledger''s functions write ledger table "pending_holds"',
				 'pg_write_all_data cannot make a pending hold expire');
SELECT throws_ok($$TRUNCATE ledger.pending_holds$$, '42501', NULL,
				 'pg_write_all_data cannot truncate the pending holds');
SELECT throws_ok($$UPDATE ledger.accounts SET held = 0 WHERE name = 'alice'$$,
				 '42501', 'only the ledger''s functions write ledger table "accounts"',
				 'pg_write_all_data cannot change what an account holds');
RESET ROLE;

SELECT is(ledger_available('alice'), 900::bigint,
		  'alice''s hold still reserves 100 of her 1000');
SELECT results_eq(
	$$SELECT h.hold_id, coalesce(e.status, 'pending')::text COLLATE "default"
		FROM ledger.holds h LEFT JOIN ledger.hold_ends e USING (hold_id)
	   ORDER BY h.hold_id$$,
	$$VALUES (1::bigint, 'pending'::text), (2, 'pending'), (3, 'released')$$,
	'the holds are as the ledger left them');
SELECT ok(ledger_release(1), 'the operator releases alice''s hold');

SELECT is(ledger_debit('alice', 700, 'order-42'), 300::bigint,
		  'so a real debit with that key applies, instead of replaying a forgery');
SELECT is(ledger_balance('alice'), 300::bigint, 'and the balance moved');

/* ---- a superuser may; the audit sees what no posting backs ---------------------- */

INSERT INTO ledger.idempotency_keys (idempotency_key, operation, account, amount, result)
	VALUES ('order-43', 'debit', 'alice', 5, 12345);
SELECT results_eq(
	$$SELECT account, problem FROM ledger_verify()$$,
	$$VALUES ('alice'::text, 'idempotency key ''order-43'' replays debit 12345 of 5, which no posting backs'::text)$$,
	'a superuser can still write the tables, and ledger_verify() reports the forged key');
SELECT is(ledger_debit('alice', 5, 'order-43'), 12345::bigint,
		  '(what the forged key would do: replay a result and move nothing)');

/* ---- the application cannot create money ------------------------------------------ */

SET ROLE tap_mover;
SELECT throws_ok($$SELECT ledger_credit('alice', 1)$$, '42501',
				 'permission denied for function ledger_credit',
				 'the mover cannot credit');
SELECT throws_ok($$SELECT ledger_open_account('mover-overdraft', 'EUR', -1)$$, '42501',
				 'permission denied to open an account that may go below zero',
				 'the mover cannot open an account with a negative floor');
SELECT throws_ok($$SELECT ledger_open_account('mover-source', 'EUR', NULL)$$, '42501',
				 'permission denied to open an account that may go below zero',
				 'the mover cannot open an account without a floor');
SELECT throws_ok($$SELECT ledger_open_account('bank', 'EUR', NULL)$$, '42501',
				 'permission denied to open an account that may go below zero',
				 '... nor reopen one');
SELECT isnt(ledger_open_account('carol', 'EUR', 0), NULL, 'the mover opens an account with floor 0');
SELECT throws_ok($$SELECT ledger_debit('bank', 1)$$, '42501',
				 'permission denied to take money out of account "bank"',
				 'the mover cannot take money out of a source (unkeyed)');
SELECT throws_ok($$SELECT ledger_debit('bank', 1, 'mover-1')$$, '42501',
				 'permission denied to take money out of account "bank"',
				 'the mover cannot take money out of a source (keyed)');
SELECT throws_ok($$SELECT ledger_transfer('bank', 'carol', 1000)$$, '42501',
				 'permission denied to take money out of account "bank"',
				 'the mover cannot transfer out of a source');
SELECT results_eq(
	$$SELECT status FROM ledger_debit_batch(ARRAY['bank', 'alice'], ARRAY[1, 1]::bigint[])$$,
	$$VALUES ('insufficient_privilege'::text), ('ok')$$,
	'in a debit batch, the item out of a source is refused, the other applies');
SELECT results_eq(
	$$SELECT status FROM ledger_transfer_batch(ARRAY['bank', 'alice'], ARRAY['carol', 'carol'], ARRAY[1, 1]::bigint[])$$,
	$$VALUES ('insufficient_privilege'::text), ('ok')$$,
	'in a transfer batch too');
SELECT is(ledger_transfer('alice', 'carol', 100), 3::bigint, 'the mover moves money between accounts');
SELECT is(ledger_transfer('overdraft', 'carol', 500) > 0, true,
		  'and uses an overdraft the operator granted, down to its floor');
SELECT throws_ok($$SELECT ledger_transfer('overdraft', 'carol', 1)$$, 'LG001', NULL,
				 'but not beyond it');
SELECT is(ledger_transfer('carol', 'bank', 10) > 0, true,
		  'money may go into a source');
SELECT is(ledger_account_mode('carol'), 'locked', 'the mover reads an account''s mode');
SELECT throws_ok($$SELECT ledger_set_account_mode('carol', 'locked')$$, '42501',
				 'permission denied for function ledger_set_account_mode',
				 'the mover cannot set an account''s mode');
RESET ROLE;
SET ROLE tap_operator;
SELECT is(ledger_set_account_mode('carol', 'locked'), 'locked',
		  'the operator sets an account''s mode (here to the one it has)');
RESET ROLE;

/* ---- holds: the application cannot create money through them either ----------------- */

SET ROLE tap_mover;
SELECT is(ledger_hold('carol', 50, NULL, 'mover-hold'), 4::bigint,
		  'the mover holds money of an account with a floor');
SELECT throws_ok($$SELECT ledger_hold('bank', 1)$$, '42501',
				 'permission denied to take money out of account "bank"',
				 'the mover cannot hold money of a source');
SELECT throws_ok($$SELECT ledger_capture(2, 10, 'carol')$$, '42501',
				 'permission denied to take money out of account "bank"',
				 'the mover cannot capture a hold on a source');
SELECT throws_ok($$SELECT ledger_expire_holds()$$, '42501',
				 'permission denied for function ledger_expire_holds',
				 'the mover was not granted the sweep');
SELECT is(ledger_capture(4, 20, 'bank'), 571::bigint,
		  'the mover captures 20 of its hold into the source (carol: 591 - 20)');
SELECT is(ledger_available('carol'), 571::bigint,
		  'the rest of the mover''s hold is released');
RESET ROLE;
SET ROLE tap_operator;
SELECT is(ledger_capture(2, 10, 'carol'), -980::bigint,
		  'the operator captures the hold on the source (-1000 + 10 + 20 - 10)');
SELECT is(ledger_expire_holds(), 0::bigint, 'the operator runs the sweep: nothing expired');
RESET ROLE;

/* ---- cross-shard transfers (1.4): the same line, and no forged intent ----------------- */

GRANT EXECUTE ON FUNCTION ledger_transfer_out(text, text, text, bigint, text),
	ledger_transfer_in(text, text, bigint, text), ledger_transfer_finish(text) TO tap_mover;
SET ROLE tap_mover;
SELECT isnt(ledger_transfer_out('carol', 'far-away', 'EUR', 5, 'x-1'), NULL,
			'the mover sends 5 of carol''s to an account on another shard');
SELECT throws_ok($$SELECT ledger_transfer_out('bank', 'far-away', 'EUR', 5, 'x-2')$$, '42501',
				 'permission denied to take money out of account "bank"',
				 'the mover cannot send money out of a source');
SELECT throws_ok($$SELECT ledger_release(h.hold_id) FROM ledger_holds('carol') h WHERE h.status = 'pending'$$,
				 '55000', NULL, 'nor release the hold of its transfer');
SELECT throws_ok($$SELECT ledger_hold('carol', 1, NULL, 'lr/out/forged')$$, '22023', NULL,
				 'nor make a hold under the key prefix of transfers');
SELECT is(ledger_available('carol'), 576::bigint, 'the transfer holds 5 of carol''s (581 - 5)');
SELECT throws_ok($$SELECT ledger_transfer_in('bob', 'EUR', 5, 'x')$$, '42501',
				 'permission denied to credit a cross-shard transfer',
				 'the mover cannot run the credit of a transfer, even granted it');
SELECT throws_ok($$SELECT ledger_transfer_finish('x-1')$$, '42501',
				 'permission denied to finish a cross-shard transfer',
				 'nor its finish (a debit without its credit)');
RESET ROLE;
SET ROLE tap_etl;
SELECT throws_ok($$INSERT INTO ledger.transfers_out
					(transfer_id, idempotency_key, hold_id, from_account_id, to_account, amount, created_at)
					VALUES (1000, 'forged', 4, 1, 'x', 1, now())$$,
				 '42501', 'only the ledger''s functions write ledger table "transfers_out"',
				 'pg_write_all_data cannot forge a cross-shard transfer''s intent');
SELECT throws_ok($$UPDATE ledger.transfers_out SET to_account = 'mine'$$, '42501', NULL,
				 'nor redirect one');
SELECT throws_ok($$DELETE FROM ledger.transfers_out$$, '42501', NULL, 'nor delete one');
RESET ROLE;

/* ---- the right is the session's role's, not a definer's ------------------------------ */

CREATE FUNCTION open_source_for(name text) RETURNS bigint
	LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_catalog
	AS $$SELECT ledger_open_account(name, 'EUR', NULL)$$;
ALTER FUNCTION open_source_for(text) OWNER TO tap_operator;
GRANT EXECUTE ON FUNCTION open_source_for(text) TO tap_mover;
SET ROLE tap_mover;
SELECT throws_ok($$SELECT open_source_for('lent')$$, '42501',
				 'permission denied to open an account that may go below zero',
				 'an operator''s SECURITY DEFINER function does not lend the right to the mover');
RESET ROLE;
SET ROLE tap_operator;
SELECT isnt(open_source_for('own'), NULL, 'the operator calling it may');
SELECT isnt(ledger_debit('bank', 1), NULL, 'and takes money out of a source');
SELECT results_eq(
	$$SELECT status FROM ledger_debit_batch(ARRAY['bank'], ARRAY[1]::bigint[])$$,
	$$VALUES ('ok'::text)$$, 'also in a batch');
RESET ROLE;

SELECT is_empty(
	$$SELECT * FROM ledger_verify() WHERE problem NOT LIKE 'idempotency key ''order-43''%'$$,
	'the books balance, but for the forged key');

SELECT * FROM finish();
ROLLBACK;
