/*-------------------------------------------------------------------------
 *
 * relations.c
 *	  The ledger's relations, functions and types, and whether a direct
 *	  write may stand in for a statement on a table (direct_write.c).
 *
 * A direct write must do everything the statement it replaces would, or
 * not run at all.  ledger_open_target opens a table for one and refuses
 * (the caller then writes through SQL) when the table has what only a
 * statement honours: a read-only transaction or a standby (the statement
 * raises 25006), a table renamed or replaced while we waited for its
 * lock, anything but a plain heap table, rules, row-level security,
 * stored generated columns, triggers for the kind of write other than the
 * ledger's own guard (guard.c), a deferrable index, columns other than the
 * known ones (an added column may want its default) or of another type
 * than the one shipped -- compared exactly, so an owner's domain swapped in
 * is never bypassed.  The checks run after the table's lock is granted,
 * so a concurrent ALTER TABLE is seen.
 *
 * Every CHECK and NOT NULL constraint of the table is evaluated on every
 * row a direct write stores, as the statement would; none is skipped by
 * name.  Preparing the CHECK expressions is the expensive part, so they
 * are prepared once per backend and table and kept until the table's
 * relcache entry is invalidated.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_opfamily_d.h"
#include "catalog/pg_trigger_d.h"
#include "catalog/pg_type_d.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_func.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/fmgroids.h"
#include "utils/syscache.h"

#include "ledger.h"
#include "target.h"

/* The extension's domains, the exact types of some columns. */
typedef enum LedgerDomain
{
	NO_DOMAIN = -1,
	DOMAIN_ACCOUNT_NAME,
	DOMAIN_IDEMPOTENCY_KEY,
	DOMAIN_CURRENCY_CODE,
	DOMAIN_FLOOR,
	DOMAIN_POSITIVE_AMOUNT,
	DOMAIN_SIGNED_AMOUNT,
	N_DOMAINS
} LedgerDomain;

static const char *const domain_names[N_DOMAINS] = {
	"account_name", "idempotency_key", "currency_code", "floor",
	"positive_amount", "signed_amount"
};

/*
 * A column a direct write reads or writes: its name, its exact type (a
 * built-in type, or one of the extension's domains), and the version that
 * added it (12: holds; 13: escrow mode), so that a database not yet
 * updated lacks it.
 */
typedef struct ColumnSpec
{
	const char *name;
	Oid			builtin;
	LedgerDomain domain;
	int			since;
} ColumnSpec;

static const ColumnSpec account_columns[ACCOUNT_NCOLUMNS] = {
	{"account_id", INT8OID, NO_DOMAIN}, {"name", InvalidOid, DOMAIN_ACCOUNT_NAME},
	{"currency", InvalidOid, DOMAIN_CURRENCY_CODE}, {"min_balance", InvalidOid, DOMAIN_FLOOR},
	{"balance", INT8OID, NO_DOMAIN}, {"held", INT8OID, NO_DOMAIN, 12},
	{"escrow", BOOLOID, NO_DOMAIN, 13}
};

static const ColumnSpec entry_columns[ENTRY_NCOLUMNS] = {
	{"entry_id", INT8OID, NO_DOMAIN}, {"account_id", INT8OID, NO_DOMAIN},
	{"amount", InvalidOid, DOMAIN_SIGNED_AMOUNT}, {"balance_after", INT8OID, NO_DOMAIN},
	{"transfer_id", INT8OID, NO_DOMAIN}, {"idempotency_key", InvalidOid, DOMAIN_IDEMPOTENCY_KEY},
	{"hold_id", INT8OID, NO_DOMAIN, 12}, {"created_at", TIMESTAMPTZOID, NO_DOMAIN}
};

static const ColumnSpec transfer_columns[TRANSFER_NCOLUMNS] = {
	{"transfer_id", INT8OID, NO_DOMAIN}, {"from_account_id", INT8OID, NO_DOMAIN},
	{"to_account_id", INT8OID, NO_DOMAIN}, {"amount", InvalidOid, DOMAIN_POSITIVE_AMOUNT},
	{"idempotency_key", InvalidOid, DOMAIN_IDEMPOTENCY_KEY},
	{"created_at", TIMESTAMPTZOID, NO_DOMAIN}
};

