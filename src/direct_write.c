/*-------------------------------------------------------------------------
 *
 * direct_write.c
 *	  Postings written straight through the table access method, as COPY
 *	  and the executor's ModifyTable and LockRows nodes do, instead of
 *	  through SQL statements: account row locks, balance updates, journal
 *	  entries and transfer rows, for single postings and batches.
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
 * SQL path, which re-reads it like any UPDATE; under REPEATABLE READ and
 * SERIALIZABLE that is a serialization failure, 40001), SSI predicate
 * locks (the heap and index AMs take them), every CHECK and NOT NULL the
 * code does not enforce itself, unique and other immediate indexes, the
 * replica-identity check of publications, and the WAL of every change.
 *
 * What they do not do, and when the caller writes through SQL instead
 * (every function returns false before writing anything): a read-only
 * transaction or a standby (the statement raises 25006); triggers for the
 * kind of write (say, an outbox trigger), row-level security, stored
 * generated columns, a deferrable index, a table that is not a plain heap,
 * or columns other than the known ones (an added column may want its
 * default).  The columns are checked against the relation after its lock
 * is granted, so a concurrent ALTER TABLE is seen.  Domain checks on the
 * ledger's own columns are not re-run: the callers check exactly those
 * rules first (amounts positive, keys 1 to 255 bytes); altering the
 * extension's domains is not supported.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_opfamily_d.h"
#include "catalog/pg_type_d.h"
#include "commands/sequence.h"
#include "common/int.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "ledger.h"

/* Rows per multi-insert call: bounds the memory of huge batches. */
#define ENTRY_CHUNK		1000

/*
 * The columns a direct write reads or writes, checked against the open
 * relation every time: a concurrent ALTER TABLE is seen once its lock is
 * granted.  type is the column's type or the base type of its domain;
 * nullable marks the columns a write may leave NULL (a NOT NULL added
 * there must be enforced).
 */
typedef struct ColumnSpec
{
	const char *name;
	Oid			type;
	bool		nullable;
} ColumnSpec;

enum
{
	ACCOUNT_ID, ACCOUNT_NAME, ACCOUNT_CURRENCY, ACCOUNT_FLOOR, ACCOUNT_BALANCE,
	ACCOUNT_NCOLUMNS
};
static const ColumnSpec account_columns[] = {
	{"account_id", INT8OID, false}, {"name", TEXTOID, false},
	{"currency", TEXTOID, false}, {"min_balance", INT8OID, true},
	{"balance", INT8OID, false}
};

enum
{
	ENTRY_ID, ENTRY_ACCOUNT, ENTRY_AMOUNT, ENTRY_BALANCE, ENTRY_TRANSFER,
	ENTRY_KEY, ENTRY_CREATED, ENTRY_NCOLUMNS
};
static const ColumnSpec entry_columns[] = {
	{"entry_id", INT8OID, false}, {"account_id", INT8OID, false},
	{"amount", INT8OID, false}, {"balance_after", INT8OID, false},
	{"transfer_id", INT8OID, true}, {"idempotency_key", TEXTOID, true},
	{"created_at", TIMESTAMPTZOID, false}
};

enum
{
	TRANSFER_ID, TRANSFER_FROM, TRANSFER_TO, TRANSFER_AMOUNT, TRANSFER_KEY,
	TRANSFER_CREATED, TRANSFER_NCOLUMNS
};
static const ColumnSpec transfer_columns[] = {
	{"transfer_id", INT8OID, false}, {"from_account_id", INT8OID, false},
	{"to_account_id", INT8OID, false}, {"amount", INT8OID, false},
	{"idempotency_key", TEXTOID, true}, {"created_at", TIMESTAMPTZOID, false}
};

#define MAX_COLUMNS		ENTRY_NCOLUMNS

/*
 * Table CHECKs whose rule the code enforces itself before every direct
 * write (the floor under the row lock; a transfer's accounts differ by
 * name, hence by id); any other CHECK is evaluated as a statement would.
 */
