/*-------------------------------------------------------------------------
 *
 * direct_write.c
 *	  Postings written straight through the table access method, as COPY
 *	  and the executor's ModifyTable and LockRows nodes do, instead of
 *	  through SQL statements: account row locks, balance updates, journal
 *	  entries and transfer rows, and the shortcut of an unkeyed credit or
 *	  debit (ledger_direct_post).
 *
 * Why: profiles showed the executor, not the data, as the largest cost of
 * a posting -- starting and ending plans with ModifyTable nodes on every
 * call, and in a batch per-row projection and one WAL record per inserted
 * row.  These paths do the same heap and index writes without it.
 *
 * They keep what a statement does on the ledger's tables: the same row
 * locks in the same order (FOR UPDATE, or an UPDATE's own, held to
 * COMMIT), the same snapshots and isolation behaviour (in READ COMMITTED a
 * row updated concurrently is locked in its newest version, or left to the
 * locked path, which re-reads it; under REPEATABLE READ and SERIALIZABLE
 * that is a serialization failure, 40001), SSI predicate locks (the heap
 * and index AMs take them), every CHECK and NOT NULL constraint, unique
 * and other immediate indexes, the replica-identity check of
 * publications, and the WAL of every change.  Whatever a statement would
 * do beyond that (triggers, rules, row-level security...) makes
 * ledger_open_target refuse (relations.c), and every function here then
 * returns false before writing anything: the caller writes through SQL.
 *
 * Every new balance is also checked against its row's floor right here,
 * one comparison, whatever the path decided: a slip anywhere is caught at
 * write time, not by a later audit.  Domain checks on the ledger's own
 * columns are not re-run: the rules (rules.c) check exactly those first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ledger.h"
#include "target.h"

/* Rows per multi-insert call: bounds the memory of huge batches. */
#define ROW_CHUNK		1000

/* Account rows by name, through the unique name index: one scan, rescanned per name. */
typedef struct NameLookup
{
	IndexScanDesc scan;
} NameLookup;

/* Fills the row number i of an append into slot (its columns at attnum). */
typedef void (*FillRow) (TupleTableSlot *slot, const AttrNumber *attnum, int i,
						 void *arg);

/* Journal entries to append: column arrays, or pointers to one row's values. */
typedef struct EntryRows
{
	const Datum *account_id;
	const Datum *amount;
	const Datum *balance_after;
	const bool *balance_null;	/* NULL: none is NULL */
	const Datum *entry_id;		/* drawn already where not entry_id_null */
	const bool *entry_id_null;	/* NULL: all are drawn here */
	const Datum *created;		/* an entry's own created_at ... */
	const bool *created_null;	/* ... where not NULL; else created_at */
	const Datum *transfer_id;
	const bool *transfer_null;
	const Datum *key;
	const bool *key_null;
	const Datum *hold_id;
	const bool *hold_null;
	TimestampTz created_at;
} EntryRows;

/* Transfer rows to append. */
typedef struct TransferRows
{
	const LedgerWrites *writes;
	const int64 *ids;
	TimestampTz created_at;
} TransferRows;

/* A row to lock: where the snapshot saw it, and for which name. */
typedef struct RowToLock
{
	int64		account_id;
	ItemPointerData tid;
	int			name_index;
} RowToLock;

static void insert_index_entries(DirectTarget *target, TupleTableSlot *slot,
								 bool all_indexes);
static void assert_floor(const DirectTarget *accounts, TupleTableSlot *slot);
static void rewrite_balance(DirectTarget *accounts, const LedgerAccount *account,
							TupleTableSlot *slot);
static void append_rows(DirectTarget *target, int count, FillRow fill, void *arg);
static void fill_entry(TupleTableSlot *slot, const AttrNumber *attnum, int i, void *arg);
static void fill_transfer(TupleTableSlot *slot, const AttrNumber *attnum, int i, void *arg);
static void begin_lookup(NameLookup *lookup, DirectTarget *accounts, Snapshot snapshot);
static void end_lookup(NameLookup *lookup);
static bool find_account(NameLookup *lookup, text *name, TupleTableSlot *slot);
static bool same_name(TupleTableSlot *slot, AttrNumber attnum, text *name);
static void raise_concurrent_update(void) pg_attribute_noreturn();
static bool decide_post(const DirectTarget *accounts, TupleTableSlot *current,
						text *name, int64 amount, bool is_debit, int64 *new_balance);
