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
 * With fsync = off no commit is durable, and with full_page_writes = off a
 * page torn by an operating-system crash can lose committed postings, so
 * postings are refused (55000) unless a superuser declared the data
 * disposable (ledger.data_is_disposable).  Both are checked before the
 * first write and again at pre-commit: a reload may have turned them off
 * while the transaction ran, and the commit is what must be durable.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
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

	RegisterXactCallback(ledger_xact_callback, NULL);
}

/*
 * Refuse (55000) when the server cannot make a commit durable and the data
 * was not declared disposable.
 */
static void
require_durable_server(void)
{
	const char *setting;

	if (ledger_data_is_disposable || (enableFsync && fullPageWrites))
		return;
	setting = !enableFsync ? "fsync" : "full_page_writes";
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("ledger refuses to post while %s is off", setting),
			 !enableFsync
			 ? errdetail("With fsync = off a crash can lose committed postings.")
			 : errdetail("With full_page_writes = off a page torn by an operating-system crash can lose committed postings."),
			 errhint("Turn %s on, or have a superuser set ledger.data_is_disposable = on if this data may be lost.",
					 setting)));
}

/*
 * Called before any write to the ledger's tables: refuses when the server
 * cannot make the write durable, and marks the transaction for a
 * synchronous commit.
 */
void
ledger_prepare_write(void)
{
	require_durable_server();
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
			require_durable_server();
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
