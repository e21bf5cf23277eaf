/*-------------------------------------------------------------------------
 *
 * direct_write.c
 *	  Postings written straight through the table access method, as COPY
 *	  and the executor's own ModifyTable do, instead of through SQL
 *	  statements: the single credit or debit without a key, and the writes
 *	  of a batch.
 *
 * Why: profiles showed the executor, not the data, as the largest cost of
 * a posting -- starting and ending a plan with two ModifyTable nodes per
 * call, and per row in a batch projection and one WAL record per inserted
 * row.  These paths do the same heap and index writes without it.
 *
 * They keep every rule of a statement that applies to the ledger's tables:
 * the same row lock (the update's own, held to COMMIT), the same snapshot
 * and isolation behaviour (in READ COMMITTED a row updated concurrently is
 * left to the SQL path, which re-checks it like any UPDATE; under
 * REPEATABLE READ and SERIALIZABLE that is a serialization failure, 40001,
 * as for an UPDATE), the balance CHECK, NOT NULL, unique and any other
 * immediate index, and the WAL of every change.
 *
 * What a statement would add and these paths do not: triggers, column
 * defaults and domain checks, generated columns, row-level security.  The
 * ledger's own tables have none of that on the columns written here: the
 * values are checked by the callers (amounts positive, keys 1 to 255
 * bytes, the floor under the row lock).  If an administrator adds any of
 * it (a trigger for an outbox, a new column with a default, a generated
 * column, row-level security, a deferrable unique index), the functions
 * return false before writing anything and the caller writes through SQL,
 * so nothing is skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"

#include "ledger.h"

/* Rows per multi-insert call: bounds the memory of huge batches. */
#define ENTRY_CHUNK		1000

/* The columns of ledger.entries, in the order append_entries fills them. */
static const char *const entry_columns[] = {
	"entry_id", "account_id", "amount", "balance_after", "transfer_id",
	"idempotency_key", "created_at"
};
#define ENTRY_NCOLUMNS	lengthof(entry_columns)

/* The columns of ledger.transfers, in the order insert_transfer fills them. */
static const char *const transfer_columns[] = {
	"transfer_id", "from_account_id", "to_account_id", "amount",
	"idempotency_key", "created_at"
};
#define TRANSFER_NCOLUMNS	lengthof(transfer_columns)

/*
 * Table CHECKs whose rule the code enforces itself before every direct
 * write (the floor under the row lock; a transfer's accounts differ by
 * name, hence by id); any other CHECK is evaluated as a statement would.
 */
static const char *const enforced_checks[] = {
	"accounts_balance_floor", "transfers_distinct_accounts"
};

/*
 * Where the ledger's relations and columns are, looked up once per backend
 * and forgotten on any relcache invalidation (ALTER TABLE, DROP EXTENSION
 * ...): a posting would otherwise spend a tenth of its time in catalog
 * lookups.
 */
typedef struct LedgerCatalog
{
	bool		valid;
	Oid			accounts;
	Oid			entries;
	Oid			entry_sequence;
	Oid			name_index;		/* InvalidOid if missing */
	AttrNumber	account_id;		/* columns of ledger.accounts */
	AttrNumber	balance;
	AttrNumber	min_balance;
	AttrNumber	currency;
	AttrNumber	entry[ENTRY_NCOLUMNS];	/* columns of ledger.entries */
	bool		entries_known;	/* no columns beyond entry_columns */
	Oid			transfers;
	Oid			transfer_sequence;
	AttrNumber	transfer[TRANSFER_NCOLUMNS];	/* columns of ledger.transfers */
	bool		transfers_known;	/* no columns beyond transfer_columns */
} LedgerCatalog;

static LedgerCatalog catalog;
static bool catalog_callback_registered = false;

/* A ledger table open for a direct write, with its indexes. */
typedef struct DirectTarget
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	bool		other_checks;	/* CHECKs beyond enforced_checks */
} DirectTarget;

