/*
 * bank.c: Jepsen's bank workload against the ledger (run by bank.sh).
 *
 * Usage: bank [-k ACCOUNTS] [-m WRITERS] [-r READERS] [-t SECONDS]
 *             [-s SEED] [-b floor|total|naive|hold|release] CONNINFO
 *
 * Opens K accounts "acct-000".. (every fourth with an overdraft floor of
 * -500, the others with floor 0), credits each with 1000, and opens a
 * "source" account without a floor, last (so it has the highest
 * account_id).  The total of all balances is then K * 1000, and every
 * operation below keeps it constant:
 *
 *   transfer    ledger_transfer between two accounts, source included,
 *               under READ COMMITTED or (one in four) REPEATABLE READ,
 *               one in three with an idempotency key
 *   withdrawal  BEGIN; ledger_debit(acct); ledger_credit(source); COMMIT
 *   deposit     BEGIN; ledger_credit(acct); ledger_debit(source); COMMIT
 *               (both statements in random order, so these two race for
 *               the same rows in opposite orders: deadlocks, 40P01)
 *   replay      a committed keyed transfer or hold sent again with the
 *               same key: must return the same transfer or hold id and
 *               change nothing (a hold's expiry spelled otherwise, e.g.
 *               "1500 milliseconds" for "1.500 seconds"); or with another
 *               amount: must be refused with LG003
 *   hold        ledger_hold on an account (one in eight on the source),
 *               never expiring, for an hour, or for 20 ms to 1 s; one in
 *               three with a key; the hold is the writer's own
 *   capture     ledger_capture of one of the writer's pending holds: all
 *               of it (amount NULL or its amount) or a part; to another
 *               account, to the source (to_account), or as a debit with a
 *               ledger_credit of the source in the same transaction, in
 *               random order ("a debit against the source"); a hold on the
 *               source is captured to an account
 *   release     ledger_release of one of the writer's pending holds
 *   sweep       ledger_expire_holds()
 *   poke        an ended hold of the writer's asked again: a capture with
 *               the same arguments returns the first result, with another
 *               amount LG003, a release of it LG007; a released or expired
 *               hold: release false, capture LG007
 *
 * M writer threads, each on its own connection, run these for T seconds.
 * A refusal (LG001, insufficient funds) rolls the transaction back; 40001
 * and 40P01 roll back and retry the same operation (same key).  Each
 * writer keeps the net change it committed to every account, and a record
 * of every hold it made: account, amount, expiry, and how it ended
 * (captured for how much to where, released, found expired, or still
 * pending as far as the writer knows).  A capture is never refused for
 * funds (the hold reserved them); LG007 or a release returning false is
 * accepted only for a hold that expires, and only if the client's clock
 * (the server's, on this machine) does not prove the hold was still
 * pending: a capture or a release sent 10 ms after the hold's expiry
 * must not succeed, and one answered 10 ms before it must.
 *
 * R reader threads check, in one REPEATABLE READ snapshot each time, that
 * the balances add up to K * 1000 and that no account is below its floor
 * (the floors as opened, known to the program, not read back), nor its
 * available balance (balance less the pending holds that have not
 * expired).  They alternate between one scan of ledger.accounts and
 * ledger.pending_holds (which also checks that accounts.held is the sum
 * of the pending holds) and K + 1 separate ledger_balance() and
 * ledger_available() calls (which only agree because the snapshot is
 * shared), and compare one account's balance with the balance_after of
 * its newest ledger_history() row.  Every debit's and capture's returned
 * balance is also checked against the floor.
 *
 * Why the available check is sound with a clock read after the snapshot
 * (the scan reads clock_timestamp() during the statement; ledger_available
 * reads the clock at its call): every change of an account's balance or
 * pending holds is made under its row lock, which checks available >=
 * floor at the clock read under that lock (a capture or a release only
 * raises what is available), and that clock is earlier than the commit,
 * so earlier than any snapshot that sees it.  Between the last change a
 * snapshot sees and any later instant, the snapshot's pending holds can
 * only stop reserving (they expire), never start: so available at a
 * later clock is at least available at that change, which was at least
 * the floor.  A clock read *before* the snapshot (say the transaction's
 * now()) would not be sound: a debit committed just before the snapshot
 * may spend what a hold reserved until an instant after now().
 *
 * At the end: ledger_verify() is empty (it checks held against the
 * pending holds, available >= floor, and that every captured hold has
 * its posting); the total is K * 1000; every balance equals 1000 plus the
 * net change the writers committed to it (the source: 0 plus its
 * change); ledger.transfers has exactly one row per committed transfer and
 * capture to an account (replays add none); no balance nor available
 * balance is below its floor; and ledger.holds holds exactly the holds
 * the writers made, each as the writer left it: captured for the amount
 * it captured to the account it named (hold_ends), released, expired, or,
 * if the writer did not end it, pending (ledger_holds; one with an
 * expiry may read expired) and still in ledger.pending_holds.
 *
 * -b breaks the run on purpose, to show the checks catch it (the run must
 * then FAIL): "naive" reads the K + 1 balances without a shared snapshot
 * (autocommit); "total" adds 1 to a balance behind the ledger's back (a
 * superuser UPDATE) a third of the way in; "floor" removes the floor of a
 * floor-0 account the same way, as a debit without the floor check would;
 * "hold" adds a hold of more than a floor-0 account has available, as a
 * hold without the available check would (the readers must see available
 * below the floor); "release" ends one of the writers' pending holds
 * behind their back, with consistent bookkeeping (ledger_verify() stays
 * empty: only the per-hold records can tell).
 *
 * Prints the counts (transfers, holds, refused, retries, snapshots
 * checked, anomalies) and exits 0 only if every check passed.
 */
#define _POSIX_C_SOURCE 200809L	/* getopt, clock_gettime, nanosleep */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define INITIAL 1000
#define MAX_ATTEMPTS 1000		/* retries of one operation on 40001/40P01 */
#define REPLAY_RING 64
#define MAX_REPORTS 10			/* anomalies printed in full */
#define MAX_OPEN_HOLDS 6		/* a writer's pending holds at most */
#define CLOCK_MARGIN_MS 10		/* slack on the expiry bounds (same clock) */

#define TRANSFER_SQL "SELECT ledger_transfer($1::text, $2::text, $3::bigint, $4::text)"
#define DEBIT_SQL "SELECT ledger_debit($1::text, $2::bigint, $3::text)"
#define CREDIT_SQL "SELECT ledger_credit($1::text, $2::bigint, $3::text)"
#define BALANCE_SQL "SELECT ledger_balance($1::text)"
/* the newest entry's balance_after; an escrow entry not folded yet has none */
#define HISTORY_SQL "SELECT balance_after FROM ledger_history($1::text, 1)"
#define SCAN_SQL "SELECT name, balance FROM ledger.accounts"
#define HOLD_SQL "SELECT ledger_hold($1::text, $2::bigint, $3::interval, $4::text)"
#define CAPTURE_SQL "SELECT ledger_capture($1::bigint, $2::bigint, $3::text)"
#define RELEASE_SQL "SELECT ledger_release($1::bigint)::int"
#define SWEEP_SQL "SELECT ledger_expire_holds()"
#define AVAILABLE_SQL "SELECT ledger_available($1::text)"

/*
 * The readers' scan: balances, what accounts.held says, the sum of the
 * pending holds, and the part of it that still reserves at a clock read
 * during the statement, so after the snapshot (see the header).
 */
#define READ_SCAN_SQL \
	"WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS t) " \
	"SELECT a.name, a.balance + coalesce((SELECT sum(e.amount) FROM ledger.entries e " \
	"                                      WHERE e.account_id = a.account_id " \
	"                                        AND e.balance_after IS NULL), 0)::bigint, a.held, " \
	"       coalesce(sum(p.amount), 0)::bigint, " \
	"       coalesce(sum(p.amount) FILTER (WHERE p.expires_at IS NULL " \
	"                                         OR p.expires_at > c.t), 0)::bigint " \
	"  FROM ledger.accounts a CROSS JOIN clock c " \
	"  LEFT JOIN ledger.pending_holds p ON p.account_id = a.account_id " \
	" GROUP BY a.account_id, a.name, a.balance, a.held"

