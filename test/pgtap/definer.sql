/*
 * definer.sql: how the API functions are declared.
 *
 * Proves that every function the extension installs in its own schema
 *	- is SECURITY DEFINER, so callers need no privilege on the tables;
 *	- pins search_path to exactly "pg_catalog, pg_temp", so nothing of the
 *	  caller's can be found by name while it runs as the owner;
 *	- is not STRICT: a NULL argument raises 22004 naming the argument, it
 *	  never silently returns NULL (spot-checked for every argument that
 *	  must not be NULL, plus the NULLs that are allowed);
 * that the writing functions are VOLATILE (the four postings of 1.0 and
 * 1.1, the batches, hold, capture, release and the expiry sweep of
 * 1.2, the mode switch of 1.3, and the three writing steps of a cross-shard
 * transfer of 1.4), and so are ledger_available and
 * ledger_holds, which read the clock; and that the data schema and everything in it belong to the
 * installing superuser.
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;

BEGIN;
CREATE EXTENSION ledger;

SELECT plan(137);

/* Every function that belongs to the extension and lives in its schema. */
CREATE TEMP VIEW extension_function AS
SELECT p.oid AS fn_oid,
	   p.oid::regprocedure::text AS signature,
	   p.prosecdef,
	   p.proconfig,
	   p.proisstrict,
	   p.proowner
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_depend d
	ON d.classid = 'pg_catalog.pg_proc'::regclass
   AND d.objid = p.oid
   AND d.refclassid = 'pg_catalog.pg_extension'::regclass
   AND d.deptype = 'e'
  JOIN pg_catalog.pg_extension e
	ON e.oid = d.refobjid
   AND e.extnamespace = p.pronamespace
 WHERE e.extname = 'ledger';

/* ---- which functions: the twenty-five of the API, no more, no fewer --- */

SELECT set_eq(
	$$SELECT signature FROM extension_function$$,
	ARRAY['ledger_open_account(text,text,bigint)',
		  'ledger_credit(text,bigint,text)',
		  'ledger_debit(text,bigint,text)',
		  'ledger_transfer(text,text,bigint,text)',
		  'ledger_balance(text)',
		  'ledger_history(text,integer,bigint)',
		  'ledger_verify()',
		  'ledger_debit_batch(text[],bigint[],text[])',
		  'ledger_transfer_batch(text[],text[],bigint[],text[])',
		  'ledger_hold(text,bigint,interval,text)',
		  'ledger_capture(bigint,bigint,text)',
		  'ledger_release(bigint)',
		  'ledger_available(text)',
		  'ledger_holds(text,integer)',
		  'ledger_expire_holds()',
		  'ledger_balance_at(text,timestamp with time zone)',
		  'ledger_set_account_mode(text,text)',
		  'ledger_account_mode(text)',
		  'ledger_transfer_check(text,text,bigint,text)',
		  'ledger_transfer_out(text,text,text,bigint,text)',
		  'ledger_transfer_in(text,text,bigint,text)',
		  'ledger_transfer_finish(text)',
		  'ledger_transfers_out(text)',
		  'ledger_transfers_unfinished(interval)',
		  'ledger_transfers_in(text[])'],
	'the extension''s schema holds exactly the twenty-five API functions');

/* ---- SECURITY DEFINER, pinned search_path, not STRICT ------------------- */

SELECT ok(prosecdef, signature || ' is SECURITY DEFINER')
  FROM extension_function
 ORDER BY signature;

SELECT is(proconfig, '{"search_path=pg_catalog, pg_temp"}'::text[],
		  signature || ' pins search_path to pg_catalog, pg_temp')
  FROM extension_function
 ORDER BY signature;

SELECT ok(NOT proisstrict, signature || ' is not STRICT')
  FROM extension_function
 ORDER BY signature;

/* ---- volatility: the writers must see and make changes, never be cached - */

SELECT volatility_is('ledger_open_account', ARRAY['text', 'text', 'bigint'], 'volatile',
					 'ledger_open_account is VOLATILE');
SELECT volatility_is('ledger_credit', ARRAY['text', 'bigint', 'text'], 'volatile',
					 'ledger_credit is VOLATILE');
SELECT volatility_is('ledger_debit', ARRAY['text', 'bigint', 'text'], 'volatile',
					 'ledger_debit is VOLATILE');
SELECT volatility_is('ledger_transfer', ARRAY['text', 'text', 'bigint', 'text'], 'volatile',
					 'ledger_transfer is VOLATILE');
SELECT volatility_is('ledger_debit_batch', ARRAY['text[]', 'bigint[]', 'text[]'], 'volatile',
					 'ledger_debit_batch is VOLATILE');
SELECT volatility_is('ledger_transfer_batch', ARRAY['text[]', 'text[]', 'bigint[]', 'text[]'], 'volatile',
					 'ledger_transfer_batch is VOLATILE');
SELECT volatility_is('ledger_hold', ARRAY['text', 'bigint', 'interval', 'text'], 'volatile',
					 'ledger_hold is VOLATILE');
