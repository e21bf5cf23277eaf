/*-------------------------------------------------------------------------
 *
 * posting.c
 *	  The one way money moves: ledger_post_items, for single calls, batches,
 *	  holds and their ends alike; and the verbs that use it, ledger_credit,
 *	  ledger_debit and ledger_transfer (the holds' are in holds.c).
 *
 * A posting of any number of items runs in the caller's transaction:
 *
 *	1. the request rules (rules.c): names, amounts, keys, a transfer to
 *	   itself; a capture's or release's hold is read, for its account;
 *	2. every account the items name is locked FOR UPDATE, in account_id
 *	   order (account.c), and read; the clock is read, and what the
 *	   pending holds of each account reserve at that time; a capture's or
 *	   release's hold is read again, under the lock;
 *	3. the idempotency keys the items use are read (idempotency.c);
 *	4. the items are decided in order, in memory, against the locked
 *	   balances: a used key replays or conflicts, otherwise the rules of
 *	   rules.c (take against what is available, give, currency, capture);
 *	   a refused item changes nothing, so no subtransaction is needed;
 *	5. the keys of accepted items are claimed;
 *	6. everything is written: balances, transfers, journal entries, holds
 *	   and their ends (write.c), through the table access method or, when
 *	   the tables need it, through SQL.
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
 * Escrow mode (escrow.c) changes step 2 and 4 for the accounts in it:
 * their rows are read, not locked (but those of holds and their ends
 * still are), and their slots in shared memory pinned; each item is
 * decided with the account's slot locked, by the same rules, against the
 * worst case of what is in flight, and if accepted reserves its effect
 * there and draws its entry ids.  Their entries carry no balance_after
 * (the folder fills it) and their balance rows are not written.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ledger.h"

/* The accounts a posting locked, by name. */
typedef struct AccountSet
{
	LedgerAccount *accounts;
	int			count;
	LedgerNameIndex *index;
} AccountSet;

/* Ids a posting draws once its items are decided. */
typedef struct NewRows
{
	int			transfers;
	int			holds;
} NewRows;

static bool names_accounts(const LedgerItem *item);
static void lock_item_accounts(LedgerItem *items, int nitems, AccountSet *set);
static LedgerAccount *find_account(AccountSet *set, text *name);
static void read_holds(LedgerItem *items, int nitems, bool under_lock);
static void decide_item(LedgerItem *item, AccountSet *set, LedgerKeys *keys,
						LedgerWrites *writes, NewRows *rows, TimestampTz now);
static void decide_hold(LedgerItem *item, LedgerAccount *account,
						LedgerWrites *writes, NewRows *rows, TimestampTz now);
static void decide_capture(LedgerItem *item, LedgerAccount *from, LedgerAccount *to,
						   LedgerWrites *writes, NewRows *rows, TimestampTz now);
static void decide_end(LedgerItem *item, LedgerAccount *account,
					   LedgerWrites *writes, TimestampTz now);

/* Whether the item names accounts to lock (a refused one does not). */
static bool
names_accounts(const LedgerItem *item)
{
	return item->refusal == LEDGER_ACCEPTED && item->account != NULL;
}

/* Whether an item makes or ends a hold: its account's row is locked in any mode. */
static bool
touches_holds(const LedgerItem *item)
{
	return item->op == LEDGER_HOLD || item->op == LEDGER_CAPTURE ||
		item->op == LEDGER_RELEASE || item->op == LEDGER_EXPIRE;
}

/*
 * Step 2: lock the distinct names of the items still accepted -- those in
 * escrow mode are pinned instead, unless an item makes or ends a hold on
 * them.  An account found in escrow mode that can no longer be pinned
 * (switched to locked mode meanwhile) is locked after the others.
 */
