/*-------------------------------------------------------------------------
 *
 * target.h
 *	  A ledger table opened for a direct write (relations.c), and the
 *	  columns a direct write reads or writes (direct_write.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_TARGET_H
#define LEDGER_TARGET_H

#include "nodes/execnodes.h"
#include "storage/lockdefs.h"
#include "utils/relcache.h"

/* What a direct write does with a table. */
typedef enum TargetUse
{
	LOCK_ACCOUNTS,				/* FOR UPDATE only: as SELECT ... FOR UPDATE */
	UPDATE_ACCOUNTS,
	APPEND_ENTRIES,
	APPEND_TRANSFERS
} TargetUse;

/* The columns of each use; those of holds (1.2) and escrow (1.3) are absent before. */
enum
{
	ACCOUNT_ID, ACCOUNT_NAME, ACCOUNT_CURRENCY, ACCOUNT_FLOOR, ACCOUNT_BALANCE,
	ACCOUNT_HELD, ACCOUNT_ESCROW, ACCOUNT_NCOLUMNS
};

enum
{
	ENTRY_ID, ENTRY_ACCOUNT, ENTRY_AMOUNT, ENTRY_BALANCE, ENTRY_TRANSFER,
	ENTRY_KEY, ENTRY_HOLD, ENTRY_CREATED, ENTRY_NCOLUMNS
};

enum
{
	TRANSFER_ID, TRANSFER_FROM, TRANSFER_TO, TRANSFER_AMOUNT, TRANSFER_KEY,
	TRANSFER_CREATED, TRANSFER_NCOLUMNS
};

#define MAX_COLUMNS		ENTRY_NCOLUMNS

/* A ledger table open for a direct write, with its indexes. */
typedef struct DirectTarget
{
	TargetUse	use;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;			/* NULL for LOCK_ACCOUNTS */
	AttrNumber	attnum[MAX_COLUMNS];	/* of the columns above; an absent
										 * one of holds: InvalidAttrNumber */
	Relation	name_index;		/* accounts only: the unique index on name */
	Oid			sequence;		/* entries: of their id */
	LOCKMODE	lockmode;
	bool		pinned_checks;	/* uses the cached CHECK expressions */
} DirectTarget;

extern bool ledger_open_target(TargetUse use, DirectTarget *target);
extern void ledger_close_target(DirectTarget *target);

#endif							/* LEDGER_TARGET_H */
