/*-------------------------------------------------------------------------
 *
 * account.c
 *	  Opening accounts, reading balances, and taking account row locks.
 *
 * The row lock on ledger.accounts is the ledger's serialization point:
 * every posting holds it from the read of the balance to COMMIT, so two
 * postings on one account never interleave while postings on different
 * accounts never wait for each other.  ledger_lock_accounts takes it (the
 * one exception: an unkeyed credit or debit whose direct update takes the
 * row lock itself, direct_write.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "errors.h"
#include "ledger.h"

void
ledger_raise_account_not_found(text *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_ACCOUNT_NOT_FOUND),
			 errmsg("account \"%s\" does not exist", text_to_cstring(name)),
			 errhint("Open it first with ledger_open_account().")));
}

/*
 * Lock the accounts named names[0..count-1] (distinct, valid names) FOR
 * UPDATE until the end of the transaction, and read them into
 * accounts[i] (found false where there is no such account).  This is the
 * one place that takes the ledger's row locks: always in account_id
 * order, whatever the order of the names, so that transactions locking
 * overlapping sets of accounts queue instead of deadlocking.  Under
 * READ COMMITTED a row updated meanwhile is locked and read in its newest
 * version; under REPEATABLE READ and SERIALIZABLE that is 40001.
 *
 * An account in escrow mode is read but not locked, unless must_lock[i]
 * (or the statement has to lock: then every row is locked, which escrow
 * mode also works with): escrow.c admits its postings.
 */
void
ledger_lock_accounts(int count, text **names, const bool *must_lock,
					 LedgerAccount *accounts)
{
	LedgerColumn name_column = {0};
	LedgerNameIndex *index;
	Datum		values[1];
	int			rows;

	for (int i = 0; i < count; i++)
	{
		accounts[i].name = names[i];
		accounts[i].found = false;
		accounts[i].touched = false;
		accounts[i].held = 0;
		accounts[i].reserved = 0;
		accounts[i].escrow = false;
		accounts[i].row_locked = false;
		accounts[i].escrow_slot = -1;
	}
	if (count == 0 || ledger_direct_lock_accounts(count, names, must_lock, accounts))
		return;

	/* the statement (see STMT_LOCK_ACCOUNTS) */
	index = ledger_names_create(count);
	for (int i = 0; i < count; i++)
	{
		ledger_column_push(&name_column, PointerGetDatum(names[i]), false);
		ledger_names_add(index, names[i], i);
	}
	values[0] = PointerGetDatum(ledger_column_array(&name_column, TEXTOID));
	rows = ledger_execute(STMT_LOCK_ACCOUNTS, values, NULL, false);
	for (int row = 0; row < rows; row++)
	{
		bool		isnull;
		text	   *name = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[row],
														SPI_tuptable->tupdesc, 5, &isnull));
		int			i = ledger_names_find(index, name);
		LedgerAccount *account;

		if (i < 0)
			continue;
		account = &accounts[i];
		account->found = true;
		if (!ledger_get_int64(row, 1, &account->account_id) ||
			!ledger_get_int64(row, 2, &account->balance))
			elog(ERROR, "ledger: account row has a NULL id or balance");
		account->has_floor = ledger_get_int64(row, 3, &account->min_balance);
		account->currency = ledger_get_cstring(row, 4);
		account->ctid = *(ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[row],
																	 SPI_tuptable->tupdesc,
																	 6, &isnull));
		(void) ledger_get_int64(row, 7, &account->held);
		account->escrow = ledger_get_bool(row, 8);
		account->row_locked = true;
		account->row_balance = account->balance;
	}
}

/*
 * The id of an account, without locking it.  Raises LG002 if missing.
 */
int64
ledger_find_account(text *name)
{
	Datum		values[1] = {PointerGetDatum(name)};
	int64		account_id;

	if (ledger_execute(STMT_FIND_ACCOUNT, values, NULL, true) == 0 ||
		!ledger_get_int64(0, 1, &account_id))
		ledger_raise_account_not_found(name);
	return account_id;
}

