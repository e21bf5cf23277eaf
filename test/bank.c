/*
 * bank.c: Jepsen's bank workload against the ledger (run by bank.sh).
 *
 * Usage: bank [-k ACCOUNTS] [-m WRITERS] [-r READERS] [-t SECONDS]
 *             [-s SEED] [-b floor|total|naive] CONNINFO
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
 *   replay      a committed keyed transfer sent again with the same key:
 *               must return the same transfer id and change nothing; or
 *               with another amount: must be refused with LG003
 *
 * M writer threads, each on its own connection, run these for T seconds.
 * A refusal (LG001, insufficient funds) rolls the transaction back; 40001
 * and 40P01 roll back and retry the same operation (same key).  Each
 * writer keeps the net change it committed to every account.
 *
 * R reader threads check, in one REPEATABLE READ snapshot each time, that
 * the balances add up to K * 1000 and that no account is below its floor
 * (the floors as opened, known to the program, not read back).  They
 * alternate between one scan of ledger.accounts and K + 1 separate
 * ledger_balance() calls (which only agree because the snapshot is
 * shared), and compare one account's balance with the balance_after of
 * its newest ledger_history() row.  Every debit's returned balance is also
 * checked against the floor.
 *
 * At the end: ledger_verify() is empty; the total is K * 1000; every
 * balance equals 1000 plus the net change the writers committed to it (the
 * source: 0 plus its change); ledger.transfers has exactly one row per
 * committed transfer (replays add none); no balance is below its floor.
 *
 * -b breaks the run on purpose, to show the checks catch it (the run must
 * then FAIL): "naive" reads the K + 1 balances without a shared snapshot
 * (autocommit); "total" adds 1 to a balance behind the ledger's back (a
 * superuser UPDATE) a third of the way in; "floor" removes the floor of a
 * floor-0 account the same way, as a debit without the floor check would.
 *
 * Prints the counts (transfers, refused, retries, snapshots checked,
 * anomalies) and exits 0 only if every check passed.
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

#define TRANSFER_SQL "SELECT ledger_transfer($1::text, $2::text, $3::bigint, $4::text)"
#define DEBIT_SQL "SELECT ledger_debit($1::text, $2::bigint, $3::text)"
#define CREDIT_SQL "SELECT ledger_credit($1::text, $2::bigint, $3::text)"
#define BALANCE_SQL "SELECT ledger_balance($1::text)"
#define HISTORY_SQL "SELECT balance_after FROM ledger_history($1::text, 1)"
#define SCAN_SQL "SELECT name, balance FROM ledger.accounts"

typedef enum
{
	BREAK_NONE, BREAK_NAIVE, BREAK_TOTAL, BREAK_FLOOR
} break_mode;

/* configuration, read-only once the threads run */
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

typedef struct
{
	int			id;
	pthread_t	thread;
	uint64_t	rng;
	PGconn	   *conn;
	long long  *delta;			/* writers: committed net change per account */
	keyed_transfer ring[REPLAY_RING];
	int			ring_used;
	unsigned long long nkeys;
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
	OP_TRANSFER, OP_WITHDRAWAL, OP_DEPOSIT
} op_kind;

typedef enum
{
	DONE, REFUSED, RETRY, FAILED
} outcome;

typedef struct
{
	op_kind		kind;
	int			from;			/* account index; naccounts is the source */
	int			to;
	long long	amount;
	int			repeatable;		/* REPEATABLE READ instead of READ COMMITTED */
	int			source_first;	/* deposit/withdrawal: source's statement first */
	const char *key;			/* transfer only; NULL without */
	long long	result;			/* transfer id on DONE */
} operation;

/* Check a debit's returned balance against the account's floor. */
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

