/*-------------------------------------------------------------------------
 *
 * outcome.c
 *	  What an attempt means, and what the library may tell the caller.
 *
 * The rules every call kind follows -- single calls, ledger_post_batch as
 * a whole, and each item of ledger_batch -- live here and nowhere else:
 *
 *   - A request is LEDGER_OK only when the server answered it, the commit
 *     raised no error, and no WARNING came with it: PostgreSQL reports a
 *     cancelled wait for a synchronous standby as a success with a
 *     WARNING ("committed locally, but might not have been replicated").
 *     The ledger itself sends no warnings.
 *   - An attempt whose commit was not confirmed (sent, then the
 *     connection was lost, a WARNING came, or the deadline passed) may
 *     have committed: from then on the request "may be applied".
 *   - 40001 and 40P01 were rolled back by the server: retried.
 *   - 26000 for a statement sent by name: this server session does not
 *     have it (a transaction pooler); Bind refused it, nothing ran: sent
 *     again (statements.c).
 *   - A refusal (LG001-LG007, class 22) is final even when the request
 *     may be applied, because the retry carried the same key: had an
 *     earlier attempt committed, the key would have replayed it.  A
 *     capture or release carries its hold id instead, which does the same:
 *     a committed capture replays for the same arguments, a committed
 *     release makes the next one answer false, and a hold never ceases to
 *     exist (LG006).
 *   - Any other failure of a request that may be applied proves nothing:
 *     passing conditions (57014, 55P03, 53xxx, 25006, ...) are retried,
 *     the rest end the call as LEDGER_UNKNOWN_OUTCOME, and so does a
 *     request still unconfirmed when the attempts or the time run out.
 *   - A request that cannot have been applied keeps the failure it got.
 *
 * Reads (is_write false) have no outcome to lose: they are never
 * "applied", and end as LEDGER_CONNECTION_FAILED when nothing answered.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"

/*
 * Notices of the connection: a WARNING marks the command in progress as
 * unconfirmed.  Everything else, including the FATAL a terminated backend
 * sends while the connection is idle, is dropped: it must not reach the
 * application's stderr.
 */
static void
receive_notice(void *arg, const PGresult *res)
{
	LedgerConn *conn = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (severity == NULL || strcmp(severity, "WARNING") != 0)
		return;
	conn->warned = true;
	free(conn->warning);
	conn->warning = strdup(message != NULL ? message : "a warning");
}

void
ledger__watch_notices(LedgerConn *conn, PGconn *pg)
{
	PQsetNoticeReceiver(pg, receive_notice, conn);
}

/* Class 08 (connection exception), 57P01-57P03 (server going away) and
 * 40003 (statement completion unknown).  Through a router (ledger_router)
 * also XX000, PL/Proxy's error for a lost connection to a shard, and for a
 * write 57014: PL/Proxy passes a cancel on to the shard, which may have
 * committed already (ledger__classify). */
static bool
sqlstate_means_lost(const char *sqlstate)
{
	return sqlstate != NULL &&
		(strncmp(sqlstate, "08", 2) == 0 ||
		 strcmp(sqlstate, "57P01") == 0 ||
		 strcmp(sqlstate, "57P02") == 0 ||
		 strcmp(sqlstate, "57P03") == 0 ||
		 strcmp(sqlstate, "40003") == 0);
}

/*
 * Conditions that pass: a statement or lock timeout, a cancel, a lack of
 * resources, a server that is read-only for now (a standby; after a
 * failover the conninfo may lead to the new primary).  The server rolled
 * the attempt back.
 */
static bool
sqlstate_is_transient(const char *sqlstate)
{
	return sqlstate != NULL &&
		(strcmp(sqlstate, "57014") == 0 ||
		 strcmp(sqlstate, "55P03") == 0 ||
		 strncmp(sqlstate, "53", 2) == 0 ||
		 strcmp(sqlstate, "25006") == 0);
}

/*
 * What one finished command means.  res may be NULL (nothing came back).
 * is_write: a WARNING received since the command was sent makes a success
 * unconfirmed.  Sets *status and the connection's error fields; the caller
 * still owns (and clears) res.
 */
