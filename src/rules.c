/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  The money rules: each is decided here, in one function, for every
 *	  path that posts -- single calls, batches and the direct fast path.
 *
 *	  ledger_rule_request	the request itself: names, amount, key, a
 *							transfer to itself, an expiry in the future
 *	  ledger_rule_take		money out of what an account has available
 *							(its balance less what pending holds reserve):
 *							its floor, and the right to take from a source
 *							of money; a hold reserves by the same rule
 *	  ledger_rule_hold		a hold: the take rule, and what is held stays
 *							in bigint
 *	  ledger_rule_expiry	a hold expires after it is made, within
 *							LEDGER_MAX_HOLD_DAYS
 *	  ledger_rule_give		money into an account: the bigint range
 *	  ledger_rule_currency	a transfer stays in one currency
 *	  ledger_rule_replay	an idempotency key replays only its own request
 *	  ledger_rule_capture	a capture replays its own capture, and posts
 *							only a pending hold, at most its amount
 *	  ledger_hold_expired	a hold stops reserving at its expiry
 *	  ledger_rule_transfer_hold	a cross-shard transfer's hold ends only
 *							by its finish (and only such a transfer posts
 *							under a key of the ledger's own prefix "lr/":
 *							ledger_rule_request)
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
#include "utils/datetime.h"
#include "utils/timestamp.h"

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
	[LEDGER_REFUSE_HOLD_NOT_FOUND] = "hold_not_found",
	[LEDGER_REFUSE_HOLD_NOT_PENDING] = "hold_not_pending",
};

static const char *const operation_names[] = {
	[LEDGER_CREDIT] = "credit",
	[LEDGER_DEBIT] = "debit",
	[LEDGER_TRANSFER] = "transfer",
	[LEDGER_HOLD] = "hold",
	[LEDGER_CAPTURE] = "capture",
	[LEDGER_RELEASE] = "release",
	[LEDGER_EXPIRE] = "expire",
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

/* An interval after which a hold expires: more than nothing. */
static bool
interval_is_positive(Interval *interval)
{
	Interval	zero = {0};

	return DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(interval),
											IntervalPGetDatum(&zero)));
}

/*
 * Whether each part of an expires_in (months, days, time) is at most
 * LEDGER_MAX_HOLD_DAYS long, either way: then adding it to the clock
 * cannot leave the timestamp range, and ledger_rule_expiry may.
 */
static bool
interval_parts_bounded(const Interval *interval)
{
	const int64 max_months = (int64) (LEDGER_MAX_HOLD_DAYS / DAYS_PER_YEAR) * MONTHS_PER_YEAR;

	return Abs((int64) interval->month) <= max_months &&
		Abs((int64) interval->day) <= LEDGER_MAX_HOLD_DAYS &&
		interval->time >= -LEDGER_MAX_HOLD_DAYS * USECS_PER_DAY &&
		interval->time <= LEDGER_MAX_HOLD_DAYS * USECS_PER_DAY;
}

/* whether a key begins with prefix */
static bool
key_has_prefix(const char *key, int len, const char *prefix)
{
	int			n = strlen(prefix);

	return key != NULL && len >= n && memcmp(key, prefix, n) == 0;
}

/*
 * Keys of the ledger's own (LEDGER_RESERVED_KEY_PREFIX) belong to the steps
 * of cross-shard transfers: a caller who took one first could make a
 * transfer's credit or hold replay the wrong posting.  Also the caller's
 * key of a cross-shard transfer may not be one (transfer_out.c).
 */
bool
ledger_key_is_reserved(text *key)
{
	return key != NULL &&
		key_has_prefix(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), LEDGER_RESERVED_KEY_PREFIX);
}

void
ledger_raise_reserved_key(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("idempotency keys beginning with \"%s\" are reserved for the steps of cross-shard transfers",
					LEDGER_RESERVED_KEY_PREFIX)));
}

/* A reserved key in a posting that is not a step of a cross-shard transfer. */
static bool
key_reserved(const LedgerItem *item)
{
	return !item->cross_shard && ledger_key_is_reserved(item->key);
}

/*
 * The request itself, before any account is read: names and key of 1 to
 * 255 bytes, a positive amount, a transfer between two accounts, a
 * positive expiry of bounded parts.  (A capture's and a release's account
 * comes from their hold, read later.)
 */
LedgerRefusal
ledger_rule_request(const LedgerItem *item)
{
	if (item->key != NULL && (!ledger_name_is_valid(item->key) || key_reserved(item)))
		return LEDGER_REFUSE_INVALID;
	switch (item->op)
	{
		case LEDGER_CAPTURE:
			if (item->amount < 0 ||
				(item->to_account != NULL && !ledger_name_is_valid(item->to_account)))
				return LEDGER_REFUSE_INVALID;
			return LEDGER_ACCEPTED;
		case LEDGER_RELEASE:
		case LEDGER_EXPIRE:
			return LEDGER_ACCEPTED;
		case LEDGER_HOLD:
			if (item->expires_in != NULL &&
				(!interval_is_positive(item->expires_in) ||
				 !interval_parts_bounded(item->expires_in)))
				return LEDGER_REFUSE_INVALID;
			break;
		default:
			break;
	}
	if (!ledger_name_is_valid(item->account) || item->amount <= 0)
		return LEDGER_REFUSE_INVALID;
	if (item->op == LEDGER_TRANSFER &&
		(!ledger_name_is_valid(item->to_account) ||
		 ledger_same_text(item->account, item->to_account)))
		return LEDGER_REFUSE_INVALID;
	return LEDGER_ACCEPTED;
}