/* ledger.entries open for appending, and where its columns are. */
typedef struct Journal
{
	DirectTarget target;
	AttrNumber	attnum[ENTRY_NCOLUMNS];
	Oid			sequence;		/* of entry_id */
} Journal;

static void forget_catalog(Datum arg, Oid relid);
static bool known_columns(Oid relid, const char *const *names, int count,
						  AttrNumber *attnum);
static const LedgerCatalog *ledger_catalog(void);
static Oid	ledger_relid(const char *name, bool missing_ok);
static bool open_target(Oid relid, bool for_update, DirectTarget *target);
static void close_target(DirectTarget *target);
static void insert_index_entries(DirectTarget *target, TupleTableSlot *slot,
								 bool all_indexes);
static bool open_journal(Journal *journal);
static void append_entries(Journal *journal, int count, const Datum *account_id,
						   const Datum *amount, const Datum *balance_after,
						   const Datum *transfer_id, const bool *transfer_null,
						   const Datum *key, const bool *key_null,
						   TimestampTz created_at);
typedef struct NameLookup NameLookup;
static void begin_lookup(NameLookup *lookup, DirectTarget *accounts,
						 Snapshot snapshot);
static void end_lookup(NameLookup *lookup);
static bool find_account(NameLookup *lookup, text *name, TupleTableSlot *slot);
static int	compare_by_account_id(const void *a, const void *b);

static Oid
ledger_relid(const char *name, bool missing_ok)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid("ledger", false));

	if (!OidIsValid(relid) && !missing_ok)
		elog(ERROR, "ledger: relation ledger.%s is missing", name);
	return relid;
}

static void
forget_catalog(Datum arg, Oid relid)
{
	catalog.valid = false;
}

/*
 * Whether relid has exactly the columns names[0..count-1] (in any order,
 * dropped ones aside); their numbers into attnum.
 */
static bool
known_columns(Oid relid, const char *const *names, int count, AttrNumber *attnum)
{
	int			live_columns = 0;
	bool		known = true;

	for (int c = 0; c < count; c++)
	{
		attnum[c] = get_attnum(relid, names[c]);
		if (attnum[c] == InvalidAttrNumber)
			known = false;
	}
	for (AttrNumber a = 1;; a++)
	{
		HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
											Int16GetDatum(a));

		if (!HeapTupleIsValid(tuple))
			break;
		if (!((Form_pg_attribute) GETSTRUCT(tuple))->attisdropped)
			live_columns++;
		ReleaseSysCache(tuple);
	}
	return known && live_columns == count;
}

static const LedgerCatalog *
ledger_catalog(void)
{

	if (catalog.valid)
		return &catalog;
	if (!catalog_callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_catalog, (Datum) 0);
		catalog_callback_registered = true;
	}

	catalog.accounts = ledger_relid("accounts", false);
	catalog.entries = ledger_relid("entries", false);
	catalog.entry_sequence = ledger_relid("entries_entry_id_seq", false);
	catalog.name_index = ledger_relid("accounts_name_key", true);
	catalog.account_id = get_attnum(catalog.accounts, "account_id");
	catalog.balance = get_attnum(catalog.accounts, "balance");
	catalog.min_balance = get_attnum(catalog.accounts, "min_balance");
	catalog.currency = get_attnum(catalog.accounts, "currency");
	if (catalog.account_id == InvalidAttrNumber ||
		catalog.balance == InvalidAttrNumber ||
		catalog.min_balance == InvalidAttrNumber ||
		catalog.currency == InvalidAttrNumber)
		elog(ERROR, "ledger: ledger.accounts is missing a column");

	/* exactly the known columns: a new one may want its default */
	catalog.entries_known = known_columns(catalog.entries, entry_columns,
										  ENTRY_NCOLUMNS, catalog.entry);
	catalog.transfers = ledger_relid("transfers", false);
	catalog.transfer_sequence = ledger_relid("transfers_transfer_id_seq", false);
	catalog.transfers_known = known_columns(catalog.transfers, transfer_columns,
											TRANSFER_NCOLUMNS, catalog.transfer);

	catalog.valid = true;
	return &catalog;
}

