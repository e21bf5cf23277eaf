/*
 * router_bank.c: one client of the sharded bank test (router_bank.sh).
 *
 * Usage: router_bank CLIENT_NO CONNINFO ACCOUNTS SECONDS SEED
 *
 * Until SECONDS have passed, transfers a random amount (1 to 30) between two
 * random accounts b-0 .. b-(ACCOUNTS-1) through the router, most of them
 * between shards, each under its own key c<CLIENT_NO>-<n>.  Before a
 * transfer is first sent, and after its outcome is known, one line goes to
 * stdout with write(2), so that it is in the kernel even if this process
 * is killed the next moment:
 *
 *	   A <key> <from> <to> <amount>		about to be sent
 *	   K <key> <transfer id>			acknowledged
 *	   R <key> <sqlstate>				refused for good (LG001: nothing moved)
 *
 * Anything else -- a lost connection (the router backend or a shard was
 * killed), a shard down, a transfer recorded but not finished -- is retried
 * with the same key after a pause, on a new connection if need be, for up
 * to 60 s past SECONDS; a transfer still unknown then is left to the
 * check, which must find it applied at most once.
 *
 * Exit status 0, or 1 with a message on stderr if a transfer returned
 * something other than a transfer id or a refusal the test allows.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define TRANSFER_SQL "SELECT ledger_transfer($1, $2, $3::bigint, $4)"
#define GRACE_SECONDS 60

static void
emit(const char *fmt,...)
{
	char		line[512];
	va_list		ap;
	int			len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len < 0 || len >= (int) sizeof(line) || write(STDOUT_FILENO, line, len) != len)
	{
		fprintf(stderr, "router_bank: cannot write the log\n");
		exit(1);
	}
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
pause_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int
main(int argc, char **argv)
{
	PGconn	   *conn = NULL;
	int			client;
	int			accounts;
	double		seconds;
	double		start;
	unsigned	seed;

	if (argc != 6)
	{
		fprintf(stderr, "usage: router_bank CLIENT_NO CONNINFO ACCOUNTS SECONDS SEED\n");
		return 1;
	}
	client = atoi(argv[1]);
	accounts = atoi(argv[3]);
	seconds = atof(argv[4]);
	seed = (unsigned) strtoul(argv[5], NULL, 10) * 7919u + (unsigned) client;
	srand(seed);
	start = now();

	for (long n = 1; now() - start < seconds; n++)
	{
		char		key[64];
		char		from[32];
		char		to[32];
		char		amount[16];
		const char *params[4] = {from, to, amount, key};
		int			a = rand() % accounts;
		int			b = (a + 1 + rand() % (accounts - 1)) % accounts;

		snprintf(key, sizeof(key), "c%d-%ld", client, n);
		snprintf(from, sizeof(from), "b-%d", a);
		snprintf(to, sizeof(to), "b-%d", b);
		snprintf(amount, sizeof(amount), "%d", 1 + rand() % 30);
		emit("A %s %s %s %s\n", key, from, to, amount);

		for (;;)
		{
			PGresult   *res;
			const char *state;

			if (now() - start > seconds + GRACE_SECONDS)
				return 0;		/* unknown: the check decides */
			if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
			{
				PQfinish(conn);
				conn = PQconnectdb(argv[2]);
				if (PQstatus(conn) != CONNECTION_OK)
				{
					pause_ms(200);
					continue;
				}
			}
			res = PQexecParams(conn, TRANSFER_SQL, 4, NULL, params, NULL, NULL, 0);
			if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
				!PQgetisnull(res, 0, 0))
			{
				emit("K %s %s\n", key, PQgetvalue(res, 0, 0));
				PQclear(res);
				break;
			}
			state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (state != NULL && strcmp(state, "LG001") == 0)
			{
				emit("R %s %s\n", key, state);
				PQclear(res);
				break;
			}
			/* a definite refusal the test never provokes: a bug */
			if (state != NULL && (strncmp(state, "LG", 2) == 0 || strncmp(state, "22", 2) == 0))
			{
				fprintf(stderr, "router_bank: client %d: transfer %s: %s %s", client, key,
						state, PQresultErrorMessage(res));
				return 1;
			}
			/* lost connection, a shard down, a step left for later: again */
			PQclear(res);
			pause_ms(100 + rand() % 200);
		}
	}
	PQfinish(conn);
	return 0;
}