static void
lock_item_accounts(LedgerItem *items, int nitems, AccountSet *set)
{
	text	  **names = palloc(sizeof(text *) * nitems * 2);
	bool	   *must_lock = palloc0(sizeof(bool) * nitems * 2);
	int			relock = 0;
	bool		escrow = false;

	set->count = 0;
	set->index = ledger_names_create(nitems * 2);
	for (int i = 0; i < nitems; i++)
	{
		text	   *both[2] = {items[i].account, items[i].to_account};

		if (!names_accounts(&items[i]))
			continue;
		for (int n = 0; n < 2; n++)
		{
			int			at;

			if (both[n] == NULL)
				continue;
			at = ledger_names_find(set->index, both[n]);
			if (at < 0)
			{
				at = set->count++;
				ledger_names_add(set->index, both[n], at);
				names[at] = both[n];
			}
			must_lock[at] |= n == 0 && touches_holds(&items[i]);
		}
	}
	set->accounts = palloc(sizeof(LedgerAccount) * Max(set->count, 1));
	ledger_lock_accounts(set->count, names, must_lock, set->accounts);

	for (int a = 0; a < set->count; a++)
	{
		LedgerAccount *account = &set->accounts[a];

		if (!account->found || !account->escrow)
			continue;
		escrow = true;
		if (!ledger_escrow_pin(account) && !account->row_locked)
		{
			names[relock] = names[a];
			must_lock[relock++] = true;
		}
	}
	if (relock > 0)
	{
		LedgerAccount *again = palloc(sizeof(LedgerAccount) * relock);

		ledger_lock_accounts(relock, names, must_lock, again);
		for (int r = 0; r < relock; r++)
		{
			LedgerAccount *account = find_account(set, names[r]);

			*account = again[r];
			if (account->found && account->escrow && !ledger_escrow_pin(account))
				elog(ERROR, "ledger: account \"%s\" is in escrow mode but cannot be pinned",
					 text_to_cstring(names[r]));
		}
	}
	if (escrow)
		ledger_fold_ensure();
}

static LedgerAccount *
find_account(AccountSet *set, text *name)
{
	return &set->accounts[ledger_names_find(set->index, name)];
}

/*
 * The holds of captures, releases and expiries.  Before the lock: for the
 * held account's name (LG006 if there is no such hold; a capture to the
 * held account itself is 22023).  Under the lock: what became of the hold
 * while we waited.
 */
static void
read_holds(LedgerItem *items, int nitems, bool under_lock)
{
	for (int i = 0; i < nitems; i++)
	{
		LedgerItem *item = &items[i];

		if (item->refusal != LEDGER_ACCEPTED ||
			(item->op != LEDGER_CAPTURE && item->op != LEDGER_RELEASE &&
			 item->op != LEDGER_EXPIRE))
			continue;
		ledger_read_hold(item->hold_id, &item->hold);
		if (under_lock)
			continue;
		if (!item->hold.found)
			item->refusal = LEDGER_REFUSE_HOLD_NOT_FOUND;
		else
		{
			ledger_rule_transfer_hold(item);
			item->account = item->hold.account;
			if (item->to_account != NULL && ledger_same_text(item->account, item->to_account))
				item->refusal = LEDGER_REFUSE_INVALID;
		}
	}
}

/*
 * Queue one journal entry.  An escrow account's has its id drawn now, at
 * admission, its own created_at, and no balance_after until folded.
 */
static void
push_entry(LedgerWrites *writes, LedgerAccount *account, int64 amount,
		   int transfer_index, text *key, int64 hold_id)
{
	bool		escrow = account->escrow_slot >= 0;

	ledger_column_push(&writes->entry_id,
					   escrow ? Int64GetDatum(ledger_escrow_entry_id(account)) : (Datum) 0,
					   !escrow);
	ledger_column_push(&writes->entry_created, TimestampTzGetDatum(account->created), !escrow);
	ledger_column_push(&writes->entry_account, Int64GetDatum(account->account_id), false);
	ledger_column_push(&writes->entry_amount, Int64GetDatum(amount), false);
	ledger_column_push(&writes->entry_balance, Int64GetDatum(account->balance), escrow);
	ledger_column_push(&writes->entry_transfer, Int32GetDatum(transfer_index),
					   transfer_index < 0);
	ledger_column_push(&writes->entry_key, PointerGetDatum(key), key == NULL);
	ledger_column_push(&writes->entry_hold, Int64GetDatum(hold_id), hold_id == 0);
}

/* Queue one transfer row. */
static void
push_transfer(LedgerWrites *writes, const LedgerAccount *from, const LedgerAccount *to,
			  int64 amount, text *key)
{
	ledger_column_push(&writes->transfer_from, Int64GetDatum(from->account_id), false);
	ledger_column_push(&writes->transfer_to, Int64GetDatum(to->account_id), false);
	ledger_column_push(&writes->transfer_amount, Int64GetDatum(amount), false);
	ledger_column_push(&writes->transfer_key, PointerGetDatum(key), key == NULL);
}

