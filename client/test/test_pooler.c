/*-------------------------------------------------------------------------
 *
 * test_pooler.c
 *	  libledger behind pgbouncer (test/pooler.sh starts three of them in
 *	  front of the test cluster; the admin connection goes to the cluster).
 *
 *	    LEDGER_TEST_TX_PORT       pool_mode = transaction, 4 server connections
 *	    LEDGER_TEST_TX1_PORT      pool_mode = transaction, 1 server connection
 *	    LEDGER_TEST_SESSION_PORT  pool_mode = session, 4 server connections
 *
 *	  - With one server connection the pooler's two signs are made to happen
 *	    on purpose: a statement another client prepared is already there
 *	    (42P05), and after the pooler's RECONNECT the statement a client
 *	    prepared is gone (26000).  Each call is applied once, in the number
 *	    of attempts each statement mode implies.
 *	  - 16 threads over 4 server connections make every call kind, in AUTO
 *	    and UNNAMED mode: every status is LEDGER_OK, every balance exact.
 *	  - Session pooling: PREPARED and AUTO, threads again.
 *	  - A lost connection (the server backend terminated mid-call) and
 *	    40001 (a SERIALIZABLE role) are retried through the pooler and
 *	    apply once.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int	tx_port;
static int	tx1_port;
static int	session_port;

static const char *const mode_names[] = {"auto", "prepared", "unnamed"};

/* A library connection through the pooler on port_, as user, in a mode. */
static LedgerConn *
pooled(int port_, const char *user, LedgerStatements how, int attempts)
{
	char		ci[256];
	LedgerConn *c;

	snprintf(ci, sizeof(ci), "host=%s port=%d dbname=%s user=%s", host, port_, db, user);
	c = connect_to(ci, attempts);
	if (ledger_set_statements(c, how) != LEDGER_OK)
		die("ledger_set_statements");
	return c;
}

/* A command on the console of the pooler on port_; its number of rows. */
static int
bouncer_console(int port_, const char *command)
{
	char		ci[128];
	PGconn	   *console;
	PGresult   *res;
	int			rows;

	snprintf(ci, sizeof(ci), "host=%s port=%d dbname=pgbouncer user=postgres", host, port_);
	console = raw_connect(ci);
	res = PQexec(console, command);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		die(PQerrorMessage(console));
	rows = PQntuples(res);
	PQclear(res);
	PQfinish(console);
	return rows;
}

/*
 * Make the pooler close its server connections (each once it is released),
 * and wait until it has: the next transaction gets a new server session.
 */
static void
bouncer_reconnect(int port_)
{
	bouncer_console(port_, "RECONNECT");
	for (int i = 0; i < 500; i++)
	{
		if (bouncer_console(port_, "SHOW SERVERS") == 0)
			return;
		sleep_ms(10);
	}
	die("the pooler kept its server connection after RECONNECT");
}

/* One debit of 1 from "switch", applied once, in this many attempts. */
static void
debit_once(LedgerConn *c, const char *what, int want_attempts)
{
	int64_t		before = balance_of("switch");
	int64_t		after = 0;
	LedgerStatus s = ledger_debit(c, "switch", 1, NULL, &after);

	CHECK_STATUS(c, s, LEDGER_OK, what);
	check(ledger_last_attempts(c) == want_attempts && after == before - 1 &&
		  balance_of("switch") == before - 1 && entries_with_key(ledger_last_key(c)) == 1,
		  "%s: applied once (balance %" PRId64 " -> %" PRId64 "), in %d attempts (want %d)",
		  what, before, after, ledger_last_attempts(c), want_attempts);
}

/* ---- the pooler's signs, on purpose -------------------------------------- */

