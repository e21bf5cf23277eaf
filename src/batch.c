/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  ledger_debit_batch and ledger_transfer_batch: many postings, one
 *	  transaction, one synchronous commit, one status per item.
 *
 * The arrays become the items of one posting (posting.c), decided in
 * order by the same rules as single calls; each item's refusal is its
 * status, so a refused item changes nothing and does not stop the
 * others.  Keys are claimed together, in byte order, after every item is
 * decided: if a concurrent transaction committed one of them meanwhile
 * the whole batch fails with 40001 and the client retries it (that item
 * then replays).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "ledger.h"

/* Most items in one batch: far beyond one transaction's sensible size, and
 * well inside what one allocation can hold. */
#define LEDGER_MAX_BATCH_ITEMS	1000000

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

static Datum *array_argument(FunctionCallInfo fcinfo, int argno,
							 const char *argname, Oid elmtype,
							 bool allow_null_elements, bool **nulls,
							 int *nitems);
static void read_input(FunctionCallInfo fcinfo, bool is_transfer,
					   BatchInput *input);
static Datum run_batch(FunctionCallInfo fcinfo, bool is_transfer);

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

static Datum
run_batch(FunctionCallInfo fcinfo, bool is_transfer)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BatchInput	input;
	LedgerItem *items;

	read_input(fcinfo, is_transfer, &input);
	InitMaterializedSRF(fcinfo, 0);
	if (input.nitems == 0)
		return (Datum) 0;

	items = palloc0(sizeof(LedgerItem) * input.nitems);
	for (int i = 0; i < input.nitems; i++)
	{
		items[i].op = is_transfer ? LEDGER_TRANSFER : LEDGER_DEBIT;
		items[i].account = DatumGetTextPP(input.from[i]);
		items[i].to_account = is_transfer ? DatumGetTextPP(input.to[i]) : NULL;
		items[i].amount = DatumGetInt64(input.amounts[i]);
		items[i].key = (input.keys == NULL || input.key_nulls[i])
			? NULL : DatumGetTextPP(input.keys[i]);
	}
	ledger_post_items(items, input.nitems, false);

	for (int i = 0; i < input.nitems; i++)
	{
		Datum		out[3];
		bool		isnull[3] = {false, false, false};

		out[0] = Int32GetDatum(i + 1);
		out[1] = CStringGetTextDatum(ledger_refusal_name(items[i].refusal));
		out[2] = Int64GetDatum(items[i].result);
		isnull[2] = items[i].refusal != LEDGER_ACCEPTED;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, isnull);
	}
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
