/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  The money rules: each is decided here, in one function, for every
 *	  path that posts -- single calls, batches and the direct fast path.
 *
 *	  ledger_rule_request	the request itself: names, amount, key, a
 *							transfer to itself
 *	  ledger_rule_take		money out of an account: its floor, and the
 *							right to take from a source of money
 *	  ledger_rule_give		money into an account: the bigint range
 *	  ledger_rule_currency	a transfer stays in one currency
 *	  ledger_rule_replay	an idempotency key replays only its own request
 *
 * They decide on locked accounts held in memory (the row lock is the
 * caller's) and return a refusal instead of raising it: a batch records
 * it per item, a single call raises it with ledger_raise_refusal.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "utils/builtins.h"

#include "errors.h"
#include "ledger.h"

/* Condition names, as ARCHITECTURE §4 and a batch's status column name them. */
static const char *const refusal_names[] = {
	[LEDGER_ACCEPTED] = "ok",
	[LEDGER_REFUSE_INVALID] = "invalid_parameter_value",
	[LEDGER_REFUSE_NOT_FOUND] = "account_not_found",
	[LEDGER_REFUSE_KEY_CONFLICT] = "idempotency_conflict",
	[LEDGER_REFUSE_CURRENCY] = "currency_mismatch",
	[LEDGER_REFUSE_FUNDS] = "insufficient_funds",
	[LEDGER_REFUSE_RANGE] = "numeric_value_out_of_range",
	[LEDGER_REFUSE_PRIVILEGE] = "insufficient_privilege",
};

static const char *const operation_names[] = {
	[LEDGER_CREDIT] = "credit",
	[LEDGER_DEBIT] = "debit",
	[LEDGER_TRANSFER] = "transfer",
};

const char *
ledger_refusal_name(LedgerRefusal refusal)
{
	return refusal_names[refusal];
}

const char *
ledger_operation_name(LedgerOperation op)
{
	return operation_names[op];
}

/*
 * The request itself, before any account is read: names and key of 1 to
 * 255 bytes, a positive amount, a transfer between two accounts.
 */
LedgerRefusal
ledger_rule_request(const LedgerItem *item)
{
	if (!ledger_name_is_valid(item->account) || item->amount <= 0 ||
		(item->key != NULL && !ledger_name_is_valid(item->key)))
		return LEDGER_REFUSE_INVALID;
	if (item->op == LEDGER_TRANSFER &&
		(!ledger_name_is_valid(item->to_account) ||
		 ledger_same_text(item->account, item->to_account)))
		return LEDGER_REFUSE_INVALID;
	return LEDGER_ACCEPTED;
}

/*
 * Take amount out of a locked account: the new balance, or why not.
 *
 * An account with a floor may not go below it (LG001; a subtraction that
 * leaves bigint is below any floor).  An account without one is a source
 * of money: taking from it creates money, which needs that right
 * (guard.c), and it goes as low as bigint allows (22003 past that).
 */
LedgerRefusal
ledger_rule_take(const LedgerAccount *account, int64 amount, int64 *new_balance)
{
	bool		overflow;

	if (!account->has_floor && !ledger_may_create_money())
		return LEDGER_REFUSE_PRIVILEGE;
	overflow = pg_sub_s64_overflow(account->balance, amount, new_balance);
	if (account->has_floor && (overflow || *new_balance < account->min_balance))
		return LEDGER_REFUSE_FUNDS;
	if (overflow)
		return LEDGER_REFUSE_RANGE;
	return LEDGER_ACCEPTED;
}

/* Put amount into a locked account: the new balance, or 22003. */
LedgerRefusal
ledger_rule_give(const LedgerAccount *account, int64 amount, int64 *new_balance)
{
	if (pg_add_s64_overflow(account->balance, amount, new_balance))
		return LEDGER_REFUSE_RANGE;
	return LEDGER_ACCEPTED;
}

/* A transfer moves money within one currency. */
LedgerRefusal
ledger_rule_currency(const LedgerAccount *from, const LedgerAccount *to)
{
	return strcmp(from->currency, to->currency) == 0
		? LEDGER_ACCEPTED : LEDGER_REFUSE_CURRENCY;
}

static bool
same_name(const char *stored, text *name)
{
	size_t		len = VARSIZE_ANY_EXHDR(name);

	return strlen(stored) == len && memcmp(stored, VARDATA_ANY(name), len) == 0;
}

/*
 * A used key replays the request it was first used for, and nothing
 * else: the same operation on the same account(s) for the same amount.
 * Names compare byte for byte.
 */
LedgerRefusal
ledger_rule_replay(const LedgerStoredKey *stored, const LedgerItem *item)
{
	bool		same = stored->op == item->op &&
		stored->amount == item->amount &&
		same_name(stored->account, item->account) &&
		(item->op == LEDGER_TRANSFER
		 ? stored->counter_account != NULL && same_name(stored->counter_account, item->to_account)
		 : stored->counter_account == NULL);

	return same ? LEDGER_ACCEPTED : LEDGER_REFUSE_KEY_CONFLICT;
}

/* What an item asked for, in the words of an error's detail. */
static char *
describe_request(const LedgerItem *item)
{
	if (item->op == LEDGER_TRANSFER)
		return psprintf("a transfer of " INT64_FORMAT " from account \"%s\" to account \"%s\"",
						item->amount, text_to_cstring(item->account),
						text_to_cstring(item->to_account));
	return psprintf("a %s of " INT64_FORMAT " on account \"%s\"",
					ledger_operation_name(item->op), item->amount,
					text_to_cstring(item->account));
}

static void
raise_overflow(const LedgerAccount *account, const char *verb, int64 amount)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("balance of account \"%s\" would overflow",
					text_to_cstring(account->name)),
			 errdetail("The balance is " INT64_FORMAT " and the %s is " INT64_FORMAT
					   "; a balance must fit in bigint.",
					   account->balance, verb, amount)));
}