/* One attempt at an operation, in one transaction. */
static outcome
attempt(worker *w, operation *op)
{
	char		state[6], message[512], amount[32];
	const char *params[4];
	long long	value;
	int			in_txn = op->repeatable || op->kind != OP_TRANSFER;
	outcome		out = DONE;

	snprintf(amount, sizeof(amount), "%lld", op->amount);
	if (in_txn && command(w->conn, op->repeatable
						  ? "BEGIN ISOLATION LEVEL REPEATABLE READ"
						  : "BEGIN ISOLATION LEVEL READ COMMITTED") != 0)
		return FAILED;

	if (op->kind == OP_TRANSFER)
	{
		params[0] = names[op->from];
		params[1] = names[op->to];
		params[2] = amount;
		params[3] = op->key;
		if (query_bigint(w->conn, TRANSFER_SQL, 4, params, &value, state,
						 message, sizeof(message)) != 0)
			out = classify(w, state, message, "ledger_transfer");
		else
			op->result = value;
	}
	else
	{
		/* withdrawal: debit acct, credit source; deposit: the reverse */
		int			debited = op->kind == OP_WITHDRAWAL ? op->from : naccounts;
		int			credited = op->kind == OP_WITHDRAWAL ? naccounts : op->to;
		int			step;

		for (step = 0; step < 2 && out == DONE; step++)
		{
			int			debit_now = (step == 0) == ((debited == naccounts) == op->source_first);

			params[0] = names[debit_now ? debited : credited];
			params[1] = amount;
			params[2] = NULL;
			if (query_bigint(w->conn, debit_now ? DEBIT_SQL : CREDIT_SQL, 3, params, &value,
							 state, message, sizeof(message)) != 0)
				out = classify(w, state, message, debit_now ? "ledger_debit" : "ledger_credit");
			else if (debit_now)
				check_returned_balance(debited, value, "ledger_debit");
		}
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

/* Send a committed keyed transfer again: same id, or LG003 if altered. */
static int
replay(worker *w)
{
	keyed_transfer *t = &w->ring[random_below(w, w->ring_used)];
	int			altered = random_below(w, 4) == 0;
	char		amount[32], state[6], message[512];
	const char *params[4];
	long long	value;
	int			i, rc = -1;

	snprintf(amount, sizeof(amount), "%lld", t->amount + (altered ? 1 : 0));
	params[0] = names[t->from];
	params[1] = names[t->to];
	params[2] = amount;
	params[3] = t->key;
	/* it waits for the accounts' locks like any transfer: may deadlock */
	for (i = 0; i < MAX_ATTEMPTS; i++)
	{
		rc = query_bigint(w->conn, TRANSFER_SQL, 4, params, &value, state, message,
						  sizeof(message));
		if (rc == 0 || strcmp(state, "40P01") != 0)
			break;
		w->retry_40P01++;
	}
	if (rc == 0)
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

		if (dice < 10 && w->ring_used > 0)
		{
			if (replay(w) != 0)
				set_fatal();
			continue;
		}
		memset(&op, 0, sizeof(op));
		op.repeatable = random_below(w, 4) == 0;
		op.amount = 1 + random_below(w, INITIAL / 2);
		if (dice < 70)
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
			op.kind = dice < 85 ? OP_WITHDRAWAL : OP_DEPOSIT;
			op.from = op.to = random_below(w, naccounts);
			op.source_first = random_below(w, 5) == 0;
		}

		out = perform(w, &op);
		if (out == FAILED)
		{
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

/* Check one snapshot's balances (naccounts + 1, the source last). */
static void
check_snapshot(const long long *balance, const char *how)
{
	long long	total = 0;
	int			i;

	for (i = 0; i <= naccounts; i++)
	{
		total += balance[i];
		if (i < naccounts && balance[i] < floors[i])
			anomaly("%s: %s has balance %lld, below its floor %lld",
					how, names[i], balance[i], floors[i]);
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

/* One scan of ledger.accounts (one statement: one snapshot). */
static int
read_by_scan(worker *w, long long *balance)
{
	PGresult   *res = PQexec(w->conn, SCAN_SQL);
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

		if (a < 0)
			continue;
		balance[a] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
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

/* K + 1 ledger_balance() calls, and one ledger_history() probe. */
static int
read_by_calls(worker *w, long long *balance)
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
	char		who[32];

	snprintf(who, sizeof(who), "reader %d", w->id);
	if (balance == NULL || (w->conn = connect_or_die(who)) == NULL)
	{
		free(balance);
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
		rc = by_scan ? read_by_scan(w, balance) : read_by_calls(w, balance);
		if (rc < 0 || (breakage != BREAK_NAIVE && command(w->conn, "COMMIT") != 0))
		{
			set_fatal();
			break;
		}
		if (rc == 0)
			check_snapshot(balance, by_scan ? "scan of ledger.accounts" : "ledger_balance calls");
		if (by_scan)
			w->reads_scan++;
		else
			w->reads_calls++;
	}
	PQfinish(w->conn);
	w->conn = NULL;
	free(balance);
	return NULL;
}

/* ---------------------------------------------------------------- main */

static void
usage(void)
{
	fprintf(stderr, "usage: bank [-k ACCOUNTS] [-m WRITERS] [-r READERS] [-t SECONDS] "
			"[-s SEED] [-b floor|total|naive] CONNINFO\n");
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
	return 0;
}

/* The breakage for -b total / -b floor, done by the main thread. */
static int
sabotage(PGconn *conn)
{
	const char *sql = breakage == BREAK_TOTAL
		? "UPDATE ledger.accounts SET balance = balance + 1 WHERE name = 'acct-000'"
		: "UPDATE ledger.accounts SET min_balance = NULL WHERE name = 'acct-001'";

	fprintf(stderr, "bank: -b: %s\n", sql);
	return command(conn, sql);
}

/* Final checks after all threads stopped; returns the number of failures. */
static int
final_checks(PGconn *conn, worker *writers, long long transfers)
{
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
		printf("bank: final: %lld rows in ledger.transfers, %lld transfers committed\n",
			   rows, transfers);
		if (rows != transfers)
			failures++;
	}
	PQclear(res);
	free(expected);
	free(balance);
	return failures;
}

int
main(int argc, char **argv)
{
	worker	   *workers;
	PGconn	   *conn;
	int			opt, i, nthreads, started = 0, failures = 0, sabotaged = 0;
	long long	sum[12] = {0};
	struct timespec begin;

	seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
	while ((opt = getopt(argc, argv, "k:m:r:t:s:b:")) != -1)
	{
		switch (opt)
		{
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
		if (!sabotaged && (breakage == BREAK_TOTAL || breakage == BREAK_FLOOR) &&
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
		long long	v[12] = {w->transfers, w->keyed, w->via_source, w->deposits,
			w->withdrawals, w->refused, w->replays, w->conflicts, w->retry_40001,
		w->retry_40P01, w->reads_scan, w->reads_calls};
		int			j;

		for (j = 0; j < 12; j++)
			sum[j] += v[j];
	}
	printf("bank: writers: %lld transfers (%lld keyed, %lld with the source), %lld deposits, "
		   "%lld withdrawals committed; %lld refused (LG001); %lld keyed replays returned "
		   "the first result, %lld altered replays refused (LG003); retried: %lld 40001, "
		   "%lld 40P01\n",
		   sum[0], sum[1], sum[2], sum[3], sum[4], sum[5], sum[6], sum[7], sum[8], sum[9]);
	printf("bank: readers: %lld snapshots checked (%lld scans of ledger.accounts, %lld sets "
		   "of ledger_balance calls); %lld anomalies\n",
		   sum[10] + sum[11], sum[10], sum[11], anomalies);

	if (is_fatal())
		failures++;
	else if (started == nthreads)
		failures += final_checks(conn, workers, sum[0]);
	if (anomalies > 0)
		failures++;
	if (sum[0] == 0 || sum[3] + sum[4] == 0 || sum[10] + sum[11] == 0)
	{
		report("bank: the workload did not run (no transfers, deposits/withdrawals or reads)\n");
		failures++;
	}

	for (i = 0; i < nthreads; i++)
		free(workers[i].delta);
	free(workers);
	free(names);
	free(floors);
	PQfinish(conn);
	if (failures > 0)
	{
		printf("bank: FAIL (%lld anomalies, seed %" PRIu64 ")\n", anomalies, seed);
		return 1;
	}
	printf("bank: %lld transfers, %lld deposits/withdrawals, %lld refused, %lld snapshots "
		   "checked, 0 anomalies; OK\n",
		   sum[0], sum[3] + sum[4], sum[5], sum[10] + sum[11]);
	return 0;
}
