/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  Idempotency keys: one key, one operation, replayed forever.
 *
 * The keys of a posting (posting.c) are read after its accounts are locked,
 * so a call that queued on the same lock as an earlier call with the same
 * key sees that one's commit (READ COMMITTED takes a new snapshot per
 * statement) and replays it instead of failing a rule that no longer
 * holds, e.g. insufficient funds.  Whether a stored key replays the
 * request or conflicts with it is ledger_rule_replay's decision (rules.c).
 *
 * The keys a posting uses are claimed last, before anything else is
 * written, with INSERT ... ON CONFLICT DO NOTHING: the unique index makes
 * a concurrent holder of the same key wait for us, and a key a concurrent
 * transaction committed meanwhile comes back as not claimed.
 *
 * A call that fails rolls its keys back with everything else, so a key
 * stays unused and a retry is evaluated afresh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ledger.h"

/* The keys of one posting: those stored before, then those it claims. */
struct LedgerKeys
{
	LedgerNameIndex *index;		/* key -> position in stored */
	LedgerStoredKey *stored;
	int			count;
	int			capacity;
	int			first_claimed;	/* stored[first_claimed..] are claimed here */
};

static LedgerOperation
operation_of(const char *name)
{
	if (strcmp(name, "credit") == 0)
		return LEDGER_CREDIT;
	if (strcmp(name, "debit") == 0)
		return LEDGER_DEBIT;
	if (strcmp(name, "transfer") == 0)
		return LEDGER_TRANSFER;
	if (strcmp(name, "hold") == 0)
		return LEDGER_HOLD;
	elog(ERROR, "ledger: idempotency key with unknown operation \"%s\"", name);
	return LEDGER_CREDIT;		/* not reached */
}

static LedgerStoredKey *
append(LedgerKeys *keys, text *key)
{
	LedgerStoredKey *stored;

	if (keys->count == keys->capacity)
	{
		keys->capacity = Max(8, keys->capacity * 2);
		keys->stored = keys->stored == NULL
			? palloc(sizeof(LedgerStoredKey) * keys->capacity)
			: repalloc(keys->stored, sizeof(LedgerStoredKey) * keys->capacity);
	}
	ledger_names_add(keys->index, key, keys->count);
	stored = &keys->stored[keys->count++];
	stored->transfer_index = -1;
	stored->escrow = false;
	stored->hold_index = -1;
	stored->expires_in = NULL;
	return stored;
}

/*
 * The stored keys among the keys of these items (valid ones only; the
 * items of one posting may share keys).  Reads with a fresh snapshot, so
 * under READ COMMITTED it sees keys committed while we waited for a lock.
 */
LedgerKeys *
ledger_keys_read(const LedgerItem *items, int nitems)
{
	LedgerKeys *keys = palloc0(sizeof(LedgerKeys));
	LedgerColumn wanted = {0};
	Datum		values[1];
	int			rows;

	keys->index = ledger_names_create(nitems);
	for (int i = 0; i < nitems; i++)
		if (items[i].key != NULL && items[i].refusal == LEDGER_ACCEPTED)
			ledger_column_push(&wanted, PointerGetDatum(items[i].key), false);
	if (wanted.count == 0)
		return keys;

	if (wanted.count == 1)
	{
		values[0] = wanted.values[0];
		rows = ledger_execute(STMT_FIND_KEY, values, NULL, false);
	}
	else
	{
		values[0] = PointerGetDatum(ledger_column_array(&wanted, TEXTOID));
		rows = ledger_execute(STMT_FIND_KEYS, values, NULL, false);
	}
	for (int row = 0; row < rows; row++)
	{
		bool		isnull;
		text	   *key = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[row],
													   SPI_tuptable->tupdesc, 1, &isnull));
		LedgerStoredKey *stored;

		if (ledger_names_find(keys->index, key) >= 0)
			continue;
		stored = append(keys, key);
		stored->key = text_to_cstring(key);
		stored->op = operation_of(ledger_get_cstring(row, 2));
		stored->account = ledger_get_cstring(row, 3);
		stored->counter_account = ledger_get_cstring(row, 4);
		if (!ledger_get_int64(row, 5, &stored->amount) ||
			!ledger_get_int64(row, 6, &stored->result))
			elog(ERROR, "ledger: idempotency key row has NULL amount or result");
		{
			Datum		expires_in = SPI_getbinval(SPI_tuptable->vals[row],
												   SPI_tuptable->tupdesc, 7, &isnull);

			stored->expires_in = NULL;
			if (!isnull)
			{
				stored->expires_in = palloc(sizeof(Interval));
				*stored->expires_in = *DatumGetIntervalP(expires_in);
			}
		}
	}
	keys->first_claimed = keys->count;
	return keys;
}

