/*-------------------------------------------------------------------------
 *
 * test_outcomes.c
 *	  libledger tells the truth about every outcome (client/outcome.c):
 *
 *	  - strings the connection reported may be passed back (items resent
 *		with their reported keys; valgrind watches);
 *	  - a commit that fails after the row was sent is a failure, for every
 *		call kind (a deferred constraint trigger);
 *	  - a lost reply followed by a statement timeout is never a definite
 *		failure;
 *	  - pipelined batches under SERIALIZABLE next to audits: every item
 *		reported ok is applied, every item reported failed is not;
 *	  - a cancelled wait for a synchronous standby is never ok;
 *	  - ledger_set_timeout bounds a stuck commit and a stuck connect.
 *
 * Besides the main cluster, it uses LEDGER_TEST_SYNCREP_PORT: a cluster
 * whose synchronous standby ("ghost") never comes, with the extension in
 * LEDGER_TEST_DB and accounts "sr" (funded) and "sr-bank" (no floor).
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "proxy.h"

/* ---- the API added in 1.2 ------------------------------------------------------ */

static void
test_api(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	char		k1[LEDGER_KEY_BUFSIZE];
	char		k2[LEDGER_KEY_BUFSIZE];
	LedgerStatus s;
	int64_t		v = 0,
				v2 = 0;

	printf("# the 1.2 API\n");
	admin_exec("SELECT ledger_open_account('api', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'api', 100)");

	check(ledger_generate_key(k1, sizeof(k1)) == LEDGER_OK && is_generated_key(k1) &&
		  ledger_generate_key(k2, sizeof(k2)) == LEDGER_OK && strcmp(k1, k2) != 0,
		  "ledger_generate_key: 32 hex digits, a new one each time (%s)", k1);
	check(ledger_generate_key(k2, LEDGER_KEY_BUFSIZE - 1) == LEDGER_CLIENT_ERROR &&
		  ledger_generate_key(NULL, LEDGER_KEY_BUFSIZE) == LEDGER_CLIENT_ERROR,
		  "ledger_generate_key: a short or NULL buffer is a client error");
	check(ledger_set_timeout(c, -1) == LEDGER_CLIENT_ERROR &&
		  ledger_set_timeout(NULL, 5) == LEDGER_CLIENT_ERROR &&
		  ledger_set_timeout(c, 0) == LEDGER_OK,
		  "ledger_set_timeout: negative or no handle is a client error, 0 is fine");

	s = ledger_debit(c, "api", 1, k1, &v);
	check(s == LEDGER_OK && v == 99 && strcmp(ledger_last_key(c), k1) == 0,
		  "a posting with a key made beforehand");
	s = ledger_debit(c, "api", 1, ledger_last_key(c), &v2);
	check(s == LEDGER_OK && v2 == 99 && entries_with_key(k1) == 1,
		  "ledger_last_key passed back as the key replays (%" PRId64 ")", v2);
	s = ledger_debit(c, NULL, 1, NULL, &v2);
	check(s == LEDGER_NULL_VALUE_NOT_ALLOWED && ledger_last_key(c) != NULL &&
		  strcmp(ledger_last_key(c), k1) != 0 && ledger_last_attempts(c) == 1,
		  "the next posting has its own key, even when refused");
	s = ledger_balance(c, ledger_error_message(c), &v2);
	check(s == LEDGER_ACCOUNT_NOT_FOUND || s == LEDGER_INVALID_PARAMETER_VALUE,
		  "the last error message passed back as an argument: %s", ledger_status_name(s));
	ledger_finish(c);
}

/* ---- resending items with the keys the connection reported ------------------------ */