static void
test_signs(void)
{
	LedgerConn *first,
			   *shared_auto,
			   *shared_prepared,
			   *unnamed;
	LedgerPosting items[3];
	LedgerStatus s;

	printf("# one server connection: 42P05 and 26000 on purpose\n");
	admin_exec("SELECT ledger_open_account('switch', 'EUR')");
	admin_exec("SELECT ledger_credit('switch', 1000)");
	bouncer_reconnect(tx1_port);

	first = pooled(tx1_port, "postgres", LEDGER_STATEMENTS_AUTO, 3);
	shared_auto = pooled(tx1_port, "postgres", LEDGER_STATEMENTS_AUTO, 3);
	shared_prepared = pooled(tx1_port, "postgres", LEDGER_STATEMENTS_PREPARED, 3);
	unnamed = pooled(tx1_port, "postgres", LEDGER_STATEMENTS_UNNAMED, 3);

	debit_once(first, "auto, first to prepare", 1);
	/* 42P05: the statement of that name is in the one server session */
	debit_once(shared_auto, "auto, finds it prepared (42P05): switches to unnamed", 1);
	debit_once(shared_prepared, "prepared, finds it prepared (42P05): runs it by name", 1);
	debit_once(unnamed, "unnamed", 1);

	/* 26000: a new server session, without the statements */
	bouncer_reconnect(tx1_port);
	debit_once(first, "auto, its statement gone (26000): sent again unnamed", 2);
	bouncer_reconnect(tx1_port);
	debit_once(first, "auto, after the switch: unnamed, one attempt", 1);
	debit_once(shared_auto, "auto, switched at 42P05: one attempt", 1);
	debit_once(shared_prepared, "prepared, its statement gone (26000): prepared again", 2);
	bouncer_reconnect(tx1_port);
	debit_once(unnamed, "unnamed, a new server session: one attempt", 1);

	/* a pipelined batch whose statement went away: every item applied once */
	ledger_finish(first);
	first = pooled(tx1_port, "postgres", LEDGER_STATEMENTS_AUTO, 3);
	debit_once(first, "auto, a new connection prepares again", 1);
	bouncer_reconnect(tx1_port);
	for (int i = 0; i < 3; i++)
		posting(&items[i], LEDGER_OP_DEBIT, "switch", NULL, 1, NULL);
	{
		int64_t		before = balance_of("switch");

		s = ledger_batch(first, items, 3);
		CHECK_STATUS(first, s, LEDGER_OK, "ledger_batch whose statement is gone (26000)");
		check(items[0].status == LEDGER_OK && items[1].status == LEDGER_OK &&
			  items[2].status == LEDGER_OK && balance_of("switch") == before - 3 &&
			  entries_with_key(items[0].key) == 1 && entries_with_key(items[2].key) == 1 &&
			  ledger_last_attempts(first) == 2,
			  "every item applied once (%" PRId64 " -> %" PRId64 "), in %d attempts (want 2)",
			  before, balance_of("switch"), ledger_last_attempts(first));
	}

	/* an invalid mode is refused and changes nothing */
	s = ledger_set_statements(unnamed, (LedgerStatements) 7);
	check(s == LEDGER_CLIENT_ERROR && strstr(ledger_error_message(unnamed), "LedgerStatements"),
		  "ledger_set_statements(7): client_error (%s)", ledger_error_message(unnamed));
	debit_once(unnamed, "still unnamed after the refused change", 1);
	check(ledger_set_statements(NULL, LEDGER_STATEMENTS_AUTO) == LEDGER_CLIENT_ERROR,
		  "ledger_set_statements(NULL): client_error");

	ledger_finish(first);
	ledger_finish(shared_auto);
	ledger_finish(shared_prepared);
	ledger_finish(unnamed);
}

/* ---- every call kind from many threads ---------------------------------- */

#define ROUNDS 10
#define START_BALANCE 100

typedef struct Worker
{
	int			port;
	LedgerStatements how;
	int			id;
	int			failures;		/* calls that were not LEDGER_OK, or wrong */
	char		first_failure[256];
} Worker;