static const char *const enforced_checks[] = {
	"accounts_balance_floor", "transfers_distinct_accounts"
};

/*
 * The OIDs of the ledger's relations, looked up once per backend and
 * forgotten on any relcache invalidation: a posting would otherwise spend
 * a tenth of its time in catalog lookups.  Nothing else is cached; a
 * stale OID (the extension dropped meanwhile) fails to open and the SQL
 * path takes over.
 */
typedef struct LedgerRelations
{
	Oid			accounts;
	Oid			entries;
	Oid			transfers;
	Oid			entry_sequence;
	Oid			transfer_sequence;
} LedgerRelations;

static LedgerRelations relations;
static bool relations_valid = false;
static uint64 invalidations = 0;
static bool callback_registered = false;

/* A ledger table open for a direct write, with its indexes. */
typedef struct DirectTarget
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	AttrNumber	attnum[MAX_COLUMNS];	/* of the ColumnSpecs it was opened with */
	bool		check_constraints;	/* CHECK or NOT NULL the code does not enforce */
	Relation	name_index;		/* accounts only: the unique index on name */
	Oid			sequence;		/* entries, transfers: of their id */
	LOCKMODE	lockmode;
} DirectTarget;

/* What a single posting or a batch opens. */
typedef enum TargetUse
{
	LOCK_ACCOUNTS,				/* FOR UPDATE only: as SELECT ... FOR UPDATE */
	UPDATE_ACCOUNTS, APPEND_ENTRIES, APPEND_TRANSFERS
} TargetUse;

static void forget_relations(Datum arg, Oid relid);
static Oid	ledger_relid(const char *name);
static const LedgerRelations *ledger_relations(void);
static bool columns_match(TupleDesc desc, const ColumnSpec *columns, int count,
						  bool exact, AttrNumber *attnum, bool *null_risk);
static bool open_target(TargetUse use, DirectTarget *target);
static bool is_name_index(Relation index, AttrNumber name_attnum);
static Oid	target_relid(TargetUse use);
static void close_target(DirectTarget *target);
static bool open_posting(DirectTarget *accounts, DirectTarget *journal);
static void close_posting(DirectTarget *accounts, DirectTarget *journal);
static void insert_index_entries(DirectTarget *target, TupleTableSlot *slot,
								 bool all_indexes);
static void append_entries(DirectTarget *journal, int count,
						   const Datum *account_id, const Datum *amount,
						   const Datum *balance_after, const Datum *transfer_id,
						   const bool *transfer_null, const Datum *key,
						   const bool *key_null, TimestampTz created_at);
static void rewrite_balance(DirectTarget *accounts, ItemPointerData ctid,
							int64 balance, TupleTableSlot *slot);
typedef struct NameLookup NameLookup;
static void begin_lookup(NameLookup *lookup, DirectTarget *accounts,
						 Snapshot snapshot);
static void end_lookup(NameLookup *lookup);
static bool find_account(NameLookup *lookup, text *name, TupleTableSlot *slot);
static bool same_name(TupleTableSlot *slot, AttrNumber attnum, text *name);
static void raise_concurrent_update(void) pg_attribute_noreturn();
static int	compare_by_account_id(const void *a, const void *b);

static void
forget_relations(Datum arg, Oid relid)
{
	relations_valid = false;
	invalidations++;
}

static Oid
ledger_relid(const char *name)
{
	return get_relname_relid(name, get_namespace_oid("ledger", false));
}

static const LedgerRelations *
ledger_relations(void)
{
	uint64		seen = invalidations;

	if (relations_valid)
		return &relations;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_relations, (Datum) 0);
		callback_registered = true;
	}
	relations.accounts = ledger_relid("accounts");
	relations.entries = ledger_relid("entries");
	relations.transfers = ledger_relid("transfers");
	relations.entry_sequence = ledger_relid("entries_entry_id_seq");
	relations.transfer_sequence = ledger_relid("transfers_transfer_id_seq");
	/* an invalidation during the lookups may have made them stale */
	relations_valid = (invalidations == seen);
	return &relations;
}

