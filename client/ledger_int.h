/*-------------------------------------------------------------------------
 *
 * ledger_int.h
 *	  libledger internals shared by its source files.  Not installed.
 *
 * Internal functions that are not static carry the prefix "ledger__" so
 * that the static library exports nothing outside the ledger_ namespace;
 * the shared library exports only what exports.txt lists.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_INT_H
#define LEDGER_INT_H

#include <stdbool.h>

#include "libpq-fe.h"
#include "ledger.h"

/* The statements of the calls (conn.c), prepared or sent unnamed. */
typedef enum LedgerStmt
{
	LEDGER_STMT_OPEN,
	LEDGER_STMT_CREDIT,
	LEDGER_STMT_DEBIT,
	LEDGER_STMT_TRANSFER,
	LEDGER_STMT_BALANCE,
	LEDGER_STMT_HISTORY,
	LEDGER_STMT_VERIFY,
	LEDGER_STMT_DEBIT_BATCH,
	LEDGER_STMT_TRANSFER_BATCH,
	LEDGER_STMT_HISTORY_BEFORE,
	LEDGER_STMT_BALANCE_AT,
	LEDGER_STMT_HOLD,
	LEDGER_STMT_CAPTURE,
	LEDGER_STMT_RELEASE,
	LEDGER_STMT_AVAILABLE,
	LEDGER_STMT_HOLDS,
	LEDGER_STMT_SET_MODE,
	LEDGER_STMT_MODE,
	LEDGER_N_STMTS
} LedgerStmt;

#define LEDGER_MAX_PARAMS 4

/* Strings handed out to the caller, freed together. */
typedef struct LedgerStrings
{
	char	  **items;
	size_t		n;
	size_t		cap;
} LedgerStrings;

struct LedgerConn
{
	PGconn	   *pg;				/* NULL while disconnected; nonblocking */
	char	   *conninfo;		/* copy of the caller's, "" for none */
	int			retry_attempts;
	int			backoff_base_ms;
	int			backoff_max_ms;
	int			timeout_ms;		/* ledger_set_timeout; 0: none */
	LedgerStatements statements;	/* ledger_set_statements */
	bool		unnamed;		/* send unnamed statements (chosen, or AUTO
								 * switched after a pooler's sign) */
	bool		sent_named;		/* the last send executed a statement by name */

	/* about the server session of pg; reset with it */
	unsigned int prepared;		/* bit per LedgerStmt prepared on pg */
	char	   *schema;			/* the extension's, quoted; NULL: not known yet */
	bool		router;			/* it is ledger_router's (outcome.c) */
	char	   *texts[LEDGER_N_STMTS];	/* each statement's SQL in that schema */
	char		names[LEDGER_N_STMTS][64];	/* and its name, from its text */
	uint64_t	rng;			/* xorshift state for backoff jitter */

	/* the call in progress */
	int64_t		deadline_us;	/* on the monotonic clock; 0: none */
	bool		out_of_time;	/* the deadline passed during this call */
	bool		warned;			/* a WARNING came since the last send */
	char	   *warning;		/* its message */

	/* about the last call */
	int			last_attempts;
	char	   *last_key;
	const char *err_message;	/* in "owned"; NULL reads as "" */
	const char *err_sqlstate;
	const char *err_detail;
	const char *err_hint;

	/*
	 * Strings handed out by this call (error fields, batch item strings)
	 * and by the previous one.  The previous call's are freed only when
	 * the next call starts after this one, so a caller may pass them back
	 * as arguments (items resent with their reported keys).
	 */
	LedgerStrings owned;
	LedgerStrings retired;
};

/* How one attempt ended. */
typedef enum LedgerAttempt
{
	ATTEMPT_DONE,				/* a definitive answer, success or refusal */
	ATTEMPT_RETRY_NOT_SENT,		/* retryable; the request never executed */
	ATTEMPT_RETRY_ROLLED_BACK,	/* retryable; the server rolled it back
								 * (40001, 40P01) */
	ATTEMPT_RETRY_TRANSIENT,	/* the server rolled it back for a passing
								 * reason (57014, 55P03, 53xxx, 25006...) */
	ATTEMPT_RETRY_LOST			/* sent, and its commit was not confirmed:
								 * it may have committed */
} LedgerAttempt;

/* What a request does next, after an attempt (outcome.c). */
typedef enum LedgerNext
{
	NEXT_DONE,					/* its status is final */
	NEXT_RETRY,					/* another attempt, if any remain */
	NEXT_UNKNOWN				/* stop: it may or may not have committed */
} LedgerNext;

