/*-------------------------------------------------------------------------
 *
 * escrow.c
 *	  Escrow mode: postings on hot accounts admitted against the worst case
 *	  of what is in flight, in shared memory, instead of a row lock held
 *	  across COMMIT (ARCHITECTURE §8).
 *
 * Per escrow account a slot in shared memory keeps
 *
 *	  committed		the balance after every committed posting, folded into
 *					the balance row or not (fold.c folds);
 *	  debits, credits, holds
 *					what transactions in flight took, gave and held;
 *	  held			what the pending holds of committed transactions hold
 *					(until their end commits);
 *	  inflight[]	a lower bound of the entry ids of each transaction in
 *					flight that writes entries on the account;
 *	  to_fold		whether the folder should look at the account: set when a
 *					transaction that wrote entries on it ends (or when it is
 *					loaded with entries not folded), cleared by the folder
 *					before it reads them.  A slot to fold is not evicted.
 *
 * A posting is decided by the same rules as in locked mode (rules.c),
 * against the account as the worst case shows it -- committed less the
 * debits in flight where money is taken, committed plus the credits in
 * flight where it is given, held plus the holds in flight as reserved --
 * with the slot locked; accepted, it adds itself to the in-flight sums and
 * draws its entry ids before the lock is released.  At COMMIT it is
 * settled into committed and held; at ABORT it is taken out.  Both happen
 * in transaction callbacks that cannot fail after the commit: no
 * allocation, one LWLock at a time, nothing else.
 *
 * So the floor holds under every interleaving: whatever commits, and in
 * whatever order, the worst case was checked.  Because entry ids are
 * drawn with the slot locked, after admission, folding an account's
 * entries in entry id order never takes its balance below its floor either
 * (fold.c says why).
 *
 * A slot is loaded from the tables on its first use after a start, a
 * crash restart, a promotion or an eviction: committed is the balance row
 * plus the committed entries not folded yet, in a fresh snapshot; held is
 * the row's held (holds are made and ended under the account's row lock,
 * even in escrow mode).  No transaction can be between its commit and its
 * settlement then: every posting on an escrow account pins the account's
 * slot until it is settled, and a pinned slot is never evicted.
 *
 * Escrow mode needs shared_preload_libraries = 'ledger'; without it, it
 * cannot be turned on, and postings on an escrow account are refused
 * (55000), while everything else works.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/sequence.h"
#include "common/int.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "ledger.h"

/* Transactions writing entries on one account at once; more wait. */
#define ESCROW_INFLIGHT 64

typedef struct EscrowKey
{
	Oid			dboid;
	int64		account_id;
} EscrowKey;

typedef struct EscrowMapEntry
{
	EscrowKey	key;
	int			slot;
} EscrowMapEntry;

typedef struct EscrowSlot
{
	EscrowKey	key;
	bool		in_use;
	bool		loaded;
	bool		escrow;			/* the row said escrow when it was loaded */
	bool		switching;		/* a switch to locked mode is under way */
	int64		committed;
	int64		debits;
	int64		credits;
	int64		holds;
	int64		held;
	uint64		hold_generation;	/* changes whenever held does */
	int			pins;			/* transactions with a reservation */
	bool		to_fold;		/* the folder has work here */
	int64		last_id;		/* the largest entry id drawn or loaded */
	TimestampTz last_created;	/* of the entry with that id, if drawn */
	int64		inflight[ESCROW_INFLIGHT];	/* 0: free */
} EscrowSlot;

typedef struct EscrowShared
{
	int			nslots;
	int			hand;			/* where eviction looks next; map lock */
	pg_atomic_uint64 forgotten;	/* slots evicted while to_fold was set */
	EscrowSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} EscrowShared;

/*
 * What this transaction reserved on one slot in one subtransaction.  In
 * TopMemoryContext: the callbacks must not allocate.
 */
typedef struct Reservation
{
	int			slot;
	SubTransactionId subid;
	int64		debits;
	int64		credits;
	int64		holds;			/* made */
	int64		ended;			/* the amounts of pending holds it ended */
	int			inflight;		/* its place in the slot's inflight[], or -1 */
	bool		switching;		/* it switches the account to locked mode */
} Reservation;

/* settings */
static int	escrow_accounts = 10000;
static bool escrow_by_default = false;
static int	stall_after_commit_ms = 0;	/* a test's window */

