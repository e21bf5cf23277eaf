/* ledger--1.3--1.4.sql: the shard side of a cross-shard transfer */

\echo Use "ALTER EXTENSION ledger UPDATE TO '1.4'" to load this file. \quit

/*
 * From 1.4 on keys beginning with "lr/" are the ledger's own (rules.c): a
 * posting made earlier under one could no longer be replayed, and a credit
 * under "lr/in/<n>" would be taken for a transfer's.  Such keys stop the
 * upgrade; nothing has changed yet.
 */
-- a backend still running 1.3 cannot add one between the check and the end
LOCK TABLE ledger.idempotency_keys IN SHARE MODE;
DO $$
BEGIN
	IF EXISTS (SELECT FROM ledger.idempotency_keys
				WHERE idempotency_key OPERATOR(pg_catalog.~~) 'lr/%') THEN
		RAISE EXCEPTION 'cannot update ledger to 1.4: idempotency keys beginning with "lr/" are in use'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'From 1.4 on such keys belong to the steps of cross-shard transfers.',
				  HINT = 'Stay on 1.3, or ask for a migration of those keys.';
	END IF;
END
$$;

/*
 * A transfer between accounts on two shard databases (ledger_router,
 * ARCHITECTURE §9) runs as three local transactions, each idempotent:
 *
 *	 1. on the source shard, ledger_transfer_out: a hold of the amount that
 *		never expires, and this intent row, in one transaction;
 *	 2. on the destination shard, ledger_transfer_in: a credit under the
 *		key "lr/in/<origin>", the origin made by the router of the source
 *		account and the transfer's key;
 *	 3. on the source shard, ledger_transfer_finish: the hold captured
 *		whole.
 *
 * The intent is append-only: a transfer is unfinished exactly while its
 * hold is pending, so "finished" is the hold's end, written by step 3 in
 * the same transaction as the debit.  Only ledger_transfer_finish ends
 * such a hold (its key begins with "lr/out/"; rules.c): a release or a
 * capture elsewhere would leave step 2's credit without its debit.
 *
 * Locks: a new table and functions only.
 */
CREATE TABLE ledger.transfers_out (
	transfer_id	bigint PRIMARY KEY,		-- drawn from transfers' sequence
	idempotency_key ledger.idempotency_key NOT NULL UNIQUE,
	hold_id		bigint NOT NULL UNIQUE,
	from_account_id bigint NOT NULL,
	to_account	ledger.account_name NOT NULL,
	amount		ledger.positive_amount NOT NULL,
	created_at	timestamptz NOT NULL
);

CREATE TRIGGER transfers_out_append_only BEFORE UPDATE OR DELETE ON ledger.transfers_out
	FOR EACH ROW EXECUTE FUNCTION ledger.forbid_journal_change();
CREATE TRIGGER transfers_out_no_truncate BEFORE TRUNCATE ON ledger.transfers_out
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.forbid_journal_change();
CREATE TRIGGER transfers_out_guard BEFORE INSERT OR UPDATE ON ledger.transfers_out
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_write();
ALTER TABLE ledger.transfers_out ENABLE ALWAYS TRIGGER transfers_out_append_only;
ALTER TABLE ledger.transfers_out ENABLE ALWAYS TRIGGER transfers_out_no_truncate;
ALTER TABLE ledger.transfers_out ENABLE ALWAYS TRIGGER transfers_out_guard;

SELECT pg_catalog.pg_extension_config_dump('ledger.transfers_out', '');

