/*
 * hostile.sql: a caller who tries to run her own code inside the ledger.
 *
 * mallory may execute the API and owns a schema "evil" full of look-alikes
 * of what the ledger's internal SQL uses: the operators = <> < <= > >= ~ on
 * text, bigint and numeric, now(), nextval(regclass), format(...),
 * octet_length(text), and the aggregates sum(bigint) and count(bigint).
 * Each one quietly notes in evil.ran that it ran, as whom, and then returns
 * the right answer, so only that note could betray it.
 *
 * Proves that
 *	- the traps are armed: with mallory's search_path each one is what an
 *	  unqualified name resolves to (a control, or the rest proves nothing);
 *	- with search_path = evil, public, pg_catalog (pg_catalog explicitly
 *	  after evil) every API call, successful or failing, gives exactly the
 *	  right result and not one trap ran;
 *	- with temp tables, and sequences, named like the ledger's (accounts,
 *	  entries, transfers, idempotency_keys, *_seq) full of decoy rows, and
 *	  pg_temp first in the path, every call still reads and writes ledger.*
 *	  only, and the decoys are left untouched;
 *	- the holds functions of 1.2 too, against more traps for what their
 *	  SQL needs besides: the comparisons of timestamptz and interval,
 *	  timestamptz + interval, and clock_timestamp().
 */
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;

BEGIN;
CREATE EXTENSION ledger;

SELECT plan(29);

CREATE ROLE mallory NOLOGIN;
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
	ledger_balance_at(text, timestamptz)
	TO mallory;
CREATE SCHEMA evil AUTHORIZATION mallory;

/* ---- mallory builds her traps (with an ordinary search_path) ------------ */

SET ROLE mallory;

/* Where the traps report.  Whoever runs one, the ledger's owner included, may write here. */
CREATE TABLE evil.ran (what text, run_as name);
GRANT INSERT ON evil.ran TO PUBLIC;
CREATE FUNCTION evil.note(what text) RETURNS void LANGUAGE sql
	AS $$INSERT INTO evil.ran VALUES (what, current_user)$$;

/* Operators: each notes, then calls the pg_catalog function behind the real one. */
DO $$
DECLARE
	op record;
BEGIN
	FOR op IN
		SELECT *
		  FROM (VALUES ('=', 'text', 'texteq'), ('<>', 'text', 'textne'),
					   ('<', 'text', 'text_lt'), ('<=', 'text', 'text_le'),
					   ('>', 'text', 'text_gt'), ('>=', 'text', 'text_ge'),
					   ('~', 'text', 'textregexeq'),
					   ('=', 'bigint', 'int8eq'), ('<>', 'bigint', 'int8ne'),
					   ('<', 'bigint', 'int8lt'), ('<=', 'bigint', 'int8le'),
					   ('>', 'bigint', 'int8gt'), ('>=', 'bigint', 'int8ge'),
					   ('=', 'numeric', 'numeric_eq'), ('<>', 'numeric', 'numeric_ne'))
			   AS t(oprname, typ, impl)
	LOOP
		EXECUTE format('CREATE FUNCTION evil.%I(a %s, b %s) RETURNS boolean LANGUAGE sql AS %L',
					   'trap_' || op.impl, op.typ, op.typ,
					   format('SELECT evil.note(%L); SELECT pg_catalog.%I(a, b)',
							  format('%s (%s, %s)', op.oprname, op.typ, op.typ), op.impl));
		EXECUTE format('CREATE OPERATOR evil.%s (FUNCTION = evil.%I, LEFTARG = %s, RIGHTARG = %s)',
					   op.oprname, 'trap_' || op.impl, op.typ, op.typ);
	END LOOP;
END
$$;

/* Functions with the same signature as pg_catalog's, or a more exact one. */
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql
	AS $$SELECT evil.note('now()'); SELECT pg_catalog.now()$$;
CREATE FUNCTION evil.nextval(seq regclass) RETURNS bigint LANGUAGE sql
	AS $$SELECT evil.note('nextval(regclass)'); SELECT pg_catalog.nextval(seq)$$;
CREATE FUNCTION evil.octet_length(t text) RETURNS integer LANGUAGE sql
	AS $$SELECT evil.note('octet_length(text)'); SELECT pg_catalog.octet_length(t)$$;
CREATE FUNCTION evil.format(fmt text, a bigint, b bigint) RETURNS text LANGUAGE sql
	AS $$SELECT evil.note('format(...)'); SELECT pg_catalog.format(fmt, a, b)$$;