static EscrowShared *shared = NULL;
static HTAB *map = NULL;
static LWLockPadded *locks = NULL;	/* [0] the map; [1 + i] slot i */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Reservation *reservations = NULL;
static int	nreservations = 0;
static int	max_reservations = 0;

#define MAP_LOCK (&locks[0].lock)
#define SLOT_LOCK(i) (&locks[1 + (i)].lock)

static void escrow_xact_callback(XactEvent event, void *arg);
static void escrow_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);

/* ---- shared memory ----------------------------------------------------------- */

static Size
escrow_shmem_size(void)
{
	return add_size(offsetof(EscrowShared, slots),
					mul_size(sizeof(EscrowSlot), escrow_accounts));
}

static void
escrow_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(escrow_shmem_size());
	RequestAddinShmemSpace(hash_estimate_size(escrow_accounts, sizeof(EscrowMapEntry)));
	RequestNamedLWLockTranche("ledger escrow", escrow_accounts + 1);
	ledger_fold_shmem_request();
}

static void
escrow_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("ledger escrow", escrow_shmem_size(), &found);
	if (!found)
	{
		memset(shared, 0, escrow_shmem_size());
		shared->nslots = escrow_accounts;
		pg_atomic_init_u64(&shared->forgotten, 0);
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(EscrowKey);
	info.entrysize = sizeof(EscrowMapEntry);
	map = ShmemInitHash("ledger escrow map", escrow_accounts, escrow_accounts,
						&info, HASH_ELEM | HASH_BLOBS);
	locks = GetNamedLWLockTranche("ledger escrow");
	ledger_fold_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

/* Module load: the settings always; shared memory when preloaded. */
void
ledger_escrow_init(void)
{
	DefineCustomBoolVariable("ledger.escrow_by_default",
							 "Opens new accounts in escrow mode.",
							 "For workloads whose hot accounts are not known in advance.",
							 &escrow_by_default,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("ledger.escrow_test_stall_ms",
							"Sleeps between a commit and its escrow settlement (tests only).",
							NULL,
							&stall_after_commit_ms,
							0, 0, 60000,
							PGC_SUSET,
							GUC_NOT_IN_SAMPLE | GUC_UNIT_MS,
							NULL, NULL, NULL);
	ledger_fold_init();

	/* shared memory, and its size, only when preloaded */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("ledger.escrow_accounts",
							"Escrow accounts kept in shared memory at once.",
							"Idle ones are evicted, and read again from the tables when used.",
							&escrow_accounts,
							10000, 16, INT_MAX / 4,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = escrow_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = escrow_shmem_startup;
	RegisterXactCallback(escrow_xact_callback, NULL);
	RegisterSubXactCallback(escrow_subxact_callback, NULL);
}

/* Whether this database's ledger has escrow mode (1.3). */
bool
ledger_escrow_tables_present(void)
{
	return ledger_relations()->escrow;
}

/* Whether escrow mode can work in this server: the library was preloaded. */
bool
ledger_escrow_available(void)
{
	return shared != NULL;
}

/* Whether accounts open in escrow mode (ledger.escrow_by_default). */
bool
ledger_escrow_by_default(void)
{
	return escrow_by_default && shared != NULL;
}

/* 55000 unless escrow mode can work in this server. */
void
ledger_escrow_require(text *account)
{
	if (shared != NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("account \"%s\" is in escrow mode, which needs the ledger library preloaded",
					text_to_cstring(account)),
			 errhint("Add ledger to shared_preload_libraries and restart the server.")));
}

/* ---- slots ------------------------------------------------------------- */

/*
 * Read a slot's state from the tables in a fresh snapshot: the account's
 * row and its committed entries not folded yet.  The slot is locked, and
 * nobody has it pinned (it was not loaded).
 */
static void
load_slot(EscrowSlot *slot)
{
	Datum		values[1] = {Int64GetDatum(slot->key.account_id)};
	int64		balance = 0,
				held = 0,
				unfolded = 0,
				last_id = 0,
				newest_folded = 0;
	bool		escrow = false;
	bool		connected = SPI_connect() == SPI_OK_CONNECT;

	PushActiveSnapshot(GetLatestSnapshot());
	if (ledger_execute(STMT_ESCROW_LOAD, values, NULL, true) == 1)
	{
		(void) ledger_get_int64(0, 1, &balance);
		(void) ledger_get_int64(0, 2, &held);
		escrow = ledger_get_bool(0, 3);
		(void) ledger_get_int64(0, 4, &unfolded);
		(void) ledger_get_int64(0, 5, &last_id);
		(void) ledger_get_int64(0, 6, &newest_folded);
	}
	PopActiveSnapshot();
	if (connected)
		SPI_finish();

	slot->escrow = escrow;
	slot->switching = false;
	slot->committed = balance + unfolded;
	slot->held = held;
	slot->hold_generation++;
	slot->debits = slot->credits = slot->holds = 0;
	slot->last_id = last_id;
	slot->to_fold = last_id > newest_folded;
	slot->last_created = 0;
	memset(slot->inflight, 0, sizeof(slot->inflight));
	slot->loaded = true;
}

/*
 * Free a slot nobody has pinned; the map lock is held exclusively.  A slot
 * whose lock is not free at once is in use: passed by.  Slots the folder
 * has work in are passed by in the first sweep; if none other is free, one
 * of them goes, and the folders are told to look for its work themselves
 * (ledger_escrow_forgotten): a database whose folder does not run must not
 * keep slots from the others.
 */
static int
evict_one(void)
{
	for (int tries = 0; tries < 3 * shared->nslots; tries++)
	{
		int			i = shared->hand;
		EscrowSlot *slot = &shared->slots[i];
		bool		spare_to_fold = tries < shared->nslots;

		shared->hand = (i + 1) % shared->nslots;
		if (!slot->in_use)
			return i;
		if (!LWLockConditionalAcquire(SLOT_LOCK(i), LW_EXCLUSIVE))
			continue;
		if (slot->pins == 0 && !slot->switching && !(slot->to_fold && spare_to_fold))
		{
			if (slot->to_fold)
				pg_atomic_fetch_add_u64(&shared->forgotten, 1);
			slot->to_fold = false;
			(void) hash_search(map, &slot->key, HASH_REMOVE, NULL);
			slot->in_use = false;
			slot->loaded = false;
			LWLockRelease(SLOT_LOCK(i));
			return i;
		}
		LWLockRelease(SLOT_LOCK(i));
	}
	LWLockRelease(MAP_LOCK);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("too many escrow accounts in use at once"),
			 errdetail("All %d slots of ledger.escrow_accounts hold accounts with postings in flight.",
					   shared->nslots),
			 errhint("Raise ledger.escrow_accounts and restart the server.")));
	return -1;					/* keep the compiler quiet */
}

