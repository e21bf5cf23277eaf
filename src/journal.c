/*-------------------------------------------------------------------------
 *
 * journal.c
 *	  Reading the journal: ledger_history.  (Entries are written with their
 *	  postings, write.c; guard.c keeps them append-only.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "ledger.h"

/*
 * ledger_history(account text, max_rows int DEFAULT 100,
 *				  before_entry_id bigint DEFAULT NULL)
 *	 RETURNS TABLE(entry_id bigint, amount bigint, balance_after bigint,
 *				   transfer_id bigint, idempotency_key text,
 *				   created_at timestamptz)
 *
 * The newest max_rows entries of an account (older than before_entry_id,
 * when given: keyset paging), newest first.  Before 1.2 the SQL function
 * has two arguments.
 */
PG_FUNCTION_INFO_V1(ledger_history);
Datum
ledger_history(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		max_rows;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
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
	if (PG_NARGS() < 3 || PG_ARGISNULL(2))
		nulls[2] = 'n';
	else
		values[2] = PG_GETARG_DATUM(2);
	rows = ledger_execute(STMT_HISTORY, values, nulls, true);

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
