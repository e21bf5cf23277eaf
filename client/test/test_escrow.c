/*-------------------------------------------------------------------------
 *
 * test_escrow.c
 *	  The 1.3 calls: ledger_set_account_mode, ledger_account_mode and
 *	  ledger_mode_name, and the verbs on an account in escrow mode, against
 *	  a real server (test/client.sh preloads the library):
 *
 *	  - every status of the two calls, and what a refused call left
 *		unchanged; a role without the grant is refused (42501);
 *	  - postings on an escrow account through the usual verbs: their
 *		results, a refusal against the worst case in flight, and a history
 *		with LEDGER_NOT_FOLDED for an entry the folder cannot fold yet
 *		(a transaction in flight holds the account's fold limit), exact
 *		once it has;
 *	  - a lost reply to a mode switch: retried, and harmless.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proxy.h"

static bool
escrow_in_table(const char *account)
{
	return admin_int("SELECT escrow::int FROM ledger.accounts WHERE name = '%s'", account) == 1;
}

/* Wait (up to 10 s) until the folder has folded every entry of account. */
static bool
wait_folded(const char *account)
{
	for (int i = 0; i < 1000; i++)
	{
		if (admin_int("SELECT count(*) FROM ledger.entries e JOIN ledger.accounts a USING (account_id)"
					  " WHERE a.name = '%s' AND e.balance_after IS NULL", account) == 0)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* ---- every status ----------------------------------------------------------- */

static void
test_mode_statuses(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerConn *app;
	LedgerAccountMode m = LEDGER_MODE_ESCROW,
				prev = LEDGER_MODE_ESCROW;
	LedgerStatus s;
	int64_t		v = 0;

	printf("# account modes: statuses\n");
	admin_exec("SELECT ledger_open_account('es-bank', 'EUR', NULL), ledger_open_account('es', 'EUR')");
	admin_exec("SELECT ledger_transfer('es-bank', 'es', 1000)");

	s = ledger_account_mode(c, "es", &m);
	check(s == LEDGER_OK && m == LEDGER_MODE_LOCKED, "a new account is locked: %s",
		  ledger_status_name(s));
	s = ledger_set_account_mode(c, "es", LEDGER_MODE_ESCROW, &prev);
	check(s == LEDGER_OK && prev == LEDGER_MODE_LOCKED && escrow_in_table("es"),
		  "set to escrow: ok, it was locked (%s)", ledger_mode_name(prev));
	s = ledger_set_account_mode(c, "es", LEDGER_MODE_ESCROW, &prev);
	check(s == LEDGER_OK && prev == LEDGER_MODE_ESCROW,
		  "set to escrow again: ok, it was escrow already");
	s = ledger_set_account_mode(c, "es", LEDGER_MODE_ESCROW, NULL);
	check(s == LEDGER_OK, "previous may be NULL");
	s = ledger_account_mode(c, "es", &m);
	check(s == LEDGER_OK && m == LEDGER_MODE_ESCROW, "now escrow");

	/* the verbs, unchanged in form */
	s = ledger_debit(c, "es", 100, NULL, &v);
	check(s == LEDGER_OK && v == 900, "an escrow debit: its balance (%" PRId64 ")", v);
	s = ledger_transfer(c, "es", "es-bank", 50, NULL, &v);
	check(s == LEDGER_OK && v > 0, "an escrow transfer out: its id (%" PRId64 ")", v);
	s = ledger_balance(c, "es", &v);
	check(s == LEDGER_OK && v == 850, "the transfer moved 50 out (%" PRId64 ")", v);
	s = ledger_debit(c, "es", 851, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INSUFFICIENT_FUNDS, "LG001: one more than the balance");
	s = ledger_balance(c, "es", &v);
	check(s == LEDGER_OK && v == 850, "the refusal changed nothing (%" PRId64 ")", v);
	s = ledger_available(c, "es", &v);
	check(s == LEDGER_OK && v == 850, "available: the same");

	/* refusals: nothing changes */
	s = ledger_set_account_mode(c, "nobody", LEDGER_MODE_ESCROW, &prev);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002: set the mode of no account");
	s = ledger_set_account_mode(c, NULL, LEDGER_MODE_LOCKED, &prev);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004: set the mode of NULL");
	s = ledger_set_account_mode(c, "es", (LedgerAccountMode) 2, &prev);
	CHECK_STATUS(c, s, LEDGER_CLIENT_ERROR, "a mode that is no LedgerAccountMode");
	check(ledger_last_attempts(c) == 0 && escrow_in_table("es"), "nothing sent, nothing changed");
	s = ledger_account_mode(c, "nobody", &m);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002: the mode of no account");
	s = ledger_account_mode(c, NULL, &m);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004: the mode of NULL");
	s = ledger_account_mode(c, "es", NULL);
	CHECK_STATUS(c, s, LEDGER_CLIENT_ERROR, "the mode without an out-parameter");
	check(strcmp(ledger_mode_name(LEDGER_MODE_LOCKED), "locked") == 0 &&
		  strcmp(ledger_mode_name(LEDGER_MODE_ESCROW), "escrow") == 0 &&
		  strcmp(ledger_mode_name((LedgerAccountMode) 9), "unknown") == 0,
		  "ledger_mode_name: locked, escrow, unknown");

	/* the application role reads modes, but was not granted setting them */
	app = connect_to(conninfo_for("user=ledger_app"), 2);
	s = ledger_account_mode(app, "es", &m);
	check(s == LEDGER_OK && m == LEDGER_MODE_ESCROW, "the application reads the mode");
	s = ledger_set_account_mode(app, "es", LEDGER_MODE_LOCKED, &prev);
	CHECK_STATUS(app, s, LEDGER_INSUFFICIENT_PRIVILEGE, "42501: the application sets a mode");
	check(escrow_in_table("es"), "still escrow");
	ledger_finish(app);

	/* back to locked: every entry folded, the books exact */
	s = ledger_set_account_mode(c, "es", LEDGER_MODE_LOCKED, &prev);
	check(s == LEDGER_OK && prev == LEDGER_MODE_ESCROW && !escrow_in_table("es"),
		  "back to locked: ok, it was escrow");
	check(admin_int("SELECT balance FROM ledger.accounts WHERE name = 'es'") == 850 &&
		  admin_int("SELECT count(*) FROM ledger.entries e JOIN ledger.accounts a USING (account_id)"
					" WHERE a.name = 'es' AND e.balance_after IS NULL") == 0,
		  "the switch folded everything: the row says 850, no balance_after missing");
	check(admin_int("SELECT count(*) FROM ledger_verify()") == 0, "ledger_verify: no discrepancy");
	ledger_finish(c);
}

/* ---- a history with entries not folded yet ----------------------------------- */

static void
test_unfolded_history(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	PGconn	   *blocker = raw_connect(conninfo_for(""));
	LedgerHistory *h = NULL;
	PGresult   *res;
	LedgerStatus s;
	int64_t		v = 0;
	bool		ok;

	printf("# escrow: a history not folded yet\n");
	admin_exec("SELECT ledger_open_account('eh', 'EUR')");
	admin_exec("SELECT ledger_set_account_mode('eh', 'escrow')");
	admin_exec("SELECT ledger_transfer('es-bank', 'eh', 500)");
	check(wait_folded("eh"), "the folder folds the first entry");

	/* a transaction in flight on eh: nothing after its entry can be folded */
	res = PQexec(blocker, "BEGIN; SELECT ledger_debit('eh', 1)");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	check(ok, "a debit of 1 in an open transaction");

	s = ledger_debit(c, "eh", 10, NULL, &v);
	check(s == LEDGER_OK && v == 490,
		  "a debit beside it: no wait for its lock; the balance as if committed next (%" PRId64 ")", v);
	s = ledger_debit(c, "eh", 490, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INSUFFICIENT_FUNDS,
				 "LG001: the rest, unless the debit in flight rolls back");
	s = ledger_balance(c, "eh", &v);
	check(s == LEDGER_OK && v == 490, "the balance counts the committed entry not folded (490)");
	s = ledger_history(c, "eh", 10, &h);
	check(s == LEDGER_OK && h->n_entries == 2 && h->entries[0].amount == -10 &&
		  h->entries[0].balance_after == LEDGER_NOT_FOLDED &&
		  h->entries[1].balance_after == 500,
		  "the history: the new entry LEDGER_NOT_FOLDED, the first one 500");
	ledger_history_free(h);
	h = NULL;

	res = PQexec(blocker, "COMMIT");
	PQclear(res);
	check(wait_folded("eh"), "the blocker commits: the folder folds the rest");
	s = ledger_history(c, "eh", 10, &h);
	check(s == LEDGER_OK && h->n_entries == 3 &&
		  h->entries[0].amount == -10 && h->entries[0].balance_after == 489 &&
		  h->entries[1].amount == -1 && h->entries[1].balance_after == 499 &&
		  h->entries[2].balance_after == 500,
		  "folded in entry order: 500, 499, 489 (the blocker drew its entry first)");
	ledger_history_free(h);
	s = ledger_balance(c, "eh", &v);
	check(s == LEDGER_OK && v == 489, "the balance: 489");
	PQfinish(blocker);
	ledger_finish(c);
}

/* ---- a lost reply ------------------------------------------------------------- */

static void
test_mode_lost_reply(void)
{
	Proxy	   *proxy = proxy_start(host, port);
	char		ci[512];
	LedgerConn *c;
	LedgerAccountMode m = LEDGER_MODE_LOCKED,
				prev = LEDGER_MODE_LOCKED;
	LedgerStatus s;

	printf("# account modes: a lost reply\n");
	if (proxy == NULL)
		die("proxy");
	admin_exec("SELECT ledger_open_account('el', 'EUR')");
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s", proxy_port(proxy), db);
	c = connect_to(ci, 4);
	/* the first reply on a connection is the lookup of the extension's schema */
	s = ledger_account_mode(c, "el", &m);
	check(s == LEDGER_OK && m == LEDGER_MODE_LOCKED, "the mode through the proxy");

	proxy_cut_next_reply(proxy, false);
	s = ledger_set_account_mode(c, "el", LEDGER_MODE_ESCROW, &prev);
	check(proxy_cuts(proxy) == 1 && s == LEDGER_OK && ledger_last_attempts(c) == 2 &&
		  prev == LEDGER_MODE_ESCROW && escrow_in_table("el"),
		  "lost reply to a switch: %s after %d attempts; the retry found it done (previous %s)",
		  ledger_status_name(s), ledger_last_attempts(c), ledger_mode_name(prev));

	proxy_cut_next_reply(proxy, true);
	s = ledger_set_account_mode(c, "el", LEDGER_MODE_LOCKED, &prev);
	check(s == LEDGER_UNKNOWN_OUTCOME &&
		  strstr(ledger_error_message(c), "setting the same mode again is safe") != NULL,
		  "a switch lost for good: unknown, and the message says what is safe: %s",
		  ledger_error_message(c));
	proxy_refuse(proxy, false);
	s = ledger_set_account_mode(c, "el", LEDGER_MODE_LOCKED, &prev);
	check(s == LEDGER_OK && prev == LEDGER_MODE_LOCKED && !escrow_in_table("el"),
		  "the same switch again: ok, locked (it had committed)");
	ledger_finish(c);
	proxy_stop(proxy);
}

void
test_escrow(void)
{
	test_mode_statuses();
	test_unfolded_history();
	test_mode_lost_reply();
}
