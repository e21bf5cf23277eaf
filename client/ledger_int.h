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

/* The statements a connection prepares, each once, on first use. */
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
	LEDGER_N_STMTS
} LedgerStmt;

#define LEDGER_MAX_PARAMS 4

struct LedgerConn
{
	PGconn	   *pg;				/* NULL while disconnected */
	char	   *conninfo;		/* copy of the caller's, "" for none */
	int			retry_attempts;
	int			backoff_base_ms;
	int			backoff_max_ms;
	int			timeout_ms;		/* ledger_set_timeout; 0: none */
	unsigned int prepared;		/* bit per LedgerStmt prepared on pg */
	uint64_t	rng;			/* xorshift state for backoff jitter */

	/* about the last call */
	int			last_attempts;
	char	   *last_key;
	char	   *err_message;	/* NULL reads as "" */
	char	   *err_sqlstate;
	char	   *err_detail;
	char	   *err_hint;

	/* strings handed out by ledger_batch, freed at the next call */
	char	  **owned;
	size_t		n_owned;
	size_t		cap_owned;
};

/* How one attempt ended. */
typedef enum LedgerAttempt
{
	ATTEMPT_DONE,				/* a definitive answer, success or refusal */
	ATTEMPT_RETRY_NOT_SENT,		/* retryable; the request never executed */
	ATTEMPT_RETRY_ROLLED_BACK,	/* retryable; the server rolled it back
								 * (40001, 40P01) */
	ATTEMPT_RETRY_LOST			/* retryable; sent, then the connection was
								 * lost: it may have committed */
} LedgerAttempt;

/* conn.c */
extern void ledger__begin_call(LedgerConn *conn);
extern bool ledger__ensure_connected(LedgerConn *conn);
extern void ledger__drop_connection(LedgerConn *conn);
extern LedgerAttempt ledger__ensure_prepared(LedgerConn *conn, LedgerStmt stmt,
											 LedgerStatus *status);
extern const char *ledger__stmt_name(LedgerStmt stmt);
extern int	ledger__stmt_nparams(LedgerStmt stmt);
extern bool ledger__set_error(LedgerConn *conn, const char *message,
							  const char *sqlstate, const char *detail,
							  const char *hint);
extern void ledger__set_error_from_result(LedgerConn *conn, const PGresult *res);
extern void ledger__set_connection_error(LedgerConn *conn, const char *what);
extern const char *ledger__own(LedgerConn *conn, const char *s);
extern LedgerStatus ledger__status_of_sqlstate(const char *sqlstate);
extern const char *ledger__sqlstate_of_status(LedgerStatus status);

/* retry.c */
extern bool ledger__random_bytes(void *buf, size_t n);
extern bool ledger__generate_key(char *buf, size_t size);
extern void ledger__backoff(LedgerConn *conn, int attempt);
extern LedgerAttempt ledger__classify(LedgerConn *conn, const PGresult *res,
									  LedgerStatus *status);
extern LedgerStatus ledger__call(LedgerConn *conn, LedgerStmt stmt,
								 const char *const *values, bool is_write,
								 PGresult **result);
extern LedgerStatus ledger__call_params(LedgerConn *conn, LedgerStmt stmt,
										const char *const *values,
										const int *lengths, const int *formats,
										bool is_write, PGresult **result);

/* batch.c */
extern void ledger__item_take_error(LedgerConn *conn, LedgerPosting *item,
									LedgerStatus status);
extern LedgerStatus ledger__batch_malformed(LedgerConn *conn, LedgerPosting *items,
											size_t n, const char *message);
extern bool ledger__batch_begin(LedgerConn *conn, LedgerPosting *items, size_t n,
								const char *function, LedgerStatus *status);

#endif							/* LEDGER_INT_H */
