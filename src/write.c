/*-------------------------------------------------------------------------
 *
 * write.c
 *	  The writes of a decided posting (posting.c): new balances (and held
 *	  amounts), transfer rows and journal entries, each written directly
 *	  through the table access method (direct_write.c) or, when a table
 *	  needs what only a statement does (a trigger, a rule, row-level
 *	  security...), through SQL; both write the same rows.  Holds and their
 *	  ends are written through SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "ledger.h"

void
ledger_column_push(LedgerColumn *column, Datum value, bool isnull)
{
	if (column->count == column->capacity)
	{
		column->capacity = Max(16, column->capacity * 2);
		if (column->values == NULL)
		{
			column->values = palloc(sizeof(Datum) * column->capacity);
			column->nulls = palloc(sizeof(bool) * column->capacity);
		}
		else
		{
			column->values = repalloc(column->values, sizeof(Datum) * column->capacity);
			column->nulls = repalloc(column->nulls, sizeof(bool) * column->capacity);
		}
	}
	column->values[column->count] = value;
	column->nulls[column->count] = isnull;
	column->count++;
}

/* A column as a one-dimensional array, for a statement's parameter. */
ArrayType *
ledger_column_array(LedgerColumn *column, Oid elmtype)
{
	int			dims[1] = {column->count};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elmtype, &typlen, &typbyval, &typalign);
	return construct_md_array(column->values, column->nulls, 1, dims, lbs,
							  elmtype, typlen, typbyval, typalign);
}

/*
 * count new ids of a sequence (of transfers or of holds).  Drawn before
 * anything is written, because a key is claimed with the id it replays.
 */
int64 *
ledger_next_ids(Oid sequence, int count)
{
	int64	   *ids = palloc(sizeof(int64) * count);

	if (!OidIsValid(sequence))
		elog(ERROR, "ledger: an id sequence is missing");
	for (int i = 0; i < count; i++)
		ids[i] = nextval_internal(sequence, false);
	return ids;
}

/* The new balances and held amounts of the touched accounts. */
static void
write_balances(LedgerAccount *accounts, int naccounts)
{
	const LedgerAccount **touched = palloc(sizeof(LedgerAccount *) * Max(naccounts, 1));
	LedgerColumn ctids = {0};
	LedgerColumn balances = {0};
	LedgerColumn held = {0};
	int			count = 0;
	Datum		values[3];

	for (int a = 0; a < naccounts; a++)
		if (accounts[a].touched)
			touched[count++] = &accounts[a];
	if (count == 0 || ledger_direct_set_balances(count, touched))
		return;
	for (int a = 0; a < count; a++)
	{
		ledger_column_push(&ctids, PointerGetDatum(&touched[a]->ctid), false);
		ledger_column_push(&balances, Int64GetDatum(ledger_stored_balance(touched[a])), false);
		ledger_column_push(&held, Int64GetDatum(touched[a]->held), false);
	}
	values[0] = PointerGetDatum(ledger_column_array(&ctids, TIDOID));
	values[1] = PointerGetDatum(ledger_column_array(&balances, INT8OID));
	values[2] = PointerGetDatum(ledger_column_array(&held, INT8OID));
	if (ledger_execute(STMT_UPDATE_BALANCES, values, NULL, false) != count)
		elog(ERROR, "ledger: a locked account row moved during the posting");
}

/* The transfer rows, with the ids drawn for them. */
static void
write_transfers(LedgerWrites *writes, const int64 *transfer_ids, TimestampTz now)
{
	LedgerColumn ids = {0};
	Datum		values[6];

	if (writes->transfer_from.count == 0 ||
		ledger_direct_append_transfers(writes, transfer_ids, now))
		return;
	for (int t = 0; t < writes->transfer_from.count; t++)
		ledger_column_push(&ids, Int64GetDatum(transfer_ids[t]), false);
	values[0] = PointerGetDatum(ledger_column_array(&ids, INT8OID));
	values[1] = PointerGetDatum(ledger_column_array(&writes->transfer_from, INT8OID));
	values[2] = PointerGetDatum(ledger_column_array(&writes->transfer_to, INT8OID));
	values[3] = PointerGetDatum(ledger_column_array(&writes->transfer_amount, INT8OID));
	values[4] = PointerGetDatum(ledger_column_array(&writes->transfer_key, TEXTOID));
	values[5] = TimestampTzGetDatum(now);
	ledger_execute(STMT_INSERT_TRANSFERS, values, NULL, false);
}

