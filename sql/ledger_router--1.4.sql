/*
 * ledger_router 1.4: the ledger's SQL API on a router database, each call
 * sent by PL/Proxy to the shard that owns its account (doc/router.md).
 *
 * The shards: the SQL/MED server ledger_shards (FOREIGN DATA WRAPPER
 * plproxy, options p0 .. pN-1, N a power of two) and user mappings; each
 * shard runs CREATE EXTENSION ledger in schema public.
 *
 * Placement: an account lives on shard ledger_router.hash(name) & (N - 1).
 * Ids the router returns (account, hold and transfer ids) are the shard's
 * id shifted left by 10 bits, with the shard's number in the low 10 bits
 * (N <= 1024): a call that takes an id is routed by them and sends the
 * shard's own id.  The internal functions that encode ids take the shard
 * number as $1 (their SELECT runs on the shard, which has no
 * ledger_router) but are routed by the account's hash, never by $1: a
 * caller passing another number gets a wrong id back, and cannot put an
 * account on a shard it does not belong to.
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
-- ledger_router: the internal function takes the shard's number as $1,
-- for the ids only (the header comment).

CREATE FUNCTION ledger_router.open_account(h int4, account text, currency text, min_balance bigint)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
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
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
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
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
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
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(account);
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
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(from_account);
	SELECT (public.ledger_transfer($2, $3, $4, $5) OPERATOR(pg_catalog.<<) 10)
		OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023);
$$ LANGUAGE plproxy;

/*
 * A transfer between shards (doc/router.md): each step one local
 * transaction on one shard, idempotent under the transfer's key K.
 *
 *   0. transfer_check on the destination: the request is valid, the
 *      destination exists, its currency.  A refusal here is final and
 *      nothing was held: the one place a transfer is turned down for a
 *      reason of the destination's.
 *   1. transfer_out on the source: a hold and the intent, together.
 *   2. transfer_in on the destination: a credit under a key made of the
 *      transfer's origin (transfer_origin), in the currency the intent
 *      records.
 *   3. transfer_finish on the source: the hold captured (the debit).
 *
 * Steps 2 and 3 run in transfer_complete, as the extension's owner, whose
 * user mapping names a shard role that may create money: on its own
 * either step would create or destroy money until the other is done, so
 * the shards let no application role run them.  transfer_complete runs
 * them only for an intent the source shard holds, as it records it.
 * After step 1 a transfer is only ever rolled forward, by the call itself,
 * a retry with its key, or ledger_recover().
 */