static void
worker_failed(Worker *w, LedgerConn *c, const char *what, LedgerStatus s)
{
	if (w->failures++ == 0)
		snprintf(w->first_failure, sizeof(w->first_failure), "%s: %s %s", what,
				 ledger_status_name(s), ledger_error_message(c));
}

#define EXPECT(call, what) \
	do { LedgerStatus s_ = (call); if (s_ != LEDGER_OK) worker_failed(w, c, what, s_); } while (0)

/*
 * Each round leaves the worker's own account where it was: a credit of 10,
 * debits keyed and not (1 + 1), a transfer of 1 to the sink, a hold of 2
 * captured for 1, a hold released, 3 pipelined and 3 server-batch debits.
 */
static void *
worker_run(void *arg)
{
	Worker	   *w = arg;
	LedgerConn *c = pooled(w->port, "postgres", w->how, 5);
	char		account[32],
				key[64];
	int64_t		v,
				hold_id,
				expected = START_BALANCE;
	int			released;

	snprintf(account, sizeof(account), "pool-%d-%d", w->port, w->id);
	EXPECT(ledger_open_account(c, account, "EUR", 0, NULL), "open");
	EXPECT(ledger_credit(c, account, START_BALANCE, NULL, NULL), "first credit");
	for (int r = 0; r < ROUNDS; r++)
	{
		LedgerPosting items[3];
		LedgerHistory *history = NULL;
		LedgerHolds *holds = NULL;

		EXPECT(ledger_credit(c, account, 10, NULL, NULL), "credit");
		snprintf(key, sizeof(key), "%s-r%d", account, r);
		EXPECT(ledger_debit(c, account, 1, key, NULL), "keyed debit");
		EXPECT(ledger_debit(c, account, 1, NULL, NULL), "debit");
		EXPECT(ledger_transfer(c, account, "pool-sink", 1, NULL, NULL), "transfer");
		EXPECT(ledger_hold(c, account, 2, 60000, NULL, &hold_id), "hold");
		EXPECT(ledger_capture(c, hold_id, 1, NULL, NULL), "capture");
		EXPECT(ledger_hold(c, account, 1, 0, NULL, &hold_id), "hold to release");
		EXPECT(ledger_available(c, account, &v), "available");
		if (v != expected + 10 - 1 - 1 - 1 - 1 - 1)
			worker_failed(w, c, "available is off", LEDGER_OK);
		EXPECT(ledger_release(c, hold_id, &released), "release");
		if (released != 1)
			worker_failed(w, c, "not released", LEDGER_OK);
		for (int i = 0; i < 3; i++)
			posting(&items[i], LEDGER_OP_DEBIT, account, NULL, 1, NULL);
		EXPECT(ledger_batch(c, items, 3), "ledger_batch");
		for (int i = 0; i < 3; i++)
			posting(&items[i], LEDGER_OP_DEBIT, account, NULL, 1, NULL);
		EXPECT(ledger_post_batch(c, items, 3), "ledger_post_batch");
		EXPECT(ledger_balance(c, account, &v), "balance");
		if (v != expected)
			worker_failed(w, c, "balance is off", LEDGER_OK);
		EXPECT(ledger_history(c, account, 3, &history), "history");
		if (history != NULL && (history->n_entries != 3 || history->entries[0].balance_after != expected))
			worker_failed(w, c, "history is off", LEDGER_OK);
		ledger_history_free(history);
		EXPECT(ledger_holds(c, account, 2, &holds), "holds");
		if (holds != NULL && (holds->n_holds != 2 || strcmp(holds->holds[0].status, "released") != 0))
			worker_failed(w, c, "holds are off", LEDGER_OK);
		ledger_holds_free(holds);
	}
	ledger_finish(c);
	return NULL;
}

/* The most server connections the pooler had while the threads ran. */
typedef struct Watch
{
	int			port;
	volatile bool stop;
	int			most;
} Watch;

static void *
watch_servers(void *arg)
{
	Watch	   *watch = arg;

	while (!watch->stop)
	{
		int			n = bouncer_console(watch->port, "SHOW SERVERS");

		if (n > watch->most)
			watch->most = n;
		sleep_ms(5);
	}
	return NULL;
}