/*
 * Looked up once per backend and forgotten on any relcache invalidation: a
 * posting would otherwise spend a tenth of its time in catalog lookups.  A
 * stale OID (the extension dropped meanwhile) fails to open and the SQL
 * path takes over.
 */
static LedgerRelations relations;
static Oid	domains[N_DOMAINS];
static bool relations_valid = false;
static uint64 invalidations = 0;
static bool callbacks_registered = false;

/*
 * The prepared CHECK expressions of one table.  An invalidation only
 * marks them stale: a target still using them (pins) may be open, e.g.
 * while another table's lock is taken.  Pins are forgotten at the end of
 * every transaction, when no target is open any more.
 */
typedef struct CheckCache
{
	Oid			relid;
	MemoryContext context;
	ExprState **states;
	int			count;
	bool		stale;
	int			pins;
} CheckCache;

static CheckCache check_caches[3];	/* accounts, entries, transfers */

static void
forget_relations(Datum arg, Oid relid)
{
	relations_valid = false;
	invalidations++;
	for (int c = 0; c < lengthof(check_caches); c++)
		if (!OidIsValid(relid) || relid == check_caches[c].relid)
			check_caches[c].stale = true;
}

static void
unpin_checks(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		for (int c = 0; c < lengthof(check_caches); c++)
			check_caches[c].pins = 0;
}

static Oid
ledger_relid(Oid namespace, const char *name)
{
	return OidIsValid(namespace) ? get_relname_relid(name, namespace) : InvalidOid;
}

/* A function of the extension by its qualified name, or InvalidOid. */
static Oid
function_oid(Oid namespace, const char *name, int nargs, const Oid *argtypes)
{
	if (!OidIsValid(namespace))
		return InvalidOid;
	return LookupFuncName(list_make2(makeString(get_namespace_name(namespace)),
									 makeString(pstrdup(name))),
						  nargs, argtypes, true);
}

/*
 * The schema the ledger extension was created in (where its functions
 * live), or InvalidOid; as get_extension_schema(), which PostgreSQL 15
 * does not export.
 */
static Oid
extension_schema(void)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			schema = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("ledger"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return schema;
}

const LedgerRelations *
ledger_relations(void)
{
	static const Oid credit_args[3] = {TEXTOID, INT8OID, TEXTOID};
	uint64		seen = invalidations;
	Oid			data;
	Oid			api;

	if (relations_valid)
		return &relations;
	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(forget_relations, (Datum) 0);
		RegisterXactCallback(unpin_checks, NULL);
		callbacks_registered = true;
	}
	data = get_namespace_oid("ledger", true);
	api = extension_schema();

	relations.accounts = ledger_relid(data, "accounts");
	relations.entries = ledger_relid(data, "entries");
	relations.transfers = ledger_relid(data, "transfers");
	relations.entry_sequence = ledger_relid(data, "entries_entry_id_seq");
	relations.transfer_sequence = ledger_relid(data, "transfers_transfer_id_seq");
	relations.hold_sequence = ledger_relid(data, "holds_hold_id_seq");
	relations.escrow = OidIsValid(relations.accounts) &&
		get_attnum(relations.accounts, "escrow") != InvalidAttrNumber;
	relations.guard_function = function_oid(data, "guard_write", 0, NULL);
	relations.credit_function = function_oid(api, "ledger_credit", 3, credit_args);
	for (int d = 0; d < N_DOMAINS; d++)
		domains[d] = OidIsValid(data)
			? GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							  CStringGetDatum(domain_names[d]), ObjectIdGetDatum(data))
			: InvalidOid;

	/* an invalidation during the lookups may have made them stale */
	relations_valid = (invalidations == seen);
	return &relations;
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
 * Whether a table is one a direct write may touch at all: still the
 * ledger's (the lock may have waited for a DDL that put another there), a
 * plain heap table, with no rules, row-level security or stored generated
 * columns.
 */