/*
 * Opens a ledger table for a direct write, or returns false (and leaves it
 * closed) if it carries anything only a statement would honour.
 */
static bool
open_target(Oid relid, bool for_update, DirectTarget *target)
{
	Relation	rel = table_open(relid, RowExclusiveLock);
	TriggerDesc *triggers = rel->trigdesc;
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	bool		plain = true;

	if (triggers != NULL)
	{
		if (for_update)
			plain = !(triggers->trig_update_before_row ||
					  triggers->trig_update_after_row ||
					  triggers->trig_update_instead_row ||
					  triggers->trig_update_before_statement ||
					  triggers->trig_update_after_statement ||
					  triggers->trig_update_old_table ||
					  triggers->trig_update_new_table);
		else
			plain = !(triggers->trig_insert_before_row ||
					  triggers->trig_insert_after_row ||
					  triggers->trig_insert_instead_row ||
					  triggers->trig_insert_before_statement ||
					  triggers->trig_insert_after_statement ||
					  triggers->trig_insert_new_table);
	}
	if (constr != NULL && constr->has_generated_stored)
		plain = false;
	if (rel->rd_rel->relrowsecurity || rel->rd_rel->relkind != RELKIND_RELATION)
		plain = false;
	if (!plain)
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}

	/*
	 * See enforced_checks: only the others are evaluated per row.
	 */
	target->other_checks = false;
	for (int c = 0; constr != NULL && c < constr->num_check; c++)
	{
		bool		enforced = false;

		for (int e = 0; e < lengthof(enforced_checks); e++)
			if (strcmp(constr->check[c].ccname, enforced_checks[e]) == 0)
				enforced = true;
		if (!enforced)
			target->other_checks = true;
	}

	target->rel = rel;
	target->estate = CreateExecutorState();
	target->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(target->rri, rel, 0, NULL, 0);
	ExecOpenIndices(target->rri, false);

	/* a deferred unique check would need an after-trigger queue */
	for (int i = 0; i < target->rri->ri_NumIndices; i++)
	{
		if (!target->rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
		{
			close_target(target);
			return false;
		}
	}
	return true;
}

static void
close_target(DirectTarget *target)
{
	ExecCloseIndices(target->rri);
	FreeExecutorState(target->estate);
	table_close(target->rel, NoLock);
	/* later statements of the transaction see the rows, as after SPI */
	CommandCounterIncrement();
}

/* Index entries for the tuple in slot: all of them, or the summarizing
 * ones only (a HOT update on 16+ that changed a BRIN-indexed column). */
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
 * Opens ledger.entries for appending; false if it needs a statement,
 * including when it has columns beyond the known ones.
 */
static bool
open_journal(Journal *journal)
{
	const LedgerCatalog *cat = ledger_catalog();

	if (!cat->entries_known)
		return false;
	if (!open_target(cat->entries, false, &journal->target))
		return false;
	memcpy(journal->attnum, cat->entry, sizeof(journal->attnum));
	journal->sequence = cat->entry_sequence;
	return true;
}

/*
 * Appends count entries to an open journal; the i-th row is (a fresh
 * entry_id, account_id[i], amount[i], balance_after[i], transfer_id[i] or
 * NULL, key[i] or NULL, created_at).  Ids are drawn in row order, under
 * the callers' row locks, so per account they follow the postings.
 */
