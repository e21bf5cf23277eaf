/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  ledger_verify(): the audit of the ledger's invariants.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/tuplestore.h"

#include "ledger.h"

/*
 * ledger_verify() RETURNS TABLE(account text, problem text)
 *
 * No rows means: every balance equals the sum of its journal and its last
 * running balance, no balance is below its floor, and every transfer has
 * two entries that sum to zero.  Reads with the caller's snapshot and
 * takes no row locks, so it can run beside live traffic.
 */
PG_FUNCTION_INFO_V1(ledger_verify);
Datum
ledger_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			rows;

	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	rows = ledger_execute(STMT_VERIFY, NULL, NULL, true);
	for (int row = 0; row < rows; row++)
	{
		Datum		out[2];
		bool		isnull[2];

		out[0] = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1, &isnull[0]);
		out[1] = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 2, &isnull[1]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, isnull);
	}
	SPI_finish();

	return (Datum) 0;
}
