/*-------------------------------------------------------------------------
 *
 * test_client.c
 *	  libledger against a real server: every status, the lost reply, a
 *	  terminated backend, 40001 retries, 16 threads on one account,
 *	  pipeline batches with failures in the middle, and server batches
 *	  (ledger_post_batch: one commit, key replay, odd names, lost reply);
 *	  the other suites: test_outcomes.c, test_trust.c, test_holds.c,
 *	  test_escrow.c.
 *
 * Run by test/client.sh, which prepares the cluster(s) and passes:
 *
 *   PGHOST, PGPORT, PGUSER     the main cluster (superuser), as for libpq
 *   LEDGER_TEST_DB             database with the extension (and roles
 *                              ledger_app, granted, and ledger_nogrant)
 *   LEDGER_TEST_FSYNC_OFF_PORT a second cluster running with fsync = off,
 *                              the extension installed in LEDGER_TEST_DB
 *
 * Prints one TAP line per check ("ok N - ..." / "not ok N - ...") and
 * exits 1 if any failed.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "proxy.h"

/* ---- every status ---------------------------------------------------------- */

static void
test_statuses(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerStatus s;
	int64_t		id = 0,
				id2 = 0,
				v = 0,
				v2 = 0;
	char		key[64];
	LedgerOptions o;
	LedgerConn *bad;
	LedgerHistory *h;
	LedgerAudit *audit;
	int			i;

	printf("# statuses\n");
	s = ledger_open_account(c, "alice", "EUR", 0, &id);
	CHECK_STATUS(c, s, LEDGER_OK, "open alice");
	check(id > 0 && strcmp(ledger_error_message(c), "") == 0 &&
		  ledger_error_sqlstate(c) == NULL, "open returns an id, no error fields");
	s = ledger_open_account(c, "alice", "EUR", 0, &id2);
	check(s == LEDGER_OK && id2 == id, "open again with the same parameters: same id");
	s = ledger_open_account(c, "bank", "EUR", LEDGER_NO_FLOOR, NULL);
	CHECK_STATUS(c, s, LEDGER_OK, "open bank without a floor (NULL out-parameter)");
	s = ledger_open_account(c, "dollars", "USD", -500, NULL);
	CHECK_STATUS(c, s, LEDGER_OK, "open an account with an overdraft");
	s = ledger_open_account(c, "plain", NULL, 0, NULL);
	CHECK_STATUS(c, s, LEDGER_OK, "open with the default currency");

	s = ledger_transfer(c, "bank", "alice", 10000, "deposit-1", &v);
	check(s == LEDGER_OK && v > 0, "transfer bank->alice: id %" PRId64, v);
	s = ledger_transfer(c, "bank", "alice", 10000, "deposit-1", &v2);
	check(s == LEDGER_OK && v2 == v, "transfer replayed with its key: same id");
	check(strcmp(ledger_last_key(c), "deposit-1") == 0, "last key is the caller's");
	s = ledger_debit(c, "alice", 2500, "coffee-42", &v);
	check(s == LEDGER_OK && v == 7500, "debit: balance 7500 (%" PRId64 ")", v);
	s = ledger_debit(c, "alice", 2500, "coffee-42", &v);
	check(s == LEDGER_OK && v == 7500 && balance_of("alice") == 7500,
		  "debit replayed: 7500 again, applied once");
	s = ledger_credit(c, "alice", 100, NULL, &v);
	check(s == LEDGER_OK && v == 7600, "credit without a key");
	snprintf(key, sizeof(key), "%s", ledger_last_key(c));
	check(strlen(key) == LEDGER_GENERATED_KEY_LEN &&
		  strspn(key, "0123456789abcdef") == LEDGER_GENERATED_KEY_LEN,
		  "generated key is 32 hex digits: %s", key);
	check(entries_with_key(key) == 1, "generated key is in the journal");
	s = ledger_credit(c, "alice", 100, NULL, &v);
	check(s == LEDGER_OK && v == 7700 && strcmp(key, ledger_last_key(c)) != 0,
		  "next call, new key");
	s = ledger_balance(c, "alice", &v);
	check(s == LEDGER_OK && v == 7700, "balance 7700");
	check(strcmp(ledger_last_key(c), key) != 0 && ledger_last_attempts(c) == 1,
		  "balance leaves the last key alone; 1 attempt");

	s = ledger_debit(c, "alice", 1000000, "too-much", NULL);
	CHECK_STATUS(c, s, LEDGER_INSUFFICIENT_FUNDS, "LG001");
	check(ledger_error_sqlstate(c) && strcmp(ledger_error_sqlstate(c), "LG001") == 0 &&
		  ledger_error_detail(c) && strstr(ledger_error_detail(c), "7700") &&
		  strstr(ledger_error_message(c), "alice"),
		  "LG001 fields: %s / %s", ledger_error_message(c),
		  ledger_error_detail(c) ? ledger_error_detail(c) : "(no detail)");
	check(strcmp(ledger_last_key(c), "too-much") == 0, "the key of a refused posting is readable");
	s = ledger_balance(c, "alice", &v);
	check(s == LEDGER_OK && v == 7700 && ledger_error_sqlstate(c) == NULL,
		  "connection usable after a refusal; error fields cleared");
	s = ledger_debit(c, "alice", 1, "too-much", &v);
	check(s == LEDGER_OK && v == 7699, "a refused key stays unused");

	s = ledger_balance(c, "nobody", &v);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002");
	s = ledger_debit(c, "alice", 2, "coffee-42", &v);
	CHECK_STATUS(c, s, LEDGER_IDEMPOTENCY_CONFLICT, "LG003");
	s = ledger_transfer(c, "alice", "dollars", 1, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_CURRENCY_MISMATCH, "LG004");
	s = ledger_open_account(c, "alice", "USD", 0, &v);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_EXISTS, "LG005");
	s = ledger_debit(c, "alice", 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023 (amount 0)");
	s = ledger_history(c, "alice", -1, &h);
	check(s == LEDGER_INVALID_PARAMETER_VALUE && h == NULL, "22023 (history, max_rows -1), no result");
	s = ledger_debit(c, NULL, 1, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004 (account NULL)");
	s = ledger_credit(c, "plain", INT64_MAX, NULL, &v);
	check(s == LEDGER_OK && v == INT64_MAX, "credit up to INT64_MAX");
	s = ledger_credit(c, "plain", 1, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_NUMERIC_VALUE_OUT_OF_RANGE, "22003");
	s = ledger_debit(c, "dollars", 500, NULL, &v);
	check(s == LEDGER_OK && v == -500, "overdraft down to the floor");

	ledger_finish(c);

	c = connect_to(conninfo_for("user=ledger_nogrant"), 3);
	s = ledger_balance(c, "alice", &v);
	CHECK_STATUS(c, s, LEDGER_INSUFFICIENT_PRIVILEGE, "42501 (role not granted)");
	check(ledger_last_attempts(c) == 1, "42501 is not retried");
	ledger_finish(c);

	{
		char		ci[512];

		snprintf(ci, sizeof(ci), "host=%s port=%s dbname=%s", host,
				 getenv("LEDGER_TEST_FSYNC_OFF_PORT"), db);
		c = connect_to(ci, 3);
		s = ledger_open_account(c, "unsafe", "EUR", 0, NULL);
		CHECK_STATUS(c, s, LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE, "55000 (fsync = off)");
		s = ledger_balance(c, "unsafe", &v);
		CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "reads work on that server; nothing was opened");
		ledger_finish(c);
	}

	/* NULL options: the PG* environment, whose database has no extension */
	s = ledger_connect(NULL, &c);
	CHECK_STATUS(c, s, LEDGER_OK, "connect with NULL options (PG* environment)");
	s = ledger_balance(c, "alice", &v);
	CHECK_STATUS(c, s, LEDGER_SERVER_ERROR, "server error: extension not installed");
	check(ledger_error_sqlstate(c) && strcmp(ledger_error_sqlstate(c), "42883") == 0,
		  "its SQLSTATE is 42883 (%s)", ledger_error_message(c));
	ledger_finish(c);

	/* a closed port */
	{
		char		ci[256];
		double		t0;

		snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s connect_timeout=5",
				 closed_port(), db);
		ledger_options_init(&o);
		o.conninfo = ci;
		o.retry_attempts = 4;
		o.backoff_base_ms = 20;
		o.backoff_max_ms = 40;
		s = ledger_connect(&o, &bad);
		CHECK_STATUS(bad, s, LEDGER_CONNECTION_FAILED, "connect to a closed port");
		check(strlen(ledger_error_message(bad)) > 0, "its message: %s", ledger_error_message(bad));
		t0 = now_ms();
		s = ledger_debit(bad, "alice", 1, NULL, &v);
		t0 = now_ms() - t0;
		CHECK_STATUS(bad, s, LEDGER_CONNECTION_FAILED, "debit over a closed port");
		check(ledger_last_attempts(bad) == 4, "4 attempts (%d)", ledger_last_attempts(bad));
		check(t0 >= 50 && t0 < 3000, "with backoff: 3 sleeps in [10,20]+[20,40]+[20,40] ms: %.0f ms", t0);
		check(ledger_last_key(bad) != NULL, "a never-sent posting still reports its key");
		ledger_finish(bad);
	}

	/* client errors */
	ledger_options_init(&o);
	o.conninfo = conninfo_for("");
	o.retry_attempts = -1;
	s = ledger_connect(&o, &bad);
	CHECK_STATUS(bad, s, LEDGER_CLIENT_ERROR, "negative retry_attempts");
	s = ledger_balance(bad, "alice", &v);
	CHECK_STATUS(bad, s, LEDGER_CLIENT_ERROR, "calls on that handle");
	ledger_finish(bad);
	c = connect_to(conninfo_for(""), 3);
	s = ledger_history(c, "alice", 10, NULL);
	CHECK_STATUS(c, s, LEDGER_CLIENT_ERROR, "history without an out-parameter");
	s = ledger_verify(c, NULL);
	CHECK_STATUS(c, s, LEDGER_CLIENT_ERROR, "verify without an out-parameter");
	check(ledger_balance(NULL, "alice", &v) == LEDGER_CLIENT_ERROR, "NULL connection");
	ledger_finish(NULL);
	check(ledger_connect(NULL, NULL) == LEDGER_CLIENT_ERROR, "connect without a handle pointer");

	/* history and verify */
	s = ledger_history(c, "alice", 100, &h);
	check(s == LEDGER_OK && h->n_entries == 5, "history of alice: 5 entries (%zu)",
		  h ? h->n_entries : 0);
	if (h != NULL && h->n_entries == 5)
	{
		time_t		now = time(NULL);

		check(h->entries[0].amount == -1 && h->entries[0].balance_after == 7699 &&
			  strcmp(h->entries[0].idempotency_key, "too-much") == 0,
			  "newest first: the debit of 1 with its key");
		check(h->entries[4].amount == 10000 && h->entries[4].transfer_id > 0 &&
			  strcmp(h->entries[4].idempotency_key, "deposit-1") == 0,
			  "oldest: the deposit, with its transfer id");
		check(h->entries[3].amount == -2500 && h->entries[3].transfer_id == 0,
			  "a plain debit has transfer id 0");
		check(h->entries[0].entry_id > h->entries[4].entry_id, "entry ids decrease");
		check(h->entries[0].created_at_us / 1000000 > now - 3600 &&
			  h->entries[0].created_at_us / 1000000 <= now + 3600,
			  "created_at is now-ish (%" PRId64 ")", h->entries[0].created_at_us);
	}
	ledger_history_free(h);
	s = ledger_history(c, "alice", 0, &h);
	check(s == LEDGER_OK && h != NULL && h->n_entries == 0, "history of 0 rows");
	ledger_history_free(h);
	ledger_history_free(NULL);
	s = ledger_verify(c, &audit);
	check(s == LEDGER_OK && audit->n_problems == 0, "verify: no problems");
	ledger_audit_free(audit);
	ledger_audit_free(NULL);
	ledger_finish(c);

	for (i = 0; i <= LEDGER_HOLD_NOT_PENDING; i++)
		if (strcmp(ledger_status_name((LedgerStatus) i), "unknown_status") == 0)
			break;
	check(i == LEDGER_HOLD_NOT_PENDING + 1 &&
		  strcmp(ledger_status_name((LedgerStatus) 99), "unknown_status") == 0 &&
		  strcmp(ledger_status_name(LEDGER_UNKNOWN_OUTCOME), "unknown_outcome") == 0,
		  "every status has a name");
	check(ledger_library_version() == LEDGER_VERSION_NUM, "library version %d",
		  ledger_library_version());
}

