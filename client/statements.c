/*-------------------------------------------------------------------------
 *
 * statements.c
 *	  What a call sends: its statement, prepared and executed by name or
 *	  sent unnamed (ledger_set_statements), in the extension's schema.
 *
 * A prepared statement lives in one server session.  A transaction pooler
 * (pgbouncer, pool_mode = transaction) gives each transaction whichever
 * server session is free, so a statement prepared in one may be missing in
 * the next (26000), and another client's may already be there (42P05).
 * Two things make that safe:
 *
 *   - The name of a prepared statement is derived from its full text
 *     (FNV-1a of the SQL, schema included): one name always means one
 *     statement, whoever prepared it, whatever libledger version.  Running
 *     a statement another client prepared under that name runs ours.
 *   - Both refusals come before anything runs (Parse or Bind), so the call
 *     was not applied and is simply sent again: in LEDGER_STATEMENTS_AUTO,
 *     unnamed from then on.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"

/*
 * The statements.  %s is the extension's schema, read from pg_extension
 * (find_schema): nothing is looked up on the session's search_path, which a
 * database owner can set to reach look-alike functions.  Types and
 * operators are named in pg_catalog for the same reason ("bigint" and
 * "integer" are keywords that always mean pg_catalog's), and the casts pin
 * the signatures.  The name is the start of the prepared statement's name.
 */
static const struct
{
	const char *name;
	int			nparams;
	const char *sql;
}			statements[LEDGER_N_STMTS] =
{
	[LEDGER_STMT_OPEN] = {"libledger_open", 3,
	"SELECT %s.ledger_open_account($1::pg_catalog.text, $2::pg_catalog.text, $3::bigint)"},
	[LEDGER_STMT_CREDIT] = {"libledger_credit", 3,
	"SELECT %s.ledger_credit($1::pg_catalog.text, $2::bigint, $3::pg_catalog.text)"},
	[LEDGER_STMT_DEBIT] = {"libledger_debit", 3,
	"SELECT %s.ledger_debit($1::pg_catalog.text, $2::bigint, $3::pg_catalog.text)"},
	[LEDGER_STMT_TRANSFER] = {"libledger_transfer", 4,
		"SELECT %s.ledger_transfer($1::pg_catalog.text, $2::pg_catalog.text, $3::bigint,"
	" $4::pg_catalog.text)"},
	[LEDGER_STMT_BALANCE] = {"libledger_balance", 1,
	"SELECT %s.ledger_balance($1::pg_catalog.text)"},
	[LEDGER_STMT_HISTORY] = {"libledger_history", 2,
		"SELECT entry_id, amount, balance_after, transfer_id, idempotency_key,"
		" (extract(epoch FROM created_at) OPERATOR(pg_catalog.*) 1000000)::bigint"
	" FROM %s.ledger_history($1::pg_catalog.text, $2::integer)"},
	[LEDGER_STMT_VERIFY] = {"libledger_verify", 0,
	"SELECT account, problem FROM %s.ledger_verify()"},
	[LEDGER_STMT_DEBIT_BATCH] = {"libledger_debit_batch", 3,
		"SELECT ordinal, status, result FROM %s.ledger_debit_batch("
	"$1::pg_catalog.text[], $2::bigint[], $3::pg_catalog.text[])"},
	[LEDGER_STMT_TRANSFER_BATCH] = {"libledger_transfer_batch", 4,
		"SELECT ordinal, status, result FROM %s.ledger_transfer_batch("
	"$1::pg_catalog.text[], $2::pg_catalog.text[], $3::bigint[], $4::pg_catalog.text[])"},
	/* $3 NULL: from the newest */
	[LEDGER_STMT_HISTORY_BEFORE] = {"libledger_history_before", 3,
		"SELECT entry_id, amount, balance_after, transfer_id, idempotency_key,"
		" (extract(epoch FROM created_at) OPERATOR(pg_catalog.*) 1000000)::bigint"
	" FROM %s.ledger_history($1::pg_catalog.text, $2::integer, $3::bigint)"},

	/*
	 * Microseconds since 1970 as a timestamptz, exactly: whole seconds
	 * through to_timestamp (a float8, exact for any whole number of seconds
	 * in PostgreSQL's range), plus the remainder in microseconds (an exact
	 * interval).  Division truncates, so a negative time adds a negative
	 * remainder.  (All OPERATOR() forms share one precedence: the
	 * parentheses are needed.)
	 */
	[LEDGER_STMT_BALANCE_AT] = {"libledger_balance_at", 2,
		"SELECT %s.ledger_balance_at($1::pg_catalog.text,"
		" pg_catalog.to_timestamp(($2::bigint OPERATOR(pg_catalog./) 1000000::bigint)::double precision)"
		" OPERATOR(pg_catalog.+) (($2::bigint OPERATOR(pg_catalog.%) 1000000::bigint)"
	" OPERATOR(pg_catalog.*) '1 microsecond'::pg_catalog.interval))"},
	/* $3 NULL: the hold never expires */
	[LEDGER_STMT_HOLD] = {"libledger_hold", 4,
		"SELECT %s.ledger_hold($1::pg_catalog.text, $2::bigint,"
		" $3::bigint OPERATOR(pg_catalog.*) '1 millisecond'::pg_catalog.interval,"
	" $4::pg_catalog.text)"},
	/* $2 NULL: the whole hold; $3 NULL: a debit of the held account */
	[LEDGER_STMT_CAPTURE] = {"libledger_capture", 3,
	"SELECT %s.ledger_capture($1::bigint, $2::bigint, $3::pg_catalog.text)"},
	[LEDGER_STMT_RELEASE] = {"libledger_release", 1,
	"SELECT %s.ledger_release($1::bigint)"},
	[LEDGER_STMT_AVAILABLE] = {"libledger_available", 1,
	"SELECT %s.ledger_available($1::pg_catalog.text)"},
	[LEDGER_STMT_HOLDS] = {"libledger_holds", 2,
		"SELECT hold_id, amount, captured, status,"
		" (extract(epoch FROM created_at) OPERATOR(pg_catalog.*) 1000000)::bigint,"
		" (extract(epoch FROM expires_at) OPERATOR(pg_catalog.*) 1000000)::bigint,"
		" idempotency_key"
	" FROM %s.ledger_holds($1::pg_catalog.text, $2::integer)"},
	[LEDGER_STMT_SET_MODE] = {"libledger_set_mode", 2,
	"SELECT %s.ledger_set_account_mode($1::pg_catalog.text, $2::pg_catalog.text)"},
	[LEDGER_STMT_MODE] = {"libledger_mode", 1,
	"SELECT %s.ledger_account_mode($1::pg_catalog.text)"},
};

