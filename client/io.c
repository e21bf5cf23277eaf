/*-------------------------------------------------------------------------
 *
 * io.c
 *	  libpq without blocking past a call's deadline: connecting, sending
 *	  and reading results on a nonblocking connection, waiting in poll(2)
 *	  for at most the time the call has left (ledger_set_timeout).
 *
 * libpq's blocking calls can wait forever: for a server that stopped
 * answering, and for a commit waiting for a synchronous standby, which
 * statement_timeout does not cover.  Every wait of the library goes
 * through here instead.  When the time is up the caller drops the
 * connection: a request that was sent may still commit on the server,
 * which is why a write then ends as LEDGER_UNKNOWN_OUTCOME (outcome.c).
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger_int.h"

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Start the clock of a call: its deadline, if the connection has a timeout. */
void
ledger__start_clock(LedgerConn *conn)
{
	conn->out_of_time = false;
	conn->deadline_us = conn->timeout_ms > 0
		? now_us() + (int64_t) conn->timeout_ms * 1000 : 0;
}

/*
 * Milliseconds before the call's deadline, rounded up: -1 without one, 0
 * when it passed (the call is then out of time).
 */
int
ledger__ms_left(LedgerConn *conn)
{
	int64_t		left;

	if (conn->deadline_us == 0)
		return -1;
	left = conn->deadline_us - now_us();
	if (left <= 0)
	{
		conn->out_of_time = true;
		return 0;
	}
	return (int) ((left + 999) / 1000);
}

static void
set_out_of_time(LedgerConn *conn)
{
	char		message[128];

	conn->out_of_time = true;
	snprintf(message, sizeof(message),
			 "no answer within the call's timeout of %d ms", conn->timeout_ms);
	ledger__set_error(conn, message, NULL, NULL, NULL);
}

/* Sleep ms, but not past the deadline; false when the deadline passed. */
bool
ledger__sleep(LedgerConn *conn, long ms)
{
	int			left = ledger__ms_left(conn);
	struct timespec ts;

	if (left == 0)
		return false;
	if (left > 0 && ms >= left)
		ms = left;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return ledger__ms_left(conn) != 0;
}

/*
 * Wait until fd is ready for events or until_us (0: no limit) passes.
 * Returns 1 when ready, 0 at the limit, -1 on a poll error.
 */