static void
test_resend_reported_keys(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerPosting items[3];
	int64_t		results[3];
	int64_t		before;
	LedgerStatus s;
	bool		same;
	int			i;

	printf("# resend with the reported keys\n");
	admin_exec("SELECT ledger_open_account('rk', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'rk', 1000)");

	for (int round = 0; round < 2; round++)
	{
		bool		pipelined = (round == 0);
		const char *name = pipelined ? "ledger_batch" : "ledger_post_batch";

		for (i = 0; i < 3; i++)
			posting(&items[i], LEDGER_OP_DEBIT, "rk", NULL, i + 1, NULL);
		s = pipelined ? ledger_batch(c, items, 3) : ledger_post_batch(c, items, 3);
		CHECK_STATUS(c, s, LEDGER_OK, name);
		before = balance_of("rk");
		for (i = 0; i < 3; i++)
		{
			results[i] = items[i].result;
			/* exactly what the documentation allows: the connection's strings */
			items[i].idempotency_key = items[i].key;
		}
		s = pipelined ? ledger_batch(c, items, 3) : ledger_post_batch(c, items, 3);
		same = s == LEDGER_OK;
		for (i = 0; i < 3; i++)
			same &= items[i].result == results[i] && entries_with_key(items[i].key) == 1;
		check(same && balance_of("rk") == before,
			  "%s resent with its reported keys: the original results, applied once", name);
		/* and once more, through the other call */
		for (i = 0; i < 3; i++)
			items[i].idempotency_key = items[i].key;
		s = pipelined ? ledger_post_batch(c, items, 3) : ledger_batch(c, items, 3);
		same = s == LEDGER_OK;
		for (i = 0; i < 3; i++)
			same &= items[i].result == results[i];
		check(same && balance_of("rk") == before,
			  "the same keys sent again through the other batch call replay too");
	}
	ledger_finish(c);
}

/* ---- a commit that fails after the row was sent -------------------------------------- */

static void
test_commit_failure(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerPosting items[4];
	LedgerStatus s;
	int64_t		v;
	char		key[LEDGER_KEY_BUFSIZE];

	printf("# a commit that fails: a deferred constraint trigger\n");
	admin_exec("SELECT ledger_open_account('cf', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'cf', 100)");
	/* a debit of 13 passes every check of the ledger and fails at COMMIT */
	admin_exec("CREATE FUNCTION public.refuse_13() RETURNS trigger LANGUAGE plpgsql AS $$"
			   " BEGIN IF NEW.amount = -13 THEN"
			   " RAISE EXCEPTION 'deferred check refuses 13' USING ERRCODE = 'P0013';"
			   " END IF; RETURN NULL; END $$");
	admin_exec("CREATE CONSTRAINT TRIGGER refuse_13 AFTER INSERT ON ledger.entries"
			   " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.refuse_13()");

	s = ledger_debit(c, "cf", 13, NULL, &v);
	snprintf(key, sizeof(key), "%s", ledger_last_key(c));
	check(s == LEDGER_SERVER_ERROR && ledger_error_sqlstate(c) &&
		  strcmp(ledger_error_sqlstate(c), "P0013") == 0 && ledger_last_attempts(c) == 1,
		  "ledger_debit: the commit's failure is the call's (%s %s)", ledger_status_name(s),
		  ledger_error_message(c));
	check(balance_of("cf") == 100 && entries_with_key(key) == 0, "nothing applied");

	posting(&items[0], LEDGER_OP_DEBIT, "cf", NULL, 13, NULL);
	posting(&items[1], LEDGER_OP_DEBIT, "cf", NULL, 1, NULL);
	posting(&items[2], LEDGER_OP_DEBIT, "cf", NULL, 13, NULL);
	posting(&items[3], LEDGER_OP_DEBIT, "cf", NULL, 2, NULL);
	s = ledger_batch(c, items, 4);
	check(s == LEDGER_SERVER_ERROR && items[0].status == LEDGER_SERVER_ERROR &&
		  items[2].status == LEDGER_SERVER_ERROR && items[0].sqlstate &&
		  strcmp(items[0].sqlstate, "P0013") == 0,
		  "ledger_batch: the items whose commit failed are failures (%s: %s)",
		  ledger_status_name(items[0].status), items[0].message);
	check(items[1].status == LEDGER_OK && items[1].result == 99 &&
		  items[3].status == LEDGER_OK && items[3].result == 97,
		  "ledger_batch: the items between them committed");
	check(balance_of("cf") == 97 && entries_with_key(items[0].key) == 0 &&
		  entries_with_key(items[2].key) == 0 && entries_with_key(items[1].key) == 1 &&
		  entries_with_key(items[3].key) == 1, "ok items applied, failed items not");

	posting(&items[0], LEDGER_OP_DEBIT, "cf", NULL, 1, NULL);
	posting(&items[1], LEDGER_OP_DEBIT, "cf", NULL, 13, NULL);
	s = ledger_post_batch(c, items, 2);
	check(s == LEDGER_SERVER_ERROR && items[0].status == LEDGER_SERVER_ERROR &&
		  items[1].status == LEDGER_SERVER_ERROR,
		  "ledger_post_batch: one commit failed, every item failed (%s)", ledger_error_message(c));
	check(balance_of("cf") == 97 && entries_with_key(items[0].key) == 0, "nothing applied");

	admin_exec("DROP TRIGGER refuse_13 ON ledger.entries");
	admin_exec("DROP FUNCTION public.refuse_13()");
	ledger_finish(c);
}

