/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  Declarations shared by the ledger extension's source files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_H
#define LEDGER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/timestamp.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/itemptr.h"

/* Longest account name or idempotency key, in bytes. */
#define LEDGER_MAX_NAME_BYTES	255

/* Longest currency code, in characters of [A-Z0-9_]. */
#define LEDGER_MAX_CURRENCY		16

/* durability.c */
extern void ledger_durability_init(void);
extern void ledger_prepare_write(void);

/* guard.c: who may write the ledger's tables, and who may create money */
extern bool ledger_may_create_money(void);
extern void ledger_raise_money_creation_denied(const char *action,
											   const char *detail) pg_attribute_noreturn();
extern int	ledger_enter_write(void);
extern void ledger_leave_write(int saved);
extern void ledger_set_folding(bool on);

/* statements.c: every internal query, prepared once per backend */
typedef enum LedgerStatement
{
	STMT_OPEN_ACCOUNT,
	STMT_FIND_ACCOUNT,
	STMT_LOCK_ACCOUNTS,
	STMT_FIND_KEY,
	STMT_FIND_KEYS,
	STMT_CLAIM_KEY,
	STMT_CLAIM_KEYS,
	STMT_UPDATE_BALANCES,
	STMT_INSERT_ENTRIES,
	STMT_INSERT_TRANSFERS,
	STMT_FIND_HOLD,
	STMT_RESERVED,
	STMT_INSERT_HOLDS,
	STMT_END_HOLDS,
	STMT_DUE_HOLDS,
	STMT_HOLDS,
	STMT_HISTORY,
	STMT_BALANCE_AT,
	STMT_VERIFY,
	STMT_ESCROW_LOAD,
	STMT_FOLD_DISCOVER,
	STMT_FOLD_LOCK,
	STMT_FOLD_ENTRIES,
	STMT_FOLD_ENTRIES_SET,
	STMT_FOLD_BALANCE,
	STMT_MODE_LOCK,
	STMT_MODE_SET,
	STMT_MODE_READ,
	STMT_FIND_TRANSFER_OUT,
	STMT_INSERT_TRANSFER_OUT,
	LEDGER_STATEMENT_COUNT
} LedgerStatement;

extern int	ledger_execute(LedgerStatement stmt, Datum *values,
						   const char *nulls, bool read_only);
extern bool ledger_get_int64(int row, int col, int64 *value);
extern bool ledger_get_bool(int row, int col);
extern char *ledger_get_cstring(int row, int col);

/* arguments.c: validation of SQL arguments, raising the documented errors */
extern text *ledger_arg_name(FunctionCallInfo fcinfo, int argno,
							 const char *argname);
extern text *ledger_arg_key(FunctionCallInfo fcinfo, int argno);
extern int64 ledger_arg_amount(FunctionCallInfo fcinfo, int argno);
extern text *ledger_arg_currency(FunctionCallInfo fcinfo, int argno);
extern void ledger_require_not_null(FunctionCallInfo fcinfo, int argno,
									const char *argname);

/* names.c: account names and idempotency keys, and an index by name */
extern bool ledger_name_is_valid(text *name);
extern bool ledger_same_text(text *a, text *b);

typedef struct LedgerNameIndex LedgerNameIndex;
extern LedgerNameIndex *ledger_names_create(int expected);
extern int	ledger_names_find(LedgerNameIndex *index, text *name);
extern void ledger_names_add(LedgerNameIndex *index, text *name, int position);

/* ---- the posting engine ------------------------------------------------ */

/*
 * Why an item of a posting was refused: a rule of ARCHITECTURE §4, named
 * in a batch's status column by its condition name (rules.c).
 */
typedef enum LedgerRefusal
{
	LEDGER_ACCEPTED = 0,
	LEDGER_REFUSE_INVALID,		/* 22023 invalid_parameter_value */
	LEDGER_REFUSE_NOT_FOUND,	/* LG002 account_not_found */
	LEDGER_REFUSE_KEY_CONFLICT, /* LG003 idempotency_conflict */
	LEDGER_REFUSE_CURRENCY,		/* LG004 currency_mismatch */
	LEDGER_REFUSE_FUNDS,		/* LG001 insufficient_funds */
	LEDGER_REFUSE_RANGE,		/* 22003 numeric_value_out_of_range */
	LEDGER_REFUSE_PRIVILEGE,	/* 42501 insufficient_privilege */
	LEDGER_REFUSE_HOLD_NOT_FOUND,	/* LG006 hold_not_found */
	LEDGER_REFUSE_HOLD_NOT_PENDING	/* LG007 hold_not_pending */
} LedgerRefusal;

