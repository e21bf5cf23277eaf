/*-------------------------------------------------------------------------
 *
 * fold.c
 *	  The folder: a background worker per database with escrow accounts
 *	  that folds their committed journal entries into the balance row and
 *	  fills the entries' balance_after (ARCHITECTURE §8).
 *
 * An escrow posting inserts its entries with balance_after NULL and
 * changes no row; the account's balance row is the balance after its
 * folded entries, and what ledger_balance reports is that plus the
 * committed entries not folded yet.  The folder makes the row catch up.
 *
 * It folds an account's entries in entry id order, and only a prefix of
 * them: those below the account's fold limit (escrow.c), below which every
 * entry is settled.  The unfolded entries of an account are therefore
 * always the newest ones, and balance_after is the running balance in
 * entry id order, as in locked mode.  That order never crosses the floor:
 * entry ids are drawn after admission, with the account's slot locked, so
 * for the entries up to a debit W every entry that had committed when W
 * was admitted comes before W (its id was drawn before its commit), and
 * every other debit before W was admitted before W and was in flight then,
 * so W's admission subtracted it.  The balance after W is therefore at
 * least what W was admitted against, which was at least the floor.
 *
 * Folding is derived data: it commits asynchronously, and a fold lost in
 * a crash is simply done again (the entries it read are durable).
 *
 * Which accounts to fold: while a folder runs, the slot of every account
 * a transaction wrote entries on says so when the transaction ends, or
 * when a transaction gives back its place among the account's in-flight
 * ids (escrow.c); a slot with work is evicted only when no other is free.
 * What no slot can say -- entries left unfolded by a server that stopped
 * or crashed, by a folder that failed, or in a slot evicted with work -- a
 * folder finds in the tables when it starts and after such an eviction:
 * the escrow accounts whose newest entry is not folded.  No index of unfolded
 * entries is kept: the fold's updates would leave it full of dead
 * entries that every read of a hot account would walk.
 *
 * A folder is started by the first escrow posting (or switch to escrow
 * mode) in its database that finds none running, and keeps running; it
 * exits when the extension is gone from its database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "ledger.h"

#define MAX_FOLDERS 64

typedef struct Folder
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* 0 while starting */
	Latch	   *latch;
	TimestampTz started;		/* when it was asked for */
} Folder;

typedef struct FoldShared
{
	slock_t		mutex;
	Folder		folders[MAX_FOLDERS];
} FoldShared;

static FoldShared *fold_shared = NULL;

/* set in the folder itself */
static bool i_am_folder = false;
static int	my_folder = -1;

/* the accounts one round folds at most, so a round's transaction stays short */
#define FOLD_ACCOUNTS_PER_ROUND 1000

/* found in the tables, not folded yet (TopMemoryContext) */
static int64 *discovered = NULL;
static int	ndiscovered = 0;

/* ledger_escrow_forgotten() when the folder last looked in the tables */
static uint64 forgotten_seen = 0;

/*
 * The pause after a round that folded something, before the next: a round
 * costs a transaction and four statements per account whatever it folds,
 * so under load it should fold many entries at once, not one per commit.
 * It adds at most this much to the folding lag.
 */
#define FOLD_PAUSE_MS 5

PGDLLEXPORT void ledger_fold_main(Datum main_arg);

void
ledger_fold_init(void)
{
}

void
ledger_fold_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(FoldShared));
}

void
ledger_fold_shmem_startup(void)
{
	bool		found;

	fold_shared = ShmemInitStruct("ledger folders", sizeof(FoldShared), &found);
	if (!found)
	{
		memset(fold_shared, 0, sizeof(FoldShared));
		SpinLockInit(&fold_shared->mutex);
	}
}

/* Whether this backend is a folder: its writes are folds, not postings. */
bool
ledger_is_folder(void)
{
	return i_am_folder;
}

/*
 * After a transaction that wrote escrow entries ended, or gave back its
 * place among an account's in-flight ids: wake this database's folder.
 * Called from transaction callbacks: nothing here can fail.
 */