SELECT volatility_is('ledger_capture', ARRAY['bigint', 'bigint', 'text'], 'volatile',
					 'ledger_capture is VOLATILE');
SELECT volatility_is('ledger_release', ARRAY['bigint'], 'volatile',
					 'ledger_release is VOLATILE');
SELECT volatility_is('ledger_expire_holds', ARRAY[]::text[], 'volatile',
					 'ledger_expire_holds is VOLATILE');
SELECT volatility_is('ledger_set_account_mode', ARRAY['text', 'text'], 'volatile',
					 'ledger_set_account_mode is VOLATILE');
SELECT volatility_is('ledger_transfer_out', ARRAY['text', 'text', 'text', 'bigint', 'text'], 'volatile',
					 'ledger_transfer_out is VOLATILE');
SELECT volatility_is('ledger_transfer_in', ARRAY['text', 'text', 'bigint', 'text'], 'volatile',
					 'ledger_transfer_in is VOLATILE');
SELECT volatility_is('ledger_transfer_finish', ARRAY['text'], 'volatile',
					 'ledger_transfer_finish is VOLATILE');

/*
 * Expiry is decided by clock_timestamp(), not by the statement's start: a
 * hold may expire between two rows of one statement, so what reads it may
 * not be assumed to return the same result within a statement (STABLE).
 */
SELECT volatility_is('ledger_available', ARRAY['text'], 'volatile',
					 'ledger_available is VOLATILE (it reads the clock)');
SELECT volatility_is('ledger_holds', ARRAY['text', 'integer'], 'volatile',
					 'ledger_holds is VOLATILE (it reads the clock)');

/* ---- a NULL is an error (22004) naming the argument, never a NULL result - */

SELECT is(ledger_open_account('alice'), 1::bigint, 'alice opened');
SELECT is(ledger_open_account('bob'), 2::bigint, 'bob opened');

SELECT throws_ok($$SELECT ledger_open_account(NULL)$$,
				 '22004', 'account must not be null',
				 'ledger_open_account(NULL) raises 22004');
SELECT throws_ok($$SELECT ledger_open_account('carol', NULL)$$,
				 '22004', 'currency must not be null',
				 'ledger_open_account with a NULL currency raises 22004');
SELECT throws_ok($$SELECT ledger_credit(NULL, 100)$$,
				 '22004', 'account must not be null',
				 'ledger_credit with a NULL account raises 22004');
SELECT throws_ok($$SELECT ledger_credit('alice', NULL)$$,
				 '22004', 'amount must not be null',
				 'ledger_credit with a NULL amount raises 22004');
SELECT throws_ok($$SELECT ledger_debit(NULL, 100)$$,
				 '22004', 'account must not be null',
				 'ledger_debit with a NULL account raises 22004');
SELECT throws_ok($$SELECT ledger_debit('alice', NULL)$$,
				 '22004', 'amount must not be null',
				 'ledger_debit with a NULL amount raises 22004');
SELECT throws_ok($$SELECT ledger_transfer(NULL, 'bob', 100)$$,
				 '22004', 'from_account must not be null',
				 'ledger_transfer with a NULL from_account raises 22004');
SELECT throws_ok($$SELECT ledger_transfer('alice', NULL, 100)$$,
				 '22004', 'to_account must not be null',
				 'ledger_transfer with a NULL to_account raises 22004');
SELECT throws_ok($$SELECT ledger_transfer('alice', 'bob', NULL)$$,
				 '22004', 'amount must not be null',
				 'ledger_transfer with a NULL amount raises 22004');
SELECT throws_ok($$SELECT ledger_balance(NULL)$$,
				 '22004', 'account must not be null',
				 'ledger_balance(NULL) raises 22004');
SELECT throws_ok($$SELECT * FROM ledger_history(NULL)$$,
				 '22004', 'account must not be null',
				 'ledger_history with a NULL account raises 22004');
SELECT throws_ok($$SELECT * FROM ledger_history('alice', NULL)$$,
				 '22004', 'max_rows must not be null',
				 'ledger_history with a NULL max_rows raises 22004');
SELECT throws_ok($$SELECT * FROM ledger_debit_batch(NULL, ARRAY[1::bigint])$$,
				 '22004', 'accounts must not be null',
				 'ledger_debit_batch with NULL accounts raises 22004');
SELECT throws_ok($$SELECT * FROM ledger_transfer_batch(ARRAY['alice'], ARRAY['bob'], NULL)$$,
				 '22004', 'amounts must not be null',
				 'ledger_transfer_batch with NULL amounts raises 22004');
SELECT throws_ok($$SELECT ledger_hold(NULL, 100)$$,
				 '22004', 'account must not be null',
				 'ledger_hold with a NULL account raises 22004');
SELECT throws_ok($$SELECT ledger_hold('alice', NULL)$$,
				 '22004', 'amount must not be null',
				 'ledger_hold with a NULL amount raises 22004');
