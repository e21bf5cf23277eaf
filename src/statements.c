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
 * Every statement but the audit finds its rows through an index, and is
 * planned with enable_seqscan off.  A plan is made when a backend first
 * runs the statement and kept until the table's statistics change: made
 * while a table is still small (a new ledger, or pending_holds between
 * vacuums), a sequential scan is the cheaper plan, and it would stay the
 * plan -- a scan of every key, hold or dead row per posting -- long after
 * the table has grown.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "ledger.h"

#define MAX_STATEMENT_ARGS 9

/*
 * A statement, and its texts for the tables of earlier versions: sql_1_1
 * before 1.2 (no holds), sql_1_2 before 1.3 (no escrow mode).  A new
 * library keeps serving a database whose ALTER EXTENSION ledger UPDATE has
 * not run yet.
 */
typedef struct StatementDefinition
{
	const char *sql;
	int			expected;		/* SPI_OK_* code on success */
	int			nargs;
	Oid			argtypes[MAX_STATEMENT_ARGS];
	const char *sql_1_1;		/* NULL: sql_1_2, or else sql */
	const char *sql_1_2;		/* NULL: sql */
} StatementDefinition;

/* The columns of a stored idempotency key, as idempotency.c reads them. */
#define KEY_COLUMNS "idempotency_key, operation, account, counter_account, amount, result, expires_in"
#define KEY_COLUMNS_1_1 "idempotency_key, operation, account, counter_account, amount, result, NULL::pg_catalog.interval"
#define KEY_INSERT_1_1 "idempotency_key, operation, account, counter_account, amount, result"

/*
 * The audit (STMT_VERIFY): every balance equals the sum of its journal and
 * the last running balance, no balance is below its floor, every journal
 * row belongs to an existing account, every transfer has exactly two
 * entries (amount out of its from account, amount into its to account),
 * and every stored idempotency key is backed by the posting whose result
 * it replays (and every keyed posting has its key).  With holds (1.2):
 * held is the sum of the pending holds, no available balance is below its
 * floor, every hold is pending or ended (not both), and every captured
 * hold has exactly its one posting.  Problems of a vanished account are
 * reported under its id.
 */
#define VERIFY_HEAD \
	"SELECT COALESCE(a.name::pg_catalog.text," \
	"                pg_catalog.format('<missing account %s>', p.account_id))," \
	"       p.problem" \
	" FROM ("

