/*-------------------------------------------------------------------------
 *
 * statements.c
 *	  Every query the ledger runs, prepared once per backend and kept.
 *
 * Keeping the text of all internal SQL in one table makes it easy to
 * check the rule that matters most for security: every relation,
 * function and operator is schema-qualified, and every name or key is a
 * bound parameter, never spliced into the text.
 *
 * Plans are kept with SPI_keepplan; the plan cache revalidates them when
 * the ledger's tables change, so a DROP/CREATE EXTENSION in the same
 * backend is safe.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "ledger.h"

#define MAX_STATEMENT_ARGS 8

typedef struct StatementDefinition
{
	const char *sql;
	int			expected;		/* SPI_OK_* code on success */
	int			nargs;
	Oid			argtypes[MAX_STATEMENT_ARGS];
} StatementDefinition;

static const StatementDefinition statements[LEDGER_STATEMENT_COUNT] = {
	[STMT_OPEN_ACCOUNT] = {
		"INSERT INTO ledger.accounts (name, currency, min_balance)"
		" VALUES ($1, $2, $3)"
		" ON CONFLICT (name) DO NOTHING"
		" RETURNING account_id",
		SPI_OK_INSERT_RETURNING, 3, {TEXTOID, TEXTOID, INT8OID}
	},
	[STMT_FIND_ACCOUNT] = {
		"SELECT account_id, currency, min_balance, balance"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {TEXTOID}
	},
	[STMT_LOCK_ACCOUNT] = {
		"SELECT account_id, balance, min_balance, currency"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) $1"
		" FOR UPDATE",
		SPI_OK_SELECT, 1, {TEXTOID}
	},

	/*
	 * LockRows sits above Sort, so the rows are locked in account_id order:
	 * two transfers over the same pair, in either direction, queue on the
	 * same first lock instead of deadlocking.
	 */
	[STMT_LOCK_ACCOUNT_PAIR] = {
		"SELECT account_id, balance, min_balance, currency, name"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) $1"
		"    OR name OPERATOR(pg_catalog.=) $2"
		" ORDER BY account_id"
		" FOR UPDATE",
		SPI_OK_SELECT, 2, {TEXTOID, TEXTOID}
	},
	/*
	 * The fast path of a posting without an idempotency key: one statement
	 * that takes the row lock (the UPDATE's own, held to COMMIT), checks
	 * the floor and the bigint range, and appends the entry.  The check is
	 * written so that it cannot overflow: balance - amount >= floor, with
	 * the smallest bigint standing in for "no floor".  Under READ COMMITTED
	 * a waiting UPDATE re-checks the condition against the balance the
	 * other transaction left.  No row: the slow path finds out why.
	 */
	[STMT_FAST_DEBIT] = {
		"WITH posted AS ("
		"  UPDATE ledger.accounts"
		"     SET balance = balance OPERATOR(pg_catalog.-) $2"
		"   WHERE name OPERATOR(pg_catalog.=) $1"
		"     AND balance OPERATOR(pg_catalog.>=)"
		"         (COALESCE(min_balance, '-9223372036854775808'::pg_catalog.int8) OPERATOR(pg_catalog.+) $2)"
		"  RETURNING account_id, balance)"
		" INSERT INTO ledger.entries (account_id, amount, balance_after, created_at)"
		" SELECT account_id, OPERATOR(pg_catalog.-) $2, balance, $3 FROM posted"
		" RETURNING balance_after",
		SPI_OK_INSERT_RETURNING, 3, {TEXTOID, INT8OID, TIMESTAMPTZOID}
	},
	[STMT_FAST_CREDIT] = {
		"WITH posted AS ("
		"  UPDATE ledger.accounts"
		"     SET balance = balance OPERATOR(pg_catalog.+) $2"
		"   WHERE name OPERATOR(pg_catalog.=) $1"
		"     AND balance OPERATOR(pg_catalog.<=)"
		"         ('9223372036854775807'::pg_catalog.int8 OPERATOR(pg_catalog.-) $2)"
		"  RETURNING account_id, balance)"
		" INSERT INTO ledger.entries (account_id, amount, balance_after, created_at)"
		" SELECT account_id, $2, balance, $3 FROM posted"
		" RETURNING balance_after",
		SPI_OK_INSERT_RETURNING, 3, {TEXTOID, INT8OID, TIMESTAMPTZOID}
	},
	[STMT_UPDATE_BALANCE] = {
		"UPDATE ledger.accounts SET balance = $2"
		" WHERE account_id OPERATOR(pg_catalog.=) $1",
		SPI_OK_UPDATE, 2, {INT8OID, INT8OID}
	},
	[STMT_INSERT_ENTRY] = {
		"INSERT INTO ledger.entries"
		" (account_id, amount, balance_after, transfer_id, idempotency_key, created_at)"
		" VALUES ($1, $2, $3, $4, $5, $6)",
		SPI_OK_INSERT, 6, {INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID}
	},
	[STMT_NEXT_TRANSFER_ID] = {
		"SELECT pg_catalog.nextval('ledger.transfers_transfer_id_seq'::pg_catalog.regclass)",
		SPI_OK_SELECT, 0, {InvalidOid}
	},
	/*
	 * All writes of a transfer in one statement: the transfer row (its id
	 * drawn here unless the caller drew it to claim a key), both balances
	 * and both journal entries.  $1 transfer id or NULL, $2/$3 from account
	 * and its new balance, $4/$5 to account and its new balance, $6 amount,
	 * $7 key, $8 time.
	 */
	[STMT_POST_TRANSFER] = {
		"WITH t AS ("
		"  INSERT INTO ledger.transfers"
		"   (transfer_id, from_account_id, to_account_id, amount, idempotency_key, created_at)"
		"  VALUES (COALESCE($1, pg_catalog.nextval('ledger.transfers_transfer_id_seq'::pg_catalog.regclass)),"
		"          $2, $4, $6, $7, $8)"
		"  RETURNING transfer_id),"
		" moved AS ("
		"  UPDATE ledger.accounts a SET balance = v.balance"
		"    FROM (VALUES ($2, $3), ($4, $5)) AS v(account_id, balance)"
		"   WHERE a.account_id OPERATOR(pg_catalog.=) v.account_id)"
		" INSERT INTO ledger.entries"
		" (account_id, amount, balance_after, transfer_id, idempotency_key, created_at)"
		" SELECT e.account_id, e.amount, e.balance_after, t.transfer_id, $7, $8"
		"   FROM t, (VALUES ($2, OPERATOR(pg_catalog.-) $6, $3), ($4, $6, $5))"
		"        AS e(account_id, amount, balance_after)"
		" RETURNING transfer_id",
		SPI_OK_INSERT_RETURNING, 8,
		{INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID}
	},
	[STMT_FIND_KEY] = {
		"SELECT operation, account, counter_account, amount, result"
		" FROM ledger.idempotency_keys"
		" WHERE idempotency_key OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {TEXTOID}
	},

	/*
	 * A concurrent transaction holding the same key makes this wait for it;
	 * if that one commits we insert nothing and replay its result.
	 */
	[STMT_CLAIM_KEY] = {
		"INSERT INTO ledger.idempotency_keys"
		" (idempotency_key, operation, account, counter_account, amount, result)"
		" VALUES ($1, $2, $3, $4, $5, $6)"
		" ON CONFLICT (idempotency_key) DO NOTHING",
		SPI_OK_INSERT, 6, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID}
	},
	/*
	 * Batches: every account of the batch locked in one statement, again
	 * in account_id order, so two concurrent batches queue instead of
	 * deadlocking; then the writes of all items in one statement each.
	 */
	[STMT_LOCK_ACCOUNTS] = {
		"SELECT account_id, balance, min_balance, currency, name, ctid"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) ANY ($1)"
		" ORDER BY account_id"
		" FOR UPDATE",
		SPI_OK_SELECT, 1, {TEXTARRAYOID}
	},
	[STMT_FIND_KEYS] = {
		"SELECT idempotency_key, operation, account, counter_account, amount, result"
		" FROM ledger.idempotency_keys"
		" WHERE idempotency_key OPERATOR(pg_catalog.=) ANY ($1)",
		SPI_OK_SELECT, 1, {TEXTARRAYOID}
	},
	/*
	 * Keys are claimed in one global order (their bytes), whatever the
	 * order of the items: two batches sharing keys then wait for each
	 * other instead of each holding one key the other needs.
	 */
	[STMT_CLAIM_KEYS] = {
		"INSERT INTO ledger.idempotency_keys"
		" (idempotency_key, operation, account, counter_account, amount, result)"
		" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6))"
		"      AS k(idempotency_key, operation, account, counter_account, amount, result)"
		" ORDER BY k.idempotency_key COLLATE pg_catalog.\"C\""
		" ON CONFLICT (idempotency_key) DO NOTHING",
		SPI_OK_INSERT, 6, {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID}
	},

	/*
	 * By ctid: the rows are locked by this transaction since
	 * STMT_LOCK_ACCOUNTS read their ctids, so nobody else can move them,
	 * and each account appears once.  A TID scan per row instead of an
	 * index probe.
	 */
	[STMT_UPDATE_BALANCES] = {
		"UPDATE ledger.accounts a SET balance = v.balance"
		" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS v(row_ctid, balance)"
		" WHERE a.ctid OPERATOR(pg_catalog.=) v.row_ctid",
		SPI_OK_UPDATE, 2, {TIDARRAYOID, INT8ARRAYOID}
	},
	[STMT_INSERT_ENTRIES] = {
		"INSERT INTO ledger.entries"
		" (account_id, amount, balance_after, transfer_id, idempotency_key, created_at)"
		" SELECT e.*, $6 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)) AS e",
		SPI_OK_INSERT, 6, {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID}
	},
	[STMT_NEXT_TRANSFER_IDS] = {
		"SELECT pg_catalog.nextval('ledger.transfers_transfer_id_seq'::pg_catalog.regclass)"
		" FROM pg_catalog.generate_series(1::pg_catalog.int8, $1)",
		SPI_OK_SELECT, 1, {INT8OID}
	},
	[STMT_INSERT_TRANSFERS] = {
		"INSERT INTO ledger.transfers"
		" (transfer_id, from_account_id, to_account_id, amount, idempotency_key, created_at)"
		" SELECT t.*, $6 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)) AS t",
		SPI_OK_INSERT, 6, {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID}
	},
	[STMT_HISTORY] = {
		"SELECT entry_id, amount, balance_after, transfer_id, idempotency_key, created_at"
		" FROM ledger.entries"
		" WHERE account_id OPERATOR(pg_catalog.=) $1"
		" ORDER BY entry_id DESC"
		" LIMIT $2",
		SPI_OK_SELECT, 2, {INT8OID, INT8OID}
	},

	/*
	 * The audit: every balance equals the sum of its journal and the last
	 * running balance, no balance is below its floor, every journal row
	 * belongs to an existing account, and every transfer has exactly two
	 * entries: amount out of its from account, amount into its to account.
	 * Problems of a vanished account are reported under its id.
	 */
	[STMT_VERIFY] = {
		"SELECT COALESCE(a.name::pg_catalog.text,"
		"                pg_catalog.format('<missing account %s>', p.account_id)),"
		"       p.problem"
		" FROM ("
		"  SELECT a.account_id,"
		"         pg_catalog.format('balance %s does not equal the sum of its journal entries %s',"
		"                           a.balance, COALESCE(j.total, 0)) AS problem"
		"    FROM ledger.accounts a"
		"    LEFT JOIN (SELECT account_id, pg_catalog.sum(amount) AS total"
		"                 FROM ledger.entries GROUP BY account_id) j"
		"           ON j.account_id OPERATOR(pg_catalog.=) a.account_id"
		"   WHERE a.balance::pg_catalog.numeric OPERATOR(pg_catalog.<>) COALESCE(j.total, 0)"
		"  UNION ALL"
		"  SELECT account_id,"
		"         pg_catalog.format('balance %s is below its floor %s', balance, min_balance)"
		"    FROM ledger.accounts"
		"   WHERE balance OPERATOR(pg_catalog.<) min_balance"
		"  UNION ALL"
		"  SELECT account_id,"
		"         pg_catalog.format('entry %s records balance_after %s but the running sum is %s',"
		"                           entry_id, balance_after, running)"
		"    FROM (SELECT account_id, entry_id, balance_after,"
		"                 pg_catalog.sum(amount) OVER (PARTITION BY account_id ORDER BY entry_id) AS running"
		"            FROM ledger.entries) r"
		"   WHERE balance_after::pg_catalog.numeric OPERATOR(pg_catalog.<>) running"
		"  UNION ALL"
		"  SELECT e.account_id,"
		"         pg_catalog.format('%s journal entries belong to no account', pg_catalog.count(*))"
		"    FROM ledger.entries e"
		"   WHERE NOT EXISTS (SELECT FROM ledger.accounts a"
		"                      WHERE a.account_id OPERATOR(pg_catalog.=) e.account_id)"
		"   GROUP BY e.account_id"
		"  UNION ALL"
		"  SELECT e.account_id,"
		"         pg_catalog.format('entry %s belongs to transfer %s, which does not exist',"
		"                           e.entry_id, e.transfer_id)"
		"    FROM ledger.entries e"
		"   WHERE e.transfer_id IS NOT NULL"
		"     AND NOT EXISTS (SELECT FROM ledger.transfers t"
		"                      WHERE t.transfer_id OPERATOR(pg_catalog.=) e.transfer_id)"
		"  UNION ALL"
		"  SELECT t.from_account_id,"
		"         pg_catalog.format('transfer %s of %s does not have one entry of -%s on its from account and one of +%s on its to account',"
		"                           t.transfer_id, t.amount, t.amount, t.amount)"
		"    FROM ledger.transfers t"
		"    LEFT JOIN ledger.entries e ON e.transfer_id OPERATOR(pg_catalog.=) t.transfer_id"
		"   GROUP BY t.transfer_id, t.from_account_id, t.to_account_id, t.amount"
		"  HAVING pg_catalog.count(e.entry_id) OPERATOR(pg_catalog.<>) 2"
		"      OR pg_catalog.count(e.entry_id) FILTER (WHERE e.account_id OPERATOR(pg_catalog.=) t.from_account_id"
		"                                              AND e.amount OPERATOR(pg_catalog.=) OPERATOR(pg_catalog.-) t.amount)"
		"         OPERATOR(pg_catalog.<>) 1"
		"      OR pg_catalog.count(e.entry_id) FILTER (WHERE e.account_id OPERATOR(pg_catalog.=) t.to_account_id"
		"                                              AND e.amount OPERATOR(pg_catalog.=) t.amount)"
		"         OPERATOR(pg_catalog.<>) 1"
		" ) p"
		" LEFT JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) p.account_id"
		" ORDER BY 1, 2",
		SPI_OK_SELECT, 0, {InvalidOid}
	},
};