/* ---- the lost reply --------------------------------------------------------- */

static void
test_lost_reply(void)
{
	Proxy	   *proxy = proxy_start(host, port);
	char		ci[512];
	LedgerConn *c;
	LedgerStatus s;
	int64_t		v = 0,
				before,
				bank_before;
	char		key[64];

	printf("# lost reply\n");
	if (proxy == NULL)
		die("proxy");
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s", proxy_port(proxy), db);
	c = connect_to(ci, 4);
	admin_exec("SELECT ledger_open_account('lost', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'lost', 1000)");

	s = ledger_debit(c, "lost", 1, NULL, &v);
	check(s == LEDGER_OK && v == 999, "debit through the proxy");

	before = balance_of("lost");
	proxy_cut_next_reply(proxy, false);
	s = ledger_debit(c, "lost", 100, NULL, &v);
	snprintf(key, sizeof(key), "%s", ledger_last_key(c) ? ledger_last_key(c) : "");
	check(proxy_cuts(proxy) == 1, "the proxy dropped the reply after the server answered");
	CHECK_STATUS(c, s, LEDGER_OK, "lost reply to a debit: retried");
	check(ledger_last_attempts(c) == 2, "in 2 attempts (%d)", ledger_last_attempts(c));
	check(v == before - 100, "the retry returned the original result (%" PRId64 ")", v);
	check(strcmp(ledger_error_message(c), "") == 0 && ledger_error_sqlstate(c) == NULL,
		  "no error fields after the retried success (%s)", ledger_error_message(c));
	check(balance_of("lost") == before - 100 && entries_with_key(key) == 1,
		  "the balance moved exactly once; one journal entry for key %s", key);

	/* the same for a transfer */
	before = balance_of("lost");
	bank_before = balance_of("bank");
	proxy_cut_next_reply(proxy, false);
	s = ledger_transfer(c, "lost", "bank", 50, "lost-transfer", &v);
	CHECK_STATUS(c, s, LEDGER_OK, "lost reply to a transfer: retried");
	check(proxy_cuts(proxy) == 2 && ledger_last_attempts(c) == 2 &&
		  v == admin_int("SELECT transfer_id FROM ledger.transfers WHERE idempotency_key = 'lost-transfer'"),
		  "original transfer id, 2 attempts");
	check(balance_of("lost") == before - 50 && balance_of("bank") == bank_before + 50 &&
		  entries_with_key("lost-transfer") == 2, "both legs applied once");

	/* a read is retried just the same */
	proxy_cut_next_reply(proxy, false);
	s = ledger_balance(c, "lost", &v);
	check(s == LEDGER_OK && v == before - 50 && ledger_last_attempts(c) == 2 &&
		  proxy_cuts(proxy) == 3, "lost reply to a balance read: retried");

	/* the server never answers again: unknown outcome */
	before = balance_of("lost");
	proxy_cut_next_reply(proxy, true);
	s = ledger_debit(c, "lost", 7, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_UNKNOWN_OUTCOME, "lost reply and no reconnect: unknown outcome");
	snprintf(key, sizeof(key), "%s", ledger_last_key(c) ? ledger_last_key(c) : "");
	check(strlen(key) == LEDGER_GENERATED_KEY_LEN && strstr(ledger_error_message(c), key),
		  "the key stays readable and is in the message: %s", ledger_error_message(c));
	check(ledger_last_attempts(c) == 4, "after all 4 attempts");
	check(balance_of("lost") == before - 7, "(it did commit on the server)");
	s = ledger_balance(c, "lost", &v);
	CHECK_STATUS(c, s, LEDGER_CONNECTION_FAILED, "a read without a server: connection failed, not unknown");
	s = ledger_debit(c, "lost", 7, "never-sent", &v);
	CHECK_STATUS(c, s, LEDGER_CONNECTION_FAILED, "a posting never sent: connection failed, not unknown");

	proxy_refuse(proxy, false);
	s = ledger_debit(c, "lost", 7, key, &v);
	check(s == LEDGER_OK && v == before - 7 && balance_of("lost") == before - 7 &&
		  entries_with_key(key) == 1,
		  "retrying later with that key returns the original result, applied once");
	check(entries_with_key("never-sent") == 0, "the never-sent posting left no trace");

	ledger_finish(c);
	proxy_stop(proxy);
}

