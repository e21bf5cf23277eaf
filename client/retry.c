/*-------------------------------------------------------------------------
 *
 * retry.c
 *	  Safe automatic retry: what a failed attempt means, generated
 *	  idempotency keys, backoff, and the retry loop of single calls.
 *
 * A posting is retried only with the idempotency key of its first attempt,
 * so however many attempts reach the server, at most one commits and the
 * others return its result.  What the caller must be told depends on
 * whether an attempt might have committed:
 *
 *   not sent (no connection, prepare failed)   nothing happened
 *   rolled back by the server (40001, 40P01)   nothing happened
 *   sent, then the connection was lost         it may have committed
 *
 * so when the attempts run out after a lost connection, a write returns
 * LEDGER_UNKNOWN_OUTCOME (the key stays readable for a later retry) and a
 * read, which has no outcome to lose, LEDGER_CONNECTION_FAILED.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ledger_int.h"

/* n bytes from the kernel's CSPRNG: getrandom(2), else /dev/urandom. */
bool
ledger__random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	size_t		got = 0;
	int			fd;

	while (got < n)
	{
		ssize_t		r = getrandom(p + got, n - got, 0);

		if (r > 0)
			got += (size_t) r;
		else if (r < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	if (got == n)
		return true;

	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	while (got < n)
	{
		ssize_t		r = read(fd, p + got, n - got);

		if (r > 0)
			got += (size_t) r;
		else if (r < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	close(fd);
	return got == n;
}

/* A fresh key: 128 random bits as 32 lower-case hex digits. */
bool
ledger__generate_key(char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bits[LEDGER_GENERATED_KEY_LEN / 2];
	size_t		i;

	if (size < LEDGER_GENERATED_KEY_LEN + 1 || !ledger__random_bytes(bits, sizeof(bits)))
		return false;
	for (i = 0; i < sizeof(bits); i++)
	{
		buf[2 * i] = hex[bits[i] >> 4];
		buf[2 * i + 1] = hex[bits[i] & 0x0f];
	}
	buf[LEDGER_GENERATED_KEY_LEN] = '\0';
	return true;
}

LedgerStatus
ledger_generate_key(char *buf, size_t size)
{
	if (buf == NULL || size < LEDGER_KEY_BUFSIZE)
		return LEDGER_CLIENT_ERROR;
	return ledger__generate_key(buf, size) ? LEDGER_OK : LEDGER_CLIENT_ERROR;
}

/*
 * Sleep before attempt number "attempt" (>= 2): base * 2^(attempt-2),
 * capped, with "equal jitter" (a random point in the upper half) so that
 * clients cut off together do not come back in lockstep.
 */
void
ledger__backoff(LedgerConn *conn, int attempt)
{
	long		ms = conn->backoff_base_ms;
	struct timespec ts;
	int			i;

	for (i = 2; i < attempt && ms < conn->backoff_max_ms; i++)
		ms *= 2;
	if (ms > conn->backoff_max_ms)
		ms = conn->backoff_max_ms;
	if (ms <= 0)
		return;

	conn->rng ^= conn->rng << 13;
	conn->rng ^= conn->rng >> 7;
	conn->rng ^= conn->rng << 17;
	ms = ms / 2 + (long) (conn->rng % (uint64_t) (ms / 2 + 1));

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Class 08 (connection exception) and 57P01-57P03 (server going away). */
static bool
sqlstate_means_lost(const char *sqlstate)
{
	return sqlstate != NULL &&
		(strncmp(sqlstate, "08", 2) == 0 ||
		 strcmp(sqlstate, "57P01") == 0 ||
		 strcmp(sqlstate, "57P02") == 0 ||
		 strcmp(sqlstate, "57P03") == 0);
}

/*
 * What one finished command means.  Sets *status and the connection's error
 * fields; the caller still owns (and clears) res.
 */
LedgerAttempt
ledger__classify(LedgerConn *conn, const PGresult *res, LedgerStatus *status)
{
	const char *sqlstate;

	if (res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
						PQresultStatus(res) == PGRES_COMMAND_OK))
	{
		*status = LEDGER_OK;
		return ATTEMPT_DONE;
	}

	sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (PQstatus(conn->pg) == CONNECTION_BAD || sqlstate_means_lost(sqlstate))
	{
		if (res != NULL && PQresultErrorMessage(res)[0] != '\0')
			ledger__set_error_from_result(conn, res);
		else
			ledger__set_connection_error(conn, "connection lost");
		*status = LEDGER_CONNECTION_FAILED;
		return ATTEMPT_RETRY_LOST;
	}
	if (res == NULL)
	{
		/* libpq could not even build the request: out of memory */
		ledger__set_connection_error(conn, "out of memory");
		*status = LEDGER_CLIENT_ERROR;
		return ATTEMPT_DONE;
	}

	ledger__set_error_from_result(conn, res);
	if (sqlstate != NULL &&
		(strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0))
	{
		*status = LEDGER_SERVER_ERROR;
		return ATTEMPT_RETRY_ROLLED_BACK;
	}
	*status = ledger__status_of_sqlstate(sqlstate);
	return ATTEMPT_DONE;
}

/*
 * Turn the last error into the message of an unknown outcome, with what
 * makes it safe to ask again: a posting's key, a server batch's item keys,
 * or nothing at all for an open, which is idempotent by itself.
 */
static void
set_unknown_outcome(LedgerConn *conn, LedgerStmt stmt)
{
	char		advice[512];
	char		buf[1024];

	if (stmt == LEDGER_STMT_DEBIT_BATCH || stmt == LEDGER_STMT_TRANSFER_BATCH)
		snprintf(advice, sizeof(advice),
				 "the batch committed whole or not at all: send the same items again"
				 " with the keys of this call (each item's key)");
	else if (stmt == LEDGER_STMT_OPEN)
		snprintf(advice, sizeof(advice),
				 "opening again with the same parameters is safe");
	else
		snprintf(advice, sizeof(advice), "retry with the same idempotency key (%s)",
				 conn->last_key != NULL ? conn->last_key : "none");
	snprintf(buf, sizeof(buf),
			 "the outcome is unknown: the request was sent but no answer came back"
			 " after %d attempts; %s. Last error: %s",
			 conn->last_attempts, advice, ledger_error_message(conn));
	ledger__set_error(conn, buf, NULL, NULL, NULL);
}

/*
 * Run one prepared statement with the retry policy.  On LEDGER_OK *result is
 * the tuples result, which the caller clears.  is_write: the statement
 * changes data, so a lost reply makes its outcome unknown.  The parameters
 * are text.
 */
LedgerStatus
ledger__call(LedgerConn *conn, LedgerStmt stmt, const char *const *values,
			 bool is_write, PGresult **result)
{
	return ledger__call_params(conn, stmt, values, NULL, NULL, is_write, result);
}

/*
 * ledger__call with parameter lengths and formats as PQexecPrepared takes
 * them (NULL: all text), for binary parameters.
 */
LedgerStatus
ledger__call_params(LedgerConn *conn, LedgerStmt stmt, const char *const *values,
					const int *lengths, const int *formats, bool is_write,
					PGresult **result)
{
	LedgerStatus status = LEDGER_CONNECTION_FAILED;
	bool		maybe_applied = false;
	int			attempt;

	*result = NULL;
	if (conn->retry_attempts < 1)
	{
		ledger__set_error(conn, "connection handle was created with invalid options",
						  NULL, NULL, NULL);
		return LEDGER_CLIENT_ERROR;
	}

	for (attempt = 1; attempt <= conn->retry_attempts; attempt++)
	{
		LedgerAttempt kind;
		PGresult   *res;

		conn->last_attempts = attempt;
		if (attempt > 1)
			ledger__backoff(conn, attempt);

		if (!ledger__ensure_connected(conn))
		{
			status = LEDGER_CONNECTION_FAILED;
			continue;
		}

		kind = ledger__ensure_prepared(conn, stmt, &status);
		if (kind == ATTEMPT_RETRY_NOT_SENT)
		{
			ledger__drop_connection(conn);
			continue;
		}
		if (status != LEDGER_OK)
			break;				/* e.g. the extension is not installed */

		res = PQexecPrepared(conn->pg, ledger__stmt_name(stmt),
							 ledger__stmt_nparams(stmt), values, lengths, formats, 0);
		kind = ledger__classify(conn, res, &status);
		if (kind == ATTEMPT_DONE)
		{
			if (status == LEDGER_OK)
			{
				/* forget the errors of earlier attempts */
				ledger__set_error(conn, NULL, NULL, NULL, NULL);
				*result = res;
				return LEDGER_OK;
			}
			PQclear(res);
			/*
			 * A refusal is authoritative even after a lost attempt: the
			 * same key would have replayed a committed first attempt.
			 */
			if (status != LEDGER_CLIENT_ERROR)
				return status;
			break;
		}
		PQclear(res);
		if (kind == ATTEMPT_RETRY_LOST)
		{
			maybe_applied = true;
			ledger__drop_connection(conn);
		}
	}

	if (maybe_applied && is_write)
	{
		set_unknown_outcome(conn, stmt);
		return LEDGER_UNKNOWN_OUTCOME;
	}
	return status;
}