/* ---- a lost reply, then a statement timeout ---------------------------------------- */

typedef struct DebitArgs
{
	const char *conninfo;
	int			attempts;
	int			timeout_ms;
	const char *account;
	LedgerStatus status;
	int			used;
	char		key[300];
	char		sqlstate[8];
	char		message[1024];
	double		elapsed_ms;
	volatile bool done;
} DebitArgs;

static void *
debit_thread(void *arg)
{
	DebitArgs  *a = arg;
	LedgerConn *c = connect_to(a->conninfo, a->attempts);
	double		t0 = now_ms();

	if (a->timeout_ms > 0 && ledger_set_timeout(c, a->timeout_ms) != LEDGER_OK)
		die("ledger_set_timeout");
	a->status = ledger_debit(c, a->account, 5, NULL, NULL);
	a->elapsed_ms = now_ms() - t0;
	a->used = ledger_last_attempts(c);
	snprintf(a->key, sizeof(a->key), "%s", ledger_last_key(c));
	snprintf(a->sqlstate, sizeof(a->sqlstate), "%s",
			 ledger_error_sqlstate(c) ? ledger_error_sqlstate(c) : "");
	snprintf(a->message, sizeof(a->message), "%s", ledger_error_message(c));
	ledger_finish(c);
	a->done = true;
	return NULL;
}

static void
test_lost_then_timeout(void)
{
	Proxy	   *proxy = proxy_start(host, port);
	char		ci[512];
	DebitArgs	a;
	pthread_t	t;
	PGconn	   *holder;
	PGresult   *res;
	LedgerConn *c;
	int64_t		before,
				v = 0;
	int			i;

	printf("# a lost reply, then a statement timeout\n");
	if (proxy == NULL)
		die("proxy");
	admin_exec("SELECT ledger_open_account('lt', 'EUR')");
	admin_exec("SELECT ledger_transfer('bank', 'lt', 100)");
	before = balance_of("lt");
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s"
			 " options='-c statement_timeout=300'", proxy_port(proxy), db);

	/*
	 * The first attempt commits and its reply is lost; every later one
	 * waits for the account's lock, which another session holds, until
	 * statement_timeout cancels it.  None of that says whether the first
	 * attempt committed.
	 */
	memset(&a, 0, sizeof(a));
	a.conninfo = ci;
	a.attempts = 6;
	a.account = "lt";
	/* the first reply is to the lookup of the extension's schema */
	proxy_cut_reply(proxy, 2, true);
	pthread_create(&t, NULL, debit_thread, &a);
	for (i = 0; i < 1000 && proxy_cuts(proxy) == 0; i++)
		sleep_ms(10);
	holder = raw_connect(conninfo_for(""));
	res = PQexec(holder, "BEGIN; SELECT 1 FROM ledger.accounts WHERE name = 'lt' FOR UPDATE");
	PQclear(res);
	proxy_refuse(proxy, false);
	pthread_join(t, NULL);
	res = PQexec(holder, "COMMIT");
	PQclear(res);
	PQfinish(holder);

	check(a.status == LEDGER_UNKNOWN_OUTCOME && strcmp(a.sqlstate, "57014") == 0 &&
		  a.used == 6,
		  "never a definite failure: %s after %d attempts, last SQLSTATE %s",
		  ledger_status_name(a.status), a.used, a.sqlstate);
	check(strstr(a.message, a.key) != NULL, "the message names the key: %s", a.message);
	check(balance_of("lt") == before - 5 && entries_with_key(a.key) == 1,
		  "(the first attempt had committed)");

	c = connect_to(conninfo_for(""), 3);
	check(ledger_debit(c, "lt", 5, a.key, &v) == LEDGER_OK && v == before - 5 &&
		  balance_of("lt") == before - 5,
		  "asking again with the key: the original result, applied once");
	ledger_finish(c);
	proxy_stop(proxy);
}

