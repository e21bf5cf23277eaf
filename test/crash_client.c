/*
 * crash_client.c: load generator for the crash durability test (crash.sh).
 *
 * Usage: crash_client [--async] [--unkeyed] CLIENT_NO [CONNINFO]
 *
 * Connects (CONNINFO, or the PG* environment variables when it is omitted)
 * and posts SELECT ledger_debit('crash', 1, key) in a loop forever, with the
 * keys c<CLIENT_NO>-1, c<CLIENT_NO>-2, ...; every third request is a hold
 * instead, SELECT ledger_hold('crash-hold', 1, NULL, key) with the key
 * h<CLIENT_NO>-<i> (a hold that never expires).  The key is always bound
 * as a parameter, never spliced into the SQL.  After each successful reply
 * the key (for a hold: the key, a space and the hold id returned) is
 * written as one line to stdout and flushed: that line is the
 * acknowledgement record that crash.sh checks after the crash, so it is
 * written only once the server has answered "ok".
 *
 * With --unkeyed it posts SELECT ledger_debit('crash-u<CLIENT_NO>', 1)
 * instead, without a key (the direct-write path), to an account of its
 * own, and acknowledges u<CLIENT_NO>-1, u<CLIENT_NO>-2, ...: crash.sh
 * then counts that account's entries.
 *
 * With --async the session first runs SET synchronous_commit = off, which
 * the ledger must override for every transaction that posts money.
 *
 * Exit status: 0 when the connection is lost (the server was killed, which
 * is how every run is meant to end); 1, with a message on stderr, on any
 * other error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpq-fe.h"

#include "lost_connection.h"

#define DEBIT_SQL "SELECT ledger_debit('crash', 1, $1)"
#define HOLD_SQL "SELECT ledger_hold('crash-hold', 1, NULL, $1)"
#define UNKEYED_DEBIT_SQL "SELECT ledger_debit($1, 1)"

static void
usage(void)
{
	fprintf(stderr, "usage: crash_client [--async] [--unkeyed] CLIENT_NO [CONNINFO]\n");
	exit(1);
}

/* Report a failed command and exit: 0 if the server went away, else 1. */
static void
fail(PGconn *conn, PGresult *res, long client, const char *what)
{
	fail_command("crash_client", conn, res, client, what);
}

/* Run a command that returns no rows (SET); exits on failure. */
static void
exec_command(PGconn *conn, long client, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
		fail(conn, res, client, sql);
	PQclear(res);
}

/* Check that the session really runs with synchronous_commit = off. */
static void
check_async(PGconn *conn, long client)
{
	PGresult   *res = PQexec(conn, "SHOW synchronous_commit");

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		fail(conn, res, client, "SHOW synchronous_commit");
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "off") != 0)
	{
		fprintf(stderr, "crash_client %ld: synchronous_commit is \"%s\", not off\n",
				client, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?");
		PQclear(res);
		PQfinish(conn);
		exit(1);
	}
	PQclear(res);
}

int
main(int argc, char **argv)
{
	int			argi = 1;
	int			async = 0;
	int			unkeyed = 0;
	char		account[64];
	long		client;
	char	   *end;
	const char *conninfo = "";
	PGconn	   *conn;
	unsigned long long i;

	if (argi < argc && strcmp(argv[argi], "--async") == 0)
	{
		async = 1;
		argi++;
	}
	if (argi < argc && strcmp(argv[argi], "--unkeyed") == 0)
	{
		unkeyed = 1;
		argi++;
	}
	if (argi >= argc || argc - argi > 2)
		usage();
	errno = 0;
	client = strtol(argv[argi], &end, 10);
	if (errno != 0 || end == argv[argi] || *end != '\0' || client < 0)
		usage();
	argi++;
	if (argi < argc)
		conninfo = argv[argi];
	snprintf(account, sizeof(account), "crash-u%ld", client);

	conn = PQconnectdb(conninfo);
	if (conn == NULL)
	{
		fprintf(stderr, "crash_client %ld: out of memory\n", client);
		return 1;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		/* the server is up when the clients start: this is a real error */
		fprintf(stderr, "crash_client %ld: cannot connect: %s", client,
				PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}

	if (async)
	{
		exec_command(conn, client, "SET synchronous_commit = off");
		check_async(conn, client);
	}

	for (i = 1;; i++)
	{
		char		key[64];
		const char *params[1];
		PGresult   *res;
		int			hold = !unkeyed && i % 3 == 0;

		if (snprintf(key, sizeof(key), "%c%ld-%llu", unkeyed ? 'u' : hold ? 'h' : 'c',
					 client, i) >= (int) sizeof(key))
		{
			fprintf(stderr, "crash_client %ld: key too long\n", client);
			PQfinish(conn);
			return 1;
		}
		params[0] = unkeyed ? account : key;
		res = PQexecParams(conn, unkeyed ? UNKEYED_DEBIT_SQL : hold ? HOLD_SQL : DEBIT_SQL, 1,
						   NULL, params, NULL, NULL, 0);
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
			fail(conn, res, client, hold ? "ledger_hold" : "ledger_debit");
		if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
		{
			fprintf(stderr, "crash_client %ld: unexpected reply to %s\n", client,
					hold ? "ledger_hold" : "ledger_debit");
			PQclear(res);
			PQfinish(conn);
			return 1;
		}

		/* the acknowledgement record: only after the server said "ok" */
		if ((hold ? printf("%s %s\n", key, PQgetvalue(res, 0, 0)) : printf("%s\n", key)) < 0 ||
			fflush(stdout) != 0)
		{
			fprintf(stderr, "crash_client %ld: cannot write the acknowledgement: %s\n",
					client, strerror(errno));
			PQclear(res);
			PQfinish(conn);
			return 1;
		}
		PQclear(res);
	}
}
