-- A randomized model test of escrow mode against a serial reference:
-- 2000 seeded random postings (debits, credits, transfers, holds,
-- captures, releases, replayed keys) on escrow and locked accounts, each
-- committed on its own; every result and every refusal is compared with a
-- plain-SQL model of what the ledger must do, and every balance and
-- available balance after each posting.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;

CREATE TABLE model (name text PRIMARY KEY, floor bigint, balance bigint, escrow boolean);
CREATE TABLE model_holds (hold_id bigint PRIMARY KEY, name text, amount bigint);
CREATE TABLE model_keys (key text PRIMARY KEY, op text, name text, other text, amount bigint, result bigint);
CREATE TABLE mismatches (n int, what text);

INSERT INTO model VALUES
	('e1', 0, 0, true), ('e2', 0, 0, true), ('e3', -100, 0, true),
	('l1', 0, 0, false), ('l2', -50, 0, false);
SELECT count(ledger_open_account(name, 'EUR', floor)) AS opened FROM model;
SELECT count(ledger_set_account_mode(name, 'escrow')) AS escrow FROM model WHERE escrow;

-- one posting; its outcome: the result, or the SQLSTATE of its refusal
CREATE FUNCTION post(op text, a text, b text, amount bigint, k text, hold bigint,
					 OUT result bigint, OUT state text) LANGUAGE plpgsql AS $$
BEGIN
	state := 'ok';
	CASE op
		WHEN 'debit' THEN result := ledger_debit(a, amount, k);
		WHEN 'credit' THEN result := ledger_credit(a, amount, k);
		WHEN 'transfer' THEN result := ledger_transfer(a, b, amount, k);
		WHEN 'hold' THEN result := ledger_hold(a, amount, NULL, k);
		WHEN 'capture' THEN result := ledger_capture(hold, amount, b);
		WHEN 'release' THEN result := ledger_release(hold)::int;
	END CASE;
EXCEPTION WHEN OTHERS THEN
	result := NULL;
	state := SQLSTATE;
END $$;

CREATE PROCEDURE run(n int) LANGUAGE plpgsql AS $$
DECLARE
	names text[] := ARRAY['e1', 'e2', 'e3', 'l1', 'l2'];
	op text; a text; b text; amt bigint; k text; h record; hid bigint;
	got record; want_state text; want bigint;
	held_a bigint; bal_a bigint; fl_a bigint; bal_b bigint;