void
ledger_fold_wake(void)
{
	Latch	   *latch = NULL;

	if (fold_shared == NULL)
		return;
	SpinLockAcquire(&fold_shared->mutex);
	for (int i = 0; i < MAX_FOLDERS; i++)
		if (fold_shared->folders[i].dboid == MyDatabaseId && fold_shared->folders[i].pid != 0)
			latch = fold_shared->folders[i].latch;
	SpinLockRelease(&fold_shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * Before an escrow posting: make sure this database has a folder, starting
 * one if none runs (or one asked for has not come up within a minute).
 * When no worker can be started, postings still work; their entries wait
 * for a folder, and a WARNING says why.
 */
void
ledger_fold_ensure(void)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	TimestampTz now = GetCurrentTimestamp();
	int			free_slot = -1;

	if (fold_shared == NULL || i_am_folder)
		return;
	SpinLockAcquire(&fold_shared->mutex);
	for (int i = 0; i < MAX_FOLDERS; i++)
	{
		Folder	   *f = &fold_shared->folders[i];

		if (f->dboid == MyDatabaseId &&
			(f->pid != 0 || now - f->started < 60 * USECS_PER_SEC))
		{
			SpinLockRelease(&fold_shared->mutex);
			return;
		}
		if (f->dboid == MyDatabaseId || (f->dboid == InvalidOid && free_slot < 0))
			free_slot = i;
	}
	if (free_slot < 0)
	{
		SpinLockRelease(&fold_shared->mutex);
		ereport(WARNING,
				(errmsg("no folder can be started for this database: %d databases have one",
						MAX_FOLDERS)));
		return;
	}
	fold_shared->folders[free_slot].dboid = MyDatabaseId;
	fold_shared->folders[free_slot].pid = 0;
	fold_shared->folders[free_slot].latch = NULL;
	fold_shared->folders[free_slot].started = now;
	SpinLockRelease(&fold_shared->mutex);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "ledger");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ledger_fold_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "ledger folder");
	snprintf(worker.bgw_type, BGW_MAXLEN, "ledger folder");
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		/* an escrow posting tries again a second from now, not a minute */
		SpinLockAcquire(&fold_shared->mutex);
		if (fold_shared->folders[free_slot].dboid == MyDatabaseId &&
			fold_shared->folders[free_slot].pid == 0)
			fold_shared->folders[free_slot].started = now - 59 * USECS_PER_SEC;
		SpinLockRelease(&fold_shared->mutex);
		ereport(WARNING,
				(errmsg("could not start the ledger folder for this database"),
				 errdetail("Escrow postings are kept, but not folded into their balance rows until a folder runs."),
				 errhint("Raise max_worker_processes.")));
	}
}

static void
folder_exit(int code, Datum arg)
{
	SpinLockAcquire(&fold_shared->mutex);
	if (my_folder >= 0 && fold_shared->folders[my_folder].pid == MyProcPid)
	{
		fold_shared->folders[my_folder].dboid = InvalidOid;
		fold_shared->folders[my_folder].pid = 0;
		fold_shared->folders[my_folder].latch = NULL;
	}
	SpinLockRelease(&fold_shared->mutex);
}

/* Claim this database's folder slot; false if another folder has it. */
static bool
register_folder(Oid dboid)
{
	bool		mine = false;

	SpinLockAcquire(&fold_shared->mutex);
	for (int i = 0; i < MAX_FOLDERS && my_folder < 0; i++)
	{
		Folder	   *f = &fold_shared->folders[i];

		if (f->dboid == dboid && f->pid != 0 && f->pid != MyProcPid)
			break;				/* another one runs */
		if (f->dboid == dboid || (f->dboid == InvalidOid && !mine))
		{
			f->dboid = dboid;
			f->pid = MyProcPid;
			f->latch = MyLatch;
			my_folder = i;
			mine = true;
		}
	}
	SpinLockRelease(&fold_shared->mutex);
	return mine;
}

/*
 * Fold one account's settled entries (see the header comment); false when
 * its row is locked by someone else (a hold, a mode switch): later.
 * Inside a READ COMMITTED transaction, with SPI connected: each statement
 * must see what committed before it (the fold limit is read first).
 */