static void
append_entries(Journal *journal, int count, const Datum *account_id,
			   const Datum *amount, const Datum *balance_after,
			   const Datum *transfer_id, const bool *transfer_null,
			   const Datum *key, const bool *key_null, TimestampTz created_at)
{
	Relation	rel = journal->target.rel;
	TupleDesc	desc = RelationGetDescr(rel);
	const AttrNumber *attnum = journal->attnum;
	int			nslots = Min(count, ENTRY_CHUNK);
	CommandId	cid = GetCurrentCommandId(true);
	TupleDesc	slot_desc;
	TupleTableSlot **slots;

	/*
	 * The slots share one unreferenced copy of the descriptor: slots of the
	 * relation's own descriptor each register it with the resource owner,
	 * whose lookups are linear, so a thousand of them cost quadratic time.
	 */
	slot_desc = CreateTupleDescCopy(desc);
	slots = palloc(sizeof(TupleTableSlot *) * nslots);
	for (int j = 0; j < nslots; j++)
		slots[j] = MakeSingleTupleTableSlot(slot_desc, table_slot_callbacks(rel));

	for (int start = 0; start < count; start += ENTRY_CHUNK)
	{
		int			n = Min(ENTRY_CHUNK, count - start);

		for (int j = 0; j < n; j++)
		{
			int			i = start + j;
			TupleTableSlot *slot = slots[j];

			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
#define SET_COLUMN(c, value, isnull) \
			(slot->tts_values[attnum[c] - 1] = (value), \
			 slot->tts_isnull[attnum[c] - 1] = (isnull))
			SET_COLUMN(0, Int64GetDatum(nextval_internal(journal->sequence, false)), false);
			SET_COLUMN(1, account_id[i], false);
			SET_COLUMN(2, amount[i], false);
			SET_COLUMN(3, balance_after[i], false);
			SET_COLUMN(4, transfer_id[i], transfer_null[i]);
			SET_COLUMN(5, key[i], key_null[i]);
			SET_COLUMN(6, TimestampTzGetDatum(created_at), false);
#undef SET_COLUMN
			ExecStoreVirtualTuple(slot);
		}
		if (n == 1)
			table_tuple_insert(rel, slots[0], cid, 0, NULL);
		else
			table_multi_insert(rel, slots, n, cid, 0, NULL);
		for (int j = 0; j < n; j++)
			insert_index_entries(&journal->target, slots[j], true);
	}

	for (int j = 0; j < nslots; j++)
		ExecDropSingleTupleTableSlot(slots[j]);
}

/*
 * Appends count journal entries (see append_entries).  Returns false,
 * having written nothing, if ledger.entries needs a statement.
 */
bool
ledger_bulk_append_entries(int count, const Datum *account_id,
						   const Datum *amount, const Datum *balance_after,
						   const Datum *transfer_id, const bool *transfer_null,
						   const Datum *key, const bool *key_null,
						   TimestampTz created_at)
{
	Journal		journal;

	if (!open_journal(&journal))
		return false;
	append_entries(&journal, count, account_id, amount, balance_after,
				   transfer_id, transfer_null, key, key_null, created_at);
	close_target(&journal.target);
	return true;
}

/*
 * Gives the account row version at ctid, which this transaction holds
 * locked FOR UPDATE (so it cannot have moved), a new balance; index
 * entries for the new version unless the update was HOT.  slot is a heap
 * tuple slot of the accounts' descriptor.
 */
static void
rewrite_balance(DirectTarget *accounts, ItemPointerData ctid, int64 balance,
				TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(accounts->rel);
	AttrNumber	balance_attnum = ledger_catalog()->balance;
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc0(sizeof(bool) * desc->natts);
	bool	   *replace = palloc0(sizeof(bool) * desc->natts);
	HeapTupleData old;
	Buffer		buffer;
	HeapTuple	updated;

	old.t_self = ctid;
	if (!heap_fetch(accounts->rel, SnapshotAny, &old, &buffer, false))
		elog(ERROR, "ledger: a locked account row moved");
	values[balance_attnum - 1] = Int64GetDatum(balance);
	replace[balance_attnum - 1] = true;
	updated = heap_modify_tuple(&old, desc, values, nulls, replace);
	ReleaseBuffer(buffer);

	ExecStoreHeapTuple(updated, slot, false);
	if (accounts->other_checks)
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
	heap_freetuple(updated);
	pfree(values);
	pfree(nulls);
	pfree(replace);
}

