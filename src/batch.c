/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  ledger_debit_batch and ledger_transfer_batch: many postings, one
 *	  transaction, one synchronous commit, one status per item.
 *
 * A batch runs in three phases:
 *
 *	1. lock every account the batch names, in one statement, in account_id
 *	   order (so concurrent batches queue instead of deadlocking), and read
 *	   the idempotency keys the batch uses;
 *	2. apply the items in order, in memory, against the locked balances:
 *	   each item gets "ok" or the condition name of the rule it breaks, and
 *	   a refused item changes nothing, so no subtransactions are needed;
 *	3. write everything: balances, transfers, journal entries and keys, one
 *	   statement each.
 *
 * Keys are claimed last; if a concurrent transaction committed one of them
 * between phases 1 and 3 the batch fails with 40001 and the client
 * retries it (the retry replays that key).  Single postings wait and
 * replay instead; a batch cannot, because later items may depend on it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "ledger.h"

#define NAME_KEY_SIZE	(LEDGER_MAX_NAME_BYTES + 1)

/* Most items in one batch: far beyond one transaction's sensible size, and
 * well inside what one allocation can hold. */
#define LEDGER_MAX_BATCH_ITEMS	1000000

/* One locked account, keyed by name. */
typedef struct BatchAccount
{
	char		name[NAME_KEY_SIZE];
	int64		account_id;
	int64		balance;
	bool		has_floor;
	int64		min_balance;
	char	   *currency;
	ItemPointerData ctid;		/* of the row version we locked */
	bool		touched;
} BatchAccount;

/* A used idempotency key: committed before, or claimed by this batch. */
typedef struct BatchKey
{
	char		key[NAME_KEY_SIZE];
	const char *operation;
	const char *account;
	const char *counter_account;
	int64		amount;
	int64		result;
	int			transfer_index; /* >= 0: result is that transfer's id */
} BatchKey;

/* A growable column of values for one unnest() argument. */
typedef struct Column
{
	Datum	   *values;
	bool	   *nulls;
	int			count;
	int			capacity;
} Column;

/* Everything phase 3 writes. */
typedef struct BatchWrites
{
	Column		entry_account;
	Column		entry_amount;
	Column		entry_balance;
	Column		entry_transfer; /* index into the transfers until ids are drawn */
	Column		entry_key;
	Column		transfer_from;
	Column		transfer_to;
	Column		transfer_amount;
	Column		transfer_key;
	Column		key_key;
	Column		key_operation;
	Column		key_account;
	Column		key_counter;
	Column		key_amount;
	Column		key_result;
	BatchKey  **claimed;		/* parallel to key_*, to fill in transfer ids */
} BatchWrites;

/* The input of one batch call. */
typedef struct BatchInput
{
	int			nitems;
	Datum	   *from;			/* the account, or the transfer's from account */
	Datum	   *to;				/* NULL for a debit batch */
	Datum	   *amounts;
	Datum	   *keys;			/* NULL when no keys were passed */
	bool	   *key_nulls;
} BatchInput;

static void column_push(Column *column, Datum value, bool isnull);
static ArrayType *column_array(Column *column, Oid elmtype);
static Datum *array_argument(FunctionCallInfo fcinfo, int argno,
							 const char *argname, Oid elmtype,
							 bool allow_null_elements, bool **nulls,
							 int *nitems);
static void read_input(FunctionCallInfo fcinfo, bool is_transfer,
					   BatchInput *input);
static bool lock_accounts_directly(const BatchInput *input, HTAB *accounts);
static HTAB *lock_accounts(const BatchInput *input);
static HTAB *read_keys(const BatchInput *input);
static const char *name_of(Datum name);
static HTAB *name_table(const char *what, Size entrysize, long nelem);
static const char *post_item(const BatchInput *input, int i, HTAB *accounts,
							 HTAB *keys, BatchWrites *writes, int64 *result,
							 int *transfer_index);
static void write_batch(HTAB *accounts, BatchWrites *writes, int64 *transfer_ids);
static Datum run_batch(FunctionCallInfo fcinfo, bool is_transfer);

static void
column_push(Column *column, Datum value, bool isnull)
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

static ArrayType *
column_array(Column *column, Oid elmtype)
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
 * A one-dimensional array argument; 22004 if it is NULL or (unless
 * allowed) has a NULL element, 22023 if it has more dimensions.
 */