/* ---- a terminated backend ---------------------------------------------------- */

static void
terminate(const char *application_name)
{
	int			i;

	admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
			   " WHERE application_name = '%s'", application_name);
	for (i = 0; i < 500; i++)
	{
		if (admin_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'",
					  application_name) == 0)
			return;
		sleep_ms(10);
	}
	die("backend did not terminate");
}

static void
test_terminated_backend(void)
{
	LedgerConn *c = connect_to(conninfo_for("application_name=ledger_term"), 3);
	LedgerStatus s;
	int64_t		v = 0,
				before;
	LedgerPosting items[2];

	printf("# terminated backend\n");
	before = balance_of("alice");
	s = ledger_debit(c, "alice", 1, NULL, &v);
	check(s == LEDGER_OK && v == before - 1, "debit before");
	terminate("ledger_term");
	s = ledger_debit(c, "alice", 1, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_OK, "debit after pg_terminate_backend: transparent reconnect");
	check(v == before - 2 && balance_of("alice") == before - 2, "applied once (%" PRId64 ")", v);
	terminate("ledger_term");
	s = ledger_balance(c, "alice", &v);
	check(s == LEDGER_OK && v == before - 2, "balance after pg_terminate_backend");
	terminate("ledger_term");
	memset(items, 0, sizeof(items));
	items[0].op = LEDGER_OP_DEBIT;
	items[0].account = "alice";
	items[0].amount = 1;
	items[1] = items[0];
	s = ledger_batch(c, items, 2);
	check(s == LEDGER_OK && items[1].result == before - 4, "batch after pg_terminate_backend");
	ledger_finish(c);
}

/* ---- 40001: serialization failures are retried --------------------------------- */

typedef struct SerialArgs
{
	int			attempts;
	bool		batch;			/* two debits in one batch, not one call */
	LedgerPosting items[2];
	LedgerStatus status;
	int			used;
	char		sqlstate[8];
} SerialArgs;

static void *
serial_debit(void *arg)
{
	SerialArgs *a = arg;
	LedgerConn *c = connect_to(conninfo_for("options='-c default_transaction_isolation=serializable'"),
							   a->attempts);

	if (a->batch)
	{
		memset(a->items, 0, sizeof(a->items));
		a->items[0].op = a->items[1].op = LEDGER_OP_DEBIT;
		a->items[0].account = a->items[1].account = "serial";
		a->items[0].amount = a->items[1].amount = 1;
		a->status = ledger_batch(c, a->items, 2);
	}
	else
		a->status = ledger_debit(c, "serial", 1, NULL, NULL);
	a->used = ledger_last_attempts(c);
	snprintf(a->sqlstate, sizeof(a->sqlstate), "%s",
			 ledger_error_sqlstate(c) ? ledger_error_sqlstate(c) : "");
	ledger_finish(c);
	return NULL;
}

/* Debit from a SERIALIZABLE session while another holds the row lock. */
static void
run_serial(SerialArgs *a)
{
	PGconn	   *holder = raw_connect(conninfo_for(""));
	pthread_t	t;
	PGresult   *res;
	int			i;

	res = PQexec(holder, "BEGIN; SELECT ledger_debit('serial', 1)");
	PQclear(res);
	pthread_create(&t, NULL, serial_debit, a);
	for (i = 0; i < 1000; i++)
	{
		if (admin_int("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
					  " AND datname = current_database()") > 0)
			break;
		sleep_ms(10);
	}
	res = PQexec(holder, "COMMIT");
	PQclear(res);
	pthread_join(t, NULL);
	PQfinish(holder);
}

static void
test_serialization_retry(void)
{
	SerialArgs	a;
	int64_t		before;

	printf("# 40001\n");
	admin_exec("SELECT ledger_open_account('serial', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'serial', 100)");
	before = balance_of("serial");

	memset(&a, 0, sizeof(a));
	a.attempts = 3;
	run_serial(&a);
	check(a.status == LEDGER_OK && a.used == 2,
		  "40001 under SERIALIZABLE is retried: %s in %d attempts",
		  ledger_status_name(a.status), a.used);
	check(balance_of("serial") == before - 2, "both debits applied once");

	memset(&a, 0, sizeof(a));
	a.attempts = 1;
	run_serial(&a);
	check(a.status == LEDGER_SERVER_ERROR && strcmp(a.sqlstate, "40001") == 0 && a.used == 1,
		  "with 1 attempt: server_error 40001 (%s %s)", ledger_status_name(a.status), a.sqlstate);
	check(balance_of("serial") == before - 3, "that debit was not applied");

	/*
	 * In a batch, the item that hit 40001 is retried in the next round; the
	 * other one went through at once, so the retried item applies after it.
	 */
	memset(&a, 0, sizeof(a));
	a.attempts = 3;
	a.batch = true;
	run_serial(&a);
	check(a.status == LEDGER_OK && a.used == 2 && a.items[0].status == LEDGER_OK &&
		  a.items[1].status == LEDGER_OK && a.items[1].result == before - 5 &&
		  a.items[0].result == before - 6,
		  "batch: the item that got 40001 is retried (%s, %d attempts, %" PRId64 " %" PRId64 ")",
		  ledger_status_name(a.status), a.used, a.items[0].result, a.items[1].result);
	check(balance_of("serial") == before - 6, "every debit applied once");
}

/* ---- 16 threads, one account ---------------------------------------------------- */

#define N_THREADS 16
#define DEBITS_PER_THREAD 10
#define DEBIT 9
#define HOT_BALANCE 1000

typedef struct ThreadResult
{
	int			ok;
	int			insufficient;
	int			other;
	char		error[256];
} ThreadResult;

static pthread_barrier_t barrier;

static void *
hot_debits(void *arg)
{
	ThreadResult *r = arg;
	LedgerConn *c = connect_to(conninfo_for("user=ledger_app"), 5);
	int			i;

	pthread_barrier_wait(&barrier);
	for (i = 0; i < DEBITS_PER_THREAD; i++)
	{
		LedgerStatus s = ledger_debit(c, "hot", DEBIT, NULL, NULL);

		if (s == LEDGER_OK)
			r->ok++;
		else if (s == LEDGER_INSUFFICIENT_FUNDS)
			r->insufficient++;
		else
		{
			r->other++;
			snprintf(r->error, sizeof(r->error), "%s: %s", ledger_status_name(s),
					 ledger_error_message(c));
		}
	}
	ledger_finish(c);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t	threads[N_THREADS];
	ThreadResult results[N_THREADS];
	int			ok = 0,
				insufficient = 0,
				other = 0,
				i;
	int64_t		final;

	printf("# %d threads\n", N_THREADS);
	admin_exec("SELECT ledger_open_account('hot', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'hot', %d)", HOT_BALANCE);
	memset(results, 0, sizeof(results));
	pthread_barrier_init(&barrier, NULL, N_THREADS);
	for (i = 0; i < N_THREADS; i++)
		pthread_create(&threads[i], NULL, hot_debits, &results[i]);
	for (i = 0; i < N_THREADS; i++)
	{
		pthread_join(threads[i], NULL);
		ok += results[i].ok;
		insufficient += results[i].insufficient;
		other += results[i].other;
		if (results[i].other)
			printf("# thread %d: %s\n", i, results[i].error);
	}
	pthread_barrier_destroy(&barrier);
	final = balance_of("hot");
	check(other == 0, "every debit was ok or insufficient_funds (%d others)", other);
	check(final >= 0, "never overdrawn: %" PRId64, final);
	check((int64_t) ok * DEBIT == HOT_BALANCE - final,
		  "ok x amount == balance moved: %d x %d == %d - %" PRId64, ok, DEBIT, HOT_BALANCE, final);
	check(ok == HOT_BALANCE / DEBIT && insufficient == N_THREADS * DEBITS_PER_THREAD - ok,
		  "%d ok, %d refused with LG001", ok, insufficient);
	check(admin_int("SELECT count(*) FROM ledger_verify()") == 0, "ledger_verify() is clean");
}