static bool update_balance(DirectTarget *accounts, TupleTableSlot *current,
						   int64 new_balance);
static int	compare_by_account_id(const void *a, const void *b);

/*
 * Index entries for the tuple in slot: all of them, or the summarizing
 * ones only (a HOT update on 16+ that changed a BRIN-indexed column).
 * update = false even for updates: it only withholds a hint for B-tree
 * bottom-up deletion, which matters little here (balance updates are
 * nearly always HOT).
 */
static void
insert_index_entries(DirectTarget *target, TupleTableSlot *slot, bool all_indexes)
{
	List	   *recheck;

	if (target->rri->ri_NumIndices == 0)
		return;
#if PG_VERSION_NUM >= 160000
	recheck = ExecInsertIndexTuples(target->rri, slot, target->estate,
									false, false, NULL, NIL, !all_indexes);
#else
	Assert(all_indexes);
	recheck = ExecInsertIndexTuples(target->rri, slot, target->estate,
									false, false, NULL, NIL);
#endif
	if (recheck != NIL)
		elog(ERROR, "ledger: unexpected deferred index check");
	ResetPerTupleExprContext(target->estate);
}

/*
 * The last line of the floor rule: no balance is ever written below its
 * row's floor, whichever path computed it.
 */
static void
assert_floor(const DirectTarget *accounts, TupleTableSlot *slot)
{
	bool		floor_null;
	bool		balance_null;
	Datum		floor = slot_getattr(slot, accounts->attnum[ACCOUNT_FLOOR], &floor_null);
	Datum		balance = slot_getattr(slot, accounts->attnum[ACCOUNT_BALANCE], &balance_null);

	if (!floor_null && DatumGetInt64(balance) < DatumGetInt64(floor))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("ledger: refusing to write balance " INT64_FORMAT " below its floor " INT64_FORMAT,
						DatumGetInt64(balance), DatumGetInt64(floor)),
				 errdetail("A posting path computed a balance the floor rule forbids; nothing was written.")));
}

/*
 * Gives the account's row version at its ctid, which this transaction
 * holds locked FOR UPDATE (so it cannot have moved), its new balance and
 * held amount; index entries for the new version unless the update was
 * HOT.  slot is a heap tuple slot of the accounts' descriptor.
 */
static void
rewrite_balance(DirectTarget *accounts, const LedgerAccount *account,
				TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(accounts->rel);
	AttrNumber	balance_attnum = accounts->attnum[ACCOUNT_BALANCE];
	AttrNumber	held_attnum = accounts->attnum[ACCOUNT_HELD];
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc0(sizeof(bool) * desc->natts);
	bool	   *replace = palloc0(sizeof(bool) * desc->natts);
	HeapTupleData old;
	Buffer		buffer;
	HeapTuple	updated;

	old.t_self = account->ctid;
	if (!heap_fetch(accounts->rel, SnapshotAny, &old, &buffer, false))
		elog(ERROR, "ledger: a locked account row moved");
	values[balance_attnum - 1] = Int64GetDatum(ledger_stored_balance(account));
	replace[balance_attnum - 1] = true;
	if (held_attnum != InvalidAttrNumber)
	{
		values[held_attnum - 1] = Int64GetDatum(account->held);
		replace[held_attnum - 1] = true;
	}
	updated = heap_modify_tuple(&old, desc, values, nulls, replace);
	ReleaseBuffer(buffer);

	ExecStoreHeapTuple(updated, slot, false);
	assert_floor(accounts, slot);
	ExecConstraints(accounts->rri, slot, accounts->estate);

#if PG_VERSION_NUM >= 160000
	{
		TU_UpdateIndexes update_indexes;

		simple_heap_update(accounts->rel, &old.t_self, updated, &update_indexes);
		if (update_indexes != TU_None)
		{
			/* the slot's tid must be the new version's */
			ExecStoreHeapTuple(updated, slot, false);
			insert_index_entries(accounts, slot, update_indexes == TU_All);
		}
	}
#else
	simple_heap_update(accounts->rel, &old.t_self, updated);
	if (!HeapTupleIsHeapOnly(updated))
	{
		/* the slot's tid must be the new version's */
		ExecStoreHeapTuple(updated, slot, false);
		insert_index_entries(accounts, slot, true);
	}
#endif
	ExecClearTuple(slot);
	ResetPerTupleExprContext(accounts->estate);
	heap_freetuple(updated);
	pfree(values);
	pfree(nulls);
	pfree(replace);
}

