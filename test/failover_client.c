/*
 * failover_client.c: load generator for the failover test (failover.sh).
 *
 * Usage: failover_client [--sync-commit=MODE] CLIENT_NO CONNINFO
 *
 * Connects to CONNINFO and posts keyed operations in a loop, alternately
 *     SELECT ledger_debit('failover', 1, key)
 *     SELECT ledger_transfer('failover', 'sink', 1, key)
 * with the keys c<CLIENT_NO>-1, c<CLIENT_NO>-2, ...  Key and amounts are
 * bound parameters.  After each successful reply one line
 *     <key> TAB <debit|transfer> TAB <result>
 * is written to stdout and flushed: the acknowledgement record that
 * failover.sh checks on the promoted standby (key present exactly once,
 * with the same result: the new balance or the transfer id).
 *
 * With --sync-commit=MODE the session first runs SET synchronous_commit =
 * MODE (off, local, remote_write, on, remote_apply); the ledger must still
 * wait for the synchronous standby before it acknowledges a posting.
 *
 * A commit whose wait for the synchronous standby was cancelled is reported
 * to the client as a success with a WARNING ("canceling wait for
 * synchronous replication"): that is not an acknowledgement the standby
 * has the data.  The test never cancels anything, so such a warning is an
 * error here (exit 1).
 *
 * Exit status: 0 when the connection is lost (the primary was killed, how
 * every run is meant to end); 1, with a message on stderr, on any other
 * error; 2 if it was still running after 300 s (the script should have
 * killed the server long before: a bound on the loop).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpq-fe.h"

#include "lost_connection.h"

#define DEBIT_SQL "SELECT ledger_debit('failover', 1, $1)"
#define TRANSFER_SQL "SELECT ledger_transfer('failover', 'sink', 1, $1)"
#define MAX_SECONDS 300

static int	syncrep_cancelled;

static void
usage(void)
{
	fprintf(stderr, "usage: failover_client [--sync-commit=MODE] CLIENT_NO CONNINFO\n");
	exit(1);
}

/* Notices: flag a cancelled wait for the synchronous standby. */
static void
notice_receiver(void *arg, const PGresult *res)
{
	const char *msg = PQresultErrorMessage(res);

	(void) arg;
	if (msg != NULL && strstr(msg, "synchronous replication") != NULL)
	{
		syncrep_cancelled = 1;
		fprintf(stderr, "failover_client: %s", msg);
	}
}

/* Report a failed command and exit: 0 if the server went away, else 1. */
static void
fail(PGconn *conn, PGresult *res, long client, const char *what)
{
	fail_command("failover_client", conn, res, client, what);
}

int
main(int argc, char **argv)
{
	int			argi = 1;
	const char *mode = NULL;
	long		client;
	char	   *end;
	PGconn	   *conn;
	time_t		started;
	unsigned long long i;

	if (argi < argc && strncmp(argv[argi], "--sync-commit=", 14) == 0)
	{
		mode = argv[argi] + 14;
		if (strspn(mode, "abcdefghijklmnopqrstuvwxyz_") != strlen(mode) || *mode == '\0')
			usage();
		argi++;
	}
	if (argc - argi != 2)
		usage();
	errno = 0;
	client = strtol(argv[argi], &end, 10);
	if (errno != 0 || end == argv[argi] || *end != '\0' || client < 0)
		usage();

	conn = PQconnectdb(argv[argi + 1]);
	if (conn == NULL)
	{
		fprintf(stderr, "failover_client %ld: out of memory\n", client);
		return 1;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "failover_client %ld: cannot connect: %s", client,
				PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	PQsetNoticeReceiver(conn, notice_receiver, NULL);

	if (mode != NULL)
	{
		char		sql[96];
		PGresult   *res;

		snprintf(sql, sizeof(sql), "SET synchronous_commit = %s", mode);
		res = PQexec(conn, sql);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
			fail(conn, res, client, sql);
		PQclear(res);
		res = PQexec(conn, "SHOW synchronous_commit");
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
			fail(conn, res, client, "SHOW synchronous_commit");
		if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), mode) != 0)
		{
			fprintf(stderr, "failover_client %ld: synchronous_commit is not %s\n",
					client, mode);
			PQclear(res);
			PQfinish(conn);
			return 1;
		}
		PQclear(res);
	}

	started = time(NULL);
	for (i = 1;; i++)
	{
		char		key[64];
		const char *params[1];
		const char *kind = (i % 2 == 1) ? "debit" : "transfer";
		PGresult   *res;

		if (time(NULL) - started > MAX_SECONDS)
		{
			fprintf(stderr, "failover_client %ld: still running after %d s\n",
					client, MAX_SECONDS);
			PQfinish(conn);
			return 2;
		}
		snprintf(key, sizeof(key), "c%ld-%llu", client, i);
		params[0] = key;
		syncrep_cancelled = 0;
		res = PQexecParams(conn, (i % 2 == 1) ? DEBIT_SQL : TRANSFER_SQL,
						   1, NULL, params, NULL, NULL, 0);
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
			fail(conn, res, client, kind);
		if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
		{
			fprintf(stderr, "failover_client %ld: unexpected reply to %s\n", client, kind);
			PQclear(res);
			PQfinish(conn);
			return 1;
		}
		if (syncrep_cancelled)
		{
			fprintf(stderr, "failover_client %ld: %s %s was acknowledged without the "
					"standby (wait cancelled)\n", client, kind, key);
			PQclear(res);
			PQfinish(conn);
			return 1;
		}

		/* the acknowledgement record: only after the server said "ok" */
		if (printf("%s\t%s\t%s\n", key, kind, PQgetvalue(res, 0, 0)) < 0 ||
			fflush(stdout) != 0)
		{
			fprintf(stderr, "failover_client %ld: cannot write the acknowledgement: %s\n",
					client, strerror(errno));
			PQclear(res);
			PQfinish(conn);
			return 1;
		}
		PQclear(res);
	}
}
