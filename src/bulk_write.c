/*-------------------------------------------------------------------------
 *
 * bulk_write.c
 *	  A batch's writes straight through the table access method, as COPY
 *	  does: journal entries with one multi-insert per page, balances with
 *	  one heap update per account, index entries alongside.
 *
 * Why: profiles of a 1 000-item batch showed the executor's per-row work
 * (projection, one WAL record per inserted row, one executor update per
 * account) as the largest cost after the B-tree itself.  These paths do
 * the same writes with less of it.
 *
 * What a statement would do and these paths do not: fire triggers, apply
 * column defaults and domain checks, compute generated columns, apply
 * row-level security.  The ledger's own tables have none of that on the
 * columns written here: the values are checked by the caller (amounts
 * positive, keys 1 to 255 bytes, the floor under the row lock) and the
 * balance CHECK is still evaluated.  If an administrator adds any of it
 * (a trigger for an outbox, a new column with a default, a generated
 * column, row-level security, a deferrable unique index), the functions
 * return false and the caller writes through SQL, so nothing is skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "ledger.h"

/* Rows per multi-insert call: bounds the memory of huge batches. */
#define ENTRY_CHUNK		1000

/* The columns of ledger.entries, in the order ledger_bulk_append_entries
 * fills them. */
static const char *const entry_columns[] = {
	"entry_id", "account_id", "amount", "balance_after", "transfer_id",
	"idempotency_key", "created_at"
};
#define ENTRY_NCOLUMNS	lengthof(entry_columns)

/* What a direct write needs: the relation, open with its indexes. */
typedef struct DirectTarget
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
} DirectTarget;

static Oid	ledger_relid(const char *name);
static bool open_target(const char *table, bool for_update, DirectTarget *target);
static void close_target(DirectTarget *target);
static void insert_index_entries(DirectTarget *target, TupleTableSlot *slot,
								 bool all_indexes);

static Oid
ledger_relid(const char *name)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid("ledger", false));

	if (!OidIsValid(relid))
		elog(ERROR, "ledger: relation ledger.%s is missing", name);
	return relid;
}

/*
 * Opens a ledger table for a direct write, or returns false (and leaves it
 * closed) if it carries anything only a statement would honour.
 */