/*
 * Sets the balance of count account rows, the i-th at ctid[i] to
 * balance[i]; the caller holds each of these row versions locked FOR
 * UPDATE.  Returns false, having written nothing, if ledger.accounts needs
 * a statement.
 */
bool
ledger_bulk_set_balances(int count, const ItemPointerData *ctid,
						 const int64 *balance)
{
	DirectTarget target;
	TupleTableSlot *slot;

	if (!open_target(ledger_catalog()->accounts, true, &target))
		return false;
	slot = MakeSingleTupleTableSlot(RelationGetDescr(target.rel), &TTSOpsHeapTuple);
	for (int i = 0; i < count; i++)
		rewrite_balance(&target, ctid[i], balance[i], slot);
	ExecDropSingleTupleTableSlot(slot);
	close_target(&target);
	return true;
}

/*
 * The writes of one checked posting on a locked account (the slow path of
 * a credit or debit: after the key was replayed or claimed): the new
 * balance and its journal entry.  Returns false, having written nothing,
 * if a table needs a statement.
 */
bool
ledger_direct_apply(const LockedAccount *account, int64 signed_amount,
					int64 new_balance, text *key, TimestampTz now)
{
	DirectTarget accounts;
	Journal		journal;
	TupleTableSlot *slot;
	Datum		account_id = Int64GetDatum(account->account_id);
	Datum		amount = Int64GetDatum(signed_amount);
	Datum		balance_after = Int64GetDatum(new_balance);
	Datum		key_datum = PointerGetDatum(key);
	bool		key_null = (key == NULL);
	Datum		none = (Datum) 0;
	bool		null = true;

	if (!account->ctid_known)
		return false;
	if (!open_target(ledger_catalog()->accounts, true, &accounts))
		return false;
	if (!open_journal(&journal))
	{
		close_target(&accounts);
		return false;
	}

	slot = MakeSingleTupleTableSlot(RelationGetDescr(accounts.rel), &TTSOpsHeapTuple);
	rewrite_balance(&accounts, account->ctid, new_balance, slot);
	ExecDropSingleTupleTableSlot(slot);
	append_entries(&journal, 1, &account_id, &amount, &balance_after,
				   &none, &null, &key_datum, &key_null, now);

	close_target(&journal.target);
	close_target(&accounts);
	return true;
}

/*
 * The writes of one checked transfer between two locked accounts: the
 * transfer row (its id drawn here when transfer_id is 0), both balances
 * and both journal entries.  *written_id gets the transfer's id.  Returns
 * false, having written nothing, if a table needs a statement.
 */