#define VERIFY_CHECKS(HOLD_KEY_BACKED, FOLDED, KEY_BALANCE) \
	"  SELECT a.account_id," \
	"         pg_catalog.format('balance %s does not equal the sum of its journal entries %s'," \
	"                           a.balance, COALESCE(j.total, 0)) AS problem" \
	"    FROM ledger.accounts a" \
	"    LEFT JOIN (SELECT account_id, pg_catalog.sum(amount) AS total" \
	"                 FROM ledger.entries" FOLDED " GROUP BY account_id) j" \
	"           ON j.account_id OPERATOR(pg_catalog.=) a.account_id" \
	"   WHERE a.balance::pg_catalog.numeric OPERATOR(pg_catalog.<>) COALESCE(j.total, 0)" \
	"  UNION ALL" \
	"  SELECT account_id," \
	"         pg_catalog.format('balance %s is below its floor %s', balance, min_balance)" \
	"    FROM ledger.accounts" \
	"   WHERE balance OPERATOR(pg_catalog.<) min_balance" \
	"  UNION ALL" \
	"  SELECT account_id," \
	"         pg_catalog.format('entry %s records balance_after %s but the running sum is %s'," \
	"                           entry_id, balance_after, running)" \
	"    FROM (SELECT account_id, entry_id, balance_after," \
	"                 pg_catalog.sum(amount) OVER (PARTITION BY account_id ORDER BY entry_id) AS running" \
	"            FROM ledger.entries) r" \
	"   WHERE balance_after::pg_catalog.numeric OPERATOR(pg_catalog.<>) running" \
	"  UNION ALL" \
	"  SELECT e.account_id," \
	"         pg_catalog.format('%s journal entries belong to no account', pg_catalog.count(*))" \
	"    FROM ledger.entries e" \
	"   WHERE NOT EXISTS (SELECT FROM ledger.accounts a" \
	"                      WHERE a.account_id OPERATOR(pg_catalog.=) e.account_id)" \
	"   GROUP BY e.account_id" \
	"  UNION ALL" \
	"  SELECT e.account_id," \
	"         pg_catalog.format('entry %s belongs to transfer %s, which does not exist'," \
	"                           e.entry_id, e.transfer_id)" \
	"    FROM ledger.entries e" \
	"   WHERE e.transfer_id IS NOT NULL" \
	"     AND NOT EXISTS (SELECT FROM ledger.transfers t" \
	"                      WHERE t.transfer_id OPERATOR(pg_catalog.=) e.transfer_id)" \
	"  UNION ALL" \
	"  SELECT t.from_account_id," \
	"         pg_catalog.format('transfer %s of %s does not have one entry of -%s on its from account and one of +%s on its to account'," \
	"                           t.transfer_id, t.amount, t.amount, t.amount)" \
	"    FROM ledger.transfers t" \
	"    LEFT JOIN ledger.entries e ON e.transfer_id OPERATOR(pg_catalog.=) t.transfer_id" \
	"   GROUP BY t.transfer_id, t.from_account_id, t.to_account_id, t.amount" \
	"  HAVING pg_catalog.count(e.entry_id) OPERATOR(pg_catalog.<>) 2" \
	"      OR pg_catalog.count(e.entry_id) FILTER (WHERE e.account_id OPERATOR(pg_catalog.=) t.from_account_id" \
	"                                              AND e.amount OPERATOR(pg_catalog.=) OPERATOR(pg_catalog.-) t.amount)" \
	"         OPERATOR(pg_catalog.<>) 1" \
	"      OR pg_catalog.count(e.entry_id) FILTER (WHERE e.account_id OPERATOR(pg_catalog.=) t.to_account_id" \
	"                                              AND e.amount OPERATOR(pg_catalog.=) t.amount)" \
	"         OPERATOR(pg_catalog.<>) 1" \
	"  UNION ALL" \
	"  SELECT (SELECT a.account_id FROM ledger.accounts a" \
	"           WHERE a.name OPERATOR(pg_catalog.=) k.account)," \
	"         pg_catalog.format('idempotency key %s replays %s %s of %s, which no posting backs'," \
	"                           pg_catalog.quote_literal(k.idempotency_key), k.operation," \
	"                           k.result, k.amount)" \
	"    FROM ledger.idempotency_keys k" \
	"   WHERE NOT (CASE k.operation" \
	"      WHEN 'transfer' THEN EXISTS (" \
	"        SELECT FROM ledger.transfers t" \
	"          JOIN ledger.accounts f ON f.account_id OPERATOR(pg_catalog.=) t.from_account_id" \
	"          JOIN ledger.accounts d ON d.account_id OPERATOR(pg_catalog.=) t.to_account_id" \
	"         WHERE t.transfer_id OPERATOR(pg_catalog.=) k.result" \
	"           AND t.idempotency_key OPERATOR(pg_catalog.=) k.idempotency_key" \
	"           AND t.amount OPERATOR(pg_catalog.=) k.amount" \
	"           AND f.name OPERATOR(pg_catalog.=) k.account" \
	"           AND d.name OPERATOR(pg_catalog.=) k.counter_account)" \
	"      WHEN 'credit' THEN EXISTS (" \
	"        SELECT FROM ledger.entries e" \
	"          JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) e.account_id" \
	"         WHERE e.idempotency_key OPERATOR(pg_catalog.=) k.idempotency_key" \
	"           AND e.transfer_id IS NULL AND a.name OPERATOR(pg_catalog.=) k.account" \
	"           AND e.amount OPERATOR(pg_catalog.=) k.amount" \
	"           AND " KEY_BALANCE ")" \
	"      WHEN 'debit' THEN EXISTS (" \
	"        SELECT FROM ledger.entries e" \
	"          JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) e.account_id" \
	"         WHERE e.idempotency_key OPERATOR(pg_catalog.=) k.idempotency_key" \
	"           AND e.transfer_id IS NULL AND a.name OPERATOR(pg_catalog.=) k.account" \
	"           AND e.amount OPERATOR(pg_catalog.=) OPERATOR(pg_catalog.-) k.amount" \
	"           AND " KEY_BALANCE ")" \
	"      WHEN 'hold' THEN " HOLD_KEY_BACKED \
	"      ELSE false END)" \
	"  UNION ALL" \
	"  SELECT e.account_id," \
	"         pg_catalog.format('entry %s carries idempotency key %s, which is not recorded'," \
	"                           e.entry_id, pg_catalog.quote_literal(e.idempotency_key))" \
	"    FROM ledger.entries e" \
	"   WHERE e.idempotency_key IS NOT NULL" \
	"     AND NOT EXISTS (SELECT FROM ledger.idempotency_keys k" \
	"                      WHERE k.idempotency_key OPERATOR(pg_catalog.=) e.idempotency_key)"

/* before 1.3 every entry is folded, and a key's result is its entry's balance */
#define VERIFY_ALL_FOLDED ""
#define VERIFY_KEY_BALANCE "e.balance_after OPERATOR(pg_catalog.=) k.result"
/*
 * 1.3: the balance row is the sum of the folded entries; an escrow key's
 * result is the balance its posting saw, which no entry records
 */
#define VERIFY_FOLDED " WHERE balance_after IS NOT NULL"
#define VERIFY_ESCROW_KEY_BALANCE "(k.escrow OR e.balance_after OPERATOR(pg_catalog.=) k.result)"

/*
 * 1.3: no balance_after below its account's floor (folding in entry id
 * order never crosses it, see fold.c); the entries not folded yet are an
 * account's newest; only an account in escrow mode has any.
 */