/*
 * Sets the balances and held amounts of count accounts, whose row
 * versions at their ctid this transaction holds locked FOR UPDATE.  Returns false, having
 * written nothing, if ledger.accounts needs a statement.
 */
bool
ledger_direct_set_balances(int count, const LedgerAccount *const *accounts)
{
	DirectTarget target;
	TupleTableSlot *slot;

	if (!ledger_open_target(UPDATE_ACCOUNTS, &target))
		return false;
	slot = MakeSingleTupleTableSlot(RelationGetDescr(target.rel), &TTSOpsHeapTuple);
	for (int i = 0; i < count; i++)
		rewrite_balance(&target, accounts[i], slot);
	ExecDropSingleTupleTableSlot(slot);
	ledger_close_target(&target);
	return true;
}

/*
 * Appends count rows to the table open as target, row i filled by fill,
 * in chunks of multi-inserts; every row passes the table's constraints
 * and gets its index entries.
 */
static void
append_rows(DirectTarget *target, int count, FillRow fill, void *arg)
{
	Relation	rel = target->rel;
	int			nslots = Min(count, ROW_CHUNK);
	MemoryContext chunk_context;
	MemoryContext caller_context;
	CommandId	cid = GetCurrentCommandId(true);
	TupleDesc	slot_desc;
	TupleTableSlot **slots;

	/*
	 * The slots share one unreferenced copy of the descriptor: slots of the
	 * relation's own descriptor each register it with the resource owner,
	 * whose lookups are linear, so a thousand of them cost quadratic time.
	 */
	slot_desc = CreateTupleDescCopy(RelationGetDescr(rel));
	slots = palloc(sizeof(TupleTableSlot *) * nslots);
	for (int j = 0; j < nslots; j++)
		slots[j] = MakeSingleTupleTableSlot(slot_desc, table_slot_callbacks(rel));

	/* what heap_multi_insert allocates per call, freed per chunk */
	chunk_context = AllocSetContextCreate(CurrentMemoryContext, "ledger append chunk",
										  ALLOCSET_DEFAULT_SIZES);
	for (int start = 0; start < count; start += ROW_CHUNK)
	{
		int			n = Min(ROW_CHUNK, count - start);

		for (int j = 0; j < n; j++)
		{
			TupleTableSlot *slot = slots[j];

			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * slot_desc->natts);
			fill(slot, target->attnum, start + j, arg);
			ExecStoreVirtualTuple(slot);
			ExecConstraints(target->rri, slot, target->estate);
			ResetPerTupleExprContext(target->estate);
		}
		caller_context = MemoryContextSwitchTo(chunk_context);
		if (n == 1)
			table_tuple_insert(rel, slots[0], cid, 0, NULL);
		else
			table_multi_insert(rel, slots, n, cid, 0, NULL);
		MemoryContextSwitchTo(caller_context);
		MemoryContextReset(chunk_context);
		for (int j = 0; j < n; j++)
			insert_index_entries(target, slots[j], true);
	}
	MemoryContextDelete(chunk_context);

	for (int j = 0; j < nslots; j++)
		ExecDropSingleTupleTableSlot(slots[j]);
	FreeTupleDesc(slot_desc);
	pfree(slots);
}

#define SET_COLUMN(c, value, isnull) \
	(slot->tts_values[attnum[c] - 1] = (value), \
	 slot->tts_isnull[attnum[c] - 1] = (isnull))

