/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  Idempotency keys: one key, one operation, replayed forever.
 *
 * A posting with a key runs in this order, under the account row lock(s):
 *
 *	1. ledger_key_replay(): if the key is committed, return its original
 *	   result (same request) or raise LG003 (different request).  This runs
 *	   after the lock so that a second call with the same key, which queued
 *	   on the same lock, sees the first one's commit (READ COMMITTED takes a
 *	   new snapshot per statement) and replays instead of failing a
 *	   business rule that no longer holds, e.g. insufficient funds.
 *	2. the business checks;
 *	3. ledger_key_claim(): insert the key with the result we are about to
 *	   produce.  The unique index makes a concurrent holder of the same key
 *	   wait for us; if one committed first we replay its result instead.
 *	4. the writes.
 *
 * A call that fails rolls its key row back with everything else, so the
 * key stays unused and a retry is evaluated afresh.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "errors.h"
#include "ledger.h"

static bool nullable_equals(const char *a, const char *b);
static char *describe_request(const char *operation, const char *account,
							  const char *counter_account, int64 amount);

static bool
nullable_equals(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Is a stored request the same as a new one?  Names compare byte for byte.
 */
bool
ledger_same_request(const char *operation, const char *account,
					const char *counter_account, int64 amount,
					const char *other_operation, const char *other_account,
					const char *other_counter_account, int64 other_amount)
{
	return strcmp(operation, other_operation) == 0 &&
		strcmp(account, other_account) == 0 &&
		nullable_equals(counter_account, other_counter_account) &&
		amount == other_amount;
}

static char *
describe_request(const char *operation, const char *account,
				 const char *counter_account, int64 amount)
{
	if (counter_account != NULL)
		return psprintf("%s of " INT64_FORMAT " from account \"%s\" to account \"%s\"",
						operation, amount, account, counter_account);
	return psprintf("%s of " INT64_FORMAT " on account \"%s\"",
					operation, amount, account);
}

/*
 * If the request's key was already used, set *result to the original
 * result and return true, or raise LG003 if it was used for something
 * else.  Returns false if the key is unused.  The lookup runs with a fresh
 * snapshot (read_only = false), so under READ COMMITTED it sees keys
 * committed while we waited for a lock.
 */
bool
ledger_key_replay(const LedgerRequest *request, int64 *result)
{
	Datum		values[1] = {PointerGetDatum(request->key)};
	char	   *operation;
	char	   *account;
	char	   *counter_account;
	char	   *this_counter_account;
	int64		amount;

	if (ledger_execute(STMT_FIND_KEY, values, NULL, false) == 0)
		return false;

	operation = ledger_get_cstring(0, 1);
	account = ledger_get_cstring(0, 2);
	counter_account = ledger_get_cstring(0, 3);
	if (!ledger_get_int64(0, 4, &amount) || !ledger_get_int64(0, 5, result))
		elog(ERROR, "ledger: idempotency key row has NULL amount or result");

	this_counter_account = request->counter_account ?
		text_to_cstring(request->counter_account) : NULL;

	if (!ledger_same_request(operation, account, counter_account, amount,
							 request->operation,
							 text_to_cstring(request->account),
							 this_counter_account, request->amount))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT),
				 errmsg("idempotency key \"%s\" was already used for a different request",
						text_to_cstring(request->key)),
				 errdetail("The key was used for a %s; this request is a %s.",
						   describe_request(operation, account, counter_account, amount),
						   describe_request(request->operation,
											text_to_cstring(request->account),
											this_counter_account,
											request->amount)),
				 errhint("Use a new key for every distinct operation.")));
	return true;
}

/*
 * Claim the key for this request, recording the result it will produce.
 * Returns true if the key is now ours.  Returns false, with the original
 * result in *replayed, if a concurrent transaction committed the same
 * request first; raises LG003 if it committed a different one.
 */
bool
ledger_key_claim(const LedgerRequest *request, int64 result, int64 *replayed)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = PointerGetDatum(request->key);
	values[1] = CStringGetTextDatum(request->operation);
	values[2] = PointerGetDatum(request->account);
	values[3] = PointerGetDatum(request->counter_account);
	if (request->counter_account == NULL)
		nulls[3] = 'n';
	values[4] = Int64GetDatum(request->amount);
	values[5] = Int64GetDatum(result);

	if (ledger_execute(STMT_CLAIM_KEY, values, nulls, false) == 1)
		return true;

	if (!ledger_key_replay(request, replayed))
		elog(ERROR, "ledger: idempotency key \"%s\" conflicted but cannot be found",
			 text_to_cstring(request->key));
	return false;
}