bool
ledger_direct_transfer(const LockedAccount *from, int64 from_balance,
					   const LockedAccount *to, int64 to_balance,
					   int64 amount, int64 transfer_id, text *key,
					   TimestampTz now, int64 *written_id)
{
	const LedgerCatalog *cat = ledger_catalog();
	DirectTarget accounts;
	DirectTarget transfers;
	Journal		journal;
	TupleTableSlot *slot;
	Datum		entry_account[2];
	Datum		entry_amount[2];
	Datum		entry_balance[2];
	Datum		entry_transfer[2];
	bool		entry_transfer_null[2] = {false, false};
	Datum		entry_key[2] = {PointerGetDatum(key), PointerGetDatum(key)};
	bool		entry_key_null[2] = {key == NULL, key == NULL};

	if (!from->ctid_known || !to->ctid_known || !cat->transfers_known)
		return false;
	if (!open_target(cat->transfers, false, &transfers))
		return false;
	if (!open_target(cat->accounts, true, &accounts))
	{
		close_target(&transfers);
		return false;
	}
	if (!open_journal(&journal))
	{
		close_target(&accounts);
		close_target(&transfers);
		return false;
	}

	if (transfer_id == 0)
		transfer_id = nextval_internal(cat->transfer_sequence, false);

	/* the transfer row */
	slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(transfers.rel)),
									table_slot_callbacks(transfers.rel));
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	slot->tts_values[cat->transfer[0] - 1] = Int64GetDatum(transfer_id);
	slot->tts_values[cat->transfer[1] - 1] = Int64GetDatum(from->account_id);
	slot->tts_values[cat->transfer[2] - 1] = Int64GetDatum(to->account_id);
	slot->tts_values[cat->transfer[3] - 1] = Int64GetDatum(amount);
	slot->tts_values[cat->transfer[4] - 1] = PointerGetDatum(key);
	slot->tts_values[cat->transfer[5] - 1] = TimestampTzGetDatum(now);
	for (int c = 0; c < TRANSFER_NCOLUMNS; c++)
		slot->tts_isnull[cat->transfer[c] - 1] = false;
	slot->tts_isnull[cat->transfer[4] - 1] = (key == NULL);
	ExecStoreVirtualTuple(slot);
	if (transfers.other_checks)
		ExecConstraints(transfers.rri, slot, transfers.estate);
	table_tuple_insert(transfers.rel, slot, GetCurrentCommandId(true), 0, NULL);
	insert_index_entries(&transfers, slot, true);
	ExecDropSingleTupleTableSlot(slot);

	/* both balances, in account_id order like the locks */
	slot = MakeSingleTupleTableSlot(RelationGetDescr(accounts.rel), &TTSOpsHeapTuple);
	if (from->account_id < to->account_id)
	{
		rewrite_balance(&accounts, from->ctid, from_balance, slot);
		rewrite_balance(&accounts, to->ctid, to_balance, slot);
	}
	else
	{
		rewrite_balance(&accounts, to->ctid, to_balance, slot);
		rewrite_balance(&accounts, from->ctid, from_balance, slot);
	}
	ExecDropSingleTupleTableSlot(slot);

	/* both entries: out of from, into to */
	entry_account[0] = Int64GetDatum(from->account_id);
	entry_amount[0] = Int64GetDatum(-amount);
	entry_balance[0] = Int64GetDatum(from_balance);
	entry_account[1] = Int64GetDatum(to->account_id);
	entry_amount[1] = Int64GetDatum(amount);
	entry_balance[1] = Int64GetDatum(to_balance);
	entry_transfer[0] = entry_transfer[1] = Int64GetDatum(transfer_id);
	append_entries(&journal, 2, entry_account, entry_amount, entry_balance,
				   entry_transfer, entry_transfer_null, entry_key, entry_key_null,
				   now);

	close_target(&journal.target);
	close_target(&accounts);
	close_target(&transfers);
	*written_id = transfer_id;
	return true;
}

/*
 * Account rows by name, through the unique name index: open once, then
 * find_account per name.
 */
struct NameLookup
{
	Relation	index;
	IndexScanDesc scan;
};

static void
begin_lookup(NameLookup *lookup, DirectTarget *accounts, Snapshot snapshot)
{
	lookup->index = index_open(ledger_catalog()->name_index, AccessShareLock);
#if PG_VERSION_NUM >= 180000
	lookup->scan = index_beginscan(accounts->rel, lookup->index, snapshot, NULL, 1, 0);
#else
	lookup->scan = index_beginscan(accounts->rel, lookup->index, snapshot, 1, 0);
#endif
}

static void
end_lookup(NameLookup *lookup)
{
	index_endscan(lookup->scan);
	index_close(lookup->index, AccessShareLock);
}

/* The account row named name, as the snapshot sees it, into slot; false
 * if there is none. */
static bool
find_account(NameLookup *lookup, text *name, TupleTableSlot *slot)
{
	ScanKeyData key;

	/* ScanKeyInit compares in the "C" collation, the column's own */
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(name));
	index_rescan(lookup->scan, &key, 1, NULL, 0);
	return index_getnext_slot(lookup->scan, ForwardScanDirection, slot);
}

/*
 * ledger_credit or ledger_debit without a key, when nothing stands in the
 * way: finds the row, checks the floor and the bigint range, updates the
 * balance (which takes the row lock, waiting for a concurrent writer) and
 * appends the entry.  Returns true with *new_balance set if it posted;
 * false, having written nothing, when the SQL path must decide: no such
 * account, a refusal (the SQL path raises the precise error), a row
 * updated concurrently (READ COMMITTED: the SQL path re-reads it), or a
 * table that needs a statement.
 */