/* Queue the end of a hold: it leaves the pending holds, held shrinks. */
static void
push_end(LedgerWrites *writes, LedgerAccount *account, const LedgerHold *hold,
		 const char *status, int64 captured, const LedgerAccount *to,
		 int transfer_index, int64 result)
{
	account->held -= hold->amount;
	account->touched = true;
	ledger_column_push(&writes->end_hold, Int64GetDatum(hold->hold_id), false);
	ledger_column_push(&writes->end_status, CStringGetTextDatum(status), false);
	ledger_column_push(&writes->end_captured, Int64GetDatum(captured), captured == 0);
	ledger_column_push(&writes->end_to, Int64GetDatum(to != NULL ? to->account_id : 0), to == NULL);
	ledger_column_push(&writes->end_transfer, Int32GetDatum(transfer_index), transfer_index < 0);
	ledger_column_push(&writes->end_result, Int64GetDatum(result), strcmp(status, "captured") != 0);
}

/*
 * The balance a credit, debit or capture returns: the new balance; on an
 * escrow account, the balance as if this transaction committed next (what
 * had committed, and this transaction's own postings, this one included).
 */
static int64
escrow_result(LedgerAccount *account, int64 change, int64 new_balance)
{
	return account->escrow_slot >= 0 ? ledger_escrow_balance(account) + change : new_balance;
}

/* The accounts an item takes money (or a hold) from, and gives money to. */
static void
escrow_roles(const LedgerItem *item, LedgerAccount **taker, LedgerAccount **giver)
{
	*taker = item->op == LEDGER_CREDIT ? NULL : item->from;
	*giver = item->op == LEDGER_CREDIT ? item->from
		: item->op == LEDGER_TRANSFER || item->op == LEDGER_CAPTURE ? item->to : NULL;
}

/*
 * Step 4, one item: decide it against the locked accounts and the keys;
 * if accepted, apply it to the accounts in memory and queue its writes.
 */
static void
decide_item(LedgerItem *item, AccountSet *set, LedgerKeys *keys,
			LedgerWrites *writes, NewRows *rows, TimestampTz now)
{
	LedgerAccount *from;
	LedgerAccount *to = NULL;
	LedgerStoredKey *stored;
	LedgerAccount *taker;
	LedgerAccount *giver;
	bool		escrow;
	int64		from_balance;
	int64		to_balance = 0;

	if (!names_accounts(item))
		return;
	from = find_account(set, item->account);
	if (item->to_account != NULL)
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
		item->hold_index = stored->hold_index;
		return;
	}

	/* escrow accounts: decided with their slots locked (escrow.c) */
	escrow_roles(item, &taker, &giver);
	escrow = (taker != NULL && taker->escrow_slot >= 0) ||
		(giver != NULL && giver->escrow_slot >= 0);
	memset(&item->taken, 0, sizeof(item->taken));
	memset(&item->given, 0, sizeof(item->given));
	if (escrow)
		ledger_escrow_begin(taker, giver, item->op != LEDGER_HOLD &&
							item->op != LEDGER_RELEASE && item->op != LEDGER_EXPIRE);

	switch (item->op)
	{
		case LEDGER_HOLD:
			decide_hold(item, from, writes, rows, now);
			break;
		case LEDGER_CAPTURE:
			decide_capture(item, from, to, writes, rows, now);
			break;
		case LEDGER_RELEASE:
		case LEDGER_EXPIRE:
			decide_end(item, from, writes, now);
			break;
		default:
			if (to != NULL)
				item->refusal = ledger_rule_currency(from, to);
			if (item->refusal == LEDGER_ACCEPTED)
				item->refusal = item->op == LEDGER_CREDIT
					? ledger_rule_give(from, item->amount, &from_balance)
					: ledger_rule_take(from, item->amount, &from_balance);
			if (item->refusal == LEDGER_ACCEPTED && to != NULL)
				item->refusal = ledger_rule_give(to, item->amount, &to_balance);
			if (item->refusal != LEDGER_ACCEPTED)
				break;

			/* accepted: apply it and queue its writes */
			if (item->op == LEDGER_CREDIT)
				item->given.credit = item->amount;
			else
				item->taken.debit = item->amount;
			if (to != NULL)
				item->given.credit = item->amount;
			if (to != NULL)
				item->transfer_index = rows->transfers++;
			from->balance = from_balance;
			from->touched = true;
			push_entry(writes, from, item->op == LEDGER_CREDIT ? item->amount : -item->amount,
					   item->transfer_index, item->key, 0);
			if (to != NULL)
			{
				to->balance = to_balance;
				to->touched = true;
				push_entry(writes, to, item->amount, item->transfer_index, item->key, 0);
				push_transfer(writes, from, to, item->amount, item->key);
			}
			else
				item->result = escrow_result(from, item->op == LEDGER_CREDIT
											 ? item->amount : -item->amount, from_balance);
			break;
	}

	if (escrow)
	{
		bool		accepted = item->refusal == LEDGER_ACCEPTED;

		ledger_escrow_end(taker, giver, accepted ? &item->taken : NULL,
						  accepted ? &item->given : NULL);
	}

	if (item->refusal == LEDGER_ACCEPTED && item->key != NULL)
	{
		stored = ledger_keys_add(keys, item);
		stored->result = item->result;
		stored->transfer_index = item->transfer_index;
		stored->hold_index = item->hold_index;
	}
}