/*
 * Journal entry i: a fresh entry_id, drawn in row order under the callers'
 * row locks, so per account ids follow the postings.
 */
static void
fill_entry(TupleTableSlot *slot, const AttrNumber *attnum, int i, void *arg)
{
	EntryRows  *rows = arg;
	Oid			sequence = ledger_relations()->entry_sequence;
	bool		drawn = rows->entry_id_null != NULL && !rows->entry_id_null[i];
	bool		own_time = rows->created_null != NULL && !rows->created_null[i];

	SET_COLUMN(ENTRY_ID, drawn ? rows->entry_id[i]
			   : Int64GetDatum(nextval_internal(sequence, false)), false);
	SET_COLUMN(ENTRY_ACCOUNT, rows->account_id[i], false);
	SET_COLUMN(ENTRY_AMOUNT, rows->amount[i], false);
	SET_COLUMN(ENTRY_BALANCE, rows->balance_after[i],
			   rows->balance_null != NULL && rows->balance_null[i]);
	SET_COLUMN(ENTRY_TRANSFER, rows->transfer_id[i], rows->transfer_null[i]);
	SET_COLUMN(ENTRY_KEY, rows->key[i], rows->key_null[i]);
	if (attnum[ENTRY_HOLD] != InvalidAttrNumber)
		SET_COLUMN(ENTRY_HOLD, rows->hold_id[i], rows->hold_null[i]);
	SET_COLUMN(ENTRY_CREATED, own_time ? rows->created[i]
			   : TimestampTzGetDatum(rows->created_at), false);
}

static void
fill_transfer(TupleTableSlot *slot, const AttrNumber *attnum, int i, void *arg)
{
	TransferRows *rows = arg;
	const LedgerWrites *w = rows->writes;

	SET_COLUMN(TRANSFER_ID, Int64GetDatum(rows->ids[i]), false);
	SET_COLUMN(TRANSFER_FROM, w->transfer_from.values[i], false);
	SET_COLUMN(TRANSFER_TO, w->transfer_to.values[i], false);
	SET_COLUMN(TRANSFER_AMOUNT, w->transfer_amount.values[i], false);
	SET_COLUMN(TRANSFER_KEY, w->transfer_key.values[i], w->transfer_key.nulls[i]);
	SET_COLUMN(TRANSFER_CREATED, TimestampTzGetDatum(rows->created_at), false);
}

#undef SET_COLUMN

/*
 * Appends the journal entries of writes (transfer ids already in place).
 * Returns false, having written nothing, if ledger.entries needs a
 * statement.
 */
bool
ledger_direct_append_entries(LedgerWrites *writes, TimestampTz created_at)
{
	DirectTarget target;
	EntryRows	rows = {
		writes->entry_account.values, writes->entry_amount.values,
		writes->entry_balance.values, writes->entry_balance.nulls,
		writes->entry_id.values, writes->entry_id.nulls,
		writes->entry_created.values, writes->entry_created.nulls,
		writes->entry_transfer.values,
		writes->entry_transfer.nulls, writes->entry_key.values,
		writes->entry_key.nulls, writes->entry_hold.values,
		writes->entry_hold.nulls, created_at
	};

	if (!ledger_open_target(APPEND_ENTRIES, &target))
		return false;
	append_rows(&target, writes->entry_account.count, fill_entry, &rows);
	ledger_close_target(&target);
	return true;
}

/*
 * Appends the transfer rows of writes, with their ids.  Returns false,
 * having written nothing, if ledger.transfers needs a statement.
 */
bool
ledger_direct_append_transfers(LedgerWrites *writes, const int64 *transfer_ids,
							   TimestampTz created_at)
{
	DirectTarget target;
	TransferRows rows = {writes, transfer_ids, created_at};

	if (!ledger_open_target(APPEND_TRANSFERS, &target))
		return false;
	append_rows(&target, writes->transfer_from.count, fill_transfer, &rows);
	ledger_close_target(&target);
	return true;
}