/* An account row locked by this transaction, as the rules read it. */
typedef struct LedgerAccount
{
	text	   *name;
	bool		found;			/* false: no such account (nothing else set) */
	int64		account_id;
	int64		balance;		/* as the items so far left it */
	bool		has_floor;
	int64		min_balance;
	char	   *currency;
	int64		held;			/* the amounts of its pending holds */
	int64		reserved;		/* of those, what does not expire before
								 * the posting's clock: balance - reserved is
								 * what is available */
	ItemPointerData ctid;		/* the locked row version */
	bool		touched;		/* an item changed the balance or held */

	/* escrow mode (escrow.c) */
	bool		escrow;			/* the row said escrow when read */
	bool		row_locked;		/* this posting holds the row's lock */
	int64		row_balance;	/* the balance the row holds (folded) */
	int			escrow_slot;	/* pinned in shared memory; -1: locked mode */
	uint64		hold_generation;	/* of the slot's held, when pinned */
	int64		exact_held;		/* what the pending holds reserved then */
	int64		committed;		/* the slot's committed balance */
	int			entry_ids;		/* drawn for the current item */
	int			inflight_index; /* the transaction's place in the slot */
	bool		new_inflight;	/* taken for the current item */
	TimestampTz created;		/* the current item's entries' created_at */
} LedgerAccount;

/*
 * The balance to write back into an account's row: an escrow account's
 * row is the folder's, and keeps what it holds.
 */
static inline int64
ledger_stored_balance(const LedgerAccount *account)
{
	return account->escrow_slot >= 0 ? account->row_balance : account->balance;
}

/* What an item does to an escrow account, for its reservation. */
typedef struct LedgerEscrowEffect
{
	int64		debit;
	int64		credit;
	int64		hold;			/* a hold made */
	int64		ended;			/* the amount of a pending hold ended */
} LedgerEscrowEffect;

typedef enum LedgerOperation
{
	LEDGER_CREDIT,
	LEDGER_DEBIT,
	LEDGER_TRANSFER,
	LEDGER_HOLD,
	LEDGER_CAPTURE,
	LEDGER_RELEASE,
	LEDGER_EXPIRE				/* the sweep: record an expiry, if due */
} LedgerOperation;

/* A hold, as read (holds.c); for a capture or release the read under the lock. */
typedef struct LedgerHold
{
	bool		found;
	int64		hold_id;
	text	   *account;		/* the held account */
	int64		account_id;
	int64		amount;
	bool		expires;
	TimestampTz expires_at;
	char	   *ended;			/* NULL while pending, else "captured",
								 * "released" or "expired" */
	int64		captured;		/* the posted amount of a capture */
	text	   *to_account;		/* a capture's destination, or NULL */
	int64		result;			/* a capture's result */
	char	   *key;			/* its idempotency key, or NULL */
} LedgerHold;

/* One posting to decide: the request, then its outcome. */
typedef struct LedgerItem
{
	LedgerOperation op;
	text	   *account;		/* credit, debit, hold: the account; transfer:
								 * from; capture, release: the held account
								 * (set from the hold) */
	text	   *to_account;		/* transfer; a capture's destination or NULL */
	int64		amount;			/* a capture's: 0 when not given (the whole) */
	text	   *key;			/* NULL: no idempotency key */
	Interval   *expires_in;		/* hold: NULL never expires */
	int64		hold_id;		/* capture, release, expire */
	LedgerHold	hold;			/* capture, release, expire: as read */
	bool		cross_shard;	/* a step of a cross-shard transfer (transfer_out.c) */

	/* the outcome (posting.c) */
	LedgerRefusal refusal;
	int64		result;			/* new balance, or transfer id */
	LedgerAccount *from;		/* locked account(s), for error messages */
	LedgerAccount *to;
	text	   *missing;		/* LEDGER_REFUSE_NOT_FOUND: the name */
	int			transfer_index; /* internal: a new transfer's place */
	int			hold_index;		/* internal: a new hold's place */
	LedgerEscrowEffect taken;	/* internal: on an escrow account money ... */
	LedgerEscrowEffect given;	/* ... was taken from, or given to */
} LedgerItem;