/* ---- pipeline batches ---------------------------------------------------------- */

static void
test_batches(void)
{
	LedgerConn *c = connect_to(conninfo_for("application_name=ledger_batch"), 4);
	LedgerPosting items[8];
	char		keys[8][64];
	LedgerPosting *many;
	LedgerStatus s;
	Proxy	   *proxy;
	char		ci[512];
	int			i,
				ok,
				refused,
				unsent;
	int64_t		v;

	printf("# batches\n");
	admin_exec("SELECT ledger_open_account('b1', 'EUR')");
	admin_exec("SELECT ledger_open_account('b2', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'b1', 100)");

	posting(&items[0], LEDGER_OP_CREDIT, "b1", NULL, 10, NULL);	/* 110 */
	posting(&items[1], LEDGER_OP_DEBIT, "b1", NULL, 1000, NULL);	/* LG001 */
	posting(&items[2], LEDGER_OP_DEBIT, "b1", NULL, 20, "batch-key");	/* 90 */
	posting(&items[3], LEDGER_OP_DEBIT, "nobody", NULL, 1, NULL);	/* LG002 */
	posting(&items[4], LEDGER_OP_TRANSFER, "b1", "b2", 30, NULL);	/* id */
	posting(&items[5], LEDGER_OP_DEBIT, "b1", NULL, 0, NULL);	/* 22023 */
	posting(&items[6], LEDGER_OP_TRANSFER, "b1", "dollars", 1, NULL);	/* LG004 */
	posting(&items[7], LEDGER_OP_DEBIT, "b1", NULL, 5, NULL);	/* 55 */
	s = ledger_batch(c, items, 8);
	check(s == LEDGER_INSUFFICIENT_FUNDS, "batch returns the first failure: %s",
		  ledger_status_name(s));
	check(items[0].status == LEDGER_OK && items[0].result == 110, "item 0 credit ok: %" PRId64,
		  items[0].result);
	check(items[1].status == LEDGER_INSUFFICIENT_FUNDS && items[1].sqlstate &&
		  strcmp(items[1].sqlstate, "LG001") == 0 && items[1].detail != NULL,
		  "item 1 LG001: %s", items[1].message);
	check(items[2].status == LEDGER_OK && items[2].result == 90 &&
		  strcmp(items[2].key, "batch-key") == 0, "item 2 after the failure: ok, caller's key");
	check(items[3].status == LEDGER_ACCOUNT_NOT_FOUND, "item 3 LG002");
	check(items[4].status == LEDGER_OK && items[4].result > 0, "item 4 transfer ok");
	check(items[5].status == LEDGER_INVALID_PARAMETER_VALUE, "item 5 22023");
	check(items[6].status == LEDGER_CURRENCY_MISMATCH, "item 6 LG004");
	check(items[7].status == LEDGER_OK && items[7].result == 55 && strcmp(items[7].message, "") == 0,
		  "item 7 ok: %" PRId64, items[7].result);
	check(balance_of("b1") == 55 && balance_of("b2") == 30, "balances: b1 55, b2 30");
	check(strlen(items[0].key) == LEDGER_GENERATED_KEY_LEN &&
		  strcmp(items[0].key, items[7].key) != 0, "generated keys, one per item");
	check(ledger_error_sqlstate(c) && strcmp(ledger_error_sqlstate(c), "LG001") == 0,
		  "connection error fields: the first failure's");
	/* keep the keys: they belong to the connection until its next call */
	for (i = 0; i < 8; i++)
		snprintf(keys[i], sizeof(keys[i]), "%s", items[i].key);
	s = ledger_balance(c, "b1", &v);
	check(s == LEDGER_OK && v == 55, "connection usable after the batch");

	/* replay: the same keys return the same results and change nothing */
	posting(&items[0], LEDGER_OP_CREDIT, "b1", NULL, 10, keys[0]);
	posting(&items[1], LEDGER_OP_DEBIT, "b1", NULL, 20, keys[2]);
	posting(&items[2], LEDGER_OP_TRANSFER, "b1", "b2", 30, keys[4]);
	posting(&items[3], LEDGER_OP_DEBIT, "b1", NULL, 6, keys[7]);
	s = ledger_batch(c, items, 4);
	check(s == LEDGER_IDEMPOTENCY_CONFLICT && items[0].status == LEDGER_OK &&
		  items[0].result == 110 && items[1].result == 90 && items[2].status == LEDGER_OK &&
		  items[3].status == LEDGER_IDEMPOTENCY_CONFLICT,
		  "replayed batch: original results, LG003 for a changed amount");
	check(balance_of("b1") == 55 && balance_of("b2") == 30, "replay changed nothing");

	s = ledger_batch(c, items, 0);
	check(s == LEDGER_OK, "empty batch");
	posting(&items[0], (LedgerOp) 42, "b1", NULL, 1, NULL);
	s = ledger_batch(c, items, 1);
	check(s == LEDGER_CLIENT_ERROR && items[0].status == LEDGER_CLIENT_ERROR, "invalid op: client error");
	check(ledger_batch(c, NULL, 3) == LEDGER_CLIENT_ERROR, "NULL items: client error");

	/* a large batch: 2000 debits of 1 on a balance of 1500 */
	admin_exec("SELECT ledger_open_account('bulk', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'bulk', 1500)");
	many = calloc(2000, sizeof(LedgerPosting));
	for (i = 0; i < 2000; i++)
		posting(&many[i], LEDGER_OP_DEBIT, "bulk", NULL, 1, NULL);
	s = ledger_batch(c, many, 2000);
	ok = refused = 0;
	for (i = 0; i < 2000; i++)
	{
		ok += many[i].status == LEDGER_OK;
		refused += many[i].status == LEDGER_INSUFFICIENT_FUNDS;
	}
	check(s == LEDGER_INSUFFICIENT_FUNDS && ok == 1500 && refused == 500 &&
		  many[1499].result == 0 && many[1500].status == LEDGER_INSUFFICIENT_FUNDS,
		  "2000 items in one pipeline: %d ok, %d LG001, in order", ok, refused);
	check(balance_of("bulk") == 0 && ledger_last_attempts(c) == 1, "bulk balance 0, one attempt");
	ledger_finish(c);

	/* the connection is lost in the middle of a batch */
	proxy = proxy_start(host, port);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s", proxy_port(proxy), db);
	c = connect_to(ci, 4);
	admin_exec("SELECT ledger_transfer('bank', 'bulk', 1000)");
	for (i = 0; i < 200; i++)
		posting(&many[i], LEDGER_OP_DEBIT, "bulk", NULL, 1, NULL);
	s = ledger_batch(c, many, 1);	/* prepares the statement */
	proxy_cut_next_reply(proxy, false);
	s = ledger_batch(c, many, 200);
	ok = 0;
	for (i = 0; i < 200; i++)
		ok += many[i].status == LEDGER_OK && many[i].result == 1000 - 1 - (i + 1);
	check(proxy_cuts(proxy) == 1 && s == LEDGER_OK && ledger_last_attempts(c) == 2,
		  "batch with a lost reply: %s after %d attempts", ledger_status_name(s),
		  ledger_last_attempts(c));
	check(ok == 200 && balance_of("bulk") == 1000 - 201,
		  "every item ok exactly once, in order (%d)", ok);

	/* lost for good: the unanswered items are unknown, not failed */
	proxy_cut_next_reply(proxy, true);
	for (i = 0; i < 50; i++)
		posting(&many[i], LEDGER_OP_DEBIT, "bulk", NULL, 1, NULL);
	s = ledger_batch(c, many, 50);
	ok = refused = unsent = 0;
	for (i = 0; i < 50; i++)
	{
		ok += many[i].status == LEDGER_OK;
		refused += many[i].status == LEDGER_UNKNOWN_OUTCOME;
		unsent += many[i].status == LEDGER_CONNECTION_FAILED;
	}
	/* items still being written when the proxy cut were never sent */
	check(s == LEDGER_UNKNOWN_OUTCOME && ok + refused + unsent == 50 && refused > 0,
		  "batch lost for good: %d ok, %d unknown_outcome, %d connection_failed",
		  ok, refused, unsent);
	proxy_refuse(proxy, false);
	for (i = 0; i < 50; i++)
	{
		snprintf(keys[0], sizeof(keys[0]), "%s", many[i].key);
		many[i].idempotency_key = strdup(keys[0]);
	}
	s = ledger_batch(c, many, 50);
	check(s == LEDGER_OK && balance_of("bulk") == 1000 - 201 - 50,
		  "retrying them with their keys: each applied once");
	for (i = 0; i < 50; i++)
		free((char *) many[i].idempotency_key);
	free(many);
	ledger_finish(c);
	proxy_stop(proxy);
}