/*
 * ledger_open_account(account text, currency text DEFAULT 'XXX',
 *					   min_balance bigint DEFAULT 0) RETURNS bigint
 *
 * Opens an account and returns its id.  Opening again with identical
 * parameters returns the same id; with different ones, LG005.
 * min_balance NULL means no floor; a positive floor is refused because a
 * new account starts at zero.  An account that may go below zero (a
 * negative floor or none) lets money be created: only a role with that
 * right opens one (guard.c).
 */
PG_FUNCTION_INFO_V1(ledger_open_account);
Datum
ledger_open_account(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	text	   *currency = ledger_arg_currency(fcinfo, 1);
	bool		has_floor = !PG_ARGISNULL(2);
	int64		min_balance = has_floor ? PG_GETARG_INT64(2) : 0;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', has_floor ? ' ' : 'n', ' '};
	int64		account_id;

	if (has_floor && min_balance > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_balance must not be positive"),
				 errdetail("The min_balance is " INT64_FORMAT ", but a new account starts at a balance of 0.",
						   min_balance),
				 errhint("Use 0 for \"never negative\", a negative floor for an overdraft, or NULL for no floor.")));
	if ((!has_floor || min_balance < 0) && !ledger_may_create_money())
		ledger_raise_money_creation_denied("open an account that may go below zero",
										   has_floor
										   ? "A negative floor lets money be created: the account may owe it."
										   : "An account without a floor is a source of money.");

	ledger_prepare_write();
	SPI_connect();

	values[0] = PointerGetDatum(name);
	values[1] = PointerGetDatum(currency);
	values[2] = Int64GetDatum(min_balance);
	values[3] = BoolGetDatum(ledger_escrow_by_default());	/* a new account's mode */

	if (ledger_execute(STMT_OPEN_ACCOUNT, values, nulls, false) == 1)
	{
		if (!ledger_get_int64(0, 1, &account_id))
			elog(ERROR, "ledger: new account has a NULL id");
	}
	else
	{
		char	   *existing_currency;
		int64		existing_floor = 0;
		bool		existing_has_floor;

		/* the name is taken: same parameters mean the same account */
		if (ledger_execute(STMT_FIND_ACCOUNT, values, NULL, false) == 0 ||
			!ledger_get_int64(0, 1, &account_id))
			elog(ERROR, "ledger: account \"%s\" conflicted but cannot be found",
				 text_to_cstring(name));
		existing_currency = ledger_get_cstring(0, 2);
		existing_has_floor = ledger_get_int64(0, 3, &existing_floor);

		if (strcmp(existing_currency, text_to_cstring(currency)) != 0 ||
			existing_has_floor != has_floor ||
			(has_floor && existing_floor != min_balance))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_ACCOUNT_EXISTS),
					 errmsg("account \"%s\" already exists with different parameters",
							text_to_cstring(name)),
					 errdetail("The account has currency %s and %s.",
							   existing_currency,
							   existing_has_floor ?
							   psprintf("min_balance " INT64_FORMAT, existing_floor) :
							   "no floor")));
	}

	SPI_finish();
	PG_RETURN_INT64(account_id);
}

/*
 * ledger_balance(account text) RETURNS bigint
 *
 * The balance as this transaction sees it; takes no lock.
 */
PG_FUNCTION_INFO_V1(ledger_balance);
Datum
ledger_balance(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	Datum		values[1] = {PointerGetDatum(name)};
	int64		balance;

	SPI_connect();
	if (ledger_execute(STMT_FIND_ACCOUNT, values, NULL, true) == 0)
		ledger_raise_account_not_found(name);
	if (!ledger_get_int64(0, 4, &balance))
		elog(ERROR, "ledger: account has a NULL balance");
	SPI_finish();

	PG_RETURN_INT64(balance);
}