CREATE FUNCTION evil.format(fmt text, a bigint, b numeric) RETURNS text LANGUAGE sql
	AS $$SELECT evil.note('format(...)'); SELECT pg_catalog.format(fmt, a, b)$$;
CREATE FUNCTION evil.format(fmt text, a bigint, b bigint, c numeric) RETURNS text LANGUAGE sql
	AS $$SELECT evil.note('format(...)'); SELECT pg_catalog.format(fmt, a, b, c)$$;
CREATE FUNCTION evil.sum_step(s numeric, v bigint) RETURNS numeric LANGUAGE sql
	AS $$SELECT evil.note('sum(bigint)'); SELECT pg_catalog.numeric_add(s, v::numeric)$$;
CREATE AGGREGATE evil.sum(bigint) (SFUNC = evil.sum_step, STYPE = numeric, INITCOND = '0');
CREATE FUNCTION evil.count_step(s bigint, v bigint) RETURNS bigint LANGUAGE sql
	AS $$SELECT evil.note('count(bigint)'); SELECT pg_catalog.int8inc(s)$$;
CREATE AGGREGATE evil.count(bigint) (SFUNC = evil.count_step, STYPE = bigint, INITCOND = '0');
CREATE SEQUENCE evil.control_seq;

/* What mallory's calls return, recorded without any operator or pgTAP call. */
CREATE TABLE evil.result (step int, what text, value bigint);
CREATE TABLE evil.failure (step int, what text, sqlstate text);
CREATE TABLE evil.history (step int, entry_id bigint, amount bigint, balance_after bigint,
						   transfer_id bigint, idempotency_key text, created_at timestamptz);
CREATE TABLE evil.audit (step int, account text, problem text);

/* ---- control: with mallory's search_path, every trap is what resolves ---- */

SET search_path = evil, public, pg_catalog;
DO $$
BEGIN
	PERFORM t = t, t <> t, t < t, t <= t, t > t, t >= t, t ~ t, octet_length(t),
			b = b, b <> b, b < b, b <= b, b > b, b >= b, n = n, n <> n,
			now(), nextval('evil.control_seq'),
			format('%s %s', b, b), format('%s %s', b, n), format('%s %s %s', b, b, n)
	   FROM (VALUES ('x'::text, 1::bigint, 1::numeric)) AS v(t, b, n);
	PERFORM sum(b), count(b) FROM (VALUES (1::bigint)) AS v(b);
END
$$;
RESET search_path;

SELECT set_eq(
	$$SELECT what FROM evil.ran$$,
	ARRAY['= (text, text)', '<> (text, text)', '< (text, text)', '<= (text, text)',
		  '> (text, text)', '>= (text, text)', '~ (text, text)',
		  '= (bigint, bigint)', '<> (bigint, bigint)', '< (bigint, bigint)',
		  '<= (bigint, bigint)', '> (bigint, bigint)', '>= (bigint, bigint)',
		  '= (numeric, numeric)', '<> (numeric, numeric)',
		  'octet_length(text)', 'now()', 'nextval(regclass)', 'format(...)',
		  'sum(bigint)', 'count(bigint)'],
	'control: under search_path evil, public, pg_catalog every trap is what an unqualified name resolves to');

DELETE FROM evil.ran;

/* ---- attack 1: the whole API with evil first in the search_path --------- */

SET search_path = evil, public, pg_catalog;

INSERT INTO evil.result VALUES (1, 'open alice', ledger_open_account('alice', 'EUR'));
INSERT INTO evil.result VALUES (2, 'open bob', ledger_open_account('bob', 'EUR'));
INSERT INTO evil.result VALUES (3, 'open bank, no floor', ledger_open_account('bank', 'EUR', NULL));
INSERT INTO evil.result VALUES (4, 'open yen', ledger_open_account('yen', 'JPY'));
INSERT INTO evil.result VALUES (5, 'reopen alice', ledger_open_account('alice', 'EUR'));
INSERT INTO evil.result VALUES (6, 'transfer, no key', ledger_transfer('bank', 'alice', 10000));
INSERT INTO evil.result VALUES (7, 'transfer, key', ledger_transfer('bank', 'alice', 5000, 'tk'));
INSERT INTO evil.result VALUES (8, 'transfer, replayed key', ledger_transfer('bank', 'alice', 5000, 'tk'));
INSERT INTO evil.result VALUES (9, 'credit, key', ledger_credit('alice', 300, 'ck'));
INSERT INTO evil.result VALUES (10, 'credit, replayed key', ledger_credit('alice', 300, 'ck'));
INSERT INTO evil.result VALUES (11, 'credit, no key', ledger_credit('bob', 50));
INSERT INTO evil.result VALUES (12, 'debit, no key', ledger_debit('alice', 1000));
INSERT INTO evil.result VALUES (13, 'debit, key', ledger_debit('alice', 1000, 'dk'));
INSERT INTO evil.result VALUES (14, 'debit, replayed key', ledger_debit('alice', 1000, 'dk'));
INSERT INTO evil.result VALUES (15, 'transfer alice to bob', ledger_transfer('alice', 'bob', 300));

