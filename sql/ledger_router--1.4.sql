/*
 * ledger_router 1.4: the ledger's SQL API on a router database, each call
 * sent by PL/Proxy to the shard that owns its account.
 *
 * WORK IN PROGRESS (issue 16, branch router): single-account calls and
 * holds are routed; transfers between shards, the batches, ledger_verify
 * across shards and ledger_recover are not written yet.
 *
 * The shards: the SQL/MED server ledger_shards (FOREIGN DATA WRAPPER
 * plproxy, options p0 .. pN-1, N a power of two) and a user mapping; each
 * shard runs CREATE EXTENSION ledger in schema public.
 *
 * Placement: an account lives on shard ledger_router.hash(name) & (N - 1).
 * Ids the router returns (account, hold and transfer ids) are the shard's
 * id shifted left by 10 bits, with the shard's number in the low 10 bits
 * (N <= 1024): a call that takes an id is routed by them and sends the
 * shard's own id.  The internal functions that encode ids take the shard
 * number as $1: their SELECT runs on the shard, which has no ledger_router.
 */
\echo Use "CREATE EXTENSION ledger_router" to load this file. \quit

CREATE SCHEMA ledger_router;

CREATE FUNCTION ledger_router.hash(account text)
	RETURNS int4
	AS 'MODULE_PATHNAME', 'ledger_router_hash'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- the routing bits of an id the router returned (0 for NULL)
CREATE FUNCTION ledger_router.id_hash(id bigint)
	RETURNS int4
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN COALESCE(id OPERATOR(pg_catalog.&) 1023, 0)::int4;

-- how many shards ledger_shards names (p0 .. pN-1)
CREATE FUNCTION ledger_router.shards()
	RETURNS int4
	LANGUAGE sql STABLE
	BEGIN ATOMIC
		SELECT pg_catalog.count(*)::int4
		  FROM pg_catalog.pg_foreign_server s, pg_catalog.pg_options_to_table(s.srvoptions) o
		 WHERE s.srvname OPERATOR(pg_catalog.=) 'ledger_shards'
		   AND o.option_name OPERATOR(pg_catalog.~) '^p[0-9]+$';
	END;

-- the shard an account lives on
CREATE FUNCTION ledger_router.shard(account text)
	RETURNS int4
	LANGUAGE sql STABLE
	RETURN ledger_router.hash(account) OPERATOR(pg_catalog.&) (ledger_router.shards() OPERATOR(pg_catalog.-) 1);

-- ---- one account, nothing to encode ------------------------------------

