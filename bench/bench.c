/*
 * bench/bench.c: throughput and latency of the ledger extension against the
 * hand-written PL/pgSQL baseline (bench/naive.sql), same workload, same
 * run, interleaved rounds.
 *
 *   bench [-c clients] [-d seconds] [-w warmup] [-r rounds] [-n accounts]
 *         [-W uniform|hot|zipf|transfer|batch|hold] [-s zipf_s] [-b batch_size] [-u] [-M]
 *
 * Connection: the PG* environment variables, as in libpq.  The database must
 * have CREATE EXTENSION ledger and bench/naive.sql loaded, and accounts
 * "a1".."aN" opened in both (bench/run.sh does that).
 *
 * Each client is a thread with its own connection.  A round runs one
 * implementation for -d seconds; rounds alternate ledger, naive, ledger,
 * naive ... so drift in the machine affects both alike.  Latency is per
 * call (per batch call for -W batch; per hold and capture, two calls and
 * two commits, for -W hold), from the first send to the last reply.  The
 * ratio is printed with the range of the single round pairs' ratios.
 *
 * Each connection prepares its statements once and executes them, as
 * libledger does and as any pooled application would; -u sends every call
 * as an unprepared statement instead (parsed and planned per call).  Both
 * implementations are always called the same way.
 *
 * -M compares the ledger with itself instead: prepared statements against
 * unnamed ones (what libledger sends behind a transaction pooler), in the
 * same alternating rounds; the "naive" side of the output is the ledger
 * called unnamed.
 *
 * -E compares escrow mode with the uniform workload in locked mode: the
 * "ledger" side runs the workload (-W hot, zipf or uniform) on the escrow
 * accounts e1..eN, the other side uniform debits on the locked accounts
 * a1..aN; the ratio is escrow / uniform.  With -E, -5 makes the escrow
 * side credit or debit at random, half each, and -T puts every call of
 * both sides in a transaction that also does other work (an insert into
 * bench_work).  During every round a monitor samples, every 5 ms, the
 * folding lag (the age of e1's oldest committed entry not folded yet) and
 * the latency of ledger_balance: on e1 (the hot escrow account) during the
 * escrow rounds, on a1 (a locked account) during the others, as the
 * baseline of a read under the same load.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

typedef enum Workload
{
	WL_UNIFORM, WL_HOT, WL_ZIPF, WL_TRANSFER, WL_BATCH, WL_HOLD
} Workload;

typedef enum Impl
{
	IMPL_LEDGER, IMPL_NAIVE
} Impl;

static const char *workload_names[] = {"uniform", "hot", "zipf", "transfer", "batch", "hold"};
static const char *impl_names[] = {"ledger", "naive"};
static const char *mode_names[] = {"prepared", "unnamed"};	/* -M */
static const char *escrow_names[] = {"escrow", "uniform"};	/* -E */

/* settings */
static int	nclients = 32;
static double seconds = 5;
static double warmup = 1;
static int	rounds = 2;
static int	naccounts = 10000;
static Workload workload = WL_UNIFORM;
static double zipf_s = 2.0;
static int	batch_size = 1000;
static bool prepared = true;
static bool compare_modes = false;	/* -M */
static bool compare_escrow = false; /* -E */
static bool half_credits = false;	/* -5 */
static bool in_transaction = false; /* -T */

static double *zipf_cdf;		/* cumulative weights of accounts 1..N */

typedef struct Client
{
	pthread_t	thread;
	PGconn	   *conn;
	uint64_t	rng;
	Impl		impl;
	double		warm_until;
	double		stop_at;
	long		ops;			/* postings done after warm-up */
	long		failed;
	long		aborted;		/* calls refused with 40P01 or 40001 */
	double	   *latencies;		/* seconds, one per call after warm-up */
	long		nlat;
	long		caplat;
	char		error[256];
} Client;

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*: fast, per thread, good enough for picking accounts */
static uint64_t
next_random(uint64_t *state)
{
	uint64_t	x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 2685821657736338717ULL;
}

