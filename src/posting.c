/*-------------------------------------------------------------------------
 *
 * posting.c
 *	  The verbs that move money: ledger_credit, ledger_debit and
 *	  ledger_transfer.
 *
 * Every posting follows the same steps inside the caller's transaction:
 * validate the arguments; lock the account row(s) FOR UPDATE; replay the
 * idempotency key if it was used; check the floor and bigint range
 * against the locked balance; claim the key; update the balance and append
 * the journal entries.  The lock is held to COMMIT, and durability.c makes
 * that COMMIT synchronous.
 *
 * A credit or debit without a key first tries the fast path: one
 * statement whose UPDATE takes the same row lock and checks the floor and
 * range in its WHERE clause (see STMT_FAST_DEBIT).  If it matches no row
 * the slow path above runs and raises the precise error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "ledger.h"

static int64 balance_after_debit(const LockedAccount *account, int64 amount);
static int64 balance_after_credit(const LockedAccount *account, int64 amount);
static void apply_posting(const LockedAccount *account, int64 signed_amount,
						  int64 new_balance, int64 transfer_id, text *key,
						  TimestampTz now);
static int64 post_to_account(FunctionCallInfo fcinfo, bool is_debit);

/*
 * The balance after taking "amount" out of a locked account; raises LG001
 * if that is below the floor, 22003 if it leaves bigint (only possible
 * without a floor).
 */
static int64
balance_after_debit(const LockedAccount *account, int64 amount)
{
	int64		new_balance;
	bool		overflow = pg_sub_s64_overflow(account->balance, amount, &new_balance);

	if (account->has_floor && (overflow || new_balance < account->min_balance))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
				 errmsg("insufficient funds in account \"%s\"",
						text_to_cstring(account->name)),
				 errdetail("The balance is " INT64_FORMAT ", the debit is " INT64_FORMAT
						   " and the floor is " INT64_FORMAT ".",
						   account->balance, amount, account->min_balance)));
	if (overflow)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("balance of account \"%s\" would overflow",
						text_to_cstring(account->name)),
				 errdetail("The balance is " INT64_FORMAT " and the debit is " INT64_FORMAT
						   "; a balance must fit in bigint.",
						   account->balance, amount)));
	return new_balance;
}

/*
 * The balance after adding "amount" to a locked account; raises 22003 if
 * that leaves bigint.
 */
static int64
balance_after_credit(const LockedAccount *account, int64 amount)
{
	int64		new_balance;

	if (pg_add_s64_overflow(account->balance, amount, &new_balance))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("balance of account \"%s\" would overflow",
						text_to_cstring(account->name)),
				 errdetail("The balance is " INT64_FORMAT " and the credit is " INT64_FORMAT
						   "; a balance must fit in bigint.",
						   account->balance, amount)));
	return new_balance;
}

/*
 * Write one checked posting: the new balance and its journal entry.
 */
static void
apply_posting(const LockedAccount *account, int64 signed_amount,
			  int64 new_balance, int64 transfer_id, text *key, TimestampTz now)
{
	Datum		values[2];

	if (transfer_id == 0 &&
		ledger_direct_apply(account, signed_amount, new_balance, key, now))
		return;

	values[0] = Int64GetDatum(account->account_id);
	values[1] = Int64GetDatum(new_balance);
	ledger_execute(STMT_UPDATE_BALANCE, values, NULL, false);

	ledger_append_entry(account->account_id, signed_amount, new_balance,
						transfer_id, key, now);
}

/*
 * Credit or debit one account; returns the new balance, or the original
 * one when the idempotency key replays.
 */
static int64
post_to_account(FunctionCallInfo fcinfo, bool is_debit)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	int64		amount = ledger_arg_amount(fcinfo, 1);
	text	   *key = ledger_arg_key(fcinfo, 2);
	LedgerRequest request = {is_debit ? "debit" : "credit", key, name, NULL, amount};
	LockedAccount account;
	int64		new_balance;
	int64		result;

	ledger_prepare_write();

	/* without a key, a direct write or one statement usually does it all */
	if (key == NULL &&
		ledger_direct_post(name, amount, is_debit, GetCurrentTimestamp(), &result))
		return result;

	SPI_connect();
	if (key == NULL)
	{
		Datum		values[3];

		values[0] = PointerGetDatum(name);
		values[1] = Int64GetDatum(amount);
		values[2] = TimestampTzGetDatum(GetCurrentTimestamp());
		if (ledger_execute(is_debit ? STMT_FAST_DEBIT : STMT_FAST_CREDIT,
						   values, NULL, false) == 1 &&
			ledger_get_int64(0, 1, &result))
			goto done;
	}

	/* the slow path: lock, replay the key, check, claim the key, write */
	ledger_lock_account(name, &account);

	if (key != NULL && ledger_key_replay(&request, &result))
		goto done;

	if (is_debit)
		new_balance = balance_after_debit(&account, amount);
	else
		new_balance = balance_after_credit(&account, amount);

	if (key != NULL && !ledger_key_claim(&request, new_balance, &result))
		goto done;

	apply_posting(&account, is_debit ? -amount : amount, new_balance, 0, key,
				  GetCurrentTimestamp());
	result = new_balance;