/* On the destination shard, before step 1: the destination and its currency. */
CREATE FUNCTION ledger_transfer_check(from_account text, to_account text, amount bigint,
									  idempotency_key text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_transfer_check'
	LANGUAGE C STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION ledger_transfer_check(text, text, bigint, text) FROM PUBLIC;

CREATE FUNCTION ledger_transfer_out(from_account text, to_account text, to_currency text,
									amount bigint, idempotency_key text)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'ledger_transfer_out'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION ledger_transfer_out(text, text, text, bigint, text) FROM PUBLIC;

CREATE FUNCTION ledger_transfer_in(to_account text, currency text, amount bigint,
								   origin text)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'ledger_transfer_in'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION ledger_transfer_in(text, text, bigint, text) FROM PUBLIC;

CREATE FUNCTION ledger_transfer_finish(idempotency_key text)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'ledger_transfer_finish'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION ledger_transfer_finish(text) FROM PUBLIC;

/*
 * The intents, as the router's audit reads them (one, by key, or all).
 * status: 'out' while the hold is pending (held on the source, perhaps not
 * yet credited on the destination), else the hold's end: 'captured' once
 * finished; anything else is a problem the audit reports.
 */
CREATE FUNCTION ledger_transfers_out(idempotency_key text DEFAULT NULL)
	RETURNS TABLE(transfer_id bigint, idempotency_key text, from_account text,
				  to_account text, amount bigint, currency text, created_at timestamptz,
				  status text, captured bigint)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
	SELECT t.transfer_id, t.idempotency_key::pg_catalog.text, a.name::pg_catalog.text,
		   t.to_account::pg_catalog.text, t.amount::pg_catalog.int8,
		   a.currency::pg_catalog.text, t.created_at,
		   COALESCE(e.status, 'out'), e.captured::pg_catalog.int8
	  FROM ledger.transfers_out t
	  JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) t.from_account_id
	  LEFT JOIN ledger.hold_ends e ON e.hold_id OPERATOR(pg_catalog.=) t.hold_id
	 WHERE ledger_transfers_out.idempotency_key IS NULL
		OR t.idempotency_key OPERATOR(pg_catalog.=) ledger_transfers_out.idempotency_key
	 ORDER BY t.transfer_id;
	END;
REVOKE ALL ON FUNCTION ledger_transfers_out(text) FROM PUBLIC;

/*
 * What recovery finishes: the intents whose hold is still pending, made at
 * least older_than ago.  Read from the pending holds, which are few,
 * rather than from every intent ever made.
 */
CREATE FUNCTION ledger_transfers_unfinished(older_than interval)
	RETURNS TABLE(transfer_id bigint, idempotency_key text, from_account text,
				  to_account text, amount bigint, created_at timestamptz)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF older_than IS NULL THEN
		RAISE EXCEPTION 'older_than must not be null' USING ERRCODE = 'null_value_not_allowed';
	ELSIF older_than OPERATOR(pg_catalog.<) '0'::pg_catalog.interval THEN
		RAISE EXCEPTION 'older_than must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT t.transfer_id, t.idempotency_key::pg_catalog.text, a.name::pg_catalog.text,
		   t.to_account::pg_catalog.text, t.amount::pg_catalog.int8, t.created_at
	  FROM ledger.pending_holds p
	  JOIN ledger.transfers_out t ON t.hold_id OPERATOR(pg_catalog.=) p.hold_id
	  JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) t.from_account_id
	 WHERE t.created_at OPERATOR(pg_catalog.<=) (pg_catalog.now() OPERATOR(pg_catalog.-) older_than)
	 ORDER BY t.transfer_id;
END
$$;
REVOKE ALL ON FUNCTION ledger_transfers_unfinished(interval) FROM PUBLIC;

/*
 * On a destination shard, for the router's audit: the credits of
 * cross-shard transfers ("lr/in/<origin>"), under the given keys, or all
 * of them (NULL).
 */
CREATE FUNCTION ledger_transfers_in(idempotency_keys text[] DEFAULT NULL)
	RETURNS TABLE(idempotency_key text, account text, amount bigint)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
	SELECT k.idempotency_key::pg_catalog.text, k.account::pg_catalog.text, k.amount::pg_catalog.int8
	  FROM ledger.idempotency_keys k
	 WHERE k.idempotency_key OPERATOR(pg_catalog.~~) 'lr/in/%'
	   AND k.operation OPERATOR(pg_catalog.=) 'credit'
	   AND (ledger_transfers_in.idempotency_keys IS NULL
			OR k.idempotency_key OPERATOR(pg_catalog.=) ANY (ledger_transfers_in.idempotency_keys))
	 ORDER BY k.idempotency_key;
	END;
REVOKE ALL ON FUNCTION ledger_transfers_in(text[]) FROM PUBLIC;