static bool
plain_table(Relation rel, TargetUse use)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return RelationGetRelid(rel) == target_relid(use) &&
		rel->rd_rel->relkind == RELKIND_RELATION &&
		rel->rd_rel->relam == HEAP_TABLE_AM_OID &&
		!rel->rd_rel->relhasrules &&
		!rel->rd_rel->relrowsecurity &&
		!(constr != NULL && constr->has_generated_stored);
}

/*
 * Whether the write fires no trigger but the ledger's own guard (which
 * only stops writes that do not come from the ledger).  Row locks fire
 * none.
 */
static bool
fires_no_trigger(Relation rel, TargetUse use)
{
	TriggerDesc *triggers = rel->trigdesc;
	Oid			guard = ledger_relations()->guard_function;
	int16		event = (use == UPDATE_ACCOUNTS) ? TRIGGER_TYPE_UPDATE : TRIGGER_TYPE_INSERT;

	if (use == LOCK_ACCOUNTS || triggers == NULL)
		return true;
	for (int t = 0; t < triggers->numtriggers; t++)
	{
		Trigger    *trigger = &triggers->triggers[t];

		if ((trigger->tgtype & event) != 0 && trigger->tgfoid != guard)
			return false;
	}
	return true;
}

static Oid
column_type(const ColumnSpec *column)
{
	return column->domain == NO_DOMAIN ? column->builtin : domains[column->domain];
}

/*
 * Whether desc has the columns, each of exactly its type, and (if exact)
 * no others; their numbers into attnum.  The columns of a version must be
 * there exactly when the database was updated to it.
 */
static bool
column_expected(const ColumnSpec *column)
{
	const LedgerRelations *r = ledger_relations();

	return column->since == 0 ||
		(column->since == 12 && OidIsValid(r->hold_sequence)) ||
		(column->since == 13 && r->escrow);
}

static bool
columns_match(TupleDesc desc, const ColumnSpec *columns, int count, bool exact,
			  AttrNumber *attnum)
{
	int			matched = 0;
	int			wanted = 0;

	for (int c = 0; c < count; c++)
		wanted += column_expected(&columns[c]);
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
			if (attr->atttypid != column_type(&columns[c]))
				return false;
			attnum[c] = attr->attnum;
			known = true;
			matched++;
		}
		if (!known && exact)
			return false;
	}
	return matched == wanted;
}

static bool
known_columns(Relation rel, TargetUse use, AttrNumber *attnum)
{
	TupleDesc	desc = RelationGetDescr(rel);

	switch (use)
	{
		case LOCK_ACCOUNTS:
		case UPDATE_ACCOUNTS:
			return columns_match(desc, account_columns, ACCOUNT_NCOLUMNS, false, attnum);
		case APPEND_ENTRIES:
			return columns_match(desc, entry_columns, ENTRY_NCOLUMNS, true, attnum);
		case APPEND_TRANSFERS:
			return columns_match(desc, transfer_columns, TRANSFER_NCOLUMNS, true, attnum);
	}
	return false;
}

/*
 * The unique, valid, "C"-collated text B-tree index on the name column
 * alone: what direct_write.c's name lookups compare as.
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
 * Open what the write needs of the table's indexes: for a row lock only
 * the name index, as an index scan would open it; for a write all of
 * them, which must check uniqueness immediately.  False if that cannot be
 * (no usable name index, a deferrable index).
 */
static bool
open_indexes(DirectTarget *target)
{
	bool		accounts = (target->use == LOCK_ACCOUNTS || target->use == UPDATE_ACCOUNTS);

	if (target->use == LOCK_ACCOUNTS)
	{
		List	   *indexes = RelationGetIndexList(target->rel);
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
		return target->name_index != NULL;
	}

	target->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(target->rri, target->rel, 0, NULL, 0);
	ExecOpenIndices(target->rri, false);
	for (int i = 0; i < target->rri->ri_NumIndices; i++)
	{
		Relation	index = target->rri->ri_IndexRelationDescs[i];

		/* a deferred unique check would need an after-trigger queue */
		if (!index->rd_index->indimmediate)
			return false;
		if (accounts && target->name_index == NULL &&
			is_name_index(index, target->attnum[ACCOUNT_NAME]))
			target->name_index = index;
	}
	return !accounts || target->name_index != NULL;
}

