/*-------------------------------------------------------------------------
 *
 * verbs.c
 *	  The seven verbs of the SQL API, one call each, and their results;
 *	  the point-in-time balance and history paging of 1.2.  (Holds are in
 *	  holds.c.)
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"

/* Room for an int64 in decimal: sign, 19 digits, NUL. */
#define INT64_BUFSIZE 24

/* Every verb starts here; false for a NULL handle (LEDGER_CLIENT_ERROR). */
bool
ledger__begin(LedgerConn *conn)
{
	if (conn == NULL)
		return false;
	ledger__begin_call(conn);
	return true;
}

LedgerStatus
ledger__client_error(LedgerConn *conn, const char *message)
{
	ledger__set_error(conn, message, NULL, NULL, NULL);
	return LEDGER_CLIENT_ERROR;
}

/* Parse one int64 column; false (and a message) if it is not one. */
bool
ledger__parse_int64(LedgerConn *conn, const PGresult *res, int row, int col,
					int64_t *out)
{
	const char *text;
	char	   *end;
	long long	v;

	if (PQgetisnull(res, row, col))
	{
		*out = 0;
		return true;
	}
	text = PQgetvalue(res, row, col);
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
	{
		ledger__set_error(conn, "unexpected reply from the server: not an integer",
						  NULL, NULL, NULL);
		return false;
	}
	*out = (int64_t) v;
	return true;
}

/*
 * The single bigint a posting or balance returns.  A write's reply that
 * cannot be read leaves its outcome unknown: it did commit, or not.
 */
LedgerStatus
ledger__single_int64(LedgerConn *conn, PGresult *res, bool is_write,
					 const char *advice, int64_t *out)
{
	int64_t		v;
	bool		ok = PQntuples(res) == 1 && PQnfields(res) == 1 && !PQgetisnull(res, 0, 0);

	if (!ok)
		ledger__set_error(conn, "unexpected reply from the server: expected one value",
						  NULL, NULL, NULL);
	ok = ok && ledger__parse_int64(conn, res, 0, 0, &v);
	PQclear(res);
	if (!ok)
		return is_write ? ledger__unknown_outcome(conn, "the request", advice)
			: LEDGER_SERVER_ERROR;
	if (out != NULL)
		*out = v;
	return LEDGER_OK;
}

LedgerStatus
ledger_open_account(LedgerConn *conn, const char *account, const char *currency,
					int64_t min_balance, int64_t *account_id)
{
	char		floor[INT64_BUFSIZE];
	const char *values[3];
	PGresult   *res;
	LedgerStatus status;
	char		advice[512];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	snprintf(floor, sizeof(floor), "%" PRId64, min_balance);
	values[0] = account;
	values[1] = currency != NULL ? currency : "XXX";
	values[2] = min_balance == LEDGER_NO_FLOOR ? NULL : floor;

	/*
	 * Opening is idempotent by itself (identical parameters return the same
	 * id), so it retries safely without a key.
	 */
	status = ledger__call(conn, LEDGER_STMT_OPEN, values, true, &res);
	return status == LEDGER_OK
		? ledger__single_int64(conn, res, true,
							   ledger__advice(conn, LEDGER_STMT_OPEN, advice, sizeof(advice)),
							   account_id)
		: status;
}

static LedgerStatus
posting(LedgerConn *conn, LedgerStmt stmt, const char *account, int64_t amount,
		const char *key, int64_t *out)
{
	char		amount_text[INT64_BUFSIZE];
	const char *values[3];
	PGresult   *res;
	LedgerStatus status;
	char		advice[512];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (!ledger__choose_key(conn, key))
		return LEDGER_CLIENT_ERROR;
	snprintf(amount_text, sizeof(amount_text), "%" PRId64, amount);
	values[0] = account;
	values[1] = amount_text;
	values[2] = conn->last_key;
	status = ledger__call(conn, stmt, values, true, &res);
	return status == LEDGER_OK
		? ledger__single_int64(conn, res, true,
							   ledger__advice(conn, stmt, advice, sizeof(advice)), out)
		: status;
}

LedgerStatus
ledger_credit(LedgerConn *conn, const char *account, int64_t amount,
			  const char *idempotency_key, int64_t *new_balance)
{
	return posting(conn, LEDGER_STMT_CREDIT, account, amount, idempotency_key,
				   new_balance);
}