#define VERIFY_ESCROW_CHECKS \
	"  UNION ALL" \
	"  SELECT e.account_id," \
	"         pg_catalog.format('entry %s records balance_after %s, below the floor %s'," \
	"                           e.entry_id, e.balance_after, a.min_balance)" \
	"    FROM ledger.entries e" \
	"    JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) e.account_id" \
	"   WHERE e.balance_after OPERATOR(pg_catalog.<) a.min_balance" \
	"  UNION ALL" \
	"  SELECT account_id," \
	"         pg_catalog.format('entry %s is not folded, but the newer entry %s is'," \
	"                           oldest_unfolded, newest_folded)" \
	"    FROM (SELECT account_id," \
	"                 pg_catalog.min(entry_id) FILTER (WHERE balance_after IS NULL) AS oldest_unfolded," \
	"                 pg_catalog.max(entry_id) FILTER (WHERE balance_after IS NOT NULL) AS newest_folded" \
	"            FROM ledger.entries GROUP BY account_id) f" \
	"   WHERE oldest_unfolded OPERATOR(pg_catalog.<) newest_folded" \
	"  UNION ALL" \
	"  SELECT a.account_id," \
	"         pg_catalog.format('%s entries are not folded, but the account is in locked mode'," \
	"                           pg_catalog.count(*))" \
	"    FROM ledger.accounts a" \
	"    JOIN ledger.entries e ON e.account_id OPERATOR(pg_catalog.=) a.account_id" \
	"   WHERE NOT a.escrow AND e.balance_after IS NULL" \
	"   GROUP BY a.account_id"

/* a hold's key is backed by the hold it made */
#define VERIFY_HOLD_KEY \
	"EXISTS (" \
	"        SELECT FROM ledger.holds h" \
	"          JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) h.account_id" \
	"         WHERE h.hold_id OPERATOR(pg_catalog.=) k.result" \
	"           AND h.idempotency_key OPERATOR(pg_catalog.=) k.idempotency_key" \
	"           AND h.amount OPERATOR(pg_catalog.=) k.amount" \
	"           AND a.name OPERATOR(pg_catalog.=) k.account)"

#define VERIFY_HOLD_CHECKS \
	"  UNION ALL" \
	"  SELECT a.account_id," \
	"         pg_catalog.format('held %s does not equal the sum of its pending holds %s'," \
	"                           a.held, COALESCE(p.total, 0))" \
	"    FROM ledger.accounts a" \
	"    LEFT JOIN (SELECT account_id, pg_catalog.sum(amount) AS total" \
	"                 FROM ledger.pending_holds GROUP BY account_id) p" \
	"           ON p.account_id OPERATOR(pg_catalog.=) a.account_id" \
	"   WHERE a.held::pg_catalog.numeric OPERATOR(pg_catalog.<>) COALESCE(p.total, 0)" \
	"  UNION ALL" \
	"  SELECT a.account_id," \
	"         pg_catalog.format('available balance %s is below its floor %s'," \
	"                           a.balance OPERATOR(pg_catalog.+) COALESCE(u.total, 0)" \
	"                             OPERATOR(pg_catalog.-) r.reserved, a.min_balance)" \
	"    FROM ledger.accounts a" \
	"    JOIN (SELECT account_id, pg_catalog.sum(amount) AS reserved" \
	"            FROM ledger.pending_holds" \
	"           WHERE expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()" \
	"           GROUP BY account_id) r ON r.account_id OPERATOR(pg_catalog.=) a.account_id" \
	"    LEFT JOIN (SELECT account_id, pg_catalog.sum(amount) AS total" \
	"                 FROM ledger.entries WHERE balance_after IS NULL GROUP BY account_id) u" \
	"           ON u.account_id OPERATOR(pg_catalog.=) a.account_id" \
	"   WHERE (a.balance OPERATOR(pg_catalog.+) COALESCE(u.total, 0) OPERATOR(pg_catalog.-) r.reserved)" \
	"         OPERATOR(pg_catalog.<) a.min_balance" \
	"  UNION ALL" \
	"  SELECT h.account_id," \
	"         pg_catalog.format('hold %s is %s', h.hold_id," \
	"                           CASE WHEN p.hold_id IS NULL THEN 'neither pending nor ended'" \
	"                                ELSE 'both pending and ended' END)" \
	"    FROM ledger.holds h" \
	"    LEFT JOIN ledger.pending_holds p ON p.hold_id OPERATOR(pg_catalog.=) h.hold_id" \
	"    LEFT JOIN ledger.hold_ends e ON e.hold_id OPERATOR(pg_catalog.=) h.hold_id" \
	"   WHERE (p.hold_id IS NULL) OPERATOR(pg_catalog.=) (e.hold_id IS NULL)" \
	"  UNION ALL" \
	"  SELECT h.account_id," \
	"         pg_catalog.format('hold %s was captured for %s but has %s postings of it'," \
	"                           h.hold_id, e.captured, pg_catalog.count(x.entry_id))" \
	"    FROM ledger.holds h" \
	"    JOIN ledger.hold_ends e ON e.hold_id OPERATOR(pg_catalog.=) h.hold_id" \
	"    LEFT JOIN ledger.entries x ON x.hold_id OPERATOR(pg_catalog.=) h.hold_id" \
	"   WHERE e.status OPERATOR(pg_catalog.=) 'captured'" \
	"   GROUP BY h.hold_id, h.account_id, e.captured" \
	"  HAVING pg_catalog.count(x.entry_id) OPERATOR(pg_catalog.<>) 1" \
	"      OR pg_catalog.count(x.entry_id) FILTER (WHERE x.account_id OPERATOR(pg_catalog.=) h.account_id" \
	"                                              AND x.amount OPERATOR(pg_catalog.=) OPERATOR(pg_catalog.-) e.captured)" \
	"         OPERATOR(pg_catalog.<>) 1" \
	"  UNION ALL" \
	"  SELECT x.account_id," \
	"         pg_catalog.format('entry %s posts hold %s, which was not captured', x.entry_id, x.hold_id)" \
	"    FROM ledger.entries x" \
	"   WHERE x.hold_id IS NOT NULL" \
	"     AND NOT EXISTS (SELECT FROM ledger.hold_ends e" \
	"                      WHERE e.hold_id OPERATOR(pg_catalog.=) x.hold_id" \
	"                        AND e.status OPERATOR(pg_catalog.=) 'captured')"