CREATE FUNCTION ledger_credit(account text, amount bigint, idempotency_key text DEFAULT NULL)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
	SELECT public.ledger_credit($1, $2, $3);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_debit(account text, amount bigint, idempotency_key text DEFAULT NULL)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
	SELECT public.ledger_debit($1, $2, $3);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_balance(account text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
	SELECT public.ledger_balance($1);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_available(account text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
	SELECT public.ledger_available($1);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_balance_at(account text, at timestamptz)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
	SELECT public.ledger_balance_at($1, $2);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_account_mode(account text)
	RETURNS text AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
	SELECT public.ledger_account_mode($1);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_set_account_mode(account text, mode text)
	RETURNS text AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
	SELECT public.ledger_set_account_mode($1, $2);
$$ LANGUAGE plproxy;

-- ---- one account, ids encoded on the way back -----------------------------
-- The SELECT of a PL/Proxy function runs on the shard, which has no
-- ledger_router: the internal function takes the account's hash as $1.

CREATE FUNCTION ledger_router.open_account(h int4, account text, currency text, min_balance bigint)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT (public.ledger_open_account($2, $3, $4) OPERATOR(pg_catalog.<<) 10)
		OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_open_account(account text, currency text DEFAULT 'XXX', min_balance bigint DEFAULT 0)
	RETURNS bigint
	LANGUAGE sql
	RETURN ledger_router.open_account(ledger_router.shard(account), account, currency, min_balance);

CREATE FUNCTION ledger_router.hold(h int4, account text, amount bigint, expires_in interval,
								   idempotency_key text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT (public.ledger_hold($2, $3, $4, $5) OPERATOR(pg_catalog.<<) 10)
		OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_hold(account text, amount bigint, expires_in interval DEFAULT NULL,
							idempotency_key text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE sql
	RETURN ledger_router.hold(ledger_router.shard(account), account, amount, expires_in, idempotency_key);

CREATE FUNCTION ledger_router.history(h int4, account text, max_rows int, before_entry_id bigint)
	RETURNS TABLE(entry_id bigint, amount bigint, balance_after bigint, transfer_id bigint,
				  idempotency_key text, created_at timestamptz) AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT x.entry_id, x.amount, x.balance_after,
		   (x.transfer_id OPERATOR(pg_catalog.<<) 10)
			OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023) AS transfer_id,
		   x.idempotency_key, x.created_at
	  FROM public.ledger_history($2, $3, $4) x;
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_history(account text, max_rows int DEFAULT 100, before_entry_id bigint DEFAULT NULL)
	RETURNS TABLE(entry_id bigint, amount bigint, balance_after bigint, transfer_id bigint,
				  idempotency_key text, created_at timestamptz)
	LANGUAGE sql
	BEGIN ATOMIC
		SELECT * FROM ledger_router.history(ledger_router.shard(account), account, max_rows, before_entry_id);
	END;

CREATE FUNCTION ledger_router.holds(h int4, account text, max_rows int)
	RETURNS TABLE(hold_id bigint, amount bigint, captured bigint, status text,
				  created_at timestamptz, expires_at timestamptz, idempotency_key text) AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT (x.hold_id OPERATOR(pg_catalog.<<) 10)
			OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023) AS hold_id,
		   x.amount, x.captured, x.status, x.created_at, x.expires_at, x.idempotency_key
	  FROM public.ledger_holds($2, $3) x;
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_holds(account text, max_rows int DEFAULT 100)
	RETURNS TABLE(hold_id bigint, amount bigint, captured bigint, status text,
				  created_at timestamptz, expires_at timestamptz, idempotency_key text)
	LANGUAGE sql
	BEGIN ATOMIC
		SELECT * FROM ledger_router.holds(ledger_router.shard(account), account, max_rows);
	END;

-- ---- two accounts -------------------------------------------------------------

CREATE FUNCTION ledger_router.transfer(h int4, from_account text, to_account text, amount bigint,
									   idempotency_key text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT (public.ledger_transfer($2, $3, $4, $5) OPERATOR(pg_catalog.<<) 10)
		OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023);
$$ LANGUAGE plproxy;

-- WIP: a transfer between shards is refused (0A000) until the protocol of
-- doc/router-design.md is built
CREATE FUNCTION ledger_transfer(from_account text, to_account text, amount bigint,
								idempotency_key text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql
	AS $$
DECLARE
	shard int4 := ledger_router.shard(from_account);
BEGIN
	IF from_account IS NULL OR to_account IS NULL
	   OR ledger_router.shard(to_account) OPERATOR(pg_catalog.=) shard THEN
		-- one shard: one local transaction there (NULLs are refused there, 22004)
		RETURN ledger_router.transfer(shard, from_account, to_account, amount, idempotency_key);
	END IF;
	RAISE EXCEPTION 'transfers between shards are not supported yet'
		USING ERRCODE = 'feature_not_supported';
END
$$;

-- ---- a hold, by its id ---------------------------------------------------------

CREATE FUNCTION ledger_release(hold_id bigint)
	RETURNS boolean AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.id_hash(hold_id);
	SELECT public.ledger_release($1 OPERATOR(pg_catalog.>>) 10);
$$ LANGUAGE plproxy;

-- a capture to an account on another shard is not routed yet (WIP)
CREATE FUNCTION ledger_capture(hold_id bigint, amount bigint DEFAULT NULL, to_account text DEFAULT NULL)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.id_hash(hold_id);
	SELECT public.ledger_capture($1 OPERATOR(pg_catalog.>>) 10, $2, $3);
$$ LANGUAGE plproxy;

-- ---- every shard -------------------------------------------------------------

CREATE FUNCTION ledger_router.expire_holds()
	RETURNS SETOF bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ALL;
	SELECT public.ledger_expire_holds();
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_expire_holds()
	RETURNS bigint
	LANGUAGE sql
	BEGIN ATOMIC
		SELECT COALESCE(pg_catalog.sum(n), 0)::bigint FROM ledger_router.expire_holds() n;
	END;

REVOKE ALL ON FUNCTION ledger_credit(text, bigint, text), ledger_debit(text, bigint, text),
	ledger_balance(text), ledger_available(text), ledger_balance_at(text, timestamptz),
	ledger_account_mode(text), ledger_set_account_mode(text, text),
	ledger_open_account(text, text, bigint), ledger_hold(text, bigint, interval, text),
	ledger_history(text, int, bigint), ledger_holds(text, int), ledger_release(bigint),
	ledger_capture(bigint, bigint, text), ledger_transfer(text, text, bigint, text),
	ledger_expire_holds()
	FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ledger_router FROM PUBLIC;