CREATE FUNCTION ledger_router.transfer_check(from_account text, to_account text, amount bigint,
											 idempotency_key text)
	RETURNS text AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(to_account);
	SELECT public.ledger_transfer_check($1, $2, $3, $4);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.transfer_out(h int4, from_account text, to_account text,
										   to_currency text, amount bigint, idempotency_key text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(from_account);
	SELECT (public.ledger_transfer_out($2, $3, $4, $5, $6) OPERATOR(pg_catalog.<<) 10)
		OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.transfer_intent(h int4, idempotency_key text)
	RETURNS TABLE(from_account text, to_account text, amount bigint, currency text, status text) AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT t.from_account, t.to_account, t.amount, t.currency, t.status
	  FROM public.ledger_transfers_out($2) t;
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.transfer_in(to_account text, currency text, amount bigint, origin text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.hash(to_account);
	SELECT public.ledger_transfer_in($1, $2, $3, $4);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.transfer_finish(h int4, idempotency_key text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT (public.ledger_transfer_finish($2) OPERATOR(pg_catalog.<<) 10)
		OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023);
$$ LANGUAGE plproxy;

/*
 * The origin of a cross-shard transfer, over all shards: its source account
 * (which lives on one shard) and its key (which names one transfer out of
 * that shard), from the intent as the source shard records it.  Its credit
 * on the destination has the key "lr/in/" || origin: one key per intent,
 * whatever number the router's options give the source shard.
 */
CREATE FUNCTION ledger_router.transfer_origin(from_account text, idempotency_key text)
	RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	-- UTF-8 bytes throughout, whatever the router database's encoding: every
	-- router must make the same origin of one intent
	RETURN pg_catalog.encode(pg_catalog.sha256(
		pg_catalog.convert_to(pg_catalog.octet_length(pg_catalog.convert_to(from_account, 'UTF8'))::text
							  OPERATOR(pg_catalog.||) ':', 'UTF8')
		OPERATOR(pg_catalog.||) pg_catalog.convert_to(from_account, 'UTF8')
		OPERATOR(pg_catalog.||) pg_catalog.convert_to(idempotency_key, 'UTF8')), 'hex');

-- steps 2 and 3 of the transfer under key on shard source; its id
CREATE FUNCTION ledger_router.transfer_complete(source int4, idempotency_key text)
	RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	intent record;
BEGIN
	-- the transfer id returned is made of source: one of the shards
	IF source IS NULL OR source OPERATOR(pg_catalog.<) 0
	   OR source OPERATOR(pg_catalog.>=) ledger_router.shards() THEN
		RAISE EXCEPTION 'no shard has number %', source
			USING ERRCODE = 'invalid_parameter_value';
	ELSIF idempotency_key IS NULL THEN
		RAISE EXCEPTION 'idempotency_key must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO intent FROM ledger_router.transfer_intent(source, idempotency_key);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no cross-shard transfer has idempotency key "%" on shard %',
			idempotency_key, source
			USING ERRCODE = 'no_data_found';
	END IF;
	-- again after a finish, too: the credit replays, and a finish that ran
	-- first by itself is made whole
	PERFORM ledger_router.transfer_in(intent.to_account, intent.currency, intent.amount,
									  ledger_router.transfer_origin(intent.from_account, idempotency_key));
	RETURN ledger_router.transfer_finish(source, idempotency_key);
END
$$;

-- whether an error from a shard leaves its commit unknown: a lost
-- connection (PL/Proxy's own errors are XX000), the server going away, a
-- cancel; any other error was the shard's, which rolled the call back
CREATE FUNCTION ledger_router.outcome_unknown(sqlstate text)
	RETURNS boolean
	LANGUAGE sql IMMUTABLE
	RETURN sqlstate OPERATOR(pg_catalog.~) '^(08|57P0|XX000$|57014$|40003$)';

CREATE FUNCTION ledger_transfer(from_account text, to_account text, amount bigint,
								idempotency_key text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	source int4 := ledger_router.shard(from_account);
	-- without a key, one of its own, so that each step is still idempotent
	k text := COALESCE(idempotency_key, 'router/' OPERATOR(pg_catalog.||) pg_catalog.gen_random_uuid());
	currency text;
	id bigint;
	held boolean := false;
	state text;
	message text;
	detail text;
BEGIN
	IF from_account IS NULL OR to_account IS NULL
	   OR ledger_router.shard(to_account) OPERATOR(pg_catalog.=) source THEN
		-- one shard: one local transaction there (NULLs are refused there, 22004)
		RETURN ledger_router.transfer(source, from_account, to_account, amount, idempotency_key);
	END IF;
	currency := ledger_router.transfer_check(from_account, to_account, amount, k);
	-- one block around steps 1 to 3, so that no error after step 1 (a
	-- cancel between two statements included) escapes as anything but 40003
	BEGIN
		id := ledger_router.transfer_out(source, from_account, to_account, currency, amount, k);
		held := true;
		RETURN ledger_router.transfer_complete(source, k);
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
			detail = PG_EXCEPTION_DETAIL;
		-- step 1 failed on the shard, which rolled it back: as it is.  Only
		-- a lost connection or a cancel leaves its commit unknown.
		IF NOT held AND NOT ledger_router.outcome_unknown(state) THEN
			RAISE;
		END IF;
		RAISE EXCEPTION '%', CASE WHEN held
				THEN pg_catalog.format('cross-shard transfer %s is recorded but not finished: %s', id, message)
				ELSE pg_catalog.format('cross-shard transfer under key "%s" may have been recorded: %s', k, message) END
			USING ERRCODE = 'statement_completion_unknown',
				  DETAIL = pg_catalog.concat_ws(' ', NULLIF(detail, ''),
					pg_catalog.format('%s money is held on account "%s"; ledger_recover() moves it to account "%s".',
									  CASE WHEN held THEN 'Its' ELSE 'If it was, its' END, from_account, to_account)),
				  HINT = CASE WHEN idempotency_key IS NULL
						 THEN 'Do not call it again: without an idempotency key a retry is another transfer.'
						 ELSE 'Calling again with the same idempotency key finishes it, or makes it if it was not recorded.' END;
	END;
END
$$;

-- ---- a hold, by its id ---------------------------------------------------------

CREATE FUNCTION ledger_release(hold_id bigint)
	RETURNS boolean AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.id_hash(hold_id);
	SELECT public.ledger_release($1 OPERATOR(pg_catalog.>>) 10);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.capture(hold_id bigint, amount bigint, to_account text)
	RETURNS bigint AS $$
	CLUSTER 'ledger_shards'; RUN ON ledger_router.id_hash(hold_id);
	SELECT public.ledger_capture($1 OPERATOR(pg_catalog.>>) 10, $2, $3);
$$ LANGUAGE plproxy;

-- a capture into an account on another shard is not routed (0A000)
CREATE FUNCTION ledger_capture(hold_id bigint, amount bigint DEFAULT NULL, to_account text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	-- an invalid name goes to the hold's shard, which refuses it (22023)
	IF hold_id IS NOT NULL
	   AND pg_catalog.octet_length(to_account) OPERATOR(pg_catalog.>=) 1
	   AND pg_catalog.octet_length(to_account) OPERATOR(pg_catalog.<=) 255
	   AND ledger_router.shard(to_account) OPERATOR(pg_catalog.<>) ledger_router.id_hash(hold_id) THEN
		RAISE EXCEPTION 'cannot capture hold % into account "%" on another shard', hold_id, to_account
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Capture it without to_account, then ledger_transfer the amount.';
	END IF;
	RETURN ledger_router.capture(hold_id, amount, to_account);
END
$$;

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

CREATE FUNCTION ledger_router.transfers_unfinished(h int4, older_than interval)
	RETURNS TABLE(idempotency_key text) AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT t.idempotency_key FROM public.ledger_transfers_unfinished($2) t;
$$ LANGUAGE plproxy;

/*
 * Rolls forward every cross-shard transfer whose source shard has held its
 * money for at least min_age; returns how many it finished.  Shard by
 * shard, transfer by transfer: one that cannot be finished now (a shard
 * down) is left for the next run with a WARNING, and keeps nothing else
 * from finishing.  Safe beside the calls themselves and beside another
 * recovery: every step is idempotent.
 */
CREATE FUNCTION ledger_recover(min_age interval DEFAULT '1 minute')
	RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	finished bigint := 0;
	k text;
BEGIN
	IF min_age IS NULL THEN
		RAISE EXCEPTION 'min_age must not be null' USING ERRCODE = 'null_value_not_allowed';
	ELSIF min_age OPERATOR(pg_catalog.<) '0'::interval THEN
		RAISE EXCEPTION 'min_age must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR source IN 0 .. ledger_router.shards() OPERATOR(pg_catalog.-) 1 LOOP
		BEGIN
			FOR k IN SELECT t.idempotency_key FROM ledger_router.transfers_unfinished(source, min_age) t LOOP
				BEGIN
					PERFORM ledger_router.transfer_complete(source, k);
					finished := finished OPERATOR(pg_catalog.+) 1;
				EXCEPTION WHEN OTHERS THEN
					RAISE WARNING 'could not finish cross-shard transfer "%" of shard %: %', k, source, SQLERRM;
				END;
			END LOOP;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'could not read the unfinished transfers of shard %: %', source, SQLERRM;
		END;
	END LOOP;
	RETURN finished;
END
$$;

CREATE FUNCTION ledger_router.verify(h int4)
	RETURNS TABLE(account text, problem text) AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT v.account, pg_catalog.format('shard %s: %s', $1, v.problem) AS problem FROM public.ledger_verify() v;
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.transfers_out(h int4)
	RETURNS TABLE(transfer_id bigint, idempotency_key text, from_account text, to_account text,
				  amount bigint, created_at timestamptz, status text, captured bigint) AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT (t.transfer_id OPERATOR(pg_catalog.<<) 10) OPERATOR(pg_catalog.|) ($1 OPERATOR(pg_catalog.&) 1023)
			AS transfer_id,
		   t.idempotency_key, t.from_account, t.to_account, t.amount, t.created_at, t.status, t.captured
	  FROM public.ledger_transfers_out() t;
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.transfers_in(h int4, idempotency_keys text[])
	RETURNS TABLE(idempotency_key text, account text, amount bigint) AS $$
	CLUSTER 'ledger_shards'; RUN ON h;
	SELECT * FROM public.ledger_transfers_in($2);
$$ LANGUAGE plproxy;

-- the audit's view of an intent and of a credit (ledger_verify)
CREATE TYPE ledger_router.intent AS (shard int4, transfer_id bigint, credit_key text, from_account text,
									 to_account text, amount bigint, created_at timestamptz,
									 status text, captured bigint);
CREATE TYPE ledger_router.credit AS (credit_key text, account text, amount bigint);

-- every shard's intents, as the audit compares them
CREATE FUNCTION ledger_router.intents()
	RETURNS ledger_router.intent[]
	LANGUAGE sql VOLATILE
	RETURN ARRAY(
		SELECT ROW(h, t.transfer_id,
				   'lr/in/' OPERATOR(pg_catalog.||) ledger_router.transfer_origin(t.from_account, t.idempotency_key),
				   t.from_account, t.to_account, t.amount, t.created_at, t.status, t.captured)::ledger_router.intent
		  FROM pg_catalog.generate_series(0, ledger_router.shards() OPERATOR(pg_catalog.-) 1) h,
			   LATERAL ledger_router.transfers_out(h) t);

/*
 * Every shard's own audit, and the cross-shard one: each finished transfer
 * has its debit (the hold captured whole) and its credit on the
 * destination (one key, so at most one); every credit under a transfer's
 * key belongs to a transfer; no hold of a transfer ended any other way;
 * none is left unfinished longer than ledger_router.unfinished_limit
 * (default 5 minutes: recovery runs every minute).
 *
 * The reads are three statements, in this order, each over every shard:
 * the intents, then the credits, then the intents again.  A credit is
 * posted after its intent committed and before its intent is captured,
 * so a captured intent of the first read has its credit in the second,
 * and a credit of the second read has its intent in the third: transfers
 * running meanwhile are never reported.
 */
CREATE FUNCTION ledger_verify()
	RETURNS TABLE(account text, problem text)
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	n int4 := ledger_router.shards();
	lag interval := COALESCE(NULLIF(pg_catalog.current_setting('ledger_router.unfinished_limit', true), ''),
							 '5 minutes')::interval;
	before ledger_router.intent[];
	credits ledger_router.credit[];
	after ledger_router.intent[];
BEGIN
	RETURN QUERY SELECT v.account, v.problem
				   FROM pg_catalog.generate_series(0, n OPERATOR(pg_catalog.-) 1) h,
						LATERAL ledger_router.verify(h) v;
	before := ledger_router.intents();
	credits := ARRAY(SELECT ROW(c.idempotency_key, c.account, c.amount)::ledger_router.credit
					   FROM pg_catalog.generate_series(0, n OPERATOR(pg_catalog.-) 1) h,
							LATERAL ledger_router.transfers_in(h, NULL) c);
	after := ledger_router.intents();
	RETURN QUERY
		SELECT o.from_account,
			   CASE
				 WHEN o.status OPERATOR(pg_catalog.=) 'out' THEN
					pg_catalog.format('cross-shard transfer %s to account "%s" unfinished since %s',
									  o.transfer_id, o.to_account, o.created_at)
				 WHEN o.status OPERATOR(pg_catalog.<>) 'captured' THEN
					pg_catalog.format('cross-shard transfer %s: its hold was %s, not captured',
									  o.transfer_id, o.status)
				 WHEN o.captured OPERATOR(pg_catalog.<>) o.amount THEN
					pg_catalog.format('cross-shard transfer %s of %s: its hold was captured for %s',
									  o.transfer_id, o.amount, o.captured)
				 ELSE
					pg_catalog.format('cross-shard transfer %s of %s to account "%s": no such credit on its shard',
									  o.transfer_id, o.amount, o.to_account)
			   END
		  FROM pg_catalog.unnest(before) o
		  LEFT JOIN pg_catalog.unnest(credits) c ON c.credit_key OPERATOR(pg_catalog.=) o.credit_key
		 WHERE (o.status OPERATOR(pg_catalog.=) 'out'
				AND o.created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) lag))
			OR o.status NOT IN ('out', 'captured')
			OR (o.status OPERATOR(pg_catalog.=) 'captured'
				AND (o.captured OPERATOR(pg_catalog.<>) o.amount
					 OR c.credit_key IS NULL
					 OR c.account OPERATOR(pg_catalog.<>) o.to_account
					 OR c.amount OPERATOR(pg_catalog.<>) o.amount))
		UNION ALL
		-- an intent on a shard its account does not live on (the account was
		-- opened there around the router): its credit could be another's
		SELECT o.from_account,
			   pg_catalog.format('cross-shard transfer %s is on shard %s, but account "%s" lives on shard %s',
								 o.transfer_id, o.shard, o.from_account, ledger_router.shard(o.from_account))
		  FROM pg_catalog.unnest(before) o
		 WHERE o.shard OPERATOR(pg_catalog.<>) ledger_router.shard(o.from_account)
		UNION ALL
		-- two intents with one credit key: one credit for two debits
		SELECT pg_catalog.min(o.from_account),
			   pg_catalog.format('%s cross-shard transfers share the credit key "%s"', pg_catalog.count(*), o.credit_key)
		  FROM pg_catalog.unnest(before) o
		 GROUP BY o.credit_key
		HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1
		UNION ALL
		-- a credit of a cross-shard transfer that no intent made: money created
		SELECT c.account,
			   pg_catalog.format('credit of %s under key "%s" belongs to no cross-shard transfer',
								 c.amount, c.credit_key)
		  FROM pg_catalog.unnest(credits) c
		 WHERE NOT EXISTS (SELECT FROM pg_catalog.unnest(after) a
							WHERE a.credit_key OPERATOR(pg_catalog.=) c.credit_key);
END
$$;

/*
 * Batches.  Debits: each shard's items in one call there, SPLIT by
 * PL/Proxy (one transaction per shard, not one for the batch), numbered
 * back to the caller's ordinals.  Transfers: item by item through
 * ledger_transfer, whose refusals become statuses as on one node; any
 * other error (a shard down; 40003, a cross-shard transfer recorded but
 * not finished) ends the batch, with the items before it done: call it
 * again with the same keys.  An ill-formed batch (a NULL array or
 * element, arrays of other lengths, too many items) is sent whole to
 * shard 0, which refuses it as one node would, before posting anything.
 */
CREATE FUNCTION ledger_router.debit_batch(ordinals int4[], accounts text[], amounts bigint[],
										  idempotency_keys text[])
	RETURNS TABLE(ordinal int4, status text, result bigint) AS $$
	CLUSTER 'ledger_shards';
	SPLIT ordinals, accounts, amounts, idempotency_keys;
	RUN ON ledger_router.hash(accounts);
	SELECT ($1)[b.ordinal] AS ordinal, b.status, b.result FROM public.ledger_debit_batch($2, $3, $4) b;
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.debit_batch_whole(accounts text[], amounts bigint[], idempotency_keys text[])
	RETURNS TABLE(ordinal int4, status text, result bigint) AS $$
	CLUSTER 'ledger_shards'; RUN ON 0;
	SELECT * FROM public.ledger_debit_batch($1, $2, $3);
$$ LANGUAGE plproxy;

CREATE FUNCTION ledger_router.transfer_batch_whole(from_accounts text[], to_accounts text[],
												   amounts bigint[], idempotency_keys text[])
	RETURNS TABLE(ordinal int4, status text, result bigint) AS $$
	CLUSTER 'ledger_shards'; RUN ON 0;
	SELECT * FROM public.ledger_transfer_batch($1, $2, $3, $4);
$$ LANGUAGE plproxy;

-- whether a batch's arrays are ill-formed, as one node refuses them
-- (batch.c; LEDGER_MAX_BATCH_ITEMS is 1 000 000)
CREATE FUNCTION ledger_router.batch_ill_formed(names text[], more_names text[], amounts bigint[],
											   idempotency_keys text[])
	RETURNS boolean
	LANGUAGE sql IMMUTABLE
	RETURN names IS NULL OR more_names IS NULL OR amounts IS NULL
		OR pg_catalog.cardinality(names) OPERATOR(pg_catalog.>) 1000000
		OR pg_catalog.array_ndims(names) OPERATOR(pg_catalog.>) 1
		OR pg_catalog.array_ndims(more_names) OPERATOR(pg_catalog.>) 1
		OR pg_catalog.array_ndims(amounts) OPERATOR(pg_catalog.>) 1
		OR pg_catalog.array_ndims(idempotency_keys) OPERATOR(pg_catalog.>) 1
		OR pg_catalog.array_position(names, NULL) IS NOT NULL
		OR pg_catalog.array_position(more_names, NULL) IS NOT NULL
		OR pg_catalog.array_position(amounts, NULL) IS NOT NULL
		OR pg_catalog.cardinality(amounts) OPERATOR(pg_catalog.<>) pg_catalog.cardinality(names)
		OR pg_catalog.cardinality(more_names) OPERATOR(pg_catalog.<>) pg_catalog.cardinality(names)
		OR pg_catalog.cardinality(idempotency_keys) OPERATOR(pg_catalog.<>) pg_catalog.cardinality(names);

CREATE FUNCTION ledger_debit_batch(accounts text[], amounts bigint[], idempotency_keys text[] DEFAULT NULL)
	RETURNS TABLE(ordinal int4, status text, result bigint)
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	n int4 := COALESCE(pg_catalog.cardinality(accounts), 0);
	state text;
	message text;
BEGIN
	IF ledger_router.batch_ill_formed(accounts, accounts, amounts, idempotency_keys) THEN
		RETURN QUERY SELECT * FROM ledger_router.debit_batch_whole(accounts, amounts, idempotency_keys);
		RETURN;
	END IF;
	IF n OPERATOR(pg_catalog.=) 0 THEN
		RETURN;
	END IF;
	BEGIN
		RETURN QUERY
			SELECT b.ordinal, b.status, b.result
			  FROM ledger_router.debit_batch(
					ARRAY(SELECT pg_catalog.generate_series(1, n)), accounts[:], amounts[:],
					COALESCE(idempotency_keys[:], pg_catalog.array_fill(NULL::text, ARRAY[n]))) b
			 ORDER BY b.ordinal;
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
		-- one shard's part only, which it rolled back: as it is
		IF NOT ledger_router.outcome_unknown(state)
		   AND (SELECT pg_catalog.count(DISTINCT ledger_router.shard(a)) FROM pg_catalog.unnest(accounts) a)
			   OPERATOR(pg_catalog.=) 1 THEN
			RAISE;
		END IF;
		-- the shards' parts run apart: some may have committed
		RAISE EXCEPTION 'the batch''s items on some shards may have been applied: %', message
			USING ERRCODE = 'statement_completion_unknown',
				  DETAIL = pg_catalog.format('A shard''s part failed with %s.', state),
				  HINT = 'Call it again with the same idempotency keys: applied items replay.';
	END;
END
$$;

CREATE FUNCTION ledger_transfer_batch(from_accounts text[], to_accounts text[], amounts bigint[],
									  idempotency_keys text[] DEFAULT NULL)
	RETURNS TABLE(ordinal int4, status text, result bigint)
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	state text;
	message text;
	done int4 := 0;
BEGIN
	IF ledger_router.batch_ill_formed(from_accounts, to_accounts, amounts, idempotency_keys) THEN
		RETURN QUERY SELECT * FROM ledger_router.transfer_batch_whole(from_accounts, to_accounts,
																	  amounts, idempotency_keys);
		RETURN;
	END IF;
	-- numbered from 1, whatever the arrays' lower bounds (one server's batch reads them in order)
	from_accounts := from_accounts[:];
	to_accounts := to_accounts[:];
	amounts := amounts[:];
	idempotency_keys := idempotency_keys[:];
	-- one block around the items, so that no error after one was applied
	-- (a cancel between two statements included) escapes as anything but 40003
	BEGIN
		FOR i IN 1 .. COALESCE(pg_catalog.cardinality(from_accounts), 0) LOOP
			ordinal := i;
			BEGIN
				result := @extschema@.ledger_transfer(from_accounts[i], to_accounts[i], amounts[i],
													  idempotency_keys[i]);
				status := 'ok';
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
				status := ledger_router.condition_name(state);
				IF status IS NULL THEN
					RAISE;
				END IF;
				result := NULL;
			END;
			done := i;
			RETURN NEXT;
		END LOOP;
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
		IF done OPERATOR(pg_catalog.=) 0 THEN
			RAISE;
		END IF;
		RAISE EXCEPTION 'the batch stopped after item %: %', done, message
			USING ERRCODE = 'statement_completion_unknown',
				  DETAIL = pg_catalog.format('Items 1 to %s were decided (applied or refused), item %s may have been applied; it failed with %s.',
											 done, done OPERATOR(pg_catalog.+) 1, state),
				  HINT = CASE WHEN idempotency_keys IS NULL
						 THEN 'Without idempotency keys a retry applies them again: check the accounts before sending any of these items again.'
						 ELSE 'Call it again with the same idempotency keys: applied items replay.' END;
	END;
END
$$;

-- a refusal's condition name, as a batch's status column names it on one node
CREATE FUNCTION ledger_router.condition_name(sqlstate text)
	RETURNS text
	LANGUAGE sql IMMUTABLE
	RETURN CASE sqlstate
		WHEN '22023' THEN 'invalid_parameter_value'
		WHEN 'LG002' THEN 'account_not_found'
		WHEN 'LG003' THEN 'idempotency_conflict'
		WHEN 'LG004' THEN 'currency_mismatch'
		WHEN 'LG001' THEN 'insufficient_funds'
		WHEN '22003' THEN 'numeric_value_out_of_range'
		WHEN '42501' THEN 'insufficient_privilege'
	END;

REVOKE ALL ON FUNCTION ledger_credit(text, bigint, text), ledger_debit(text, bigint, text),
	ledger_balance(text), ledger_available(text), ledger_balance_at(text, timestamptz),
	ledger_account_mode(text), ledger_set_account_mode(text, text),
	ledger_open_account(text, text, bigint), ledger_hold(text, bigint, interval, text),
	ledger_history(text, int, bigint), ledger_holds(text, int), ledger_release(bigint),
	ledger_capture(bigint, bigint, text), ledger_transfer(text, text, bigint, text),
	ledger_expire_holds(), ledger_recover(interval), ledger_verify(),
	ledger_debit_batch(text[], bigint[], text[]),
	ledger_transfer_batch(text[], text[], bigint[], text[])
	FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ledger_router FROM PUBLIC;
