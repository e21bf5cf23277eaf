/*-------------------------------------------------------------------------
 *
 * posting.c
 *	  The one way money moves: ledger_post_items, for single calls and
 *	  batches alike; and the verbs that use it, ledger_credit, ledger_debit
 *	  and ledger_transfer.
 *
 * A posting of any number of items runs in the caller's transaction:
 *
 *	1. the request rules (rules.c): names, amounts, keys, a transfer to
 *	   itself;
 *	2. every account the items name is locked FOR UPDATE, in account_id
 *	   order (account.c), and read;
 *	3. the idempotency keys the items use are read (idempotency.c);
 *	4. the items are decided in order, in memory, against the locked
 *	   balances: a used key replays or conflicts, otherwise the currency,
 *	   take and give rules (rules.c); a refused item changes nothing, so
 *	   no subtransaction is needed;
 *	5. the keys of accepted items are claimed;
 *	6. everything is written: balances, transfers, journal entries
 *	   (write.c), through the table access method or, when the tables need
 *	   it, through SQL.
 *
 * The locks are held to COMMIT, and durability.c makes that COMMIT
 * synchronous.  If a concurrent transaction committed one of the keys
 * between steps 3 and 5, a batch fails with 40001 (later items may depend
 * on the one whose key it was; the client retries and that item replays),
 * while a single call replays the other transaction's result.
 *
 * One shortcut: a credit or debit without a key first tries
 * ledger_direct_post (direct_write.c), whose balance update takes the row
 * lock itself; it decides with the same take and give rules, and leaves
 * anything unusual to the full path above.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "ledger.h"

/* The accounts a posting locked, by name. */
typedef struct AccountSet
{
	LedgerAccount *accounts;
	int			count;
	LedgerNameIndex *index;
} AccountSet;

static void lock_item_accounts(LedgerItem *items, int nitems, AccountSet *set);
static LedgerAccount *find_account(AccountSet *set, text *name);
static void decide_item(LedgerItem *item, AccountSet *set, LedgerKeys *keys,
						LedgerWrites *writes, int *ntransfers);
static int64 post_single(LedgerItem *item);

/* Step 2: lock the distinct names of the items still accepted. */
static void
lock_item_accounts(LedgerItem *items, int nitems, AccountSet *set)
{
	text	  **names = palloc(sizeof(text *) * nitems * 2);

	set->count = 0;
	set->index = ledger_names_create(nitems * 2);
	for (int i = 0; i < nitems; i++)
	{
		text	   *both[2] = {items[i].account, items[i].to_account};

		if (items[i].refusal != LEDGER_ACCEPTED)
			continue;
		for (int n = 0; n < (items[i].op == LEDGER_TRANSFER ? 2 : 1); n++)
			if (ledger_names_find(set->index, both[n]) < 0)
			{
				ledger_names_add(set->index, both[n], set->count);
				names[set->count++] = both[n];
			}
	}
	set->accounts = palloc(sizeof(LedgerAccount) * Max(set->count, 1));
	ledger_lock_accounts(set->count, names, set->accounts);
}

static LedgerAccount *
find_account(AccountSet *set, text *name)
{
	return &set->accounts[ledger_names_find(set->index, name)];
}

/* Queue one journal entry. */
static void
push_entry(LedgerWrites *writes, const LedgerAccount *account, int64 amount,
		   int transfer_index, text *key)
{
	ledger_column_push(&writes->entry_account, Int64GetDatum(account->account_id), false);
	ledger_column_push(&writes->entry_amount, Int64GetDatum(amount), false);
	ledger_column_push(&writes->entry_balance, Int64GetDatum(account->balance), false);
	ledger_column_push(&writes->entry_transfer, Int32GetDatum(transfer_index),
					   transfer_index < 0);
	ledger_column_push(&writes->entry_key, PointerGetDatum(key), key == NULL);
}

/*
 * Step 4, one item: decide it against the locked accounts and the keys;
 * if accepted, apply it to the accounts in memory and queue its writes.
 */
static void
decide_item(LedgerItem *item, AccountSet *set, LedgerKeys *keys,
			LedgerWrites *writes, int *ntransfers)
{
	LedgerAccount *from;
	LedgerAccount *to = NULL;
	LedgerStoredKey *stored;
	int64		from_balance;
	int64		to_balance = 0;

	if (item->refusal != LEDGER_ACCEPTED)
		return;
	from = find_account(set, item->account);
	if (item->op == LEDGER_TRANSFER)
		to = find_account(set, item->to_account);
	if (!from->found || (to != NULL && !to->found))
	{
		item->refusal = LEDGER_REFUSE_NOT_FOUND;
		item->missing = from->found ? to->name : from->name;
		return;
	}
	item->from = from;
	item->to = to;

	/* a used key replays its own request and nothing else */
	if (item->key != NULL && (stored = ledger_keys_find(keys, item->key)) != NULL)
	{
		item->refusal = ledger_rule_replay(stored, item);
		item->result = stored->result;
		item->transfer_index = stored->transfer_index;
		return;
	}

	if (to != NULL)
		item->refusal = ledger_rule_currency(from, to);
	if (item->refusal == LEDGER_ACCEPTED)
		item->refusal = item->op == LEDGER_CREDIT
			? ledger_rule_give(from, item->amount, &from_balance)
			: ledger_rule_take(from, item->amount, &from_balance);
	if (item->refusal == LEDGER_ACCEPTED && to != NULL)
		item->refusal = ledger_rule_give(to, item->amount, &to_balance);
	if (item->refusal != LEDGER_ACCEPTED)
		return;

	/* accepted: apply it and queue its writes */
	if (to != NULL)
		item->transfer_index = (*ntransfers)++;
	from->balance = from_balance;
	from->touched = true;
	push_entry(writes, from, item->op == LEDGER_CREDIT ? item->amount : -item->amount,
			   item->transfer_index, item->key);
	if (to != NULL)
	{
		to->balance = to_balance;
		to->touched = true;
		push_entry(writes, to, item->amount, item->transfer_index, item->key);
		ledger_column_push(&writes->transfer_from, Int64GetDatum(from->account_id), false);
		ledger_column_push(&writes->transfer_to, Int64GetDatum(to->account_id), false);
		ledger_column_push(&writes->transfer_amount, Int64GetDatum(item->amount), false);
		ledger_column_push(&writes->transfer_key, PointerGetDatum(item->key), item->key == NULL);
	}
	else
		item->result = from_balance;

	if (item->key != NULL)
	{
		stored = ledger_keys_add(keys, item);
		stored->result = item->result;
		stored->transfer_index = item->transfer_index;
	}
}

