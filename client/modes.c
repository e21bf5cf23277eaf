/*-------------------------------------------------------------------------
 *
 * modes.c
 *	  An account's mode (extension 1.3): ledger_set_account_mode and
 *	  ledger_account_mode.
 *
 * Setting a mode is a write, retried by the rules of outcome.c.  It needs
 * no key: setting the mode an account already has changes nothing, so an
 * attempt that committed unseen is harmless to repeat (the previous mode
 * it then reports is the new one).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "ledger_int.h"

static const char *const mode_names[] = {
	[LEDGER_MODE_LOCKED] = "locked",
	[LEDGER_MODE_ESCROW] = "escrow",
};

/* The mode a one-text-column reply names; false if it names none. */
static bool
parse_mode(const PGresult *res, LedgerAccountMode *mode)
{
	const char *value;

	if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
		return false;
	value = PQgetvalue(res, 0, 0);
	for (int m = 0; m < (int) (sizeof(mode_names) / sizeof(mode_names[0])); m++)
		if (strcmp(value, mode_names[m]) == 0)
		{
			*mode = (LedgerAccountMode) m;
			return true;
		}
	return false;
}

LedgerStatus
ledger_set_account_mode(LedgerConn *conn, const char *account, LedgerAccountMode mode,
						LedgerAccountMode *previous)
{
	const char *values[2];
	PGresult   *res;
	LedgerStatus status;
	LedgerAccountMode was;
	bool		ok;

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (mode != LEDGER_MODE_LOCKED && mode != LEDGER_MODE_ESCROW)
		return ledger__client_error(conn, "ledger_set_account_mode: not a LedgerAccountMode value");
	values[0] = account;
	values[1] = mode_names[mode];
	status = ledger__call(conn, LEDGER_STMT_SET_MODE, values, true, &res);
	if (status != LEDGER_OK)
		return status;
	ok = parse_mode(res, &was);
	PQclear(res);
	if (!ok)
	{
		ledger__set_error(conn, "unexpected reply from the server: expected a mode",
						  NULL, NULL, NULL);
		return ledger__unknown_outcome(conn, "the request",
									   "setting the same mode again is safe");
	}
	if (previous != NULL)
		*previous = was;
	return LEDGER_OK;
}

LedgerStatus
ledger_account_mode(LedgerConn *conn, const char *account, LedgerAccountMode *mode)
{
	const char *values[1];
	PGresult   *res;
	LedgerStatus status;
	LedgerAccountMode got;
	bool		ok;

	if (!ledger__begin(conn))
		return LEDGER_CLIENT_ERROR;
	if (mode == NULL)
		return ledger__client_error(conn, "ledger_account_mode: mode must not be NULL");
	values[0] = account;
	status = ledger__call(conn, LEDGER_STMT_MODE, values, false, &res);
	if (status != LEDGER_OK)
		return status;
	ok = parse_mode(res, &got);
	PQclear(res);
	if (!ok)
	{
		ledger__set_error(conn, "unexpected reply from the server: expected a mode",
						  NULL, NULL, NULL);
		return LEDGER_SERVER_ERROR;
	}
	*mode = got;
	return LEDGER_OK;
}

const char *
ledger_mode_name(LedgerAccountMode mode)
{
	return mode == LEDGER_MODE_LOCKED || mode == LEDGER_MODE_ESCROW ? mode_names[mode] : "unknown";
}
