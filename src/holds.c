/*-------------------------------------------------------------------------
 *
 * holds.c
 *	  Holds: money reserved now and posted later (ARCHITECTURE §7).
 *
 * A hold is a posting like any other (posting.c): ledger_hold reserves by
 * the take rule against what is available, ledger_capture posts a debit or
 * a transfer and ends the hold, ledger_release ends it without posting,
 * and ledger_expire_holds records the expiries that already happened.
 * Each runs on the held account's row lock, so a hold's end and every other
 * posting on that account are serialized, and whether a hold has expired
 * is decided by the clock read under that lock: expiry is data, exact
 * without any sweep.
 *
 * Here: reading a hold and what an account's pending holds reserve, and
 * the SQL-callable functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "utils/snapmgr.h"

#include "ledger.h"

/* Holds a sweep records at most per call. */
#define EXPIRE_BATCH	1000

/*
 * Read hold hold_id, with its end if it has one, into *hold (found false
 * if there is none).  A fresh snapshot, so under READ COMMITTED, after the
 * account's lock, it sees the end another transaction committed.
 */
void
ledger_read_hold(int64 hold_id, LedgerHold *hold)
{
	Datum		values[1] = {Int64GetDatum(hold_id)};
	bool		isnull;

	memset(hold, 0, sizeof(*hold));
	hold->hold_id = hold_id;
	if (ledger_execute(STMT_FIND_HOLD, values, NULL, false) == 0)
		return;
	hold->found = true;
	if (!ledger_get_int64(0, 1, &hold->account_id) || !ledger_get_int64(0, 3, &hold->amount))
		elog(ERROR, "ledger: hold " INT64_FORMAT " has a NULL account or amount", hold_id);
	hold->account = DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 2, &isnull));
	hold->expires_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 4, &isnull));
	hold->expires = !isnull;
	hold->ended = ledger_get_cstring(0, 5);
	(void) ledger_get_int64(0, 6, &hold->captured);
	hold->to_account = ledger_get_cstring(0, 7) != NULL
		? DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7, &isnull))
		: NULL;
	(void) ledger_get_int64(0, 8, &hold->result);
	hold->key = ledger_get_cstring(0, 9);
}

/*
 * What the pending holds of an account reserve at now: those that do not
 * expire by then.  The caller holds the account's row lock.
 */
int64
ledger_reserved(int64 account_id, TimestampTz now)
{
	Datum		values[2] = {Int64GetDatum(account_id), TimestampTzGetDatum(now)};
	int64		reserved = 0;

	if (ledger_execute(STMT_RESERVED, values, NULL, false) == 1)
		(void) ledger_get_int64(0, 1, &reserved);
	return reserved;
}

/*
 * What the pending holds of committed transactions reserve at now, read
 * in a fresh snapshot that hides this transaction's own changes: for an
 * escrow account, whose holds in flight (this transaction's included) are
 * counted apart (escrow.c).
 */
int64
ledger_reserved_committed(int64 account_id, TimestampTz now)
{
	Datum		values[2] = {Int64GetDatum(account_id), TimestampTzGetDatum(now)};
	int64		reserved = 0;

	PushActiveSnapshot(GetLatestSnapshot());
	GetActiveSnapshot()->curcid = FirstCommandId;
	if (ledger_execute(STMT_RESERVED, values, NULL, true) == 1)
		(void) ledger_get_int64(0, 1, &reserved);
	PopActiveSnapshot();
	return reserved;
}

/* A hold id argument: not NULL (22004). */
static int64
arg_hold_id(FunctionCallInfo fcinfo, int argno)
{
	ledger_require_not_null(fcinfo, argno, "hold_id");
	return PG_GETARG_INT64(argno);
}

/*
 * ledger_hold(account text, amount bigint, expires_in interval DEFAULT NULL,
 *			   idempotency_key text DEFAULT NULL) RETURNS bigint
 *
 * Reserves amount of what the account has available (LG001 if that would
 * go below the floor) until captured, released or expired; returns the
 * hold id.  The balance is unchanged.  Locks: the account row, to COMMIT.
 */
PG_FUNCTION_INFO_V1(ledger_hold);
Datum
ledger_hold(PG_FUNCTION_ARGS)
{
	LedgerItem	item = {0};

	item.op = LEDGER_HOLD;
	item.account = ledger_arg_name(fcinfo, 0, "account");
	item.amount = ledger_arg_amount(fcinfo, 1);
	item.expires_in = PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2);
	item.key = ledger_arg_key(fcinfo, 3);
	PG_RETURN_INT64(ledger_post_single(&item));
}

/*
 * ledger_capture(hold_id bigint, amount bigint DEFAULT NULL,
 *				  to_account text DEFAULT NULL) RETURNS bigint
 *
 * Posts amount (NULL: the whole hold) of a pending hold as a debit of the
 * held account, or as a transfer to to_account, and ends the hold (any
 * remainder is released); returns the held account's new balance.  The
 * same arguments again return the first result.  Locks: the held account
 * row (and to_account's), in account_id order, to COMMIT.
 */
