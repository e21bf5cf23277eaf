/*-------------------------------------------------------------------------
 *
 * mode.c
 *	  An account's mode: locked (the default: postings lock its row to
 *	  COMMIT) or escrow (postings are admitted in shared memory and only
 *	  insert; escrow.c, fold.c).
 *
 * Switching is safe under load.  Both ways, the switch first locks the
 * account's row, which waits for the postings of locked mode in flight
 * and makes new ones wait.  To escrow: the row says so at commit, and a
 * posting that waited for the row sees it and goes the escrow way.  To
 * locked: the account's slot is marked switching, so that new escrow
 * postings lock the row instead (and wait); once every escrow posting in
 * flight has ended, its committed entries are folded, and the row says
 * locked at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "errors.h"
#include "ledger.h"

static const char *
mode_name(bool escrow)
{
	return escrow ? "escrow" : "locked";
}

/*
 * ledger_set_account_mode(account text, mode text) RETURNS text
 *
 * Sets the mode, 'locked' or 'escrow'; returns the previous one.  Escrow
 * needs the library preloaded (55000).  Locks: the account row, to COMMIT;
 * to locked, it also waits for the escrow postings in flight.
 */
PG_FUNCTION_INFO_V1(ledger_set_account_mode);
Datum
ledger_set_account_mode(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	char	   *mode;
	bool		to_escrow;
	bool		was_escrow;
	int64		account_id;
	Datum		values[2];

	ledger_require_not_null(fcinfo, 1, "mode");
	mode = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(mode, "escrow") != 0 && strcmp(mode, "locked") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid account mode \"%s\"", mode),
				 errhint("The modes are 'locked' and 'escrow'.")));
	to_escrow = strcmp(mode, "escrow") == 0;
	if (to_escrow)
		ledger_escrow_require(name);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an account's mode can only be switched in a READ COMMITTED transaction"),
				 errdetail("Switching to locked mode folds every committed entry, which a transaction snapshot would not all see.")));

	ledger_prepare_write();
	SPI_connect();
	values[0] = PointerGetDatum(name);
	if (ledger_execute(STMT_MODE_LOCK, values, NULL, false) == 0)
		ledger_raise_account_not_found(name);
	(void) ledger_get_int64(0, 1, &account_id);
	was_escrow = ledger_get_bool(0, 2);

	if (to_escrow != was_escrow)
	{
		if (!to_escrow)
		{
			/* every escrow posting in flight ends, and is folded */
			if (ledger_escrow_available())
				ledger_escrow_begin_switch(account_id, name);
			if (!ledger_fold_account(account_id))
				elog(ERROR, "ledger: account " INT64_FORMAT " could not be folded", account_id);
		}
		else
		{
			ledger_escrow_note_switch(account_id);
			ledger_fold_ensure();
		}
		values[0] = Int64GetDatum(account_id);
		values[1] = BoolGetDatum(to_escrow);
		if (ledger_execute(STMT_MODE_SET, values, NULL, false) != 1)
			elog(ERROR, "ledger: account " INT64_FORMAT " vanished", account_id);
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(mode_name(was_escrow)));
}

/*
 * ledger_account_mode(account text) RETURNS text
 *
 * 'locked' or 'escrow', as this transaction sees it; no lock.
 */
PG_FUNCTION_INFO_V1(ledger_account_mode);
Datum
ledger_account_mode(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	Datum		values[1] = {PointerGetDatum(name)};
	bool		escrow;

	SPI_connect();
	if (ledger_execute(STMT_MODE_READ, values, NULL, true) == 0)
		ledger_raise_account_not_found(name);
	escrow = ledger_get_bool(0, 1);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(mode_name(escrow)));
}
