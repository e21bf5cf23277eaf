/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The trust boundary: only the ledger writes its tables, and only a
 *	  role with the right to create money creates it.
 *
 * Writes.  EXECUTE on the functions is the only way in.  Table privileges
 * alone do not keep out everyone: since PostgreSQL 14 a member of
 * pg_write_all_data may write every table, and a forged idempotency key
 * would make a real posting replay a result and apply nothing.  So every
 * ledger table carries ENABLE ALWAYS statement triggers:
 *
 *	  ledger.guard_write()		   INSERT and UPDATE: refused unless the
 *								   ledger's own code is writing, or the
 *								   current role is a superuser (who could
 *								   drop the trigger anyway; pg_restore runs
 *								   as one)
 *	  ledger.forbid_journal_change() UPDATE, DELETE and TRUNCATE of the
 *								   journal, DELETE and TRUNCATE of accounts:
 *								   refused for every role
 *
 * "The ledger's own code is writing" is a counter that statements.c raises
 * around the execution of its own writing statements only, and lowers
 * again whatever happens.  The direct writes fire no triggers at all; they
 * recognize guard_write as the ledger's own (relations.c).
 *
 * Money.  Creating money -- crediting an account, opening one that may go
 * below zero, taking money out of one that has no floor (a source) -- is a
 * right of its own: EXECUTE on ledger_credit.  An application granted only
 * the functions that move money can then never create it.  The right is
 * checked for the role the session runs as (its current_user outside any
 * SECURITY DEFINER function, SET ROLE included): the ledger's functions
 * are SECURITY DEFINER themselves, and a SECURITY DEFINER function of
 * someone else's cannot lend its owner's right to its callers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/datum.h"
#include "utils/rel.h"

#include "ledger.h"

/* > 0 while the ledger executes one of its own writing statements */
static int	ledger_writing = 0;

/*
 * Around one of the ledger's own writing statements: the guard lets it
 * through.  ledger_leave_write(ledger_enter_write()) must pair up, also
 * on error (statements.c uses PG_FINALLY).
 */
int
ledger_enter_write(void)
{
	return ledger_writing++;
}

void
ledger_leave_write(int saved)
{
	ledger_writing = saved;
}

/*
 * Whether the role the session runs as may create money (see the header
 * comment): it may execute ledger_credit.
 */
bool
ledger_may_create_money(void)
{
	Oid			credit = ledger_relations()->credit_function;

	return OidIsValid(credit) &&
		pg_proc_aclcheck(credit, GetOuterUserId(), ACL_EXECUTE) == ACLCHECK_OK;
}

/* Refuse an action that would create money: 42501. */
void
ledger_raise_money_creation_denied(const char *action, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s", action),
			 errdetail("%s", detail),
			 errhint("Creating money needs the right to execute ledger_credit.")));
}

/*
 * Trigger ledger.guard_write(): BEFORE INSERT OR UPDATE FOR EACH STATEMENT
 * on every ledger table.
 */
PG_FUNCTION_INFO_V1(ledger_guard_write);
Datum
ledger_guard_write(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.guard_write() must be called as a trigger")));

	if (ledger_writing == 0 && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the ledger's functions write ledger table \"%s\"",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("%s of ledger.%s outside the ledger's functions is refused for every role but a superuser, members of pg_write_all_data included.",
						   TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ? "INSERT"
						   : TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? "UPDATE"
						   : TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ? "DELETE" : "TRUNCATE",
						   RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Post through the ledger's functions.")));

	/* a null pointer, not SQL NULL: that is the trigger protocol */
	return PointerGetDatum(NULL);
}

/* Set while the folder (fold.c) fills balance_after: see below. */
static bool folding = false;

void
ledger_set_folding(bool on)
{
	folding = on;
}

/*
 * Whether an UPDATE of an entry is the folder's: balance_after filled in,
 * from NULL, and nothing else changed.  An escrow entry is written without
 * it (escrow.c), and this is the one change a journal row ever sees.
 */
static bool
is_fold(TriggerData *trigdata)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	HeapTuple	old = trigdata->tg_trigtuple;
	HeapTuple	new = trigdata->tg_newtuple;

	if (!folding || !TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		strcmp(RelationGetRelationName(trigdata->tg_relation), "entries") != 0)
		return false;
	for (int a = 1; a <= desc->natts; a++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, a - 1);
		bool		old_null,
					new_null;
		Datum		old_value = heap_getattr(old, a, desc, &old_null);
		Datum		new_value = heap_getattr(new, a, desc, &new_null);

		if (attr->attisdropped)
			continue;
		if (strcmp(NameStr(attr->attname), "balance_after") == 0)
		{
			if (!old_null || new_null)
				return false;
			continue;
		}
		if (old_null != new_null ||
			(!old_null && !datumIsEqual(old_value, new_value, attr->attbyval, attr->attlen)))
			return false;
	}
	return true;
}

/*
 * Trigger on ledger.entries, ledger.transfers and ledger.idempotency_keys:
 * refuses UPDATE, DELETE and TRUNCATE for every role, owner included (but
 * the folder's filling in of an escrow entry's balance_after).  On
 * ledger.accounts it refuses DELETE and TRUNCATE: balances change, but an
 * account, and so the history that refers to it, is never removed.
 */
PG_FUNCTION_INFO_V1(ledger_forbid_journal_change);
Datum
ledger_forbid_journal_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *relname;
	const char *action;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.forbid_journal_change() must be called as a trigger")));

	if (is_fold(trigdata))
		return PointerGetDatum(trigdata->tg_newtuple);

	relname = RelationGetRelationName(trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		action = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		action = "DELETE";
	else
		action = "TRUNCATE";

	if (strcmp(relname, "accounts") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("ledger accounts are never deleted"),
				 errdetail("%s of ledger.accounts is refused for every role: the journal refers to every account.",
						   action)));

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("ledger journal table \"%s\" is append-only", relname),
			 errdetail("%s is refused for every role: a journal row, once written, is never changed.",
					   action),
			 errhint("Correct a posting with a new, compensating posting.")));

	PG_RETURN_NULL();			/* not reached */
}