/* ---- SERIALIZABLE pipelined batches next to audits ------------------------------- */

#define STRESS_WRITERS 8
#define STRESS_READERS 2
#define STRESS_BATCH 10
#define STRESS_MAX_ITEMS 40000

typedef struct StressWriter
{
	int			id;
	double		until_ms;
	int			n;
	char		(*keys)[LEDGER_KEY_BUFSIZE];
	LedgerStatus *statuses;
	int			retried_calls;	/* calls that needed more than one round */
} StressWriter;

typedef struct StressReader
{
	double		until_ms;
	int			audits;
	int			problems;
	int			failures;
	char		error[256];
} StressReader;

static const char *serializable = "options='-c default_transaction_isolation=serializable'";

static void *
stress_writer(void *arg)
{
	StressWriter *w = arg;
	LedgerConn *c = connect_to(conninfo_for(serializable), 8);
	LedgerPosting items[STRESS_BATCH];
	char		names[4][16];
	unsigned int seed = (unsigned int) w->id * 7919u;
	int			i;

	for (i = 0; i < 4; i++)
		snprintf(names[i], sizeof(names[i]), "ss-%d", i);
	while (now_ms() < w->until_ms && w->n + STRESS_BATCH <= STRESS_MAX_ITEMS)
	{
		for (i = 0; i < STRESS_BATCH; i++)
		{
			int			a = (int) (rand_r(&seed) % 4);
			int			b = (a + 1 + (int) (rand_r(&seed) % 3)) % 4;

			if (rand_r(&seed) % 3 == 0)
				posting(&items[i], LEDGER_OP_TRANSFER, names[a], names[b], 1, NULL);
			else if (rand_r(&seed) % 2 == 0)
				posting(&items[i], LEDGER_OP_DEBIT, names[a], NULL, 1 + rand_r(&seed) % 3, NULL);
			else
				posting(&items[i], LEDGER_OP_CREDIT, names[a], NULL, 2, NULL);
		}
		if (ledger_batch(c, items, STRESS_BATCH) == LEDGER_CLIENT_ERROR)
			die("ledger_batch: client error");
		if (ledger_last_attempts(c) > 1)
			w->retried_calls++;
		for (i = 0; i < STRESS_BATCH; i++)
		{
			snprintf(w->keys[w->n], LEDGER_KEY_BUFSIZE, "%s", items[i].key);
			w->statuses[w->n++] = items[i].status;
		}
	}
	ledger_finish(c);
	return NULL;
}

static void *
stress_reader(void *arg)
{
	StressReader *r = arg;
	LedgerConn *c = connect_to(conninfo_for(serializable), 5);

	while (now_ms() < r->until_ms)
	{
		LedgerAudit *audit;
		LedgerStatus s = ledger_verify(c, &audit);

		if (s == LEDGER_OK)
		{
			r->audits++;
			r->problems += (int) audit->n_problems;
			ledger_audit_free(audit);
		}
		else
		{
			r->failures++;
			snprintf(r->error, sizeof(r->error), "%s: %s", ledger_status_name(s),
					 ledger_error_message(c));
		}
	}
	ledger_finish(c);
	return NULL;
}

/* How many of these keys the ledger holds; generated keys need no quoting. */
static int64_t
keys_present(char (*keys)[LEDGER_KEY_BUFSIZE], const LedgerStatus *statuses, int n,
			 bool want_ok)
{
	size_t		size = (size_t) n * (LEDGER_KEY_BUFSIZE + 3) + 8;
	char	   *list = malloc(size);
	size_t		len = 0;
	const char *values[1];
	int64_t		found;
	int			i;

	list[len++] = '{';
	for (i = 0; i < n; i++)
	{
		if ((statuses[i] == LEDGER_OK) != want_ok || statuses[i] == LEDGER_UNKNOWN_OUTCOME)
			continue;
		len += (size_t) snprintf(list + len, size - len, "%s%s", len > 1 ? "," : "", keys[i]);
	}
	snprintf(list + len, size - len, "}");
	values[0] = list;
	found = admin_int_params("SELECT count(*) FROM ledger.idempotency_keys"
							 " WHERE idempotency_key = ANY ($1::text[])", 1, values);
	free(list);
	return found;
}

