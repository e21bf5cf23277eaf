/*-------------------------------------------------------------------------
 *
 * test_trust.c
 *	  Nobody's look-alike functions run instead of the ledger's: the
 *	  database owner (not a superuser) of LEDGER_TEST_HOSTILE_DB set its
 *	  search_path to a schema of its own, and made a schema named after
 *	  the application role, both holding ledger_debit and friends that
 *	  answer plausible numbers.  libledger finds the extension's schema in
 *	  pg_extension and calls it by name.  (test/client.sh sets it up.)
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

void
test_trust(void)
{
	const char *hostile = getenv("LEDGER_TEST_HOSTILE_DB");
	char		ci[512];
	PGconn	   *raw;
	PGresult   *res;
	LedgerConn *c;
	LedgerStatus s;
	int64_t		v = 0;
	LedgerPosting items[1];
	int64_t		before;

	printf("# a hostile database owner\n");
	if (hostile == NULL)
		die("set LEDGER_TEST_HOSTILE_DB");
	snprintf(ci, sizeof(ci), "host=%s port=%d dbname=%s user=ledger_app", host, port, hostile);

	/* the trap is armed: an unqualified call as the application runs the owner's function */
	raw = raw_connect(ci);
	res = PQexec(raw, "SELECT ledger_debit('victim', 1)");
	check(PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "424242") == 0,
		  "an unqualified SELECT ledger_debit(...) runs the look-alike (%s)",
		  PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : PQerrorMessage(raw));
	PQclear(res);
	res = PQexec(raw, "SELECT public.ledger_balance('victim')");
	before = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);

	c = connect_to(ci, 2);
	s = ledger_debit(c, "victim", 1, NULL, &v);
	check(s == LEDGER_OK && v == before - 1, "libledger debits the real account: %s, balance %lld",
		  ledger_status_name(s), (long long) v);
	s = ledger_balance(c, "victim", &v);
	check(s == LEDGER_OK && v == before - 1, "and reads the real balance (%lld)", (long long) v);
	s = ledger_available(c, "victim", &v);
	check(s == LEDGER_OK && v == before - 1, "the real available balance (%lld)", (long long) v);
	s = ledger_balance_at(c, "victim", INT64_MAX, &v);
	check(s == LEDGER_OK && v == before - 1, "the real balance at a time (%lld)", (long long) v);
	posting(&items[0], LEDGER_OP_DEBIT, "victim", NULL, 1, NULL);
	s = ledger_post_batch(c, items, 1);
	check(s == LEDGER_OK && items[0].result == before - 2, "server batches too (%lld)",
		  (long long) items[0].result);
	ledger_finish(c);

	res = PQexec(raw, "SELECT public.ledger_balance('victim')");
	check(PQresultStatus(res) == PGRES_TUPLES_OK &&
		  strtoll(PQgetvalue(res, 0, 0), NULL, 10) == before - 2,
		  "the money really moved (%s)", PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(raw);
}
