/*-------------------------------------------------------------------------
 *
 * conn.c
 *	  Connections: options, connect and reconnect, the prepared statements,
 *	  the error fields of the last call, status names.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger_int.h"

/*
 * The statements, prepared once per connection on first use and again after
 * every reconnect.  The casts pin the signatures, so a prepared statement
 * never depends on parameter type inference.  The functions are found on
 * the session's search_path, like any SQL the application runs.
 */
static const struct
{
	const char *name;
	int			nparams;
	const char *sql;
}			statements[LEDGER_N_STMTS] =
{
	[LEDGER_STMT_OPEN] = {"libledger_open", 3,
	"SELECT ledger_open_account($1::text, $2::text, $3::bigint)"},
	[LEDGER_STMT_CREDIT] = {"libledger_credit", 3,
	"SELECT ledger_credit($1::text, $2::bigint, $3::text)"},
	[LEDGER_STMT_DEBIT] = {"libledger_debit", 3,
	"SELECT ledger_debit($1::text, $2::bigint, $3::text)"},
	[LEDGER_STMT_TRANSFER] = {"libledger_transfer", 4,
	"SELECT ledger_transfer($1::text, $2::text, $3::bigint, $4::text)"},
	[LEDGER_STMT_BALANCE] = {"libledger_balance", 1,
	"SELECT ledger_balance($1::text)"},
	[LEDGER_STMT_HISTORY] = {"libledger_history", 2,
		"SELECT entry_id, amount, balance_after, transfer_id, idempotency_key,"
		" (extract(epoch FROM created_at) * 1000000)::bigint"
	" FROM ledger_history($1::text, $2::integer)"},
	[LEDGER_STMT_VERIFY] = {"libledger_verify", 0,
	"SELECT account, problem FROM ledger_verify()"},
	[LEDGER_STMT_DEBIT_BATCH] = {"libledger_debit_batch", 3,
		"SELECT ordinal, status, result"
	" FROM ledger_debit_batch($1::text[], $2::bigint[], $3::text[])"},
	[LEDGER_STMT_TRANSFER_BATCH] = {"libledger_transfer_batch", 4,
		"SELECT ordinal, status, result"
	" FROM ledger_transfer_batch($1::text[], $2::text[], $3::bigint[], $4::text[])"},
};

/* Names of the statuses, indexed by value: the Postgres condition names. */
static const char *const status_names[] = {
	[LEDGER_OK] = "ok",
	[LEDGER_INSUFFICIENT_FUNDS] = "insufficient_funds",
	[LEDGER_ACCOUNT_NOT_FOUND] = "account_not_found",
	[LEDGER_IDEMPOTENCY_CONFLICT] = "idempotency_conflict",
	[LEDGER_CURRENCY_MISMATCH] = "currency_mismatch",
	[LEDGER_ACCOUNT_EXISTS] = "account_exists",
	[LEDGER_INVALID_PARAMETER_VALUE] = "invalid_parameter_value",
	[LEDGER_NULL_VALUE_NOT_ALLOWED] = "null_value_not_allowed",
	[LEDGER_NUMERIC_VALUE_OUT_OF_RANGE] = "numeric_value_out_of_range",
	[LEDGER_INSUFFICIENT_PRIVILEGE] = "insufficient_privilege",
	[LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE] = "object_not_in_prerequisite_state",
	[LEDGER_SERVER_ERROR] = "server_error",
	[LEDGER_CONNECTION_FAILED] = "connection_failed",
	[LEDGER_UNKNOWN_OUTCOME] = "unknown_outcome",
	[LEDGER_CLIENT_ERROR] = "client_error",
};

/* The SQLSTATEs with a status of their own; anything else is SERVER_ERROR. */
static const struct
{
	const char *sqlstate;
	LedgerStatus status;
}			sqlstate_map[] =
{
	{"LG001", LEDGER_INSUFFICIENT_FUNDS},
	{"LG002", LEDGER_ACCOUNT_NOT_FOUND},
	{"LG003", LEDGER_IDEMPOTENCY_CONFLICT},
	{"LG004", LEDGER_CURRENCY_MISMATCH},
	{"LG005", LEDGER_ACCOUNT_EXISTS},
	{"22023", LEDGER_INVALID_PARAMETER_VALUE},
	{"22004", LEDGER_NULL_VALUE_NOT_ALLOWED},
	{"22003", LEDGER_NUMERIC_VALUE_OUT_OF_RANGE},
	{"42501", LEDGER_INSUFFICIENT_PRIVILEGE},
	{"55000", LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE},
};