bool
ledger_direct_post(text *name, int64 amount, bool is_debit,
				   TimestampTz now, int64 *new_balance)
{
	DirectTarget accounts;
	Journal		journal;
	TupleDesc	desc;
	TupleTableSlot *current;
	TupleTableSlot *updated;
	AttrNumber	id_attnum;
	AttrNumber	balance_attnum;
	AttrNumber	floor_attnum;
	int64		balance;
	bool		isnull;
	bool		posted = false;
	TM_Result	result;
	TM_FailureData failure;
	LockTupleMode lockmode;
	Datum		account_id;
	Datum		signed_amount;
	NameLookup	lookup;
	bool		found;
	const LedgerCatalog *cat = ledger_catalog();

	if (!OidIsValid(cat->name_index))
		return false;
	if (!open_target(cat->accounts, true, &accounts))
		return false;
	if (!open_journal(&journal))
	{
		close_target(&accounts);
		return false;
	}

	/* the snapshot an UPDATE statement here would take */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());

	desc = RelationGetDescr(accounts.rel);
	id_attnum = cat->account_id;
	balance_attnum = cat->balance;
	floor_attnum = cat->min_balance;
	current = table_slot_create(accounts.rel, NULL);
	updated = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);

	begin_lookup(&lookup, &accounts, GetActiveSnapshot());
	found = find_account(&lookup, name, current);
	end_lookup(&lookup);
	if (!found)
		goto done;

	slot_getallattrs(current);
	balance = DatumGetInt64(current->tts_values[balance_attnum - 1]);
	if (is_debit)
	{
		if (pg_sub_s64_overflow(balance, amount, new_balance))
			goto done;
		isnull = current->tts_isnull[floor_attnum - 1];
		if (!isnull &&
			*new_balance < DatumGetInt64(current->tts_values[floor_attnum - 1]))
			goto done;
	}
	else if (pg_add_s64_overflow(balance, amount, new_balance))
		goto done;

	ExecClearTuple(updated);
	memcpy(updated->tts_values, current->tts_values, sizeof(Datum) * desc->natts);
	memcpy(updated->tts_isnull, current->tts_isnull, sizeof(bool) * desc->natts);
	updated->tts_values[balance_attnum - 1] = Int64GetDatum(*new_balance);
	ExecStoreVirtualTuple(updated);
	if (accounts.other_checks)
		ExecConstraints(accounts.rri, updated, accounts.estate);

	{
#if PG_VERSION_NUM >= 160000
		TU_UpdateIndexes update_indexes;
#else
		bool		update_indexes;
#endif

		result = table_tuple_update(accounts.rel, &current->tts_tid, updated,
									GetCurrentCommandId(true), GetActiveSnapshot(),
									InvalidSnapshot, true, &failure, &lockmode,
									&update_indexes);
		if (result == TM_Ok)
		{
#if PG_VERSION_NUM >= 160000
			if (update_indexes != TU_None)
				insert_index_entries(&accounts, updated, update_indexes == TU_All);
#else
			if (update_indexes)
				insert_index_entries(&accounts, updated, true);
#endif
		}
	}

	switch (result)
	{
		case TM_Ok:
			break;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			/* READ COMMITTED: the SQL path re-reads the newest version */
			goto done;
		case TM_SelfModified:
			/* changed by this very command: let the statement sort it out */
			goto done;
		default:
			elog(ERROR, "ledger: unexpected result %d updating an account", (int) result);
	}

	account_id = current->tts_values[id_attnum - 1];
	signed_amount = Int64GetDatum(is_debit ? -amount : amount);
	{
		Datum		balance_after = Int64GetDatum(*new_balance);
		Datum		none = (Datum) 0;
		bool		null = true;

		append_entries(&journal, 1, &account_id, &signed_amount, &balance_after,
					   &none, &null, &none, &null, now);
	}
	posted = true;