/*
 * Raise the error of a refused item of a single call: its SQLSTATE, and a
 * message that names the caller's own accounts and numbers, never another
 * caller's request.
 */
void
ledger_raise_refusal(const LedgerItem *item)
{
	const LedgerAccount *from = item->from;
	const LedgerAccount *to = item->to;
	int64		unused;

	switch (item->refusal)
	{
		case LEDGER_REFUSE_INVALID:
			if (item->op == LEDGER_TRANSFER && ledger_name_is_valid(item->to_account) &&
				ledger_same_text(item->account, item->to_account))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("cannot transfer from account \"%s\" to itself",
								text_to_cstring(item->account))));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid posting: %s", describe_request(item))));
			break;
		case LEDGER_REFUSE_NOT_FOUND:
			ledger_raise_account_not_found(item->missing);
			break;
		case LEDGER_REFUSE_KEY_CONFLICT:
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT),
					 errmsg("idempotency key \"%s\" was already used for a different request",
							text_to_cstring(item->key)),
					 errdetail("This request is %s.", describe_request(item)),
					 errhint("Use a new key for every distinct operation.")));
			break;
		case LEDGER_REFUSE_CURRENCY:
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_CURRENCY_MISMATCH),
					 errmsg("cannot transfer from account \"%s\" to account \"%s\": currencies differ",
							text_to_cstring(from->name), text_to_cstring(to->name)),
					 errdetail("Account \"%s\" is in %s; account \"%s\" is in %s.",
							   text_to_cstring(from->name), from->currency,
							   text_to_cstring(to->name), to->currency)));
			break;
		case LEDGER_REFUSE_FUNDS:
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
					 errmsg("insufficient funds in account \"%s\"",
							text_to_cstring(from->name)),
					 errdetail("The balance is " INT64_FORMAT ", the debit is " INT64_FORMAT
							   " and the floor is " INT64_FORMAT ".",
							   from->balance, item->amount, from->min_balance)));
			break;
		case LEDGER_REFUSE_RANGE:
			if (item->op == LEDGER_CREDIT)
				raise_overflow(from, "credit", item->amount);
			if (ledger_rule_take(from, item->amount, &unused) == LEDGER_REFUSE_RANGE)
				raise_overflow(from, "debit", item->amount);
			raise_overflow(to, "credit", item->amount);
			break;
		case LEDGER_REFUSE_PRIVILEGE:
			ledger_raise_money_creation_denied(psprintf("take money out of account \"%s\"",
														text_to_cstring(from->name)),
											   "The account has no floor: it is a source of money,"
											   " and taking money out of it creates money.");
			break;
		case LEDGER_ACCEPTED:
			break;
	}
	elog(ERROR, "ledger: item refused for reason %d", (int) item->refusal);
}
