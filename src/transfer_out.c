/*-------------------------------------------------------------------------
 *
 * transfer_out.c
 *	  The shard side of a cross-shard transfer (ARCHITECTURE §9).
 *
 * The router (ledger_router) runs a transfer between accounts of two
 * shards as three local transactions, each idempotent under the
 * transfer's key K:
 *
 *	 0. ledger_transfer_check, on the destination shard: the request is
 *		valid and the destination exists; its currency.  Nothing is
 *		written, so a refusal here (LG002, 22023) is final and nothing was
 *		held.  Accounts are never deleted and never change currency, so
 *		after this check the credit of step 2 can fail only transiently.
 *	 1. ledger_transfer_out, on the source shard: a hold of the amount that
 *		never expires, under the key "lr/out/" || hex(sha256(K)), and the
 *		intent row (ledger.transfers_out) in the same transaction.
 *	 2. ledger_transfer_in, on the destination shard: a credit under the
 *		key "lr/in/" and the transfer's origin (the router makes it of the
 *		source account and K), in the currency the intent records.
 *	 3. ledger_transfer_finish, on the source shard: the hold captured
 *		whole, which is the transfer's debit; a capture again replays.
 *
 * Steps 2 and 3 take the right to create money (the router runs them as
 * its own role): until both are done, one shard has the money and the
 * other has not given it up.
 *
 * Every posting goes through posting.c like any other: the floor, the key
 * and the locks are decided there.  What this file adds is the intent,
 * and the marks that make the steps the transfer's alone: keys under the
 * prefix "lr/", which no other posting may use, and a hold under
 * "lr/out/", which only a finish may end (rules.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "ledger.h"

/* The key of the transfer's hold: "lr/out/" and sha256(K) in hex (71 bytes). */
static text *
hold_key(text *key)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "ledger: could not compute a SHA-256 digest");
	pg_cryptohash_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	return cstring_to_text(psprintf("%s%s", LEDGER_TRANSFER_HOLD_KEY_PREFIX, hex));
}

/*
 * A transfer's key: required here (the router makes one when none is
 * given), and not of the ledger's own prefix, as for any posting.
 */
static text *
arg_transfer_key(FunctionCallInfo fcinfo, int argno)
{
	text	   *key;

	ledger_require_not_null(fcinfo, argno, "idempotency_key");
	key = ledger_arg_key(fcinfo, argno);
	if (ledger_key_is_reserved(key))
		ledger_raise_reserved_key();
	return key;
}

/* A transfer's two accounts: not one and the same (22023). */
static void
refuse_transfer_to_self(text *from, text *to)
{
	if (ledger_same_text(from, to))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot transfer from account \"%s\" to itself",
						text_to_cstring(from))));
}

/*
 * The intent under key, if there is one: its transfer id, and LG003 if it
 * was made for another request.  Inside the caller's SPI connection.
 */
static bool
find_intent(text *key, text *from, text *to, int64 amount, int64 *transfer_id)
{
	Datum		values[1] = {PointerGetDatum(key)};
	int64		stored_amount;
	char	   *stored_from;
	char	   *stored_to;

	if (ledger_execute(STMT_FIND_TRANSFER_OUT, values, NULL, false) == 0)
		return false;
	(void) ledger_get_int64(0, 1, transfer_id);
	stored_from = ledger_get_cstring(0, 2);
	stored_to = ledger_get_cstring(0, 3);
	(void) ledger_get_int64(0, 4, &stored_amount);
	if (from != NULL &&
		(strcmp(stored_from, text_to_cstring(from)) != 0 ||
		 strcmp(stored_to, text_to_cstring(to)) != 0 || stored_amount != amount))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT),
				 errmsg("idempotency key \"%s\" was already used for a different request",
						text_to_cstring(key)),
				 errdetail("This request is a transfer of " INT64_FORMAT
						   " from account \"%s\" to account \"%s\".",
						   amount, text_to_cstring(from), text_to_cstring(to)),
				 errhint("Use a new key for every distinct operation.")));
	return true;
}

/*
 * Steps 2 and 3 create money on one shard until the other step is done:
 * only the router's own role (an operator, who may create money) runs
 * them, never an application role on its own.
 */
static void
require_router_right(const char *action)
{
	if (!ledger_may_create_money())
		ledger_raise_money_creation_denied(action,
										   "The router runs this step as its own role, "
										   "which needs the right to create money.");
}

