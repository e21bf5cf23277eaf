/*-------------------------------------------------------------------------
 *
 * arguments.c
 *	  Validation of the SQL functions' arguments.
 *
 * Every check raises the documented SQLSTATE before anything is read or
 * written: 22004 for a NULL where a value is required, 22023 for a value
 * outside its domain.  None of the functions is STRICT, so a NULL is an
 * error, never a silent NULL result.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "ledger.h"

void
ledger_require_not_null(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));
}

/*
 * An account name: 1 to 255 bytes.
 */
text *
ledger_arg_name(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	text	   *name;
	int			len;

	ledger_require_not_null(fcinfo, argno, argname);
	name = PG_GETARG_TEXT_P(argno);
	len = VARSIZE_ANY_EXHDR(name);
	if (len < 1 || len > LEDGER_MAX_NAME_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 1 and %d bytes long",
						argname, LEDGER_MAX_NAME_BYTES),
				 errdetail("The %s is %d bytes long.", argname, len)));
	return name;
}

/*
 * An optional idempotency key: NULL, or 1 to 255 bytes.
 */
text *
ledger_arg_key(FunctionCallInfo fcinfo, int argno)
{
	text	   *key;
	int			len;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	key = PG_GETARG_TEXT_P(argno);
	len = VARSIZE_ANY_EXHDR(key);
	if (len < 1 || len > LEDGER_MAX_NAME_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key must be between 1 and %d bytes long",
						LEDGER_MAX_NAME_BYTES),
				 errdetail("The idempotency_key is %d bytes long.", len),
				 errhint("Pass NULL to post without a key.")));
	return key;
}

/*
 * An amount in minor units: always positive, the sign is in the verb.
 */
int64
ledger_arg_amount(FunctionCallInfo fcinfo, int argno)
{
	int64		amount;

	ledger_require_not_null(fcinfo, argno, "amount");
	amount = PG_GETARG_INT64(argno);
	if (amount <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be positive"),
				 errdetail("The amount is " INT64_FORMAT ".", amount),
				 errhint("Amounts are positive minor units; the function (credit or debit) gives the direction.")));
	return amount;
}

/*
 * A currency code: 1 to 16 characters of [A-Z0-9_], such as an ISO 4217
 * code or XXX for "no currency".
 */
text *
ledger_arg_currency(FunctionCallInfo fcinfo, int argno)
{
	text	   *currency;
	const char *p;
	int			len;
	bool		valid;

	ledger_require_not_null(fcinfo, argno, "currency");
	currency = PG_GETARG_TEXT_P(argno);
	p = VARDATA_ANY(currency);
	len = VARSIZE_ANY_EXHDR(currency);

	valid = (len >= 1 && len <= LEDGER_MAX_CURRENCY);
	for (int i = 0; valid && i < len; i++)
		valid = ((p[i] >= 'A' && p[i] <= 'Z') ||
				 (p[i] >= '0' && p[i] <= '9') ||
				 p[i] == '_');

	/* echo the code back only when short enough to be a plausible typo */
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 len <= 64 ?
				 errmsg("invalid currency code \"%s\"", text_to_cstring(currency)) :
				 errmsg("invalid currency code"),
				 errdetail("A currency code is 1 to %d characters of A-Z, 0-9 and _.",
						   LEDGER_MAX_CURRENCY),
				 errhint("Use an ISO 4217 code such as USD, or XXX for no currency.")));
	return currency;
}