static Datum *
array_argument(FunctionCallInfo fcinfo, int argno, const char *argname,
			   Oid elmtype, bool allow_null_elements, bool **nulls, int *nitems)
{
	ArrayType  *array;
	Datum	   *elems;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	ledger_require_not_null(fcinfo, argno, argname);
	array = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", argname)));

	get_typlenbyvalalign(elmtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elmtype, typlen, typbyval, typalign,
					  &elems, nulls, nitems);
	if (!allow_null_elements)
	{
		for (int i = 0; i < *nitems; i++)
			if ((*nulls)[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("%s must not contain nulls", argname),
						 errdetail("Element %d is null.", i + 1)));
	}
	return elems;
}

static void
read_input(FunctionCallInfo fcinfo, bool is_transfer, BatchInput *input)
{
	bool	   *nulls;
	int			n;
	int			argno = 0;
	const char *first_name = is_transfer ? "from_accounts" : "accounts";

	input->from = array_argument(fcinfo, argno++, first_name, TEXTOID,
								 false, &nulls, &input->nitems);
	if (input->nitems > LEDGER_MAX_BATCH_ITEMS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a batch holds at most %d items", LEDGER_MAX_BATCH_ITEMS),
				 errdetail("This batch has %d items.", input->nitems),
				 errhint("Split it into several batches.")));
	input->to = NULL;
	if (is_transfer)
	{
		input->to = array_argument(fcinfo, argno++, "to_accounts", TEXTOID,
								   false, &nulls, &n);
		if (n != input->nitems)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("to_accounts has %d elements but from_accounts has %d",
							n, input->nitems),
					 errhint("Every array of a batch has one element per item.")));
	}
	input->amounts = array_argument(fcinfo, argno++, "amounts", INT8OID,
									false, &nulls, &n);
	if (n != input->nitems)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amounts has %d elements but %s has %d",
						n, first_name, input->nitems),
				 errhint("Every array of a batch has one element per item.")));

	/* keys are optional, as a whole and per item */
	input->keys = NULL;
	input->key_nulls = NULL;
	if (!PG_ARGISNULL(argno))
	{
		input->keys = array_argument(fcinfo, argno, "idempotency_keys", TEXTOID,
									 true, &input->key_nulls, &n);
		if (n != input->nitems)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idempotency_keys has %d elements but %s has %d",
							n, first_name, input->nitems),
					 errhint("Pass NULL for no keys, or one key (or NULL) per item.")));
	}
}

/* A validated name as a C string, or NULL if it is not 1 to 255 bytes. */
static const char *
name_of(Datum name)
{
	text	   *t = DatumGetTextPP(name);
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len < 1 || len > LEDGER_MAX_NAME_BYTES)
		return NULL;
	return text_to_cstring(t);
}

/*
 * A hash table in the current (SPI) memory context whose entries start
 * with a name or key of up to 255 bytes, NUL-terminated.
 */