/* ---- server batches: one statement, one transaction ------------------------------ */

/*
 * How many transactions wrote the journal entries of these items' keys,
 * and how many entries there are: one commit means one xmin.
 */
static int64_t
xacts_of(const LedgerPosting *items, size_t n, int64_t *n_entries)
{
	char		keys[1 << 16];
	size_t		len = 0;
	size_t		i;
	const char *values[1];

	len += (size_t) snprintf(keys + len, sizeof(keys) - len, "{");
	for (i = 0; i < n && len < sizeof(keys) - 64; i++)
		len += (size_t) snprintf(keys + len, sizeof(keys) - len, "%s\"%s\"", i ? "," : "",
								 items[i].key);	/* generated or plain keys only */
	snprintf(keys + len, sizeof(keys) - len, "}");
	values[0] = keys;
	*n_entries = admin_int_params("SELECT count(*) FROM ledger.entries"
								  " WHERE idempotency_key = ANY ($1::text[])", 1, values);
	return admin_int_params("SELECT count(DISTINCT xmin::text) FROM ledger.entries"
							" WHERE idempotency_key = ANY ($1::text[])", 1, values);
}

/* A server batch run from a thread while the main thread holds a key. */
typedef struct RaceArgs
{
	int			attempts;
	LedgerPosting items[2];
	char		keys[2][64];
	LedgerStatus status;
	int			used;
	char		sqlstate[8];
} RaceArgs;

static void *
race_batch(void *arg)
{
	RaceArgs   *a = arg;
	LedgerConn *c = connect_to(conninfo_for(""), a->attempts);

	posting(&a->items[0], LEDGER_OP_DEBIT, "sbrace", NULL, 1, a->keys[0]);
	posting(&a->items[1], LEDGER_OP_DEBIT, "sbrace", NULL, 1, a->keys[1]);
	a->status = ledger_post_batch(c, a->items, 2);
	a->used = ledger_last_attempts(c);
	snprintf(a->sqlstate, sizeof(a->sqlstate), "%s",
			 ledger_error_sqlstate(c) ? ledger_error_sqlstate(c) : "");
	/* the items' strings die with the connection */
	a->items[0].key = a->items[1].key = NULL;
	a->items[0].message = a->items[1].message = NULL;
	a->items[0].sqlstate = a->items[1].sqlstate = NULL;
	ledger_finish(c);
	return NULL;
}

/*
 * The batch claims its keys last.  Another session holds one of them,
 * uncommitted, on another account; the batch waits for it, and when it
 * commits the batch fails with 40001 and is retried (or not, with one
 * attempt).
 */
static void
run_race(RaceArgs *a, const char *held_key)
{
	PGconn	   *holder = raw_connect(conninfo_for(""));
	char		sql[256];
	pthread_t	t;
	PGresult   *res;
	int			i;

	snprintf(sql, sizeof(sql), "BEGIN; SELECT ledger_debit('bank', 1, '%s')", held_key);
	res = PQexec(holder, sql);
	PQclear(res);
	pthread_create(&t, NULL, race_batch, a);
	for (i = 0; i < 1000; i++)
	{
		if (admin_int("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
					  " AND datname = current_database()") > 0)
			break;
		sleep_ms(10);
	}
	res = PQexec(holder, "COMMIT");
	PQclear(res);
	pthread_join(t, NULL);
	PQfinish(holder);
}

