/* ledger--1.1--1.2.sql: the trust boundary closed */

\echo Use "ALTER EXTENSION ledger UPDATE TO '1.2'" to load this file. \quit

/*
 * Only the ledger writes its tables.  Table privileges are not enough:
 * members of pg_write_all_data may write every table, and a forged
 * idempotency key or balance would pass for the ledger's own.  These
 * ENABLE ALWAYS statement triggers refuse every INSERT and UPDATE that
 * does not come from the ledger's functions, for every role but a
 * superuser (guard.c); session_replication_role = replica does not switch
 * them off.  The ledger's direct writes fire no triggers and recognize
 * this one as their own, so postings do not pay for it.
 *
 * Locks: CREATE TRIGGER takes SHARE ROW EXCLUSIVE on each table, which
 * waits for the postings in flight and blocks new ones only for as long
 * as this transaction takes; nothing is rewritten (test: upgrade.sql
 * compares the tables' filenodes).
 */
CREATE FUNCTION ledger.guard_write() RETURNS trigger
	AS 'MODULE_PATHNAME', 'ledger_guard_write'
	LANGUAGE C;
REVOKE ALL ON FUNCTION ledger.guard_write() FROM PUBLIC;

CREATE TRIGGER accounts_guard BEFORE INSERT OR UPDATE ON ledger.accounts
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_write();
CREATE TRIGGER entries_guard BEFORE INSERT OR UPDATE ON ledger.entries
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_write();
CREATE TRIGGER transfers_guard BEFORE INSERT OR UPDATE ON ledger.transfers
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_write();
CREATE TRIGGER idempotency_keys_guard BEFORE INSERT OR UPDATE ON ledger.idempotency_keys
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_write();

ALTER TABLE ledger.accounts ENABLE ALWAYS TRIGGER accounts_guard;
ALTER TABLE ledger.entries ENABLE ALWAYS TRIGGER entries_guard;
ALTER TABLE ledger.transfers ENABLE ALWAYS TRIGGER transfers_guard;
ALTER TABLE ledger.idempotency_keys ENABLE ALWAYS TRIGGER idempotency_keys_guard;