static HTAB *
name_table(const char *what, Size entrysize, long nelem)
{
	HASHCTL		ctl;

	ctl.keysize = NAME_KEY_SIZE;
	ctl.entrysize = entrysize;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(what, Max(nelem, 16), &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/*
 * Phase 1a without the executor (direct_write.c): the distinct valid names
 * of the batch, locked, into accounts.  False if the SQL statement must
 * do it (accounts is then still empty).
 */
static bool
lock_accounts_directly(const BatchInput *input, HTAB *accounts)
{
	int			max_names = input->nitems * (input->to != NULL ? 2 : 1);
	text	  **names = palloc(sizeof(text *) * max_names);
	BatchAccount **entries = palloc(sizeof(BatchAccount *) * max_names);
	LedgerLockedRow *locked;
	int			count = 0;

	for (int i = 0; i < max_names; i++)
	{
		Datum		datum = (input->to == NULL) ? input->from[i] :
			(i % 2 == 0 ? input->from[i / 2] : input->to[i / 2]);
		const char *name = name_of(datum);
		BatchAccount *account;
		bool		seen;

		if (name == NULL)
			continue;
		account = hash_search(accounts, name, HASH_ENTER, &seen);
		pfree((char *) name);	/* the table keeps its own copy */
		if (seen)
			continue;
		names[count] = DatumGetTextPP(datum);
		entries[count] = account;
		count++;
	}

	locked = palloc(sizeof(LedgerLockedRow) * Max(count, 1));
	if (!ledger_direct_lock_accounts(count, names, locked))
	{
		for (int k = 0; k < count; k++)
			hash_search(accounts, entries[k]->name, HASH_REMOVE, NULL);
		return false;
	}

	for (int k = 0; k < count; k++)
	{
		BatchAccount *account = entries[k];

		if (!locked[k].found)
		{
			hash_search(accounts, account->name, HASH_REMOVE, NULL);
			continue;
		}
		account->account_id = locked[k].account_id;
		account->balance = locked[k].balance;
		account->has_floor = locked[k].has_floor;
		account->min_balance = locked[k].min_balance;
		account->currency = locked[k].currency;
		account->ctid = locked[k].ctid;
		account->touched = false;
	}
	return true;
}

/*
 * Phase 1a: lock every account the batch names, in account_id order.
 */
static HTAB *
lock_accounts(const BatchInput *input)
{
	HTAB	   *accounts = name_table("ledger batch accounts", sizeof(BatchAccount),
									  input->nitems);
	Column		names = {0};
	Datum		values[1];
	int			rows;

	if (lock_accounts_directly(input, accounts))
		return accounts;

	for (int i = 0; i < input->nitems; i++)
	{
		column_push(&names, input->from[i], false);
		if (input->to != NULL)
			column_push(&names, input->to[i], false);
	}
	values[0] = PointerGetDatum(column_array(&names, TEXTOID));
	rows = ledger_execute(STMT_LOCK_ACCOUNTS, values, NULL, false);

	for (int row = 0; row < rows; row++)
	{
		char	   *name = ledger_get_cstring(row, 5);
		BatchAccount *account;
		bool		isnull;

		account = hash_search(accounts, name, HASH_ENTER, NULL);
		if (!ledger_get_int64(row, 1, &account->account_id) ||
			!ledger_get_int64(row, 2, &account->balance))
			elog(ERROR, "ledger: account row has a NULL id or balance");
		account->has_floor = ledger_get_int64(row, 3, &account->min_balance);
		account->currency = ledger_get_cstring(row, 4);
		account->ctid = *(ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[row],
														   SPI_tuptable->tupdesc, 6,
														   &isnull));
		account->touched = false;
	}
	return accounts;
}

/*
 * Phase 1b: the committed idempotency keys among the batch's keys.  Runs
 * after the locks, like a single posting's replay, so it sees keys that
 * committed while we waited.
 */
static HTAB *
read_keys(const BatchInput *input)
{
	HTAB	   *keys = name_table("ledger batch keys", sizeof(BatchKey), 16);
	Column		wanted = {0};
	Datum		values[1];
	int			rows;
	if (input->keys == NULL)
		return keys;

	for (int i = 0; i < input->nitems; i++)
		if (!input->key_nulls[i])
			column_push(&wanted, input->keys[i], false);
	if (wanted.count == 0)
		return keys;

	values[0] = PointerGetDatum(column_array(&wanted, TEXTOID));
	rows = ledger_execute(STMT_FIND_KEYS, values, NULL, false);
	for (int row = 0; row < rows; row++)
	{
		char	   *key = ledger_get_cstring(row, 1);
		BatchKey   *stored = hash_search(keys, key, HASH_ENTER, NULL);

		stored->operation = ledger_get_cstring(row, 2);
		stored->account = ledger_get_cstring(row, 3);
		stored->counter_account = ledger_get_cstring(row, 4);
		if (!ledger_get_int64(row, 5, &stored->amount) ||
			!ledger_get_int64(row, 6, &stored->result))
			elog(ERROR, "ledger: idempotency key row has NULL amount or result");
		stored->transfer_index = -1;
	}
	return keys;
}

/*
 * Phase 2, one item: check it against the locked balances and, if it
 * passes, apply it in memory and queue its writes.  Returns the status:
 * "ok" or the condition name of ARCHITECTURE §4.  *result gets the new
 * balance (debits) and *transfer_index the position of a new transfer
 * whose id is drawn later (-1 if the result is already known).
 */
static const char *
post_item(const BatchInput *input, int i, HTAB *accounts, HTAB *keys,
		  BatchWrites *writes, int64 *result, int *transfer_index)
{
	bool		is_transfer = (input->to != NULL);
	const char *operation = is_transfer ? "transfer" : "debit";
	const char *from_name = name_of(input->from[i]);
	const char *to_name = is_transfer ? name_of(input->to[i]) : NULL;
	int64		amount = DatumGetInt64(input->amounts[i]);
	const char *key = NULL;
	BatchAccount *from;
	BatchAccount *to = NULL;
	BatchKey   *stored;
	int64		from_balance;
	int64		to_balance = 0;
	Datum		key_datum = (Datum) 0;

	*transfer_index = -1;

	if (from_name == NULL || (is_transfer && to_name == NULL) || amount <= 0)
		return "invalid_parameter_value";
	if (input->keys != NULL && !input->key_nulls[i])
	{
		key_datum = input->keys[i];
		key = name_of(key_datum);
		if (key == NULL)
			return "invalid_parameter_value";
	}
	if (is_transfer && strcmp(from_name, to_name) == 0)
		return "invalid_parameter_value";

	from = hash_search(accounts, from_name, HASH_FIND, NULL);
	if (is_transfer)
		to = hash_search(accounts, to_name, HASH_FIND, NULL);
	if (from == NULL || (is_transfer && to == NULL))
		return "account_not_found";

	/* a used key replays (the same request) or conflicts (another one) */
	if (key != NULL &&
		(stored = hash_search(keys, key, HASH_FIND, NULL)) != NULL)
	{
		if (!ledger_same_request(stored->operation, stored->account,
								 stored->counter_account, stored->amount,
								 operation, from_name, to_name, amount))
			return "idempotency_conflict";
		*result = stored->result;
		*transfer_index = stored->transfer_index;
		return "ok";
	}

	if (is_transfer && strcmp(from->currency, to->currency) != 0)
		return "currency_mismatch";

	if (pg_sub_s64_overflow(from->balance, amount, &from_balance))
		return from->has_floor ? "insufficient_funds" : "numeric_value_out_of_range";
	if (from->has_floor && from_balance < from->min_balance)
		return "insufficient_funds";
	if (is_transfer && pg_add_s64_overflow(to->balance, amount, &to_balance))
		return "numeric_value_out_of_range";

	/* the item passes: apply it and queue its writes */
	from->balance = from_balance;
	from->touched = true;
	column_push(&writes->entry_account, Int64GetDatum(from->account_id), false);
	column_push(&writes->entry_amount, Int64GetDatum(-amount), false);
	column_push(&writes->entry_balance, Int64GetDatum(from_balance), false);
	column_push(&writes->entry_key, key_datum, key == NULL);

	if (is_transfer)
	{
		*transfer_index = writes->transfer_from.count;
		column_push(&writes->entry_transfer, Int32GetDatum(*transfer_index), false);

		to->balance = to_balance;
		to->touched = true;
		column_push(&writes->entry_account, Int64GetDatum(to->account_id), false);
		column_push(&writes->entry_amount, Int64GetDatum(amount), false);
		column_push(&writes->entry_balance, Int64GetDatum(to_balance), false);
		column_push(&writes->entry_transfer, Int32GetDatum(*transfer_index), false);
		column_push(&writes->entry_key, key_datum, key == NULL);

		column_push(&writes->transfer_from, Int64GetDatum(from->account_id), false);
		column_push(&writes->transfer_to, Int64GetDatum(to->account_id), false);
		column_push(&writes->transfer_amount, Int64GetDatum(amount), false);
		column_push(&writes->transfer_key, key_datum, key == NULL);
	}
	else
	{
		column_push(&writes->entry_transfer, (Datum) 0, true);
		*result = from_balance;
	}

	if (key != NULL)
	{
		stored = hash_search(keys, key, HASH_ENTER, NULL);
		stored->operation = operation;
		stored->account = from_name;
		stored->counter_account = to_name;
		stored->amount = amount;
		stored->result = is_transfer ? 0 : from_balance;
		stored->transfer_index = *transfer_index;

		column_push(&writes->key_key, key_datum, false);
		column_push(&writes->key_operation, CStringGetTextDatum(operation), false);
		column_push(&writes->key_account, input->from[i], false);
		column_push(&writes->key_counter, is_transfer ? input->to[i] : (Datum) 0,
					!is_transfer);
		column_push(&writes->key_amount, Int64GetDatum(amount), false);
		column_push(&writes->key_result, Int64GetDatum(stored->result), false);
		if (writes->claimed == NULL)
			writes->claimed = palloc(sizeof(BatchKey *) * input->nitems);
		writes->claimed[writes->key_key.count - 1] = stored;
	}
	return "ok";
}

/*
 * Phase 3: write the balances, transfers, entries and keys.
 */
static void
write_batch(HTAB *accounts, BatchWrites *writes, int64 *transfer_ids)
{
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS scan;
	BatchAccount *account;
	Datum		values[6];

	ItemPointerData *ctids;
	int64	   *new_balances;
	int			touched = 0;

	ctids = palloc(sizeof(ItemPointerData) * hash_get_num_entries(accounts));
	new_balances = palloc(sizeof(int64) * hash_get_num_entries(accounts));
	hash_seq_init(&scan, accounts);
	while ((account = hash_seq_search(&scan)) != NULL)
	{
		if (!account->touched)
			continue;
		ctids[touched] = account->ctid;
		new_balances[touched] = account->balance;
		touched++;
	}
	if (touched == 0)
		return;

	/* keys first: a key committed concurrently makes the whole batch retry */
	if (writes->key_key.count > 0)
	{
		for (int k = 0; k < writes->key_key.count; k++)
			if (writes->claimed[k]->transfer_index >= 0)
				writes->key_result.values[k] =
					Int64GetDatum(transfer_ids[writes->claimed[k]->transfer_index]);

		values[0] = PointerGetDatum(column_array(&writes->key_key, TEXTOID));
		values[1] = PointerGetDatum(column_array(&writes->key_operation, TEXTOID));
		values[2] = PointerGetDatum(column_array(&writes->key_account, TEXTOID));
		values[3] = PointerGetDatum(column_array(&writes->key_counter, TEXTOID));
		values[4] = PointerGetDatum(column_array(&writes->key_amount, INT8OID));
		values[5] = PointerGetDatum(column_array(&writes->key_result, INT8OID));
		if (ledger_execute(STMT_CLAIM_KEYS, values, NULL, false) != writes->key_key.count)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("an idempotency key of this batch was used concurrently"),
					 errhint("Retry the batch: items whose key is now used will replay.")));
	}

	if (!ledger_bulk_set_balances(touched, ctids, new_balances))
	{
		Column		ids = {0};
		Column		balances = {0};

		for (int a = 0; a < touched; a++)
		{
			column_push(&ids, PointerGetDatum(&ctids[a]), false);
			column_push(&balances, Int64GetDatum(new_balances[a]), false);
		}
		values[0] = PointerGetDatum(column_array(&ids, TIDOID));
		values[1] = PointerGetDatum(column_array(&balances, INT8OID));
		if (ledger_execute(STMT_UPDATE_BALANCES, values, NULL, false) != touched)
			elog(ERROR, "ledger: a locked account row moved during the batch");
	}

	if (writes->transfer_from.count > 0)
	{
		Column		transfer_id = {0};

		for (int t = 0; t < writes->transfer_from.count; t++)
			column_push(&transfer_id, Int64GetDatum(transfer_ids[t]), false);
		values[0] = PointerGetDatum(column_array(&transfer_id, INT8OID));
		values[1] = PointerGetDatum(column_array(&writes->transfer_from, INT8OID));
		values[2] = PointerGetDatum(column_array(&writes->transfer_to, INT8OID));
		values[3] = PointerGetDatum(column_array(&writes->transfer_amount, INT8OID));
		values[4] = PointerGetDatum(column_array(&writes->transfer_key, TEXTOID));
		values[5] = TimestampTzGetDatum(now);
		ledger_execute(STMT_INSERT_TRANSFERS, values, NULL, false);

		/* entries of transfers carry the transfer's index until now */
		for (int e = 0; e < writes->entry_transfer.count; e++)
			if (!writes->entry_transfer.nulls[e])
				writes->entry_transfer.values[e] =
					Int64GetDatum(transfer_ids[DatumGetInt32(writes->entry_transfer.values[e])]);
	}

	if (!ledger_bulk_append_entries(writes->entry_account.count,
									writes->entry_account.values,
									writes->entry_amount.values,
									writes->entry_balance.values,
									writes->entry_transfer.values,
									writes->entry_transfer.nulls,
									writes->entry_key.values,
									writes->entry_key.nulls, now))
	{
		values[0] = PointerGetDatum(column_array(&writes->entry_account, INT8OID));
		values[1] = PointerGetDatum(column_array(&writes->entry_amount, INT8OID));
		values[2] = PointerGetDatum(column_array(&writes->entry_balance, INT8OID));
		values[3] = PointerGetDatum(column_array(&writes->entry_transfer, INT8OID));
		values[4] = PointerGetDatum(column_array(&writes->entry_key, TEXTOID));
		values[5] = TimestampTzGetDatum(now);
		ledger_execute(STMT_INSERT_ENTRIES, values, NULL, false);
	}
}