/*
 * The schema of the extension, quoted as an identifier; one row or none.
 * On a router database the functions are ledger_router's, with the same
 * names and signatures (ledger itself first, should a database have both).
 */
static const char *const find_schema_sql =
"SELECT pg_catalog.quote_ident(n.nspname), e.extname"
" FROM pg_catalog.pg_extension e"
" JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
" WHERE e.extname OPERATOR(pg_catalog.=) ANY ('{ledger,ledger_router}'::pg_catalog.text[])"
" ORDER BY e.extname LIMIT 1";


int
ledger__stmt_nparams(LedgerStmt stmt)
{
	return statements[stmt].nparams;
}

/* 64-bit FNV-1a: a name per text, not a defence against anyone. */
static uint64_t
text_hash(const char *text)
{
	uint64_t	h = UINT64_C(0xcbf29ce484222325);

	for (; *text != '\0'; text++)
		h = (h ^ (unsigned char) *text) * UINT64_C(0x100000001b3);
	return h;
}

/*
 * The text of stmt in the extension's schema, and its name, for this
 * server session; false when memory ran out.  The schema must be known.
 */
static bool
build_text(LedgerConn *conn, LedgerStmt stmt)
{
	const char *sql = statements[stmt].sql;
	const char *at = strstr(sql, "%s");
	size_t		size;

	if (conn->texts[stmt] != NULL)
		return true;
	size = strlen(sql) - 2 + strlen(conn->schema) + 1;
	conn->texts[stmt] = malloc(size);
	if (conn->texts[stmt] == NULL)
		return false;
	snprintf(conn->texts[stmt], size, "%.*s%s%s", (int) (at - sql), sql, conn->schema, at + 2);
	snprintf(conn->names[stmt], sizeof(conn->names[stmt]), "%s_%016" PRIx64,
			 statements[stmt].name, text_hash(conn->texts[stmt]));
	return true;
}

/* Forget what belonged to the server session: it is gone or replaced. */
void
ledger__forget_session(LedgerConn *conn)
{
	int			i;

	conn->prepared = 0;
	free(conn->schema);
	conn->schema = NULL;
	conn->router = false;
	for (i = 0; i < LEDGER_N_STMTS; i++)
	{
		free(conn->texts[i]);
		conn->texts[i] = NULL;
	}
}

/*
 * Run one query with no parameters and wait for its last result, within
 * the call's deadline; NULL when nothing came back.  With name, prepare
 * the query under that name instead.
 */
static PGresult *
run_query(LedgerConn *conn, const char *name, int nparams, const char *sql)
{
	PGresult   *res;
	PGresult   *last = NULL;
	bool		sent = name != NULL
		? PQsendPrepare(conn->pg, name, sql, nparams, NULL)
		: PQsendQueryParams(conn->pg, sql, 0, NULL, NULL, NULL, NULL, 0);

	while (sent && ledger__next_result(conn, &res) && res != NULL)
	{
		PQclear(last);
		last = res;
	}
	return last;
}

/*
 * Learn the extension's schema on this connection (once).  A database
 * without the extension is reported as the call of a missing function
 * would be: 42883.
 */
