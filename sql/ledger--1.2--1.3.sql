/* ledger--1.2--1.3.sql: escrow mode for hot accounts */

\echo Use "ALTER EXTENSION ledger UPDATE TO '1.3'" to load this file. \quit

/*
 * Escrow mode (ARCHITECTURE §8).  A posting on an escrow account changes
 * no shared row and holds no lock across COMMIT: it inserts its journal
 * entries with balance_after NULL, and the floor is kept by admission
 * against the worst case of what is in flight, in shared memory
 * (escrow.c).  A background worker folds committed entries into the
 * balance row and fills their balance_after (fold.c).
 *
 * accounts.escrow is the account's mode.  An account's entries not folded
 * yet are its newest, found from the end of its range of the primary key
 * (ledger_balance is the folded balance plus them); no index of their own,
 * which the folder's updates would fill with dead entries.
 *
 * Locks: a column with a constant default and dropping NOT NULL rewrite
 * nothing, and read no table.
 */
ALTER TABLE ledger.accounts ADD COLUMN escrow boolean NOT NULL DEFAULT false;
-- an escrow posting's key: its result is the balance the posting saw, not
-- an entry's balance_after, which the folder fills later (ledger_verify)
ALTER TABLE ledger.idempotency_keys ADD COLUMN escrow boolean NOT NULL DEFAULT false;
ALTER TABLE ledger.entries ALTER COLUMN balance_after DROP NOT NULL;

CREATE FUNCTION ledger_set_account_mode(account text, mode text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_set_account_mode'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION ledger_set_account_mode(text, text) FROM PUBLIC;

CREATE FUNCTION ledger_account_mode(account text)
	RETURNS text
	AS 'MODULE_PATHNAME', 'ledger_account_mode'
	LANGUAGE C STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION ledger_account_mode(text) FROM PUBLIC;