/* A stored idempotency key: the request it was first used for. */
typedef struct LedgerStoredKey
{
	char	   *key;
	LedgerOperation op;
	char	   *account;
	char	   *counter_account;	/* NULL unless a transfer */
	int64		amount;
	Interval   *expires_in;		/* a hold's, or NULL */
	int64		result;			/* new balance, transfer id or hold id */
	int			transfer_index; /* >= 0: claimed here, id drawn later */
	int			hold_index;		/* likewise for a hold */
	bool		escrow;			/* posted in escrow mode */
} LedgerStoredKey;

/* posting.c */
extern void ledger_post_items(LedgerItem *items, int nitems, bool single);
extern int64 ledger_post_single(LedgerItem *item);

/* rules.c: the money rules, each decided in one function */
#define LEDGER_MAX_HOLD_DAYS INT64CONST(365250)	/* 1000 years of 365.25 days */
extern LedgerRefusal ledger_rule_request(const LedgerItem *item);
extern LedgerRefusal ledger_rule_take(const LedgerAccount *account, int64 amount,
									  int64 *new_balance);
extern LedgerRefusal ledger_rule_hold(const LedgerAccount *account, int64 amount);
extern LedgerRefusal ledger_rule_expiry(const Interval *expires_in, TimestampTz now,
										TimestampTz *expires_at);
extern LedgerRefusal ledger_rule_give(const LedgerAccount *account, int64 amount,
									  int64 *new_balance);
extern LedgerRefusal ledger_rule_currency(const LedgerAccount *from,
										  const LedgerAccount *to);
extern LedgerRefusal ledger_rule_replay(const LedgerStoredKey *stored,
										const LedgerItem *item);
extern bool ledger_hold_expired(const LedgerHold *hold, TimestampTz now);
extern LedgerRefusal ledger_rule_capture(const LedgerItem *item, TimestampTz now,
										 bool *replay);
/* keys the ledger makes itself, for the steps of a cross-shard transfer */
#define LEDGER_RESERVED_KEY_PREFIX "lr/"
#define LEDGER_TRANSFER_HOLD_KEY_PREFIX "lr/out/"
#define LEDGER_TRANSFER_CREDIT_KEY_PREFIX "lr/in/"
extern void ledger_rule_transfer_hold(const LedgerItem *item);
extern bool ledger_key_is_reserved(text *key);
extern void ledger_raise_reserved_key(void) pg_attribute_noreturn();
extern const char *ledger_refusal_name(LedgerRefusal refusal);
extern void ledger_raise_refusal(const LedgerItem *item) pg_attribute_noreturn();
extern const char *ledger_operation_name(LedgerOperation op);

/* account.c: the one way to lock accounts (in account_id order) */
extern void ledger_lock_accounts(int count, text **names, const bool *must_lock,
								 LedgerAccount *accounts);
extern int64 ledger_find_account(text *name);
extern void ledger_raise_account_not_found(text *name) pg_attribute_noreturn();

/* holds.c */
extern void ledger_read_hold(int64 hold_id, LedgerHold *hold);
extern int64 ledger_reserved(int64 account_id, TimestampTz now);
extern int64 ledger_reserved_committed(int64 account_id, TimestampTz now);

/* idempotency.c */
typedef struct LedgerKeys LedgerKeys;
extern LedgerKeys *ledger_keys_read(const LedgerItem *items, int nitems);
extern LedgerStoredKey *ledger_keys_find(LedgerKeys *keys, text *key);
extern LedgerStoredKey *ledger_keys_add(LedgerKeys *keys, const LedgerItem *item);
extern bool ledger_keys_claim(LedgerKeys *keys, const int64 *transfer_ids,
							  const int64 *hold_ids);
extern int	ledger_keys_claimed(LedgerKeys *keys);

/* write.c: the writes of decided postings, direct or through SQL */
typedef struct LedgerColumn
{
	Datum	   *values;
	bool	   *nulls;
	int			count;
	int			capacity;
} LedgerColumn;