/*
 * Whether desc has the columns (of the expected width) and, if exact, no
 * others; their numbers into attnum.  *null_risk: a column a write may
 * leave NULL is NOT NULL.
 */
static bool
columns_match(TupleDesc desc, const ColumnSpec *columns, int count, bool exact,
			  AttrNumber *attnum, bool *null_risk)
{
	int			matched = 0;

	*null_risk = false;
	for (int c = 0; c < count; c++)
		attnum[c] = InvalidAttrNumber;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, a);
		bool		known = false;

		if (attr->attisdropped)
			continue;
		for (int c = 0; c < count && !known; c++)
		{
			if (strcmp(NameStr(attr->attname), columns[c].name) != 0)
				continue;
			if (getBaseType(attr->atttypid) != columns[c].type)
				return false;
			if (columns[c].nullable && attr->attnotnull)
				*null_risk = true;
			attnum[c] = attr->attnum;
			known = true;
			matched++;
		}
		if (!known && exact)
			return false;
	}
	return matched == count;
}

static Oid
target_relid(TargetUse use)
{
	const LedgerRelations *rels = ledger_relations();

	switch (use)
	{
		case LOCK_ACCOUNTS:
		case UPDATE_ACCOUNTS:
			return rels->accounts;
		case APPEND_ENTRIES:
			return rels->entries;
		case APPEND_TRANSFERS:
			return rels->transfers;
	}
	return InvalidOid;
}

/*
 * The unique, valid, "C"-collated text B-tree index on the name column
 * alone: what find_account's scan key compares as.
 */
static bool
is_name_index(Relation index, AttrNumber name_attnum)
{
	Form_pg_index form = index->rd_index;

	return form->indisunique && form->indisvalid && form->indisready &&
		form->indislive && form->indnkeyatts == 1 &&
		form->indkey.values[0] == name_attnum &&
		index->rd_rel->relam == BTREE_AM_OID &&
		index->rd_opfamily[0] == TEXT_BTREE_FAM_OID &&
		index->rd_indcollation[0] == C_COLLATION_OID &&
		RelationGetIndexPredicate(index) == NIL;
}

/*
 * Opens a ledger table for a direct write (or, LOCK_ACCOUNTS, for row
 * locks with the table lock of SELECT ... FOR UPDATE), or returns false
 * (and leaves it closed) if only a statement would do all that is asked:
 * a read-only transaction or a standby (the statement raises 25006), a
 * table renamed or replaced while we waited for its lock, anything but a
 * plain heap table, row-level security, triggers for this kind of write,
 * stored generated columns, a deferrable index, columns other than the
 * expected ones (an added column may want its default) or of other types,
 * no usable name index or id sequence.
 */