PG_FUNCTION_INFO_V1(ledger_capture);
Datum
ledger_capture(PG_FUNCTION_ARGS)
{
	LedgerItem	item = {0};

	item.op = LEDGER_CAPTURE;
	item.hold_id = arg_hold_id(fcinfo, 0);
	item.amount = PG_ARGISNULL(1) ? 0 : ledger_arg_amount(fcinfo, 1);
	item.to_account = PG_ARGISNULL(2) ? NULL : ledger_arg_name(fcinfo, 2, "to_account");
	PG_RETURN_INT64(ledger_post_single(&item));
}

/*
 * ledger_release(hold_id bigint) RETURNS boolean
 *
 * Ends a pending hold without posting: true.  Already released or expired:
 * false.  Captured: LG007.  Locks: the held account row, to COMMIT.
 */
PG_FUNCTION_INFO_V1(ledger_release);
Datum
ledger_release(PG_FUNCTION_ARGS)
{
	LedgerItem	item = {0};

	item.op = LEDGER_RELEASE;
	item.hold_id = arg_hold_id(fcinfo, 0);
	PG_RETURN_BOOL(ledger_post_single(&item) != 0);
}

/*
 * ledger_available(account text) RETURNS bigint
 *
 * The balance less what pending, unexpired holds reserve, as this
 * transaction sees them, at clock_timestamp().  Takes no lock.
 */
PG_FUNCTION_INFO_V1(ledger_available);
Datum
ledger_available(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	Datum		values[1] = {PointerGetDatum(name)};
	int64		account_id;
	int64		balance;
	int64		reserved;

	SPI_connect();
	if (ledger_execute(STMT_FIND_ACCOUNT, values, NULL, true) == 0)
		ledger_raise_account_not_found(name);
	if (!ledger_get_int64(0, 1, &account_id) || !ledger_get_int64(0, 4, &balance))
		elog(ERROR, "ledger: account has a NULL id or balance");
	reserved = ledger_reserved(account_id, GetCurrentTimestamp());
	SPI_finish();
	PG_RETURN_INT64(balance - reserved);
}

/*
 * ledger_holds(account text, max_rows int DEFAULT 100)
 *	 RETURNS TABLE(hold_id bigint, amount bigint, captured bigint, status text,
 *				   created_at timestamptz, expires_at timestamptz,
 *				   idempotency_key text)
 *
 * The account's holds, newest first.  A pending hold past its expiry
 * reads "expired" before any sweep recorded it.
 */
PG_FUNCTION_INFO_V1(ledger_holds);
Datum
ledger_holds(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		max_rows;
	Datum		values[3];
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
	values[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	rows = ledger_execute(STMT_HOLDS, values, NULL, true);
	for (int row = 0; row < rows; row++)
	{
		Datum		out[7];
		bool		isnull[7];

		for (int col = 0; col < 7; col++)
			out[col] = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
									 col + 1, &isnull[col]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, isnull);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * ledger_expire_holds() RETURNS bigint
 *
 * Records as expired up to EXPIRE_BATCH pending holds whose expiry has
 * passed, oldest first, and returns how many: call it until it returns 0.
 * Each is decided again under its account's lock, so a sweep running
 * beside postings, or beside another sweep, records an expiry once.
 * Nothing changes what is available: an expired hold reserved nothing
 * already.
 */
PG_FUNCTION_INFO_V1(ledger_expire_holds);
Datum
ledger_expire_holds(PG_FUNCTION_ARGS)
{
	Datum		values[2];
	LedgerItem *items;
	int			rows;
	int64		expired = 0;

	SPI_connect();
	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[1] = Int64GetDatum(EXPIRE_BATCH);
	rows = ledger_execute(STMT_DUE_HOLDS, values, NULL, false);
	/* outside SPI's memory, which SPI_finish frees */
	items = SPI_palloc(sizeof(LedgerItem) * Max(rows, 1));
	memset(items, 0, sizeof(LedgerItem) * Max(rows, 1));
	for (int row = 0; row < rows; row++)
	{
		items[row].op = LEDGER_EXPIRE;
		if (!ledger_get_int64(row, 1, &items[row].hold_id))
			elog(ERROR, "ledger: a pending hold without an id");
	}
	SPI_finish();

	if (rows > 0)
		ledger_post_items(items, rows, false);
	for (int i = 0; i < rows; i++)
		expired += items[i].refusal == LEDGER_ACCEPTED && items[i].result != 0;
	PG_RETURN_INT64(expired);
}

/*
 * ledger_balance_at(account text, at timestamptz) RETURNS bigint
 *
 * The balance after the account's last journal entry created at or before
 * at; 0 before the first.
 */
PG_FUNCTION_INFO_V1(ledger_balance_at);
Datum
ledger_balance_at(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	Datum		values[2];
	int64		balance = 0;

	ledger_require_not_null(fcinfo, 1, "at");
	SPI_connect();
	values[0] = Int64GetDatum(ledger_find_account(name));
	values[1] = PG_GETARG_DATUM(1);
	if (ledger_execute(STMT_BALANCE_AT, values, NULL, true) == 1 &&
		!ledger_get_int64(0, 1, &balance))
		elog(ERROR, "ledger: a journal entry with a NULL balance");
	SPI_finish();
	PG_RETURN_INT64(balance);
}