/*
 * Lock the slot of an account exclusively, loaded; the caller releases
 * SLOT_LOCK of the result.
 */
static int
lock_slot(int64 account_id)
{
	EscrowKey	key;
	EscrowMapEntry *entry;
	int			i;

	memset(&key, 0, sizeof(key));
	key.dboid = MyDatabaseId;
	key.account_id = account_id;

	for (;;)
	{
		LWLockAcquire(MAP_LOCK, LW_SHARED);
		entry = hash_search(map, &key, HASH_FIND, NULL);
		i = entry != NULL ? entry->slot : -1;
		LWLockRelease(MAP_LOCK);

		if (i < 0)
		{
			bool		found;

			LWLockAcquire(MAP_LOCK, LW_EXCLUSIVE);
			entry = hash_search(map, &key, HASH_FIND, NULL);
			if (entry == NULL)
			{
				i = evict_one();
				entry = hash_search(map, &key, HASH_ENTER, &found);
				entry->slot = i;
				shared->slots[i].key = key;
				shared->slots[i].in_use = true;
				shared->slots[i].loaded = false;
				shared->slots[i].pins = 0;
			}
			i = entry->slot;
			LWLockRelease(MAP_LOCK);
		}

		LWLockAcquire(SLOT_LOCK(i), LW_EXCLUSIVE);
		if (shared->slots[i].in_use &&
			memcmp(&shared->slots[i].key, &key, sizeof(key)) == 0)
			break;
		/* evicted and reused between the map and its lock: again */
		LWLockRelease(SLOT_LOCK(i));
	}
	if (!shared->slots[i].loaded)
		load_slot(&shared->slots[i]);
	return i;
}

/* ---- the account's escrow lock ------------------------------------------------ */