#define VERIFY_TAIL \
	" ) p" \
	" LEFT JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) p.account_id" \
	" ORDER BY 1, 2"

/*
 * 1.3: the entries of an escrow account the folder has not folded yet are
 * its newest (fold.c): those after its newest folded entry.  Both are
 * found from the end of the account's range of the primary key, so a read
 * costs what the folder has left to do, not the account's history.  acct
 * is an SQL expression of the account's id.
 */
#define NEWEST_FOLDED(acct) \
	"COALESCE((SELECT pg_catalog.max(f.entry_id) FROM ledger.entries f" \
	"           WHERE f.account_id OPERATOR(pg_catalog.=) " acct \
	"             AND f.balance_after IS NOT NULL), 0)"
#define UNFOLDED_SUM(acct, more) \
	"COALESCE((SELECT pg_catalog.sum(u.amount) FROM ledger.entries u" \
	"           WHERE u.account_id OPERATOR(pg_catalog.=) " acct \
	"             AND u.entry_id OPERATOR(pg_catalog.>) " NEWEST_FOLDED(acct) \
	"             AND u.balance_after IS NULL" more "), 0)::pg_catalog.int8"

static const StatementDefinition statements[LEDGER_STATEMENT_COUNT] = {
	[STMT_OPEN_ACCOUNT] = {
		"INSERT INTO ledger.accounts (name, currency, min_balance, escrow)"
		" VALUES ($1, $2, $3, $4)"
		" ON CONFLICT (name) DO NOTHING"
		" RETURNING account_id",
		SPI_OK_INSERT_RETURNING, 4, {TEXTOID, TEXTOID, INT8OID, BOOLOID},
		NULL,
		"INSERT INTO ledger.accounts (name, currency, min_balance)"
		" VALUES ($1, $2, $3)"
		" ON CONFLICT (name) DO NOTHING"
		" RETURNING account_id"
	},
	/*
	 * The balance is what the caller's snapshot sees: the row's, plus the
	 * entries of an escrow account the folder has not folded yet (an
	 * account in locked mode has none).
	 */
	[STMT_FIND_ACCOUNT] = {
		"SELECT a.account_id, a.currency, a.min_balance,"
		"       a.balance OPERATOR(pg_catalog.+)"
		"       CASE WHEN a.escrow THEN " UNFOLDED_SUM("a.account_id", "") " ELSE 0 END"
		" FROM ledger.accounts a"
		" WHERE a.name OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {TEXTOID},
		NULL,
		"SELECT account_id, currency, min_balance, balance"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) $1"
	},

	/*
	 * What account.c does when the direct lock cannot: every named account
	 * locked in one statement.  LockRows sits above Sort, so the rows are
	 * locked in account_id order: two postings over the same accounts, in
	 * any order, queue on the same first lock instead of deadlocking.
	 */
	[STMT_LOCK_ACCOUNTS] = {
		"SELECT account_id, balance, min_balance, currency, name, ctid, held, escrow"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) ANY ($1)"
		" ORDER BY account_id"
		" FOR UPDATE",
		SPI_OK_SELECT, 1, {TEXTARRAYOID},
		"SELECT account_id, balance, min_balance, currency, name, ctid, 0::pg_catalog.int8, false"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) ANY ($1)"
		" ORDER BY account_id"
		" FOR UPDATE",
		"SELECT account_id, balance, min_balance, currency, name, ctid, held, false"
		" FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) ANY ($1)"
		" ORDER BY account_id"
		" FOR UPDATE"
	},
	[STMT_FIND_KEY] = {
		"SELECT " KEY_COLUMNS
		" FROM ledger.idempotency_keys"
		" WHERE idempotency_key OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {TEXTOID},
		"SELECT " KEY_COLUMNS_1_1
		" FROM ledger.idempotency_keys"
		" WHERE idempotency_key OPERATOR(pg_catalog.=) $1"
	},
	[STMT_FIND_KEYS] = {
		"SELECT " KEY_COLUMNS
		" FROM ledger.idempotency_keys"
		" WHERE idempotency_key OPERATOR(pg_catalog.=) ANY ($1)",
		SPI_OK_SELECT, 1, {TEXTARRAYOID},
		"SELECT " KEY_COLUMNS_1_1
		" FROM ledger.idempotency_keys"
		" WHERE idempotency_key OPERATOR(pg_catalog.=) ANY ($1)"
	},

	/*
	 * A concurrent transaction holding the same key makes the claim wait
	 * for it; if that one commits, nothing is inserted (idempotency.c).
	 */
	[STMT_CLAIM_KEY] = {
		"INSERT INTO ledger.idempotency_keys (" KEY_COLUMNS ", escrow)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
		" ON CONFLICT (idempotency_key) DO NOTHING",
		SPI_OK_INSERT, 8, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INTERVALOID, BOOLOID},
		"INSERT INTO ledger.idempotency_keys (" KEY_INSERT_1_1 ")"
		" VALUES ($1, $2, $3, $4, $5, $6)"
		" ON CONFLICT (idempotency_key) DO NOTHING",
		"INSERT INTO ledger.idempotency_keys (" KEY_COLUMNS ")"
		" VALUES ($1, $2, $3, $4, $5, $6, $7)"
		" ON CONFLICT (idempotency_key) DO NOTHING"
	},

	/*
	 * Many keys are claimed in one global order (their bytes), whatever
	 * the order of the items: two batches sharing keys then wait for each
	 * other instead of each holding one key the other needs.
	 */
	[STMT_CLAIM_KEYS] = {
		"INSERT INTO ledger.idempotency_keys (" KEY_COLUMNS ", escrow)"
		" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8))"
		"      AS k(" KEY_COLUMNS ", escrow)"
		" ORDER BY k.idempotency_key COLLATE pg_catalog.\"C\""
		" ON CONFLICT (idempotency_key) DO NOTHING",
		SPI_OK_INSERT, 8, {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INTERVALARRAYOID, BOOLARRAYOID},
		"INSERT INTO ledger.idempotency_keys (" KEY_INSERT_1_1 ")"
		" SELECT k.idempotency_key, k.operation, k.account, k.counter_account, k.amount, k.result"
		" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7))"
		"      AS k(" KEY_COLUMNS ")"
		" ORDER BY k.idempotency_key COLLATE pg_catalog.\"C\""
		" ON CONFLICT (idempotency_key) DO NOTHING",
		"INSERT INTO ledger.idempotency_keys (" KEY_COLUMNS ")"
		" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7))"
		"      AS k(" KEY_COLUMNS ")"
		" ORDER BY k.idempotency_key COLLATE pg_catalog.\"C\""
		" ON CONFLICT (idempotency_key) DO NOTHING"
	},

	/*
	 * By ctid: the rows are locked by this transaction since they were
	 * read, so nobody else can move them, and each account appears once.
	 * A TID scan per row instead of an index probe.
	 */
	[STMT_UPDATE_BALANCES] = {
		"UPDATE ledger.accounts a SET balance = v.balance, held = v.held"
		" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS v(row_ctid, balance, held)"
		" WHERE a.ctid OPERATOR(pg_catalog.=) v.row_ctid",
		SPI_OK_UPDATE, 3, {TIDARRAYOID, INT8ARRAYOID, INT8ARRAYOID},
		"UPDATE ledger.accounts a SET balance = v.balance"
		" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS v(row_ctid, balance, held)"
		" WHERE a.ctid OPERATOR(pg_catalog.=) v.row_ctid"
	},
	/* $8, $9: an escrow entry's id, drawn at admission, and its created_at */
	[STMT_INSERT_ENTRIES] = {
		"INSERT INTO ledger.entries"
		" (entry_id, account_id, amount, balance_after, transfer_id, idempotency_key, hold_id, created_at)"
		" SELECT COALESCE(e.i, pg_catalog.nextval('ledger.entries_entry_id_seq'::pg_catalog.regclass)),"
		"        e.a, e.m, e.b, e.t, e.k, e.h, COALESCE(e.c, $7)"
		" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($8), pg_catalog.unnest($9)) AS e(a, m, b, t, k, h, i, c)",
		SPI_OK_INSERT, 9, {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID},
		"INSERT INTO ledger.entries"
		" (account_id, amount, balance_after, transfer_id, idempotency_key, created_at)"
		" SELECT e.a, e.m, e.b, e.t, e.k, $7 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6)) AS e(a, m, b, t, k, h)",
		"INSERT INTO ledger.entries"
		" (account_id, amount, balance_after, transfer_id, idempotency_key, hold_id, created_at)"
		" SELECT e.*, $7 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6)) AS e"
	},
	[STMT_INSERT_TRANSFERS] = {
		"INSERT INTO ledger.transfers"
		" (transfer_id, from_account_id, to_account_id, amount, idempotency_key, created_at)"
		" SELECT t.*, $6 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)) AS t",
		SPI_OK_INSERT, 6, {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID}
	},

	/*
	 * Holds (holds.c).  A hold's record and its place among the pending
	 * ones are written together, and so are its end and its removal from
	 * them.
	 */
	[STMT_FIND_HOLD] = {
		"SELECT h.account_id, a.name, h.amount, h.expires_at,"
		"       e.status, e.captured, t.name, e.result, h.idempotency_key"
		"  FROM ledger.holds h"
		"  JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) h.account_id"
		"  LEFT JOIN ledger.hold_ends e ON e.hold_id OPERATOR(pg_catalog.=) h.hold_id"
		"  LEFT JOIN ledger.accounts t ON t.account_id OPERATOR(pg_catalog.=) e.to_account_id"
		" WHERE h.hold_id OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {INT8OID}
	},
	[STMT_RESERVED] = {
		"SELECT COALESCE(pg_catalog.sum(amount), 0)::pg_catalog.int8"
		"  FROM ledger.pending_holds"
		" WHERE account_id OPERATOR(pg_catalog.=) $1"
		"   AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) $2)",
		SPI_OK_SELECT, 2, {INT8OID, TIMESTAMPTZOID}
	},
	[STMT_INSERT_HOLDS] = {
		"WITH h AS ("
		"  INSERT INTO ledger.holds"
		"   (hold_id, account_id, amount, expires_at, idempotency_key, created_at)"
		"  SELECT h.*, $6 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)) AS h"
		"  RETURNING hold_id, account_id, amount, expires_at)"
		" INSERT INTO ledger.pending_holds (hold_id, account_id, amount, expires_at)"
		" SELECT * FROM h",
		SPI_OK_INSERT, 6, {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID}
	},
	[STMT_END_HOLDS] = {
		"WITH gone AS ("
		"  DELETE FROM ledger.pending_holds"
		"   WHERE hold_id OPERATOR(pg_catalog.=) ANY ($1))"
		" INSERT INTO ledger.hold_ends"
		"  (hold_id, status, captured, to_account_id, transfer_id, result, ended_at)"
		" SELECT e.*, $7 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6)) AS e",
		SPI_OK_INSERT, 7, {INT8ARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID}
	},

	/* the sweep: pending holds due to expire, oldest first, a bounded number */
	[STMT_DUE_HOLDS] = {
		"SELECT hold_id FROM ledger.pending_holds"
		" WHERE expires_at OPERATOR(pg_catalog.<=) $1"
		" ORDER BY expires_at, hold_id"
		" LIMIT $2",
		SPI_OK_SELECT, 2, {TIMESTAMPTZOID, INT8OID}
	},

	/* a pending hold past its expiry reads "expired" before any sweep */
	[STMT_HOLDS] = {
		"SELECT h.hold_id, h.amount::pg_catalog.int8, e.captured::pg_catalog.int8,"
		"       COALESCE(e.status, CASE WHEN h.expires_at OPERATOR(pg_catalog.<=) $3"
		"                               THEN 'expired' ELSE 'pending' END)::pg_catalog.text,"
		"       h.created_at, h.expires_at, h.idempotency_key::pg_catalog.text"
		"  FROM ledger.holds h"
		"  LEFT JOIN ledger.hold_ends e ON e.hold_id OPERATOR(pg_catalog.=) h.hold_id"
		" WHERE h.account_id OPERATOR(pg_catalog.=) $1"
		" ORDER BY h.hold_id DESC"
		" LIMIT $2",
		SPI_OK_SELECT, 3, {INT8OID, INT8OID, TIMESTAMPTZOID}
	},

	/* keyset paging: before_entry_id NULL is "from the newest" */
	[STMT_HISTORY] = {
		"SELECT entry_id, amount, balance_after, transfer_id, idempotency_key, created_at"
		" FROM ledger.entries"
		" WHERE account_id OPERATOR(pg_catalog.=) $1"
		"   AND entry_id OPERATOR(pg_catalog.<) COALESCE($3, '9223372036854775807'::pg_catalog.int8)"
		" ORDER BY entry_id DESC"
		" LIMIT $2",
		SPI_OK_SELECT, 3, {INT8OID, INT8OID, INT8OID}
	},

	/*
	 * created_at is read under the account's lock (an escrow account's,
	 * under its slot's), so per account it never decreases in entry_id
	 * order: the last entry at or before the time is the newest such,
	 * found scanning back from the newest.  An escrow entry not folded yet
	 * has no balance_after: the balance after it is the row's (folded)
	 * balance plus the unfolded entries up to it, which are the newest.
	 */
	[STMT_BALANCE_AT] = {
		"SELECT COALESCE(e.balance_after,"
		"         (SELECT a.balance FROM ledger.accounts a"
		"           WHERE a.account_id OPERATOR(pg_catalog.=) $1) OPERATOR(pg_catalog.+)"
		"         " UNFOLDED_SUM("$1", " AND u.entry_id OPERATOR(pg_catalog.<=) e.entry_id") ")"
		" FROM ledger.entries e"
		" WHERE e.account_id OPERATOR(pg_catalog.=) $1"
		"   AND e.created_at OPERATOR(pg_catalog.<=) $2"
		" ORDER BY e.entry_id DESC"
		" LIMIT 1",
		SPI_OK_SELECT, 2, {INT8OID, TIMESTAMPTZOID},
		NULL,
		"SELECT balance_after FROM ledger.entries"
		" WHERE account_id OPERATOR(pg_catalog.=) $1"
		"   AND created_at OPERATOR(pg_catalog.<=) $2"
		" ORDER BY entry_id DESC"
		" LIMIT 1"
	},

	/* escrow.c: a slot's state, read in a fresh snapshot */
	[STMT_ESCROW_LOAD] = {
		"SELECT a.balance, a.held, a.escrow, " UNFOLDED_SUM("$1", "") ","
		"       COALESCE((SELECT pg_catalog.max(e.entry_id) FROM ledger.entries e"
		"                  WHERE e.account_id OPERATOR(pg_catalog.=) $1), 0),"
		"       " NEWEST_FOLDED("$1")
		" FROM ledger.accounts a"
		" WHERE a.account_id OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {INT8OID}
	},

	/*
	 * fold.c: when a folder starts, the escrow accounts whose newest entry
	 * is not folded (while it runs, settlement tells it which); then the
	 * fold of one account
	 */
	[STMT_FOLD_DISCOVER] = {
		"SELECT a.account_id FROM ledger.accounts a"
		" WHERE a.escrow"
		"   AND (SELECT e.balance_after IS NULL FROM ledger.entries e"
		"         WHERE e.account_id OPERATOR(pg_catalog.=) a.account_id"
		"         ORDER BY e.entry_id DESC LIMIT 1)",
		SPI_OK_SELECT, 0, {InvalidOid}
	},
	[STMT_FOLD_LOCK] = {
		"SELECT balance FROM ledger.accounts"
		" WHERE account_id OPERATOR(pg_catalog.=) $1"
		" FOR UPDATE SKIP LOCKED",
		SPI_OK_SELECT, 1, {INT8OID}
	},
	[STMT_FOLD_ENTRIES] = {
		"SELECT entry_id, amount::pg_catalog.int8 FROM ledger.entries"
		" WHERE account_id OPERATOR(pg_catalog.=) $1"
		"   AND entry_id OPERATOR(pg_catalog.>) " NEWEST_FOLDED("$1")
		"   AND entry_id OPERATOR(pg_catalog.<) $2"
		"   AND balance_after IS NULL"
		" ORDER BY entry_id",
		SPI_OK_SELECT, 2, {INT8OID, INT8OID}
	},
	[STMT_FOLD_ENTRIES_SET] = {
		"UPDATE ledger.entries e SET balance_after = v.b"
		" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS v(id, b)"
		" WHERE e.account_id OPERATOR(pg_catalog.=) $1"
		"   AND e.entry_id OPERATOR(pg_catalog.=) v.id"
		"   AND e.entry_id OPERATOR(pg_catalog.>=) $4"
		"   AND e.entry_id OPERATOR(pg_catalog.<=) $5"
		"   AND e.balance_after IS NULL",
		SPI_OK_UPDATE, 5, {INT8OID, INT8ARRAYOID, INT8ARRAYOID, INT8OID, INT8OID}
	},
	[STMT_FOLD_BALANCE] = {
		"UPDATE ledger.accounts SET balance = $2"
		" WHERE account_id OPERATOR(pg_catalog.=) $1",
		SPI_OK_UPDATE, 2, {INT8OID, INT8OID}
	},

	/* mode.c */
	[STMT_MODE_LOCK] = {
		"SELECT account_id, escrow FROM ledger.accounts"
		" WHERE name OPERATOR(pg_catalog.=) $1"
		" FOR UPDATE",
		SPI_OK_SELECT, 1, {TEXTOID}
	},
	[STMT_MODE_SET] = {
		"UPDATE ledger.accounts SET escrow = $2"
		" WHERE account_id OPERATOR(pg_catalog.=) $1",
		SPI_OK_UPDATE, 2, {INT8OID, BOOLOID}
	},
	[STMT_MODE_READ] = {
		"SELECT escrow FROM ledger.accounts WHERE name OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {TEXTOID}
	},

	/*
	 * transfer_out.c: a cross-shard transfer's intent on its source shard
	 * (1.4), by its key.
	 */
	[STMT_FIND_TRANSFER_OUT] = {
		"SELECT t.transfer_id, a.name, t.to_account, t.amount, t.hold_id"
		"  FROM ledger.transfers_out t"
		"  JOIN ledger.accounts a ON a.account_id OPERATOR(pg_catalog.=) t.from_account_id"
		" WHERE t.idempotency_key OPERATOR(pg_catalog.=) $1",
		SPI_OK_SELECT, 1, {TEXTOID}
	},
	[STMT_INSERT_TRANSFER_OUT] = {
		"INSERT INTO ledger.transfers_out"
		" (transfer_id, idempotency_key, hold_id, from_account_id, to_account, amount, created_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7)"
		" ON CONFLICT (idempotency_key) DO NOTHING"
		" RETURNING transfer_id",
		SPI_OK_INSERT_RETURNING, 7, {INT8OID, TEXTOID, INT8OID, INT8OID, TEXTOID, INT8OID, TIMESTAMPTZOID}
	},

	[STMT_VERIFY] = {
		VERIFY_HEAD VERIFY_CHECKS(VERIFY_HOLD_KEY, VERIFY_FOLDED, VERIFY_ESCROW_KEY_BALANCE)
		VERIFY_HOLD_CHECKS VERIFY_ESCROW_CHECKS VERIFY_TAIL,
		SPI_OK_SELECT, 0, {InvalidOid},
		VERIFY_HEAD VERIFY_CHECKS("false", VERIFY_ALL_FOLDED, VERIFY_KEY_BALANCE) VERIFY_TAIL,
		VERIFY_HEAD VERIFY_CHECKS(VERIFY_HOLD_KEY, VERIFY_ALL_FOLDED, VERIFY_KEY_BALANCE)
		VERIFY_HOLD_CHECKS VERIFY_TAIL
	},
};

