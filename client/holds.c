/*-------------------------------------------------------------------------
 *
 * holds.c
 *	  Holds (extension 1.2): ledger_hold, ledger_capture, ledger_release,
 *	  ledger_available and ledger_holds, one call each.
 *
 * Hold, capture and release are writes, retried and reported by the rules
 * of outcome.c like every posting.  A hold carries an idempotency key for
 * all its attempts, exactly like a debit.  A capture or a release carries
 * none: its hold id is its key.  The server answers a capture repeated
 * with the same arguments with the first result, and a release repeated
 * with false, so an attempt that committed unseen is never applied twice
 * and a refusal (LG006, LG007, ...) after it is still the request's own.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"

/* Room for an int64 in decimal: sign, 19 digits, NUL. */
#define INT64_BUFSIZE 24

LedgerStatus
ledger_hold(LedgerConn *conn, const char *account, int64_t amount,
			int64_t expires_in_ms, const char *idempotency_key, int64_t *hold_id)
{
	char		amount_text[INT64_BUFSIZE];
	char		expiry_text[INT64_BUFSIZE];
	const char *values[4];
	PGresult   *res;
	LedgerStatus status;
	char		advice[512];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (!ledger__choose_key(conn, idempotency_key))
		return LEDGER_CLIENT_ERROR;
	snprintf(amount_text, sizeof(amount_text), "%" PRId64, amount);
	snprintf(expiry_text, sizeof(expiry_text), "%" PRId64, expires_in_ms);
	values[0] = account;
	values[1] = amount_text;
	values[2] = expires_in_ms != 0 ? expiry_text : NULL;
	values[3] = conn->last_key;
	status = ledger__call(conn, LEDGER_STMT_HOLD, values, true, &res);
	return status == LEDGER_OK
		? ledger__single_int64(conn, res, true,
							   ledger__advice(conn, LEDGER_STMT_HOLD, advice, sizeof(advice)),
							   hold_id)
		: status;
}

LedgerStatus
ledger_capture(LedgerConn *conn, int64_t hold_id, int64_t amount, const char *to_account,
			   int64_t *new_balance)
{
	char		id_text[INT64_BUFSIZE];
	char		amount_text[INT64_BUFSIZE];
	const char *values[3];
	PGresult   *res;
	LedgerStatus status;
	char		advice[512];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	snprintf(id_text, sizeof(id_text), "%" PRId64, hold_id);
	snprintf(amount_text, sizeof(amount_text), "%" PRId64, amount);
	values[0] = id_text;
	values[1] = amount != 0 ? amount_text : NULL;
	values[2] = to_account;
	status = ledger__call(conn, LEDGER_STMT_CAPTURE, values, true, &res);
	return status == LEDGER_OK
		? ledger__single_int64(conn, res, true,
							   ledger__advice(conn, LEDGER_STMT_CAPTURE, advice, sizeof(advice)),
							   new_balance)
		: status;
}

LedgerStatus
ledger_release(LedgerConn *conn, int64_t hold_id, int *released)
{
	char		id_text[INT64_BUFSIZE];
	const char *values[1];
	PGresult   *res;
	LedgerStatus status;
	const char *value;
	bool		ok;
	char		advice[512];

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	snprintf(id_text, sizeof(id_text), "%" PRId64, hold_id);
	values[0] = id_text;
	status = ledger__call(conn, LEDGER_STMT_RELEASE, values, true, &res);
	if (status != LEDGER_OK)
		return status;

	/* one boolean; a reply that cannot be read leaves the outcome unknown */
	ok = PQntuples(res) == 1 && PQnfields(res) == 1 && !PQgetisnull(res, 0, 0);
	value = ok ? PQgetvalue(res, 0, 0) : "";
	ok = ok && (strcmp(value, "t") == 0 || strcmp(value, "f") == 0);
	if (ok && released != NULL)
		*released = strcmp(value, "t") == 0;
	PQclear(res);
	if (ok)
		return LEDGER_OK;
	ledger__set_error(conn, "unexpected reply from the server: expected one boolean",
					  NULL, NULL, NULL);
	return ledger__unknown_outcome(conn, "the request",
								   ledger__advice(conn, LEDGER_STMT_RELEASE, advice,
												  sizeof(advice)));
}

LedgerStatus
ledger_available(LedgerConn *conn, const char *account, int64_t *available)
{
	const char *values[1];
	PGresult   *res;
	LedgerStatus status;

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	values[0] = account;
	status = ledger__call(conn, LEDGER_STMT_AVAILABLE, values, false, &res);
	return status == LEDGER_OK
		? ledger__single_int64(conn, res, false, NULL, available)
		: status;
}

/*
 * The holds as one allocation: the struct, its array, then the strings
 * (statuses and keys), like ledger_history.
 */
LedgerStatus
ledger_holds(LedgerConn *conn, const char *account, int max_rows, LedgerHolds **holds)
{
	char		max_text[INT64_BUFSIZE];
	const char *values[2];
	PGresult   *res;
	LedgerStatus status;
	LedgerHolds *h;
	size_t		n;
	char	   *pool;
	int			row;

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (holds == NULL)
		return ledger__client_error(conn, "ledger_holds: holds must not be NULL");
	*holds = NULL;
	snprintf(max_text, sizeof(max_text), "%d", max_rows);
	values[0] = account;
	values[1] = max_text;
	status = ledger__call(conn, LEDGER_STMT_HOLDS, values, false, &res);
	if (status != LEDGER_OK)
		return status;
	if (PQnfields(res) != 7)
	{
		PQclear(res);
		ledger__set_error(conn, "unexpected reply from the server: expected 7 columns",
						  NULL, NULL, NULL);
		return LEDGER_SERVER_ERROR;
	}

	n = (size_t) PQntuples(res);
	h = malloc(sizeof(LedgerHolds) + n * sizeof(LedgerHold) +
			   ledger__strings_size(res, 3) + ledger__strings_size(res, 6));
	if (h == NULL)
	{
		PQclear(res);
		return ledger__client_error(conn, "out of memory");
	}
	h->n_holds = n;
	h->holds = (LedgerHold *) (h + 1);
	pool = (char *) (h->holds + n);
	for (row = 0; row < (int) n; row++)
	{
		LedgerHold *hold = &h->holds[row];

		if (!ledger__parse_int64(conn, res, row, 0, &hold->hold_id) ||
			!ledger__parse_int64(conn, res, row, 1, &hold->amount) ||
			!ledger__parse_int64(conn, res, row, 2, &hold->captured) ||
			!ledger__parse_int64(conn, res, row, 4, &hold->created_at_us) ||
			!ledger__parse_int64(conn, res, row, 5, &hold->expires_at_us) ||
			PQgetisnull(res, row, 3))
		{
			if (PQgetisnull(res, row, 3))
				ledger__set_error(conn, "unexpected reply from the server: a hold without a status",
								  NULL, NULL, NULL);
			free(h);
			PQclear(res);
			return LEDGER_SERVER_ERROR;
		}
		hold->has_expiry = !PQgetisnull(res, row, 5);
		hold->status = ledger__copy_string(res, row, 3, &pool);
		hold->idempotency_key = ledger__copy_string(res, row, 6, &pool);
	}
	PQclear(res);
	*holds = h;
	return LEDGER_OK;
}

void
ledger_holds_free(LedgerHolds *holds)
{
	free(holds);
}