/*
 * A heavyweight lock per escrow account: every transaction that posts to
 * it in escrow mode holds it in share mode until it ends (released after
 * the commit's settlement), and a switch to locked mode takes it
 * exclusively.  So the switch waits for the postings in flight, new ones
 * queue behind the switch, and the lock manager sees (and breaks) any
 * deadlock among them.  An advisory tag in a field the SQL advisory lock
 * functions never use (they use 1 and 2).
 */
#define ESCROW_LOCK_FIELD 0x4c47	/* "LG" */

static void
escrow_lock(int64 account_id, LOCKMODE mode)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) ((uint64) account_id >> 32),
						 (uint32) account_id, ESCROW_LOCK_FIELD);
	(void) LockAcquire(&tag, mode, false, false);
}

/* ---- reservations ----------------------------------------------------------- */

static Reservation *
find_reservation(int slot, SubTransactionId subid)
{
	for (int r = nreservations - 1; r >= 0; r--)
		if (reservations[r].slot == slot && reservations[r].subid == subid)
			return &reservations[r];
	return NULL;
}

/* A new reservation of this subtransaction on a locked slot: it pins it. */
static Reservation *
new_reservation(int slot)
{
	Reservation *r;

	if (nreservations == max_reservations)
	{
		int			size = Max(16, max_reservations * 2);

		reservations = reservations == NULL
			? MemoryContextAlloc(TopMemoryContext, sizeof(Reservation) * size)
			: repalloc(reservations, sizeof(Reservation) * size);
		max_reservations = size;
	}
	r = &reservations[nreservations++];
	memset(r, 0, sizeof(*r));
	r->slot = slot;
	r->subid = GetCurrentSubTransactionId();
	r->inflight = -1;
	shared->slots[slot].pins++;
	return r;
}

/*
 * Pin the slot of an account this posting found in escrow mode: until
 * this transaction ends, the slot stays and a switch to locked mode waits.
 * Sets account->escrow_slot and what the rules need from the slot.  False
 * when the account is not, or no longer, in escrow mode, or is being
 * switched: then the caller locks its row.
 */
bool
ledger_escrow_pin(LedgerAccount *account)
{
	int			i;
	EscrowSlot *slot;
	bool		escrow;

	ledger_escrow_require(account->name);
	escrow_lock(account->account_id, ShareLock);
	i = lock_slot(account->account_id);
	slot = &shared->slots[i];
	escrow = slot->escrow && !slot->switching;
	if (escrow && find_reservation(i, GetCurrentSubTransactionId()) == NULL)
		(void) new_reservation(i);
	account->escrow_slot = escrow ? i : -1;
	account->hold_generation = slot->hold_generation;
	account->exact_held = slot->held;
	/* a locked row's held, this transaction's own holds included, is written back */
	if (!account->row_locked)
		account->held = slot->held;
	LWLockRelease(SLOT_LOCK(i));
	return escrow;
}

/*
 * Give back place k among a locked slot's in-flight ids.  The fold limit
 * may rise with it, so the folder looks at the account again, whether or
 * not the place's transaction wrote entries.
 */
static void
release_place(EscrowSlot *slot, int k)
{
	slot->inflight[k] = 0;
	slot->to_fold = true;
}

/*
 * Give back the place this call took on a locked slot: the reservation
 * that carried it no longer does.
 */
static void
release_new_place(LedgerAccount *account)
{
	Reservation *r = find_reservation(account->escrow_slot, GetCurrentSubTransactionId());

	release_place(&shared->slots[account->escrow_slot], account->inflight_index);
	if (r != NULL && r->inflight == account->inflight_index)
		r->inflight = -1;
	account->inflight_index = -1;
	account->new_inflight = false;
}

/* Give back the places this call took on the first n of both[]. */
static void
release_new_places(LedgerAccount **both, int n)
{
	for (int m = 0; m < n; m++)
	{
		LedgerAccount *account = both[m];

		if (account == NULL || account->escrow_slot < 0 || !account->new_inflight)
			continue;
		LWLockAcquire(SLOT_LOCK(account->escrow_slot), LW_EXCLUSIVE);
		release_new_place(account);
		LWLockRelease(SLOT_LOCK(account->escrow_slot));
		ledger_fold_wake();
	}
}

