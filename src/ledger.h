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

/* statements.c: every internal query, prepared once per backend */
typedef enum LedgerStatement
{
	STMT_OPEN_ACCOUNT,
	STMT_FIND_ACCOUNT,
	STMT_LOCK_ACCOUNT,
	STMT_LOCK_ACCOUNT_PAIR,
	STMT_FAST_DEBIT,
	STMT_FAST_CREDIT,
	STMT_UPDATE_BALANCE,
	STMT_INSERT_ENTRY,
	STMT_NEXT_TRANSFER_ID,
	STMT_POST_TRANSFER,
	STMT_FIND_KEY,
	STMT_CLAIM_KEY,
	STMT_LOCK_ACCOUNTS,
	STMT_FIND_KEYS,
	STMT_CLAIM_KEYS,
	STMT_UPDATE_BALANCES,
	STMT_INSERT_ENTRIES,
	STMT_NEXT_TRANSFER_IDS,
	STMT_INSERT_TRANSFERS,
	STMT_HISTORY,
	STMT_VERIFY,
	LEDGER_STATEMENT_COUNT
} LedgerStatement;

extern int	ledger_execute(LedgerStatement stmt, Datum *values,
						   const char *nulls, bool read_only);
extern bool ledger_get_int64(int row, int col, int64 *value);
extern char *ledger_get_cstring(int row, int col);

/* arguments.c: validation of SQL arguments, raising the documented errors */
extern text *ledger_arg_name(FunctionCallInfo fcinfo, int argno,
							 const char *argname);
extern text *ledger_arg_key(FunctionCallInfo fcinfo, int argno);
extern int64 ledger_arg_amount(FunctionCallInfo fcinfo, int argno);
extern text *ledger_arg_currency(FunctionCallInfo fcinfo, int argno);
extern void ledger_require_not_null(FunctionCallInfo fcinfo, int argno,
									const char *argname);

/* account.c */
typedef struct LockedAccount
{
	int64		account_id;
	text	   *name;
	int64		balance;
	bool		has_floor;
	int64		min_balance;
	char	   *currency;
	bool		ctid_known;		/* locked without the executor: ctid is set */
	ItemPointerData ctid;		/* the locked row version */
} LockedAccount;

extern void ledger_lock_account(text *name, LockedAccount *account);
extern void ledger_lock_account_pair(text *first, text *second,
									 LockedAccount *first_account,
									 LockedAccount *second_account);
extern int64 ledger_find_account(text *name);
extern void ledger_raise_account_not_found(text *name) pg_attribute_noreturn();

/* idempotency.c */
typedef struct LedgerRequest
{
	const char *operation;		/* "credit", "debit" or "transfer" */
	text	   *key;
	text	   *account;
	text	   *counter_account;	/* NULL unless a transfer */
	int64		amount;
} LedgerRequest;

extern bool ledger_same_request(const char *operation, const char *account,
								const char *counter_account, int64 amount,
								const char *other_operation,
								const char *other_account,
								const char *other_counter_account,
								int64 other_amount);
extern bool ledger_key_replay(const LedgerRequest *request, int64 *result);
extern bool ledger_key_claim(const LedgerRequest *request, int64 result,
							 int64 *replayed);

/* journal.c */
extern void ledger_append_entry(int64 account_id, int64 amount,
								int64 balance_after, int64 transfer_id,
								text *key, TimestampTz created_at);

/* direct_write.c: postings without the executor; false = use SQL */
extern bool ledger_bulk_append_entries(int count, const Datum *account_id,
									   const Datum *amount,
									   const Datum *balance_after,
									   const Datum *transfer_id,
									   const bool *transfer_null,
									   const Datum *key, const bool *key_null,
									   TimestampTz created_at);
extern bool ledger_bulk_set_balances(int count, const ItemPointerData *ctid,
									 const int64 *balance);
extern bool ledger_direct_post(text *name, int64 amount, bool is_debit,
							   TimestampTz now, int64 *new_balance);

typedef struct LedgerLockedRow
{
	bool		found;
	int64		account_id;
	int64		balance;
	bool		has_floor;
	int64		min_balance;
	char	   *currency;
	ItemPointerData ctid;		/* of the locked row version */
} LedgerLockedRow;

extern bool ledger_direct_lock_accounts(int count, text **names,
										LedgerLockedRow *rows);
extern bool ledger_direct_apply(const LockedAccount *account, int64 signed_amount,
								int64 new_balance, text *key, TimestampTz now);
extern bool ledger_direct_transfer(const LockedAccount *from, int64 from_balance,
								   const LockedAccount *to, int64 to_balance,
								   int64 amount, int64 transfer_id, text *key,
								   TimestampTz now, int64 *written_id);

#endif							/* LEDGER_H */
