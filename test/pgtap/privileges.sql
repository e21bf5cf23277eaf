/*
 * privileges.sql: least privilege.
 *
 * Proves that
 *	- PUBLIC (so any role nobody granted anything) can execute none of the
 *	  eighteen API functions (the nine of 1.0/1.1, the seven of holds,
 *	  1.2, and the two of escrow mode, 1.3), nor any other function of the
 *	  extension (the six shard-side functions of cross-shard transfers,
 *	  1.4, included);
 *	- PUBLIC has no privilege on the schema "ledger" nor on any table or
 *	  sequence in it (the hold tables of 1.2 included), and the tables
 *	  themselves grant nothing either, so the schema is not the only wall;
 *	- a role granted EXECUTE on the whole API (the README's application and
 *	  operator GRANTs together, and the holds functions) can use all of it,
 *	  yet still cannot read or write any ledger.* table directly, cannot
 *	  change or drop the functions, and cannot set
 *	  ledger.data_is_disposable.  (trust.sql tests the two recipes apart.)
 *
 * Roles are created inside the transaction, so the final ROLLBACK removes
 * them from the cluster again.
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;

BEGIN;
CREATE EXTENSION ledger;

SELECT plan(212);

/* A role nobody granted anything, and the application role of the README. */
CREATE ROLE tap_plain NOLOGIN;
CREATE ROLE tap_app NOLOGIN;
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
	ledger_set_account_mode(text, text),
	ledger_account_mode(text)
	TO tap_app;

/* The API, one row per function, used by the catalog checks below. */
CREATE TEMP TABLE api (
	id		int GENERATED ALWAYS AS IDENTITY,
	fn		text,
	args	name[]
) ON COMMIT DROP;
INSERT INTO api (fn, args) VALUES
	('ledger_open_account', '{text,text,bigint}'),
	('ledger_credit', '{text,bigint,text}'),
	('ledger_debit', '{text,bigint,text}'),
	('ledger_transfer', '{text,text,bigint,text}'),
	('ledger_balance', '{text}'),
	('ledger_history', '{text,integer,bigint}'),
	('ledger_verify', '{}'),
	('ledger_debit_batch', '{text[],bigint[],text[]}'),
	('ledger_transfer_batch', '{text[],text[],bigint[],text[]}'),
	('ledger_hold', '{text,bigint,interval,text}'),
	('ledger_capture', '{bigint,bigint,text}'),
	('ledger_release', '{bigint}'),
	('ledger_available', '{text}'),
	('ledger_holds', '{text,integer}'),
	('ledger_expire_holds', '{}'),
	('ledger_balance_at', '{text,"timestamp with time zone"}'),
	('ledger_set_account_mode', '{text,text}'),
	('ledger_account_mode', '{text}');

/*
 * The data tables and the statements tried on each.  Every statement would
 * succeed, or fail with an error other than 42501, if the role held the
 * privilege; the expected message pins the reason to a missing privilege,
 * not (say) to the append-only trigger, which also raises 42501.
 */
CREATE TEMP TABLE table_statement (
	id		int GENERATED ALWAYS AS IDENTITY,
	tbl		text,
	verb	text,
	sql		text
) ON COMMIT DROP;
INSERT INTO table_statement (tbl, verb, sql)
SELECT t.tbl, s.verb, format(s.template, t.tbl, t.col)
  FROM unnest(ARRAY['accounts', 'entries', 'transfers', 'idempotency_keys',
					'holds', 'hold_ends', 'pending_holds'],
			  ARRAY['created_at', 'created_at', 'created_at', 'created_at',
					'created_at', 'ended_at', 'expires_at'])
	   WITH ORDINALITY AS t(tbl, col, tn),
	   (VALUES (1, 'SELECT', 'SELECT * FROM ledger.%I'),
			   (2, 'INSERT', 'INSERT INTO ledger.%I DEFAULT VALUES'),
			   (3, 'UPDATE', 'UPDATE ledger.%1$I SET %2$I = %2$I'),
			   (4, 'DELETE', 'DELETE FROM ledger.%I'),
			   (5, 'TRUNCATE', 'TRUNCATE ledger.%I')) AS s(sn, verb, template)
 ORDER BY t.tn, s.sn;
GRANT SELECT ON api, table_statement TO PUBLIC;