static void
test_serializable_stress(void)
{
	StressWriter writers[STRESS_WRITERS];
	StressReader readers[STRESS_READERS];
	pthread_t	threads[STRESS_WRITERS + STRESS_READERS];
	const char *seconds_env = getenv("LEDGER_TEST_STRESS_SECONDS");
	double		until = now_ms() + 1000.0 * (seconds_env ? atoi(seconds_env) : 6);
	int64_t		ok = 0,
				failed = 0,
				unknown = 0,
				ok_present = 0,
				failed_present = 0;
	int			retried = 0,
				audits = 0,
				problems = 0,
				audit_failures = 0;
	int			i,
				k;

	printf("# SERIALIZABLE: %d threads of pipelined batches, %d auditing\n",
		   STRESS_WRITERS, STRESS_READERS);
	admin_exec("SELECT ledger_open_account('ss-' || i, 'EUR', NULL) FROM generate_series(0, 3) i");
	for (i = 0; i < STRESS_WRITERS; i++)
	{
		writers[i].id = i + 1;
		writers[i].until_ms = until;
		writers[i].n = 0;
		writers[i].retried_calls = 0;
		writers[i].keys = malloc(sizeof(*writers[i].keys) * STRESS_MAX_ITEMS);
		writers[i].statuses = malloc(sizeof(LedgerStatus) * STRESS_MAX_ITEMS);
		pthread_create(&threads[i], NULL, stress_writer, &writers[i]);
	}
	for (i = 0; i < STRESS_READERS; i++)
	{
		memset(&readers[i], 0, sizeof(readers[i]));
		readers[i].until_ms = until;
		pthread_create(&threads[STRESS_WRITERS + i], NULL, stress_reader, &readers[i]);
	}
	for (i = 0; i < STRESS_WRITERS + STRESS_READERS; i++)
		pthread_join(threads[i], NULL);

	for (i = 0; i < STRESS_WRITERS; i++)
	{
		for (k = 0; k < writers[i].n; k++)
		{
			ok += writers[i].statuses[k] == LEDGER_OK;
			unknown += writers[i].statuses[k] == LEDGER_UNKNOWN_OUTCOME;
			failed += writers[i].statuses[k] != LEDGER_OK &&
				writers[i].statuses[k] != LEDGER_UNKNOWN_OUTCOME;
		}
		ok_present += keys_present(writers[i].keys, writers[i].statuses, writers[i].n, true);
		failed_present += keys_present(writers[i].keys, writers[i].statuses, writers[i].n, false);
		retried += writers[i].retried_calls;
		free(writers[i].keys);
		free(writers[i].statuses);
	}
	for (i = 0; i < STRESS_READERS; i++)
	{
		audits += readers[i].audits;
		problems += readers[i].problems;
		audit_failures += readers[i].failures;
		if (readers[i].failures)
			printf("# reader %d: %s\n", i, readers[i].error);
	}
	printf("# %" PRId64 " items ok, %" PRId64 " failed, %" PRId64 " unknown; %d batch calls"
		   " needed a second round; %d audits\n", ok, failed, unknown, retried, audits);
	check(ok > 0 && ok_present == ok,
		  "every item reported ok is applied: %" PRId64 " of %" PRId64, ok_present, ok);
	check(failed_present == 0,
		  "no item reported failed is applied: %" PRId64 " of %" PRId64, failed_present, failed);
	check(audits > 0 && problems == 0,
		  "the audits ran beside them (%d, %d failed with 40001 after retries) and found nothing",
		  audits, audit_failures);
	check(admin_int("SELECT count(*) FROM ledger_verify()") == 0, "ledger_verify() is clean");
}

/* ---- a synchronous standby that never answers ------------------------------------ */

static char syncrep_ci[256];

static PGconn *
syncrep_admin(void)
{
	return raw_connect(syncrep_ci);
}

static int64_t
syncrep_int(PGconn *c, const char *sql)
{
	PGresult   *res = PQexec(c, sql);
	int64_t		v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		fprintf(stderr, "syncrep: %s: %s", sql, PQerrorMessage(c));
		exit(2);
	}
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/* Cancel the waits for the standby of sessions named name; how many. */
static int64_t
cancel_sync_waits(PGconn *sr, const char *name)
{
	char		sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity"
			 " WHERE application_name = '%s' AND wait_event = 'SyncRep'", name);
	return syncrep_int(sr, sql);
}

static int64_t
syncrep_entries_with_key(PGconn *sr, const char *key)
{
	char		sql[512];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ledger.entries WHERE idempotency_key = '%s'",
			 key);
	return syncrep_int(sr, sql);
}