SELECT throws_ok($$SELECT ledger_capture(NULL)$$,
				 '22004', 'hold_id must not be null',
				 'ledger_capture with a NULL hold_id raises 22004');
SELECT throws_ok($$SELECT ledger_capture(NULL, 10, 'bob')$$,
				 '22004', 'hold_id must not be null',
				 'ledger_capture with a NULL hold_id and the other arguments raises 22004');
SELECT throws_ok($$SELECT ledger_release(NULL)$$,
				 '22004', 'hold_id must not be null',
				 'ledger_release(NULL) raises 22004');
SELECT throws_ok($$SELECT ledger_available(NULL)$$,
				 '22004', 'account must not be null',
				 'ledger_available(NULL) raises 22004');
SELECT throws_ok($$SELECT * FROM ledger_holds(NULL)$$,
				 '22004', 'account must not be null',
				 'ledger_holds with a NULL account raises 22004');
SELECT throws_ok($$SELECT * FROM ledger_holds('alice', NULL)$$,
				 '22004', 'max_rows must not be null',
				 'ledger_holds with a NULL max_rows raises 22004');
SELECT throws_ok($$SELECT ledger_balance_at(NULL, now())$$,
				 '22004', 'account must not be null',
				 'ledger_balance_at with a NULL account raises 22004');
SELECT throws_ok($$SELECT ledger_balance_at('alice', NULL)$$,
				 '22004', 'at must not be null',
				 'ledger_balance_at with a NULL time raises 22004');
SELECT throws_ok($$SELECT ledger_set_account_mode(NULL, 'escrow')$$,
				 '22004', 'account must not be null',
				 'ledger_set_account_mode with a NULL account raises 22004');
SELECT throws_ok($$SELECT ledger_set_account_mode('alice', NULL)$$,
				 '22004', 'mode must not be null',
				 'ledger_set_account_mode with a NULL mode raises 22004');
SELECT throws_ok($$SELECT ledger_account_mode(NULL)$$,
				 '22004', 'account must not be null',
				 'ledger_account_mode(NULL) raises 22004');

/*
 * The NULLs that mean something: no floor, no idempotency key, a hold that
 * never expires, a capture of the whole hold as a debit, history without
 * paging.
 */
SELECT is(ledger_open_account('bank', 'XXX', NULL), 3::bigint,
		  'ledger_open_account with a NULL min_balance opens an account without a floor');
SELECT is(ledger_debit('bank', 100, NULL), -100::bigint,
		  'ledger_debit with a NULL key posts without a key');
SELECT is(ledger_credit('alice', 100, NULL), 100::bigint,
		  'ledger_credit with a NULL key posts without a key');
SELECT is(ledger_transfer('alice', 'bob', 40, NULL), 1::bigint,
		  'ledger_transfer with a NULL key posts without a key');
SELECT is(ledger_hold('alice', 10, NULL, NULL), 1::bigint,
		  'ledger_hold with a NULL expires_in and key makes a hold that never expires');
SELECT results_eq($$SELECT status, expires_at FROM ledger_holds('alice')$$,
				  $$VALUES ('pending'::text, NULL::timestamptz)$$,
				  'the hold is pending, without an expiry');
SELECT is(ledger_capture(1, NULL, NULL), 50::bigint,
		  'ledger_capture with a NULL amount and to_account debits the whole hold');
SELECT is((SELECT count(*) FROM ledger_history('alice', 100, NULL)), 3::bigint,
		  'ledger_history with a NULL before_entry_id returns the newest entries');
SELECT is_empty($$SELECT * FROM ledger.idempotency_keys$$,
				'a NULL key claimed no idempotency key');
SELECT is_empty($$SELECT * FROM ledger_verify()$$,
				'ledger_verify() finds nothing wrong');

/* ---- ownership: the installing superuser owns the data and the code ---- */

SELECT schema_owner_is('ledger', session_user,
					   'schema ledger is owned by the installing role');
SELECT ok(rolsuper, 'the installing role, owner of schema ledger, is a superuser')
  FROM pg_catalog.pg_roles
 WHERE rolname = session_user;
SELECT is_empty(
	$$SELECT c.oid::regclass
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	   WHERE n.nspname = 'ledger'
		 AND c.relowner <> n.nspowner$$,
	'every table, index and sequence in ledger belongs to the owner of the schema');
SELECT is_empty(
	$$SELECT signature
		FROM extension_function
	   WHERE proowner <> (SELECT nspowner FROM pg_catalog.pg_namespace
						   WHERE nspname = 'ledger')$$,
	'every API function runs as the owner of schema ledger');

SELECT throws_ok($$SELECT ledger_transfer_out('alice', 'bob', 'XXX', 1, NULL)$$,
				 '22004', 'idempotency_key must not be null',
				 'ledger_transfer_out without a key raises 22004');
SELECT throws_ok($$SELECT ledger_transfer_finish(NULL)$$,
				 '22004', 'idempotency_key must not be null',
				 'ledger_transfer_finish(NULL) raises 22004');

SELECT * FROM finish();
ROLLBACK;