/*
 * Lock the slots of the escrow accounts among from and to (either may be
 * NULL), in account_id order, and show each as the rules should see it:
 * the account money is taken from as committed less the debits in
 * flight, the one it is given to as committed plus the credits in flight;
 * reserved as held plus the holds in flight -- held as
 * ledger_escrow_exact_held found it, if no hold committed or ended since.
 * writes_entries: the item writes journal entries on them (a place among
 * the slot's in-flight ids is taken first; when there is none, wait).
 */
void
ledger_escrow_begin(LedgerAccount *from, LedgerAccount *to, bool writes_entries)
{
	LedgerAccount *both[2] = {from, to};

	if (from != NULL && to != NULL && to->account_id < from->account_id)
	{
		both[0] = to;
		both[1] = from;
	}

	/*
	 * First a place among the in-flight ids, one slot at a time.  When one
	 * has none free, the places taken so far are given back before the
	 * wait: a cancel must not leave one behind (it would hold back the
	 * account's folding for good), nor should a waiting transfer hold back
	 * the other account's.
	 */
retry:
	for (int n = 0; n < 2; n++)
	{
		LedgerAccount *account = both[n];

		if (account == NULL || account->escrow_slot < 0)
			continue;
		account->inflight_index = -1;
		account->new_inflight = false;
		if (writes_entries)
		{
			EscrowSlot *slot = &shared->slots[account->escrow_slot];
			Reservation *r;

			LWLockAcquire(SLOT_LOCK(account->escrow_slot), LW_EXCLUSIVE);
			r = find_reservation(account->escrow_slot, GetCurrentSubTransactionId());
			if (r == NULL)
				r = new_reservation(account->escrow_slot);
			if (r->inflight >= 0)
				account->inflight_index = r->inflight;
			for (int k = 0; k < ESCROW_INFLIGHT && account->inflight_index < 0; k++)
				if (slot->inflight[k] == 0)
				{
					/*
					 * Every id this transaction draws from now on is larger.
					 * The reservation carries the place at once, so that an
					 * error before ledger_escrow_end gives it back at abort.
					 */
					slot->inflight[k] = slot->last_id + 1;
					r->inflight = k;
					account->inflight_index = k;
					account->new_inflight = true;
				}
			LWLockRelease(SLOT_LOCK(account->escrow_slot));
			if (account->inflight_index < 0)
			{
				/* ESCROW_INFLIGHT transactions in flight on the account */
				release_new_places(both, n);
				pg_usleep(1000L);
				CHECK_FOR_INTERRUPTS();
				goto retry;
			}
		}
	}

	/* then both locked, in account_id order, for the item's decision */
	for (int n = 0; n < 2; n++)
	{
		LedgerAccount *account = both[n];
		EscrowSlot *slot;
		int64		held;

		if (account == NULL || account->escrow_slot < 0)
			continue;
		slot = &shared->slots[account->escrow_slot];
		LWLockAcquire(SLOT_LOCK(account->escrow_slot), LW_EXCLUSIVE);
		account->committed = slot->committed;
		if (account == from
			? pg_sub_s64_overflow(slot->committed, slot->debits, &account->balance)
			: pg_add_s64_overflow(slot->committed, slot->credits, &account->balance))
			account->balance = account == from ? PG_INT64_MIN : PG_INT64_MAX;
		held = slot->hold_generation == account->hold_generation
			? account->exact_held : slot->held;
		if (pg_add_s64_overflow(held, slot->holds, &account->reserved))
			account->reserved = PG_INT64_MAX;
		account->entry_ids = 0;
		if (writes_entries)
		{
			/* per account, created_at never decreases in entry id order */
			account->created = Max(GetCurrentTimestamp(), slot->last_created);
			slot->last_created = account->created;
		}
	}
}

/*
 * Draw the entry id of a journal entry of an escrow account, whose slot
 * ledger_escrow_begin locked: after admission, in the slot's order.
 */
int64
ledger_escrow_entry_id(LedgerAccount *account)
{
	EscrowSlot *slot = &shared->slots[account->escrow_slot];
	int64		id = nextval_internal(ledger_relations()->entry_sequence, false);

	account->entry_ids++;
	slot->last_id = Max(slot->last_id, id);
	return id;
}

/*
 * The balance of a slot's account as if this transaction committed next:
 * the committed balance and what this transaction took and gave.
 */
