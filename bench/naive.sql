-- bench/naive.sql: the ledger a team would write by hand, as the baseline
-- the benchmark compares the extension with.  PL/pgSQL, the textbook
-- pattern: SELECT ... FOR UPDATE, check, UPDATE, journal INSERT; holds as
-- a table of pending reservations and a held total per account.
-- It has no idempotency keys, no expiry, no forced synchronous commit and
-- no SECURITY DEFINER; the benchmark runs both with synchronous_commit = on.

DROP SCHEMA IF EXISTS naive CASCADE;
CREATE SCHEMA naive;

CREATE TABLE naive.accounts (
	name		text PRIMARY KEY,
	balance		bigint NOT NULL DEFAULT 0,
	min_balance	bigint,
	held		bigint NOT NULL DEFAULT 0,
	CHECK (min_balance IS NULL OR balance >= min_balance)
);

CREATE TABLE naive.journal (
	entry_id	bigserial PRIMARY KEY,
	account		text NOT NULL REFERENCES naive.accounts,
	amount		bigint NOT NULL,
	balance_after bigint NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON naive.journal (account, entry_id);

CREATE FUNCTION naive_debit(p_account text, p_amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_balance bigint;
	v_floor bigint;
	v_held bigint;
BEGIN
	SELECT balance, min_balance, held INTO v_balance, v_floor, v_held
	  FROM naive.accounts WHERE name = p_account FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account % not found', p_account;
	END IF;
	IF v_floor IS NOT NULL AND v_balance - v_held - p_amount < v_floor THEN
		RAISE EXCEPTION 'insufficient funds in %', p_account;
	END IF;
	UPDATE naive.accounts SET balance = v_balance - p_amount WHERE name = p_account;
	INSERT INTO naive.journal (account, amount, balance_after)
	VALUES (p_account, -p_amount, v_balance - p_amount);
	RETURN v_balance - p_amount;
END
$$;

CREATE FUNCTION naive_transfer(p_from text, p_to text, p_amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_from bigint;
	v_to bigint;
	v_floor bigint;
BEGIN
	-- lock in name order so that a->b and b->a cannot deadlock
	PERFORM 1 FROM naive.accounts WHERE name IN (p_from, p_to) ORDER BY name FOR UPDATE;
	SELECT balance, min_balance INTO v_from, v_floor FROM naive.accounts WHERE name = p_from;
	SELECT balance INTO v_to FROM naive.accounts WHERE name = p_to;
	IF v_floor IS NOT NULL AND v_from - p_amount < v_floor THEN
		RAISE EXCEPTION 'insufficient funds in %', p_from;
	END IF;
	UPDATE naive.accounts SET balance = v_from - p_amount WHERE name = p_from;
	UPDATE naive.accounts SET balance = v_to + p_amount WHERE name = p_to;
	INSERT INTO naive.journal (account, amount, balance_after)
	VALUES (p_from, -p_amount, v_from - p_amount), (p_to, p_amount, v_to + p_amount);
	RETURN v_from - p_amount;
END
$$;

CREATE TABLE naive.holds (
	hold_id		bigserial PRIMARY KEY,
	account		text NOT NULL REFERENCES naive.accounts,
	amount		bigint NOT NULL,
	status		text NOT NULL DEFAULT 'pending',
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION naive_hold(p_account text, p_amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_balance bigint;
	v_floor bigint;
	v_held bigint;
	v_hold bigint;
BEGIN
	SELECT balance, min_balance, held INTO v_balance, v_floor, v_held
	  FROM naive.accounts WHERE name = p_account FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account % not found', p_account;
	END IF;
	IF v_floor IS NOT NULL AND v_balance - v_held - p_amount < v_floor THEN
		RAISE EXCEPTION 'insufficient funds in %', p_account;
	END IF;
	UPDATE naive.accounts SET held = v_held + p_amount WHERE name = p_account;
	INSERT INTO naive.holds (account, amount) VALUES (p_account, p_amount)
	RETURNING hold_id INTO v_hold;
	RETURN v_hold;
END
$$;

CREATE FUNCTION naive_capture(p_hold bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	v_account text;
	v_amount bigint;
	v_status text;
	v_balance bigint;
BEGIN
	SELECT account, amount, status INTO v_account, v_amount, v_status
	  FROM naive.holds WHERE hold_id = p_hold;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'hold % not found', p_hold;
	END IF;
	SELECT balance INTO v_balance FROM naive.accounts WHERE name = v_account FOR UPDATE;
	SELECT status INTO v_status FROM naive.holds WHERE hold_id = p_hold;
	IF v_status <> 'pending' THEN
		RAISE EXCEPTION 'hold % is %', p_hold, v_status;
	END IF;
	UPDATE naive.accounts SET balance = v_balance - v_amount, held = held - v_amount
	 WHERE name = v_account;
	INSERT INTO naive.journal (account, amount, balance_after)
	VALUES (v_account, -v_amount, v_balance - v_amount);
	UPDATE naive.holds SET status = 'captured' WHERE hold_id = p_hold;
	RETURN v_balance - v_amount;
END
$$;