LedgerStatus
ledger_debit(LedgerConn *conn, const char *account, int64_t amount,
			 const char *idempotency_key, int64_t *new_balance)
{
	return posting(conn, LEDGER_STMT_DEBIT, account, amount, idempotency_key,
				   new_balance);
}

LedgerStatus
ledger_transfer(LedgerConn *conn, const char *from_account, const char *to_account,
				int64_t amount, const char *idempotency_key, int64_t *transfer_id)
{
	char		amount_text[INT64_BUFSIZE];
	const char *values[4];
	PGresult   *res;
	LedgerStatus status;
	char		advice[512];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (!ledger__choose_key(conn, idempotency_key))
		return LEDGER_CLIENT_ERROR;
	snprintf(amount_text, sizeof(amount_text), "%" PRId64, amount);
	values[0] = from_account;
	values[1] = to_account;
	values[2] = amount_text;
	values[3] = conn->last_key;
	status = ledger__call(conn, LEDGER_STMT_TRANSFER, values, true, &res);
	return status == LEDGER_OK
		? ledger__single_int64(conn, res, true,
							   ledger__advice(conn, LEDGER_STMT_TRANSFER, advice, sizeof(advice)),
							   transfer_id)
		: status;
}

LedgerStatus
ledger_balance(LedgerConn *conn, const char *account, int64_t *balance)
{
	const char *values[1];
	PGresult   *res;
	LedgerStatus status;

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	values[0] = account;
	status = ledger__call(conn, LEDGER_STMT_BALANCE, values, false, &res);
	return status == LEDGER_OK ? ledger__single_int64(conn, res, false, NULL, balance) : status;
}

LedgerStatus
ledger_balance_at(LedgerConn *conn, const char *account, int64_t at_us, int64_t *balance)
{
	char		at_text[INT64_BUFSIZE];
	const char *values[2];
	PGresult   *res;
	LedgerStatus status;

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	snprintf(at_text, sizeof(at_text), "%" PRId64, at_us);
	values[0] = account;
	values[1] = at_text;
	status = ledger__call(conn, LEDGER_STMT_BALANCE_AT, values, false, &res);
	return status == LEDGER_OK ? ledger__single_int64(conn, res, false, NULL, balance) : status;
}

/*
 * Results are one allocation each: the struct, its array, then the strings,
 * so that one free() in ledger_history_free (ledger_holds_free,
 * ledger_audit_free) releases everything.  The bytes the strings of column
 * col need, NULs included.
 */
size_t
ledger__strings_size(const PGresult *res, int col)
{
	size_t		size = 0;
	int			row;

	for (row = 0; row < PQntuples(res); row++)
		if (!PQgetisnull(res, row, col))
			size += (size_t) PQgetlength(res, row, col) + 1;
	return size;
}

/* Copy a text column into *pool and advance it; NULL for SQL NULL. */
const char *
ledger__copy_string(const PGresult *res, int row, int col, char **pool)
{
	char	   *s = *pool;
	size_t		len;

	if (PQgetisnull(res, row, col))
		return NULL;
	len = (size_t) PQgetlength(res, row, col);
	memcpy(s, PQgetvalue(res, row, col), len);
	s[len] = '\0';
	*pool += len + 1;
	return s;
}

/*
 * ledger_history and ledger_history_before: the statement's rows as one
 * allocation -- the struct, its array, then the strings -- so that one
 * free() in ledger_history_free releases everything.
 */