static void
test_server_batches(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 4);
	LedgerConn *other;
	LedgerPosting items[8];
	char		keys[8][64];
	int64_t		results[8];
	LedgerPosting *many;
	LedgerStatus s;
	Proxy	   *proxy;
	RaceArgs	race;
	char		ci[512];
	char		last_key[64];
	int64_t		v,
				n_entries,
				bank_before,
				before;
	int			i,
				ok,
				refused;
	double		t0;

	printf("# server batches (ledger_post_batch)\n");
	admin_exec("SELECT ledger_open_account('sb1', 'EUR')");
	admin_exec("SELECT ledger_open_account('sb2', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'sb1', 100)");
	s = ledger_debit(c, "alice", 1, NULL, NULL);
	snprintf(last_key, sizeof(last_key), "%s", ledger_last_key(c));

	/* debits, with refusals in the middle */
	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 10, NULL);	/* 90 */
	posting(&items[1], LEDGER_OP_DEBIT, "sb1", NULL, 1000, NULL);	/* LG001 */
	posting(&items[2], LEDGER_OP_DEBIT, "nobody", NULL, 1, NULL);	/* LG002 */
	posting(&items[3], LEDGER_OP_DEBIT, "sb1", NULL, 0, NULL);	/* 22023 */
	posting(&items[4], LEDGER_OP_DEBIT, "sb1", NULL, 20, "sb-key-1");	/* 70 */
	posting(&items[5], LEDGER_OP_DEBIT, "sb1", NULL, 1, "coffee-42");	/* LG003 */
	posting(&items[6], LEDGER_OP_DEBIT, "bank", NULL, INT64_MAX, NULL);	/* 22003 */
	posting(&items[7], LEDGER_OP_DEBIT, "sb1", NULL, 5, NULL);	/* 65 */
	s = ledger_post_batch(c, items, 8);
	check(s == LEDGER_INSUFFICIENT_FUNDS, "debit batch returns the first refusal: %s",
		  ledger_status_name(s));
	check(items[0].status == LEDGER_OK && items[0].result == 90 &&
		  strcmp(items[0].message, "") == 0 && items[0].sqlstate == NULL,
		  "item 0 ok: %" PRId64, items[0].result);
	check(items[1].status == LEDGER_INSUFFICIENT_FUNDS && items[1].sqlstate &&
		  strcmp(items[1].sqlstate, "LG001") == 0 && items[1].result == 0 &&
		  strcmp(items[1].message, "items[1] refused: insufficient_funds") == 0,
		  "item 1 LG001: %s", items[1].message);
	check(items[2].status == LEDGER_ACCOUNT_NOT_FOUND && strcmp(items[2].sqlstate, "LG002") == 0,
		  "item 2 LG002");
	check(items[3].status == LEDGER_INVALID_PARAMETER_VALUE && strcmp(items[3].sqlstate, "22023") == 0,
		  "item 3 22023 (amount 0)");
	check(items[4].status == LEDGER_OK && items[4].result == 70 &&
		  strcmp(items[4].key, "sb-key-1") == 0, "item 4 after the refusals: ok, caller's key");
	check(items[5].status == LEDGER_IDEMPOTENCY_CONFLICT && strcmp(items[5].sqlstate, "LG003") == 0,
		  "item 5 LG003 (a key of another request)");
	check(items[6].status == LEDGER_NUMERIC_VALUE_OUT_OF_RANGE && strcmp(items[6].sqlstate, "22003") == 0,
		  "item 6 22003 (no floor, bigint overflow)");
	check(items[7].status == LEDGER_OK && items[7].result == 65, "item 7 ok: %" PRId64,
		  items[7].result);
	check(balance_of("sb1") == 65, "only the ok items moved the balance: 65");
	check(is_generated_key(items[0].key) && is_generated_key(items[7].key) &&
		  strcmp(items[0].key, items[7].key) != 0, "generated keys, one per item");
	check(ledger_error_sqlstate(c) && strcmp(ledger_error_sqlstate(c), "LG001") == 0 &&
		  strcmp(ledger_error_message(c), items[1].message) == 0,
		  "connection error fields: the first refusal's (%s)", ledger_error_message(c));
	check(ledger_last_attempts(c) == 1 && strcmp(ledger_last_key(c), last_key) == 0,
		  "one attempt; ledger_last_key unchanged");
	{
		LedgerPosting ok_items[3] = {items[0], items[4], items[7]};

		v = xacts_of(ok_items, 3, &n_entries);
		check(v == 1 && n_entries == 3, "one commit: 3 journal entries, %" PRId64 " transaction(s)", v);
	}
	for (i = 0; i < 8; i++)
	{
		snprintf(keys[i], sizeof(keys[i]), "%s", items[i].key);
		results[i] = items[i].result;
	}

	/* the pipelined batch, for contrast: one transaction per item */
	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	posting(&items[1], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	posting(&items[2], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	s = ledger_batch(c, items, 3);
	v = xacts_of(items, 3, &n_entries);
	check(s == LEDGER_OK && v == 3 && n_entries == 3,
		  "(ledger_batch: 3 items, %" PRId64 " transactions)", v);
	admin_exec("SELECT ledger_credit('sb1', 3)");

	/* the same keys again: the original results, nothing applied twice */
	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 10, keys[0]);
	posting(&items[1], LEDGER_OP_DEBIT, "sb1", NULL, 20, keys[4]);
	posting(&items[2], LEDGER_OP_DEBIT, "sb1", NULL, 5, keys[7]);
	posting(&items[3], LEDGER_OP_DEBIT, "sb1", NULL, 1000, keys[1]);
	s = ledger_post_batch(c, items, 4);
	check(items[0].status == LEDGER_OK && items[0].result == results[0] &&
		  items[1].status == LEDGER_OK && items[1].result == results[4] &&
		  items[2].status == LEDGER_OK && items[2].result == results[7],
		  "replayed batch: the original results (%" PRId64 ", %" PRId64 ", %" PRId64 ")",
		  items[0].result, items[1].result, items[2].result);
	check(s == LEDGER_INSUFFICIENT_FUNDS && items[3].status == LEDGER_INSUFFICIENT_FUNDS,
		  "a refused item's key was never used: evaluated afresh, refused again");
	check(balance_of("sb1") == 65 && entries_with_key(keys[0]) == 1 &&
		  entries_with_key("sb-key-1") == 1, "replay changed nothing");
	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 11, keys[0]);
	posting(&items[1], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	s = ledger_post_batch(c, items, 2);
	check(s == LEDGER_IDEMPOTENCY_CONFLICT && items[0].status == LEDGER_IDEMPOTENCY_CONFLICT &&
		  items[1].status == LEDGER_OK && items[1].result == 64,
		  "a used key with another amount: LG003 for that item only");
	s = ledger_balance(c, "sb1", &v);
	check(s == LEDGER_OK && v == 64 && ledger_error_sqlstate(c) == NULL,
		  "connection usable after the batch");
	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 1, "sb-dup");
	posting(&items[1], LEDGER_OP_DEBIT, "sb1", NULL, 1, "sb-dup");
	s = ledger_post_batch(c, items, 2);
	check(s == LEDGER_OK && items[0].result == 63 && items[1].result == 63 &&
		  balance_of("sb1") == 63 && strcmp(ledger_error_message(c), "") == 0 &&
		  ledger_error_sqlstate(c) == NULL,
		  "one key twice in a batch: applied once, replayed once; error fields empty");

	/* transfers */
	bank_before = balance_of("bank");
	posting(&items[0], LEDGER_OP_TRANSFER, "bank", "sb2", 50, NULL);	/* ok */
	posting(&items[1], LEDGER_OP_TRANSFER, "sb1", "sb2", 10, "sb-transfer");	/* ok */
	posting(&items[2], LEDGER_OP_TRANSFER, "sb1", "dollars", 1, NULL);	/* LG004 */
	posting(&items[3], LEDGER_OP_TRANSFER, "sb2", "sb2", 1, NULL);	/* 22023 */
	posting(&items[4], LEDGER_OP_TRANSFER, "sb1", "nobody", 1, NULL);	/* LG002 */
	posting(&items[5], LEDGER_OP_TRANSFER, "sb1", "sb2", 1000, NULL);	/* LG001 */
	posting(&items[6], LEDGER_OP_TRANSFER, "sb2", "sb1", 5, NULL);	/* ok */
	s = ledger_post_batch(c, items, 7);
	check(s == LEDGER_CURRENCY_MISMATCH, "transfer batch returns the first refusal: %s",
		  ledger_status_name(s));
	check(items[0].status == LEDGER_OK && items[1].status == LEDGER_OK &&
		  items[6].status == LEDGER_OK && items[0].result > 0 &&
		  items[1].result > items[0].result && items[6].result > items[1].result,
		  "transfers 0, 1, 6 ok, ids in order");
	check(items[1].result == admin_int("SELECT transfer_id FROM ledger.transfers"
									   " WHERE idempotency_key = 'sb-transfer'"),
		  "the result is the transfer id");
	check(items[2].status == LEDGER_CURRENCY_MISMATCH && items[3].status == LEDGER_INVALID_PARAMETER_VALUE &&
		  items[4].status == LEDGER_ACCOUNT_NOT_FOUND && items[5].status == LEDGER_INSUFFICIENT_FUNDS,
		  "items 2-5: LG004, 22023 (to itself), LG002, LG001");
	check(balance_of("sb1") == 63 - 10 + 5 && balance_of("sb2") == 50 + 10 - 5 &&
		  balance_of("bank") == bank_before - 50, "balances: sb1 58, sb2 55, bank -50");
	{
		LedgerPosting ok_items[3] = {items[0], items[1], items[6]};

		v = xacts_of(ok_items, 3, &n_entries);
		check(v == 1 && n_entries == 6, "one commit: 6 journal entries, %" PRId64 " transaction(s)", v);
	}
	for (i = 0; i < 7; i++)
	{
		snprintf(keys[i], sizeof(keys[i]), "%s", items[i].key);
		results[i] = items[i].result;
	}
	posting(&items[0], LEDGER_OP_TRANSFER, "bank", "sb2", 50, keys[0]);
	posting(&items[1], LEDGER_OP_TRANSFER, "sb1", "sb2", 10, keys[1]);
	posting(&items[2], LEDGER_OP_TRANSFER, "sb2", "sb1", 5, keys[6]);
	s = ledger_post_batch(c, items, 3);
	check(s == LEDGER_OK && items[0].result == results[0] && items[1].result == results[1] &&
		  items[2].result == results[6] && balance_of("sb1") == 58 && balance_of("sb2") == 55,
		  "transfer batch replayed: the same ids, nothing moved");

	/* names and keys of every shape travel intact */
	{
		static const char *const names[] = {
			"quote\"d", "back\\slash", "com,ma", "{brace}", "NULL", " spaced ",
			"\xc3\xbc" "n" "\xc3\xaf" "c" "\xc3\xb8" "d\xc3\xa9 \xe2\x82\xac", "\"{\\,}\"", "it's", "tab\there"
		};
		LedgerPosting odd[10];
		char		odd_keys[10][64];
		bool		all = true;

		for (i = 0; i < 10; i++)
		{
			s = ledger_open_account(c, names[i], "EUR", 0, NULL);
			all &= s == LEDGER_OK;
			snprintf(odd_keys[i], sizeof(odd_keys[i]), "k%d \"\\,{}NULL'\xc3\xa9", i);
			posting(&odd[i], LEDGER_OP_TRANSFER, "bank", names[i], 100 + i, odd_keys[i]);
		}
		check(all, "opened 10 accounts with quotes, backslashes, commas, braces, NULL, unicode");
		s = ledger_post_batch(c, odd, 10);
		CHECK_STATUS(c, s, LEDGER_OK, "transfer batch to them");
		for (i = 0; i < 10; i++)
			posting(&odd[i], LEDGER_OP_DEBIT, names[i], NULL, i + 1, NULL);
		s = ledger_post_batch(c, odd, 10);
		CHECK_STATUS(c, s, LEDGER_OK, "debit batch on them");
		for (i = 0; i < 10; i++)
		{
			const char *values[1] = {odd_keys[i]};

			s = ledger_balance(c, names[i], &v);
			all &= s == LEDGER_OK && v == 100 + i - (i + 1) && odd[i].result == v;
			all &= admin_int_params("SELECT count(*) FROM ledger.entries"
									" WHERE idempotency_key = $1", 1, values) == 2;
		}
		check(all, "each balance moved by its own items; each odd key on its 2 entries");
		check(admin_int("SELECT count(*) FROM ledger.accounts WHERE name = 'NULL'") == 1,
			  "the name NULL is a name, not a NULL");
		{
			char	   *long_key = malloc(300);

			memset(long_key, 'k', 256);
			long_key[256] = '\0';
			posting(&odd[0], LEDGER_OP_DEBIT, names[0], NULL, 1, long_key);
			posting(&odd[1], LEDGER_OP_DEBIT, "", NULL, 1, NULL);
			posting(&odd[2], LEDGER_OP_DEBIT, names[0], NULL, 1, NULL);
			s = ledger_post_batch(c, odd, 3);
			check(s == LEDGER_INVALID_PARAMETER_VALUE &&
				  odd[0].status == LEDGER_INVALID_PARAMETER_VALUE &&
				  odd[1].status == LEDGER_INVALID_PARAMETER_VALUE && odd[2].status == LEDGER_OK,
				  "a 256-byte key, an empty name: 22023 for those items only");
			free(long_key);
		}
	}

	/* whole-call errors: every item gets the status, nothing is applied */
	before = balance_of("sb1");
	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	posting(&items[1], LEDGER_OP_DEBIT, NULL, NULL, 1, NULL);
	s = ledger_post_batch(c, items, 2);
	check(s == LEDGER_NULL_VALUE_NOT_ALLOWED && items[0].status == LEDGER_NULL_VALUE_NOT_ALLOWED &&
		  items[1].status == LEDGER_NULL_VALUE_NOT_ALLOWED && items[0].sqlstate &&
		  strcmp(items[0].sqlstate, "22004") == 0 && strcmp(items[0].message, ledger_error_message(c)) == 0,
		  "a NULL account: 22004 for the whole call (%s)", ledger_error_message(c));
	check(balance_of("sb1") == before && entries_with_key(items[0].key) == 0, "nothing applied");
	posting(&items[0], LEDGER_OP_TRANSFER, "sb1", NULL, 1, NULL);
	s = ledger_post_batch(c, items, 1);
	check(s == LEDGER_NULL_VALUE_NOT_ALLOWED, "a transfer to NULL: 22004");

	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	posting(&items[1], LEDGER_OP_TRANSFER, "sb1", "sb2", 1, NULL);
	s = ledger_post_batch(c, items, 2);
	check(s == LEDGER_CLIENT_ERROR && items[0].status == LEDGER_CLIENT_ERROR &&
		  items[1].status == LEDGER_CLIENT_ERROR && strstr(ledger_error_message(c), "same op"),
		  "mixed ops: client error (%s)", ledger_error_message(c));
	posting(&items[0], LEDGER_OP_CREDIT, "sb1", NULL, 1, NULL);
	s = ledger_post_batch(c, items, 1);
	check(s == LEDGER_CLIENT_ERROR && strstr(ledger_error_message(c), "credits"),
		  "credits: client error (%s)", ledger_error_message(c));
	posting(&items[0], (LedgerOp) 42, "sb1", NULL, 1, NULL);
	s = ledger_post_batch(c, items, 1);
	check(s == LEDGER_CLIENT_ERROR && items[0].status == LEDGER_CLIENT_ERROR, "invalid op: client error");
	check(ledger_post_batch(c, NULL, 2) == LEDGER_CLIENT_ERROR, "NULL items: client error");
	check(ledger_post_batch(NULL, items, 1) == LEDGER_CLIENT_ERROR, "NULL connection: client error");
	check(ledger_post_batch(c, items, 0) == LEDGER_OK, "empty batch: ok, nothing sent");
	check(balance_of("sb1") == before, "nothing applied by the refused calls");

	other = connect_to(conninfo_for("user=ledger_nogrant"), 3);
	posting(&items[0], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	posting(&items[1], LEDGER_OP_DEBIT, "sb1", NULL, 1, NULL);
	s = ledger_post_batch(other, items, 2);
	check(s == LEDGER_INSUFFICIENT_PRIVILEGE && items[0].status == LEDGER_INSUFFICIENT_PRIVILEGE &&
		  items[1].status == LEDGER_INSUFFICIENT_PRIVILEGE && strcmp(items[1].sqlstate, "42501") == 0 &&
		  ledger_last_attempts(other) == 1,
		  "an ungranted role: 42501 for every item, not retried (%s)", ledger_error_message(other));
	ledger_finish(other);
	other = connect_to(conninfo_for("user=ledger_app"), 3);
	s = ledger_post_batch(other, items, 2);
	check(s == LEDGER_OK && items[1].result == before - 2,
		  "the granted role (GRANT of the README) posts a batch");
	ledger_finish(other);
	snprintf(ci, sizeof(ci), "host=%s port=%s dbname=%s", host,
			 getenv("LEDGER_TEST_FSYNC_OFF_PORT"), db);
	other = connect_to(ci, 3);
	s = ledger_post_batch(other, items, 2);
	check(s == LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE &&
		  items[0].status == LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE,
		  "fsync = off: 55000 for the whole call");
	ledger_finish(other);
	s = ledger_connect(NULL, &other);
	s = ledger_post_batch(other, items, 2);
	check(s == LEDGER_SERVER_ERROR && ledger_error_sqlstate(other) &&
		  strcmp(ledger_error_sqlstate(other), "42883") == 0 && items[1].status == LEDGER_SERVER_ERROR,
		  "no extension: server error 42883 for every item");
	ledger_finish(other);

	/* 40001: a key of the batch committed by another session meanwhile */
	admin_exec("SELECT ledger_open_account('sbrace', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'sbrace', 10)");
	memset(&race, 0, sizeof(race));
	race.attempts = 3;
	snprintf(race.keys[0], sizeof(race.keys[0]), "sb-race-a");
	snprintf(race.keys[1], sizeof(race.keys[1]), "sb-race-held");
	run_race(&race, "sb-race-held");
	check(race.status == LEDGER_IDEMPOTENCY_CONFLICT && race.used == 2 &&
		  race.items[0].status == LEDGER_OK && race.items[0].result == 9 &&
		  race.items[1].status == LEDGER_IDEMPOTENCY_CONFLICT,
		  "40001 retried: %s in %d attempts; the key the other session took is LG003",
		  ledger_status_name(race.status), race.used);
	check(balance_of("sbrace") == 9 && entries_with_key("sb-race-a") == 1, "applied once");
	memset(&race, 0, sizeof(race));
	race.attempts = 1;
	snprintf(race.keys[0], sizeof(race.keys[0]), "sb-race-b");
	snprintf(race.keys[1], sizeof(race.keys[1]), "sb-race-held-2");
	run_race(&race, "sb-race-held-2");
	check(race.status == LEDGER_SERVER_ERROR && strcmp(race.sqlstate, "40001") == 0 &&
		  race.items[0].status == LEDGER_SERVER_ERROR && race.items[1].status == LEDGER_SERVER_ERROR,
		  "with 1 attempt: server_error 40001 for every item (%s %s)",
		  ledger_status_name(race.status), race.sqlstate);
	check(balance_of("sbrace") == 9 && entries_with_key("sb-race-b") == 0,
		  "rolled back whole: nothing applied");

	/* a large batch: 2000 debits of 1 on a balance of 1500, one statement */
	admin_exec("SELECT ledger_open_account('sbbulk', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'sbbulk', 1500)");
	many = calloc(2000, sizeof(LedgerPosting));
	for (i = 0; i < 2000; i++)
		posting(&many[i], LEDGER_OP_DEBIT, "sbbulk", NULL, 1, NULL);
	t0 = now_ms();
	s = ledger_post_batch(c, many, 2000);
	t0 = now_ms() - t0;
	ok = refused = 0;
	for (i = 0; i < 2000; i++)
	{
		ok += many[i].status == LEDGER_OK && many[i].result == 1500 - (i + 1);
		refused += many[i].status == LEDGER_INSUFFICIENT_FUNDS;
	}
	check(s == LEDGER_INSUFFICIENT_FUNDS && ok == 1500 && refused == 500 &&
		  many[1500].status == LEDGER_INSUFFICIENT_FUNDS && ledger_last_attempts(c) == 1,
		  "2000 items in one statement: %d ok in order, %d LG001 (%.0f ms)", ok, refused, t0);
	v = xacts_of(many, 1500, &n_entries);
	check(balance_of("sbbulk") == 0 && v == 1 && n_entries == 1500,
		  "balance 0; 1500 entries in %" PRId64 " transaction(s)", v);
	/* for the record, not a check: the same 2000 items pipelined */
	admin_exec("SELECT ledger_transfer('bank', 'sbbulk', 1500)");
	for (i = 0; i < 2000; i++)
		posting(&many[i], LEDGER_OP_DEBIT, "sbbulk", NULL, 1, NULL);
	{
		double		t1 = now_ms();

		s = ledger_batch(c, many, 2000);
		printf("# 2000 debits: ledger_post_batch %.0f ms, ledger_batch (pipelined) %.0f ms\n",
			   t0, now_ms() - t1);
	}
	ledger_finish(c);

	/* the reply is lost: the retry replays the batch */
	proxy = proxy_start(host, port);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s", proxy_port(proxy), db);
	c = connect_to(ci, 4);
	admin_exec("SELECT ledger_transfer('bank', 'sbbulk', 1000)");
	posting(&many[0], LEDGER_OP_DEBIT, "sbbulk", NULL, 1, NULL);
	s = ledger_post_batch(c, many, 1);	/* prepares the statement */
	check(s == LEDGER_OK && many[0].result == 999, "server batch through the proxy");
	for (i = 0; i < 100; i++)
		posting(&many[i], LEDGER_OP_DEBIT, i == 50 ? "nobody" : "sbbulk", NULL, 1, NULL);
	proxy_cut_next_reply(proxy, false);
	s = ledger_post_batch(c, many, 100);
	ok = 0;
	for (i = 0; i < 100; i++)
		ok += many[i].status == LEDGER_OK && many[i].result == 999 - (i + 1) + (i > 50);
	check(proxy_cuts(proxy) == 1 && s == LEDGER_ACCOUNT_NOT_FOUND && ledger_last_attempts(c) == 2 &&
		  many[50].status == LEDGER_ACCOUNT_NOT_FOUND,
		  "batch with a lost reply: retried, %s after %d attempts", ledger_status_name(s),
		  ledger_last_attempts(c));
	v = xacts_of(many, 50, &n_entries);
	check(ok == 99 && balance_of("sbbulk") == 999 - 99 && n_entries == 50 && v == 1,
		  "the retry returned the original results; applied once, in one transaction (%d)", ok);
	check(entries_with_key(many[99].key) == 1, "one journal entry for the last key");

	/* lost for good: every item is unknown, and retrying with the keys is safe */
	before = balance_of("sbbulk");
	for (i = 0; i < 20; i++)
		posting(&many[i], LEDGER_OP_DEBIT, "sbbulk", NULL, 2, NULL);
	proxy_cut_next_reply(proxy, true);
	s = ledger_post_batch(c, many, 20);
	ok = 0;
	for (i = 0; i < 20; i++)
		ok += many[i].status == LEDGER_UNKNOWN_OUTCOME && is_generated_key(many[i].key);
	check(s == LEDGER_UNKNOWN_OUTCOME && ok == 20 && ledger_last_attempts(c) == 4 &&
		  strstr(ledger_error_message(c), "keys") != NULL && strcmp(many[0].message, ledger_error_message(c)) == 0,
		  "batch lost for good: unknown_outcome for all 20 items: %s", ledger_error_message(c));
	check(balance_of("sbbulk") == before - 40, "(it did commit on the server)");
	proxy_refuse(proxy, false);
	for (i = 0; i < 20; i++)
		many[i].idempotency_key = strdup(many[i].key);
	s = ledger_post_batch(c, many, 20);
	ok = 0;
	for (i = 0; i < 20; i++)
		ok += many[i].status == LEDGER_OK && many[i].result == before - 2 * (i + 1);
	check(s == LEDGER_OK && ok == 20 && balance_of("sbbulk") == before - 40,
		  "sent again with their keys: the original results, applied once");
	for (i = 0; i < 20; i++)
		free((char *) many[i].idempotency_key);
	free(many);
	ledger_finish(c);
	proxy_stop(proxy);
}