done:
	SPI_finish();
	return result;
}

/*
 * ledger_credit(account text, amount bigint, idempotency_key text DEFAULT NULL)
 *	 RETURNS bigint
 *
 * Adds money; returns the new balance.  Locks: the account row (the fast
 * path's UPDATE, or FOR UPDATE), to COMMIT.
 */
PG_FUNCTION_INFO_V1(ledger_credit);
Datum
ledger_credit(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(post_to_account(fcinfo, false));
}

/*
 * ledger_debit(account text, amount bigint, idempotency_key text DEFAULT NULL)
 *	 RETURNS bigint
 *
 * Takes money out unless that would go below the floor (LG001); returns
 * the new balance.  Locks: the account row (the fast path's UPDATE, or FOR
 * UPDATE), to COMMIT.
 */
PG_FUNCTION_INFO_V1(ledger_debit);
Datum
ledger_debit(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(post_to_account(fcinfo, true));
}

/*
 * ledger_transfer(from_account text, to_account text, amount bigint,
 *				   idempotency_key text DEFAULT NULL) RETURNS bigint
 *
 * Double entry between two accounts of one currency; returns the transfer
 * id.  Locks: both account rows, FOR UPDATE, in account_id order.
 */
PG_FUNCTION_INFO_V1(ledger_transfer);
Datum
ledger_transfer(PG_FUNCTION_ARGS)
{
	text	   *from_name = ledger_arg_name(fcinfo, 0, "from_account");
	text	   *to_name = ledger_arg_name(fcinfo, 1, "to_account");
	int64		amount = ledger_arg_amount(fcinfo, 2);
	text	   *key = ledger_arg_key(fcinfo, 3);
	LedgerRequest request = {"transfer", key, from_name, to_name, amount};
	LockedAccount from;
	LockedAccount to;
	int64		from_balance;
	int64		to_balance;
	int64		transfer_id = 0;
	int64		result;
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	if (VARSIZE_ANY_EXHDR(from_name) == VARSIZE_ANY_EXHDR(to_name) &&
		memcmp(VARDATA_ANY(from_name), VARDATA_ANY(to_name),
			   VARSIZE_ANY_EXHDR(from_name)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot transfer from account \"%s\" to itself",
						text_to_cstring(from_name))));

	ledger_prepare_write();
	SPI_connect();

	ledger_lock_account_pair(from_name, to_name, &from, &to);

	if (key != NULL && ledger_key_replay(&request, &result))
		goto done;

	if (strcmp(from.currency, to.currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_CURRENCY_MISMATCH),
				 errmsg("cannot transfer from account \"%s\" to account \"%s\": currencies differ",
						text_to_cstring(from_name), text_to_cstring(to_name)),
				 errdetail("Account \"%s\" is in %s; account \"%s\" is in %s.",
						   text_to_cstring(from_name), from.currency,
						   text_to_cstring(to_name), to.currency)));

	from_balance = balance_after_debit(&from, amount);
	to_balance = balance_after_credit(&to, amount);

	/* a key is claimed with the id it will replay, so draw the id first */
	if (key != NULL)
	{
		if (ledger_execute(STMT_NEXT_TRANSFER_ID, NULL, NULL, false) != 1 ||
			!ledger_get_int64(0, 1, &transfer_id))
			elog(ERROR, "ledger: could not draw a transfer id");
		if (!ledger_key_claim(&request, transfer_id, &result))
			goto done;
	}

	if (ledger_direct_transfer(&from, from_balance, &to, to_balance, amount,
							   transfer_id, key, GetCurrentTimestamp(), &result))
		goto done;

	values[0] = Int64GetDatum(transfer_id);
	nulls[0] = (key == NULL) ? 'n' : ' ';
	values[1] = Int64GetDatum(from.account_id);
	values[2] = Int64GetDatum(from_balance);
	values[3] = Int64GetDatum(to.account_id);
	values[4] = Int64GetDatum(to_balance);
	values[5] = Int64GetDatum(amount);
	values[6] = PointerGetDatum(key);
	nulls[6] = (key == NULL) ? 'n' : ' ';
	values[7] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (ledger_execute(STMT_POST_TRANSFER, values, nulls, false) != 2 ||
		!ledger_get_int64(0, 1, &result))
		elog(ERROR, "ledger: transfer was not written");

done:
	SPI_finish();
	PG_RETURN_INT64(result);
}