static CheckCache *
check_cache_of(TargetUse use)
{
	return &check_caches[use == APPEND_ENTRIES ? 1 : use == APPEND_TRANSFERS ? 2 : 0];
}

/*
 * Give the target the table's CHECK expressions, as ExecRelCheck would
 * prepare them, from the cache.  While another target uses them, this one
 * goes without: ExecConstraints then prepares its own, in the target's
 * executor state.
 */
static void
attach_checks(DirectTarget *target)
{
	CheckCache *cache = check_cache_of(target->use);
	TupleConstr *constr = RelationGetDescr(target->rel)->constr;
	Oid			relid = RelationGetRelid(target->rel);

	target->pinned_checks = false;
	/* one user at a time: an ExprState is not reentrant */
	if (constr == NULL || constr->num_check == 0 || cache->pins > 0)
		return;
	if (cache->relid != relid || cache->stale || cache->states == NULL)
	{
		MemoryContext old;

		if (cache->context == NULL)
			cache->context = AllocSetContextCreate(CacheMemoryContext,
												   "ledger CHECK expressions",
												   ALLOCSET_SMALL_SIZES);
		MemoryContextReset(cache->context);
		old = MemoryContextSwitchTo(cache->context);
		cache->states = palloc0(sizeof(ExprState *) * constr->num_check);
		for (int c = 0; c < constr->num_check; c++)
			cache->states[c] = ExecInitExpr(expression_planner(stringToNode(constr->check[c].ccbin)),
											NULL);
		MemoryContextSwitchTo(old);
		cache->count = constr->num_check;
		cache->relid = relid;
		cache->stale = false;
	}
	if (cache->count != constr->num_check)
		return;
	target->rri->ri_ConstraintExprs = cache->states;
	target->pinned_checks = true;
	cache->pins++;
}

/*
 * Opens a ledger table for a direct write (or, LOCK_ACCOUNTS, for row
 * locks with the table lock of SELECT ... FOR UPDATE), or returns false
 * (and leaves it closed) if only a statement would do all that is asked
 * (see the header comment).
 */
bool
ledger_open_target(TargetUse use, DirectTarget *target)
{
	LOCKMODE	lockmode = (use == LOCK_ACCOUNTS) ? RowShareLock : RowExclusiveLock;
	Oid			relid = target_relid(use);
	Relation	rel;

	if (XactReadOnly || RecoveryInProgress())
		return false;
	if (!OidIsValid(relid) || (rel = try_table_open(relid, lockmode)) == NULL)
		return false;

	memset(target, 0, sizeof(*target));
	target->use = use;
	target->rel = rel;
	target->lockmode = lockmode;
	target->sequence = (use == APPEND_ENTRIES) ? ledger_relations()->entry_sequence : InvalidOid;
	if (!plain_table(rel, use) || !fires_no_trigger(rel, use) ||
		!known_columns(rel, use, target->attnum) ||
		(use == APPEND_ENTRIES && !OidIsValid(target->sequence)))
	{
		table_close(rel, lockmode);
		return false;
	}

	/* what the statement would raise for a publication without identity */
	if (use != LOCK_ACCOUNTS)
		CheckCmdReplicaIdentity(rel, use == UPDATE_ACCOUNTS ? CMD_UPDATE : CMD_INSERT);

	target->estate = CreateExecutorState();
	if (!open_indexes(target))
	{
		ledger_close_target(target);
		return false;
	}
	if (use != LOCK_ACCOUNTS)
		attach_checks(target);
	return true;
}

void
ledger_close_target(DirectTarget *target)
{
	if (target->pinned_checks)
	{
		CheckCache *cache = check_cache_of(target->use);

		/* ExecConstraints must not free them with the executor state */
		target->rri->ri_ConstraintExprs = NULL;
		if (cache->pins > 0)
			cache->pins--;
	}
	if (target->rri != NULL)
		ExecCloseIndices(target->rri);
	else if (target->name_index != NULL)
		index_close(target->name_index, AccessShareLock);
	FreeExecutorState(target->estate);
	table_close(target->rel, NoLock);
	/* later statements of the transaction see the rows, as after SPI */
	CommandCounterIncrement();
}