int
ledger_library_version(void)
{
	return LEDGER_VERSION_NUM;
}

const char *
ledger_status_name(LedgerStatus status)
{
	if ((int) status < 0 ||
		(size_t) status >= sizeof(status_names) / sizeof(status_names[0]))
		return "unknown_status";
	return status_names[status];
}

LedgerStatus
ledger__status_of_sqlstate(const char *sqlstate)
{
	size_t		i;

	if (sqlstate == NULL)
		return LEDGER_SERVER_ERROR;
	for (i = 0; i < sizeof(sqlstate_map) / sizeof(sqlstate_map[0]); i++)
		if (strcmp(sqlstate, sqlstate_map[i].sqlstate) == 0)
			return sqlstate_map[i].status;
	return LEDGER_SERVER_ERROR;
}

/* The SQLSTATE of a status that mirrors one, else NULL. */
const char *
ledger__sqlstate_of_status(LedgerStatus status)
{
	size_t		i;

	for (i = 0; i < sizeof(sqlstate_map) / sizeof(sqlstate_map[0]); i++)
		if (sqlstate_map[i].status == status)
			return sqlstate_map[i].sqlstate;
	return NULL;
}

const char *
ledger__stmt_name(LedgerStmt stmt)
{
	return statements[stmt].name;
}

int
ledger__stmt_nparams(LedgerStmt stmt)
{
	return statements[stmt].nparams;
}

void
ledger_options_init(LedgerOptions *opts)
{
	if (opts == NULL)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->retry_attempts = LEDGER_DEFAULT_RETRY_ATTEMPTS;
	opts->backoff_base_ms = LEDGER_DEFAULT_BACKOFF_BASE_MS;
	opts->backoff_max_ms = LEDGER_DEFAULT_BACKOFF_MAX_MS;
}

/* ---- the error fields of the last call ---------------------------------- */

