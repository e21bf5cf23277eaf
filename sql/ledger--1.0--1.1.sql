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

/*
 * Foreign keys that cost a lookup per journal row and guard nothing the
 * ledger does not already guarantee under its row locks: transfers and
 * their entries are written together by the ledger alone, and
 * ledger_verify() reports a transfer or entry that lost its counterpart.
 * (A referential check planned while its table was empty also stays a
 * sequential scan for the life of a backend.)  What the foreign key on
 * entries.account_id did, stop an account with history from being
 * deleted, the triggers below do for every account, at no cost per
 * posting: an account is never deleted.
 */
ALTER TABLE ledger.entries DROP CONSTRAINT entries_account_id_fkey;
ALTER TABLE ledger.entries DROP CONSTRAINT entries_transfer_id_fkey;
ALTER TABLE ledger.transfers DROP CONSTRAINT transfers_from_account_id_fkey;
ALTER TABLE ledger.transfers DROP CONSTRAINT transfers_to_account_id_fkey;

CREATE TRIGGER accounts_no_delete BEFORE DELETE ON ledger.accounts
	FOR EACH ROW EXECUTE FUNCTION ledger.forbid_journal_change();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON ledger.accounts
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.forbid_journal_change();
ALTER TABLE ledger.accounts ENABLE ALWAYS TRIGGER accounts_no_delete;
ALTER TABLE ledger.accounts ENABLE ALWAYS TRIGGER accounts_no_truncate;

/*
 * Every posting rewrites its account's row.  Room on each page lets that
 * be a HOT update, which touches no index; a full page makes every update
 * insert into both account indexes.
 */
ALTER TABLE ledger.accounts SET (fillfactor = 50);

/*
 * Rules about a single value move from table CHECKs to domains.  A table
 * CHECK is re-evaluated on every UPDATE of the row, whatever column
 * changed, so each posting re-ran the regular expression on the currency
 * and the length checks on the name; a domain is checked only when a value
 * of it is stored.  Only the rule that involves the balance stays a table
 * CHECK (accounts_balance_floor), and it is checked on every update, as it
 * must be.  Changing a column to a domain with a CHECK rewrites the table
 * (PostgreSQL checks every value that way): this step rewrites all four
 * tables under ACCESS EXCLUSIVE, blocking postings and reads of the ledger
 * for as long as that takes -- plan it like any table rewrite.  Later
 * upgrades are tested not to rewrite anything.
 */
CREATE DOMAIN ledger.account_name AS text COLLATE "C"
	CHECK (pg_catalog.octet_length(VALUE) OPERATOR(pg_catalog.>=) 1
		   AND pg_catalog.octet_length(VALUE) OPERATOR(pg_catalog.<=) 255);
CREATE DOMAIN ledger.idempotency_key AS text COLLATE "C"
	CHECK (pg_catalog.octet_length(VALUE) OPERATOR(pg_catalog.>=) 1
		   AND pg_catalog.octet_length(VALUE) OPERATOR(pg_catalog.<=) 255);
CREATE DOMAIN ledger.currency_code AS text COLLATE "C"
	CHECK (VALUE OPERATOR(pg_catalog.~) '^[A-Z0-9_]{1,16}$');
CREATE DOMAIN ledger.floor AS bigint
	CHECK (VALUE OPERATOR(pg_catalog.<=) 0);
CREATE DOMAIN ledger.positive_amount AS bigint
	CHECK (VALUE OPERATOR(pg_catalog.>) 0);
CREATE DOMAIN ledger.signed_amount AS bigint
	CHECK (VALUE OPERATOR(pg_catalog.<>) 0);

ALTER TABLE ledger.accounts
	DROP CONSTRAINT accounts_name_length,
	DROP CONSTRAINT accounts_currency_format,
	DROP CONSTRAINT accounts_min_balance_not_positive,
	ALTER COLUMN name TYPE ledger.account_name,
	ALTER COLUMN currency TYPE ledger.currency_code,
	ALTER COLUMN min_balance TYPE ledger.floor;

ALTER TABLE ledger.entries
	DROP CONSTRAINT entries_amount_check,
	ALTER COLUMN amount TYPE ledger.signed_amount,
	ALTER COLUMN idempotency_key TYPE ledger.idempotency_key;

ALTER TABLE ledger.transfers
	DROP CONSTRAINT transfers_amount_check,
	ALTER COLUMN amount TYPE ledger.positive_amount,
	ALTER COLUMN idempotency_key TYPE ledger.idempotency_key;

ALTER TABLE ledger.idempotency_keys
	DROP CONSTRAINT idempotency_keys_length,
	ALTER COLUMN idempotency_key TYPE ledger.idempotency_key,
	ALTER COLUMN account TYPE ledger.account_name,
	ALTER COLUMN counter_account TYPE ledger.account_name;

/*
 * One index on the journal instead of two: the history index becomes the
 * primary key.  entry_id is drawn from a sequence, so it is unique on its
 * own and (account_id, entry_id) is unique too; every read of the journal
 * goes by account.  Each posting saves one index insertion.
 */
ALTER TABLE ledger.entries DROP CONSTRAINT entries_pkey;
DROP INDEX ledger.entries_account_history;
ALTER TABLE ledger.entries ADD CONSTRAINT entries_pkey PRIMARY KEY (account_id, entry_id);