static SPIPlanPtr plans[LEDGER_STATEMENT_COUNT];

static SPIPlanPtr
statement_plan(LedgerStatement stmt)
{
	const StatementDefinition *def = &statements[stmt];
	SPIPlanPtr	plan;

	if (plans[stmt] != NULL)
		return plans[stmt];

	plan = SPI_prepare(def->sql, def->nargs, (Oid *) def->argtypes);
	if (plan == NULL)
		elog(ERROR, "ledger: SPI_prepare failed for statement %d: %s",
			 (int) stmt, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "ledger: SPI_keepplan failed for statement %d", (int) stmt);
	plans[stmt] = plan;
	return plan;
}

/*
 * Run one of the ledger's statements inside the caller's SPI connection.
 * nulls follows SPI's convention ('n' for NULL, ' ' otherwise) and may be
 * NULL when no argument is.  Returns SPI_processed.
 */
int
ledger_execute(LedgerStatement stmt, Datum *values, const char *nulls,
			   bool read_only)
{
	int			rc;

	rc = SPI_execute_plan(statement_plan(stmt), values, nulls, read_only, 0);
	if (rc != statements[stmt].expected)
		elog(ERROR, "ledger: statement %d failed: %s",
			 (int) stmt, SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/*
 * Fetch an int8 column (1-based) from the last result; false if NULL.
 */
bool
ledger_get_int64(int row, int col, int64 *value)
{
	bool		isnull;
	Datum		d;

	d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	if (!isnull)
		*value = DatumGetInt64(d);
	return !isnull;
}

/*
 * Fetch a text column (1-based) from the last result as a palloc'd C
 * string in the current (SPI) memory context; NULL if the value is NULL.
 */
char *
ledger_get_cstring(int row, int col)
{
	bool		isnull;
	Datum		d;

	d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	if (isnull)
		return NULL;
	return text_to_cstring(DatumGetTextPP(d));
}
