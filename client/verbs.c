/*-------------------------------------------------------------------------
 *
 * verbs.c
 *	  The seven verbs of the SQL API, one call each, and their results.
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

static bool
begin(LedgerConn *conn)
{
	if (conn == NULL)
		return false;
	ledger__begin_call(conn);
	return true;
}

static LedgerStatus
client_error(LedgerConn *conn, const char *message)
{
	ledger__set_error(conn, message, NULL, NULL, NULL);
	return LEDGER_CLIENT_ERROR;
}

/* Parse one int64 column; false (and a message) if it is not one. */
static bool
parse_int64(LedgerConn *conn, const PGresult *res, int row, int col, int64_t *out)
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
static LedgerStatus
single_int64(LedgerConn *conn, PGresult *res, bool is_write, const char *advice,
			 int64_t *out)
{
	int64_t		v;
	bool		ok = PQntuples(res) == 1 && PQnfields(res) == 1 && !PQgetisnull(res, 0, 0);

	if (!ok)
		ledger__set_error(conn, "unexpected reply from the server: expected one value",
						  NULL, NULL, NULL);
	ok = ok && parse_int64(conn, res, 0, 0, &v);
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

	if (!begin(conn))
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
		? single_int64(conn, res, true,
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

	if (!begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (!ledger__choose_key(conn, key))
		return LEDGER_CLIENT_ERROR;
	snprintf(amount_text, sizeof(amount_text), "%" PRId64, amount);
	values[0] = account;
	values[1] = amount_text;
	values[2] = conn->last_key;
	status = ledger__call(conn, stmt, values, true, &res);
	return status == LEDGER_OK
		? single_int64(conn, res, true, ledger__advice(conn, stmt, advice, sizeof(advice)), out)
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

	if (!begin(conn))
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
		? single_int64(conn, res, true, ledger__advice(conn, LEDGER_STMT_TRANSFER, advice, sizeof(advice)),
					   transfer_id)
		: status;
}

LedgerStatus
ledger_balance(LedgerConn *conn, const char *account, int64_t *balance)
{
	const char *values[1];
	PGresult   *res;
	LedgerStatus status;

	if (!begin(conn))
		return LEDGER_CLIENT_ERROR;
	values[0] = account;
	status = ledger__call(conn, LEDGER_STMT_BALANCE, values, false, &res);
	return status == LEDGER_OK ? single_int64(conn, res, false, NULL, balance) : status;
}

/*
 * Results are one allocation each: the struct, its array, then the strings,
 * so that one free() in ledger_history_free releases everything.
 */
static size_t
strings_size(const PGresult *res, int col)
{
	size_t		size = 0;
	int			row;

	for (row = 0; row < PQntuples(res); row++)
		if (!PQgetisnull(res, row, col))
			size += (size_t) PQgetlength(res, row, col) + 1;
	return size;
}

static const char *
copy_string(const PGresult *res, int row, int col, char **pool)
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

LedgerStatus
ledger_history(LedgerConn *conn, const char *account, int max_rows,
			   LedgerHistory **history)
{
	char		max_text[INT64_BUFSIZE];
	const char *values[2];
	PGresult   *res;
	LedgerStatus status;
	LedgerHistory *h;
	size_t		n;
	char	   *pool;
	int			row;

	if (!begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (history == NULL)
		return client_error(conn, "ledger_history: history must not be NULL");
	*history = NULL;
	snprintf(max_text, sizeof(max_text), "%d", max_rows);
	values[0] = account;
	values[1] = max_text;
	status = ledger__call(conn, LEDGER_STMT_HISTORY, values, false, &res);
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
	h = malloc(sizeof(LedgerHistory) + n * sizeof(LedgerEntry) + strings_size(res, 4));
	if (h == NULL)
	{
		PQclear(res);
		return client_error(conn, "out of memory");
	}
	h->n_entries = n;
	h->entries = (LedgerEntry *) (h + 1);
	pool = (char *) (h->entries + n);
	for (row = 0; row < (int) n; row++)
	{
		LedgerEntry *e = &h->entries[row];

		if (!parse_int64(conn, res, row, 0, &e->entry_id) ||
			!parse_int64(conn, res, row, 1, &e->amount) ||
			!parse_int64(conn, res, row, 2, &e->balance_after) ||
			!parse_int64(conn, res, row, 3, &e->transfer_id) ||
			!parse_int64(conn, res, row, 5, &e->created_at_us))
		{
			free(h);
			PQclear(res);
			return LEDGER_SERVER_ERROR;
		}
		e->idempotency_key = copy_string(res, row, 4, &pool);
	}
	PQclear(res);
	*history = h;
	return LEDGER_OK;
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

	if (!begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (audit == NULL)
		return client_error(conn, "ledger_verify: audit must not be NULL");
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
			   strings_size(res, 0) + strings_size(res, 1));
	if (a == NULL)
	{
		PQclear(res);
		return client_error(conn, "out of memory");
	}
	a->n_problems = n;
	a->problems = (LedgerProblem *) (a + 1);
	pool = (char *) (a->problems + n);
	for (row = 0; row < (int) n; row++)
	{
		a->problems[row].account = copy_string(res, row, 0, &pool);
		a->problems[row].problem = copy_string(res, row, 1, &pool);
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