bool
ledger_fold_account(int64 account_id)
{
	int64		limit = ledger_escrow_fold_limit(account_id);
	Datum		values[5];
	int64		balance;
	int64		running;
	int			rows;
	LedgerColumn ids = {0};
	LedgerColumn balances = {0};

	/* the row, and then the entries, each read in a snapshot taken now */
	values[0] = Int64GetDatum(account_id);
	if (ledger_execute(STMT_FOLD_LOCK, values, NULL, false) != 1)
		return false;
	if (!ledger_get_int64(0, 1, &balance))
		elog(ERROR, "ledger: account " INT64_FORMAT " has a NULL balance", account_id);

	values[1] = Int64GetDatum(limit);
	rows = ledger_execute(STMT_FOLD_ENTRIES, values, NULL, false);
	if (rows == 0)
		return true;
	running = balance;
	for (int row = 0; row < rows; row++)
	{
		int64		id,
					amount;

		(void) ledger_get_int64(row, 1, &id);
		(void) ledger_get_int64(row, 2, &amount);
		running += amount;		/* bounded by the entries' own checks */
		ledger_column_push(&ids, Int64GetDatum(id), false);
		ledger_column_push(&balances, Int64GetDatum(running), false);
	}
	{
		int64		first,
					last;

		(void) ledger_get_int64(0, 1, &first);
		(void) ledger_get_int64(rows - 1, 1, &last);
		values[3] = Int64GetDatum(first);
		values[4] = Int64GetDatum(last);
	}
	values[1] = PointerGetDatum(ledger_column_array(&ids, INT8OID));
	values[2] = PointerGetDatum(ledger_column_array(&balances, INT8OID));
	ledger_set_folding(true);
	PG_TRY();
	{
		if (ledger_execute(STMT_FOLD_ENTRIES_SET, values, NULL, false) != rows)
			elog(ERROR, "ledger: entries of account " INT64_FORMAT " changed while folded",
				 account_id);
	}
	PG_FINALLY();
	{
		ledger_set_folding(false);
	}
	PG_END_TRY();
	values[1] = Int64GetDatum(running);
	if (ledger_execute(STMT_FOLD_BALANCE, values, NULL, false) != 1)
		elog(ERROR, "ledger: account " INT64_FORMAT " vanished while folded", account_id);
	return true;
}

/*
 * The escrow accounts whose newest entry is not folded, into discovered:
 * in the folder's first transaction, and again after a slot with work for
 * a folder was evicted, once the accounts found before are done (so that
 * evictions in every round cannot starve any of them).  The count of such
 * evictions is read before the snapshot is taken: work a slot lost before
 * the count moved had committed, and is seen.
 */
static void
discover(void)
{
	int			rows;

	forgotten_seen = ledger_escrow_forgotten();
	PushActiveSnapshot(GetLatestSnapshot());
	rows = ledger_execute(STMT_FOLD_DISCOVER, NULL, NULL, true);
	PopActiveSnapshot();
	if (discovered != NULL)
		pfree(discovered);
	discovered = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * Max(rows, 1));
	for (int row = 0; row < rows; row++)
		(void) ledger_get_int64(row, 1, &discovered[row]);
	ndiscovered = rows;
}

/*
 * One round: up to FOLD_ACCOUNTS_PER_ROUND accounts with work, the ones
 * found at the start first.  Returns how many, or -1 when the ledger is
 * gone from this database.
 */
static int
fold_round(void)
{
	int			accounts;
	int64	   *ids;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	XactIsoLevel = XACT_READ_COMMITTED;
	/* derived from durable entries: a fold lost in a crash is done again */
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	if (!ledger_escrow_tables_present())
	{
		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
		return -1;
	}
	if (discovered == NULL ||
		(ndiscovered == 0 && ledger_escrow_forgotten() != forgotten_seen))
		discover();
	PopActiveSnapshot();

	ids = palloc(sizeof(int64) * FOLD_ACCOUNTS_PER_ROUND);
	if (ndiscovered > 0)
	{
		accounts = Min(ndiscovered, FOLD_ACCOUNTS_PER_ROUND);
		ndiscovered -= accounts;
		memcpy(ids, discovered + ndiscovered, sizeof(int64) * accounts);
	}
	else
		accounts = ledger_escrow_take_to_fold(ids, FOLD_ACCOUNTS_PER_ROUND);

	for (int a = 0; a < accounts; a++)
	{
		/* READ COMMITTED: each statement of the fold takes a new snapshot */
		PushActiveSnapshot(GetTransactionSnapshot());
		if (!ledger_fold_account(ids[a]))
			ledger_escrow_fold_later(ids[a]);	/* its row is locked: next round */
		PopActiveSnapshot();
	}

	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	return accounts;
}

void
ledger_fold_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	i_am_folder = true;
	if (!register_folder(dboid))
		proc_exit(0);
	before_shmem_exit(folder_exit, (Datum) 0);
	pgstat_report_appname("ledger folder");

	for (;;)
	{
		int			found = fold_round();

		if (found < 0)
			proc_exit(0);		/* the ledger is gone from this database */
		if (found >= FOLD_ACCOUNTS_PER_ROUND)
			continue;			/* more to do at once */
		if (found > 0)
		{
			/* let the commits of the next FOLD_PAUSE_MS gather */
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, FOLD_PAUSE_MS,
							 PG_WAIT_EXTENSION);
			CHECK_FOR_INTERRUPTS();
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}