/*
 * Take amount out of what a locked account has available: the new
 * balance, or why not.
 *
 * What is available is the balance less what its pending, unexpired holds
 * reserve.  An account with a floor may not take it below that floor
 * (LG001; a subtraction that leaves bigint is below any floor).  An
 * account without one is a source of money: taking from it creates money,
 * which needs that right (guard.c), and it goes as low as bigint allows
 * (22003 past that).  A hold reserves money by this rule, without taking
 * it.
 */
LedgerRefusal
ledger_rule_take(const LedgerAccount *account, int64 amount, int64 *new_balance)
{
	bool		overflow;
	int64		available_after;

	if (!account->has_floor && !ledger_may_create_money())
		return LEDGER_REFUSE_PRIVILEGE;
	overflow = pg_sub_s64_overflow(account->balance, amount, new_balance) ||
		pg_sub_s64_overflow(*new_balance, account->reserved, &available_after);
	if (account->has_floor && (overflow || available_after < account->min_balance))
		return LEDGER_REFUSE_FUNDS;
	if (overflow)
		return LEDGER_REFUSE_RANGE;
	return LEDGER_ACCEPTED;
}

/*
 * A hold of amount on a locked account: reserved by the take rule, and the
 * sum of what the account holds must stay in bigint (22003), as what is
 * available is computed from it.
 */
LedgerRefusal
ledger_rule_hold(const LedgerAccount *account, int64 amount)
{
	int64		unused;
	LedgerRefusal refusal = ledger_rule_take(account, amount, &unused);

	if (refusal == LEDGER_ACCEPTED && pg_add_s64_overflow(account->held, amount, &unused))
		return LEDGER_REFUSE_RANGE;
	return refusal;
}

/*
 * When a hold made at now with expires_in (whose parts the request rule
 * bounded) expires: after now, and at most LEDGER_MAX_HOLD_DAYS later;
 * 22023 otherwise.  An interval greater than zero can still end before it
 * starts: '-5 months 152 days' is positive by interval comparison.
 */
LedgerRefusal
ledger_rule_expiry(const Interval *expires_in, TimestampTz now, TimestampTz *expires_at)
{
	*expires_at = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														  TimestampTzGetDatum(now),
														  IntervalPGetDatum(expires_in)));
	if (*expires_at <= now || *expires_at - now > LEDGER_MAX_HOLD_DAYS * USECS_PER_DAY)
		return LEDGER_REFUSE_INVALID;
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
		 : stored->counter_account == NULL) &&
		(stored->expires_in == NULL || item->expires_in == NULL
		 ? stored->expires_in == item->expires_in
		 : DatumGetBool(DirectFunctionCall2(interval_eq, IntervalPGetDatum(stored->expires_in),
											IntervalPGetDatum(item->expires_in))));

	return same ? LEDGER_ACCEPTED : LEDGER_REFUSE_KEY_CONFLICT;
}

/* A hold stops reserving, and can no longer be captured, at its expiry. */
bool
ledger_hold_expired(const LedgerHold *hold, TimestampTz now)
{
	return hold->expires && now >= hold->expires_at;
}

/*
 * A capture of the hold read under the account's lock (item->hold), at
 * the posting's clock.  A hold captured before replays that capture when
 * this one asks the same -- the amount it posted (no amount: the whole
 * hold) to the same destination (*replay) -- and is LG003 otherwise; a
 * hold released or expired is LG007; a pending one may be captured for at
 * most its amount (22023).
 */
LedgerRefusal
ledger_rule_capture(const LedgerItem *item, TimestampTz now, bool *replay)
{
	const LedgerHold *hold = &item->hold;
	int64		amount = item->amount != 0 ? item->amount : hold->amount;

	*replay = false;
	if (hold->ended != NULL && strcmp(hold->ended, "captured") == 0)
	{
		*replay = amount == hold->captured &&
			(item->to_account == NULL
			 ? hold->to_account == NULL
			 : hold->to_account != NULL && ledger_same_text(item->to_account, hold->to_account));
		return *replay ? LEDGER_ACCEPTED : LEDGER_REFUSE_KEY_CONFLICT;
	}
	if (hold->ended != NULL || ledger_hold_expired(hold, now))
		return LEDGER_REFUSE_HOLD_NOT_PENDING;
	if (amount > hold->amount)
		return LEDGER_REFUSE_INVALID;
	return LEDGER_ACCEPTED;
}

/*
 * The hold of a cross-shard transfer (its key begins with "lr/out/";
 * transfer_out.c) ends only by ledger_transfer_finish: the transfer's
 * credit on the other shard may already be posted, and a release, or a
 * capture to anywhere else, would leave that credit without its debit.
 * Raised at once: captures and releases are single calls.
 */
