/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  Module entry point of the ledger extension.
 *
 * The SQL-callable functions live next to the concern they implement:
 * account.c (open, balance), posting.c (credit, debit, transfer),
 * batch.c (the batches), journal.c (history), audit.c (verify), guard.c
 * (the triggers that keep the tables the ledger's own).  A posting of
 * any kind is decided by posting.c with the rules of rules.c and written
 * by write.c, directly (direct_write.c, relations.c) or through the SQL
 * of statements.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "ledger.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load callback.  Works with and without shared_preload_libraries:
 * only escrow mode needs its shared memory (escrow.c), and without it
 * everything else works.
 */
void
_PG_init(void)
{
	ledger_durability_init();
	ledger_escrow_init();
	MarkGUCPrefixReserved("ledger");
}