static int
wait_socket(int fd, short events, int64_t until_us)
{
	for (;;)
	{
		struct pollfd pfd;
		int			timeout = -1;
		int			rc;

		if (until_us != 0)
		{
			int64_t		left = until_us - now_us();

			if (left <= 0)
				return 0;
			timeout = (int) ((left + 999) / 1000);
		}
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		rc = poll(&pfd, 1, timeout);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* The earlier of two limits, where 0 means none. */
static int64_t
earlier(int64_t a, int64_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

/*
 * libpq's connect_timeout of a connection being made, as the limit on
 * the monotonic clock (0: none): libpq applies it only in its blocking
 * connect, so we do here, with its rules (<= 0 none, 1 means 2 seconds).
 */
static int64_t
connect_limit(PGconn *pg, int64_t start)
{
	PQconninfoOption *options = PQconninfo(pg);
	PQconninfoOption *o;
	long		seconds = 0;

	for (o = options; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL)
			seconds = strtol(o->val, NULL, 10);
	PQconninfoFree(options);
	if (seconds <= 0)
		return 0;
	if (seconds == 1)
		seconds = 2;
	return start + (int64_t) seconds * 1000000;
}

/*
 * Connect (PQconnectStartParams with an expanded dbname) within
 * connect_timeout and the call's deadline.  Returns the connection in
 * nonblocking mode, with the library's notice receiver, or NULL with the
 * error set.
 */
PGconn *
ledger__connect_within(LedgerConn *conn, const char *const *keywords,
					   const char *const *values)
{
	PGconn	   *pg = PQconnectStartParams(keywords, values, 1);
	PostgresPollingStatusType state = PGRES_POLLING_WRITING;
	int64_t		until;

	if (pg == NULL)
	{
		ledger__set_error(conn, "out of memory", NULL, NULL, NULL);
		return NULL;
	}
	ledger__watch_notices(conn, pg);
	until = earlier(connect_limit(pg, now_us()), conn->deadline_us);
	while (PQstatus(pg) != CONNECTION_BAD &&
		   state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED)
	{
		int			ready = wait_socket(PQsocket(pg),
										state == PGRES_POLLING_READING ? POLLIN : POLLOUT,
										until);

		if (ready == 0)
		{
			if (conn->deadline_us != 0 && until == conn->deadline_us)
				set_out_of_time(conn);
			else
				ledger__set_error(conn, "could not connect: timeout expired (connect_timeout)",
								  NULL, NULL, NULL);
			PQfinish(pg);
			return NULL;
		}
		state = PQconnectPoll(pg);
	}
	if (PQstatus(pg) != CONNECTION_OK || PQsetnonblocking(pg, 1) != 0)
	{
		const char *message = PQerrorMessage(pg);

		ledger__set_error(conn, message[0] != '\0' ? message : "could not connect",
						  NULL, NULL, NULL);
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

/*
 * The next result of the command in progress, as PQgetResult returns it
 * (NULL at its end), sending what libpq still buffers and waiting for the
 * server only until the call's deadline.  Returns false when that passed:
 * *res is then NULL, and the caller drops the connection.
 */
bool
ledger__next_result(LedgerConn *conn, PGresult **res)
{
	PGconn	   *pg = conn->pg;

	*res = NULL;
	for (;;)
	{
		int			pending = PQflush(pg);
		int			ready;

		/* on a broken connection PQgetResult reports what went wrong */
		if (pending < 0 || !PQisBusy(pg))
			break;
		ready = wait_socket(PQsocket(pg), POLLIN | (pending ? POLLOUT : 0),
							conn->deadline_us);
		if (ready == 0)
		{
			set_out_of_time(conn);
			return false;
		}
		if (ready < 0 || !PQconsumeInput(pg))
			break;
	}
	*res = PQgetResult(pg);
	return true;
}

/*
 * Run a statement once (statements.c sends it), and classify the
 * attempt (outcome.c).  Every result up to the end is read; an error wins
 * over the rows before it, because a failure at commit comes after them.
 * On ATTEMPT_DONE with LEDGER_OK *result is the tuples result, which the
 * caller clears.
 */
LedgerAttempt
ledger__exec(LedgerConn *conn, LedgerStmt stmt, const char *const *values,
			 const int *lengths, const int *formats, bool is_write,
			 PGresult **result, LedgerStatus *status)
{
	PGresult   *res;
	PGresult   *final = NULL;
	LedgerAttempt kind;

	*result = NULL;
	conn->warned = false;
	if (!ledger__send(conn, stmt, ledger__stmt_nparams(stmt), values, lengths, formats))
	{
		/* libpq did not queue it: nothing went out */
		ledger__set_connection_error(conn, "could not send the request");
		*status = LEDGER_CONNECTION_FAILED;
		return ATTEMPT_RETRY_NOT_SENT;
	}
	for (;;)
	{
		if (!ledger__next_result(conn, &res))
		{
			PQclear(final);
			*status = LEDGER_CONNECTION_FAILED;
			return ATTEMPT_RETRY_LOST;
		}
		if (res == NULL)
			break;
		if (final == NULL ||
			(PQresultStatus(res) == PGRES_FATAL_ERROR &&
			 PQresultStatus(final) != PGRES_FATAL_ERROR))
		{
			PQclear(final);
			final = res;
		}
		else
			PQclear(res);
		if (PQstatus(conn->pg) == CONNECTION_BAD)
			break;
	}
	kind = ledger__classify(conn, final, is_write, status);
	if (kind == ATTEMPT_DONE && *status == LEDGER_OK)
		*result = final;
	else
		PQclear(final);
	return kind;
}