static void
run_workers(int port_, const char *what, int nthreads, const LedgerStatements *modes,
			int nmodes, int max_servers)
{
	Worker		workers[16];
	pthread_t	threads[16];
	pthread_t	watcher;
	Watch		watch = {port_, false, 0};
	int			failures = 0;
	int64_t		sink_before = balance_of("pool-sink");
	LedgerConn *c;
	LedgerAudit *audit = NULL;
	LedgerStatus s;

	printf("# %s: %d threads\n", what, nthreads);
	pthread_create(&watcher, NULL, watch_servers, &watch);
	for (int i = 0; i < nthreads; i++)
	{
		memset(&workers[i], 0, sizeof(Worker));
		workers[i].port = port_;
		workers[i].how = modes[i % nmodes];
		workers[i].id = i;
		pthread_create(&threads[i], NULL, worker_run, &workers[i]);
	}
	for (int i = 0; i < nthreads; i++)
	{
		pthread_join(threads[i], NULL);
		failures += workers[i].failures;
		if (workers[i].failures > 0)
			check(false, "%s: thread %d (%s): %d calls failed; the first: %s", what, i,
				  mode_names[workers[i].how], workers[i].failures, workers[i].first_failure);
	}
	watch.stop = true;
	pthread_join(watcher, NULL);

	check(failures == 0, "%s: every call of every thread was LEDGER_OK and right (%d x %d rounds)",
		  what, nthreads, ROUNDS);
	check(admin_int("SELECT count(*) FROM ledger.accounts WHERE name LIKE 'pool-%d-%%'"
					" AND balance = %d", port_, START_BALANCE) == nthreads,
		  "%s: every thread's account ends at %d", what, START_BALANCE);
	check(balance_of("pool-sink") == sink_before + nthreads * ROUNDS,
		  "%s: the sink got every transfer once (%" PRId64 ")", what,
		  balance_of("pool-sink") - sink_before);
	check(watch.most >= 1 && watch.most <= max_servers,
		  "%s: at most %d server connections at once (saw %d)", what, max_servers,
		  watch.most);

	c = pooled(port_, "postgres", LEDGER_STATEMENTS_AUTO, 3);
	s = ledger_verify(c, &audit);
	CHECK_STATUS(c, s, LEDGER_OK, "ledger_verify through the pooler");
	check(audit != NULL && audit->n_problems == 0, "%s: the audit is clean", what);
	ledger_audit_free(audit);
	ledger_finish(c);
}

/* ---- a lost connection and 40001, through the pooler --------------------- */

/* Wait until a backend of the test database waits for a lock; its pid. */
static int64_t
lock_waiter(void)
{
	for (int i = 0; i < 1000; i++)
	{
		int64_t		pid = admin_int("SELECT coalesce(min(pid), 0) FROM pg_stat_activity"
									" WHERE wait_event_type = 'Lock' AND datname = current_database()");

		if (pid > 0)
			return pid;
		sleep_ms(10);
	}
	die("no backend came to wait for the lock");
	return 0;
}

typedef struct Blocked
{
	const char *user;
	bool		batch;
	const char *key;
	LedgerStatus status;
	int			attempts;
	LedgerPosting items[2];
} Blocked;

static void *
blocked_debit(void *arg)
{
	Blocked    *b = arg;
	LedgerConn *c = pooled(tx_port, b->user, LEDGER_STATEMENTS_AUTO, 4);

	if (b->batch)
	{
		posting(&b->items[0], LEDGER_OP_DEBIT, "held", NULL, 1, NULL);
		posting(&b->items[1], LEDGER_OP_DEBIT, "held", NULL, 1, NULL);
		b->status = ledger_batch(c, b->items, 2);
	}
	else
		b->status = ledger_debit(c, "held", 1, b->key, NULL);
	b->attempts = ledger_last_attempts(c);
	ledger_finish(c);
	return NULL;
}