static bool
open_target(const char *table, bool for_update, DirectTarget *target)
{
	Relation	rel = table_open(ledger_relid(table), RowExclusiveLock);
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
 * Appends count journal entries; the i-th row is (a fresh entry_id,
 * account_id[i], amount[i], balance_after[i], transfer_id[i] or NULL,
 * key[i] or NULL, created_at).  Returns false, having written nothing, if
 * ledger.entries needs a statement (see the file header).
 */
bool
ledger_bulk_append_entries(int count, const Datum *account_id,
						   const Datum *amount, const Datum *balance_after,
						   const Datum *transfer_id, const bool *transfer_null,
						   const Datum *key, const bool *key_null,
						   TimestampTz created_at)
{
	DirectTarget target;
	TupleDesc	desc;
	AttrNumber	attnum[ENTRY_NCOLUMNS];
	int			live_columns = 0;
	Oid			sequence;
	CommandId	cid;
	TupleDesc	slot_desc;
	TupleTableSlot **slots;

	if (!open_target("entries", false, &target))
		return false;

	/* exactly the known columns: a new column may want its default */
	desc = RelationGetDescr(target.rel);
	for (int a = 0; a < desc->natts; a++)
		if (!TupleDescAttr(desc, a)->attisdropped)
			live_columns++;
	for (int c = 0; c < ENTRY_NCOLUMNS; c++)
		attnum[c] = get_attnum(RelationGetRelid(target.rel), entry_columns[c]);
	for (int c = 0; c < ENTRY_NCOLUMNS; c++)
	{
		if (live_columns != ENTRY_NCOLUMNS || attnum[c] == InvalidAttrNumber)
		{
			close_target(&target);
			return false;
		}
	}

	sequence = ledger_relid("entries_entry_id_seq");
	cid = GetCurrentCommandId(true);
	slots = palloc0(sizeof(TupleTableSlot *) * Min(count, ENTRY_CHUNK));

	/*
	 * The slots share one unreferenced copy of the descriptor: slots of the
	 * relation's own descriptor each register it with the resource owner,
	 * whose lookups are linear, so a thousand of them cost quadratic time.
	 */
	slot_desc = CreateTupleDescCopy(desc);

	for (int start = 0; start < count; start += ENTRY_CHUNK)
	{
		int			n = Min(ENTRY_CHUNK, count - start);

		for (int j = 0; j < n; j++)
		{
			int			i = start + j;
			TupleTableSlot *slot = slots[j];

			if (slot == NULL)
				slot = slots[j] = MakeSingleTupleTableSlot(slot_desc,
														   table_slot_callbacks(target.rel));
			ExecClearTuple(slot);
			memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
#define SET_COLUMN(c, value, isnull) \
			(slot->tts_values[attnum[c] - 1] = (value), \
			 slot->tts_isnull[attnum[c] - 1] = (isnull))
			SET_COLUMN(0, Int64GetDatum(nextval_internal(sequence, false)), false);
			SET_COLUMN(1, account_id[i], false);
			SET_COLUMN(2, amount[i], false);
			SET_COLUMN(3, balance_after[i], false);
			SET_COLUMN(4, transfer_id[i], transfer_null[i]);
			SET_COLUMN(5, key[i], key_null[i]);
			SET_COLUMN(6, TimestampTzGetDatum(created_at), false);
#undef SET_COLUMN
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(target.rel, slots, n, cid, 0, NULL);
		for (int j = 0; j < n; j++)
			insert_index_entries(&target, slots[j], true);
	}

	for (int j = 0; j < Min(count, ENTRY_CHUNK); j++)
		if (slots[j] != NULL)
			ExecDropSingleTupleTableSlot(slots[j]);
	close_target(&target);
	return true;
}

/*
 * Sets the balance of count account rows, the i-th at ctid[i] to
 * balance[i].  The caller holds a FOR UPDATE lock on each of these row
 * versions, so none of them can have moved.  The balance CHECK runs on
 * every new version.  Returns false, having written nothing, if
 * ledger.accounts needs a statement.
 */
bool
ledger_bulk_set_balances(int count, const ItemPointerData *ctid,
						 const int64 *balance)
{
	DirectTarget target;
	TupleDesc	desc;
	AttrNumber	balance_attnum;
	Datum	   *values;
	bool	   *nulls;
	bool	   *replace;
	TupleTableSlot *slot;

	if (!open_target("accounts", true, &target))
		return false;

	desc = RelationGetDescr(target.rel);
	balance_attnum = get_attnum(RelationGetRelid(target.rel), "balance");
	if (balance_attnum == InvalidAttrNumber)
		elog(ERROR, "ledger: ledger.accounts has no balance column");
	values = palloc0(sizeof(Datum) * desc->natts);
	nulls = palloc0(sizeof(bool) * desc->natts);
	replace = palloc0(sizeof(bool) * desc->natts);
	replace[balance_attnum - 1] = true;
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

	for (int i = 0; i < count; i++)
	{
		HeapTupleData old;
		Buffer		buffer;
		HeapTuple	updated;
		bool		all_indexes;

		old.t_self = ctid[i];
		if (!heap_fetch(target.rel, SnapshotAny, &old, &buffer, false))
			elog(ERROR, "ledger: a locked account row moved during the batch");
		values[balance_attnum - 1] = Int64GetDatum(balance[i]);
		updated = heap_modify_tuple(&old, desc, values, nulls, replace);
		ReleaseBuffer(buffer);

		ExecStoreHeapTuple(updated, slot, false);
		ExecConstraints(target.rri, slot, target.estate);

#if PG_VERSION_NUM >= 160000
		{
			TU_UpdateIndexes update_indexes;

			simple_heap_update(target.rel, &old.t_self, updated, &update_indexes);
			all_indexes = (update_indexes == TU_All);
			if (update_indexes != TU_None)
			{
				ExecStoreHeapTuple(updated, slot, false);
				insert_index_entries(&target, slot, all_indexes);
			}
		}
#else
		simple_heap_update(target.rel, &old.t_self, updated);
		all_indexes = !HeapTupleIsHeapOnly(updated);
		if (all_indexes)
		{
			/* the slot's tid must be the new version's */
			ExecStoreHeapTuple(updated, slot, false);
			insert_index_entries(&target, slot, true);
		}
#endif
		ExecClearTuple(slot);
		heap_freetuple(updated);
	}

	ExecDropSingleTupleTableSlot(slot);
	close_target(&target);
	return true;
}
