/*-------------------------------------------------------------------------
 *
 * retry.c
 *	  Safe automatic retry: generated idempotency keys, backoff, and the
 *	  retry loop of single calls (ledger_post_batch is one of them).
 *
 * A posting is retried only with the idempotency key of its first attempt,
 * so however many attempts reach the server, at most one commits and the
 * others return its result.  What each attempt means, and when the caller
 * must be told the outcome is unknown, is decided in outcome.c.
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
 * clients cut off together do not come back in lockstep; never past the
 * call's deadline.  False when the deadline passed: no further attempt.
 */
bool
ledger__backoff(LedgerConn *conn, int attempt)
{
	long		ms = conn->backoff_base_ms;
	int			i;

	for (i = 2; i < attempt && ms < conn->backoff_max_ms; i++)
		ms *= 2;
	if (ms > conn->backoff_max_ms)
		ms = conn->backoff_max_ms;
	if (ms <= 0)
		return ledger__ms_left(conn) != 0;

	conn->rng ^= conn->rng << 13;
	conn->rng ^= conn->rng >> 7;
	conn->rng ^= conn->rng << 17;
	ms = ms / 2 + (long) (conn->rng % (uint64_t) (ms / 2 + 1));
	return ledger__sleep(conn, ms);
}

/* What makes it safe to ask again after an unknown outcome of stmt. */
const char *
ledger__advice(LedgerConn *conn, LedgerStmt stmt, char *buf, size_t size)
{
	if (stmt == LEDGER_STMT_DEBIT_BATCH || stmt == LEDGER_STMT_TRANSFER_BATCH)
		return "the batch committed whole or not at all: send the same items again"
			" with the keys of this call (each item's key)";
	if (stmt == LEDGER_STMT_OPEN)
		return "opening again with the same parameters is safe";
	if (stmt == LEDGER_STMT_SET_MODE)
		return "setting the same mode again is safe";
	if (stmt == LEDGER_STMT_CAPTURE)
		return "capturing the same hold again with the same arguments is safe: it"
			" returns the first result and never posts twice";
	if (stmt == LEDGER_STMT_RELEASE)
		return "releasing the same hold again is safe (it answers false if this"
			" call released it)";
	snprintf(buf, size, "retry with the same idempotency key (%s) and the same"
			 " arguments; a retry without it may %s twice",
			 conn->last_key != NULL ? conn->last_key : "none",
			 stmt == LEDGER_STMT_HOLD ? "hold" : "post");
	return buf;
}

/*
 * Run one prepared statement with the retry policy.  On LEDGER_OK *result is
 * the tuples result, which the caller clears.  is_write: the statement
 * changes data, so an attempt that may have committed makes its outcome
 * matter.  The parameters are text.
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
	char		advice[512];
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
		PGresult   *res = NULL;

		if (attempt > 1 && !ledger__backoff(conn, attempt))
			break;
		conn->last_attempts = attempt;

		if (!ledger__ensure_connected(conn))
		{
			kind = ATTEMPT_RETRY_NOT_SENT;
			status = LEDGER_CONNECTION_FAILED;
		}
		else
		{
			kind = ledger__ensure_prepared(conn, stmt, &status);
			if (kind == ATTEMPT_DONE && status == LEDGER_OK)
				kind = ledger__exec(conn, stmt, values, lengths, formats, is_write,
									&res, &status);
		}

		switch (ledger__next(kind, status, conn->err_sqlstate, is_write, &maybe_applied))
		{
			case NEXT_DONE:
				if (status == LEDGER_OK)
				{
					/* forget the errors of earlier attempts */
					ledger__set_error(conn, NULL, NULL, NULL, NULL);
					*result = res;
				}
				return status;
			case NEXT_UNKNOWN:
				return ledger__unknown_outcome(conn, "the request",
											   ledger__advice(conn, stmt, advice, sizeof(advice)));
			case NEXT_RETRY:
				break;
		}
		if (ledger__needs_new_connection(conn, kind))
			ledger__drop_connection(conn);
		if (conn->out_of_time)
		{
			ledger__drop_connection(conn);
			break;
		}
	}
	return ledger__give_up(conn, status, maybe_applied,
						   ledger__advice(conn, stmt, advice, sizeof(advice)));
}