typedef struct BatchArgs
{
	const char *conninfo;
	int			attempts;
	int			timeout_ms;
	bool		server;			/* ledger_post_batch, not ledger_batch */
	LedgerPosting items[2];
	char		keys[2][64];
	LedgerStatus status;
	int			used;
	double		elapsed_ms;
	volatile bool done;
} BatchArgs;

static void *
batch_thread(void *arg)
{
	BatchArgs  *a = arg;
	LedgerConn *c = connect_to(a->conninfo, a->attempts);
	double		t0 = now_ms();
	int			i;

	if (a->timeout_ms > 0 && ledger_set_timeout(c, a->timeout_ms) != LEDGER_OK)
		die("ledger_set_timeout");
	posting(&a->items[0], LEDGER_OP_DEBIT, "sr", NULL, 1, NULL);
	posting(&a->items[1], LEDGER_OP_TRANSFER, "sr-bank", "sr", 1, NULL);
	a->status = a->server ? ledger_post_batch(c, a->items, 1)
		: ledger_batch(c, a->items, 2);
	a->elapsed_ms = now_ms() - t0;
	a->used = ledger_last_attempts(c);
	for (i = 0; i < 2; i++)
	{
		snprintf(a->keys[i], sizeof(a->keys[i]), "%s", a->items[i].key ? a->items[i].key : "");
		a->items[i].key = a->items[i].message = a->items[i].sqlstate = a->items[i].detail = NULL;
	}
	ledger_finish(c);
	a->done = true;
	return NULL;
}

static void
test_syncrep_cancel(PGconn *sr)
{
	char		ci[512];
	DebitArgs	a;
	BatchArgs	b;
	pthread_t	t;
	int64_t		cancels = 0;
	int64_t		before = syncrep_int(sr, "SELECT ledger_balance('sr')");

	printf("# a cancelled wait for the synchronous standby\n");
	snprintf(ci, sizeof(ci), "%s application_name=sr_cancel", syncrep_ci);
	memset(&a, 0, sizeof(a));
	a.conninfo = ci;
	a.attempts = 3;
	a.account = "sr";
	pthread_create(&t, NULL, debit_thread, &a);
	while (!a.done)
	{
		cancels += cancel_sync_waits(sr, "sr_cancel");
		sleep_ms(20);
	}
	pthread_join(t, NULL);
	check(a.status == LEDGER_UNKNOWN_OUTCOME && a.used == 3 && cancels >= 3,
		  "a debit whose every wait was cancelled: %s after %d attempts (%" PRId64 " cancels)",
		  ledger_status_name(a.status), a.used, cancels);
	check(strstr(a.message, "not confirmed") != NULL && strstr(a.message, a.key) != NULL,
		  "the message says why and names the key: %s", a.message);
	check(syncrep_entries_with_key(sr, a.key) == 1 &&
		  syncrep_int(sr, "SELECT ledger_balance('sr')") == before - 5,
		  "(committed locally, once: the retries replayed, and waited again)");

	for (int server = 0; server < 2; server++)
	{
		memset(&b, 0, sizeof(b));
		b.conninfo = ci;
		b.attempts = 2;
		b.server = server;
		cancels = 0;
		pthread_create(&t, NULL, batch_thread, &b);
		while (!b.done)
		{
			cancels += cancel_sync_waits(sr, "sr_cancel");
			sleep_ms(20);
		}
		pthread_join(t, NULL);
		check(b.status == LEDGER_UNKNOWN_OUTCOME &&
			  b.items[0].status == LEDGER_UNKNOWN_OUTCOME &&
			  (server || b.items[1].status == LEDGER_UNKNOWN_OUTCOME) &&
			  syncrep_entries_with_key(sr, b.keys[0]) == 1,
			  "%s: every item unknown, not ok (%" PRId64 " cancels)",
			  server ? "ledger_post_batch" : "ledger_batch", cancels);
	}
}

/* A listening socket that never accepts: the connection hangs in startup. */
static int
silent_listener(int *port_out)
{
	struct sockaddr_in addr;
	socklen_t	len = sizeof(addr);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 || listen(fd, 8) != 0 ||
		getsockname(fd, (struct sockaddr *) &addr, &len) != 0)
		die("listen");
	*port_out = ntohs(addr.sin_port);
	return fd;
}