/* Every hold, as ledger_holds() reports it, with its end's destination. */
#define FINAL_HOLDS_SQL \
	"SELECT x.hold_id, a.name, x.amount, x.expires_at IS NULL, x.status, " \
	"       x.captured, t.name, " \
	"       EXISTS (SELECT FROM ledger.pending_holds p WHERE p.hold_id = x.hold_id) " \
	"  FROM ledger.accounts a, LATERAL ledger_holds(a.name, 2147483647) x " \
	"  LEFT JOIN ledger.hold_ends e ON e.hold_id = x.hold_id " \
	"  LEFT JOIN ledger.accounts t ON t.account_id = e.to_account_id " \
	" ORDER BY x.hold_id"

typedef enum
{
	BREAK_NONE, BREAK_NAIVE, BREAK_TOTAL, BREAK_FLOOR, BREAK_HOLD, BREAK_RELEASE
} break_mode;

/* configuration, read-only once the threads run */
static int	escrow = 0;			/* -e: half the accounts in escrow mode */
static int	naccounts = 10;
static int	nwriters = 8;
static int	nreaders = 2;
static int	seconds = 15;
static uint64_t seed;
static break_mode breakage = BREAK_NONE;
static const char *conninfo;
static char (*names)[16];		/* naccounts + 1 names; the last is the source */
static long long *floors;		/* floor per regular account */
static struct timespec deadline;

/* shared state, under the mutex */
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static int	fatal;
static long long anomalies;

typedef struct
{
	char		key[48];
	int			from;
	int			to;
	long long	amount;
	long long	result;
} keyed_transfer;

typedef enum
{
	HOLD_PENDING, HOLD_CAPTURED, HOLD_RELEASED, HOLD_EXPIRED
} hold_state;

static const char *const hold_state_names[] = {"pending", "captured", "released", "expired"};

/* A hold a writer made, and what the writer knows of its end. */
typedef struct
{
	long long	id;
	int			account;		/* index; naccounts is the source */
	long long	amount;
	int			expiry_ms;		/* 0: never expires */
	double		sent_ms;		/* wall clock around the hold's statement */
	double		answered_ms;
	hold_state	state;
	long long	captured;		/* HOLD_CAPTURED: the amount posted */
	long long	capture_arg;	/* its amount argument; 0 for NULL */
	int			capture_to;		/* account index, or -1: a debit */
	long long	result;			/* the capture's returned balance */
	int			matched;		/* final check: seen in ledger.holds */
} hold_record;

typedef struct
{
	char		key[48];
	int			account;
	long long	amount;
	int			expiry_ms;
	long long	id;
} keyed_hold;

typedef struct
{
	int			id;
	pthread_t	thread;
	uint64_t	rng;
	PGconn	   *conn;
	long long  *delta;			/* writers: committed net change per account */
	keyed_transfer ring[REPLAY_RING];
	int			ring_used;
	keyed_hold	hold_ring[REPLAY_RING];
	int			hold_ring_used;
	unsigned long long nkeys;
	hold_record *holds;			/* writers: every hold made, in order */
	int			nholds;
	int			holds_size;
	int			open[MAX_OPEN_HOLDS];	/* indexes of pending holds */
	int			nopen;
	/* counts */
	long long	transfers;		/* committed, new (not replays) */
	long long	keyed;
	long long	via_source;
	long long	deposits;
	long long	withdrawals;
	long long	refused;
	long long	replays;
	long long	conflicts;
	long long	retry_40001;
	long long	retry_40P01;
	long long	reads_scan;
	long long	reads_calls;
	long long	transfers_by_capture;	/* captures to an account: a transfer row each */
	long long	holds_made;
	long long	holds_refused;
	long long	captures;
	long long	captures_partial;
	long long	releases;
	long long	found_expired;	/* LG007 or release false: it had expired */
	long long	swept;
	long long	pokes;
} worker;