static int64
own_balance(int slot)
{
	int64		balance = shared->slots[slot].committed;

	for (int r = 0; r < nreservations; r++)
		if (reservations[r].slot == slot &&
			(pg_add_s64_overflow(balance, reservations[r].credits, &balance) ||
			 pg_sub_s64_overflow(balance, reservations[r].debits, &balance)))
			return balance;
	return balance;
}

/*
 * The balance of an escrow account, whose slot ledger_escrow_begin locked,
 * as if this transaction committed next: what had committed and this
 * transaction's own postings so far.
 */
int64
ledger_escrow_balance(LedgerAccount *account)
{
	return own_balance(account->escrow_slot);
}

/*
 * End what ledger_escrow_begin began.  The item's effect on each escrow
 * account (NULL: it was refused) joins the in-flight sums and this
 * transaction's reservation.
 */
void
ledger_escrow_end(LedgerAccount *from, LedgerAccount *to,
				  const LedgerEscrowEffect *from_effect, const LedgerEscrowEffect *to_effect)
{
	LedgerAccount *both[2] = {from, to};
	const LedgerEscrowEffect *effects[2] = {from_effect, to_effect};

	for (int n = 0; n < 2; n++)
	{
		LedgerAccount *account = both[n];
		const LedgerEscrowEffect *effect = effects[n];
		EscrowSlot *slot;
		Reservation *r;
		bool		released;

		if (account == NULL || account->escrow_slot < 0)
			continue;
		slot = &shared->slots[account->escrow_slot];
		if (effect != NULL)
		{
			r = find_reservation(account->escrow_slot, GetCurrentSubTransactionId());
			if (r == NULL)
				r = new_reservation(account->escrow_slot);
			r->debits += effect->debit;
			r->credits += effect->credit;
			r->holds += effect->hold;
			r->ended += effect->ended;
			slot->debits += effect->debit;
			slot->credits += effect->credit;
			slot->holds += effect->hold;
		}
		released = account->new_inflight && (effect == NULL || account->entry_ids == 0);
		if (released)
			release_new_place(account);	/* wrote nothing */
		account->new_inflight = false;
		LWLockRelease(SLOT_LOCK(account->escrow_slot));
		if (released)
			ledger_fold_wake();
	}
}

/*
 * Take back an item's effect before the end of the transaction: a single
 * posting whose key a concurrent transaction committed replays that one's
 * result instead.  Its place among the in-flight ids stays until the
 * transaction ends: a lower bound that is too low only makes the folder
 * wait.
 */
void
ledger_escrow_undo(LedgerAccount *account, const LedgerEscrowEffect *effect)
{
	EscrowSlot *slot;
	Reservation *r;

	if (account == NULL || account->escrow_slot < 0 || effect == NULL)
		return;
	slot = &shared->slots[account->escrow_slot];
	LWLockAcquire(SLOT_LOCK(account->escrow_slot), LW_EXCLUSIVE);
	r = find_reservation(account->escrow_slot, GetCurrentSubTransactionId());
	if (r != NULL)
	{
		r->debits -= effect->debit;
		r->credits -= effect->credit;
		r->holds -= effect->hold;
		r->ended -= effect->ended;
		slot->debits -= effect->debit;
		slot->credits -= effect->credit;
		slot->holds -= effect->hold;
	}
	LWLockRelease(SLOT_LOCK(account->escrow_slot));
}

/*
 * What the pending holds of committed transactions reserve exactly, at
 * now, on a pinned escrow account: the slot's held counts holds past their
 * expiry until an end is recorded.  Read in a fresh snapshot that hides
 * this transaction's own changes (its holds are among those in flight);
 * ledger_escrow_begin uses it only if no hold committed or ended since the
 * pin (else the slot's held, which is never less).
 */
void
ledger_escrow_exact_held(LedgerAccount *account, TimestampTz now)
{
	account->exact_held = ledger_reserved_committed(account->account_id, now);
}

/*
 * The folder's bound for one account: every entry with a smaller id is
 * settled (committed or rolled back) and, once committed, visible to a
 * snapshot taken after this call; entries from it on may be in flight.
 */
