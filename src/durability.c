/*-------------------------------------------------------------------------
 *
 * durability.c
 *	  Make sure that no transaction that wrote to the ledger is acknowledged
 *	  before its commit record is on disk (and, with a synchronous standby,
 *	  on the standby too).
 *
 * A session may run with synchronous_commit = off, local or remote_write.
 * For ordinary data that is the user's trade-off; for money it is not.
 * Every ledger write marks the transaction, and at pre-commit we raise
 * synchronous_commit to at least "on" for that transaction only (like
 * SET LOCAL) and call ForceSyncCommit(), the hook Postgres itself uses for
 * CREATE DATABASE.  Doing it at pre-commit rather than in the function
 * also defeats a SET LOCAL synchronous_commit = off issued after the
 * posting.  Raising the GUC (not only ForceSyncCommit) is what makes the
 * commit wait for a synchronous standby: SyncRepWaitForLSN() looks at the
 * GUC, not at the force flag.
 *
 * With fsync = off no commit is durable, so postings are refused unless a
 * superuser declared the data disposable (ledger.data_is_disposable).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "ledger.h"

/* GUC: the data may be lost, so allow postings with fsync = off */
static bool ledger_data_is_disposable = false;

/* Did the current top-level transaction write through the ledger? */
static bool xact_wrote_ledger = false;

static void ledger_xact_callback(XactEvent event, void *arg);

void
ledger_durability_init(void)
{
	DefineCustomBoolVariable("ledger.data_is_disposable",
							 "Allows postings while fsync is off.",
							 "With fsync = off a crash can lose committed postings. "
							 "Set this only for data you can afford to lose, such as a test cluster.",
							 &ledger_data_is_disposable,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("ledger");

	RegisterXactCallback(ledger_xact_callback, NULL);
}

/*
 * Called before any write to the ledger's tables: refuses when the server
 * cannot make the write durable, and marks the transaction for a
 * synchronous commit.
 */
void
ledger_prepare_write(void)
{
	if (!enableFsync && !ledger_data_is_disposable)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger refuses to post while fsync is off"),
				 errdetail("With fsync = off a crash can lose committed postings."),
				 errhint("Turn fsync on, or have a superuser set ledger.data_is_disposable = on if this data may be lost.")));

	xact_wrote_ledger = true;
}

static void
ledger_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (!xact_wrote_ledger)
				break;
			if (synchronous_commit < SYNCHRONOUS_COMMIT_REMOTE_FLUSH)
				(void) set_config_option("synchronous_commit", "on",
										 PGC_USERSET, PGC_S_SESSION,
										 GUC_ACTION_LOCAL, true, 0, false);
			ForceSyncCommit();
			break;

		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			xact_wrote_ledger = false;
			break;

		default:
			break;
	}
}