static Datum
run_batch(FunctionCallInfo fcinfo, bool is_transfer)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BatchInput	input;
	BatchWrites writes;
	HTAB	   *accounts;
	HTAB	   *keys;
	const char **statuses;
	int64	   *results;
	int		   *transfer_index;
	int64	   *transfer_ids = NULL;

	read_input(fcinfo, is_transfer, &input);
	InitMaterializedSRF(fcinfo, 0);
	if (input.nitems == 0)
		return (Datum) 0;

	ledger_prepare_write();
	SPI_connect();

	accounts = lock_accounts(&input);
	keys = read_keys(&input);

	memset(&writes, 0, sizeof(writes));
	statuses = palloc(sizeof(char *) * input.nitems);
	results = palloc(sizeof(int64) * input.nitems);
	transfer_index = palloc(sizeof(int) * input.nitems);
	for (int i = 0; i < input.nitems; i++)
		statuses[i] = post_item(&input, i, accounts, keys, &writes,
								&results[i], &transfer_index[i]);

	if (writes.transfer_from.count > 0)
	{
		Datum		values[1] = {Int64GetDatum(writes.transfer_from.count)};
		int			rows = ledger_execute(STMT_NEXT_TRANSFER_IDS, values, NULL, false);

		transfer_ids = palloc(sizeof(int64) * rows);
		for (int row = 0; row < rows; row++)
			if (!ledger_get_int64(row, 1, &transfer_ids[row]))
				elog(ERROR, "ledger: could not draw a transfer id");
	}
	write_batch(accounts, &writes, transfer_ids);

	for (int i = 0; i < input.nitems; i++)
	{
		Datum		out[3];
		bool		isnull[3] = {false, false, false};
		bool		ok = (strcmp(statuses[i], "ok") == 0);

		out[0] = Int32GetDatum(i + 1);
		out[1] = CStringGetTextDatum(statuses[i]);
		if (ok && transfer_index[i] >= 0)
			out[2] = Int64GetDatum(transfer_ids[transfer_index[i]]);
		else
			out[2] = Int64GetDatum(results[i]);
		isnull[2] = !ok;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, isnull);
	}
	SPI_finish();

	return (Datum) 0;
}

/*
 * ledger_debit_batch(accounts text[], amounts bigint[],
 *					  idempotency_keys text[] DEFAULT NULL)
 *	 RETURNS TABLE(ordinal int, status text, result bigint)
 *
 * Debits in order, one status per item; result is the new balance.
 * Locks: every named account row, FOR UPDATE, in account_id order.
 */
PG_FUNCTION_INFO_V1(ledger_debit_batch);
Datum
ledger_debit_batch(PG_FUNCTION_ARGS)
{
	return run_batch(fcinfo, false);
}

/*
 * ledger_transfer_batch(from_accounts text[], to_accounts text[],
 *						 amounts bigint[], idempotency_keys text[] DEFAULT NULL)
 *	 RETURNS TABLE(ordinal int, status text, result bigint)
 *
 * Transfers in order, one status per item; result is the transfer id.
 * Locks: every named account row, FOR UPDATE, in account_id order.
 */
PG_FUNCTION_INFO_V1(ledger_transfer_batch);
Datum
ledger_transfer_batch(PG_FUNCTION_ARGS)
{
	return run_batch(fcinfo, true);
}
