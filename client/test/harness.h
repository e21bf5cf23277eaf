/*-------------------------------------------------------------------------
 *
 * harness.h
 *	  What the client tests share (harness.c): TAP output, the admin
 *	  connection to the test database, and small helpers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_TEST_HARNESS_H
#define LEDGER_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "libpq-fe.h"
#include "ledger.h"

extern int	n_checks;
extern int	n_failed;
extern const char *db;			/* LEDGER_TEST_DB */
extern const char *host;		/* PGHOST */
extern int	port;				/* PGPORT */
extern PGconn *admin;			/* a superuser connection to db */

/* One TAP line; returns ok.  Safe from any thread. */
#ifdef __GNUC__
extern bool check(bool ok, const char *fmt,...) __attribute__((format(printf, 2, 3)));
extern void admin_exec(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern int64_t admin_int(const char *fmt,...) __attribute__((format(printf, 1, 2)));
#else
extern bool check(bool ok, const char *fmt,...);
extern void admin_exec(const char *fmt,...);
extern int64_t admin_int(const char *fmt,...);
#endif

/* A status check that shows the connection's error when it fails. */
#define CHECK_STATUS(conn, got, want, what) \
	check((got) == (want), "%s: %s (want %s)%s%s", what, ledger_status_name(got), \
		  ledger_status_name(want), (got) == (want) ? "" : " -- ", \
		  (got) == (want) ? "" : ledger_error_message(conn))

extern void die(const char *what);
extern int64_t admin_int_params(const char *sql, int nparams, const char *const *values);
extern PGconn *raw_connect(const char *conninfo);
extern LedgerConn *connect_to(const char *conninfo, int attempts);
extern char *conninfo_for(const char *extra);
extern double now_ms(void);
extern void sleep_ms(int ms);
extern int64_t balance_of(const char *account);
extern int64_t entries_with_key(const char *key);
extern int	closed_port(void);
extern void posting(LedgerPosting *p, LedgerOp op, const char *account, const char *to,
					int64_t amount, const char *key);
extern bool is_generated_key(const char *key);

/* the suites */
extern void test_outcomes(void);
extern void test_trust(void);
extern void test_holds(void);
extern void test_escrow(void);
extern void test_pooler(void);

#endif