/* Some data, so that UPDATE and DELETE have rows to act on. */
SELECT lives_ok(
	$$SELECT ledger_open_account('owner_a'), ledger_open_account('owner_b'),
			 ledger_credit('owner_a', 500, 'owner-key'),
			 ledger_transfer('owner_a', 'owner_b', 100)$$,
	'the owner posts a credit with a key and a transfer');

/* ---- catalog: PUBLIC ---------------------------------------------------- */

SELECT function_privs_are(fn, args, 'public', '{}',
						  'PUBLIC has no EXECUTE on ' || fn)
  FROM api
 ORDER BY id;

SELECT is_empty(
	$$SELECT p.oid::regprocedure
		FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_depend d
		  ON d.classid = 'pg_catalog.pg_proc'::regclass
		 AND d.objid = p.oid
		 AND d.refclassid = 'pg_catalog.pg_extension'::regclass
		 AND d.deptype = 'e'
		JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
	   WHERE e.extname = 'ledger'
		 AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
	'PUBLIC can execute no function of the extension at all');

SELECT schema_privs_are('ledger', 'public', '{}',
						'PUBLIC has no privilege on schema ledger');

SELECT table_privs_are('ledger', tbl, 'public', '{}',
					   'PUBLIC has no privilege on ledger.' || tbl)
  FROM unnest(ARRAY['accounts', 'entries', 'transfers', 'idempotency_keys',
					'holds', 'hold_ends', 'pending_holds']) AS tbl;

SELECT is_empty(
	$$SELECT n.nspname, a.grantee::regrole, a.privilege_type
		FROM pg_catalog.pg_namespace n,
			 aclexplode(n.nspacl) a
	   WHERE n.nspname = 'ledger'
		 AND a.grantee <> n.nspowner$$,
	'nobody but its owner holds a privilege on schema ledger');

SELECT is_empty(
	$$SELECT c.oid::regclass, a.grantee, a.privilege_type
		FROM pg_catalog.pg_class c,
			 aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
	   WHERE c.relnamespace = 'ledger'::regnamespace
		 AND a.grantee <> c.relowner$$,
	'nobody but its owner holds a privilege on any table or sequence in ledger');

/* ---- catalog: the application role --------------------------------------- */

SELECT function_privs_are(fn, args, 'tap_app', '{EXECUTE}',
						  'the app role may execute ' || fn)
  FROM api
 ORDER BY id;

SELECT schema_privs_are('ledger', 'tap_app', '{}',
						'the app role has no privilege on schema ledger');

SELECT table_privs_are('ledger', tbl, 'tap_app', '{}',
					   'the app role has no privilege on ledger.' || tbl)
  FROM unnest(ARRAY['accounts', 'entries', 'transfers', 'idempotency_keys',
					'holds', 'hold_ends', 'pending_holds']) AS tbl;

/* ---- an ungranted role, in practice ---------------------------------------- */

SET ROLE tap_plain;

SELECT throws_ok($$SELECT ledger_open_account('plain_a')$$, '42501',
				 'permission denied for function ledger_open_account',
				 'an ungranted role cannot call ledger_open_account');
SELECT throws_ok($$SELECT ledger_credit('owner_a', 1)$$, '42501',
				 'permission denied for function ledger_credit',
				 'an ungranted role cannot call ledger_credit');
SELECT throws_ok($$SELECT ledger_debit('owner_a', 1)$$, '42501',
				 'permission denied for function ledger_debit',
				 'an ungranted role cannot call ledger_debit');
SELECT throws_ok($$SELECT ledger_transfer('owner_a', 'owner_b', 1)$$, '42501',
				 'permission denied for function ledger_transfer',
				 'an ungranted role cannot call ledger_transfer');
SELECT throws_ok($$SELECT ledger_balance('owner_a')$$, '42501',
				 'permission denied for function ledger_balance',
				 'an ungranted role cannot call ledger_balance');
SELECT throws_ok($$SELECT * FROM ledger_history('owner_a')$$, '42501',
				 'permission denied for function ledger_history',
				 'an ungranted role cannot call ledger_history');
SELECT throws_ok($$SELECT * FROM ledger_verify()$$, '42501',
				 'permission denied for function ledger_verify',
				 'an ungranted role cannot call ledger_verify');