/* The stored or claimed key, or NULL if it is unused. */
LedgerStoredKey *
ledger_keys_find(LedgerKeys *keys, text *key)
{
	int			position = ledger_names_find(keys->index, key);

	return position >= 0 ? &keys->stored[position] : NULL;
}

/*
 * Record that an accepted item claims its (unused) key; the caller sets
 * the result (a transfer's once its id is drawn: transfer_index).
 */
LedgerStoredKey *
ledger_keys_add(LedgerKeys *keys, const LedgerItem *item)
{
	LedgerStoredKey *stored = append(keys, item->key);

	stored->key = text_to_cstring(item->key);
	stored->op = item->op;
	stored->account = text_to_cstring(item->account);
	stored->counter_account = item->op == LEDGER_TRANSFER
		? text_to_cstring(item->to_account) : NULL;
	stored->amount = item->amount;
	stored->expires_in = item->expires_in;
	stored->result = 0;
	/* an escrow posting's result cannot be checked against balance_after */
	stored->escrow = (item->from != NULL && item->from->escrow_slot >= 0) ||
		(item->to != NULL && item->to->escrow_slot >= 0);
	return stored;
}

int
ledger_keys_claimed(LedgerKeys *keys)
{
	return keys->count - keys->first_claimed;
}

/*
 * Write the claimed keys, with their results (a new transfer's or hold's
 * result is its id: transfer_ids[transfer_index], hold_ids[hold_index]).
 * False when a concurrent transaction committed one of them first: nothing
 * useful was claimed, and the caller must not write its postings.
 */
bool
ledger_keys_claim(LedgerKeys *keys, const int64 *transfer_ids, const int64 *hold_ids)
{
	int			claimed = ledger_keys_claimed(keys);
	LedgerColumn columns[8] = {{0}};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	static const Oid types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INTERVALOID, BOOLOID};

	if (claimed == 0)
		return true;
	for (int k = keys->first_claimed; k < keys->count; k++)
	{
		LedgerStoredKey *stored = &keys->stored[k];

		if (stored->transfer_index >= 0 && stored->op == LEDGER_TRANSFER)
			stored->result = transfer_ids[stored->transfer_index];
		if (stored->hold_index >= 0)
			stored->result = hold_ids[stored->hold_index];
		ledger_column_push(&columns[0], CStringGetTextDatum(stored->key), false);
		ledger_column_push(&columns[1], CStringGetTextDatum(ledger_operation_name(stored->op)), false);
		ledger_column_push(&columns[2], CStringGetTextDatum(stored->account), false);
		ledger_column_push(&columns[3], stored->counter_account != NULL
						   ? CStringGetTextDatum(stored->counter_account) : (Datum) 0,
						   stored->counter_account == NULL);
		ledger_column_push(&columns[4], Int64GetDatum(stored->amount), false);
		ledger_column_push(&columns[5], Int64GetDatum(stored->result), false);
		ledger_column_push(&columns[6], IntervalPGetDatum(stored->expires_in),
						   stored->expires_in == NULL);
		ledger_column_push(&columns[7], BoolGetDatum(stored->escrow), false);
	}

	if (claimed == 1)
	{
		for (int c = 0; c < 8; c++)
		{
			values[c] = columns[c].values[0];
			nulls[c] = columns[c].nulls[0] ? 'n' : ' ';
		}
		return ledger_execute(STMT_CLAIM_KEY, values, nulls, false) == 1;
	}
	for (int c = 0; c < 8; c++)
		values[c] = PointerGetDatum(ledger_column_array(&columns[c], types[c]));
	return ledger_execute(STMT_CLAIM_KEYS, values, NULL, false) == claimed;
}
