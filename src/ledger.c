/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  Module entry point of the ledger extension.
 *
 * The SQL-callable functions live next to the concern they implement:
 * account.c (open, balance), posting.c (credit, debit, transfer),
 * journal.c (history, append-only trigger), audit.c (verify).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "ledger.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load callback.  Works with and without shared_preload_libraries:
 * nothing here needs shared memory.
 */
void
_PG_init(void)
{
	ledger_durability_init();
}