SELECT throws_ok($$SELECT * FROM ledger_debit_batch(ARRAY['owner_a'], ARRAY[1::bigint])$$, '42501',
				 'permission denied for function ledger_debit_batch',
				 'an ungranted role cannot call ledger_debit_batch');
SELECT throws_ok($$SELECT * FROM ledger_transfer_batch(ARRAY['owner_a'], ARRAY['owner_b'], ARRAY[1::bigint])$$, '42501',
				 'permission denied for function ledger_transfer_batch',
				 'an ungranted role cannot call ledger_transfer_batch');
SELECT throws_ok($$SELECT ledger_hold('owner_a', 1)$$, '42501',
				 'permission denied for function ledger_hold',
				 'an ungranted role cannot call ledger_hold');
SELECT throws_ok($$SELECT ledger_capture(1)$$, '42501',
				 'permission denied for function ledger_capture',
				 'an ungranted role cannot call ledger_capture');
SELECT throws_ok($$SELECT ledger_release(1)$$, '42501',
				 'permission denied for function ledger_release',
				 'an ungranted role cannot call ledger_release');
SELECT throws_ok($$SELECT ledger_available('owner_a')$$, '42501',
				 'permission denied for function ledger_available',
				 'an ungranted role cannot call ledger_available');
SELECT throws_ok($$SELECT * FROM ledger_holds('owner_a')$$, '42501',
				 'permission denied for function ledger_holds',
				 'an ungranted role cannot call ledger_holds');
SELECT throws_ok($$SELECT ledger_expire_holds()$$, '42501',
				 'permission denied for function ledger_expire_holds',
				 'an ungranted role cannot call ledger_expire_holds');
SELECT throws_ok($$SELECT ledger_balance_at('owner_a', now())$$, '42501',
				 'permission denied for function ledger_balance_at',
				 'an ungranted role cannot call ledger_balance_at');
SELECT throws_ok($$SELECT ledger_set_account_mode('owner_a', 'escrow')$$, '42501',
				 'permission denied for function ledger_set_account_mode',
				 'an ungranted role cannot call ledger_set_account_mode');
SELECT throws_ok($$SELECT ledger_account_mode('owner_a')$$, '42501',
				 'permission denied for function ledger_account_mode',
				 'an ungranted role cannot call ledger_account_mode');

SELECT throws_ok(sql, '42501', 'permission denied for schema ledger',
				 format('an ungranted role cannot %s ledger.%s', verb, tbl))
  FROM table_statement
 ORDER BY id;

SELECT throws_ok($$CREATE TABLE ledger.sneaky (x int)$$, '42501',
				 'permission denied for schema ledger',
				 'an ungranted role cannot create objects in schema ledger');

RESET ROLE;

/*
 * Defence in depth: even if someone granted USAGE on the schema, the
 * tables and sequences themselves still grant nothing.
 */
GRANT USAGE ON SCHEMA ledger TO tap_plain;
SET ROLE tap_plain;

SELECT throws_ok(sql, '42501', 'permission denied for table ' || tbl,
				 format('with USAGE on the schema, a role still cannot %s ledger.%s',
						verb, tbl))
  FROM table_statement
 ORDER BY id;

SELECT throws_ok(format('SELECT nextval(%L)', 'ledger.' || seq), '42501',
				 'permission denied for sequence ' || seq,
				 'with USAGE on the schema, a role still cannot draw from ledger.' || seq)
  FROM unnest(ARRAY['accounts_account_id_seq', 'entries_entry_id_seq',
					'transfers_transfer_id_seq', 'holds_hold_id_seq']) AS seq;

RESET ROLE;
REVOKE USAGE ON SCHEMA ledger FROM tap_plain;

/* ---- the application role: the whole API works ------------------------------ */

SET ROLE tap_app;

SELECT is(ledger_open_account('app_a'), 3::bigint,
		  'the app role opens an account');
SELECT is(ledger_open_account('app_b', 'XXX', 0), 4::bigint,
		  'the app role opens a second account');
SELECT is(ledger_open_account('app_a'), 3::bigint,
		  'the app role reopens an account and gets the same id');
SELECT is(ledger_credit('app_a', 100), 100::bigint,
		  'the app role credits');
SELECT is(ledger_debit('app_a', 30, 'app-debit-1'), 70::bigint,
		  'the app role debits with a key');
SELECT is(ledger_debit('app_a', 30, 'app-debit-1'), 70::bigint,
		  'the app role replays the key');