static LedgerAttempt
find_schema(LedgerConn *conn, LedgerStatus *status)
{
	PGresult   *res = run_query(conn, NULL, 0, find_schema_sql);
	LedgerAttempt kind;

	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		conn->schema = strdup(PQgetvalue(res, 0, 0));
		conn->router = strcmp(PQgetvalue(res, 0, 1), "ledger_router") == 0;
		PQclear(res);
		if (conn->schema != NULL)
			return ATTEMPT_DONE;
		ledger__set_error(conn, "out of memory", NULL, NULL, NULL);
		*status = LEDGER_CLIENT_ERROR;
		return ATTEMPT_DONE;
	}
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		PQclear(res);
		ledger__set_error(conn, "the ledger extension is not installed in this database",
						  "42883", NULL, "Run CREATE EXTENSION ledger as a superuser.");
		*status = LEDGER_SERVER_ERROR;
		return ATTEMPT_DONE;
	}
	kind = ledger__classify(conn, res, false, status);
	PQclear(res);
	return kind;
}

/* Whether res is an error with this SQLSTATE. */
static bool
failed_with(const PGresult *res, const char *sqlstate)
{
	const char *got = res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR
		? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return got != NULL && strcmp(got, sqlstate) == 0;
}

/*
 * Make stmt ready to be sent on this connection: the schema known and, for
 * a named statement, prepared in this server session.  Whatever goes wrong
 * here, the posting itself was not sent: ATTEMPT_RETRY_NOT_SENT, or
 * ATTEMPT_DONE with the server's refusal (e.g. the extension is missing).
 */
LedgerAttempt
ledger__ensure_prepared(LedgerConn *conn, LedgerStmt stmt, LedgerStatus *status)
{
	PGresult   *res;
	LedgerAttempt kind = ATTEMPT_DONE;

	*status = LEDGER_OK;
	if (conn->prepared & (1u << stmt))
		return ATTEMPT_DONE;
	if (conn->schema == NULL)
		kind = find_schema(conn, status);
	if (kind != ATTEMPT_DONE || *status != LEDGER_OK)
		goto not_sent;
	if (!build_text(conn, stmt))
	{
		ledger__set_error(conn, "out of memory", NULL, NULL, NULL);
		*status = LEDGER_CLIENT_ERROR;
		return ATTEMPT_DONE;
	}
	if (conn->unnamed)
		return ATTEMPT_DONE;

	res = run_query(conn, conn->names[stmt], statements[stmt].nparams, conn->texts[stmt]);
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		PQclear(res);
		conn->prepared |= 1u << stmt;
		return ATTEMPT_DONE;
	}
	if (failed_with(res, "42P05"))
	{
		/*
		 * Another client's preparation of the same text is in this server
		 * session: it is shared.  Its statement is ours (the name says so);
		 * AUTO stops preparing all the same, as a transaction pooler will
		 * move the next call to another session.
		 */
		PQclear(res);
		if (conn->statements == LEDGER_STATEMENTS_AUTO)
			conn->unnamed = true;
		else
			conn->prepared |= 1u << stmt;
		return ATTEMPT_DONE;
	}
	kind = ledger__classify(conn, res, false, status);
	PQclear(res);

not_sent:
	if (kind != ATTEMPT_DONE)
	{
		*status = LEDGER_CONNECTION_FAILED;
		kind = ATTEMPT_RETRY_NOT_SENT;
	}
	return kind;
}

/*
 * Send one call of stmt, by name or unnamed as the connection does now;
 * nothing is read.  ledger__ensure_prepared(stmt) came first.  False when
 * libpq did not queue it: then nothing went out.
 */
bool
ledger__send(LedgerConn *conn, LedgerStmt stmt, int nparams, const char *const *values,
			 const int *lengths, const int *formats)
{
	conn->sent_named = !conn->unnamed;
	if (conn->unnamed)
		return PQsendQueryParams(conn->pg, conn->texts[stmt], nparams, NULL, values,
								 lengths, formats, 0) == 1;
	return PQsendQueryPrepared(conn->pg, conn->names[stmt], nparams, values,
							   lengths, formats, 0) == 1;
}

/*
 * Whether an error with this SQLSTATE says that the statement the last send
 * named is not in the server session (26000): a transaction pooler moved
 * the call to another session, or something discarded it.  Bind refused it,
 * so nothing ran.  The session's preparations are forgotten; AUTO switches
 * to unnamed statements.
 */
bool
ledger__statement_lost(LedgerConn *conn, const char *sqlstate)
{
	if (!conn->sent_named || sqlstate == NULL || strcmp(sqlstate, "26000") != 0)
		return false;
	conn->prepared = 0;
	if (conn->statements == LEDGER_STATEMENTS_AUTO)
		conn->unnamed = true;
	return true;
}

LedgerStatus
ledger_set_statements(LedgerConn *conn, LedgerStatements how)
{
	if (conn == NULL)
		return LEDGER_CLIENT_ERROR;
	if (how != LEDGER_STATEMENTS_AUTO && how != LEDGER_STATEMENTS_PREPARED &&
		how != LEDGER_STATEMENTS_UNNAMED)
	{
		ledger__set_error(conn, "ledger_set_statements: not a LedgerStatements value",
						  NULL, NULL, NULL);
		return LEDGER_CLIENT_ERROR;
	}
	conn->statements = how;
	conn->unnamed = how == LEDGER_STATEMENTS_UNNAMED;
	return LEDGER_OK;
}