static double
random_unit(uint64_t *state)
{
	return (next_random(state) >> 11) * (1.0 / 9007199254740992.0);
}

static void
build_zipf(void)
{
	double		total = 0;

	zipf_cdf = malloc(sizeof(double) * naccounts);
	for (int k = 0; k < naccounts; k++)
	{
		total += 1.0 / pow(k + 1, zipf_s);
		zipf_cdf[k] = total;
	}
	for (int k = 0; k < naccounts; k++)
		zipf_cdf[k] /= total;
}

/* an account number in 1..N for the workload's distribution */
static int
pick_account(Client *c)
{
	if (compare_escrow && c->impl == IMPL_NAIVE)
		return (int) (next_random(&c->rng) % naccounts) + 1;	/* the uniform reference */
	if (workload == WL_HOT)
		return 1;
	if (workload == WL_ZIPF)
	{
		double		u = random_unit(&c->rng);
		int			lo = 0,
					hi = naccounts - 1;

		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (zipf_cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo + 1;
	}
	return (int) (next_random(&c->rng) % naccounts) + 1;
}

static void
record_latency(Client *c, double latency)
{
	if (c->nlat == c->caplat)
	{
		c->caplat = c->caplat ? c->caplat * 2 : 65536;
		c->latencies = realloc(c->latencies, sizeof(double) * c->caplat);
		if (c->latencies == NULL)
		{
			fprintf(stderr, "bench: out of memory\n");
			exit(2);
		}
	}
	c->latencies[c->nlat++] = latency;
}

/* The statement one call of the workload runs against impl. */
static const char *
workload_sql(Impl impl)
{
	bool		ours = (impl == IMPL_LEDGER || compare_modes || compare_escrow);

	if (compare_escrow)
		return "SELECT ledger_debit($1, $2)";
	switch (workload)
	{
		case WL_TRANSFER:
			return ours ? "SELECT ledger_transfer($1, $2, $3)" :
				"SELECT naive_transfer($1, $2, $3)";
		case WL_BATCH:
			return ours ?
				"SELECT count(*) FROM ledger_debit_batch($1::text[], $2::bigint[]) WHERE status = 'ok'" :
				"SELECT count(naive_debit(a, x)) FROM unnest($1::text[], $2::bigint[]) AS t(a, x)";
		case WL_HOLD:
			return ours ? "SELECT ledger_hold($1, $2)" : "SELECT naive_hold($1, $2)";
		default:
			return ours ? "SELECT ledger_debit($1, $2)" : "SELECT naive_debit($1, $2)";
	}
}

/* The second call of a hold workload's pair: the capture of the hold. */
static const char *
capture_sql(Impl impl)
{
	return impl == IMPL_LEDGER || compare_modes ? "SELECT ledger_capture($1)"
		: "SELECT naive_capture($1)";
}

static const char *const capture_names[] = {"ledger_capture", "naive_capture"};

/* Whether impl's statements are prepared and executed by name. */
static bool
by_name(Impl impl)
{
	return prepared && !(compare_modes && impl == IMPL_NAIVE);
}

/* Run a statement of this client, prepared or not; one parameter set. */
static PGresult *
execute(Client *c, const char *name, const char *sql, int nparams, const char *const *params)
{
	if (by_name(c->impl))
		return PQexecPrepared(c->conn, name, nparams, params, NULL, NULL, 0);
	return PQexecParams(c->conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

/* -T: the call's transaction, with its other work before the posting. */
static bool
transaction_begin(Client *c)
{
	PGresult   *res = PQexec(c->conn, "BEGIN; INSERT INTO bench_work (client) VALUES (1)");
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (!ok)
		snprintf(c->error, sizeof(c->error), "%s", PQerrorMessage(c->conn));
	PQclear(res);
	return ok;
}

/* One call of the workload; returns the number of postings it made, -1 on error. */
static long
one_call(Client *c, char *buf, size_t buflen, char *buf2, size_t buflen2)
{
	const char *params[3];
	int			nparams;
	PGresult   *res;
	long		done;
	char		account[32],
				other[32];

	switch (workload)
	{
		case WL_TRANSFER:
			{
				int			from = pick_account(c),
							to;

				do
					to = (int) (next_random(&c->rng) % naccounts) + 1;
				while (to == from && naccounts > 1);
				snprintf(account, sizeof(account), "a%d", from);
				snprintf(other, sizeof(other), "a%d", to);
				params[0] = account;
				params[1] = other;
				params[2] = "1";
				nparams = 3;
				done = 1;
				break;
			}
		case WL_BATCH:
			{
				size_t		off = 0,
							off2 = 0;

				buf[off++] = '{';
				buf2[off2++] = '{';
				for (int i = 0; i < batch_size; i++)
				{
					off += snprintf(buf + off, buflen - off, "%sa%d", i ? "," : "", pick_account(c));
					off2 += snprintf(buf2 + off2, buflen2 - off2, "%s1", i ? "," : "");
				}
				buf[off++] = '}';
				buf[off] = '\0';
				buf2[off2++] = '}';
				buf2[off2] = '\0';
				params[0] = buf;
				params[1] = buf2;
				nparams = 2;
				done = batch_size;
				break;
			}
		default:
			snprintf(account, sizeof(account), "%c%d",
					 compare_escrow && c->impl == IMPL_LEDGER ? 'e' : 'a', pick_account(c));
			params[0] = account;
			params[1] = "1";
			nparams = 2;
			done = 1;
			break;
	}

	if (in_transaction && !transaction_begin(c))
		return -1;
	if (compare_escrow && half_credits && c->impl == IMPL_LEDGER &&
		(next_random(&c->rng) & 1))
		res = execute(c, "escrow_credit", "SELECT ledger_credit($1, $2)", nparams, params);
	else
		res = execute(c, impl_names[c->impl], workload_sql(c->impl), nparams, params);
	if (in_transaction && PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		PQclear(res);
		res = PQexec(c->conn, "COMMIT");
		if (PQresultStatus(res) == PGRES_COMMAND_OK)
		{
			/* a tuples result stands for the whole call below */
			PQclear(res);
			res = PQexec(c->conn, "SELECT 1");
		}
	}
	if (workload == WL_HOLD && PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		/* the capture of the hold just made, in a transaction of its own */
		char		hold_id[32];
		const char *capture_params[1] = {hold_id};

		snprintf(hold_id, sizeof(hold_id), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		res = execute(c, capture_names[c->impl], capture_sql(c->impl), 1, capture_params);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* a deadlock or serialization failure is counted, not fatal */
		if (state != NULL && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
		{
			c->aborted++;
			PQclear(res);
			if (in_transaction)
				PQclear(PQexec(c->conn, "ROLLBACK"));
			return 0;
		}
		snprintf(c->error, sizeof(c->error), "%s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	if (workload == WL_BATCH && atol(PQgetvalue(res, 0, 0)) != batch_size)
	{
		snprintf(c->error, sizeof(c->error), "batch applied %s of %d items",
				 PQgetvalue(res, 0, 0), batch_size);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return done;
}

static void *
client_main(void *arg)
{
	Client	   *c = arg;
	size_t		buflen = (size_t) batch_size * 16 + 16;
	char	   *buf = malloc(buflen);
	char	   *buf2 = malloc(buflen);

	for (;;)
	{
		double		start = now_seconds();
		long		done;

		if (start >= c->stop_at)
			break;
		done = one_call(c, buf, buflen, buf2, buflen);
		if (done < 0)
		{
			c->failed++;
			break;
		}
		if (start >= c->warm_until)
		{
			c->ops += done;
			record_latency(c, now_seconds() - start);
		}
	}
	free(buf);
	free(buf2);
	return NULL;
}

static int
compare_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

typedef struct Totals
{
	long		ops;
	long		aborted;
	double		elapsed;
	double	   *latencies;
	long		nlat;
} Totals;

static double
percentile(const Totals *t, double p)
{
	long		i;

	if (t->nlat == 0)
		return 0;
	i = (long) (p * (t->nlat - 1) + 0.5);
	return t->latencies[i] * 1000.0;
}

/*
 * -E: sampled during every round, the folding lag and the latency of
 * ledger_balance on one account of the round's side: the hot escrow
 * account e1, and (the baseline under the same load) the locked a1.
 */
typedef struct Monitor
{
	pthread_t	thread;
	PGconn	   *conn;
	const char *balance_sql;
	double		warm_until;
	double		stop_at;
	double	   *lag;			/* seconds */
	double	   *balance;		/* seconds per ledger_balance call */
	long		n;
	long		cap;
	char		error[256];
} Monitor;

static void *
monitor_main(void *arg)
{
	Monitor    *m = arg;

	while (now_seconds() < m->stop_at)
	{
		double		start = now_seconds();
		PGresult   *res = PQexec(m->conn, m->balance_sql);
		double		balance = now_seconds() - start;
		double		lag;

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			snprintf(m->error, sizeof(m->error), "%s", PQerrorMessage(m->conn));
			PQclear(res);
			return NULL;
		}
		PQclear(res);
		/* e1's entries not folded yet are its newest: from the end of its key range */
		res = PQexec(m->conn, "SELECT COALESCE(extract(epoch FROM clock_timestamp() - min(e.created_at)), 0)"
					 " FROM ledger.entries e JOIN ledger.accounts a USING (account_id)"
					 " WHERE a.name = 'e1' AND e.balance_after IS NULL"
					 "   AND e.entry_id > COALESCE((SELECT max(f.entry_id) FROM ledger.entries f"
					 "                               WHERE f.account_id = a.account_id"
					 "                                 AND f.balance_after IS NOT NULL), 0)");
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			snprintf(m->error, sizeof(m->error), "%s", PQerrorMessage(m->conn));
			PQclear(res);
			return NULL;
		}
		lag = atof(PQgetvalue(res, 0, 0));
		PQclear(res);
		if (start >= m->warm_until)
		{
			if (m->n == m->cap)
			{
				m->cap = m->cap ? m->cap * 2 : 1024;
				m->lag = realloc(m->lag, sizeof(double) * m->cap);
				m->balance = realloc(m->balance, sizeof(double) * m->cap);
			}
			m->lag[m->n] = lag;
			m->balance[m->n++] = balance;
		}
		nanosleep(&(struct timespec) {0, 5000000L}, NULL);
	}
	return NULL;
}

static double
sorted_percentile(double *v, long n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(double), compare_double);
	return v[(long) (p * (n - 1))];
}

static Monitor monitors[2];

/* Run one round of one implementation; add its numbers to *totals. */
static bool
run_round(Client *clients, Impl impl, Totals *totals)
{
	double		start = now_seconds();
	bool		ok = true;

	if (compare_escrow)
	{
		monitors[impl].warm_until = start + warmup;
		monitors[impl].stop_at = start + warmup + seconds;
		pthread_create(&monitors[impl].thread, NULL, monitor_main, &monitors[impl]);
	}
	for (int i = 0; i < nclients; i++)
	{
		clients[i].impl = impl;
		clients[i].warm_until = start + warmup;
		clients[i].stop_at = start + warmup + seconds;
		clients[i].ops = 0;
		clients[i].nlat = 0;
		clients[i].failed = 0;
		clients[i].aborted = 0;
		pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
	}
	for (int i = 0; i < nclients; i++)
	{
		pthread_join(clients[i].thread, NULL);
		if (clients[i].failed)
		{
			fprintf(stderr, "bench: %s client %d failed: %s", impl_names[impl], i, clients[i].error);
			ok = false;
		}
		totals->ops += clients[i].ops;
		totals->aborted += clients[i].aborted;
		totals->latencies = realloc(totals->latencies,
									sizeof(double) * (totals->nlat + clients[i].nlat + 1));
		memcpy(totals->latencies + totals->nlat, clients[i].latencies,
			   sizeof(double) * clients[i].nlat);
		totals->nlat += clients[i].nlat;
	}
	if (compare_escrow)
	{
		pthread_join(monitors[impl].thread, NULL);
		if (monitors[impl].error[0] != '\0')
		{
			fprintf(stderr, "bench: monitor failed: %s", monitors[impl].error);
			ok = false;
		}
	}
	totals->elapsed += seconds;
	return ok;
}


static void
usage(void)
{
	fprintf(stderr,
			"usage: bench [-c clients] [-d seconds] [-w warmup] [-r rounds] [-n accounts]\n"
			"             [-W uniform|hot|zipf|transfer|batch|hold] [-s zipf_s] [-b batch_size] [-u] [-M]\n"
			"             [-E [-5] [-T]]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	Client	   *clients;
	Totals		totals[2] = {{0}};
	int			opt;
	bool		ok = true;
	double		rate[2];
	int			pairs = 0;		/* round pairs with a ratio */
	double		low_ratio = INFINITY,
				high_ratio = 0;

	while ((opt = getopt(argc, argv, "c:d:w:r:n:W:s:b:uME5T")) != -1)
	{
		switch (opt)
		{
			case 'c': nclients = atoi(optarg); break;
			case 'd': seconds = atof(optarg); break;
			case 'w': warmup = atof(optarg); break;
			case 'r': rounds = atoi(optarg); break;
			case 'n': naccounts = atoi(optarg); break;
			case 's': zipf_s = atof(optarg); break;
			case 'b': batch_size = atoi(optarg); break;
			case 'u': prepared = false; break;
			case 'M': compare_modes = true; break;
			case 'E': compare_escrow = true; break;
			case '5': half_credits = true; break;
			case 'T': in_transaction = true; break;
			case 'W':
				{
					int			w;

					for (w = 0; w <= WL_HOLD; w++)
						if (strcmp(optarg, workload_names[w]) == 0)
							break;
					if (w > WL_HOLD)
						usage();
					workload = (Workload) w;
					break;
				}
			default:
				usage();
		}
	}
	if (nclients < 1 || seconds <= 0 || rounds < 1 || naccounts < 2 || batch_size < 1)
		usage();
	if (workload == WL_ZIPF)
		build_zipf();

	clients = calloc(nclients, sizeof(Client));
	if (compare_escrow)
	{
		for (int impl = 0; impl < 2; impl++)
		{
			monitors[impl].balance_sql = impl == IMPL_LEDGER ? "SELECT ledger_balance('e1')"
				: "SELECT ledger_balance('a1')";
			monitors[impl].conn = PQconnectdb("");
			if (PQstatus(monitors[impl].conn) != CONNECTION_OK)
			{
				fprintf(stderr, "bench: cannot connect: %s", PQerrorMessage(monitors[impl].conn));
				return 1;
			}
		}
	}
	for (int i = 0; i < nclients; i++)
	{
		clients[i].conn = PQconnectdb("");
		if (PQstatus(clients[i].conn) != CONNECTION_OK)
		{
			fprintf(stderr, "bench: cannot connect: %s", PQerrorMessage(clients[i].conn));
			return 1;
		}
		for (int impl = 0; impl < 2; impl++)
		{
			PGresult   *res;

			if (!by_name((Impl) impl))
				continue;
			res = PQprepare(clients[i].conn, impl_names[impl],
										workload_sql((Impl) impl), 0, NULL);

			if (PQresultStatus(res) == PGRES_COMMAND_OK && workload == WL_HOLD)
			{
				PQclear(res);
				res = PQprepare(clients[i].conn, capture_names[impl],
								capture_sql((Impl) impl), 0, NULL);
			}
			if (PQresultStatus(res) == PGRES_COMMAND_OK && half_credits && impl == IMPL_LEDGER)
			{
				PQclear(res);
				res = PQprepare(clients[i].conn, "escrow_credit", "SELECT ledger_credit($1, $2)",
								0, NULL);
			}
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
			{
				fprintf(stderr, "bench: cannot prepare: %s", PQerrorMessage(clients[i].conn));
				return 1;
			}
			PQclear(res);
		}
		clients[i].rng = 0x9E3779B97F4A7C15ULL * (uint64_t) (i + 1) ^ (uint64_t) time(NULL);
	}

	/*
	 * The spread of the round pairs' ratios is printed with the overall one:
	 * on a small shared machine one round can differ by a fifth from the
	 * next, and a reader should see how much a single ratio can be trusted.
	 */
	for (int r = 0; r < rounds && ok; r++)
	{
		long		ledger_before = totals[IMPL_LEDGER].ops;
		long		naive_before = totals[IMPL_NAIVE].ops;
		double		ratio;

		ok = run_round(clients, IMPL_LEDGER, &totals[IMPL_LEDGER]) && ok;
		ok = run_round(clients, IMPL_NAIVE, &totals[IMPL_NAIVE]) && ok;
		if (totals[IMPL_NAIVE].ops == naive_before)
			continue;
		ratio = (double) (totals[IMPL_LEDGER].ops - ledger_before) /
			(totals[IMPL_NAIVE].ops - naive_before);
		low_ratio = fmin(low_ratio, ratio);
		high_ratio = fmax(high_ratio, ratio);
		pairs++;
	}

	if (workload == WL_ZIPF)
		printf("%s s=%.1f", workload_names[workload], zipf_s);
	else if (workload == WL_BATCH)
		printf("%s B=%d", workload_names[workload], batch_size);
	else
		printf("%s", workload_names[workload]);
	printf(" N=%d clients=%d rounds=%dx%gs%s%s%s\n", naccounts, nclients, rounds, seconds,
		   compare_modes ? " prepared vs unnamed" : prepared ? "" : " unprepared",
		   half_credits ? " half credits" : "", in_transaction ? " in a transaction" : "");
	for (int impl = 0; impl < 2; impl++)
	{
		Totals	   *t = &totals[impl];

		qsort(t->latencies, t->nlat, sizeof(double), compare_double);
		rate[impl] = t->ops / t->elapsed;
		printf("  %-8s %11.0f postings/s   p50 %8.3f ms   p99 %8.3f ms   p99.9 %8.3f ms",
			   compare_modes ? mode_names[impl] : compare_escrow ? escrow_names[impl]
			   : impl_names[impl], rate[impl],
			   percentile(t, 0.50), percentile(t, 0.99), percentile(t, 0.999));
		if (t->aborted > 0)
			printf("   (%ld calls aborted by deadlock/serialization failure)", t->aborted);
		printf("\n");
	}
	printf("  ratio   %.2fx (%s)", rate[IMPL_NAIVE] > 0 ? rate[IMPL_LEDGER] / rate[IMPL_NAIVE] : 0,
		   compare_modes ? "prepared / unnamed" : compare_escrow ? "escrow / uniform locked"
		   : "ledger / naive");
	if (pairs > 1)
		printf(", round pairs %.2fx to %.2fx", low_ratio, high_ratio);
	printf("\n");
	if (compare_escrow)
	{
		Monitor    *e = &monitors[IMPL_LEDGER];
		Monitor    *l = &monitors[IMPL_NAIVE];
		long		ne = e->n,
					nl = l->n;

		printf("  folding lag of e1 p99 %.1f ms, max %.1f ms (%ld samples)\n",
			   sorted_percentile(e->lag, ne, 0.99) * 1000, sorted_percentile(e->lag, ne, 1.0) * 1000, ne);
		printf("  ledger_balance p50 / p99: escrow e1 %.3f / %.3f ms, locked a1 under the uniform load"
			   " %.3f / %.3f ms\n",
			   sorted_percentile(e->balance, ne, 0.50) * 1000, sorted_percentile(e->balance, ne, 0.99) * 1000,
			   sorted_percentile(l->balance, nl, 0.50) * 1000, sorted_percentile(l->balance, nl, 0.99) * 1000);
	}

	for (int i = 0; i < nclients; i++)
	{
		PQfinish(clients[i].conn);
		free(clients[i].latencies);
	}
	free(clients);
	free(totals[0].latencies);
	free(totals[1].latencies);
	free(zipf_cdf);
	return ok ? 0 : 1;
}
