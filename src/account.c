/*-------------------------------------------------------------------------
 *
 * account.c
 *	  Opening accounts, reading balances, and taking account row locks.
 *
 * The row lock on ledger.accounts is the ledger's serialization point:
 * every posting holds it from the read of the balance to COMMIT, so two
 * postings on one account never interleave while postings on different
 * accounts never wait for each other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "errors.h"
#include "ledger.h"

static void fill_locked_account(int row, text *name, LockedAccount *account);
static bool lock_directly(int count, text **names, LockedAccount **accounts);
static bool name_equals(text *name, const char *other);

void
ledger_raise_account_not_found(text *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_ACCOUNT_NOT_FOUND),
			 errmsg("account \"%s\" does not exist", text_to_cstring(name)),
			 errhint("Open it first with ledger_open_account().")));
}

/*
 * Names are compared byte for byte, as the "C" collation of the column does.
 */
static bool
name_equals(text *name, const char *other)
{
	size_t		len = VARSIZE_ANY_EXHDR(name);

	return strlen(other) == len && memcmp(VARDATA_ANY(name), other, len) == 0;
}

/*
 * Copy row "row" of a STMT_LOCK_ACCOUNT(_PAIR) result into *account.
 */
static void
fill_locked_account(int row, text *name, LockedAccount *account)
{
	account->name = name;
	if (!ledger_get_int64(row, 1, &account->account_id) ||
		!ledger_get_int64(row, 2, &account->balance))
		elog(ERROR, "ledger: account row has a NULL id or balance");
	account->has_floor = ledger_get_int64(row, 3, &account->min_balance);
	account->currency = ledger_get_cstring(row, 4);
	account->ctid_known = false;
}

/*
 * Lock count distinct accounts without the executor (direct_write.c), in
 * account_id order; raises LG002 naming the first missing one.  False if
 * the SQL statement must do it.
 */
static bool
lock_directly(int count, text **names, LockedAccount **accounts)
{
	LedgerLockedRow rows[2];

	Assert(count <= lengthof(rows));
	if (!ledger_direct_lock_accounts(count, names, rows))
		return false;
	for (int i = 0; i < count; i++)
		if (!rows[i].found)
			ledger_raise_account_not_found(names[i]);
	for (int i = 0; i < count; i++)
	{
		accounts[i]->name = names[i];
		accounts[i]->account_id = rows[i].account_id;
		accounts[i]->balance = rows[i].balance;
		accounts[i]->has_floor = rows[i].has_floor;
		accounts[i]->min_balance = rows[i].min_balance;
		accounts[i]->currency = rows[i].currency;
		accounts[i]->ctid_known = true;
		accounts[i]->ctid = rows[i].ctid;
	}
	return true;
}

/*
 * Lock one account row FOR UPDATE until the end of the transaction.
 * Raises LG002 if there is no such account.
 */
void
ledger_lock_account(text *name, LockedAccount *account)
{
	Datum		values[1] = {PointerGetDatum(name)};

	if (lock_directly(1, &name, &account))
		return;
	if (ledger_execute(STMT_LOCK_ACCOUNT, values, NULL, false) == 0)
		ledger_raise_account_not_found(name);
	fill_locked_account(0, name, account);
}

/*
 * Lock two distinct accounts FOR UPDATE, always in account_id order
 * whatever the order of the arguments, so that concurrent transfers over
 * the same pair cannot deadlock.  Raises LG002 naming the first missing
 * account.
 */
void
ledger_lock_account_pair(text *first, text *second,
						 LockedAccount *first_account,
						 LockedAccount *second_account)
{
	Datum		values[2] = {PointerGetDatum(first), PointerGetDatum(second)};
	int			rows;
	bool		found_first = false;
	bool		found_second = false;
	text	   *names[2] = {first, second};
	LockedAccount *accounts[2] = {first_account, second_account};

	if (lock_directly(2, names, accounts))
		return;
	rows = ledger_execute(STMT_LOCK_ACCOUNT_PAIR, values, NULL, false);
	for (int row = 0; row < rows; row++)
	{
		char	   *row_name = ledger_get_cstring(row, 5);

		if (!found_first && name_equals(first, row_name))
		{
			fill_locked_account(row, first, first_account);
			found_first = true;
		}
		else if (!found_second && name_equals(second, row_name))
		{
			fill_locked_account(row, second, second_account);
			found_second = true;
		}
	}
	if (!found_first)
		ledger_raise_account_not_found(first);
	if (!found_second)
		ledger_raise_account_not_found(second);
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
 * new account starts at zero.
 */
PG_FUNCTION_INFO_V1(ledger_open_account);
Datum
ledger_open_account(PG_FUNCTION_ARGS)
{
	text	   *name = ledger_arg_name(fcinfo, 0, "account");
	text	   *currency = ledger_arg_currency(fcinfo, 1);
	bool		has_floor = !PG_ARGISNULL(2);
	int64		min_balance = has_floor ? PG_GETARG_INT64(2) : 0;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', has_floor ? ' ' : 'n'};
	int64		account_id;

	if (has_floor && min_balance > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_balance must not be positive"),
				 errdetail("The min_balance is " INT64_FORMAT ", but a new account starts at a balance of 0.",
						   min_balance),
				 errhint("Use 0 for \"never negative\", a negative floor for an overdraft, or NULL for no floor.")));

	ledger_prepare_write();
	SPI_connect();

	values[0] = PointerGetDatum(name);
	values[1] = PointerGetDatum(currency);
	values[2] = Int64GetDatum(min_balance);

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
