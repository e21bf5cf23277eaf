/*-------------------------------------------------------------------------
 *
 * test_holds.c
 *	  The 1.2 calls: holds (ledger_hold, ledger_capture, ledger_release,
 *	  ledger_available, ledger_holds), ledger_balance_at and
 *	  ledger_history_before, against a real server:
 *
 *	  - every status each call can return, and what it left unchanged;
 *	  - the results: holds newest first with their times exact to the
 *		microsecond, balances at every entry's instant and the microsecond
 *		before it, history pages that add up to the whole history;
 *	  - a hold's and a capture's lost reply (the proxy): retried, one hold,
 *		one posting; a release's lost reply answers false; lost for good,
 *		unknown, and the same call again is safe;
 *	  - LG006 and LG007 after an attempt that may have committed (its
 *		backend terminated while it waited for a lock) are final, not
 *		unknown (outcome.c).
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proxy.h"

static int64_t
holds_with_key(const char *key)
{
	return admin_int("SELECT count(*) FROM ledger.holds WHERE idempotency_key = '%s'", key);
}

/* Journal entries a capture of this hold posted (on the held account). */
static int64_t
entries_of_hold(int64_t hold_id)
{
	return admin_int("SELECT count(*) FROM ledger.entries WHERE hold_id = %" PRId64, hold_id);
}

static int64_t
available_of(const char *account)
{
	return admin_int("SELECT ledger_available('%s')", account);
}

/* ---- every status ----------------------------------------------------------- */

