/*
 * test/lost_connection.h: shared by the test clients that run while their
 * server is killed (crash_client.c, failover_client.c).
 *
 * A client that loses its server mid-run has done its job: it exits 0 and
 * its acknowledgement file tells what was confirmed.  Any other failure is
 * a test failure: it exits 1 with the server's message.
 */
#ifndef LEDGER_TEST_LOST_CONNECTION_H
#define LEDGER_TEST_LOST_CONNECTION_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpq-fe.h"

/* True when the failure of the last command was the loss of the connection. */
static int
connection_lost(const PGconn *conn, const PGresult *res)
{
	const char *sqlstate;

	if (PQstatus(conn) == CONNECTION_BAD)
		return 1;
	if (res == NULL)
		return 0;
	sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (sqlstate == NULL)
		return 0;
	/* class 08: connection exception; 57P01-57P03: shutdown or crash */
	return strncmp(sqlstate, "08", 2) == 0 ||
		strcmp(sqlstate, "57P01") == 0 ||
		strcmp(sqlstate, "57P02") == 0 ||
		strcmp(sqlstate, "57P03") == 0;
}

/* Report a failed command of client CLIENT of PROGRAM and exit: 0 if the
 * server went away, else 1. */
static void
fail_command(const char *program, PGconn *conn, PGresult *res, long client,
			 const char *what)
{
	int			lost = connection_lost(conn, res);

	if (!lost)
		fprintf(stderr, "%s %ld: %s failed: %s", program, client, what,
				res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	PQfinish(conn);
	exit(lost ? 0 : 1);
}

#endif							/* LEDGER_TEST_LOST_CONNECTION_H */