static bool
open_target(TargetUse use, DirectTarget *target)
{
	bool		lock_only = (use == LOCK_ACCOUNTS);
	bool		accounts = (use == LOCK_ACCOUNTS || use == UPDATE_ACCOUNTS);
	LOCKMODE	lockmode = lock_only ? RowShareLock : RowExclusiveLock;
	Oid			relid = target_relid(use);
	Relation	rel;
	TriggerDesc *triggers;
	TupleConstr *constr;
	bool		null_risk = false;
	bool		plain;

	if (XactReadOnly || RecoveryInProgress())
		return false;
	if (!OidIsValid(relid) || (rel = try_table_open(relid, lockmode)) == NULL)
		return false;

	/* the lock may have waited for a DDL that put another table there */
	triggers = rel->trigdesc;
	constr = RelationGetDescr(rel)->constr;
	plain = (target_relid(use) == relid &&
			 rel->rd_rel->relkind == RELKIND_RELATION &&
			 rel->rd_rel->relam == HEAP_TABLE_AM_OID &&
			 !rel->rd_rel->relrowsecurity &&
			 !(constr != NULL && constr->has_generated_stored));
	if (plain && triggers != NULL && !lock_only)
	{
		if (use == UPDATE_ACCOUNTS)
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
	if (plain)
	{
		if (accounts)
			plain = columns_match(RelationGetDescr(rel), account_columns,
								  ACCOUNT_NCOLUMNS, false, target->attnum, &null_risk);
		else if (use == APPEND_ENTRIES)
			plain = columns_match(RelationGetDescr(rel), entry_columns,
								  ENTRY_NCOLUMNS, true, target->attnum, &null_risk);
		else
			plain = columns_match(RelationGetDescr(rel), transfer_columns,
								  TRANSFER_NCOLUMNS, true, target->attnum, &null_risk);
	}
	target->sequence = (use == APPEND_ENTRIES) ? ledger_relations()->entry_sequence :
		(use == APPEND_TRANSFERS) ? ledger_relations()->transfer_sequence : InvalidOid;
	if (plain && (use == APPEND_ENTRIES || use == APPEND_TRANSFERS) &&
		!OidIsValid(target->sequence))
		plain = false;
	if (!plain)
	{
		table_close(rel, lockmode);
		return false;
	}

	/* what the statement would raise for a publication without identity */
	if (!lock_only)
		CheckCmdReplicaIdentity(rel, use == UPDATE_ACCOUNTS ? CMD_UPDATE : CMD_INSERT);

	/* See enforced_checks: the others, and risky NOT NULLs, are evaluated. */
	target->check_constraints = null_risk;
	for (int c = 0; constr != NULL && c < constr->num_check; c++)
	{
		bool		enforced = false;

		for (int e = 0; e < lengthof(enforced_checks); e++)
			if (strcmp(constr->check[c].ccname, enforced_checks[e]) == 0)
				enforced = true;
		if (!enforced)
			target->check_constraints = true;
	}

	target->rel = rel;
	target->lockmode = lockmode;
	target->estate = CreateExecutorState();
	target->rri = NULL;
	target->name_index = NULL;

	if (lock_only)
	{
		/* only the name index, and only as an index scan would open it */
		List	   *indexes = RelationGetIndexList(rel);
		ListCell   *lc;

		foreach(lc, indexes)
		{
			Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

			if (target->name_index == NULL &&
				is_name_index(index, target->attnum[ACCOUNT_NAME]))
				target->name_index = index;
			else
				index_close(index, AccessShareLock);
		}
		list_free(indexes);
	}
	else
	{
		target->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(target->rri, rel, 0, NULL, 0);
		ExecOpenIndices(target->rri, false);
		for (int i = 0; i < target->rri->ri_NumIndices; i++)
		{
			Relation	index = target->rri->ri_IndexRelationDescs[i];

			/* a deferred unique check would need an after-trigger queue */
			if (!index->rd_index->indimmediate)
			{
				close_target(target);
				return false;
			}
			if (use == UPDATE_ACCOUNTS && target->name_index == NULL &&
				is_name_index(index, target->attnum[ACCOUNT_NAME]))
				target->name_index = index;
		}
	}
	if (accounts && target->name_index == NULL)
	{
		close_target(target);
		return false;
	}
	return true;
}

static void
close_target(DirectTarget *target)
{
	if (target->rri != NULL)
		ExecCloseIndices(target->rri);
	else if (target->name_index != NULL)
		index_close(target->name_index, AccessShareLock);
	FreeExecutorState(target->estate);
	table_close(target->rel, NoLock);
	/* later statements of the transaction see the rows, as after SPI */
	CommandCounterIncrement();
}

/*
 * The accounts (to update) and the journal (to append to), both or
 * neither: what every posting writes.
 */
static bool
open_posting(DirectTarget *accounts, DirectTarget *journal)
{
	if (!open_target(UPDATE_ACCOUNTS, accounts))
		return false;
	if (!open_target(APPEND_ENTRIES, journal))
	{
		close_target(accounts);
		return false;
	}
	return true;
}

static void
close_posting(DirectTarget *accounts, DirectTarget *journal)
{
	close_target(journal);
	close_target(accounts);
}

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
 * Appends count entries to ledger.entries open as journal; the i-th row is
 * (a fresh entry_id, account_id[i], amount[i], balance_after[i],
 * transfer_id[i] or NULL, key[i] or NULL, created_at).  Ids are drawn in
 * row order, under the callers' row locks, so per account they follow the
 * postings.  The amounts (never 0) and keys (1 to 255 bytes) were checked
 * by the callers, which is all the columns' domains ask.
 */
static void
append_entries(DirectTarget *journal, int count, const Datum *account_id,
			   const Datum *amount, const Datum *balance_after,
			   const Datum *transfer_id, const bool *transfer_null,
			   const Datum *key, const bool *key_null, TimestampTz created_at)
{
	Relation	rel = journal->rel;
	const AttrNumber *attnum = journal->attnum;
	Oid			sequence = journal->sequence;
	int			nslots = Min(count, ENTRY_CHUNK);
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
	chunk_context = AllocSetContextCreate(CurrentMemoryContext, "ledger journal chunk",
										  ALLOCSET_DEFAULT_SIZES);
	for (int start = 0; start < count; start += ENTRY_CHUNK)
	{
		int			n = Min(ENTRY_CHUNK, count - start);

		for (int j = 0; j < n; j++)
		{
			int			i = start + j;
			TupleTableSlot *slot = slots[j];

			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * slot_desc->natts);
#define SET_COLUMN(c, value, isnull) \
			(slot->tts_values[attnum[c] - 1] = (value), \
			 slot->tts_isnull[attnum[c] - 1] = (isnull))
			SET_COLUMN(ENTRY_ID, Int64GetDatum(nextval_internal(sequence, false)), false);
			SET_COLUMN(ENTRY_ACCOUNT, account_id[i], false);
			SET_COLUMN(ENTRY_AMOUNT, amount[i], false);
			SET_COLUMN(ENTRY_BALANCE, balance_after[i], false);
			SET_COLUMN(ENTRY_TRANSFER, transfer_id[i], transfer_null[i]);
			SET_COLUMN(ENTRY_KEY, key[i], key_null[i]);
			SET_COLUMN(ENTRY_CREATED, TimestampTzGetDatum(created_at), false);
#undef SET_COLUMN
			ExecStoreVirtualTuple(slot);
			if (journal->check_constraints)
			{
				ExecConstraints(journal->rri, slot, journal->estate);
				ResetPerTupleExprContext(journal->estate);
			}
		}
		caller_context = MemoryContextSwitchTo(chunk_context);
		if (n == 1)
			table_tuple_insert(rel, slots[0], cid, 0, NULL);
		else
			table_multi_insert(rel, slots, n, cid, 0, NULL);
		MemoryContextSwitchTo(caller_context);
		MemoryContextReset(chunk_context);
		for (int j = 0; j < n; j++)
			insert_index_entries(journal, slots[j], true);
	}
	MemoryContextDelete(chunk_context);

	for (int j = 0; j < nslots; j++)
		ExecDropSingleTupleTableSlot(slots[j]);
	FreeTupleDesc(slot_desc);
	pfree(slots);
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
	DirectTarget journal;

	if (!open_target(APPEND_ENTRIES, &journal))
		return false;
	append_entries(&journal, count, account_id, amount, balance_after,
				   transfer_id, transfer_null, key, key_null, created_at);
	close_target(&journal);
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
	AttrNumber	balance_attnum = accounts->attnum[ACCOUNT_BALANCE];
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
	if (accounts->check_constraints)
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
 * Sets the balance of count account rows, the i-th at ctid[i] to
 * balance[i]; the caller holds each of these row versions locked FOR
 * UPDATE.  Returns false, having written nothing, if ledger.accounts needs
 * a statement.
 */
bool
ledger_bulk_set_balances(int count, const ItemPointerData *ctid,
						 const int64 *balance)
{
	DirectTarget accounts;
	TupleTableSlot *slot;

	if (!open_target(UPDATE_ACCOUNTS, &accounts))
		return false;
	slot = MakeSingleTupleTableSlot(RelationGetDescr(accounts.rel), &TTSOpsHeapTuple);
	for (int i = 0; i < count; i++)
		rewrite_balance(&accounts, ctid[i], balance[i], slot);
	ExecDropSingleTupleTableSlot(slot);
	close_target(&accounts);
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
	DirectTarget journal;
	TupleTableSlot *slot;
	Datum		account_id = Int64GetDatum(account->account_id);
	Datum		amount = Int64GetDatum(signed_amount);
	Datum		balance_after = Int64GetDatum(new_balance);
	Datum		key_datum = PointerGetDatum(key);
	bool		key_null = (key == NULL);
	Datum		none = (Datum) 0;
	bool		null = true;

	if (!account->ctid_known || !open_posting(&accounts, &journal))
		return false;

	slot = MakeSingleTupleTableSlot(RelationGetDescr(accounts.rel), &TTSOpsHeapTuple);
	rewrite_balance(&accounts, account->ctid, new_balance, slot);
	ExecDropSingleTupleTableSlot(slot);
	append_entries(&journal, 1, &account_id, &amount, &balance_after,
				   &none, &null, &key_datum, &key_null, now);

	close_posting(&accounts, &journal);
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
	DirectTarget accounts;
	DirectTarget transfers;
	DirectTarget journal;
	TupleDesc	transfer_desc;
	TupleTableSlot *slot;
	const AttrNumber *attnum;
	Datum		entry_account[2];
	Datum		entry_amount[2];
	Datum		entry_balance[2];
	Datum		entry_transfer[2];
	bool		entry_transfer_null[2] = {false, false};
	Datum		entry_key[2] = {PointerGetDatum(key), PointerGetDatum(key)};
	bool		entry_key_null[2] = {key == NULL, key == NULL};

	if (!from->ctid_known || !to->ctid_known)
		return false;
	if (!open_target(APPEND_TRANSFERS, &transfers))
		return false;
	if (!open_posting(&accounts, &journal))
	{
		close_target(&transfers);
		return false;
	}

	if (transfer_id == 0)
		transfer_id = nextval_internal(transfers.sequence, false);

	/* the transfer row */
	transfer_desc = CreateTupleDescCopy(RelationGetDescr(transfers.rel));
	slot = MakeSingleTupleTableSlot(transfer_desc, table_slot_callbacks(transfers.rel));
	attnum = transfers.attnum;
	memset(slot->tts_isnull, true, sizeof(bool) * transfer_desc->natts);
	slot->tts_values[attnum[TRANSFER_ID] - 1] = Int64GetDatum(transfer_id);
	slot->tts_values[attnum[TRANSFER_FROM] - 1] = Int64GetDatum(from->account_id);
	slot->tts_values[attnum[TRANSFER_TO] - 1] = Int64GetDatum(to->account_id);
	slot->tts_values[attnum[TRANSFER_AMOUNT] - 1] = Int64GetDatum(amount);
	slot->tts_values[attnum[TRANSFER_KEY] - 1] = PointerGetDatum(key);
	slot->tts_values[attnum[TRANSFER_CREATED] - 1] = TimestampTzGetDatum(now);
	for (int c = 0; c < TRANSFER_NCOLUMNS; c++)
		slot->tts_isnull[attnum[c] - 1] = false;
	slot->tts_isnull[attnum[TRANSFER_KEY] - 1] = (key == NULL);
	ExecStoreVirtualTuple(slot);
	if (transfers.check_constraints)
		ExecConstraints(transfers.rri, slot, transfers.estate);
	table_tuple_insert(transfers.rel, slot, GetCurrentCommandId(true), 0, NULL);
	insert_index_entries(&transfers, slot, true);
	ExecDropSingleTupleTableSlot(slot);
	FreeTupleDesc(transfer_desc);

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

	close_posting(&accounts, &journal);
	close_target(&transfers);
	*written_id = transfer_id;
	return true;
}

/*
 * Account rows by name, through the unique name index (open with the
 * accounts, see open_target): one scan, rescanned per name.
 */
struct NameLookup
{
	IndexScanDesc scan;
};

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

	return !isnull &&
		VARSIZE_ANY_EXHDR(other) == VARSIZE_ANY_EXHDR(name) &&
		memcmp(VARDATA_ANY(other), VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)) == 0;
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
	DirectTarget journal;
	TupleDesc	desc;
	TupleTableSlot *current;
	TupleTableSlot *updated;
	const AttrNumber *attnum;
	int64		balance;
	bool		posted = false;
	TM_Result	result;
	TM_FailureData failure;
	LockTupleMode lockmode;
	Datum		account_id;
	Datum		signed_amount;
	NameLookup	lookup;
	bool		found;

	if (!open_posting(&accounts, &journal))
		return false;

	/* the snapshot an UPDATE statement here would take */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());

	desc = RelationGetDescr(accounts.rel);
	attnum = accounts.attnum;
	current = table_slot_create(accounts.rel, NULL);
	updated = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);

	begin_lookup(&lookup, &accounts, GetActiveSnapshot());
	found = find_account(&lookup, name, current);
	end_lookup(&lookup);
	if (!found)
		goto done;

	slot_getallattrs(current);
	balance = DatumGetInt64(current->tts_values[attnum[ACCOUNT_BALANCE] - 1]);
	if (is_debit)
	{
		if (pg_sub_s64_overflow(balance, amount, new_balance))
			goto done;
		if (!current->tts_isnull[attnum[ACCOUNT_FLOOR] - 1] &&
			*new_balance < DatumGetInt64(current->tts_values[attnum[ACCOUNT_FLOOR] - 1]))
			goto done;
	}
	else if (pg_add_s64_overflow(balance, amount, new_balance))
		goto done;

	ExecClearTuple(updated);
	memcpy(updated->tts_values, current->tts_values, sizeof(Datum) * desc->natts);
	memcpy(updated->tts_isnull, current->tts_isnull, sizeof(bool) * desc->natts);
	updated->tts_values[attnum[ACCOUNT_BALANCE] - 1] = Int64GetDatum(*new_balance);
	ExecStoreVirtualTuple(updated);
	if (accounts.check_constraints)
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
				raise_concurrent_update();
			/* READ COMMITTED: the SQL path re-reads the newest version */
			goto done;
		case TM_SelfModified:
			/* changed by this very command: let the statement sort it out */
			goto done;
		default:
			elog(ERROR, "ledger: unexpected result %d updating an account", (int) result);
	}

	account_id = current->tts_values[attnum[ACCOUNT_ID] - 1];
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
	close_posting(&accounts, &journal);
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
 * deadlocking), the newest version in READ COMMITTED (re-checked to still
 * carry its name, as the statement's EvalPlanQual would), a serialization
 * failure (40001) if it changed since the snapshot under REPEATABLE READ
 * or SERIALIZABLE, all as ExecLockRows does.  names must be distinct;
 * rows[i] describes names[i] (found false if there is no such account).
 * Returns false, having locked nothing, when the statement must do it.
 */
bool
ledger_direct_lock_accounts(int count, text **names, LedgerLockedRow *rows)
{
	DirectTarget accounts;
	TupleTableSlot *slot;
	RowToLock  *found;
	int			nfound = 0;
	NameLookup	lookup;
	Snapshot	snapshot;
	CommandId	cid;
	const AttrNumber *attnum;
	uint8		flags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS;

	if (!open_target(LOCK_ACCOUNTS, &accounts))
		return false;
	attnum = accounts.attnum;

	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
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
			DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_ID], &isnull));
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

		row->found = true;
		row->ctid = slot->tts_tid;
		row->account_id = DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_ID], &isnull));
		row->balance = DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_BALANCE], &isnull));
		row->min_balance = DatumGetInt64(slot_getattr(slot, attnum[ACCOUNT_FLOOR], &isnull));
		row->has_floor = !isnull;
		row->currency = TextDatumGetCString(slot_getattr(slot, attnum[ACCOUNT_CURRENCY], &isnull));
	}

	ExecDropSingleTupleTableSlot(slot);
	PopActiveSnapshot();
	close_target(&accounts);
	return true;
}