static void
clear_error(LedgerConn *conn)
{
	free(conn->err_message);
	free(conn->err_sqlstate);
	free(conn->err_detail);
	free(conn->err_hint);
	conn->err_message = conn->err_sqlstate = conn->err_detail = conn->err_hint = NULL;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* Copy a message without its trailing newlines (libpq ends them with one). */
static char *
dup_trimmed(const char *s)
{
	char	   *copy;
	size_t		len;

	if (s == NULL)
		return NULL;
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	len = strlen(copy);
	while (len > 0 && (copy[len - 1] == '\n' || copy[len - 1] == '\r'))
		copy[--len] = '\0';
	return copy;
}

/*
 * Replace the error fields.  Returns false if memory ran out, in which case
 * the fields read as empty: an error message must never itself fail a call.
 */
bool
ledger__set_error(LedgerConn *conn, const char *message, const char *sqlstate,
				  const char *detail, const char *hint)
{
	char	   *m = dup_trimmed(message);
	char	   *s = dup_or_null(sqlstate);
	char	   *d = dup_or_null(detail);
	char	   *h = dup_or_null(hint);

	clear_error(conn);
	conn->err_message = m;
	conn->err_sqlstate = s;
	conn->err_detail = d;
	conn->err_hint = h;
	return (message == NULL || m != NULL) && (sqlstate == NULL || s != NULL) &&
		(detail == NULL || d != NULL) && (hint == NULL || h != NULL);
}

void
ledger__set_error_from_result(LedgerConn *conn, const PGresult *res)
{
	const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (message == NULL)
		message = PQresultErrorMessage(res);
	ledger__set_error(conn, message,
					  PQresultErrorField(res, PG_DIAG_SQLSTATE),
					  PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
					  PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
}

/* The connection-level error of libpq, or "what" when it has none. */
void
ledger__set_connection_error(LedgerConn *conn, const char *what)
{
	const char *message = conn->pg != NULL ? PQerrorMessage(conn->pg) : NULL;

	if (message == NULL || message[0] == '\0')
		message = what;
	ledger__set_error(conn, message, NULL, NULL, NULL);
}

/*
 * Keep a copy of s until the next call on the connection (batch item
 * strings).  Returns NULL if memory ran out.
 */
const char *
ledger__own(LedgerConn *conn, const char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	if (conn->n_owned == conn->cap_owned)
	{
		size_t		cap = conn->cap_owned ? conn->cap_owned * 2 : 16;
		char	  **grown = realloc(conn->owned, cap * sizeof(char *));

		if (grown == NULL)
			return NULL;
		conn->owned = grown;
		conn->cap_owned = cap;
	}
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	conn->owned[conn->n_owned++] = copy;
	return copy;
}

static void
free_owned(LedgerConn *conn)
{
	size_t		i;

	for (i = 0; i < conn->n_owned; i++)
		free(conn->owned[i]);
	conn->n_owned = 0;
}

/* Every verb starts here: forget what the previous call left behind. */
void
ledger__begin_call(LedgerConn *conn)
{
	clear_error(conn);
	free_owned(conn);
	conn->last_attempts = 0;
}

const char *
ledger_error_message(const LedgerConn *conn)
{
	if (conn == NULL)
		return "connection handle is NULL (out of memory?)";
	return conn->err_message != NULL ? conn->err_message : "";
}

const char *
ledger_error_sqlstate(const LedgerConn *conn)
{
	return conn != NULL ? conn->err_sqlstate : NULL;
}

const char *
ledger_error_detail(const LedgerConn *conn)
{
	return conn != NULL ? conn->err_detail : NULL;
}

const char *
ledger_error_hint(const LedgerConn *conn)
{
	return conn != NULL ? conn->err_hint : NULL;
}

const char *
ledger_last_key(const LedgerConn *conn)
{
	return conn != NULL ? conn->last_key : NULL;
}

int
ledger_last_attempts(const LedgerConn *conn)
{
	return conn != NULL ? conn->last_attempts : 0;
}

/* ---- connecting --------------------------------------------------------- */

/* Server notices (including the FATAL a terminated backend sends while the
 * connection is idle) must not reach the application's stderr. */
static void
discard_notice(void *arg, const char *message)
{
	(void) arg;
	(void) message;
}

void
ledger__drop_connection(LedgerConn *conn)
{
	if (conn->pg != NULL)
		PQfinish(conn->pg);
	conn->pg = NULL;
	conn->prepared = 0;
}

static bool
connect_once(LedgerConn *conn)
{
	/*
	 * The caller's string goes in as an expanded dbname, so it may be a
	 * conninfo string or a URI, and an empty one leaves everything to the
	 * PG* environment variables, exactly as with PQconnectdb.
	 */
	const char *const keywords[] = {"dbname", "fallback_application_name", NULL};
	const char *const values[] = {conn->conninfo, "libledger", NULL};

	ledger__drop_connection(conn);
	conn->pg = PQconnectdbParams(keywords, values, 1);
	if (conn->pg == NULL)
	{
		ledger__set_error(conn, "out of memory", NULL, NULL, NULL);
		return false;
	}
	if (PQstatus(conn->pg) != CONNECTION_OK)
	{
		ledger__set_connection_error(conn, "could not connect");
		ledger__drop_connection(conn);
		return false;
	}
	PQsetNoticeProcessor(conn->pg, discard_notice, NULL);
	return true;
}

/*
 * Make sure there is a live connection before a request is sent.  An idle
 * connection whose server went away (pg_terminate_backend, a restart) has
 * usually received the server's FATAL and EOF already: reading them now
 * lets us reconnect before sending, so such a call's outcome stays known.
 */
bool
ledger__ensure_connected(LedgerConn *conn)
{
	if (conn->pg != NULL)
	{
		if (PQstatus(conn->pg) == CONNECTION_OK &&
			PQtransactionStatus(conn->pg) == PQTRANS_IDLE &&
			PQconsumeInput(conn->pg) &&
			PQstatus(conn->pg) == CONNECTION_OK)
			return true;
		ledger__drop_connection(conn);
	}
	return connect_once(conn);
}

/*
 * Prepare stmt on this connection unless it already is.  A connection lost
 * here is ATTEMPT_RETRY_NOT_SENT: the posting itself was not sent yet.
 */
LedgerAttempt
ledger__ensure_prepared(LedgerConn *conn, LedgerStmt stmt, LedgerStatus *status)
{
	PGresult   *res;
	LedgerAttempt kind;

	*status = LEDGER_OK;
	if (conn->prepared & (1u << stmt))
		return ATTEMPT_DONE;
	res = PQprepare(conn->pg, statements[stmt].name, statements[stmt].sql,
					statements[stmt].nparams, NULL);
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		PQclear(res);
		conn->prepared |= 1u << stmt;
		return ATTEMPT_DONE;
	}
	kind = ledger__classify(conn, res, status);
	PQclear(res);
	if (kind == ATTEMPT_RETRY_LOST || kind == ATTEMPT_RETRY_ROLLED_BACK)
		kind = ATTEMPT_RETRY_NOT_SENT;
	return kind;
}

LedgerStatus
ledger_connect(const LedgerOptions *opts, LedgerConn **connp)
{
	LedgerOptions defaults;
	LedgerConn *conn;

	if (connp == NULL)
		return LEDGER_CLIENT_ERROR;
	*connp = NULL;
	if (opts == NULL)
	{
		ledger_options_init(&defaults);
		opts = &defaults;
	}
	conn = calloc(1, sizeof(LedgerConn));
	if (conn == NULL)
		return LEDGER_CLIENT_ERROR;
	conn->conninfo = strdup(opts->conninfo != NULL ? opts->conninfo : "");
	if (conn->conninfo == NULL)
	{
		free(conn);
		return LEDGER_CLIENT_ERROR;
	}
	*connp = conn;
	conn->retry_attempts = opts->retry_attempts ? opts->retry_attempts
		: LEDGER_DEFAULT_RETRY_ATTEMPTS;
	conn->backoff_base_ms = opts->backoff_base_ms ? opts->backoff_base_ms
		: LEDGER_DEFAULT_BACKOFF_BASE_MS;
	conn->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms
		: LEDGER_DEFAULT_BACKOFF_MAX_MS;
	conn->last_attempts = 1;
	if (!ledger__random_bytes(&conn->rng, sizeof(conn->rng)))
		conn->rng = 0;
	conn->rng ^= (uint64_t) time(NULL) ^ (uint64_t) (uintptr_t) conn;
	if (conn->rng == 0)
		conn->rng = 0x9e3779b97f4a7c15u;

	if (opts->retry_attempts < 0 || opts->backoff_base_ms < 0 ||
		opts->backoff_max_ms < 0)
	{
		/* the handle stays, carrying the message, but refuses every call */
		conn->retry_attempts = -1;
		ledger__set_error(conn, "invalid options: retry_attempts, backoff_base_ms"
						  " and backoff_max_ms must not be negative",
						  NULL, NULL, NULL);
		return LEDGER_CLIENT_ERROR;
	}
	return connect_once(conn) ? LEDGER_OK : LEDGER_CONNECTION_FAILED;
}

LedgerStatus
ledger_set_timeout(LedgerConn *conn, int timeout_ms)
{
	if (conn == NULL)
		return LEDGER_CLIENT_ERROR;
	if (timeout_ms < 0)
	{
		ledger__set_error(conn, "ledger_set_timeout: timeout_ms must not be negative",
						  NULL, NULL, NULL);
		return LEDGER_CLIENT_ERROR;
	}
	conn->timeout_ms = timeout_ms;
	return LEDGER_OK;
}

void
ledger_finish(LedgerConn *conn)
{
	if (conn == NULL)
		return;
	ledger__drop_connection(conn);
	clear_error(conn);
	free_owned(conn);
	free(conn->owned);
	free(conn->last_key);
	free(conn->conninfo);
	free(conn);
}