static void
test_hold_statuses(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerConn *other;
	LedgerStatus s;
	int64_t		h1 = 0,
				h2 = 0,
				h3 = 0,
				h4 = 0,
				h5 = 0,
				v = 0,
				v2 = 0;
	int			released = -1;
	char		key[LEDGER_KEY_BUFSIZE];

	printf("# holds: every status\n");
	admin_exec("SELECT ledger_open_account('h-bank', 'EUR', NULL)");
	admin_exec("SELECT ledger_open_account('h-alice', 'EUR')");
	admin_exec("SELECT ledger_open_account('h-shop', 'EUR')");
	admin_exec("SELECT ledger_open_account('h-usd', 'USD')");
	admin_exec("SELECT ledger_transfer('h-bank', 'h-alice', 1000)");

	check(strcmp(ledger_status_name(LEDGER_HOLD_NOT_FOUND), "hold_not_found") == 0 &&
		  strcmp(ledger_status_name(LEDGER_HOLD_NOT_PENDING), "hold_not_pending") == 0 &&
		  LEDGER_HOLD_NOT_FOUND == 15 && LEDGER_HOLD_NOT_PENDING == 16 && LEDGER_HAS_HOLDS,
		  "statuses 15 hold_not_found and 16 hold_not_pending (LEDGER_HAS_HOLDS)");

	s = ledger_available(c, "h-alice", &v);
	check(s == LEDGER_OK && v == 1000, "available before any hold: 1000 (%" PRId64 ")", v);

	/* a hold reserves: the balance stays, what is available shrinks */
	s = ledger_hold(c, "h-alice", 300, 0, NULL, &h1);
	CHECK_STATUS(c, s, LEDGER_OK, "hold 300");
	snprintf(key, sizeof(key), "%s", ledger_last_key(c) ? ledger_last_key(c) : "");
	check(h1 > 0 && is_generated_key(key) && holds_with_key(key) == 1 &&
		  ledger_last_attempts(c) == 1,
		  "a hold id (%" PRId64 "), a generated key in ledger_last_key (%s)", h1, key);
	check(balance_of("h-alice") == 1000 && available_of("h-alice") == 700,
		  "the balance stays 1000, 700 available");
	s = ledger_available(c, "h-alice", &v);
	check(s == LEDGER_OK && v == 700 && strcmp(ledger_last_key(c), key) == 0,
		  "ledger_available: 700; it leaves the last key alone");

	/* a key replays; other arguments with it are LG003 */
	s = ledger_hold(c, "h-alice", 40, 0, "h-key", &h2);
	CHECK_STATUS(c, s, LEDGER_OK, "hold 40 with a key");
	s = ledger_hold(c, "h-alice", 40, 0, ledger_last_key(c), &v);
	check(s == LEDGER_OK && v == h2 && holds_with_key("h-key") == 1 &&
		  available_of("h-alice") == 660,
		  "the same key again (ledger_last_key passed back): the same hold, held once");
	s = ledger_hold(c, "h-alice", 41, 0, "h-key", &v);
	CHECK_STATUS(c, s, LEDGER_IDEMPOTENCY_CONFLICT, "LG003: the key with another amount");
	s = ledger_hold(c, "h-alice", 40, 86400000, "h-key", &v);
	CHECK_STATUS(c, s, LEDGER_IDEMPOTENCY_CONFLICT, "LG003: the key with an expiry");
	s = ledger_hold(c, "h-alice", 5, 86400000, "h-day", &h3);
	s = ledger_hold(c, "h-alice", 5, 86400000, "h-day", &v);
	check(s == LEDGER_OK && v == h3 && holds_with_key("h-day") == 1 &&
		  admin_int("SELECT count(*) FROM ledger.holds WHERE hold_id = %" PRId64
					" AND expires_at - created_at BETWEEN '23:59:59' AND '24:00:01'", h3) == 1,
		  "expires_in_ms 86400000: a day; the same key replays it");

	/* LG001 against what is available, not the balance */
	s = ledger_hold(c, "h-alice", 656, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INSUFFICIENT_FUNDS, "LG001: a hold of 656 with 1000 on the account and 655 available");
	check(ledger_error_sqlstate(c) && strcmp(ledger_error_sqlstate(c), "LG001") == 0 &&
		  ledger_error_detail(c) && strstr(ledger_error_detail(c), "held") != NULL,
		  "its detail names what is held: %s", ledger_error_detail(c) ? ledger_error_detail(c) : "");
	s = ledger_debit(c, "h-alice", 656, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INSUFFICIENT_FUNDS, "LG001: a debit cannot spend what holds reserve");
	s = ledger_hold(c, "h-alice", 0, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023: a hold of 0");
	s = ledger_hold(c, "h-alice", -1, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023: a negative hold");
	s = ledger_hold(c, "h-alice", 1, -5, NULL, &v);
	check(s == LEDGER_INVALID_PARAMETER_VALUE && ledger_error_hint(c) != NULL,
		  "22023: a negative expiry, sent to the server (%s; hint: %s)", ledger_error_message(c),
		  ledger_error_hint(c) ? ledger_error_hint(c) : "none");
	s = ledger_hold(c, NULL, 1, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004: a NULL account");
	s = ledger_hold(c, "nobody", 1, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002: hold on no account");
	s = ledger_hold(c, "h-alice", 1, 0, "", &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023: an empty key");
	check(available_of("h-alice") == 655 && balance_of("h-alice") == 1000,
		  "the refusals reserved nothing: 655 available");

	/* a partial capture to another account: the rest is released */
	s = ledger_capture(c, h1, 200, "h-shop", &v);
	check(s == LEDGER_OK && v == 800, "capture 200 of 300 to h-shop: h-alice's balance 800 (%s, %" PRId64 ")",
		  ledger_status_name(s), v);
	check(balance_of("h-shop") == 200 && available_of("h-alice") == 800 - 45 &&
		  entries_of_hold(h1) == 1, "h-shop got 200; the other 100 released");
	s = ledger_capture(c, h1, 200, "h-shop", &v2);
	check(s == LEDGER_OK && v2 == 800 && entries_of_hold(h1) == 1 && balance_of("h-shop") == 200,
		  "the same capture again: the first result, nothing posted");
	s = ledger_capture(c, h1, 100, "h-shop", &v);
	CHECK_STATUS(c, s, LEDGER_IDEMPOTENCY_CONFLICT, "LG003: captured before for another amount");
	s = ledger_capture(c, h1, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_IDEMPOTENCY_CONFLICT, "LG003: captured before to another account");
	released = -1;
	s = ledger_release(c, h1, &released);
	check(s == LEDGER_HOLD_NOT_PENDING && released == -1 && ledger_error_sqlstate(c) &&
		  strcmp(ledger_error_sqlstate(c), "LG007") == 0 && ledger_error_detail(c) &&
		  strstr(ledger_error_detail(c), "captured") != NULL,
		  "LG007: a captured hold cannot be released (%s / %s)", ledger_error_message(c),
		  ledger_error_detail(c) ? ledger_error_detail(c) : "");

	/* the whole hold captured as a debit; its key still replays */
	s = ledger_capture(c, h2, 0, NULL, &v);
	check(s == LEDGER_OK && v == 760 && balance_of("h-alice") == 760,
		  "capture the whole hold (amount 0) as a debit: 760 (%" PRId64 ")", v);
	s = ledger_capture(c, h2, 40, NULL, &v2);
	check(s == LEDGER_OK && v2 == 760 && entries_of_hold(h2) == 1,
		  "again with its amount: the same capture, replayed");
	s = ledger_hold(c, "h-alice", 40, 0, "h-key", &v);
	check(s == LEDGER_OK && v == h2, "the hold's key replays after the hold ended");

	/* release */
	s = ledger_hold(c, "h-alice", 50, 0, NULL, &h4);
	released = -1;
	s = ledger_release(c, h4, &released);
	check(s == LEDGER_OK && released == 1 && available_of("h-alice") == 755,
		  "release a pending hold: true; available again");
	s = ledger_release(c, h4, &released);
	check(s == LEDGER_OK && released == 0, "release it again: false");
	s = ledger_release(c, h4, NULL);
	CHECK_STATUS(c, s, LEDGER_OK, "release with a NULL out-parameter");
	s = ledger_capture(c, h4, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_HOLD_NOT_PENDING, "LG007: a released hold cannot be captured");

	/* expiry is exact, without a sweep */
	s = ledger_hold(c, "h-alice", 10, 1, NULL, &h5);
	CHECK_STATUS(c, s, LEDGER_OK, "a hold that expires after 1 ms");
	sleep_ms(50);
	s = ledger_available(c, "h-alice", &v);
	check(s == LEDGER_OK && v == 755, "50 ms later it reserves nothing: 755 available");
	s = ledger_capture(c, h5, 0, NULL, &v);
	check(s == LEDGER_HOLD_NOT_PENDING && strstr(ledger_error_detail(c) ? ledger_error_detail(c) : "",
												 "expired") != NULL,
		  "LG007: an expired hold cannot be captured (%s)",
		  ledger_error_detail(c) ? ledger_error_detail(c) : "");
	s = ledger_release(c, h5, &released);
	check(s == LEDGER_OK && released == 0, "release of an expired hold: false");

	/* capture: the argument errors */
	s = ledger_hold(c, "h-alice", 10, 0, NULL, &h4);
	s = ledger_capture(c, 999999999, 0, NULL, &v);
	check(s == LEDGER_HOLD_NOT_FOUND && ledger_error_sqlstate(c) &&
		  strcmp(ledger_error_sqlstate(c), "LG006") == 0 && ledger_last_attempts(c) == 1,
		  "LG006: capture of no hold (%s)", ledger_error_message(c));
	s = ledger_release(c, 999999999, &released);
	CHECK_STATUS(c, s, LEDGER_HOLD_NOT_FOUND, "LG006: release of no hold");
	s = ledger_capture(c, -1, 0, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_HOLD_NOT_FOUND, "LG006: hold id -1");
	s = ledger_capture(c, h4, -5, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023: a negative amount");
	s = ledger_capture(c, h4, 11, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023: more than held");
	s = ledger_capture(c, h4, 0, "h-alice", &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023: a capture to the held account");
	s = ledger_capture(c, h4, 0, "", &v);
	CHECK_STATUS(c, s, LEDGER_INVALID_PARAMETER_VALUE, "22023: to an empty name");
	s = ledger_capture(c, h4, 0, "nobody", &v);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002: to no account");
	s = ledger_capture(c, h4, 0, "h-usd", &v);
	CHECK_STATUS(c, s, LEDGER_CURRENCY_MISMATCH, "LG004: to another currency");
	check(balance_of("h-alice") == 760 && available_of("h-alice") == 745 &&
		  entries_of_hold(h4) == 0, "the refused captures posted nothing; the hold still reserves");
	s = ledger_capture(c, h4, 10, "h-shop", &v);
	check(s == LEDGER_OK && v == 750 && balance_of("h-shop") == 210,
		  "then captured for its whole amount to h-shop");

	/* the other reads' statuses */
	s = ledger_available(c, "nobody", &v);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002: available of no account");
	s = ledger_available(c, NULL, &v);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004: available of NULL");
	s = ledger_available(NULL, "h-alice", &v);
	check(s == LEDGER_CLIENT_ERROR && ledger_hold(NULL, "h-alice", 1, 0, NULL, &v) == LEDGER_CLIENT_ERROR &&
		  ledger_capture(NULL, 1, 0, NULL, &v) == LEDGER_CLIENT_ERROR &&
		  ledger_release(NULL, 1, &released) == LEDGER_CLIENT_ERROR &&
		  ledger_balance_at(NULL, "h-alice", 0, &v) == LEDGER_CLIENT_ERROR,
		  "a NULL connection: client error");
	ledger_finish(c);

	/* privileges: a role not granted the function; one granted it */
	other = connect_to(conninfo_for("user=ledger_nogrant"), 3);
	s = ledger_hold(other, "h-alice", 1, 0, NULL, &v);
	check(s == LEDGER_INSUFFICIENT_PRIVILEGE && ledger_last_attempts(other) == 1,
		  "42501: a role not granted ledger_hold, not retried");
	ledger_finish(other);
	other = connect_to(conninfo_for("user=ledger_app"), 3);
	s = ledger_hold(other, "h-alice", 1, 0, NULL, &h5);
	CHECK_STATUS(other, s, LEDGER_OK, "the granted role holds");
	s = ledger_capture(other, h5, 0, "h-shop", &v);
	check(s == LEDGER_OK && v == 749, "and captures (%s, %" PRId64 ")", ledger_status_name(s), v);
	ledger_finish(other);
	check(admin_int("SELECT count(*) FROM ledger_verify()") == 0, "ledger_verify() is clean");
}

/* ---- the results ------------------------------------------------------------ */

static void
test_hold_results(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerHolds *holds = NULL;
	LedgerStatus s;
	int64_t		ids[4] = {0, 0, 0, 0};
	int64_t		v;
	bool		ok;
	size_t		i;

	printf("# ledger_holds\n");
	admin_exec("SELECT ledger_open_account('hr', 'EUR')");
	admin_exec("SELECT ledger_transfer('h-bank', 'hr', 1000)");
	s = ledger_hold(c, "hr", 100, 0, "hr\tkey", &ids[0]);	/* captured 60 */
	s = ledger_capture(c, ids[0], 60, NULL, &v);
	s = ledger_hold(c, "hr", 20, 3600000, NULL, &ids[1]);	/* released */
	s = ledger_release(c, ids[1], NULL);
	s = ledger_hold(c, "hr", 30, 1, NULL, &ids[2]);	/* expired */
	s = ledger_hold(c, "hr", 40, 3600000, "hr-pending", &ids[3]);	/* pending */
	sleep_ms(20);

	s = ledger_holds(c, "hr", 100, &holds);
	check(s == LEDGER_OK && holds != NULL && holds->n_holds == 4,
		  "ledger_holds: 4 holds (%s, %zu)", ledger_status_name(s), holds ? holds->n_holds : 0);
	if (holds != NULL && holds->n_holds == 4)
	{
		const LedgerHold *h = holds->holds;

		check(h[0].hold_id == ids[3] && h[1].hold_id == ids[2] && h[2].hold_id == ids[1] &&
			  h[3].hold_id == ids[0], "newest first");
		check(strcmp(h[0].status, "pending") == 0 && strcmp(h[1].status, "expired") == 0 &&
			  strcmp(h[2].status, "released") == 0 && strcmp(h[3].status, "captured") == 0,
			  "statuses: pending, expired (before any sweep), released, captured");
		check(h[3].amount == 100 && h[3].captured == 60 && h[0].captured == 0 &&
			  h[2].captured == 0 && h[0].amount == 40,
			  "amounts; captured is the posted amount, 0 unless captured");
		check(h[3].idempotency_key && strcmp(h[3].idempotency_key, "hr\tkey") == 0 &&
			  h[0].idempotency_key && strcmp(h[0].idempotency_key, "hr-pending") == 0 &&
			  h[1].idempotency_key && is_generated_key(h[1].idempotency_key),
			  "keys: the caller's (a tab in it intact), or the generated one");
		check(!h[3].has_expiry && h[0].has_expiry && h[1].has_expiry && h[2].has_expiry,
			  "has_expiry only for the holds given one");
		ok = true;
		for (i = 0; i < 4; i++)
		{
			ok &= h[i].created_at_us ==
				admin_int("SELECT (extract(epoch FROM created_at) * 1000000)::bigint"
						  " FROM ledger.holds WHERE hold_id = %" PRId64, h[i].hold_id);
			if (h[i].has_expiry)
				ok &= h[i].expires_at_us ==
					admin_int("SELECT (extract(epoch FROM expires_at) * 1000000)::bigint"
							  " FROM ledger.holds WHERE hold_id = %" PRId64, h[i].hold_id);
		}
		check(ok, "created_at_us and expires_at_us are the server's, to the microsecond");
		check(h[0].expires_at_us - h[0].created_at_us > 3590000000LL &&
			  h[0].expires_at_us - h[0].created_at_us <= 3600000000LL,
			  "an hour's hold expires an hour after it was made (%" PRId64 " us)",
			  h[0].expires_at_us - h[0].created_at_us);
	}
	ledger_holds_free(holds);

	s = ledger_holds(c, "hr", 2, &holds);
	check(s == LEDGER_OK && holds->n_holds == 2 && holds->holds[1].hold_id == ids[2],
		  "max_rows 2: the newest two");
	ledger_holds_free(holds);
	s = ledger_holds(c, "hr", 0, &holds);
	check(s == LEDGER_OK && holds != NULL && holds->n_holds == 0, "max_rows 0: none");
	ledger_holds_free(holds);
	s = ledger_holds(c, "h-shop", 10, &holds);
	check(s == LEDGER_OK && holds != NULL && holds->n_holds == 0, "an account without holds");
	ledger_holds_free(holds);
	ledger_holds_free(NULL);
	holds = (LedgerHolds *) &v;
	s = ledger_holds(c, "hr", -1, &holds);
	check(s == LEDGER_INVALID_PARAMETER_VALUE && holds == NULL, "22023: max_rows -1, no result");
	s = ledger_holds(c, "nobody", 10, &holds);
	check(s == LEDGER_ACCOUNT_NOT_FOUND && holds == NULL, "LG002: holds of no account");
	s = ledger_holds(c, NULL, 10, &holds);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004: holds of NULL");
	s = ledger_holds(c, "hr", 10, NULL);
	CHECK_STATUS(c, s, LEDGER_CLIENT_ERROR, "holds without an out-parameter");
	ledger_finish(c);
}

static void
test_balance_at(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerHistory *h = NULL;
	LedgerStatus s;
	int64_t		v = -1;
	bool		exact = true,
				before = true;
	int			distinct = 0;
	size_t		i;

	printf("# ledger_balance_at\n");
	admin_exec("SELECT ledger_open_account('ba', 'EUR')");
	for (i = 0; i < 6; i++)
		admin_exec("SELECT ledger_transfer('h-bank', 'ba', %zu)", 10 * (i + 1));
	admin_exec("SELECT ledger_debit('ba', 7)");
	admin_exec("SELECT ledger_hold('ba', 5)");

	s = ledger_history(c, "ba", 100, &h);
	check(s == LEDGER_OK && h->n_entries == 7, "7 entries");
	for (i = 0; s == LEDGER_OK && i < h->n_entries; i++)
	{
		const LedgerEntry *e = &h->entries[i];
		int64_t		older = i + 1 < h->n_entries ? h->entries[i + 1].balance_after : 0;

		s = ledger_balance_at(c, "ba", e->created_at_us, &v);
		exact &= s == LEDGER_OK && v == e->balance_after;
		if (i + 1 < h->n_entries && h->entries[i + 1].created_at_us == e->created_at_us)
			continue;
		distinct++;
		s = ledger_balance_at(c, "ba", e->created_at_us - 1, &v);
		before &= s == LEDGER_OK && v == older;
	}
	check(exact, "at each entry's created_at_us: its balance_after");
	check(before && distinct > 0,
		  "one microsecond earlier: the balance before it (%d instants)", distinct);
	s = ledger_balance_at(c, "ba", INT64_MAX, &v);
	check(s == LEDGER_OK && v == balance_of("ba") && v == 203,
		  "at INT64_MAX: the balance now, holds not counted (%" PRId64 ")", v);
	s = ledger_balance_at(c, "ba", 0, &v);
	check(s == LEDGER_OK && v == 0, "at 1970-01-01: 0, before the first entry");
	s = ledger_balance_at(c, "ba", -1500000, &v);
	check(s == LEDGER_OK && v == 0, "before 1970: 0");
	s = ledger_balance_at(c, "ba", INT64_MIN, &v);
	check(s == LEDGER_SERVER_ERROR && ledger_error_sqlstate(c) &&
		  strcmp(ledger_error_sqlstate(c), "22008") == 0,
		  "INT64_MIN is out of PostgreSQL's range: 22008 (%s)", ledger_error_message(c));
	s = ledger_balance_at(c, "nobody", 0, &v);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002: balance_at of no account");
	s = ledger_balance_at(c, NULL, 0, &v);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004: balance_at of NULL");
	ledger_history_free(h);
	ledger_finish(c);
}

static void
test_history_before(void)
{
	LedgerConn *c = connect_to(conninfo_for(""), 3);
	LedgerHistory *all = NULL;
	LedgerHistory *page = NULL;
	LedgerStatus s;
	int64_t		before = 0;
	size_t		seen = 0;
	int			pages = 0;
	bool		same = true;

	printf("# ledger_history_before\n");
	s = ledger_history(c, "ba", 1000, &all);
	check(s == LEDGER_OK && all->n_entries == 7,
		  "ledger_history (two arguments) still works on extension 1.2: %zu entries",
		  all ? all->n_entries : 0);
	if (all == NULL)
		return;
	for (;;)
	{
		size_t		i;

		s = ledger_history_before(c, "ba", 3, before, &page);
		if (s != LEDGER_OK)
			break;
		pages++;
		for (i = 0; i < page->n_entries && seen < all->n_entries; i++, seen++)
			same &= page->entries[i].entry_id == all->entries[seen].entry_id &&
				page->entries[i].balance_after == all->entries[seen].balance_after &&
				page->entries[i].created_at_us == all->entries[seen].created_at_us;
		if (page->n_entries < 3)
			break;
		before = page->entries[page->n_entries - 1].entry_id;
		ledger_history_free(page);
		page = NULL;
	}
	check(s == LEDGER_OK && same && seen == all->n_entries && pages == 3,
		  "pages of 3 (0, then the last entry_id of each page): the whole history,"
		  " in 3 pages (%d)", pages);
	ledger_history_free(page);
	s = ledger_history_before(c, "ba", 10, all->entries[all->n_entries - 1].entry_id, &page);
	check(s == LEDGER_OK && page->n_entries == 0, "before the oldest entry: none");
	ledger_history_free(page);
	s = ledger_history_before(c, "ba", 2, all->entries[0].entry_id, &page);
	check(s == LEDGER_OK && page->n_entries == 2 &&
		  page->entries[0].entry_id == all->entries[1].entry_id,
		  "before the newest: from the second newest");
	ledger_history_free(page);
	page = (LedgerHistory *) &before;
	s = ledger_history_before(c, "ba", -1, 0, &page);
	check(s == LEDGER_INVALID_PARAMETER_VALUE && page == NULL, "22023: max_rows -1, no result");
	s = ledger_history_before(c, "nobody", 1, 0, &page);
	CHECK_STATUS(c, s, LEDGER_ACCOUNT_NOT_FOUND, "LG002: history_before of no account");
	s = ledger_history_before(c, NULL, 1, 0, &page);
	CHECK_STATUS(c, s, LEDGER_NULL_VALUE_NOT_ALLOWED, "22004: history_before of NULL");
	s = ledger_history_before(c, "ba", 1, 0, NULL);
	CHECK_STATUS(c, s, LEDGER_CLIENT_ERROR, "history_before without an out-parameter");
	ledger_history_free(all);
	ledger_finish(c);
}

/* ---- lost replies ------------------------------------------------------------ */

static void
test_hold_lost_replies(void)
{
	Proxy	   *proxy = proxy_start(host, port);
	char		ci[512];
	char		key[LEDGER_KEY_BUFSIZE];
	LedgerConn *c;
	LedgerStatus s;
	int64_t		h1 = 0,
				h2 = 0,
				v = 0,
				before,
				shop_before;
	int			released = -1;

	printf("# holds: lost replies\n");
	if (proxy == NULL)
		die("proxy");
	admin_exec("SELECT ledger_open_account('hl', 'EUR')");
	admin_exec("SELECT ledger_transfer('h-bank', 'hl', 1000)");
	snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=%s", proxy_port(proxy), db);
	c = connect_to(ci, 4);
	/* the first reply on a connection is the lookup of the extension's schema */
	s = ledger_available(c, "hl", &v);
	check(s == LEDGER_OK && v == 1000, "available through the proxy");

	/* a hold: retried with its key, one hold */
	proxy_cut_next_reply(proxy, false);
	s = ledger_hold(c, "hl", 100, 0, NULL, &h1);
	snprintf(key, sizeof(key), "%s", ledger_last_key(c) ? ledger_last_key(c) : "");
	check(proxy_cuts(proxy) == 1 && s == LEDGER_OK && ledger_last_attempts(c) == 2,
		  "lost reply to a hold: %s after %d attempts", ledger_status_name(s),
		  ledger_last_attempts(c));
	check(h1 == admin_int("SELECT hold_id FROM ledger.holds WHERE idempotency_key = '%s'", key) &&
		  holds_with_key(key) == 1 &&
		  admin_int("SELECT count(*) FROM ledger.holds WHERE account_id ="
					" (SELECT account_id FROM ledger.accounts WHERE name = 'hl')") == 1 &&
		  available_of("hl") == 900,
		  "one hold, the same id (%" PRId64 "); 100 reserved once", h1);

	/* a capture: retried by hold id, replayed, posted once */
	before = balance_of("hl");
	shop_before = balance_of("h-shop");
	proxy_cut_next_reply(proxy, false);
	s = ledger_capture(c, h1, 60, "h-shop", &v);
	check(proxy_cuts(proxy) == 2 && s == LEDGER_OK && ledger_last_attempts(c) == 2 &&
		  v == before - 60,
		  "lost reply to a capture: %s after %d attempts, the first result (%" PRId64 ")",
		  ledger_status_name(s), ledger_last_attempts(c), v);
	check(balance_of("hl") == before - 60 && balance_of("h-shop") == shop_before + 60 &&
		  entries_of_hold(h1) == 1 &&
		  admin_int("SELECT count(*) FROM ledger.hold_ends WHERE hold_id = %" PRId64, h1) == 1,
		  "posted once: one entry, one end of the hold");

	/* a release: retried by id; the retry answers false, as documented */
	s = ledger_hold(c, "hl", 10, 0, NULL, &h2);
	proxy_cut_next_reply(proxy, false);
	s = ledger_release(c, h2, &released);
	check(proxy_cuts(proxy) == 3 && s == LEDGER_OK && released == 0 &&
		  ledger_last_attempts(c) == 2 &&
		  admin_int("SELECT count(*) FROM ledger.hold_ends WHERE hold_id = %" PRId64
					" AND status = 'released'", h2) == 1,
		  "lost reply to a release: ok after 2 attempts, released 0 (the first attempt released it)");

	/* lost for good: unknown; the same call later is safe */
	s = ledger_hold(c, "hl", 20, 0, NULL, &h2);
	before = balance_of("hl");
	proxy_cut_next_reply(proxy, true);
	s = ledger_capture(c, h2, 0, NULL, &v);
	check(s == LEDGER_UNKNOWN_OUTCOME && ledger_last_attempts(c) == 4 &&
		  strstr(ledger_error_message(c), "capturing the same hold again") != NULL,
		  "a capture lost for good: unknown, and the message says what is safe: %s",
		  ledger_error_message(c));
	check(balance_of("hl") == before - 20, "(it did commit on the server)");
	proxy_refuse(proxy, false);
	s = ledger_capture(c, h2, 0, NULL, &v);
	check(s == LEDGER_OK && v == before - 20 && balance_of("hl") == before - 20 &&
		  entries_of_hold(h2) == 1, "the same capture again: the first result, posted once");

	proxy_cut_next_reply(proxy, true);
	s = ledger_hold(c, "hl", 30, 0, NULL, &h2);
	snprintf(key, sizeof(key), "%s", ledger_last_key(c) ? ledger_last_key(c) : "");
	check(s == LEDGER_UNKNOWN_OUTCOME && strstr(ledger_error_message(c), key) != NULL &&
		  holds_with_key(key) == 1,
		  "a hold lost for good: unknown, and the message names the key: %s",
		  ledger_error_message(c));
	proxy_refuse(proxy, false);
	s = ledger_hold(c, "hl", 30, 0, key, &h2);
	check(s == LEDGER_OK && holds_with_key(key) == 1 &&
		  h2 == admin_int("SELECT hold_id FROM ledger.holds WHERE idempotency_key = '%s'", key),
		  "the same hold again with that key: its id, held once");
	ledger_finish(c);
	proxy_stop(proxy);
}

/* ---- LG006 and LG007 after an attempt that may have committed -------------------- */

typedef struct BlockedCall
{
	bool		capture;		/* else release */
	int64_t		hold_id;
	LedgerStatus status;
	int			attempts;
	char		message[512];
} BlockedCall;

static void *
blocked_call(void *arg)
{
	BlockedCall *b = arg;
	LedgerConn *c = connect_to(conninfo_for("application_name=ledger_blocked"), 3);
	int			released;

	b->status = b->capture ? ledger_capture(c, b->hold_id, 0, NULL, NULL)
		: ledger_release(c, b->hold_id, &released);
	b->attempts = ledger_last_attempts(c);
	snprintf(b->message, sizeof(b->message), "%s", ledger_error_message(c));
	ledger_finish(c);
	return NULL;
}

/*
 * Run b while blocker (an open transaction) holds a lock it needs;
 * terminate its backend while it waits, so its first attempt is lost (it
 * may have committed, as far as the library knows); then end the blocker
 * with finish ("COMMIT" or "ROLLBACK"), and the retry decides.
 */
static void
run_blocked(BlockedCall *b, PGconn *blocker, const char *finish)
{
	pthread_t	t;
	PGresult   *res;
	int			i;

	pthread_create(&t, NULL, blocked_call, b);
	for (i = 0; i < 1000; i++)
	{
		if (admin_int("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
					  " AND application_name = 'ledger_blocked'") > 0)
			break;
		sleep_ms(10);
	}
	admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
			   " WHERE application_name = 'ledger_blocked'");
	res = PQexec(blocker, finish);
	PQclear(res);
	pthread_join(t, NULL);
}

static void
test_refusals_after_lost_attempt(void)
{
	PGconn	   *blocker = raw_connect(conninfo_for(""));
	PGresult   *res;
	BlockedCall b;
	char		sql[256];
	int64_t		h;

	printf("# holds: LG006 and LG007 after a lost attempt\n");
	admin_exec("SELECT ledger_open_account('hb', 'EUR')");
	admin_exec("SELECT ledger_transfer('h-bank', 'hb', 100)");

	/* the blocker releases the hold meanwhile: the retried capture is LG007 */
	h = admin_int("SELECT ledger_hold('hb', 10)");
	snprintf(sql, sizeof(sql), "BEGIN; SELECT ledger_release(%" PRId64 ")", h);
	res = PQexec(blocker, sql);
	PQclear(res);
	memset(&b, 0, sizeof(b));
	b.capture = true;
	b.hold_id = h;
	run_blocked(&b, blocker, "COMMIT");
	check(b.status == LEDGER_HOLD_NOT_PENDING && b.attempts == 2,
		  "a capture whose first attempt was lost, then LG007: final, not unknown (%s after %d"
		  " attempts: %s)", ledger_status_name(b.status), b.attempts, b.message);
	check(entries_of_hold(h) == 0, "(nothing was captured)");

	/* no such hold, found only after a lock on the holds: LG006 is final */
	res = PQexec(blocker, "BEGIN; LOCK TABLE ledger.holds IN ACCESS EXCLUSIVE MODE");
	PQclear(res);
	memset(&b, 0, sizeof(b));
	b.capture = false;
	b.hold_id = 999999999;
	run_blocked(&b, blocker, "ROLLBACK");
	check(b.status == LEDGER_HOLD_NOT_FOUND && b.attempts == 2,
		  "a release whose first attempt was lost, then LG006: final, not unknown (%s after %d"
		  " attempts: %s)", ledger_status_name(b.status), b.attempts, b.message);
	PQfinish(blocker);
}

void
test_holds(void)
{
	test_hold_statuses();
	test_hold_results();
	test_balance_at();
	test_history_before();
	test_hold_lost_replies();
	test_refusals_after_lost_attempt();
}