/* The statements that read whole tables on purpose: planned as they like. */
static bool
statement_scans(LedgerStatement stmt)
{
	return stmt == STMT_VERIFY || stmt == STMT_FOLD_DISCOVER;
}

/* The statements that write: the guard (guard.c) lets them through. */
static bool
statement_writes(LedgerStatement stmt)
{
	switch (stmt)
	{
		case STMT_OPEN_ACCOUNT:
		case STMT_CLAIM_KEY:
		case STMT_CLAIM_KEYS:
		case STMT_UPDATE_BALANCES:
		case STMT_INSERT_ENTRIES:
		case STMT_INSERT_TRANSFERS:
		case STMT_INSERT_HOLDS:
		case STMT_END_HOLDS:
		case STMT_FOLD_ENTRIES_SET:
		case STMT_FOLD_BALANCE:
		case STMT_MODE_SET:
		case STMT_INSERT_TRANSFER_OUT:
			return true;
		default:
			return false;
	}
}

static SPIPlanPtr plans[LEDGER_STATEMENT_COUNT];
static int	plans_version = 0;

/* The version of the ledger's tables: 11, 12 (holds) or 13 (escrow mode). */
static int
tables_version(void)
{
	const LedgerRelations *r = ledger_relations();

	return r->escrow ? 13 : OidIsValid(r->hold_sequence) ? 12 : 11;
}

