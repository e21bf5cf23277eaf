/*-------------------------------------------------------------------------
 *
 * conn.c
 *	  Connections: options, connect and reconnect, the error fields of the
 *	  last call, status names.  (What is sent on them: statements.c.)
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger_int.h"

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
	[LEDGER_HOLD_NOT_FOUND] = "hold_not_found",
	[LEDGER_HOLD_NOT_PENDING] = "hold_not_pending",
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
	{"LG006", LEDGER_HOLD_NOT_FOUND},
	{"LG007", LEDGER_HOLD_NOT_PENDING},
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

/* ---- strings handed out, and the error fields of the last call ------------ */

/* Append p to a list, which then owns it; false if memory ran out. */
static bool
strings_push(LedgerStrings *list, char *p)
{
	if (list->n == list->cap)
	{
		size_t		cap = list->cap ? list->cap * 2 : 16;
		char	  **grown = realloc(list->items, cap * sizeof(char *));

		if (grown == NULL)
			return false;
		list->items = grown;
		list->cap = cap;
	}
	list->items[list->n++] = p;
	return true;
}

static void
strings_free(LedgerStrings *list)
{
	size_t		i;

	for (i = 0; i < list->n; i++)
		free(list->items[i]);
	list->n = 0;
}

/*
 * Keep a copy of s (without trailing newlines if trim, as libpq ends its
 * messages with one) until the call after this one starts.  Returns NULL
 * if s is NULL or memory ran out.
 */
static const char *
own_copy(LedgerConn *conn, const char *s, bool trim)
{
	char	   *copy;
	size_t		len;

	if (s == NULL || (copy = strdup(s)) == NULL)
		return NULL;
	len = strlen(copy);
	while (trim && len > 0 && (copy[len - 1] == '\n' || copy[len - 1] == '\r'))
		copy[--len] = '\0';
	if (!strings_push(&conn->owned, copy))
	{
		free(copy);
		return NULL;
	}
	return copy;
}

/* Keep a copy of s for the caller (batch item strings); see own_copy. */
const char *
ledger__own(LedgerConn *conn, const char *s)
{
	return own_copy(conn, s, false);
}

/*
 * Replace the error fields.  Returns false if memory ran out, in which case
 * the fields read as empty: an error message must never itself fail a call.
 * The old values stay readable until the next call (they may be what the
 * caller passed in).
 */
bool
ledger__set_error(LedgerConn *conn, const char *message, const char *sqlstate,
				  const char *detail, const char *hint)
{
	conn->err_message = own_copy(conn, message, true);
	conn->err_sqlstate = own_copy(conn, sqlstate, false);
	conn->err_detail = own_copy(conn, detail, false);
	conn->err_hint = own_copy(conn, hint, false);
	return (message == NULL || conn->err_message != NULL) &&
		(sqlstate == NULL || conn->err_sqlstate != NULL) &&
		(detail == NULL || conn->err_detail != NULL) &&
		(hint == NULL || conn->err_hint != NULL);
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
 * Every verb starts here: the previous call's strings retire (they stay
 * valid during this call), the call's clock starts.
 */
void
ledger__begin_call(LedgerConn *conn)
{
	LedgerStrings swap;

	strings_free(&conn->retired);
	swap = conn->retired;
	conn->retired = conn->owned;
	conn->owned = swap;
	conn->err_message = conn->err_sqlstate = conn->err_detail = conn->err_hint = NULL;
	conn->last_attempts = 0;
	ledger__start_clock(conn);
}

/*
 * A posting's key, fixed for all its attempts: a copy of the caller's, or
 * a new one.  The caller's may be the previous ledger_last_key: it is
 * copied before that is freed.  False, with the error set and
 * ledger_last_key NULL, if there is none.
 */
bool
ledger__choose_key(LedgerConn *conn, const char *key)
{
	char		generated[LEDGER_KEY_BUFSIZE];
	char	   *copy = NULL;
	bool		random_ok = true;

	if (key == NULL && (random_ok = ledger__generate_key(generated, sizeof(generated))))
		key = generated;
	if (key != NULL)
		copy = strdup(key);
	free(conn->last_key);
	conn->last_key = copy;
	if (copy != NULL)
		return true;
	ledger__set_error(conn, random_ok ? "out of memory"
					  : "could not read random bytes for an idempotency key",
					  NULL, NULL, NULL);
	return false;
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

void
ledger__drop_connection(LedgerConn *conn)
{
	if (conn->pg != NULL)
		PQfinish(conn->pg);
	conn->pg = NULL;
	ledger__forget_session(conn);
}

/*
 * Defaults that bound how long a dead server or network can hold a call:
 * libpq's own defaults wait forever.  They come before the caller's
 * conninfo, which overrides each of them (PQconnectdbParams: later wins).
 */
static const char *const default_keywords[] = {
	"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
	"keepalives_count", "tcp_user_timeout"
};
static const char *const default_values[] = {
	"10", "1", "30", "10", "3", "30000"
};

#define N_DEFAULTS (sizeof(default_keywords) / sizeof(default_keywords[0]))

static bool
connect_once(LedgerConn *conn)
{
	const char *keywords[N_DEFAULTS + 3];
	const char *values[N_DEFAULTS + 3];
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < N_DEFAULTS; i++)
	{
		/* an environment variable is the user's choice: leave it to libpq */
		if (strcmp(default_keywords[i], "connect_timeout") == 0 &&
			getenv("PGCONNECT_TIMEOUT") != NULL)
			continue;
		keywords[n] = default_keywords[i];
		values[n++] = default_values[i];
	}

	/*
	 * The caller's string goes in as an expanded dbname, so it may be a
	 * conninfo string or a URI, and an empty one leaves everything to the
	 * PG* environment variables, exactly as with PQconnectdb.
	 */
	keywords[n] = "dbname";
	values[n++] = conn->conninfo;
	keywords[n] = "fallback_application_name";
	values[n++] = "libledger";
	keywords[n] = NULL;
	values[n] = NULL;

	ledger__drop_connection(conn);
	conn->pg = ledger__connect_within(conn, keywords, values);
	return conn->pg != NULL;
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
	strings_free(&conn->owned);
	strings_free(&conn->retired);
	free(conn->owned.items);
	free(conn->retired.items);
	free(conn->warning);
	free(conn->last_key);
	free(conn->conninfo);
	free(conn);
}