/*
 * "test_client proxy N": only run a proxy to PGHOST:PGPORT that loses the
 * reply to the Nth command that ran and refuses every later connection,
 * for the CLI's unknown_outcome test.  Prints its port; runs until killed.
 */
static int
proxy_mode(int nth)
{
	Proxy	   *proxy;

	proxy = proxy_start(getenv("PGHOST"), atoi(getenv("PGPORT")));
	if (proxy == NULL)
		return 2;
	proxy_cut_reply(proxy, nth, true);
	printf("%d\n", proxy_port(proxy));
	fflush(stdout);
	for (;;)
		pause();
}

int
main(int argc, char **argv)
{
	char		ci[512];
	bool		pooler;

	if (argc == 3 && strcmp(argv[1], "proxy") == 0 && getenv("PGHOST") && getenv("PGPORT"))
		return proxy_mode(atoi(argv[2]));

	db = getenv("LEDGER_TEST_DB");
	host = getenv("PGHOST");
	pooler = argc == 2 && strcmp(argv[1], "pooler") == 0;
	if (db == NULL || host == NULL || getenv("PGPORT") == NULL ||
		(!pooler && getenv("LEDGER_TEST_FSYNC_OFF_PORT") == NULL))
		die("set PGHOST, PGPORT, LEDGER_TEST_DB and LEDGER_TEST_FSYNC_OFF_PORT");
	port = atoi(getenv("PGPORT"));
	snprintf(ci, sizeof(ci), "host=%s port=%d dbname=%s", host, port, db);
	admin = raw_connect(ci);

	if (pooler)
	{
		/* test/pooler.sh: the calls through pgbouncer (test_pooler.c) */
		test_pooler();
		goto done;
	}
	test_statuses();
	test_lost_reply();
	test_terminated_backend();
	test_serialization_retry();
	test_threads();
	test_batches();
	test_server_batches();
	test_outcomes();
	test_trust();
	test_holds();
	test_escrow();

done:
	PQfinish(admin);
	printf("1..%d\n# test_client: %d passed, %d failed\n", n_checks,
		   n_checks - n_failed, n_failed);
	return n_failed == 0 ? 0 : 1;
}