/*
 * ledger_transfer_check(from_account text, to_account text, amount bigint,
 *						 idempotency_key text) RETURNS text
 *
 * On the destination shard, before anything is held: the request's
 * arguments as ledger_transfer checks them, and to_account's currency
 * (LG002 if there is no such account).  Reads only.
 */
PG_FUNCTION_INFO_V1(ledger_transfer_check);
Datum
ledger_transfer_check(PG_FUNCTION_ARGS)
{
	text	   *from = ledger_arg_name(fcinfo, 0, "from_account");
	text	   *to = ledger_arg_name(fcinfo, 1, "to_account");
	Datum		values[1] = {PointerGetDatum(to)};
	text	   *currency;

	(void) ledger_arg_amount(fcinfo, 2);
	(void) arg_transfer_key(fcinfo, 3);
	refuse_transfer_to_self(from, to);
	SPI_connect();
	if (ledger_execute(STMT_FIND_ACCOUNT, values, NULL, true) == 0)
		ledger_raise_account_not_found(to);
	/* the result outlives SPI's memory */
	currency = SPI_palloc(sizeof(text) + LEDGER_MAX_CURRENCY + 1);
	snprintf(VARDATA(currency), LEDGER_MAX_CURRENCY + 1, "%s", ledger_get_cstring(0, 2));
	SET_VARSIZE(currency, VARHDRSZ + strlen(VARDATA(currency)));
	SPI_finish();
	PG_RETURN_TEXT_P(currency);
}

/*
 * ledger_transfer_out(from_account text, to_account text, to_currency text,
 *					   amount bigint, idempotency_key text) RETURNS bigint
 *
 * Step 1 on the source shard: holds amount of from_account (LG001 and the
 * rest as ledger_hold) and records the intent to move it to to_account,
 * on another shard, in one transaction; returns the transfer id (drawn
 * from the same sequence as a local transfer's).  The same key again
 * returns the same id; with another request, LG003.  to_currency is the
 * destination's, as ledger_transfer_check read it: another than the
 * source's is LG004, before anything is held.
 */
PG_FUNCTION_INFO_V1(ledger_transfer_out);
Datum
ledger_transfer_out(PG_FUNCTION_ARGS)
{
	text	   *from = ledger_arg_name(fcinfo, 0, "from_account");
	text	   *to = ledger_arg_name(fcinfo, 1, "to_account");
	text	   *to_currency = ledger_arg_currency(fcinfo, 2);
	int64		amount = ledger_arg_amount(fcinfo, 3);
	text	   *key = arg_transfer_key(fcinfo, 4);
	Datum		values[7];
	LedgerItem	item = {0};
	int64		transfer_id;
	int64		from_id;
	int64		hold_id;
	char	   *from_currency;

	refuse_transfer_to_self(from, to);

	SPI_connect();
	if (find_intent(key, from, to, amount, &transfer_id))
	{
		SPI_finish();
		PG_RETURN_INT64(transfer_id);
	}
	values[0] = PointerGetDatum(from);
	if (ledger_execute(STMT_FIND_ACCOUNT, values, NULL, true) == 0)
		ledger_raise_account_not_found(from);
	(void) ledger_get_int64(0, 1, &from_id);
	from_currency = ledger_get_cstring(0, 2);
	if (strcmp(from_currency, text_to_cstring(to_currency)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_CURRENCY_MISMATCH),
				 errmsg("cannot transfer from account \"%s\" to account \"%s\": currencies differ",
						text_to_cstring(from), text_to_cstring(to)),
				 errdetail("Account \"%s\" is in %s; account \"%s\" is in %s.",
						   text_to_cstring(from), from_currency,
						   text_to_cstring(to), text_to_cstring(to_currency))));
	SPI_finish();

	item.op = LEDGER_HOLD;
	item.account = from;
	item.amount = amount;
	item.key = hold_key(key);
	item.cross_shard = true;
	hold_id = ledger_post_single(&item);

	SPI_connect();
	transfer_id = ledger_next_ids(ledger_relations()->transfer_sequence, 1)[0];
	values[0] = Int64GetDatum(transfer_id);
	values[1] = PointerGetDatum(key);
	values[2] = Int64GetDatum(hold_id);
	values[3] = Int64GetDatum(from_id);
	values[4] = PointerGetDatum(to);
	values[5] = Int64GetDatum(amount);
	values[6] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (ledger_execute(STMT_INSERT_TRANSFER_OUT, values, NULL, false) == 0 &&
		!find_intent(key, from, to, amount, &transfer_id))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not record cross-shard transfer \"%s\" due to a concurrent one",
						text_to_cstring(key)),
				 errhint("Retry the transfer with the same key.")));
	SPI_finish();
	PG_RETURN_INT64(transfer_id);
}