/* The journal entries, in the order the items were decided. */
static void
write_entries(LedgerWrites *writes, TimestampTz now)
{
	Datum		values[9];

	if (writes->entry_account.count == 0 || ledger_direct_append_entries(writes, now))
		return;
	values[0] = PointerGetDatum(ledger_column_array(&writes->entry_account, INT8OID));
	values[1] = PointerGetDatum(ledger_column_array(&writes->entry_amount, INT8OID));
	values[2] = PointerGetDatum(ledger_column_array(&writes->entry_balance, INT8OID));
	values[3] = PointerGetDatum(ledger_column_array(&writes->entry_transfer, INT8OID));
	values[4] = PointerGetDatum(ledger_column_array(&writes->entry_key, TEXTOID));
	values[5] = PointerGetDatum(ledger_column_array(&writes->entry_hold, INT8OID));
	values[6] = TimestampTzGetDatum(now);
	values[7] = PointerGetDatum(ledger_column_array(&writes->entry_id, INT8OID));
	values[8] = PointerGetDatum(ledger_column_array(&writes->entry_created, TIMESTAMPTZOID));
	ledger_execute(STMT_INSERT_ENTRIES, values, NULL, false);
}

/* New holds, with the ids drawn for them; they start pending. */
static void
write_holds(LedgerWrites *writes, const int64 *hold_ids, TimestampTz now)
{
	LedgerColumn ids = {0};
	Datum		values[6];

	if (writes->hold_account.count == 0)
		return;
	for (int h = 0; h < writes->hold_account.count; h++)
		ledger_column_push(&ids, Int64GetDatum(hold_ids[h]), false);
	values[0] = PointerGetDatum(ledger_column_array(&ids, INT8OID));
	values[1] = PointerGetDatum(ledger_column_array(&writes->hold_account, INT8OID));
	values[2] = PointerGetDatum(ledger_column_array(&writes->hold_amount, INT8OID));
	values[3] = PointerGetDatum(ledger_column_array(&writes->hold_expires, TIMESTAMPTZOID));
	values[4] = PointerGetDatum(ledger_column_array(&writes->hold_key, TEXTOID));
	values[5] = TimestampTzGetDatum(now);
	ledger_execute(STMT_INSERT_HOLDS, values, NULL, false);
}

/* The ends of holds: they leave the pending ones. */
static void
write_hold_ends(LedgerWrites *writes, const int64 *transfer_ids, TimestampTz now)
{
	LedgerColumn *transfer = &writes->end_transfer;
	Datum		values[7];

	if (writes->end_hold.count == 0)
		return;
	for (int e = 0; e < transfer->count; e++)
		if (!transfer->nulls[e])
			transfer->values[e] = Int64GetDatum(transfer_ids[DatumGetInt32(transfer->values[e])]);
	values[0] = PointerGetDatum(ledger_column_array(&writes->end_hold, INT8OID));
	values[1] = PointerGetDatum(ledger_column_array(&writes->end_status, TEXTOID));
	values[2] = PointerGetDatum(ledger_column_array(&writes->end_captured, INT8OID));
	values[3] = PointerGetDatum(ledger_column_array(&writes->end_to, INT8OID));
	values[4] = PointerGetDatum(ledger_column_array(transfer, INT8OID));
	values[5] = PointerGetDatum(ledger_column_array(&writes->end_result, INT8OID));
	values[6] = TimestampTzGetDatum(now);
	ledger_execute(STMT_END_HOLDS, values, NULL, false);
}

/*
 * Write a decided posting: the balances of the touched accounts (whose
 * rows the caller holds locked), the transfers, the entries, the holds and
 * the holds' ends.  Entries and ends of transfers carry the transfer's
 * index until here.  Every row is stamped with now, the clock the posting
 * was decided by, so that a hold's expiry is exactly its expires_in after
 * its created_at.
 */
void
ledger_write(LedgerAccount *accounts, int naccounts, LedgerWrites *writes,
			 const int64 *transfer_ids, const int64 *hold_ids, TimestampTz now)
{
	for (int e = 0; e < writes->entry_transfer.count; e++)
		if (!writes->entry_transfer.nulls[e])
			writes->entry_transfer.values[e] =
				Int64GetDatum(transfer_ids[DatumGetInt32(writes->entry_transfer.values[e])]);

	write_balances(accounts, naccounts);
	write_transfers(writes, transfer_ids, now);
	write_entries(writes, now);
	write_holds(writes, hold_ids, now);
	write_hold_ends(writes, transfer_ids, now);
}