static void
begin_lookup(NameLookup *lookup, DirectTarget *accounts, Snapshot snapshot)
{
#if PG_VERSION_NUM >= 180000
	lookup->scan = index_beginscan(accounts->rel, accounts->name_index, snapshot,
								   NULL, 1, 0);
#else
	lookup->scan = index_beginscan(accounts->rel, accounts->name_index, snapshot,
								   1, 0);
#endif
}

static void
end_lookup(NameLookup *lookup)
{
	index_endscan(lookup->scan);
}

/* The account row named name, as the snapshot sees it, into slot; false
 * if there is none. */
static bool
find_account(NameLookup *lookup, text *name, TupleTableSlot *slot)
{
	ScanKeyData key;

	/* ScanKeyInit compares in the "C" collation, the index's own */
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(name));
	index_rescan(lookup->scan, &key, 1, NULL, 0);
	return index_getnext_slot(lookup->scan, ForwardScanDirection, slot);
}

/* Whether the text column attnum of the row in slot is name, byte for byte. */
static bool
same_name(TupleTableSlot *slot, AttrNumber attnum, text *name)
{
	bool		isnull;
	text	   *other = DatumGetTextPP(slot_getattr(slot, attnum, &isnull));

	return !isnull && ledger_same_text(other, name);
}

/*
 * What an UPDATE or SELECT ... FOR UPDATE raises under REPEATABLE READ or
 * SERIALIZABLE when the row changed after the snapshot.
 */
static void
raise_concurrent_update(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not serialize access due to concurrent update")));
}

/*
 * The decision of ledger_direct_post, by the rules every posting follows
 * (rules.c), on the row as the snapshot sees it: true with the new
 * balance if the posting is allowed.  An account with pending holds is
 * left to the locked path, which reads what they reserve, and an account
 * in escrow mode to the escrow path (its balance row is the folder's).
 */
static bool
decide_post(const DirectTarget *accounts, TupleTableSlot *current, text *name,
			int64 amount, bool is_debit, int64 *new_balance)
{
	LedgerAccount account = {0};
	bool		isnull;

	if (accounts->attnum[ACCOUNT_HELD] != InvalidAttrNumber &&
		DatumGetInt64(slot_getattr(current, accounts->attnum[ACCOUNT_HELD], &isnull)) != 0)
		return false;
	if (accounts->attnum[ACCOUNT_ESCROW] != InvalidAttrNumber &&
		DatumGetBool(slot_getattr(current, accounts->attnum[ACCOUNT_ESCROW], &isnull)))
		return false;

	account.name = name;
	account.found = true;
	account.balance = DatumGetInt64(slot_getattr(current, accounts->attnum[ACCOUNT_BALANCE],
												 &isnull));
	account.min_balance = DatumGetInt64(slot_getattr(current, accounts->attnum[ACCOUNT_FLOOR],
													 &isnull));
	account.has_floor = !isnull;
	return (is_debit ? ledger_rule_take(&account, amount, new_balance)
			: ledger_rule_give(&account, amount, new_balance)) == LEDGER_ACCEPTED;
}

/*
 * Give the row in current a new balance with an UPDATE's own row lock
 * (waiting for a concurrent writer).  False, having written nothing, when
 * the row changed meanwhile under READ COMMITTED (the locked path
 * re-reads it) or by this very command; 40001 under REPEATABLE READ and
 * SERIALIZABLE.
 */