typedef struct LedgerWrites
{
	LedgerColumn entry_id;		/* drawn at admission (escrow), or NULL */
	LedgerColumn entry_created; /* escrow: its own; NULL: the posting's */
	LedgerColumn entry_account;
	LedgerColumn entry_amount;
	LedgerColumn entry_balance;
	LedgerColumn entry_transfer;	/* a transfer's index until ids are drawn */
	LedgerColumn entry_key;
	LedgerColumn entry_hold;
	LedgerColumn transfer_from;
	LedgerColumn transfer_to;
	LedgerColumn transfer_amount;
	LedgerColumn transfer_key;
	LedgerColumn hold_account;
	LedgerColumn hold_amount;
	LedgerColumn hold_expires;
	LedgerColumn hold_key;
	LedgerColumn end_hold;
	LedgerColumn end_status;
	LedgerColumn end_captured;
	LedgerColumn end_to;
	LedgerColumn end_transfer;	/* a transfer's index until ids are drawn */
	LedgerColumn end_result;
} LedgerWrites;

extern void ledger_column_push(LedgerColumn *column, Datum value, bool isnull);
extern ArrayType *ledger_column_array(LedgerColumn *column, Oid elmtype);
extern int64 *ledger_next_ids(Oid sequence, int count);
extern void ledger_write(LedgerAccount *accounts, int naccounts,
						 LedgerWrites *writes, const int64 *transfer_ids,
						 const int64 *hold_ids, TimestampTz now);

/* relations.c: the ledger's relations and what a direct write may do */
typedef struct LedgerRelations
{
	Oid			accounts;
	Oid			entries;
	Oid			transfers;
	Oid			entry_sequence;
	Oid			transfer_sequence;
	Oid			hold_sequence;	/* InvalidOid before 1.2: no holds */
	bool		escrow;			/* accounts.escrow exists (1.3) */
	Oid			guard_function; /* ledger.guard_write() */
	Oid			credit_function;	/* ledger_credit(text, bigint, text) */
	Oid			account_name_type;	/* the extension's domains */
	Oid			idempotency_key_type;
	Oid			currency_code_type;
	Oid			floor_type;
	Oid			positive_amount_type;
	Oid			signed_amount_type;
} LedgerRelations;

extern const LedgerRelations *ledger_relations(void);

/* escrow.c: escrow mode's admission, in shared memory */
extern void ledger_escrow_init(void);
extern bool ledger_escrow_available(void);
extern bool ledger_escrow_by_default(void);
extern bool ledger_escrow_tables_present(void);
extern void ledger_escrow_require(text *account);
extern bool ledger_escrow_pin(LedgerAccount *account);
extern void ledger_escrow_exact_held(LedgerAccount *account, TimestampTz now);
extern void ledger_escrow_begin(LedgerAccount *from, LedgerAccount *to, bool writes_entries);
extern int64 ledger_escrow_entry_id(LedgerAccount *account);
extern int64 ledger_escrow_balance(LedgerAccount *account);
extern void ledger_escrow_end(LedgerAccount *from, LedgerAccount *to,
							  const LedgerEscrowEffect *from_effect,
							  const LedgerEscrowEffect *to_effect);
extern void ledger_escrow_undo(LedgerAccount *account, const LedgerEscrowEffect *effect);
extern int64 ledger_escrow_fold_limit(int64 account_id);
extern int	ledger_escrow_take_to_fold(int64 *ids, int max);
extern void ledger_escrow_fold_later(int64 account_id);
extern uint64 ledger_escrow_forgotten(void);
extern void ledger_escrow_begin_switch(int64 account_id, text *account);
extern void ledger_escrow_note_switch(int64 account_id);

/* fold.c: the folder, folding escrow entries into balance rows */
extern void ledger_fold_init(void);
extern void ledger_fold_shmem_request(void);
extern void ledger_fold_shmem_startup(void);
extern void ledger_fold_wake(void);
extern void ledger_fold_ensure(void);
extern bool ledger_fold_account(int64 account_id);
extern bool ledger_is_folder(void);

/* direct_write.c: postings without the executor; false = use SQL */
extern bool ledger_direct_lock_accounts(int count, text **names, const bool *must_lock,
										LedgerAccount *accounts);
extern bool ledger_direct_set_balances(int count, const LedgerAccount *const *accounts);
extern bool ledger_direct_append_entries(LedgerWrites *writes, TimestampTz created_at);
extern bool ledger_direct_append_transfers(LedgerWrites *writes,
										   const int64 *transfer_ids,
										   TimestampTz created_at);
extern bool ledger_direct_post(text *name, int64 amount, bool is_debit,
							   int64 *new_balance);

#endif							/* LEDGER_H */
