/* ledger--1.0--1.1.sql: batch posting */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION ledger UPDATE TO '1.1'" to load this file. \quit

/*
 * Many postings in one transaction and one synchronous commit.  Every item
 * gets its own status: 'ok' or the condition name of the rule it breaks
 * (insufficient_funds, account_not_found, idempotency_conflict,
 * currency_mismatch, invalid_parameter_value, numeric_value_out_of_range);
 * a refused item changes nothing and does not stop the others.
 */
CREATE FUNCTION ledger_debit_batch(accounts text[], amounts bigint[],
								   idempotency_keys text[] DEFAULT NULL)
	RETURNS TABLE(ordinal int, status text, result bigint)
	AS 'MODULE_PATHNAME', 'ledger_debit_batch'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION ledger_transfer_batch(from_accounts text[], to_accounts text[],
									  amounts bigint[],
									  idempotency_keys text[] DEFAULT NULL)
	RETURNS TABLE(ordinal int, status text, result bigint)
	AS 'MODULE_PATHNAME', 'ledger_transfer_batch'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION ledger_debit_batch(text[], bigint[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_transfer_batch(text[], text[], bigint[], text[]) FROM PUBLIC;