static void
test_deadline(PGconn *sr)
{
	char		ci[512];
	DebitArgs	a;
	BatchArgs	b;
	pthread_t	t;
	LedgerOptions o;
	LedgerConn *c;
	LedgerStatus s;
	int64_t		v = 0;
	double		t0;
	int			silent,
				silent_port;

	printf("# ledger_set_timeout\n");
	snprintf(ci, sizeof(ci), "%s application_name=sr_deadline", syncrep_ci);
	memset(&a, 0, sizeof(a));
	a.conninfo = ci;
	a.attempts = 3;
	a.timeout_ms = 500;
	a.account = "sr";
	pthread_create(&t, NULL, debit_thread, &a);
	pthread_join(t, NULL);
	check(a.status == LEDGER_UNKNOWN_OUTCOME && a.used == 1 && a.elapsed_ms >= 490 &&
		  a.elapsed_ms < 5000,
		  "a commit stuck waiting for the standby: %s after %.0f ms (timeout 500)",
		  ledger_status_name(a.status), a.elapsed_ms);
	check(strstr(a.message, "timeout") != NULL && strstr(a.message, a.key) != NULL,
		  "the message says so and names the key: %s", a.message);
	check(cancel_sync_waits(sr, "sr_deadline") == 1,
		  "(the server still waits; the call did not)");

	for (int server = 0; server < 2; server++)
	{
		memset(&b, 0, sizeof(b));
		b.conninfo = ci;
		b.attempts = 3;
		b.timeout_ms = 400;
		b.server = server;
		pthread_create(&t, NULL, batch_thread, &b);
		pthread_join(t, NULL);
		check(b.status == LEDGER_UNKNOWN_OUTCOME && b.items[0].status == LEDGER_UNKNOWN_OUTCOME &&
			  b.elapsed_ms < 5000,
			  "%s stuck the same way: unknown after %.0f ms",
			  server ? "ledger_post_batch" : "ledger_batch", b.elapsed_ms);
		while (cancel_sync_waits(sr, "sr_deadline") > 0)
			sleep_ms(20);
	}

	/* reads do not wait for the standby; the timeout leaves them alone */
	c = connect_to(ci, 2);
	check(ledger_set_timeout(c, 500) == LEDGER_OK &&
		  ledger_balance(c, "sr", &v) == LEDGER_OK && ledger_last_attempts(c) == 1,
		  "a read on the same server with a timeout: ok");
	ledger_finish(c);

	/* a server that accepts and never answers */
	silent = silent_listener(&silent_port);
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s connect_timeout=2",
			 silent_port, db);
	ledger_options_init(&o);
	o.conninfo = ci;
	o.retry_attempts = 3;
	o.backoff_base_ms = 10;
	o.backoff_max_ms = 20;
	t0 = now_ms();
	s = ledger_connect(&o, &c);
	t0 = now_ms() - t0;
	check(s == LEDGER_CONNECTION_FAILED && t0 >= 1900 && t0 < 10000,
		  "ledger_connect to a silent server gives up at connect_timeout=2: %.0f ms (%s)",
		  t0, ledger_error_message(c));
	check(ledger_set_timeout(c, 300) == LEDGER_OK, "set a timeout of 300 ms");
	t0 = now_ms();
	s = ledger_debit(c, "sr", 1, NULL, &v);
	t0 = now_ms() - t0;
	check(s == LEDGER_CONNECTION_FAILED && t0 >= 290 && t0 < 3000,
		  "a debit that never got through within it: %s after %.0f ms, not unknown (%s)",
		  ledger_status_name(s), t0, ledger_error_message(c));
	ledger_finish(c);
	close(silent);
}

void
test_outcomes(void)
{
	const char *sr_port = getenv("LEDGER_TEST_SYNCREP_PORT");
	PGconn	   *sr;

	test_api();
	test_resend_reported_keys();
	test_commit_failure();
	test_lost_then_timeout();
	test_serializable_stress();

	if (sr_port == NULL)
		die("set LEDGER_TEST_SYNCREP_PORT");
	snprintf(syncrep_ci, sizeof(syncrep_ci), "host=%s port=%s dbname=%s", host, sr_port, db);
	sr = syncrep_admin();
	test_syncrep_cancel(sr);
	test_deadline(sr);
	PQfinish(sr);
}