BEGIN
	FOR i IN 1 .. n LOOP
		op := (ARRAY['debit', 'debit', 'credit', 'credit', 'transfer', 'transfer',
					 'hold', 'capture', 'release', 'replay'])[1 + floor(random() * 10)::int];
		a := names[1 + floor(random() * 5)::int];
		b := names[1 + floor(random() * 5)::int];
		amt := 1 + floor(random() * 60)::bigint;
		k := CASE WHEN random() < 0.3 THEN 'k' || i END;
		hid := NULL;
		IF op = 'replay' THEN
			SELECT * INTO h FROM model_keys ORDER BY random() LIMIT 1;
			IF h IS NULL THEN CONTINUE; END IF;
			op := h.op; a := h.name; amt := h.amount; k := h.key; b := h.other;
		END IF;
		IF op = 'transfer' AND a = b THEN CONTINUE; END IF;
		IF op IN ('capture', 'release') THEN
			SELECT * INTO h FROM model_holds ORDER BY random() LIMIT 1;
			IF h IS NULL THEN CONTINUE; END IF;
			a := h.name;
			hid := h.hold_id;
			IF op = 'capture' THEN
				amt := 1 + floor(random() * h.amount)::bigint;
				IF random() < 0.5 OR b = a THEN b := NULL; END IF;
			END IF;
		END IF;

		-- what the model says
		SELECT balance, floor INTO bal_a, fl_a FROM model WHERE name = a;
		SELECT COALESCE(sum(mh.amount), 0) INTO held_a FROM model_holds mh WHERE mh.name = a;
		want := NULL;
		IF k IS NOT NULL AND EXISTS (SELECT FROM model_keys WHERE key = k) THEN
			SELECT result INTO want FROM model_keys WHERE key = k;
			want_state := 'ok';
		ELSIF op = 'credit' THEN
			want_state := 'ok'; want := bal_a + amt;
		ELSIF op IN ('debit', 'transfer', 'hold') THEN
			want_state := CASE WHEN bal_a - held_a - amt < fl_a THEN 'LG001' ELSE 'ok' END;
			want := CASE WHEN op = 'debit' THEN bal_a - amt END;
		ELSIF op = 'capture' THEN
			want_state := 'ok'; want := bal_a - amt;
		ELSE
			want_state := 'ok'; want := 1;
		END IF;

		IF want_state <> 'ok' THEN want := NULL; END IF;
		SELECT * INTO got FROM post(op, a, b, amt, k, hid);
		IF got.state <> want_state OR
		   (want_state = 'ok' AND want IS NOT NULL AND got.result IS DISTINCT FROM want) THEN
			INSERT INTO mismatches VALUES (i, format('%s %s %s %s key %s hold %s: got %s %s, want %s %s',
				op, a, b, amt, k, hid, got.state, got.result, want_state, want));
		END IF;

		-- the model follows
		IF got.state = 'ok' AND NOT (k IS NOT NULL AND EXISTS (SELECT FROM model_keys WHERE key = k)) THEN
			CASE op
				WHEN 'debit' THEN UPDATE model SET balance = balance - amt WHERE name = a;
				WHEN 'credit' THEN UPDATE model SET balance = balance + amt WHERE name = a;
				WHEN 'transfer' THEN
					UPDATE model SET balance = balance - amt WHERE name = a;
					UPDATE model SET balance = balance + amt WHERE name = b;
				WHEN 'hold' THEN INSERT INTO model_holds VALUES (got.result, a, amt);
				WHEN 'capture' THEN
					UPDATE model SET balance = balance - amt WHERE name = a;
					UPDATE model SET balance = balance + amt WHERE name = b;
					DELETE FROM model_holds WHERE hold_id = hid;
				WHEN 'release' THEN DELETE FROM model_holds WHERE hold_id = hid;
			END CASE;
			IF k IS NOT NULL AND op IN ('debit', 'credit', 'transfer', 'hold') THEN
				INSERT INTO model_keys VALUES (k, op, a, CASE WHEN op = 'transfer' THEN b END, amt, got.result);
			END IF;
		END IF;
		COMMIT;

		-- and every balance agrees
		INSERT INTO mismatches
		SELECT i, format('%s: balance %s available %s, model %s and %s', name,
						 ledger_balance(name), ledger_available(name), balance,
						 balance - COALESCE((SELECT sum(amount) FROM model_holds mh WHERE mh.name = m.name), 0))
		  FROM model m
		 WHERE ledger_balance(name) <> balance
			OR ledger_available(name) <> balance - COALESCE((SELECT sum(amount) FROM model_holds mh
															  WHERE mh.name = m.name), 0);
		COMMIT;
	END LOOP;
END $$;

SELECT setseed(0.4242);
CALL run(2000);
SELECT * FROM mismatches ORDER BY n LIMIT 10;
SELECT count(*) AS entries, count(*) FILTER (WHERE idempotency_key IS NOT NULL) AS keyed
  FROM ledger.entries;
SELECT (SELECT count(*) FROM ledger.holds) AS holds, (SELECT count(*) FROM ledger.hold_ends) AS ended;

-- folded in the end, and the audit clean
CREATE FUNCTION pg_temp.folded() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 3000 LOOP
		IF NOT EXISTS (SELECT FROM ledger.entries WHERE balance_after IS NULL) THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN false;
END $$;
SELECT pg_temp.folded() AS folded;
SELECT name FROM model m
 WHERE (SELECT balance FROM ledger.accounts a WHERE a.name = m.name) <> m.balance;
SELECT * FROM ledger_verify();
DROP TABLE model, model_holds, model_keys, mismatches;
DROP PROCEDURE run(int);
DROP FUNCTION post(text, text, text, bigint, text, bigint);