static bool
update_balance(DirectTarget *accounts, TupleTableSlot *current, int64 new_balance)
{
	TupleDesc	desc = RelationGetDescr(accounts->rel);
	TupleTableSlot *updated = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	TM_Result	result;
	TM_FailureData failure;
	LockTupleMode lockmode;
#if PG_VERSION_NUM >= 160000
	TU_UpdateIndexes update_indexes;
#else
	bool		update_indexes;
#endif

	slot_getallattrs(current);
	memcpy(updated->tts_values, current->tts_values, sizeof(Datum) * desc->natts);
	memcpy(updated->tts_isnull, current->tts_isnull, sizeof(bool) * desc->natts);
	updated->tts_values[accounts->attnum[ACCOUNT_BALANCE] - 1] = Int64GetDatum(new_balance);
	ExecStoreVirtualTuple(updated);
	assert_floor(accounts, updated);
	ExecConstraints(accounts->rri, updated, accounts->estate);

	result = table_tuple_update(accounts->rel, &current->tts_tid, updated,
								GetCurrentCommandId(true), GetActiveSnapshot(),
								InvalidSnapshot, true, &failure, &lockmode,
								&update_indexes);
	switch (result)
	{
		case TM_Ok:
#if PG_VERSION_NUM >= 160000
			if (update_indexes != TU_None)
				insert_index_entries(accounts, updated, update_indexes == TU_All);
#else
			if (update_indexes)
				insert_index_entries(accounts, updated, true);
#endif
			break;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				raise_concurrent_update();
			break;
		case TM_SelfModified:
			break;
		default:
			elog(ERROR, "ledger: unexpected result %d updating an account", (int) result);
	}
	ExecDropSingleTupleTableSlot(updated);
	return result == TM_Ok;
}

/*
 * ledger_credit or ledger_debit without a key, when nothing stands in the
 * way: finds the row, decides by the take or give rule, updates the
 * balance (which takes the row lock, waiting for a concurrent writer) and
 * appends the entry.  Returns true with *new_balance set if it posted;
 * false, having written nothing, when the locked path must decide: no
 * such account, a refusal (the locked path raises the precise error), a
 * row updated concurrently (READ COMMITTED: the locked path re-reads
 * it), or a table that needs a statement.
 */
bool
ledger_direct_post(text *name, int64 amount, bool is_debit, int64 *new_balance)
{
	DirectTarget accounts;
	DirectTarget journal;
	TupleTableSlot *current;
	NameLookup	lookup;
	bool		posted;

	if (!ledger_open_target(UPDATE_ACCOUNTS, &accounts))
		return false;
	if (!ledger_open_target(APPEND_ENTRIES, &journal))
	{
		ledger_close_target(&accounts);
		return false;
	}

	/* the snapshot an UPDATE statement here would take */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	current = table_slot_create(accounts.rel, NULL);
	begin_lookup(&lookup, &accounts, GetActiveSnapshot());
	posted = find_account(&lookup, name, current) &&
		decide_post(&accounts, current, name, amount, is_debit, new_balance) &&
		update_balance(&accounts, current, *new_balance);
	end_lookup(&lookup);

	if (posted)
	{
		bool		isnull;
		Datum		account_id = slot_getattr(current, accounts.attnum[ACCOUNT_ID], &isnull);
		Datum		signed_amount = Int64GetDatum(is_debit ? -amount : amount);
		Datum		balance_after = Int64GetDatum(*new_balance);
		Datum		none = (Datum) 0;
		bool		null = true;
		/* read after the row lock: per account, created_at never decreases */
		EntryRows	entry = {&account_id, &signed_amount, &balance_after, NULL,
			NULL, NULL, NULL, NULL,
		&none, &null, &none, &null, &none, &null, GetCurrentTimestamp()};

		append_rows(&journal, 1, fill_entry, &entry);
	}

	ExecDropSingleTupleTableSlot(current);
	PopActiveSnapshot();
	ledger_close_target(&journal);
	ledger_close_target(&accounts);
	return posted;
}

/* An account row, as the rules read it, from slot. */
static void
read_account(LedgerAccount *account, TupleTableSlot *slot, const AttrNumber *attnum)
{
	bool		isnull;

	account->found = true;
	account->ctid = slot->tts_tid;
	account->account_id = DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_ID], &isnull));
	account->balance = DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_BALANCE], &isnull));
	account->row_balance = account->balance;
	account->min_balance = DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_FLOOR], &isnull));
	account->has_floor = !isnull;
	account->currency = TextDatumGetCString(slot_getattr(slot, attnum[ACCOUNT_CURRENCY], &isnull));
	account->held = attnum[ACCOUNT_HELD] == InvalidAttrNumber ? 0
		: DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_HELD], &isnull));
	account->escrow = attnum[ACCOUNT_ESCROW] != InvalidAttrNumber &&
		DatumGetBool(slot_getattr(slot, attnum[ACCOUNT_ESCROW], &isnull));
}