done:
	ExecDropSingleTupleTableSlot(current);
	ExecDropSingleTupleTableSlot(updated);
	PopActiveSnapshot();
	close_target(&journal.target);
	close_target(&accounts);
	return posted;
}

/* A row to lock: where the snapshot saw it, and for which name. */
typedef struct RowToLock
{
	int64		account_id;
	ItemPointerData tid;
	int			name_index;
} RowToLock;

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
 * in account_id order (so concurrent batches queue instead of
 * deadlocking), the newest version in READ COMMITTED, a serialization
 * failure (40001) if it changed since the snapshot under REPEATABLE READ
 * or SERIALIZABLE, as the statement would.  names must be distinct;
 * rows[i] describes names[i] (found false if there is no such account).
 * Returns false, having locked nothing, when the statement must do it.
 */
bool
ledger_direct_lock_accounts(int count, text **names, LedgerLockedRow *rows)
{
	const LedgerCatalog *cat = ledger_catalog();
	DirectTarget accounts;
	TupleTableSlot *slot;
	RowToLock  *found;
	int			nfound = 0;
	NameLookup	lookup;
	Snapshot	snapshot;
	CommandId	cid;
	uint8		flags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS;

	if (!OidIsValid(cat->name_index))
		return false;
	if (!open_target(cat->accounts, true, &accounts))
		return false;

	CommandCounterIncrement();
	snapshot = GetTransactionSnapshot();
	PushActiveSnapshot(snapshot);
	snapshot = GetActiveSnapshot();
	cid = GetCurrentCommandId(true);
	if (!IsolationUsesXactSnapshot())
		flags |= TUPLE_LOCK_FLAG_FIND_LAST_VERSION;

	slot = table_slot_create(accounts.rel, NULL);
	found = palloc(sizeof(RowToLock) * Max(count, 1));
	begin_lookup(&lookup, &accounts, snapshot);
	for (int i = 0; i < count; i++)
	{
		bool		isnull;

		rows[i].found = false;
		if (!find_account(&lookup, names[i], slot))
			continue;
		found[nfound].account_id =
			DatumGetInt64(slot_getattr(slot, cat->account_id, &isnull));
		found[nfound].tid = slot->tts_tid;
		found[nfound].name_index = i;
		nfound++;
	}
	end_lookup(&lookup);
	qsort(found, nfound, sizeof(RowToLock), compare_by_account_id);

	for (int k = 0; k < nfound; k++)
	{
		LedgerLockedRow *row = &rows[found[k].name_index];
		TM_FailureData failure;
		TM_Result	result;
		bool		isnull;

		result = table_tuple_lock(accounts.rel, &found[k].tid, snapshot, slot,
								  cid, LockTupleExclusive, LockWaitBlock,
								  flags, &failure);
		switch (result)
		{
			case TM_Ok:
				break;
			case TM_Updated:
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				if (result == TM_Updated)
					elog(ERROR, "ledger: unexpected table_tuple_lock status %d", (int) result);
				/* gone (accounts are never deleted): as if not found */
				row->found = false;
				continue;
			case TM_SelfModified:
				/* as ExecLockRows: changed by a later command of ours */
				row->found = false;
				continue;
			default:
				elog(ERROR, "ledger: unexpected table_tuple_lock status %d", (int) result);
		}

		row->found = true;
		row->ctid = slot->tts_tid;
		row->account_id = DatumGetInt64(slot_getattr(slot, cat->account_id, &isnull));
		row->balance = DatumGetInt64(slot_getattr(slot, cat->balance, &isnull));
		row->min_balance = DatumGetInt64(slot_getattr(slot, cat->min_balance, &isnull));
		row->has_floor = !isnull;
		row->currency = TextDatumGetCString(slot_getattr(slot, cat->currency, &isnull));
	}

	ExecDropSingleTupleTableSlot(slot);
	PopActiveSnapshot();
	close_target(&accounts);
	return true;
}