SELECT is(ledger_transfer('app_a', 'app_b', 20), 2::bigint,
		  'the app role transfers');
SELECT is(ledger_balance('app_a'), 50::bigint,
		  'the app role reads a balance');
SELECT results_eq(
	$$SELECT amount, balance_after FROM ledger_history('app_a')$$,
	$$VALUES (-20::bigint, 50::bigint), (-30, 70), (100, 100)$$,
	'the app role reads the history, newest first');
SELECT results_eq(
	$$SELECT status, result FROM ledger_debit_batch(ARRAY['app_a', 'app_a'], ARRAY[10, 1000]::bigint[])$$,
	$$VALUES ('ok'::text, 40::bigint), ('insufficient_funds', NULL)$$,
	'the app role posts a debit batch');
SELECT results_eq(
	$$SELECT status FROM ledger_transfer_batch(ARRAY['app_b'], ARRAY['app_a'], ARRAY[5]::bigint[])$$,
	$$VALUES ('ok'::text)$$,
	'the app role posts a transfer batch');
SELECT is(ledger_hold('app_a', 15, '1 hour', 'app-hold-1'), 1::bigint,
		  'the app role holds 15 for an hour, with a key');
SELECT is(ledger_available('app_a'), 30::bigint,
		  'the app role reads what is available (45 - 15)');
SELECT is(ledger_capture(1, 10, 'app_b'), 35::bigint,
		  'the app role captures 10 of the hold to another account');
SELECT is(ledger_hold('app_a', 5), 2::bigint, 'the app role holds again');
SELECT ok(ledger_release(2), 'the app role releases that hold');
SELECT results_eq(
	$$SELECT hold_id, status, captured FROM ledger_holds('app_a')$$,
	$$VALUES (2::bigint, 'released'::text, NULL::bigint), (1, 'captured', 10)$$,
	'the app role lists the holds, newest first');
SELECT is(ledger_expire_holds(), 0::bigint, 'the app role runs the sweep');
SELECT is(ledger_balance_at('app_a', 'infinity'), 35::bigint,
		  'the app role reads a balance at a time');
SELECT is_empty($$SELECT * FROM ledger_verify()$$,
				'the app role runs the audit, which finds nothing');

/* ---- ... but nothing else ---------------------------------------------------- */

SELECT throws_ok(sql, '42501', 'permission denied for schema ledger',
				 format('the app role cannot %s ledger.%s', verb, tbl))
  FROM table_statement
 ORDER BY id;

SELECT throws_ok($$CREATE TABLE ledger.sneaky (x int)$$, '42501',
				 'permission denied for schema ledger',
				 'the app role cannot create objects in schema ledger');

SELECT throws_ok($$ALTER FUNCTION ledger_debit(text, bigint, text) SECURITY INVOKER$$,
				 '42501', 'must be owner of function ledger_debit',
				 'the app role cannot alter an API function');
SELECT throws_ok($$DROP FUNCTION ledger_verify()$$,
				 '42501', 'must be owner of function ledger_verify',
				 'the app role cannot drop an API function');

SELECT throws_ok($$SET ledger.data_is_disposable = on$$, '42501',
				 'permission denied to set parameter "ledger.data_is_disposable"',
				 'the app role cannot SET ledger.data_is_disposable');
SELECT throws_ok($$SET LOCAL ledger.data_is_disposable = on$$, '42501',
				 'permission denied to set parameter "ledger.data_is_disposable"',
				 'the app role cannot SET LOCAL ledger.data_is_disposable');
SELECT throws_ok($$SELECT set_config('ledger.data_is_disposable', 'on', false)$$, '42501',
				 'permission denied to set parameter "ledger.data_is_disposable"',
				 'the app role cannot set_config ledger.data_is_disposable');
SELECT is(current_setting('ledger.data_is_disposable'), 'off',
		  'ledger.data_is_disposable is still off');

RESET ROLE;

/* ---- what the app role did went through the API ------------------------------ */

SELECT results_eq(
	$$SELECT name::text COLLATE "default", balance FROM ledger.accounts ORDER BY account_id$$,
	$$VALUES ('owner_a', 400::bigint), ('owner_b', 100), ('app_a', 35), ('app_b', 25)$$,
	'the balances reflect exactly the calls made through the API');

SELECT * FROM finish();
ROLLBACK;