static int
compare_by_account_id(const void *a, const void *b)
{
	int64		x = ((const RowToLock *) a)->account_id;
	int64		y = ((const RowToLock *) b)->account_id;

	return (x > y) - (x < y);
}

/*
 * SELECT ... FROM ledger.accounts WHERE name = ANY(names) ORDER BY
 * account_id FOR UPDATE, without the executor: every row found is locked
 * in account_id order (so concurrent postings queue instead of
 * deadlocking), the newest version in READ COMMITTED (re-checked to still
 * carry its name, as the statement's EvalPlanQual would), a serialization
 * failure (40001) if it changed since the snapshot under REPEATABLE READ
 * or SERIALIZABLE, all as ExecLockRows does.  names must be distinct;
 * accounts[i] gets names[i]'s row (found stays false if there is none).
 * A row in escrow mode is only read, as the snapshot sees it, unless
 * must_lock[i] (escrow.c admits its postings without the row lock).
 * Returns false, having locked nothing, when the statement must do it.
 */
bool
ledger_direct_lock_accounts(int count, text **names, const bool *must_lock,
							LedgerAccount *accounts)
{
	DirectTarget target;
	TupleTableSlot *slot;
	RowToLock  *found;
	int			nfound = 0;
	NameLookup	lookup;
	Snapshot	snapshot;
	CommandId	cid;
	const AttrNumber *attnum;
	uint8		flags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS;

	if (!ledger_open_target(LOCK_ACCOUNTS, &target))
		return false;
	attnum = target.attnum;

	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	snapshot = GetActiveSnapshot();
	cid = GetCurrentCommandId(true);
	if (!IsolationUsesXactSnapshot())
		flags |= TUPLE_LOCK_FLAG_FIND_LAST_VERSION;

	slot = table_slot_create(target.rel, NULL);
	found = palloc(sizeof(RowToLock) * Max(count, 1));
	begin_lookup(&lookup, &target, snapshot);
	for (int i = 0; i < count; i++)
	{
		bool		isnull;

		if (!find_account(&lookup, names[i], slot))
			continue;
		if (!must_lock[i] && attnum[ACCOUNT_ESCROW] != InvalidAttrNumber &&
			DatumGetBool(slot_getattr(slot, attnum[ACCOUNT_ESCROW], &isnull)))
		{
			read_account(&accounts[i], slot, attnum);
			accounts[i].row_locked = false;
			continue;
		}
		found[nfound].account_id =
			DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_ID], &isnull));
		found[nfound].tid = slot->tts_tid;
		found[nfound].name_index = i;
		nfound++;
	}
	end_lookup(&lookup);
	qsort(found, nfound, sizeof(RowToLock), compare_by_account_id);

	for (int k = 0; k < nfound; k++)
	{
		LedgerAccount *account = &accounts[found[k].name_index];
		TM_FailureData failure;
		TM_Result	result;

		result = table_tuple_lock(target.rel, &found[k].tid, snapshot, slot,
								  cid, LockTupleExclusive, LockWaitBlock,
								  flags, &failure);
		switch (result)
		{
			case TM_Ok:
				break;
			case TM_Updated:
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					raise_concurrent_update();
				if (result == TM_Updated)
					elog(ERROR, "ledger: unexpected table_tuple_lock status %d", (int) result);
				/* gone (accounts are never deleted): as if not found */
				continue;
			case TM_SelfModified:
				/* as ExecLockRows: changed by a later command of ours */
				continue;
			default:
				elog(ERROR, "ledger: unexpected table_tuple_lock status %d", (int) result);
		}
		/* a newer version than the snapshot's must still match the query */
		if (failure.traversed &&
			!same_name(slot, attnum[ACCOUNT_NAME], names[found[k].name_index]))
			continue;

		read_account(account, slot, attnum);
		account->row_locked = true;
	}

	ExecDropSingleTupleTableSlot(slot);
	PopActiveSnapshot();
	ledger_close_target(&target);
	return true;
}