/*
 * Post items in order in the caller's transaction (see the header
 * comment).  Each item ends with its refusal (LEDGER_ACCEPTED or why
 * not) and, accepted, its result: the new balance, or the transfer id.
 * single: the items are one single call's (see above for what changes).
 */
void
ledger_post_items(LedgerItem *items, int nitems, bool single)
{
	AccountSet	accounts;
	LedgerKeys *keys;
	LedgerWrites writes;
	int			ntransfers = 0;
	int64	   *transfer_ids = NULL;

	Assert(!single || nitems == 1);
	ledger_prepare_write();
	SPI_connect();

	for (int i = 0; i < nitems; i++)
	{
		items[i].refusal = ledger_rule_request(&items[i]);
		items[i].result = 0;
		items[i].from = items[i].to = NULL;
		items[i].missing = NULL;
		items[i].transfer_index = -1;
	}
	lock_item_accounts(items, nitems, &accounts);
	keys = ledger_keys_read(items, nitems);

	memset(&writes, 0, sizeof(writes));
	for (int i = 0; i < nitems; i++)
		decide_item(&items[i], &accounts, keys, &writes, &ntransfers);

	if (ntransfers > 0)
		transfer_ids = ledger_next_transfer_ids(ntransfers);
	if (!ledger_keys_claim(keys, transfer_ids))
	{
		LedgerStoredKey *stored;

		if (!single)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("an idempotency key of this batch was used concurrently"),
					 errhint("Retry the batch: items whose key is now used will replay.")));

		/* the other transaction committed the same key: its result is ours */
		keys = ledger_keys_read(items, 1);
		stored = ledger_keys_find(keys, items[0].key);
		if (stored == NULL)
			elog(ERROR, "ledger: idempotency key \"%s\" conflicted but cannot be found",
				 text_to_cstring(items[0].key));
		items[0].refusal = ledger_rule_replay(stored, &items[0]);
		items[0].result = stored->result;
		SPI_finish();
		return;
	}

	for (int i = 0; i < nitems; i++)
		if (items[i].refusal == LEDGER_ACCEPTED && items[i].transfer_index >= 0)
			items[i].result = transfer_ids[items[i].transfer_index];
	ledger_write(accounts.accounts, accounts.count, &writes, transfer_ids);
	SPI_finish();
}

/* A single call: its one item's result, or its refusal raised. */
static int64
post_single(LedgerItem *item)
{
	ledger_post_items(item, 1, true);
	if (item->refusal != LEDGER_ACCEPTED)
		ledger_raise_refusal(item);
	return item->result;
}

/* ledger_credit and ledger_debit. */
static int64
post_to_account(FunctionCallInfo fcinfo, LedgerOperation op)
{
	LedgerItem	item = {0};
	int64		result;

	item.op = op;
	item.account = ledger_arg_name(fcinfo, 0, "account");
	item.amount = ledger_arg_amount(fcinfo, 1);
	item.key = ledger_arg_key(fcinfo, 2);

	/* without a key, one direct update usually does it all */
	if (item.key == NULL)
	{
		ledger_prepare_write();
		if (ledger_direct_post(item.account, item.amount, op == LEDGER_DEBIT, &result))
			return result;
	}
	return post_single(&item);
}

/*
 * ledger_credit(account text, amount bigint, idempotency_key text DEFAULT NULL)
 *	 RETURNS bigint
 *
 * Adds money; returns the new balance.  Locks: the account row, to COMMIT.
 */
PG_FUNCTION_INFO_V1(ledger_credit);
Datum
ledger_credit(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(post_to_account(fcinfo, LEDGER_CREDIT));
}

/*
 * ledger_debit(account text, amount bigint, idempotency_key text DEFAULT NULL)
 *	 RETURNS bigint
 *
 * Takes money out unless that would go below the floor (LG001); returns
 * the new balance.  Locks: the account row, to COMMIT.
 */
PG_FUNCTION_INFO_V1(ledger_debit);
Datum
ledger_debit(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(post_to_account(fcinfo, LEDGER_DEBIT));
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
	LedgerItem	item = {0};

	item.op = LEDGER_TRANSFER;
	item.account = ledger_arg_name(fcinfo, 0, "from_account");
	item.to_account = ledger_arg_name(fcinfo, 1, "to_account");
	item.amount = ledger_arg_amount(fcinfo, 2);
	item.key = ledger_arg_key(fcinfo, 3);
	PG_RETURN_INT64(post_single(&item));
}