/* Every business rule, caught without pgTAP: only the SQLSTATE is kept. */
DO $$
BEGIN
	BEGIN
		PERFORM ledger_debit('alice', 1000000);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (1, 'overdraw', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_debit('nobody', 1);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (2, 'no such account', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_credit('alice', 1000, 'dk');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (3, 'key reused for another request', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_transfer('alice', 'yen', 1);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (4, 'currency mismatch', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_open_account('bob', 'USD');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (5, 'reopen with other parameters', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_transfer('alice', 'alice', 1);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (6, 'transfer to self', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_credit('alice', -5);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (7, 'negative amount', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_balance(NULL);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (8, 'NULL account', SQLSTATE);
	END;
END
$$;

INSERT INTO evil.result VALUES (16, 'balance alice', ledger_balance('alice'));
INSERT INTO evil.result VALUES (17, 'balance bob', ledger_balance('bob'));
INSERT INTO evil.result VALUES (18, 'balance bank', ledger_balance('bank'));
INSERT INTO evil.history SELECT 1, * FROM ledger_history('alice');
INSERT INTO evil.history SELECT 2, * FROM ledger_history('alice', 2);
INSERT INTO evil.audit SELECT 1, * FROM ledger_verify();

RESET search_path;

SELECT results_eq(
	$$SELECT step, what, value FROM evil.result ORDER BY step$$,
	$$VALUES (1, 'open alice', 1::bigint),
			 (2, 'open bob', 2),
			 (3, 'open bank, no floor', 3),
			 (4, 'open yen', 4),
			 (5, 'reopen alice', 1),
			 (6, 'transfer, no key', 1),
			 (7, 'transfer, key', 2),
			 (8, 'transfer, replayed key', 2),
			 (9, 'credit, key', 15300),
			 (10, 'credit, replayed key', 15300),
			 (11, 'credit, no key', 50),
			 (12, 'debit, no key', 14300),
			 (13, 'debit, key', 13300),
			 (14, 'debit, replayed key', 13300),
			 (15, 'transfer alice to bob', 3),
			 (16, 'balance alice', 13000),
			 (17, 'balance bob', 350),
			 (18, 'balance bank', -15000)$$,
	'attack 1: every call returned the right id, balance or transfer id');

SELECT results_eq(
	$$SELECT step, what, sqlstate FROM evil.failure ORDER BY step$$,
	$$VALUES (1, 'overdraw', 'LG001'),
			 (2, 'no such account', 'LG002'),
			 (3, 'key reused for another request', 'LG003'),
			 (4, 'currency mismatch', 'LG004'),
			 (5, 'reopen with other parameters', 'LG005'),
			 (6, 'transfer to self', '22023'),
			 (7, 'negative amount', '22023'),
			 (8, 'NULL account', '22004')$$,
	'attack 1: every refused call raised its documented SQLSTATE');

SELECT results_eq(
	$$SELECT entry_id, amount, balance_after, transfer_id, idempotency_key
		FROM evil.history WHERE step = 1 ORDER BY entry_id DESC$$,
	$$VALUES (9::bigint, -300::bigint, 13000::bigint, 3::bigint, NULL::text),
			 (8, -1000, 13300, NULL, 'dk'),
			 (7, -1000, 14300, NULL, NULL),
			 (5, 300, 15300, NULL, 'ck'),
			 (4, 5000, 15000, 2, 'tk'),
			 (2, 10000, 10000, 1, NULL)$$,
	'attack 1: ledger_history(alice) returned alice''s six entries');

SELECT results_eq(
	$$SELECT entry_id FROM evil.history WHERE step = 2 ORDER BY entry_id DESC$$,
	$$VALUES (9::bigint), (8)$$,
	'attack 1: ledger_history(alice, 2) returned the newest two');

SELECT is_empty($$SELECT * FROM evil.audit$$,
				'attack 1: ledger_verify() found nothing wrong');

SELECT is_empty($$SELECT what, run_as FROM evil.ran$$,
				'attack 1: not one of mallory''s traps ran');

/* ---- attack 2: decoy tables and sequences in pg_temp -------------------- */

/*
 * Same names and columns as the ledger's tables, so a query that found
 * them instead would run, not fail: only its results would betray it.
 */
CREATE TEMP TABLE accounts (
	account_id	bigint,
	name		text,
	currency	text,
	min_balance bigint,
	balance		bigint,
	created_at	timestamptz
);
CREATE TEMP TABLE entries (
	entry_id	bigint,
	account_id	bigint,
	amount		bigint,
	balance_after bigint,
	transfer_id bigint,
	idempotency_key text,
	created_at	timestamptz
);
CREATE TEMP TABLE transfers (
	transfer_id bigint,
	from_account_id bigint,
	to_account_id bigint,
	amount		bigint,
	idempotency_key text,
	created_at	timestamptz
);
CREATE TEMP TABLE idempotency_keys (
	idempotency_key text,
	operation	text,
	account		text,
	counter_account text,
	amount		bigint,
	result		bigint,
	created_at	timestamptz
);
CREATE TEMP SEQUENCE accounts_account_id_seq START 800000;
CREATE TEMP SEQUENCE entries_entry_id_seq START 700000;
CREATE TEMP SEQUENCE transfers_transfer_id_seq START 900000;

INSERT INTO accounts VALUES
	(1, 'alice', 'EUR', NULL, 999999, now()),
	(3, 'bank', 'EUR', NULL, 0, now()),
	(42, 'ghost', 'EUR', NULL, 777, now());
INSERT INTO entries VALUES (1, 1, 5, 5, 1, NULL, now());
INSERT INTO transfers VALUES (1, 1, 42, 5, NULL, now());
INSERT INTO idempotency_keys VALUES
	('decoy-credit', 'credit', 'alice', NULL, 7, 424242, now()),
	('decoy-debit', 'debit', 'alice', NULL, 999, 1, now());

SET search_path = pg_temp, evil, public, pg_catalog;

INSERT INTO evil.result VALUES (101, 'balance alice', ledger_balance('alice'));
INSERT INTO evil.result VALUES (102, 'credit, key only a decoy knows', ledger_credit('alice', 7, 'decoy-credit'));
INSERT INTO evil.result VALUES (103, 'debit, key a decoy knows otherwise', ledger_debit('alice', 17, 'decoy-debit'));
INSERT INTO evil.result VALUES (104, 'transfer', ledger_transfer('bank', 'alice', 10));
INSERT INTO evil.result VALUES (105, 'open carol', ledger_open_account('carol', 'EUR'));
INSERT INTO evil.result VALUES (106, 'balance alice', ledger_balance('alice'));
INSERT INTO evil.history SELECT 101, * FROM ledger_history('alice', 3);
INSERT INTO evil.audit SELECT 101, * FROM ledger_verify();
DO $$
BEGIN
	PERFORM ledger_balance('ghost');
EXCEPTION WHEN OTHERS THEN
	INSERT INTO evil.failure VALUES (101, 'balance of an account only a decoy has', SQLSTATE);
END
$$;

RESET search_path;

SELECT results_eq(
	$$SELECT step, what, value FROM evil.result
	   WHERE step > 100 AND step <> 105 ORDER BY step$$,
	$$VALUES (101, 'balance alice', 13000::bigint),
			 (102, 'credit, key only a decoy knows', 13007),
			 (103, 'debit, key a decoy knows otherwise', 12990),
			 (104, 'transfer', 4),
			 (106, 'balance alice', 13000)$$,
	'attack 2: every call returned the ledger''s result, not a decoy''s');

SELECT results_eq(
	$$SELECT entry_id, amount, balance_after, transfer_id, idempotency_key
		FROM evil.history WHERE step = 101 ORDER BY entry_id DESC$$,
	$$VALUES (14::bigint, 10::bigint, 13000::bigint, 4::bigint, NULL::text),
			 (12, -17, 12990, NULL, 'decoy-debit'),
			 (11, 7, 13007, NULL, 'decoy-credit')$$,
	'attack 2: ledger_history(alice, 3) returned the ledger''s newest entries');

SELECT is_empty($$SELECT * FROM evil.audit WHERE step = 101$$,
				'attack 2: ledger_verify() audited the ledger, not the decoys');

SELECT results_eq(
	$$SELECT sqlstate FROM evil.failure WHERE step = 101$$,
	$$VALUES ('LG002')$$,
	'attack 2: an account that only a decoy table has does not exist');

SELECT results_eq(
	$$SELECT (SELECT count(*) FROM pg_temp.accounts),
			 (SELECT sum(balance) FROM pg_temp.accounts),
			 (SELECT count(*) FROM pg_temp.entries),
			 (SELECT count(*) FROM pg_temp.transfers),
			 (SELECT count(*) FROM pg_temp.idempotency_keys)$$,
	$$VALUES (3::bigint, 1000776::numeric, 1::bigint, 1::bigint, 2::bigint)$$,
	'attack 2: the decoy tables were neither read into nor written');

SELECT results_eq(
	$$SELECT seq, is_called
		FROM (VALUES ('accounts_account_id_seq', (SELECT is_called FROM pg_temp.accounts_account_id_seq)),
					 ('entries_entry_id_seq', (SELECT is_called FROM pg_temp.entries_entry_id_seq)),
					 ('transfers_transfer_id_seq', (SELECT is_called FROM pg_temp.transfers_transfer_id_seq)))
			 AS s(seq, is_called)$$,
	$$VALUES ('accounts_account_id_seq', false),
			 ('entries_entry_id_seq', false),
			 ('transfers_transfer_id_seq', false)$$,
	'attack 2: no decoy sequence was drawn from');

SELECT is_empty($$SELECT what, run_as FROM evil.ran$$,
				'attack 2: still not one of mallory''s traps ran');

/* ---- the owner's view: the books are what the calls said ---------------- */

RESET ROLE;

SELECT results_eq(
	$$SELECT name::text COLLATE "default", currency::text COLLATE "default", min_balance::bigint, balance
		FROM ledger.accounts ORDER BY account_id$$,
	$$VALUES ('alice', 'EUR', 0::bigint, 13000::bigint),
			 ('bob', 'EUR', 0, 350),
			 ('bank', 'EUR', NULL, -15010),
			 ('yen', 'JPY', 0, 0),
			 ('carol', 'EUR', 0, 0)$$,
	'the accounts hold exactly what mallory''s calls said');

/* Reopening takes an identity value, so carol's id is checked against the table. */
SELECT is((SELECT value FROM evil.result WHERE step = 105),
		  (SELECT account_id FROM ledger.accounts WHERE name = 'carol'),
		  'attack 2: ledger_open_account(carol) returned the id of the ledger''s row');

SELECT set_eq(
	$$SELECT idempotency_key::text COLLATE "default" FROM ledger.idempotency_keys$$,
	ARRAY['tk', 'ck', 'dk', 'decoy-credit', 'decoy-debit'],
	'the ledger claimed the keys mallory used, the decoys'' names included');

SELECT results_eq(
	$$SELECT (SELECT count(*) FROM ledger.entries), (SELECT count(*) FROM ledger.transfers)$$,
	$$VALUES (14::bigint, 4::bigint)$$,
	'the journal holds the 14 entries and 4 transfers posted');

SELECT is_empty($$SELECT * FROM ledger_verify()$$,
				'the owner''s audit finds nothing wrong');

/* ---- attack 3: the batch functions with evil first in the search_path --- */

SET ROLE mallory;
CREATE TABLE evil.batch (step int, ordinal int, status text, result bigint);
SET search_path = evil, public, pg_catalog;

INSERT INTO evil.batch SELECT 1, * FROM ledger_debit_batch(
	ARRAY['alice', 'bob', 'nobody'], ARRAY[100, 1000, 1]::bigint[], ARRAY['bk1', NULL, NULL]);
INSERT INTO evil.batch SELECT 2, * FROM ledger_debit_batch(
	ARRAY['alice'], ARRAY[100]::bigint[], ARRAY['bk1']);
INSERT INTO evil.batch SELECT 3, * FROM ledger_transfer_batch(
	ARRAY['bank', 'alice'], ARRAY['alice', 'yen'], ARRAY[10, 1]::bigint[]);

RESET search_path;
RESET ROLE;

SELECT results_eq(
	$$SELECT step, ordinal, status, result FROM evil.batch ORDER BY step, ordinal$$,
	$$VALUES (1, 1, 'ok'::text, 12900::bigint),
			 (1, 2, 'insufficient_funds', NULL),
			 (1, 3, 'account_not_found', NULL),
			 (2, 1, 'ok', 12900),
			 (3, 1, 'ok', 5),
			 (3, 2, 'currency_mismatch', NULL)$$,
	'attack 3: every batch item got the ledger''s status and result');
SELECT is_empty($$SELECT what, run_as FROM evil.ran$$,
				'attack 3: not one of mallory''s traps ran inside a batch');
SELECT is_empty($$SELECT * FROM ledger_verify()$$,
				'attack 3: the owner''s audit still finds nothing wrong');

/* ---- attack 4: the holds functions, with more traps --------------------- */

SET ROLE mallory;
DO $$
DECLARE
	op record;
BEGIN
	FOR op IN
		SELECT *
		  FROM (VALUES ('=', 'timestamptz', 'timestamptz_eq'), ('<', 'timestamptz', 'timestamptz_lt'),
					   ('<=', 'timestamptz', 'timestamptz_le'), ('>', 'timestamptz', 'timestamptz_gt'),
					   ('>=', 'timestamptz', 'timestamptz_ge'),
					   ('=', 'interval', 'interval_eq'), ('>', 'interval', 'interval_gt'))
			   AS t(oprname, typ, impl)
	LOOP
		EXECUTE format('CREATE FUNCTION evil.%I(a %s, b %s) RETURNS boolean LANGUAGE sql AS %L',
					   'trap_' || op.impl, op.typ, op.typ,
					   format('SELECT evil.note(%L); SELECT pg_catalog.%I(a, b)',
							  format('%s (%s, %s)', op.oprname, op.typ, op.typ), op.impl));
		EXECUTE format('CREATE OPERATOR evil.%s (FUNCTION = evil.%I, LEFTARG = %s, RIGHTARG = %s)',
					   op.oprname, 'trap_' || op.impl, op.typ, op.typ);
	END LOOP;
END
$$;
CREATE FUNCTION evil.trap_timestamptz_pl_interval(a timestamptz, b interval)
	RETURNS timestamptz LANGUAGE sql
	AS $$SELECT evil.note('+ (timestamptz, interval)'); SELECT pg_catalog.timestamptz_pl_interval(a, b)$$;
CREATE OPERATOR evil.+ (FUNCTION = evil.trap_timestamptz_pl_interval,
						LEFTARG = timestamptz, RIGHTARG = interval);
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql
	AS $$SELECT evil.note('clock_timestamp()'); SELECT pg_catalog.clock_timestamp()$$;
CREATE TABLE evil.holds (step int, hold_id bigint, amount bigint, captured bigint, status text,
						 created_at timestamptz, expires_at timestamptz, idempotency_key text);

SET search_path = evil, public, pg_catalog;
DO $$
BEGIN
	PERFORM t = t, t < t, t <= t, t > t, t >= t, i = i, i > i, t + i, clock_timestamp()
	   FROM (VALUES (pg_catalog.now(), '1 day'::interval)) AS v(t, i);
END
$$;
RESET search_path;

SELECT set_eq(
	$$SELECT what FROM evil.ran$$,
	ARRAY['= (timestamptz, timestamptz)', '< (timestamptz, timestamptz)',
		  '<= (timestamptz, timestamptz)', '> (timestamptz, timestamptz)',
		  '>= (timestamptz, timestamptz)', '= (interval, interval)', '> (interval, interval)',
		  '+ (timestamptz, interval)', 'clock_timestamp()'],
	'control: the new traps are what an unqualified name resolves to');
DELETE FROM evil.ran;

SET search_path = evil, public, pg_catalog;

INSERT INTO evil.result VALUES (201, 'hold, key', ledger_hold('alice', 100, '1 hour', 'hk'));
INSERT INTO evil.result VALUES (202, 'hold, key replayed, the interval spelled otherwise',
								ledger_hold('alice', 100, '60 minutes', 'hk'));
INSERT INTO evil.result VALUES (203, 'hold, no key', ledger_hold('alice', 50));
INSERT INTO evil.result VALUES (204, 'hold expiring at once', ledger_hold('alice', 25, '1 microsecond'));
INSERT INTO evil.result VALUES (205, 'available', ledger_available('alice'));
INSERT INTO evil.result VALUES (206, 'capture in part to bob', ledger_capture(1, 60, 'bob'));
INSERT INTO evil.result VALUES (207, 'capture replayed', ledger_capture(1, 60, 'bob'));
INSERT INTO evil.result VALUES (208, 'release', ledger_release(2)::int);
INSERT INTO evil.result VALUES (209, 'sweep', ledger_expire_holds());
INSERT INTO evil.result VALUES (210, 'balance at infinity', ledger_balance_at('alice', 'infinity'));
INSERT INTO evil.result VALUES (211, 'balance at -infinity', ledger_balance_at('alice', '-infinity'));
DO $$
BEGIN
	BEGIN
		PERFORM ledger_capture(1, 5);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (201, 'capture again, other amount', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_release(1);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (202, 'release of a captured hold', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_capture(3);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (203, 'capture of an expired hold', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_capture(999);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (204, 'capture of no hold', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_hold('alice', 1, '-1 day');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (205, 'hold with a negative expiry', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_hold('alice', 1000000);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (206, 'hold of more than is available', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_hold('alice', 100, '2 hours', 'hk');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (207, 'hold key reused, other expiry', SQLSTATE);
	END;
	BEGIN
		PERFORM ledger_capture(ledger_hold('alice', 1), NULL, 'yen');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO evil.failure VALUES (208, 'capture to another currency', SQLSTATE);
	END;
END
$$;
INSERT INTO evil.holds SELECT 1, * FROM ledger_holds('alice');
INSERT INTO evil.history SELECT 201, * FROM ledger_history('alice', 2,
	(SELECT entry_id FROM ledger_history('alice', 1)));
INSERT INTO evil.audit SELECT 201, * FROM ledger_verify();

RESET search_path;
RESET ROLE;

SELECT results_eq(
	$$SELECT step, what, value FROM evil.result WHERE step > 200 ORDER BY step$$,
	$$VALUES (201, 'hold, key', 1::bigint),
			 (202, 'hold, key replayed, the interval spelled otherwise', 1),
			 (203, 'hold, no key', 2),
			 (204, 'hold expiring at once', 3),
			 (205, 'available', 12910 - 150),
			 (206, 'capture in part to bob', 12910 - 60),
			 (207, 'capture replayed', 12910 - 60),
			 (208, 'release', 1),
			 (209, 'sweep', 1),
			 (210, 'balance at infinity', 12910 - 60),
			 (211, 'balance at -infinity', 0)$$,
	'attack 4: every holds call returned the right hold id, balance or count');
SELECT results_eq(
	$$SELECT step, what, sqlstate FROM evil.failure WHERE step > 200 ORDER BY step$$,
	$$VALUES (201, 'capture again, other amount', 'LG003'),
			 (202, 'release of a captured hold', 'LG007'),
			 (203, 'capture of an expired hold', 'LG007'),
			 (204, 'capture of no hold', 'LG006'),
			 (205, 'hold with a negative expiry', '22023'),
			 (206, 'hold of more than is available', 'LG001'),
			 (207, 'hold key reused, other expiry', 'LG003'),
			 (208, 'capture to another currency', 'LG004')$$,
	'attack 4: every refused holds call raised its documented SQLSTATE');
SELECT results_eq(
	$$SELECT hold_id, amount, captured, status, expires_at IS NULL, idempotency_key
		FROM evil.holds ORDER BY hold_id DESC$$,
	$$VALUES (3::bigint, 25::bigint, NULL::bigint, 'expired'::text, false, NULL::text),
			 (2, 50, NULL, 'released', true, NULL),
			 (1, 100, 60, 'captured', false, 'hk')$$,
	'attack 4: ledger_holds(alice) listed her holds, newest first');
SELECT results_eq(
	$$SELECT amount, transfer_id FROM evil.history WHERE step = 201 ORDER BY entry_id DESC$$,
	$$VALUES (10::bigint, 5::bigint), (-100, NULL)$$,
	'attack 4: ledger_history(alice, 2, before the newest) returned the two entries before it');
SELECT is_empty($$SELECT * FROM evil.audit WHERE step = 201$$,
				'attack 4: ledger_verify() found nothing wrong');
SELECT is_empty($$SELECT what, run_as FROM evil.ran$$,
				'attack 4: not one of mallory''s traps ran in the holds functions');

SELECT * FROM finish();
ROLLBACK;