/*
 * ledger_transfer_in(to_account text, currency text, amount bigint,
 *					  origin text) RETURNS bigint
 *
 * Step 2 on the destination shard: credits amount to to_account under the
 * key "lr/in/" || origin, and returns the new balance; again, the same
 * balance.  origin names the transfer over all shards: the router makes
 * it of the source account and the transfer's key (an account lives on
 * one shard, and a key names one transfer out of it), from the intent as
 * the source shard records it.  currency is the source account's, as the
 * intent records it: another currency here is LG004, and no account
 * LG002 -- then the money stays held on the source, and ledger_verify()
 * reports it.  The router checked both before step 1; only a caller that
 * went around it can meet them.
 */
PG_FUNCTION_INFO_V1(ledger_transfer_in);
Datum
ledger_transfer_in(PG_FUNCTION_ARGS)
{
	text	   *to = ledger_arg_name(fcinfo, 0, "to_account");
	text	   *currency = ledger_arg_currency(fcinfo, 1);
	int64		amount = ledger_arg_amount(fcinfo, 2);
	text	   *origin = ledger_arg_name(fcinfo, 3, "origin");
	Datum		values[1] = {PointerGetDatum(to)};
	LedgerItem	item = {0};

	require_router_right("credit a cross-shard transfer");
	if (VARSIZE_ANY_EXHDR(origin) > LEDGER_MAX_NAME_BYTES - strlen(LEDGER_TRANSFER_CREDIT_KEY_PREFIX))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("origin must be at most %d bytes",
						(int) (LEDGER_MAX_NAME_BYTES - strlen(LEDGER_TRANSFER_CREDIT_KEY_PREFIX)))));

	SPI_connect();
	if (ledger_execute(STMT_FIND_ACCOUNT, values, NULL, true) == 0)
		ledger_raise_account_not_found(to);
	if (strcmp(ledger_get_cstring(0, 2), text_to_cstring(currency)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_CURRENCY_MISMATCH),
				 errmsg("cannot credit cross-shard transfer \"%s\" to account \"%s\": currencies differ",
						text_to_cstring(origin), text_to_cstring(to)),
				 errdetail("The transfer is in %s; account \"%s\" is in %s.",
						   text_to_cstring(currency), text_to_cstring(to),
						   ledger_get_cstring(0, 2))));
	SPI_finish();

	item.op = LEDGER_CREDIT;
	item.account = to;
	item.amount = amount;
	item.key = cstring_to_text(psprintf("%s%s", LEDGER_TRANSFER_CREDIT_KEY_PREFIX,
										text_to_cstring(origin)));
	item.cross_shard = true;
	PG_RETURN_INT64(ledger_post_single(&item));
}

/*
 * ledger_transfer_finish(idempotency_key text) RETURNS bigint
 *
 * Step 3 on the source shard: captures the transfer's hold whole (the
 * debit of the transfer; a finished one replays) and returns the transfer
 * id.  The router calls it only after the credit on the destination
 * (step 2) committed, as the role that made that credit: a finish before
 * its credit would leave the transfer's debit without it, so it takes the
 * same right.  No intent under the key: P0002.
 */
PG_FUNCTION_INFO_V1(ledger_transfer_finish);
Datum
ledger_transfer_finish(PG_FUNCTION_ARGS)
{
	text	   *key = arg_transfer_key(fcinfo, 0);
	Datum		values[1] = {PointerGetDatum(key)};
	LedgerItem	item = {0};
	int64		transfer_id;
	int64		hold_id;

	require_router_right("finish a cross-shard transfer");
	SPI_connect();
	if (ledger_execute(STMT_FIND_TRANSFER_OUT, values, NULL, false) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no cross-shard transfer has idempotency key \"%s\"",
						text_to_cstring(key))));
	(void) ledger_get_int64(0, 1, &transfer_id);
	(void) ledger_get_int64(0, 5, &hold_id);
	SPI_finish();

	item.op = LEDGER_CAPTURE;
	item.hold_id = hold_id;
	item.cross_shard = true;
	(void) ledger_post_single(&item);
	PG_RETURN_INT64(transfer_id);
}