int64
ledger_escrow_fold_limit(int64 account_id)
{
	int			i;
	EscrowSlot *slot;
	int64		limit;

	/* without shared memory no escrow posting can be in flight */
	if (shared == NULL)
		return PG_INT64_MAX;
	i = lock_slot(account_id);
	slot = &shared->slots[i];
	limit = slot->last_id + 1;
	for (int k = 0; k < ESCROW_INFLIGHT; k++)
		if (slot->inflight[k] != 0)
			limit = Min(limit, slot->inflight[k]);
	LWLockRelease(SLOT_LOCK(i));
	return limit;
}

/*
 * For the folder: up to max accounts of this database whose slots say they
 * have work, into ids; each slot's to_fold is cleared before the folder
 * reads the account's entries, so a transaction that ends later sets it
 * again, and none is missed.  Returns how many.
 */
int
ledger_escrow_take_to_fold(int64 *ids, int max)
{
	int			n = 0;

	if (shared == NULL)
		return 0;
	for (int i = 0; i < shared->nslots && n < max; i++)
	{
		EscrowSlot *slot = &shared->slots[i];

		/* an unlocked look first: most slots have nothing to fold */
		if (!slot->to_fold)
			continue;
		LWLockAcquire(SLOT_LOCK(i), LW_EXCLUSIVE);
		if (slot->in_use && slot->to_fold && slot->key.dboid == MyDatabaseId)
		{
			slot->to_fold = false;
			ids[n++] = slot->key.account_id;
		}
		LWLockRelease(SLOT_LOCK(i));
	}
	return n;
}

/*
 * For the folder: an escrow account it could not fold now (its row was
 * locked).  One switched to locked mode meanwhile has nothing to fold.
 */
void
ledger_escrow_fold_later(int64 account_id)
{
	int			i;

	if (shared == NULL)
		return;
	i = lock_slot(account_id);
	if (shared->slots[i].escrow)
		shared->slots[i].to_fold = true;
	LWLockRelease(SLOT_LOCK(i));
}

/*
 * For the folder: how many slots were evicted with work for a folder; when
 * it changes, the folder looks for that work in the tables.
 */
uint64
ledger_escrow_forgotten(void)
{
	return shared == NULL ? 0 : pg_atomic_read_u64(&shared->forgotten);
}

/* How many of this transaction's reservations pin slot i. */
static int
own_pins(int i)
{
	int			n = 0;

	for (int r = 0; r < nreservations; r++)
		n += reservations[r].slot == i;
	return n;
}

/*
 * For ledger_set_account_mode, from escrow to locked, with the account's
 * row locked: wait until every escrow posting in flight has ended (the
 * account's escrow lock, exclusively), and mark the slot switching, so
 * that new postings lock the row (and so wait for this transaction).  A transaction that posted to the account in escrow mode
 * cannot switch it (0A000): its own reservation would never end.  At
 * commit the slot is read again (as locked); at abort the switch is
 * called off.
 */
void
ledger_escrow_begin_switch(int64 account_id, text *account)
{
	int			i = lock_slot(account_id);
	Reservation *r;

	if (own_pins(i) > 0)
	{
		LWLockRelease(SLOT_LOCK(i));
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot switch account \"%s\" to locked mode in a transaction that posted to it in escrow mode",
						text_to_cstring(account)),
				 errhint("Switch it in a transaction of its own.")));
	}
	r = new_reservation(i);
	r->switching = true;
	LWLockRelease(SLOT_LOCK(i));

	/* every escrow posting in flight ends (and is settled) first */
	escrow_lock(account_id, ExclusiveLock);
	LWLockAcquire(SLOT_LOCK(i), LW_EXCLUSIVE);
	shared->slots[i].switching = true;
	LWLockRelease(SLOT_LOCK(i));
}

/*
 * For ledger_set_account_mode, to escrow, with the account's row locked
 * (no posting in locked mode is in flight, and nobody else can pin the
 * slot before this transaction ends): the slot is read afresh, this
 * transaction's own changes included, and this transaction may post in
 * escrow mode at once.  At commit or abort the slot is read again.
 */
void
ledger_escrow_note_switch(int64 account_id)
{
	int			i;
	Reservation *r;

	if (shared == NULL)
		return;
	i = lock_slot(account_id);
	load_slot(&shared->slots[i]);
	shared->slots[i].escrow = true;
	r = new_reservation(i);
	r->switching = true;
	LWLockRelease(SLOT_LOCK(i));
}