LedgerAttempt
ledger__classify(LedgerConn *conn, const PGresult *res, bool is_write,
				 LedgerStatus *status)
{
	const char *sqlstate;

	if (res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
						PQresultStatus(res) == PGRES_COMMAND_OK))
	{
		if (is_write && conn->warned)
		{
			char		buf[512];

			snprintf(buf, sizeof(buf),
					 "the commit was not confirmed: the server warned \"%s\"",
					 conn->warning != NULL ? conn->warning : "");
			ledger__set_error(conn, buf, NULL, NULL, NULL);
			*status = LEDGER_SERVER_ERROR;
			return ATTEMPT_RETRY_LOST;
		}
		*status = LEDGER_OK;
		return ATTEMPT_DONE;
	}

	sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (res == NULL || conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD ||
		sqlstate_means_lost(sqlstate) ||
		(conn->router && sqlstate != NULL &&
		 (strcmp(sqlstate, "XX000") == 0 || (is_write && strcmp(sqlstate, "57014") == 0))))
	{
		if (res != NULL && PQresultErrorMessage(res)[0] != '\0')
			ledger__set_error_from_result(conn, res);
		else if (!conn->out_of_time)
			ledger__set_connection_error(conn, "connection lost");
		*status = LEDGER_CONNECTION_FAILED;
		return ATTEMPT_RETRY_LOST;
	}

	ledger__set_error_from_result(conn, res);
	if (ledger__statement_lost(conn, sqlstate))
	{
		/* refused at Bind: nothing ran (statements.c) */
		*status = LEDGER_CONNECTION_FAILED;
		return ATTEMPT_RETRY_NOT_SENT;
	}
	*status = ledger__status_of_sqlstate(sqlstate);
	if (sqlstate != NULL &&
		(strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0))
		return ATTEMPT_RETRY_ROLLED_BACK;
	if (sqlstate_is_transient(sqlstate))
		return ATTEMPT_RETRY_TRANSIENT;
	return ATTEMPT_DONE;
}

/*
 * Whether a refusal answers the request itself, whatever an earlier lost
 * attempt did: a business rule (LG001-LG007) or a bad argument (class 22),
 * decided after the key (or the hold's end) was looked up.
 */
static bool
is_refusal(LedgerStatus status, const char *sqlstate)
{
	return (status >= LEDGER_INSUFFICIENT_FUNDS &&
			status <= LEDGER_NUMERIC_VALUE_OUT_OF_RANGE) ||
		status == LEDGER_HOLD_NOT_FOUND || status == LEDGER_HOLD_NOT_PENDING ||
		(sqlstate != NULL && strncmp(sqlstate, "22", 2) == 0);
}

/*
 * After an attempt of a request: is it done, retried, or of unknown
 * outcome?  *maybe_applied is the request's memory across attempts: set
 * once an attempt of a write may have committed.
 */
LedgerNext
ledger__next(LedgerAttempt kind, LedgerStatus status, const char *sqlstate,
			 bool is_write, bool *maybe_applied)
{
	switch (kind)
	{
		case ATTEMPT_RETRY_LOST:
			if (is_write)
				*maybe_applied = true;
			return NEXT_RETRY;
		case ATTEMPT_RETRY_NOT_SENT:
		case ATTEMPT_RETRY_ROLLED_BACK:
			return NEXT_RETRY;
		case ATTEMPT_RETRY_TRANSIENT:
			return *maybe_applied ? NEXT_RETRY : NEXT_DONE;
		case ATTEMPT_DONE:
			break;
	}
	if (status == LEDGER_OK || !*maybe_applied || is_refusal(status, sqlstate))
		return NEXT_DONE;
	return NEXT_UNKNOWN;
}

/*
 * Whether the connection should be replaced before the next attempt: it
 * is broken, or this server cannot take writes now (25006: a standby).
 */
bool
ledger__needs_new_connection(const LedgerConn *conn, LedgerAttempt kind)
{
	return kind == ATTEMPT_RETRY_NOT_SENT || conn->pg == NULL ||
		PQstatus(conn->pg) != CONNECTION_OK ||
		(kind == ATTEMPT_RETRY_TRANSIENT && conn->err_sqlstate != NULL &&
		 strcmp(conn->err_sqlstate, "25006") == 0);
}

/*
 * LEDGER_UNKNOWN_OUTCOME, with a message saying why and what makes it safe
 * to ask again (advice); the SQLSTATE of the last error stays readable.
 */
LedgerStatus
ledger__unknown_outcome(LedgerConn *conn, const char *what, const char *advice)
{
	char		buf[1024];
	const char *sqlstate = conn->err_sqlstate;

	snprintf(buf, sizeof(buf),
			 "the outcome is unknown: %s was sent but its commit was not confirmed"
			 " after %d attempt%s; %s. Last error: %s",
			 what, conn->last_attempts, conn->last_attempts == 1 ? "" : "s",
			 advice, ledger_error_message(conn));
	ledger__set_error(conn, buf, sqlstate, NULL, NULL);
	return LEDGER_UNKNOWN_OUTCOME;
}

/*
 * The status of a request still pending when the attempts or the time ran
 * out: unknown if it may be applied, else the last failure it got.
 */
LedgerStatus
ledger__give_up(LedgerConn *conn, LedgerStatus status, bool maybe_applied,
				const char *advice)
{
	if (maybe_applied)
		return ledger__unknown_outcome(conn, "the request", advice);
	return status;
}