static SPIPlanPtr
statement_plan(LedgerStatement stmt)
{
	const StatementDefinition *def = &statements[stmt];
	int			version = tables_version();
	const char *sql = def->sql;
	SPIPlanPtr	plan;

	/* the extension was updated (or dropped) under us: prepare anew */
	if (version != plans_version)
	{
		for (int s = 0; s < LEDGER_STATEMENT_COUNT; s++)
			if (plans[s] != NULL)
			{
				SPI_freeplan(plans[s]);
				plans[s] = NULL;
			}
		plans_version = version;
	}
	if (plans[stmt] != NULL)
		return plans[stmt];

	if (version < 13 && def->sql_1_2 != NULL)
		sql = def->sql_1_2;
	if (version < 12 && def->sql_1_1 != NULL)
		sql = def->sql_1_1;
	plan = SPI_prepare(sql, def->nargs, (Oid *) def->argtypes);
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
	SPIPlanPtr	plan = statement_plan(stmt);
	int			rc;
	int			guc_level = -1;

	if (!statement_scans(stmt))
	{
		/* undone by AtEOXact_GUC below, or by the abort of an error */
		guc_level = NewGUCNestLevel();
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	if (!statement_writes(stmt))
		rc = SPI_execute_plan(plan, values, nulls, read_only, 0);
	else
	{
		int			saved = ledger_enter_write();

		PG_TRY();
		{
			rc = SPI_execute_plan(plan, values, nulls, read_only, 0);
		}
		PG_FINALLY();
		{
			ledger_leave_write(saved);
		}
		PG_END_TRY();
	}
	if (guc_level >= 0)
		AtEOXact_GUC(true, guc_level);
	if (rc != statements[stmt].expected)
		elog(ERROR, "ledger: statement %d failed: %s",
			 (int) stmt, SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/* A boolean column (1-based) of the last result; NULL reads false. */
bool
ledger_get_bool(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return !isnull && DatumGetBool(d);
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
