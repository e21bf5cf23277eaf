/* example.c: open an account, credit it once, debit it (see README). */
#include <stdio.h>
#include <ledger.h>

int
main(int argc, char **argv)
{
	LedgerOptions opts = {0};	/* zero: default retry policy */
	LedgerConn *conn;
	LedgerStatus st;
	int64_t		balance;

	opts.conninfo = argc > 1 ? argv[1] : NULL;	/* NULL: PG* environment */
	(void) ledger_connect(&opts, &conn);	/* a failed connect is retried by each call */
	(void) ledger_set_timeout(conn, 10000);	/* no call takes longer than 10 s */
	st = ledger_open_account(conn, "alice", "EUR", 0, NULL);
	if (st == LEDGER_OK)
		st = ledger_credit(conn, "alice", 1000, "example-credit", NULL);	/* once, ever */
	if (st == LEDGER_OK)
		st = ledger_debit(conn, "alice", 250, NULL, &balance);
	if (st == LEDGER_OK)
		printf("balance %lld\n", (long long) balance);
	else if (st == LEDGER_UNKNOWN_OUTCOME)	/* maybe applied: ask again with this key */
		fprintf(stderr, "unknown outcome: retry with key %s\n", ledger_last_key(conn));
	else
		fprintf(stderr, "%s: %s\n", ledger_status_name(st), ledger_error_message(conn));
	ledger_finish(conn);
	return st == LEDGER_OK ? 0 : 1;
}