/* conn.c */
extern void ledger__begin_call(LedgerConn *conn);
extern bool ledger__ensure_connected(LedgerConn *conn);
extern void ledger__drop_connection(LedgerConn *conn);
extern bool ledger__set_error(LedgerConn *conn, const char *message,
							  const char *sqlstate, const char *detail,
							  const char *hint);
extern void ledger__set_error_from_result(LedgerConn *conn, const PGresult *res);
extern void ledger__set_connection_error(LedgerConn *conn, const char *what);
extern const char *ledger__own(LedgerConn *conn, const char *s);
extern bool ledger__choose_key(LedgerConn *conn, const char *key);
extern LedgerStatus ledger__status_of_sqlstate(const char *sqlstate);
extern const char *ledger__sqlstate_of_status(LedgerStatus status);

/* statements.c: what a call sends */
extern LedgerAttempt ledger__ensure_prepared(LedgerConn *conn, LedgerStmt stmt,
											 LedgerStatus *status);
extern int	ledger__stmt_nparams(LedgerStmt stmt);
extern bool ledger__send(LedgerConn *conn, LedgerStmt stmt, int nparams,
						 const char *const *values, const int *lengths,
						 const int *formats);
extern bool ledger__statement_lost(LedgerConn *conn, const char *sqlstate);
extern void ledger__forget_session(LedgerConn *conn);

/* io.c: libpq without blocking past the call's deadline */
extern void ledger__start_clock(LedgerConn *conn);
extern int	ledger__ms_left(LedgerConn *conn);
extern bool ledger__sleep(LedgerConn *conn, long ms);
extern PGconn *ledger__connect_within(LedgerConn *conn,
									  const char *const *keywords,
									  const char *const *values);
extern bool ledger__next_result(LedgerConn *conn, PGresult **res);
extern LedgerAttempt ledger__exec(LedgerConn *conn, LedgerStmt stmt,
								  const char *const *values, const int *lengths,
								  const int *formats, bool is_write,
								  PGresult **result, LedgerStatus *status);

/* outcome.c: what an attempt means, and what follows from it */
extern void ledger__watch_notices(LedgerConn *conn, PGconn *pg);
extern bool ledger__needs_new_connection(const LedgerConn *conn,
										 LedgerAttempt kind);
extern LedgerAttempt ledger__classify(LedgerConn *conn, const PGresult *res,
									  bool is_write, LedgerStatus *status);
extern LedgerNext ledger__next(LedgerAttempt kind, LedgerStatus status,
							   const char *sqlstate, bool is_write,
							   bool *maybe_applied);
extern LedgerStatus ledger__give_up(LedgerConn *conn, LedgerStatus status,
									bool maybe_applied, const char *advice);
extern LedgerStatus ledger__unknown_outcome(LedgerConn *conn, const char *what,
											const char *advice);

/* retry.c */
extern bool ledger__random_bytes(void *buf, size_t n);
extern bool ledger__generate_key(char *buf, size_t size);
extern bool ledger__backoff(LedgerConn *conn, int attempt);
extern const char *ledger__advice(LedgerConn *conn, LedgerStmt stmt, char *buf,
								  size_t size);
extern LedgerStatus ledger__call(LedgerConn *conn, LedgerStmt stmt,
								 const char *const *values, bool is_write,
								 PGresult **result);
extern LedgerStatus ledger__call_params(LedgerConn *conn, LedgerStmt stmt,
										const char *const *values,
										const int *lengths, const int *formats,
										bool is_write, PGresult **result);

/* verbs.c: what every verb shares */
extern bool ledger__begin(LedgerConn *conn);
extern LedgerStatus ledger__client_error(LedgerConn *conn, const char *message);
extern bool ledger__parse_int64(LedgerConn *conn, const PGresult *res, int row, int col,
								int64_t *out);
extern LedgerStatus ledger__single_int64(LedgerConn *conn, PGresult *res, bool is_write,
										 const char *advice, int64_t *out);
extern size_t ledger__strings_size(const PGresult *res, int col);
extern const char *ledger__copy_string(const PGresult *res, int row, int col, char **pool);

/* batch.c */
extern void ledger__item_take_error(LedgerConn *conn, LedgerPosting *item,
									LedgerStatus status);
extern LedgerStatus ledger__batch_malformed(LedgerConn *conn, LedgerPosting *items,
											size_t n, const char *message);
extern bool ledger__batch_begin(LedgerConn *conn, LedgerPosting *items, size_t n,
								const char *function, LedgerStatus *status);
extern LedgerStatus ledger__batch_keys(LedgerConn *conn, LedgerPosting *items,
									   size_t n);
extern LedgerStatus ledger__batch_status(LedgerConn *conn,
										 const LedgerPosting *items, size_t n);

#endif							/* LEDGER_INT_H */