/* Run b while the admin holds the row lock of "held"; kill: terminate the waiter. */
static void
while_locked(Blocked *b, bool kill)
{
	PGconn	   *holder = raw_connect(conninfo_for(""));
	PGresult   *res;
	pthread_t	t;
	int64_t		waiter;

	res = PQexec(holder, "BEGIN; SELECT ledger_debit('held', 1)");
	PQclear(res);
	pthread_create(&t, NULL, blocked_debit, b);
	waiter = lock_waiter();
	if (kill)
	{
		admin_exec("SELECT pg_terminate_backend(%" PRId64 ")", waiter);
		/* the retry comes through another server connection and waits again */
		for (int i = 0; i < 1000 && lock_waiter() == waiter; i++)
			sleep_ms(10);
	}
	res = PQexec(holder, "COMMIT");
	PQclear(res);
	pthread_join(t, NULL);
	PQfinish(holder);
}

static void
test_retries(void)
{
	Blocked		b;
	int64_t		before;

	printf("# retries through the pooler\n");
	admin_exec("SELECT ledger_open_account('held', 'EUR')");
	admin_exec("SELECT ledger_credit('held', 100)");

	before = balance_of("held");
	memset(&b, 0, sizeof(b));
	b.user = "postgres";
	b.key = "pooled-lost";
	while_locked(&b, true);
	check(b.status == LEDGER_OK && b.attempts >= 2 && entries_with_key("pooled-lost") == 1 &&
		  balance_of("held") == before - 2,
		  "server backend terminated mid-call: %s in %d attempts, applied once",
		  ledger_status_name(b.status), b.attempts);

	/* serial_app's sessions are SERIALIZABLE: the waiting debit gets 40001 */
	before = balance_of("held");
	memset(&b, 0, sizeof(b));
	b.user = "serial_app";
	while_locked(&b, false);
	check(b.status == LEDGER_OK && b.attempts == 2 && balance_of("held") == before - 2,
		  "40001 retried: %s in %d attempts, applied once", ledger_status_name(b.status),
		  b.attempts);

	before = balance_of("held");
	memset(&b, 0, sizeof(b));
	b.user = "serial_app";
	b.batch = true;
	while_locked(&b, false);
	check(b.status == LEDGER_OK && b.attempts == 2 && b.items[0].status == LEDGER_OK &&
		  b.items[1].status == LEDGER_OK && balance_of("held") == before - 3,
		  "ledger_batch: the item that got 40001 is retried: %s in %d attempts, each once",
		  ledger_status_name(b.status), b.attempts);
}

void
test_pooler(void)
{
	static const LedgerStatements tx_modes[] = {LEDGER_STATEMENTS_AUTO, LEDGER_STATEMENTS_UNNAMED};
	static const LedgerStatements session_modes[] = {LEDGER_STATEMENTS_PREPARED,
	LEDGER_STATEMENTS_AUTO};

	if (getenv("LEDGER_TEST_TX_PORT") == NULL || getenv("LEDGER_TEST_TX1_PORT") == NULL ||
		getenv("LEDGER_TEST_SESSION_PORT") == NULL)
		die("set LEDGER_TEST_TX_PORT, LEDGER_TEST_TX1_PORT and LEDGER_TEST_SESSION_PORT");
	tx_port = atoi(getenv("LEDGER_TEST_TX_PORT"));
	tx1_port = atoi(getenv("LEDGER_TEST_TX1_PORT"));
	session_port = atoi(getenv("LEDGER_TEST_SESSION_PORT"));

	admin_exec("SELECT ledger_open_account('pool-sink', 'EUR')");
	test_signs();
	run_workers(tx_port, "transaction pooling, 4 server connections", 16, tx_modes, 2, 4);
	run_workers(session_port, "session pooling, 4 server connections", 4, session_modes, 2, 4);
	test_retries();
}