static LedgerStatus
history(LedgerConn *conn, LedgerStmt stmt, const char *const *values,
		LedgerHistory **history_out)
{
	PGresult   *res;
	LedgerStatus status;
	LedgerHistory *h;
	size_t		n;
	char	   *pool;
	int			row;

	status = ledger__call(conn, stmt, values, false, &res);
	if (status != LEDGER_OK)
		return status;
	if (PQnfields(res) != 6)
	{
		PQclear(res);
		ledger__set_error(conn, "unexpected reply from the server: expected 6 columns",
						  NULL, NULL, NULL);
		return LEDGER_SERVER_ERROR;
	}

	n = (size_t) PQntuples(res);
	h = malloc(sizeof(LedgerHistory) + n * sizeof(LedgerEntry) + ledger__strings_size(res, 4));
	if (h == NULL)
	{
		PQclear(res);
		return ledger__client_error(conn, "out of memory");
	}
	h->n_entries = n;
	h->entries = (LedgerEntry *) (h + 1);
	pool = (char *) (h->entries + n);
	for (row = 0; row < (int) n; row++)
	{
		LedgerEntry *e = &h->entries[row];

		if (!ledger__parse_int64(conn, res, row, 0, &e->entry_id) ||
			!ledger__parse_int64(conn, res, row, 1, &e->amount) ||
			!(PQgetisnull(res, row, 2)
			  ? (e->balance_after = LEDGER_NOT_FOLDED, true)
			  : ledger__parse_int64(conn, res, row, 2, &e->balance_after)) ||
			!ledger__parse_int64(conn, res, row, 3, &e->transfer_id) ||
			!ledger__parse_int64(conn, res, row, 5, &e->created_at_us))
		{
			free(h);
			PQclear(res);
			return LEDGER_SERVER_ERROR;
		}
		e->idempotency_key = ledger__copy_string(res, row, 4, &pool);
	}
	PQclear(res);
	*history_out = h;
	return LEDGER_OK;
}

LedgerStatus
ledger_history(LedgerConn *conn, const char *account, int max_rows,
			   LedgerHistory **history_out)
{
	char		max_text[INT64_BUFSIZE];
	const char *values[2];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (history_out == NULL)
		return ledger__client_error(conn, "ledger_history: history must not be NULL");
	*history_out = NULL;
	snprintf(max_text, sizeof(max_text), "%d", max_rows);
	values[0] = account;
	values[1] = max_text;
	return history(conn, LEDGER_STMT_HISTORY, values, history_out);
}

LedgerStatus
ledger_history_before(LedgerConn *conn, const char *account, int max_rows,
					  int64_t before_entry_id, LedgerHistory **history_out)
{
	char		max_text[INT64_BUFSIZE];
	char		before_text[INT64_BUFSIZE];
	const char *values[3];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (history_out == NULL)
		return ledger__client_error(conn, "ledger_history_before: history must not be NULL");
	*history_out = NULL;
	snprintf(max_text, sizeof(max_text), "%d", max_rows);
	snprintf(before_text, sizeof(before_text), "%" PRId64, before_entry_id);
	values[0] = account;
	values[1] = max_text;
	values[2] = before_entry_id != 0 ? before_text : NULL;
	return history(conn, LEDGER_STMT_HISTORY_BEFORE, values, history_out);
}

void
ledger_history_free(LedgerHistory *history)
{
	free(history);
}

LedgerStatus
ledger_verify(LedgerConn *conn, LedgerAudit **audit)
{
	PGresult   *res;
	LedgerStatus status;
	LedgerAudit *a;
	size_t		n;
	char	   *pool;
	int			row;

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (audit == NULL)
		return ledger__client_error(conn, "ledger_verify: audit must not be NULL");
	*audit = NULL;
	status = ledger__call(conn, LEDGER_STMT_VERIFY, NULL, false, &res);
	if (status != LEDGER_OK)
		return status;
	if (PQnfields(res) != 2)
	{
		PQclear(res);
		ledger__set_error(conn, "unexpected reply from the server: expected 2 columns",
						  NULL, NULL, NULL);
		return LEDGER_SERVER_ERROR;
	}

	n = (size_t) PQntuples(res);
	a = malloc(sizeof(LedgerAudit) + n * sizeof(LedgerProblem) +
			   ledger__strings_size(res, 0) + ledger__strings_size(res, 1));
	if (a == NULL)
	{
		PQclear(res);
		return ledger__client_error(conn, "out of memory");
	}
	a->n_problems = n;
	a->problems = (LedgerProblem *) (a + 1);
	pool = (char *) (a->problems + n);
	for (row = 0; row < (int) n; row++)
	{
		a->problems[row].account = ledger__copy_string(res, row, 0, &pool);
		a->problems[row].problem = ledger__copy_string(res, row, 1, &pool);
		if (a->problems[row].problem == NULL)
			a->problems[row].problem = "";
	}
	PQclear(res);
	*audit = a;
	return LEDGER_OK;
}

void
ledger_audit_free(LedgerAudit *audit)
{
	free(audit);
}