/*
 * A hold reserves amount by the take rule, against what is available;
 * the balance is unchanged.
 */
static void
decide_hold(LedgerItem *item, LedgerAccount *account, LedgerWrites *writes,
			NewRows *rows, TimestampTz now)
{
	TimestampTz expires_at = 0;

	item->refusal = ledger_rule_hold(account, item->amount);
	if (item->refusal == LEDGER_ACCEPTED && item->expires_in != NULL)
		item->refusal = ledger_rule_expiry(item->expires_in, now, &expires_at);
	if (item->refusal != LEDGER_ACCEPTED)
		return;
	account->reserved += item->amount;
	account->held += item->amount;
	account->touched = true;
	item->taken.hold = item->amount;
	item->hold_index = rows->holds++;
	ledger_column_push(&writes->hold_account, Int64GetDatum(account->account_id), false);
	ledger_column_push(&writes->hold_amount, Int64GetDatum(item->amount), false);
	ledger_column_push(&writes->hold_expires, TimestampTzGetDatum(expires_at),
					   item->expires_in == NULL);
	ledger_column_push(&writes->hold_key, PointerGetDatum(item->key), item->key == NULL);
}

/*
 * A capture: the rules of ledger_rule_capture, then the hold's reservation
 * is lifted and its amount taken (and given to the destination) by the
 * same rules as a debit or transfer; the hold ends, captured.
 */
static void
decide_capture(LedgerItem *item, LedgerAccount *from, LedgerAccount *to,
			   LedgerWrites *writes, NewRows *rows, TimestampTz now)
{
	const LedgerHold *hold = &item->hold;
	bool		replay;
	int64		from_balance;
	int64		to_balance = 0;

	item->refusal = ledger_rule_capture(item, now, &replay);
	if (item->refusal != LEDGER_ACCEPTED || replay)
	{
		item->result = hold->result;
		return;
	}
	if (item->amount == 0)
		item->amount = hold->amount;

	/* the hold reserves no more: what it held is available to it */
	from->reserved -= hold->amount;
	if (to != NULL)
		item->refusal = ledger_rule_currency(from, to);
	if (item->refusal == LEDGER_ACCEPTED)
		item->refusal = ledger_rule_take(from, item->amount, &from_balance);
	if (item->refusal == LEDGER_ACCEPTED && to != NULL)
		item->refusal = ledger_rule_give(to, item->amount, &to_balance);
	if (item->refusal != LEDGER_ACCEPTED)
	{
		from->reserved += hold->amount;
		return;
	}

	item->taken.debit = item->amount;
	item->taken.ended = hold->amount;
	if (to != NULL)
		item->given.credit = item->amount;
	if (to != NULL)
		item->transfer_index = rows->transfers++;
	from->balance = from_balance;
	push_entry(writes, from, -item->amount, item->transfer_index, NULL, hold->hold_id);
	if (to != NULL)
	{
		to->balance = to_balance;
		to->touched = true;
		push_entry(writes, to, item->amount, item->transfer_index, NULL, 0);
		push_transfer(writes, from, to, item->amount, NULL);
	}
	item->result = escrow_result(from, -item->amount, from_balance);
	push_end(writes, from, hold, "captured", item->amount, to, item->transfer_index,
			 item->result);
}

/*
 * A release, or the sweep's expiry: the hold ends without posting.  A
 * release of a pending hold ends it, released (result 1); a hold already
 * released or expired is left alone (result 0), but one past its expiry
 * that no sweep recorded yet is recorded, expired (result 0).  A captured
 * hold cannot be released (LG007); the sweep passes it by.  The sweep's
 * result is 1 for each expiry it records.
 */
static void
decide_end(LedgerItem *item, LedgerAccount *account, LedgerWrites *writes,
		   TimestampTz now)
{
	const LedgerHold *hold = &item->hold;
	bool		expired = ledger_hold_expired(hold, now);

	item->result = 0;
	if (hold->ended != NULL)
	{
		if (item->op == LEDGER_RELEASE && strcmp(hold->ended, "captured") == 0)
			item->refusal = LEDGER_REFUSE_HOLD_NOT_PENDING;
		return;
	}
	if (item->op == LEDGER_EXPIRE && !expired)
		return;
	if (!expired)
		account->reserved -= hold->amount;
	item->taken.ended = hold->amount;
	push_end(writes, account, hold, expired ? "expired" : "released", 0, NULL, -1, 0);
	item->result = item->op == LEDGER_RELEASE ? !expired : 1;
}