/* ---- settlement ------------------------------------------------------------- */

/*
 * Settle one reservation: committed, into the slot's committed balance
 * and held amount; rolled back, out of the in-flight sums.  Releases its
 * pin and in-flight id.  No error can happen here.
 */
static void
settle(Reservation *r, bool commit)
{
	EscrowSlot *slot = &shared->slots[r->slot];

	LWLockAcquire(SLOT_LOCK(r->slot), LW_EXCLUSIVE);
	slot->debits -= r->debits;
	slot->credits -= r->credits;
	slot->holds -= r->holds;
	if (commit)
	{
		slot->committed += r->credits - r->debits;
		slot->held += r->holds - r->ended;
		if (r->holds != 0 || r->ended != 0)
			slot->hold_generation++;
	}
	if (r->inflight >= 0)
		release_place(slot, r->inflight);	/* its entries are to fold, or gone */
	if (r->switching)
	{
		/* the mode changed, or went back: read it again */
		slot->switching = false;
		slot->loaded = false;
	}
	slot->pins--;
	LWLockRelease(SLOT_LOCK(r->slot));
}

/*
 * Settle every reservation of the transaction.  Those of mode switches go
 * last: they have the slot read again, which must not happen while a
 * reservation of this transaction still pins it.
 */
static void
settle_all(bool commit)
{
	bool		wrote = false;

	if (commit && nreservations > 0 && stall_after_commit_ms > 0)
		pg_usleep(stall_after_commit_ms * 1000L);
	for (int pass = 0; pass < 2; pass++)
		for (int r = 0; r < nreservations; r++)
		{
			if (reservations[r].switching != (pass == 1))
				continue;
			wrote |= reservations[r].inflight >= 0;
			settle(&reservations[r], commit);
		}
	nreservations = 0;
	if (wrote)
		ledger_fold_wake();
}

static void
escrow_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (nreservations > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that posted to an escrow account or switched an account's mode"),
						 errdetail("Escrow postings and mode switches keep state in shared memory, which a prepared transaction cannot keep."),
						 errhint("Commit it directly; postings to accounts in locked mode can be prepared.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			settle_all(true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			settle_all(false);
			break;
		default:
			break;
	}
}

/*
 * A subtransaction rolled back takes its reservations out; one committed
 * hands them to its parent (merged with the parent's on the same slot).
 */
static void
escrow_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		bool		wrote = false;

		/* a switch's reservation last, as in settle_all */
		for (int n = 0; n < nreservations; n++)
			if (reservations[n].subid == mySubid && !reservations[n].switching)
			{
				wrote |= reservations[n].inflight >= 0;
				settle(&reservations[n], false);
			}
		for (int n = 0; n < nreservations; n++)
			if (reservations[n].subid == mySubid && reservations[n].switching)
				settle(&reservations[n], false);
		/* entries after the ones it took back may be ready to fold */
		if (wrote)
			ledger_fold_wake();
	}
	for (int n = 0; n < nreservations; n++)
	{
		Reservation *r = &reservations[n];
		Reservation *parent;

		if (r->subid == mySubid && event == SUBXACT_EVENT_ABORT_SUB)
			continue;			/* settled above */
		if (r->subid == mySubid)
		{
			parent = NULL;
			for (int p = 0; p < kept; p++)
				if (reservations[p].slot == r->slot && reservations[p].subid == parentSubid)
					parent = &reservations[p];
			if (parent != NULL && !r->switching && !parent->switching)
			{
				EscrowSlot *slot = &shared->slots[r->slot];

				LWLockAcquire(SLOT_LOCK(r->slot), LW_EXCLUSIVE);
				parent->debits += r->debits;
				parent->credits += r->credits;
				parent->holds += r->holds;
				parent->ended += r->ended;
				if (parent->inflight < 0)
					parent->inflight = r->inflight;
				else if (r->inflight >= 0)
				{
					/* the parent's place holds the lower bound */
					slot->inflight[parent->inflight] =
						Min(slot->inflight[parent->inflight], slot->inflight[r->inflight]);
					slot->inflight[r->inflight] = 0;
				}
				slot->pins--;
				LWLockRelease(SLOT_LOCK(r->slot));
				continue;
			}
			r->subid = parentSubid;
		}
		reservations[kept++] = *r;
	}
	nreservations = kept;
}