static void
report(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void
set_fatal(void)
{
	pthread_mutex_lock(&mutex);
	fatal = 1;
	pthread_mutex_unlock(&mutex);
}

static int
is_fatal(void)
{
	int			f;

	pthread_mutex_lock(&mutex);
	f = fatal;
	pthread_mutex_unlock(&mutex);
	return f;
}

/* Count an anomaly; print the first MAX_REPORTS of them. */
static void
anomaly(const char *fmt,...)
{
	va_list		ap;

	pthread_mutex_lock(&mutex);
	anomalies++;
	if (anomalies <= MAX_REPORTS)
	{
		fprintf(stderr, "bank: ANOMALY: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&mutex);
}

static int
time_is_up(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline.tv_sec ||
		(now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

/* The wall clock in ms: the clock the server's clock_timestamp() reads. */
static double
wall_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (double) now.tv_sec * 1000.0 + (double) now.tv_nsec / 1e6;
}

/* splitmix64 */
static uint64_t
next_random(uint64_t *state)
{
	uint64_t	z = (*state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* uniform in [0, n) */
static int
random_below(worker *w, int n)
{
	return (int) (next_random(&w->rng) % (uint64_t) n);
}

static PGconn *
connect_or_die(const char *who)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		report("bank: %s: cannot connect: %s", who,
			   conn != NULL ? PQerrorMessage(conn) : "out of memory\n");
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Run a command that returns no rows; 0 on success, else reports. */
static int
command(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	int			ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		report("bank: %s: %s", sql, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

/* SQLSTATE of a failed result ("" if none) */
static const char *
sqlstate_of(const PGresult *res)
{
	const char *s = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s != NULL ? s : "";
}

/*
 * One statement returning one bigint.  Returns 0 and sets *value on
 * success; otherwise copies the SQLSTATE to state (6 bytes) and returns -1;
 * the caller decides.
 */
static int
query_bigint(PGconn *conn, const char *sql, int nparams, const char *const *params,
			 long long *value, char *state, char *message, size_t message_size)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int			rc = -1;

	state[0] = '\0';
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK &&
		PQntuples(res) == 1 && PQnfields(res) == 1 && !PQgetisnull(res, 0, 0))
	{
		*value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		rc = 0;
	}
	else
	{
		snprintf(state, 6, "%s", sqlstate_of(res));
		if (state[0] == '\0')
			snprintf(state, 6, "?????");
		snprintf(message, message_size, "%s",
				 res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK
				 ? "unexpected result shape\n"
				 : (res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn)));
	}
	PQclear(res);
	return rc;
}

/* ---------------------------------------------------------------- writers */

typedef enum
{
	OP_TRANSFER, OP_WITHDRAWAL, OP_DEPOSIT, OP_HOLD, OP_CAPTURE, OP_RELEASE
} op_kind;

typedef enum
{
	DONE, REFUSED, NOT_PENDING, RETRY, FAILED
} outcome;

typedef struct
{
	op_kind		kind;
	int			from;			/* account index; naccounts is the source */
	int			to;				/* capture: -1 for a debit (credit of the source) */
	long long	amount;			/* capture: the amount argument, 0 for NULL */
	int			repeatable;		/* REPEATABLE READ instead of READ COMMITTED */
	int			source_first;	/* the source's statement first */
	const char *key;			/* transfer and hold only; NULL without */
	int			expiry_ms;		/* hold: 0 never expires */
	int			hold;			/* capture, release: index in the writer's holds */
	long long	result;			/* transfer or hold id, capture's balance, release's 1/0 */
	long long	posted;			/* capture: the amount posted */
	double		sent_ms;		/* wall clock around the hold, capture or release statement */
	double		answered_ms;
} operation;

/* Check a returned balance against the account's floor. */
static void
check_returned_balance(int account, long long balance, const char *what)
{
	if (account < naccounts && balance < floors[account])
		anomaly("%s returned balance %lld of %s, below its floor %lld",
				what, balance, names[account], floors[account]);
}

/* Classify a failed statement; on FAILED prints the error. */
static outcome
classify(worker *w, const char *state, const char *message, const char *what)
{
	if (strcmp(state, "LG001") == 0)
		return REFUSED;
	if (strcmp(state, "LG007") == 0)
		return NOT_PENDING;
	if (strcmp(state, "40001") == 0)
	{
		w->retry_40001++;
		return RETRY;
	}
	if (strcmp(state, "40P01") == 0)
	{
		w->retry_40P01++;
		return RETRY;
	}
	report("bank: writer %d: %s failed with %s: %s", w->id, what, state, message);
	return FAILED;
}

/* An interval of ms, spelled one way or (for replays) another. */
static void
format_expiry(char *buf, size_t size, int expiry_ms, int other_spelling)
{
	if (expiry_ms == 3600 * 1000)
		snprintf(buf, size, other_spelling ? "60 minutes" : "1 hour");
	else if (other_spelling)
		snprintf(buf, size, "%d.%03d seconds", expiry_ms / 1000, expiry_ms % 1000);
	else
		snprintf(buf, size, "%d milliseconds", expiry_ms);
}

/* One statement of an attempt; DONE with *value, or how it failed. */
static outcome
step(worker *w, const char *sql, int nparams, const char *const *params, long long *value,
	 const char *what)
{
	char		state[6], message[512];

	if (query_bigint(w->conn, sql, nparams, params, value, state, message, sizeof(message)) != 0)
		return classify(w, state, message, what);
	return DONE;
}

/* The hold, capture or release statement of an attempt, timed. */
static outcome
hold_step(worker *w, operation *op, const char *sql, int nparams, const char *const *params,
		  long long *value, const char *what)
{
	outcome		out;

	op->sent_ms = wall_ms();
	out = step(w, sql, nparams, params, value, what);
	op->answered_ms = wall_ms();
	return out;
}

/* One attempt at an operation, in one transaction. */
static outcome
attempt(worker *w, operation *op)
{
	char		state[6], message[512], amount[32], id[32], expiry[32];
	const char *params[4];
	long long	value;
	int			in_txn = op->repeatable || op->kind == OP_WITHDRAWAL ||
		op->kind == OP_DEPOSIT || (op->kind == OP_CAPTURE && op->to < 0);
	outcome		out = DONE;

	snprintf(amount, sizeof(amount), "%lld", op->amount);
	if (in_txn && command(w->conn, op->repeatable
						  ? "BEGIN ISOLATION LEVEL REPEATABLE READ"
						  : "BEGIN ISOLATION LEVEL READ COMMITTED") != 0)
		return FAILED;

	switch (op->kind)
	{
		case OP_TRANSFER:
			params[0] = names[op->from];
			params[1] = names[op->to];
			params[2] = amount;
			params[3] = op->key;
			out = step(w, TRANSFER_SQL, 4, params, &value, "ledger_transfer");
			if (out == DONE)
				op->result = value;
			break;
		case OP_WITHDRAWAL:
		case OP_DEPOSIT:
			{
				/* withdrawal: debit acct, credit source; deposit: the reverse */
				int			debited = op->kind == OP_WITHDRAWAL ? op->from : naccounts;
				int			credited = op->kind == OP_WITHDRAWAL ? naccounts : op->to;
				int			i;

				for (i = 0; i < 2 && out == DONE; i++)
				{
					int			debit_now = (i == 0) == ((debited == naccounts) == op->source_first);

					params[0] = names[debit_now ? debited : credited];
					params[1] = amount;
					params[2] = NULL;
					out = step(w, debit_now ? DEBIT_SQL : CREDIT_SQL, 3, params, &value,
							   debit_now ? "ledger_debit" : "ledger_credit");
					if (out == DONE && debit_now)
						check_returned_balance(debited, value, "ledger_debit");
				}
			}
			break;
		case OP_HOLD:
			params[0] = names[op->from];
			params[1] = amount;
			if (op->expiry_ms > 0)
				format_expiry(expiry, sizeof(expiry), op->expiry_ms, 0);
			params[2] = op->expiry_ms > 0 ? expiry : NULL;
			params[3] = op->key;
			out = hold_step(w, op, HOLD_SQL, 4, params, &value, "ledger_hold");
			if (out == DONE)
				op->result = value;
			break;
		case OP_CAPTURE:
			{
				hold_record *h = &w->holds[op->hold];
				int			i;

				/* as a debit: with a credit of the source, in random order */
				op->posted = op->amount != 0 ? op->amount : h->amount;
				snprintf(id, sizeof(id), "%lld", h->id);
				for (i = 0; i < (op->to < 0 ? 2 : 1) && out == DONE; i++)
				{
					if (op->to < 0 && (i == 0) == op->source_first)
					{
						snprintf(amount, sizeof(amount), "%lld", op->posted);
						params[0] = names[naccounts];
						params[1] = amount;
						params[2] = NULL;
						out = step(w, CREDIT_SQL, 3, params, &value, "ledger_credit");
						continue;
					}
					snprintf(amount, sizeof(amount), "%lld", op->amount);
					params[0] = id;
					params[1] = op->amount != 0 ? amount : NULL;
					params[2] = op->to >= 0 ? names[op->to] : NULL;
					out = hold_step(w, op, CAPTURE_SQL, 3, params, &value, "ledger_capture");
					if (out == DONE)
					{
						op->result = value;
						check_returned_balance(h->account, value, "ledger_capture");
					}
				}
			}
			break;
		case OP_RELEASE:
			snprintf(id, sizeof(id), "%lld", w->holds[op->hold].id);
			params[0] = id;
			out = hold_step(w, op, RELEASE_SQL, 1, params, &value, "ledger_release");
			if (out == DONE)
				op->result = value;
			break;
	}

	if (in_txn)
	{
		if (out == DONE)
		{
			PGresult   *res = PQexec(w->conn, "COMMIT");

			if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
			{
				snprintf(message, sizeof(message), "%s",
						 res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(w->conn));
				snprintf(state, sizeof(state), "%s", sqlstate_of(res));
				out = classify(w, state, message, "COMMIT");
			}
			PQclear(res);
		}
		else if (out != FAILED || PQstatus(w->conn) == CONNECTION_OK)
		{
			if (command(w->conn, "ROLLBACK") != 0)
				out = FAILED;
		}
	}
	return out;
}

/* Run an operation to completion: retried on 40001/40P01. */
static outcome
perform(worker *w, operation *op)
{
	int			i;

	for (i = 0; i < MAX_ATTEMPTS; i++)
	{
		outcome		out = attempt(w, op);

		if (out != RETRY)
			return out;
	}
	report("bank: writer %d: gave up after %d attempts\n", w->id, MAX_ATTEMPTS);
	return FAILED;
}

/* One statement in autocommit, retried on 40P01 (it waits for row locks). */
static int
autocommit_call(worker *w, const char *sql, int nparams, const char *const *params,
				long long *value, char *state, char *message, size_t message_size)
{
	int			i, rc = -1;

	for (i = 0; i < MAX_ATTEMPTS; i++)
	{
		rc = query_bigint(w->conn, sql, nparams, params, value, state, message, message_size);
		if (rc == 0 || (strcmp(state, "40P01") != 0 && strcmp(state, "40001") != 0))
			break;
		if (strcmp(state, "40P01") == 0)
			w->retry_40P01++;
		else
			w->retry_40001++;
	}
	return rc;
}

/* Send a committed keyed transfer again: same id, or LG003 if altered. */
static int
replay_transfer(worker *w)
{
	keyed_transfer *t = &w->ring[random_below(w, w->ring_used)];
	int			altered = random_below(w, 4) == 0;
	char		amount[32], state[6], message[512];
	const char *params[4];
	long long	value;

	snprintf(amount, sizeof(amount), "%lld", t->amount + (altered ? 1 : 0));
	params[0] = names[t->from];
	params[1] = names[t->to];
	params[2] = amount;
	params[3] = t->key;
	/* it waits for the accounts' locks like any transfer: may deadlock */
	if (autocommit_call(w, TRANSFER_SQL, 4, params, &value, state, message,
						sizeof(message)) == 0)
	{
		if (altered)
			anomaly("key %s reused with amount %s was accepted (transfer %lld)",
					t->key, amount, value);
		else if (value != t->result)
			anomaly("replay of key %s returned transfer %lld, first %lld",
					t->key, value, t->result);
		else
			w->replays++;
		return 0;
	}
	if (altered && strcmp(state, "LG003") == 0)
	{
		w->conflicts++;
		return 0;
	}
	report("bank: writer %d: replay of %s failed with %s: %s", w->id, t->key, state, message);
	return -1;
}

/*
 * Send a committed keyed hold again, its expiry spelled otherwise: the same
 * hold id even after the hold ended, or LG003 if the amount is altered.
 */
static int
replay_hold(worker *w)
{
	keyed_hold *k = &w->hold_ring[random_below(w, w->hold_ring_used)];
	int			altered = random_below(w, 4) == 0;
	char		amount[32], expiry[32], state[6], message[512];
	const char *params[4];
	long long	value;

	snprintf(amount, sizeof(amount), "%lld", k->amount + (altered ? 1 : 0));
	if (k->expiry_ms > 0)
		format_expiry(expiry, sizeof(expiry), k->expiry_ms, 1);
	params[0] = names[k->account];
	params[1] = amount;
	params[2] = k->expiry_ms > 0 ? expiry : NULL;
	params[3] = k->key;
	if (autocommit_call(w, HOLD_SQL, 4, params, &value, state, message, sizeof(message)) == 0)
	{
		if (altered)
			anomaly("hold key %s reused with amount %s was accepted (hold %lld)",
					k->key, amount, value);
		else if (value != k->id)
			anomaly("replay of hold key %s returned hold %lld, first %lld", k->key, value, k->id);
		else
			w->replays++;
		return 0;
	}
	if (altered && strcmp(state, "LG003") == 0)
	{
		w->conflicts++;
		return 0;
	}
	report("bank: writer %d: replay of hold key %s failed with %s: %s", w->id, k->key, state,
		   message);
	return -1;
}

/*
 * Ask an ended hold of the writer's again; the answer must be the one
 * ARCHITECTURE §7 gives for its end.  Returns -1 on an unexpected error.
 */
static int
poke(worker *w)
{
	hold_record *h = NULL;
	char		id[32], amount[32], state[6], message[512];
	const char *params[3];
	long long	value;
	int			i, tries, rc;

	for (tries = 0; tries < 8 && h == NULL; tries++)
	{
		i = random_below(w, w->nholds);
		if (w->holds[i].state != HOLD_PENDING)
			h = &w->holds[i];
	}
	if (h == NULL)
		return 0;
	w->pokes++;
	snprintf(id, sizeof(id), "%lld", h->id);
	params[0] = id;
	if (h->state == HOLD_CAPTURED && random_below(w, 4) != 0)
	{
		/* the same capture again, or (one in three) another amount */
		int			other = random_below(w, 3) == 0;
		long long	arg = h->capture_arg;

		if (other)
			arg = h->captured > 1 ? h->captured - 1 : h->captured + 1;
		snprintf(amount, sizeof(amount), "%lld", arg);
		params[1] = arg != 0 ? amount : NULL;
		params[2] = h->capture_to >= 0 ? names[h->capture_to] : NULL;
		rc = autocommit_call(w, CAPTURE_SQL, 3, params, &value, state, message, sizeof(message));
		if (!other && rc == 0 && value != h->result)
			anomaly("capture of hold %lld again returned %lld, first %lld", h->id, value, h->result);
		else if (!other && rc != 0)
			anomaly("capture of hold %lld again with the same arguments failed with %s: %s",
					h->id, state, message);
		else if (other && rc == 0)
			anomaly("capture of hold %lld again for %s was accepted (first for %lld)",
					h->id, amount, h->captured);
		else if (other && strcmp(state, "LG003") != 0)
			anomaly("capture of hold %lld again for %s failed with %s, not LG003: %s",
					h->id, amount, state, message);
		return 0;
	}
	if (h->state == HOLD_CAPTURED || random_below(w, 2) == 0)
	{
		/* a release: LG007 if captured, else false */
		rc = autocommit_call(w, RELEASE_SQL, 1, params, &value, state, message, sizeof(message));
		if (h->state == HOLD_CAPTURED && (rc == 0 || strcmp(state, "LG007") != 0))
			anomaly("release of captured hold %lld: %s, not LG007", h->id,
					rc == 0 ? "accepted" : state);
		else if (h->state != HOLD_CAPTURED && (rc != 0 || value != 0))
			anomaly("release of %s hold %lld: %s, not false", hold_state_names[h->state], h->id,
					rc == 0 ? "true" : state);
		return 0;
	}
	/* a capture of a released or expired hold: LG007 */
	params[1] = NULL;
	params[2] = NULL;
	rc = autocommit_call(w, CAPTURE_SQL, 3, params, &value, state, message, sizeof(message));
	if (rc == 0 || strcmp(state, "LG007") != 0)
		anomaly("capture of %s hold %lld: %s, not LG007", hold_state_names[h->state], h->id,
				rc == 0 ? "accepted" : state);
	return 0;
}

/* ledger_expire_holds(): how many it recorded. */
static int
sweep(worker *w)
{
	char		state[6], message[512];
	long long	value;

	if (autocommit_call(w, SWEEP_SQL, 0, NULL, &value, state, message, sizeof(message)) != 0)
	{
		report("bank: writer %d: ledger_expire_holds() failed with %s: %s", w->id, state, message);
		return -1;
	}
	w->swept += value;
	return 0;
}

/*
 * Whether the clock proves hold h was still pending (1), had expired (-1)
 * at the statement of op, or cannot tell (0).  The hold's expires_at was
 * read between h->sent_ms and h->answered_ms, op's clock between
 * op->sent_ms and op->answered_ms, all from the same wall clock.
 */
static int
expiry_known(const hold_record *h, const operation *op)
{
	if (h->expiry_ms == 0)
		return 1;
	if (op->answered_ms + CLOCK_MARGIN_MS < h->sent_ms + h->expiry_ms)
		return 1;
	if (op->sent_ms > h->answered_ms + h->expiry_ms + CLOCK_MARGIN_MS)
		return -1;
	return 0;
}

/* Append a hold to the writer's records; its index, or -1. */
static int
record_hold(worker *w, const operation *op)
{
	hold_record *h;

	if (w->nholds == w->holds_size)
	{
		int			size = w->holds_size > 0 ? w->holds_size * 2 : 256;
		hold_record *grown = realloc(w->holds, (size_t) size * sizeof(hold_record));

		if (grown == NULL)
		{
			report("bank: out of memory\n");
			return -1;
		}
		w->holds = grown;
		w->holds_size = size;
	}
	h = &w->holds[w->nholds];
	memset(h, 0, sizeof(*h));
	h->id = op->result;
	h->account = op->from;
	h->amount = op->amount;
	h->expiry_ms = op->expiry_ms;
	h->sent_ms = op->sent_ms;
	h->answered_ms = op->answered_ms;
	h->state = HOLD_PENDING;
	h->capture_to = -1;
	return w->nholds++;
}

/* Remove hold index from the writer's open holds. */
static void
close_hold(worker *w, int hold)
{
	int			i;

	for (i = 0; i < w->nopen; i++)
		if (w->open[i] == hold)
		{
			w->open[i] = w->open[--w->nopen];
			return;
		}
}

/* Draw a hold, or a capture or release of one of the writer's pending holds. */
static void
draw_hold_operation(worker *w, operation *op, int end_one, char *key, size_t key_size)
{
	if (!end_one || w->nopen == 0)
	{
		int			d = random_below(w, 4);

		op->kind = OP_HOLD;
		op->from = random_below(w, 8) == 0 ? naccounts : random_below(w, naccounts);
		op->amount = 1 + random_below(w, INITIAL / 4);
		op->expiry_ms = d < 2 ? 0 : d == 2 ? 3600 * 1000 : 20 + random_below(w, 981);
		if (random_below(w, 3) == 0)
		{
			snprintf(key, key_size, "w%d-h%llu", w->id, ++w->nkeys);
			op->key = key;
		}
		return;
	}
	op->hold = w->open[random_below(w, w->nopen)];
	op->from = w->holds[op->hold].account;
	if (random_below(w, 3) == 0)
	{
		op->kind = OP_RELEASE;
		return;
	}
	op->kind = OP_CAPTURE;
	switch (random_below(w, 3))
	{
		case 0:
			op->amount = 0;		/* NULL: the whole hold */
			break;
		case 1:
			op->amount = w->holds[op->hold].amount;
			break;
		default:
			op->amount = 1 + random_below(w, (int) w->holds[op->hold].amount);
			break;
	}
	/* a hold on the source goes to an account; others: to an account, the source, or a debit */
	if (op->from == naccounts || random_below(w, 5) < 2)
		do
			op->to = random_below(w, naccounts);
		while (op->to == op->from);
	else if (random_below(w, 3) == 0)
		op->to = naccounts;
	else
	{
		op->to = -1;
		op->source_first = random_below(w, 2);
	}
}

/* Book a committed hold operation, and check its answer against the clock. */
static int
book_hold_operation(worker *w, operation *op, outcome out)
{
	hold_record *h = op->kind == OP_HOLD ? NULL : &w->holds[op->hold];

	if (op->kind == OP_HOLD)
	{
		int			i;

		if (out == REFUSED)
		{
			w->holds_refused++;
			return 0;
		}
		if (out != DONE)
			return -1;
		for (i = 0; i < w->nholds; i++)
			if (w->holds[i].id == op->result)
			{
				anomaly("ledger_hold returned hold %lld, which this writer already made", op->result);
				return 0;
			}
		if ((i = record_hold(w, op)) < 0)
			return -1;
		w->open[w->nopen++] = i;
		w->holds_made++;
		if (op->key != NULL)
		{
			keyed_hold *k = &w->hold_ring[w->hold_ring_used < REPLAY_RING
										  ? w->hold_ring_used++
										  : random_below(w, REPLAY_RING)];

			snprintf(k->key, sizeof(k->key), "%s", op->key);
			k->account = op->from;
			k->amount = op->amount;
			k->expiry_ms = op->expiry_ms;
			k->id = op->result;
		}
		return 0;
	}

	if (out == REFUSED)
	{
		anomaly("%s of hold %lld (%lld on %s) was refused for funds: the hold reserved them",
				op->kind == OP_CAPTURE ? "capture" : "release", h->id, h->amount, names[h->account]);
		return 0;
	}
	if (out != DONE && out != NOT_PENDING)
		return -1;
	close_hold(w, op->hold);

	/* ended by this call, or found expired (LG007, or a release returning false) */
	if (out == NOT_PENDING || (op->kind == OP_RELEASE && op->result == 0))
	{
		h->state = HOLD_EXPIRED;
		w->found_expired++;
		if (expiry_known(h, op) == 1)
			anomaly("hold %lld (expiry %d ms) was not pending at %s %.0f ms after it was made",
					h->id, h->expiry_ms, op->kind == OP_CAPTURE ? "a capture" : "a release",
					op->answered_ms - h->sent_ms);
		return 0;
	}
	if (expiry_known(h, op) == -1)
		anomaly("hold %lld (expiry %d ms) was %s %.0f ms after it was made: it had expired",
				h->id, h->expiry_ms, op->kind == OP_CAPTURE ? "captured" : "released",
				op->sent_ms - h->answered_ms);
	if (op->kind == OP_RELEASE)
	{
		h->state = HOLD_RELEASED;
		w->releases++;
		return 0;
	}
	h->state = HOLD_CAPTURED;
	h->captured = op->posted;
	h->capture_arg = op->amount;
	h->capture_to = op->to;
	h->result = op->result;
	w->captures++;
	if (op->posted < h->amount)
		w->captures_partial++;
	w->delta[h->account] -= op->posted;
	w->delta[op->to >= 0 ? op->to : naccounts] += op->posted;
	if (op->to >= 0)
		w->transfers_by_capture++;
	return 0;
}

static void *
writer_main(void *arg)
{
	worker	   *w = arg;
	char		who[32];

	snprintf(who, sizeof(who), "writer %d", w->id);
	if ((w->conn = connect_or_die(who)) == NULL)
	{
		set_fatal();
		return NULL;
	}
	while (!time_is_up() && !is_fatal())
	{
		int			dice = random_below(w, 100);
		char		key[48];
		operation	op;
		outcome		out;

		if (dice < 10 && (w->ring_used > 0 || w->hold_ring_used > 0))
		{
			int			hold = w->hold_ring_used > 0 &&
				(w->ring_used == 0 || random_below(w, 2) == 0);

			if ((hold ? replay_hold(w) : replay_transfer(w)) != 0)
				set_fatal();
			continue;
		}
		if (dice >= 96)
		{
			if ((dice < 98 ? sweep(w) : w->nholds > 0 ? poke(w) : 0) != 0)
				set_fatal();
			continue;
		}
		memset(&op, 0, sizeof(op));
		op.repeatable = random_below(w, 4) == 0;
		op.amount = 1 + random_below(w, INITIAL / 2);
		if (dice >= 70)
		{
			/* holds: end one when the writer has too many open, or half the time */
			draw_hold_operation(w, &op, w->nopen == MAX_OPEN_HOLDS || dice >= 83,
								key, sizeof(key));
			out = perform(w, &op);
			if (book_hold_operation(w, &op, out) != 0)
			{
				if (out != FAILED)
					report("bank: writer %d: unexpected outcome %d of a hold operation\n",
						   w->id, (int) out);
				set_fatal();
				break;
			}
			continue;
		}
		if (dice < 55)
		{
			op.kind = OP_TRANSFER;
			/* one transfer in six involves the source, either way */
			op.from = dice >= 10 && dice < 15 ? naccounts : random_below(w, naccounts);
			if (dice >= 15 && dice < 20)
				op.to = naccounts;
			else
				do
					op.to = random_below(w, naccounts);
				while (op.to == op.from);
			if (random_below(w, 3) == 0)
			{
				snprintf(key, sizeof(key), "w%d-%llu", w->id, ++w->nkeys);
				op.key = key;
			}
		}
		else
		{
			op.kind = dice < 63 ? OP_WITHDRAWAL : OP_DEPOSIT;
			op.from = op.to = random_below(w, naccounts);
			op.source_first = random_below(w, 5) == 0;
		}

		out = perform(w, &op);
		if (out == FAILED || out == NOT_PENDING)
		{
			if (out == NOT_PENDING)
				report("bank: writer %d: LG007 from a posting without a hold\n", w->id);
			set_fatal();
			break;
		}
		if (out == REFUSED)
		{
			w->refused++;
			continue;
		}
		/* DONE: committed */
		if (op.kind == OP_TRANSFER)
		{
			w->delta[op.from] -= op.amount;
			w->delta[op.to] += op.amount;
			w->transfers++;
			if (op.from == naccounts || op.to == naccounts)
				w->via_source++;
			if (op.key != NULL)
			{
				keyed_transfer *t = &w->ring[w->ring_used < REPLAY_RING
											 ? w->ring_used++
											 : random_below(w, REPLAY_RING)];

				w->keyed++;
				snprintf(t->key, sizeof(t->key), "%s", op.key);
				t->from = op.from;
				t->to = op.to;
				t->amount = op.amount;
				t->result = op.result;
			}
		}
		else
		{
			int			acct = op.from;
			long long	sign = op.kind == OP_WITHDRAWAL ? -1 : 1;

			w->delta[acct] += sign * op.amount;
			w->delta[naccounts] -= sign * op.amount;
			if (op.kind == OP_WITHDRAWAL)
				w->withdrawals++;
			else
				w->deposits++;
		}
	}
	PQfinish(w->conn);
	w->conn = NULL;
	return NULL;
}

/* ---------------------------------------------------------------- readers */

/*
 * Check one snapshot's balances and available balances (naccounts + 1,
 * the source last).
 */
static void
check_snapshot(const long long *balance, const long long *available, const char *how)
{
	long long	total = 0;
	int			i;

	for (i = 0; i <= naccounts; i++)
	{
		total += balance[i];
		if (i < naccounts && balance[i] < floors[i])
			anomaly("%s: %s has balance %lld, below its floor %lld",
					how, names[i], balance[i], floors[i]);
		if (i < naccounts && available[i] < floors[i])
			anomaly("%s: %s has available %lld (balance %lld), below its floor %lld",
					how, names[i], available[i], balance[i], floors[i]);
		if (available[i] > balance[i])
			anomaly("%s: %s has available %lld, more than its balance %lld",
					how, names[i], available[i], balance[i]);
	}
	if (total != (long long) naccounts * INITIAL)
		anomaly("%s: balances add up to %lld, expected %lld",
				how, total, (long long) naccounts * INITIAL);
}

/* index of an account name, or -1 */
static int
account_index(const char *name)
{
	int			i;

	for (i = 0; i <= naccounts; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

/*
 * One scan of ledger.accounts and ledger.pending_holds (one statement: one
 * snapshot); also checks accounts.held against the pending holds.
 */
static int
read_by_scan(worker *w, long long *balance, long long *available)
{
	PGresult   *res = PQexec(w->conn, READ_SCAN_SQL);
	int			i, seen = 0;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		report("bank: reader %d: %s", w->id,
			   res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(w->conn));
		PQclear(res);
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		int			a = account_index(PQgetvalue(res, i, 0));
		long long	held = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		long long	pending = strtoll(PQgetvalue(res, i, 3), NULL, 10);

		if (a < 0)
			continue;
		balance[a] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		available[a] = balance[a] - strtoll(PQgetvalue(res, i, 4), NULL, 10);
		if (held != pending)
			anomaly("scan: %s has held %lld, but its pending holds add up to %lld",
					names[a], held, pending);
		seen++;
	}
	PQclear(res);
	if (seen != naccounts + 1)
	{
		anomaly("scan saw %d of %d accounts", seen, naccounts + 1);
		return 1;
	}
	return 0;
}

/* K + 1 ledger_balance() and ledger_available() calls, and one ledger_history() probe. */
static int
read_by_calls(worker *w, long long *balance, long long *available)
{
	char		state[6], message[512];
	const char *params[1];
	int			i, probe = random_below(w, naccounts + 1);
	long long	after;
	PGresult   *res;

	for (i = 0; i <= naccounts; i++)
	{
		params[0] = names[i];
		if (query_bigint(w->conn, BALANCE_SQL, 1, params, &balance[i], state,
						 message, sizeof(message)) != 0)
		{
			report("bank: reader %d: ledger_balance failed with %s: %s", w->id, state, message);
			return -1;
		}
		if (query_bigint(w->conn, AVAILABLE_SQL, 1, params, &available[i], state,
						 message, sizeof(message)) != 0)
		{
			report("bank: reader %d: ledger_available failed with %s: %s", w->id, state, message);
			return -1;
		}
	}
	if (breakage == BREAK_NAIVE)
		return 0;				/* the probe needs the shared snapshot */
	params[0] = names[probe];
	res = PQexecParams(w->conn, HISTORY_SQL, 1, NULL, params, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) > 1)
	{
		report("bank: reader %d: ledger_history(%s) failed: %s", w->id, names[probe],
			   res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(w->conn));
		PQclear(res);
		return -1;
	}
	/* no entry yet (the source before its first posting): balance 0 */
	if (PQntuples(res) == 1 && PQgetisnull(res, 0, 0))
	{
		/* escrow mode, not folded yet: the folder checks it (ledger_verify) */
		PQclear(res);
		return 0;
	}
	after = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	if (after != balance[probe])
		anomaly("%s: ledger_balance %lld but newest history balance_after %lld",
				names[probe], balance[probe], after);
	return 0;
}

static void *
reader_main(void *arg)
{
	worker	   *w = arg;
	long long  *balance = calloc((size_t) naccounts + 1, sizeof(long long));
	long long  *available = calloc((size_t) naccounts + 1, sizeof(long long));
	char		who[32];

	snprintf(who, sizeof(who), "reader %d", w->id);
	if (balance == NULL || available == NULL || (w->conn = connect_or_die(who)) == NULL)
	{
		free(balance);
		free(available);
		set_fatal();
		return NULL;
	}
	while (!time_is_up() && !is_fatal())
	{
		int			by_scan = random_below(w, 2) == 0 && breakage != BREAK_NAIVE;
		int			rc;

		if (breakage != BREAK_NAIVE &&
			command(w->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0)
		{
			set_fatal();
			break;
		}
		rc = by_scan ? read_by_scan(w, balance, available) : read_by_calls(w, balance, available);
		if (rc < 0 || (breakage != BREAK_NAIVE && command(w->conn, "COMMIT") != 0))
		{
			set_fatal();
			break;
		}
		if (rc == 0)
			check_snapshot(balance, available,
						   by_scan ? "scan of ledger.accounts and ledger.pending_holds"
						   : "ledger_balance and ledger_available calls");
		if (by_scan)
			w->reads_scan++;
		else
			w->reads_calls++;
	}
	PQfinish(w->conn);
	w->conn = NULL;
	free(balance);
	free(available);
	return NULL;
}

/* ---------------------------------------------------------------- main */

static void
usage(void)
{
	fprintf(stderr, "usage: bank [-k ACCOUNTS] [-m WRITERS] [-r READERS] [-t SECONDS] "
			"[-s SEED] [-b floor|total|naive|hold|release] [-e] CONNINFO\n");
	exit(2);
}

static long long
parse_number(const char *s, long long min, long long max)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

/* Run a one-value query with up to 3 text parameters; -1 on error. */
static int
setup_call(PGconn *conn, const char *sql, const char *a, const char *b, const char *c)
{
	const char *params[3] = {a, b, c};
	char		state[6], message[512];
	long long	value;
	int			n = c != NULL ? 3 : (b != NULL ? 2 : 1);

	if (query_bigint(conn, sql, n, params, &value, state, message, sizeof(message)) != 0)
	{
		report("bank: setup: %s failed with %s: %s", sql, state, message);
		return -1;
	}
	return 0;
}

static int
setup(PGconn *conn)
{
	int			i;
	char		amount[32], floor_text[32];

	for (i = 0; i < naccounts; i++)
	{
		snprintf(floor_text, sizeof(floor_text), "%lld", floors[i]);
		if (setup_call(conn, "SELECT ledger_open_account($1::text, 'XXX', $2::bigint)",
					   names[i], floor_text, NULL) != 0)
			return -1;
	}
	if (setup_call(conn, "SELECT ledger_open_account($1::text, 'XXX', NULL)",
				   names[naccounts], NULL, NULL) != 0)
		return -1;
	snprintf(amount, sizeof(amount), "%d", INITIAL);
	for (i = 0; i < naccounts; i++)
		if (setup_call(conn, "SELECT ledger_credit($1::text, $2::bigint)",
					   names[i], amount, NULL) != 0)
			return -1;
	/* -e: every other account, and the source, in escrow mode */
	for (i = 0; escrow && i <= naccounts; i++)
		if ((i % 2 == 0 || i == naccounts) &&
			setup_call(conn, "SELECT length(ledger_set_account_mode($1::text, 'escrow'))",
					   names[i], NULL, NULL) != 0)
			return -1;
	return 0;
}

/*
 * -b hold: a hold of more than acct-000 (floor 0) has available, written
 * as the ledger writes a hold (holds, pending_holds, accounts.held), but
 * without the available check: its balance + 1, so available is below 0
 * whatever else it holds.
 */
#define SABOTAGE_HOLD_SQL \
	"WITH a AS (SELECT account_id, balance FROM ledger.accounts " \
	"            WHERE name = 'acct-000' FOR UPDATE), " \
	"     h AS (INSERT INTO ledger.holds (account_id, amount, created_at) " \
	"           SELECT account_id, balance + 1, clock_timestamp() FROM a " \
	"           RETURNING hold_id, account_id, amount), " \
	"     p AS (INSERT INTO ledger.pending_holds (hold_id, account_id, amount) " \
	"           SELECT hold_id, account_id, amount FROM h) " \
	"UPDATE ledger.accounts SET held = held + h.amount FROM h " \
	" WHERE accounts.account_id = h.account_id"

/*
 * -b release: the oldest pending hold without an expiry on an account with
 * a floor ended as "released" behind the writers' back, as the ledger
 * would end it (under the account's row lock, hold_ends, pending_holds and
 * accounts.held together), so ledger_verify() finds nothing wrong.
 */
#define SABOTAGE_RELEASE_SQL \
	"DO $$ DECLARE h record; BEGIN " \
	"  FOR h IN SELECT p.hold_id, p.account_id, p.amount " \
	"             FROM ledger.pending_holds p JOIN ledger.accounts a USING (account_id) " \
	"            WHERE p.expires_at IS NULL AND a.min_balance IS NOT NULL " \
	"            ORDER BY p.hold_id LOOP " \
	"    PERFORM FROM ledger.accounts WHERE account_id = h.account_id FOR UPDATE; " \
	"    DELETE FROM ledger.pending_holds WHERE hold_id = h.hold_id; " \
	"    IF FOUND THEN " \
	"      INSERT INTO ledger.hold_ends (hold_id, status, ended_at) " \
	"        VALUES (h.hold_id, 'released', clock_timestamp()); " \
	"      UPDATE ledger.accounts SET held = held - h.amount WHERE account_id = h.account_id; " \
	"      RAISE NOTICE 'hold % released behind the writers'' back', h.hold_id; " \
	"      RETURN; " \
	"    END IF; " \
	"  END LOOP; " \
	"  RAISE EXCEPTION 'no pending hold without an expiry to release'; " \
	"END $$"

/* The breakage for -b total, floor, hold and release, done by the main thread. */
static int
sabotage(PGconn *conn)
{
	const char *sql = breakage == BREAK_TOTAL
		? "UPDATE ledger.accounts SET balance = balance + 1 WHERE name = 'acct-000'"
		: breakage == BREAK_FLOOR
		? "UPDATE ledger.accounts SET min_balance = NULL WHERE name = 'acct-001'"
		: breakage == BREAK_HOLD ? SABOTAGE_HOLD_SQL : SABOTAGE_RELEASE_SQL;

	fprintf(stderr, "bank: -b: %s\n", sql);
	return command(conn, sql);
}

/* Order hold records by id, for the final check. */
static int
compare_holds(const void *a, const void *b)
{
	long long	x = (*(hold_record *const *) a)->id;
	long long	y = (*(hold_record *const *) b)->id;

	return x < y ? -1 : x > y;
}

/*
 * The holds as the ledger has them against the writers' records; returns
 * the number of failures.
 */
static int
check_holds(PGconn *conn, worker *writers)
{
	PGresult   *res;
	hold_record **all;
	long long	counts[4] = {0};
	int			n = 0, i, j, failures = 0, bad = 0, unknown = 0, missing = 0;

	for (i = 0; i < nwriters; i++)
		n += writers[i].nholds;
	all = calloc((size_t) n + 1, sizeof(*all));
	if (all == NULL)
	{
		report("bank: out of memory\n");
		return 1;
	}
	for (i = 0, n = 0; i < nwriters; i++)
		for (j = 0; j < writers[i].nholds; j++)
			all[n++] = &writers[i].holds[j];
	qsort(all, (size_t) n, sizeof(*all), compare_holds);
	for (i = 1; i < n; i++)
		if (all[i]->id == all[i - 1]->id)
		{
			report("bank: final: hold %lld was returned as new twice\n", all[i]->id);
			failures++;
		}

	res = PQexec(conn, FINAL_HOLDS_SQL);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		report("bank: final: reading the holds failed: %s",
			   res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		PQclear(res);
		free(all);
		return failures + 1;
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		long long	id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		const char *account = PQgetvalue(res, i, 1);
		long long	amount = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		int			never = strcmp(PQgetvalue(res, i, 3), "t") == 0;
		const char *status = PQgetvalue(res, i, 4);
		long long	captured = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		const char *to = PQgetisnull(res, i, 6) ? NULL : PQgetvalue(res, i, 6);
		int			pending = strcmp(PQgetvalue(res, i, 7), "t") == 0;
		int			lo = 0, hi = n - 1, found = -1;
		hold_record *h;
		char		why[160] = "";

		while (lo <= hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (all[mid]->id == id)
			{
				found = mid;
				break;
			}
			if (all[mid]->id < id)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
		if (found < 0)
		{
			if (unknown++ < MAX_REPORTS)
				report("bank: final: hold %lld (%lld on %s, %s) was made by no writer\n",
					   id, amount, account, status);
			continue;
		}
		h = all[found];
		h->matched = 1;
		counts[h->state]++;
		if (strcmp(account, names[h->account]) != 0 || amount != h->amount ||
			never != (h->expiry_ms == 0))
			snprintf(why, sizeof(why), "is %lld on %s%s, the writer made %lld on %s%s",
					 amount, account, never ? "" : " with an expiry",
					 h->amount, names[h->account], h->expiry_ms == 0 ? "" : " with an expiry");
		else if (h->state == HOLD_CAPTURED &&
				 (strcmp(status, "captured") != 0 || captured != h->captured ||
				  (to == NULL) != (h->capture_to < 0) ||
				  (to != NULL && strcmp(to, names[h->capture_to]) != 0)))
			snprintf(why, sizeof(why), "is %s (%lld to %s), the writer captured %lld to %s",
					 status, captured, to != NULL ? to : "no account (a debit)", h->captured,
					 h->capture_to >= 0 ? names[h->capture_to] : "no account (a debit)");
		else if ((h->state == HOLD_RELEASED || h->state == HOLD_EXPIRED) &&
				 strcmp(status, hold_state_names[h->state]) != 0)
			snprintf(why, sizeof(why), "is %s, the writer saw it %s",
					 status, hold_state_names[h->state]);
		else if (h->state == HOLD_PENDING &&
				 !(strcmp(status, "pending") == 0 ||
				   (h->expiry_ms > 0 && strcmp(status, "expired") == 0)))
			snprintf(why, sizeof(why), "is %s, the writer left it pending%s", status,
					 h->expiry_ms > 0 ? " (with an expiry)" : "");
		else if (h->state == HOLD_PENDING && strcmp(status, "pending") == 0 && !pending)
			snprintf(why, sizeof(why), "is pending, but not in ledger.pending_holds");
		if (why[0] != '\0' && bad++ < MAX_REPORTS)
			report("bank: final: hold %lld %s\n", id, why);
	}
	printf("bank: final: %d holds in ledger.holds, %d made by the writers: %lld left pending, "
		   "%lld captured, %lld released, %lld found expired by the writers\n",
		   PQntuples(res), n, counts[HOLD_PENDING], counts[HOLD_CAPTURED],
		   counts[HOLD_RELEASED], counts[HOLD_EXPIRED]);
	PQclear(res);
	for (i = 0; i < n; i++)
		if (!all[i]->matched && missing++ < MAX_REPORTS)
			report("bank: final: hold %lld that a writer made is not in ledger.holds\n",
				   all[i]->id);
	free(all);
	if (bad > 0 || unknown > 0 || missing > 0)
	{
		report("bank: final: %d holds differ from the writers' records, %d were made by no "
			   "writer, %d are missing\n", bad, unknown, missing);
		failures++;
	}
	return failures;
}

/* Final checks after all threads stopped; returns the number of failures. */
static int
final_checks(PGconn *conn, worker *writers, long long transfers)
{
	char		state[6], message[512];
	const char *params[1];
	long long	available;
	PGresult   *res;
	long long  *expected = calloc((size_t) naccounts + 1, sizeof(long long));
	long long  *balance = calloc((size_t) naccounts + 1, sizeof(long long));
	long long	total = 0, rows;
	int			failures = 0, i, j, mismatched = 0;

	if (expected == NULL || balance == NULL)
	{
		free(expected);
		free(balance);
		report("bank: out of memory\n");
		return 1;
	}
	for (i = 0; i <= naccounts; i++)
	{
		expected[i] = i < naccounts ? INITIAL : 0;
		for (j = 0; j < nwriters; j++)
			expected[i] += writers[j].delta[i];
	}

	res = PQexec(conn, "SELECT account, problem FROM ledger_verify()");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		report("bank: ledger_verify() failed: %s",
			   res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		failures++;
	}
	else
	{
		for (i = 0; i < PQntuples(res) && i < MAX_REPORTS; i++)
			report("bank: ledger_verify(): %s: %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		if (PQntuples(res) > 0)
			failures++;
		printf("bank: final: ledger_verify() reports %d problems\n", PQntuples(res));
	}
	PQclear(res);

	res = PQexec(conn, SCAN_SQL);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		report("bank: final scan failed\n");
		PQclear(res);
		free(expected);
		free(balance);
		return failures + 1;
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		int			a = account_index(PQgetvalue(res, i, 0));

		if (a >= 0)
			balance[a] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
	}
	PQclear(res);
	for (i = 0; i <= naccounts; i++)
	{
		total += balance[i];
		if (balance[i] != expected[i])
		{
			if (mismatched++ < MAX_REPORTS)
				report("bank: final: %s has %lld, the writers committed changes to %lld\n",
					   names[i], balance[i], expected[i]);
		}
		if (i < naccounts && balance[i] < floors[i])
		{
			report("bank: final: %s has %lld, below its floor %lld\n",
				   names[i], balance[i], floors[i]);
			failures++;
		}
		params[0] = names[i];
		if (query_bigint(conn, AVAILABLE_SQL, 1, params, &available, state, message,
						 sizeof(message)) != 0)
		{
			report("bank: final: ledger_available(%s) failed with %s: %s", names[i], state, message);
			failures++;
		}
		else if (i < naccounts && available < floors[i])
		{
			report("bank: final: %s has %lld available, below its floor %lld\n",
				   names[i], available, floors[i]);
			failures++;
		}
	}
	if (mismatched > 0)
		failures++;
	if (total != (long long) naccounts * INITIAL)
		failures++;
	printf("bank: final: total %lld (expected %lld); %d of %d balances differ from the "
		   "writers' committed changes\n",
		   total, (long long) naccounts * INITIAL, mismatched, naccounts + 1);

	res = PQexec(conn, "SELECT count(*) FROM ledger.transfers");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		report("bank: count of ledger.transfers failed\n");
		failures++;
	}
	else
	{
		rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		printf("bank: final: %lld rows in ledger.transfers, %lld transfers and captures to an "
			   "account committed\n", rows, transfers);
		if (rows != transfers)
			failures++;
	}
	PQclear(res);
	free(expected);
	free(balance);
	return failures + check_holds(conn, writers);
}

int
main(int argc, char **argv)
{
	worker	   *workers;
	PGconn	   *conn;
	int			opt, i, nthreads, started = 0, failures = 0, sabotaged = 0;
	long long	sum[22] = {0};
	struct timespec begin;

	seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
	while ((opt = getopt(argc, argv, "k:m:r:t:s:b:e")) != -1)
	{
		switch (opt)
		{
			case 'e': escrow = 1; break;
			case 'k': naccounts = (int) parse_number(optarg, 2, 100000); break;
			case 'm': nwriters = (int) parse_number(optarg, 1, 1000); break;
			case 'r': nreaders = (int) parse_number(optarg, 1, 1000); break;
			case 't': seconds = (int) parse_number(optarg, 1, 86400); break;
			case 's': seed = (uint64_t) parse_number(optarg, 0, INT64_MAX); break;
			case 'b':
				if (strcmp(optarg, "naive") == 0)
					breakage = BREAK_NAIVE;
				else if (strcmp(optarg, "total") == 0)
					breakage = BREAK_TOTAL;
				else if (strcmp(optarg, "floor") == 0)
					breakage = BREAK_FLOOR;
				else if (strcmp(optarg, "hold") == 0)
					breakage = BREAK_HOLD;
				else if (strcmp(optarg, "release") == 0)
					breakage = BREAK_RELEASE;
				else
					usage();
				break;
			default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	conninfo = argv[optind];
	seed &= (uint64_t) INT64_MAX;

	printf("bank: seed %" PRIu64 ", %d accounts (+ source), %d writers, %d readers, %d s%s\n",
		   seed, naccounts, nwriters, nreaders, seconds,
		   breakage == BREAK_NONE ? "" : ", BROKEN ON PURPOSE (-b): must fail");
	fflush(stdout);

	names = calloc((size_t) naccounts + 1, sizeof(*names));
	floors = calloc((size_t) naccounts, sizeof(long long));
	nthreads = nwriters + nreaders;
	workers = calloc((size_t) nthreads, sizeof(worker));
	if (names == NULL || floors == NULL || workers == NULL)
	{
		report("bank: out of memory\n");
		free(names);
		free(floors);
		free(workers);
		return 1;
	}
	for (i = 0; i < naccounts; i++)
	{
		snprintf(names[i], sizeof(names[i]), "acct-%03d", i);
		floors[i] = i % 4 == 3 ? -500 : 0;
	}
	snprintf(names[naccounts], sizeof(names[naccounts]), "source");

	if ((conn = connect_or_die("setup")) == NULL || setup(conn) != 0)
	{
		PQfinish(conn);
		free(names);
		free(floors);
		free(workers);
		return 1;
	}

	clock_gettime(CLOCK_MONOTONIC, &begin);
	deadline = begin;
	deadline.tv_sec += seconds;
	for (i = 0; i < nthreads; i++)
	{
		worker	   *w = &workers[i];

		w->id = i < nwriters ? i + 1 : i - nwriters + 1;
		w->rng = seed + (uint64_t) i * UINT64_C(0x100000001B3);
		if (i < nwriters && (w->delta = calloc((size_t) naccounts + 1, sizeof(long long))) == NULL)
		{
			report("bank: out of memory\n");
			set_fatal();
			break;
		}
		if (pthread_create(&w->thread, NULL, i < nwriters ? writer_main : reader_main, w) != 0)
		{
			report("bank: cannot start thread %d\n", i);
			set_fatal();
			break;
		}
		started = i + 1;
	}

	/* wait for the deadline; do the breakage a third of the way in */
	while (!time_is_up() && !is_fatal())
	{
		struct timespec now, pause = {0, 100 * 1000 * 1000};

		nanosleep(&pause, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!sabotaged && breakage != BREAK_NONE && breakage != BREAK_NAIVE &&
			(now.tv_sec - begin.tv_sec) * 3 >= seconds)
		{
			sabotaged = 1;
			if (sabotage(conn) != 0)
				set_fatal();
		}
	}
	for (i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);

	for (i = 0; i < nthreads; i++)
	{
		worker	   *w = &workers[i];
		long long	v[22] = {w->transfers, w->keyed, w->via_source, w->deposits,
			w->withdrawals, w->refused, w->replays, w->conflicts, w->retry_40001,
			w->retry_40P01, w->reads_scan, w->reads_calls, w->holds_made, w->holds_refused,
			w->captures, w->captures_partial, w->releases, w->found_expired, w->swept,
		w->pokes, w->transfers_by_capture, w->nopen};
		int			j;

		for (j = 0; j < 22; j++)
			sum[j] += v[j];
	}
	printf("bank: writers: %lld transfers (%lld keyed, %lld with the source), %lld deposits, "
		   "%lld withdrawals committed; %lld refused (LG001); %lld keyed replays returned "
		   "the first result, %lld altered replays refused (LG003); retried: %lld 40001, "
		   "%lld 40P01\n",
		   sum[0], sum[1], sum[2], sum[3], sum[4], sum[5], sum[6], sum[7], sum[8], sum[9]);
	printf("bank: holds: %lld made (%lld refused, LG001), %lld captured (%lld in part), "
		   "%lld released, %lld found expired at a capture or release, %lld recorded expired "
		   "by sweeps, %lld left pending; %lld ended holds asked again\n",
		   sum[12], sum[13], sum[14], sum[15], sum[16], sum[17], sum[18], sum[21], sum[19]);
	printf("bank: readers: %lld snapshots checked (%lld scans of ledger.accounts and "
		   "ledger.pending_holds, %lld sets of ledger_balance and ledger_available calls); "
		   "%lld anomalies\n",
		   sum[10] + sum[11], sum[10], sum[11], anomalies);

	if (is_fatal())
		failures++;
	else if (started == nthreads)
		failures += final_checks(conn, workers, sum[0] + sum[20]);
	if (anomalies > 0)
		failures++;
	if (sum[0] == 0 || sum[3] + sum[4] == 0 || sum[10] + sum[11] == 0 ||
		sum[12] == 0 || sum[14] == 0 || sum[16] == 0)
	{
		report("bank: the workload did not run (no transfers, deposits/withdrawals, holds, "
			   "captures, releases or reads)\n");
		failures++;
	}

	for (i = 0; i < nthreads; i++)
	{
		free(workers[i].delta);
		free(workers[i].holds);
	}
	free(workers);
	free(names);
	free(floors);
	PQfinish(conn);
	if (failures > 0)
	{
		printf("bank: FAIL (%lld anomalies, seed %" PRIu64 ")\n", anomalies, seed);
		return 1;
	}
	printf("bank: %lld transfers, %lld deposits/withdrawals, %lld holds (%lld captured, %lld "
		   "released), %lld refused, %lld snapshots checked, 0 anomalies; OK\n",
		   sum[0], sum[3] + sum[4], sum[12], sum[14], sum[16], sum[5] + sum[13],
		   sum[10] + sum[11]);
	return 0;
}