void
ledger_rule_transfer_hold(const LedgerItem *item)
{
	const LedgerHold *hold = &item->hold;

	if (item->op == LEDGER_EXPIRE || item->cross_shard || hold->key == NULL ||
		!key_has_prefix(hold->key, strlen(hold->key), LEDGER_TRANSFER_HOLD_KEY_PREFIX))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("hold " INT64_FORMAT " belongs to a cross-shard transfer", item->hold_id),
			 errdetail("Its key is \"%s\"; only ledger_transfer_finish ends it.", hold->key),
			 errhint("The router finishes the transfer; ledger_recover() finishes one left unfinished.")));
}

/* What an item asked for, in the words of an error's detail. */
static char *
describe_request(const LedgerItem *item)
{
	if (item->op == LEDGER_CAPTURE)
		return item->to_account != NULL
			? psprintf("a capture of hold " INT64_FORMAT " for %s to account \"%s\"",
					   item->hold_id,
					   item->amount != 0 ? psprintf(INT64_FORMAT, item->amount) : "its whole amount",
					   text_to_cstring(item->to_account))
			: psprintf("a capture of hold " INT64_FORMAT " for %s", item->hold_id,
					   item->amount != 0 ? psprintf(INT64_FORMAT, item->amount) : "its whole amount");
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
			if (key_reserved(item))
				ledger_raise_reserved_key();
			if (item->op == LEDGER_HOLD)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("expires_in must be positive and at most %d years",
								(int) (LEDGER_MAX_HOLD_DAYS / DAYS_PER_YEAR)),
						 errdetail("A hold must expire after it is made, and each part of"
								   " expires_in (months, days, time) is at most that long."),
						 errhint("Pass NULL for a hold that never expires.")));
			if (item->op == LEDGER_CAPTURE && item->to_account != NULL &&
				ledger_same_text(item->account, item->to_account))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("cannot capture hold " INT64_FORMAT " to its own account \"%s\"",
								item->hold_id, text_to_cstring(item->account)),
						 errhint("Capture without to_account to post it as a debit.")));
			if (item->op == LEDGER_CAPTURE)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("cannot capture more than hold " INT64_FORMAT " holds",
								item->hold_id),
						 errdetail("The hold is of " INT64_FORMAT "; the capture is of " INT64_FORMAT ".",
								   item->hold.amount, item->amount)));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid posting: %s", describe_request(item))));
			break;
		case LEDGER_REFUSE_NOT_FOUND:
			ledger_raise_account_not_found(item->missing);
			break;
		case LEDGER_REFUSE_KEY_CONFLICT:
			if (item->op == LEDGER_CAPTURE)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT),
						 errmsg("hold " INT64_FORMAT " was already captured with other arguments",
								item->hold_id),
						 errdetail("This request is %s.", describe_request(item)),
						 errhint("Calling ledger_capture again with the same arguments returns the first result.")));
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
			if (from->reserved > 0)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
						 errmsg("insufficient funds in account \"%s\"",
								text_to_cstring(from->name)),
						 errdetail("The balance is " INT64_FORMAT ", of which " INT64_FORMAT
								   " is held; the %s is " INT64_FORMAT " and the floor is " INT64_FORMAT ".",
								   from->balance, from->reserved,
								   item->op == LEDGER_HOLD ? "hold" : "debit",
								   item->amount, from->min_balance)));
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
					 errmsg("insufficient funds in account \"%s\"",
							text_to_cstring(from->name)),
					 errdetail("The balance is " INT64_FORMAT ", the %s is " INT64_FORMAT
							   " and the floor is " INT64_FORMAT ".",
							   from->balance, item->op == LEDGER_HOLD ? "hold" : "debit",
							   item->amount, from->min_balance)));
			break;
		case LEDGER_REFUSE_RANGE:
			if (item->op == LEDGER_HOLD)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("amount held in account \"%s\" would overflow",
								text_to_cstring(from->name)),
						 errdetail("The balance is " INT64_FORMAT ", of which " INT64_FORMAT
								   " is held; the hold is " INT64_FORMAT
								   "; what is held and what is available must fit in bigint.",
								   from->balance, from->held, item->amount)));
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
		case LEDGER_REFUSE_HOLD_NOT_FOUND:
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_HOLD_NOT_FOUND),
					 errmsg("hold " INT64_FORMAT " does not exist", item->hold_id)));
			break;
		case LEDGER_REFUSE_HOLD_NOT_PENDING:
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_HOLD_NOT_PENDING),
					 errmsg("hold " INT64_FORMAT " is not pending", item->hold_id),
					 item->hold.ended == NULL || strcmp(item->hold.ended, "expired") == 0
					 ? errdetail("It expired at %s.", timestamptz_to_str(item->hold.expires_at))
					 : errdetail("It was %s.", item->hold.ended)));
			break;
		case LEDGER_ACCEPTED:
			break;
	}
	elog(ERROR, "ledger: item refused for reason %d", (int) item->refusal);
}
