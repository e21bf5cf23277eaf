/*-------------------------------------------------------------------------
 *
 * journal.c
 *	  The append-only journal: writing entries, reading history, and the
 *	  trigger that keeps every row that records an amount immutable.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "ledger.h"

/*
 * Append one journal entry.  The caller holds the account's row lock and
 * has already checked the floor; transfer_id 0 means "not a transfer".
 */
void
ledger_append_entry(int64 account_id, int64 amount, int64 balance_after,
					int64 transfer_id, text *key, TimestampTz created_at)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(account_id);
	values[1] = Int64GetDatum(amount);
	values[2] = Int64GetDatum(balance_after);
	values[3] = Int64GetDatum(transfer_id);
	if (transfer_id == 0)
		nulls[3] = 'n';
	values[4] = PointerGetDatum(key);
	if (key == NULL)
		nulls[4] = 'n';
	values[5] = TimestampTzGetDatum(created_at);

	ledger_execute(STMT_INSERT_ENTRY, values, nulls, false);
}

/*
 * ledger_history(account text, max_rows int DEFAULT 100)
 *	 RETURNS TABLE(entry_id bigint, amount bigint, balance_after bigint,
 *				   transfer_id bigint, idempotency_key text,
 *				   created_at timestamptz)
 *
 * The newest max_rows entries of an account, newest first.
 */
PG_FUNCTION_INFO_V1(ledger_history);
Datum
ledger_history(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		max_rows;
	Datum		values[2];
	int			rows;

	ledger_require_not_null(fcinfo, 1, "max_rows");
	max_rows = PG_GETARG_INT32(1);
	if (max_rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must not be negative"),
				 errdetail("The max_rows is %d.", max_rows)));

	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	values[0] = Int64GetDatum(ledger_find_account(name));
	values[1] = Int64GetDatum((int64) max_rows);
	rows = ledger_execute(STMT_HISTORY, values, NULL, true);

	for (int row = 0; row < rows; row++)
	{
		Datum		out[6];
		bool		isnull[6];

		for (int col = 0; col < 6; col++)
			out[col] = SPI_getbinval(SPI_tuptable->vals[row],
									 SPI_tuptable->tupdesc, col + 1, &isnull[col]);
		/* the tuplestore copies the values into its own memory */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, isnull);
	}
	SPI_finish();

	return (Datum) 0;
}

/*
 * Trigger on ledger.entries, ledger.transfers and ledger.idempotency_keys:
 * refuses UPDATE, DELETE and TRUNCATE for every role, owner included.  On
 * ledger.accounts it refuses DELETE and TRUNCATE: balances change, but an
 * account, and so the history that refers to it, is never removed.
 */
PG_FUNCTION_INFO_V1(ledger_forbid_journal_change);
Datum
ledger_forbid_journal_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *relname;
	const char *action;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.forbid_journal_change() must be called as a trigger")));

	relname = RelationGetRelationName(trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		action = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		action = "DELETE";
	else
		action = "TRUNCATE";

	if (strcmp(relname, "accounts") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("ledger accounts are never deleted"),
				 errdetail("%s of ledger.accounts is refused for every role: the journal refers to every account.",
						   action)));

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("ledger journal table \"%s\" is append-only", relname),
			 errdetail("%s is refused for every role: a journal row, once written, is never changed.",
					   action),
			 errhint("Correct a posting with a new, compensating posting.")));

	PG_RETURN_NULL();			/* not reached */
}