/*
 * Post items in order in the caller's transaction (see the header
 * comment).  Each item ends with its refusal (LEDGER_ACCEPTED or why
 * not) and, accepted, its result: the new balance, the transfer id or the
 * hold id.  single: the items are one single call's: its refusal is
 * raised as an error, and a key committed concurrently replays instead of
 * failing with 40001.
 */
void
ledger_post_items(LedgerItem *items, int nitems, bool single)
{
	AccountSet	accounts;
	LedgerKeys *keys;
	LedgerWrites writes;
	NewRows		rows = {0, 0};
	int64	   *transfer_ids = NULL;
	int64	   *hold_ids = NULL;
	TimestampTz now;

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
		items[i].hold_index = -1;
	}
	read_holds(items, nitems, false);
	lock_item_accounts(items, nitems, &accounts);

	/* the clock of every expiry this posting decides, read under the locks */
	now = GetCurrentTimestamp();
	for (int a = 0; a < accounts.count; a++)
	{
		LedgerAccount *account = &accounts.accounts[a];

		if (account->found && account->escrow_slot >= 0)
		{
			/* ledger_escrow_begin shows what is reserved, item by item */
			if (account->held != 0)
				ledger_escrow_exact_held(account, now);
			continue;
		}
		account->reserved = account->found && account->held != 0
			? ledger_reserved(account->account_id, now) : 0;
	}
	read_holds(items, nitems, true);
	keys = ledger_keys_read(items, nitems);

	memset(&writes, 0, sizeof(writes));
	for (int i = 0; i < nitems; i++)
		decide_item(&items[i], &accounts, keys, &writes, &rows, now);

	if (rows.transfers > 0)
		transfer_ids = ledger_next_ids(ledger_relations()->transfer_sequence, rows.transfers);
	if (rows.holds > 0)
		hold_ids = ledger_next_ids(ledger_relations()->hold_sequence, rows.holds);
	if (!ledger_keys_claim(keys, transfer_ids, hold_ids))
	{
		LedgerStoredKey *stored;

		if (!single)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("an idempotency key of this batch was used concurrently"),
					 errhint("Retry the batch: items whose key is now used will replay.")));

		/* the other transaction committed the same key: its result is ours */
		if (items[0].refusal == LEDGER_ACCEPTED)
		{
			LedgerAccount *taker;
			LedgerAccount *giver;

			escrow_roles(&items[0], &taker, &giver);
			ledger_escrow_undo(taker, &items[0].taken);
			ledger_escrow_undo(giver, &items[0].given);
		}
		keys = ledger_keys_read(items, 1);
		stored = ledger_keys_find(keys, items[0].key);
		if (stored == NULL)
			elog(ERROR, "ledger: idempotency key \"%s\" conflicted but cannot be found",
				 text_to_cstring(items[0].key));
		items[0].refusal = ledger_rule_replay(stored, &items[0]);
		items[0].result = stored->result;
	}
	else
	{
		for (int i = 0; i < nitems; i++)
		{
			if (items[i].refusal != LEDGER_ACCEPTED)
				continue;
			if (items[i].transfer_index >= 0 && items[i].op == LEDGER_TRANSFER)
				items[i].result = transfer_ids[items[i].transfer_index];
			if (items[i].hold_index >= 0)
				items[i].result = hold_ids[items[i].hold_index];
		}
		for (int a = 0; a < accounts.count; a++)
		{
			LedgerAccount *account = &accounts.accounts[a];

			/* an escrow account's row is written only for its held amount */
			if (account->escrow_slot >= 0)
				account->touched &= account->row_locked;
		}
		ledger_write(accounts.accounts, accounts.count, &writes, transfer_ids, hold_ids, now);
	}

	/* the refusal's message names accounts that live until SPI_finish */
	if (single && items[0].refusal != LEDGER_ACCEPTED)
		ledger_raise_refusal(&items[0]);
	SPI_finish();
}

/* A single call: its one item's result; its refusal is raised. */
int64
ledger_post_single(LedgerItem *item)
{
	ledger_post_items(item, 1, true);
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
	return ledger_post_single(&item);
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
 * Takes money out unless that would take what is available below the
 * floor (LG001); returns the new balance.  Locks: the account row, to
 * COMMIT.
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
	PG_RETURN_INT64(ledger_post_single(&item));
}
