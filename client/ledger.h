/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  libledger: the C client library of the ledger PostgreSQL extension.
 *
 * The one public header.  Every call is one posting or one read (or, with
 * ledger_post_batch, many postings), run in its own transaction over libpq,
 * through prepared or unnamed statements (ledger_set_statements).
 * Postings always carry an idempotency key (the caller's, or one generated
 * per call from 128 random bits), so the library can reconnect and retry
 * after a lost connection, a serialization failure (40001) or a deadlock
 * (40P01) without ever applying a posting twice.
 *
 * OUTCOMES: a posting (or a batch item) is LEDGER_OK only after its commit
 * succeeded and was confirmed: the server answered, the commit raised no
 * error, and no WARNING came with it (PostgreSQL warns when a wait for a
 * synchronous standby is cancelled: the posting is then committed locally
 * but maybe not replicated).  A refusal (LG001-LG007, 22xxx) is definite
 * even after earlier attempts whose answer was lost, because the retry
 * carried the same key (a capture or release: the same hold id) and would
 * have replayed a committed attempt.  Any
 * other failure after an attempt that may have committed (lost connection,
 * unconfirmed commit, the deadline of ledger_set_timeout) is retried while
 * attempts and time remain and otherwise ends in LEDGER_UNKNOWN_OUTCOME:
 * the posting may or may not have been applied.  Then call again later with
 * the same key (ledger_last_key, or the item's key) and the same
 * arguments: you get the original result if it was applied, or it applies
 * now.  A retry with another key, or none, may post twice.
 *
 * Naming: the C functions share the names of the SQL functions they call
 * (the C ledger_debit() runs SELECT ledger_debit(...)); they live in
 * different namespaces and never meet.
 *
 * THREADS: a LedgerConn must not be used by two threads at the same time,
 * exactly like a libpq PGconn.  Use one connection per thread; different
 * connections may be used concurrently.  The library has no global state.
 *
 * OWNERSHIP: strings returned by the getters below, and the out strings of
 * batch items, are owned by the connection and stay valid until the next
 * call on that connection returns (or ledger_finish): they may be passed as
 * arguments of that next call, e.g. items resent with their reported keys.
 * Copy them to keep them longer.  History, holds and audit results are
 * owned by the caller and freed with ledger_history_free /
 * ledger_holds_free / ledger_audit_free.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_CLIENT_H
#define LEDGER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C"
{
#endif

/* Version of this header; the SONAME is libledger.so.LEDGER_VERSION_MAJOR. */
#define LEDGER_VERSION_MAJOR 1
#define LEDGER_VERSION_MINOR 3
#define LEDGER_VERSION_PATCH 0
#define LEDGER_VERSION_NUM \
	(LEDGER_VERSION_MAJOR * 10000 + LEDGER_VERSION_MINOR * 100 + LEDGER_VERSION_PATCH)

/* Feature macro: ledger_batch() (libpq pipeline mode) is available. */
#define LEDGER_HAS_PIPELINE 1

/*
 * Feature macro (since 1.1.0): ledger_post_batch() is available, the batch
 * in one transaction over the extension's ledger_debit_batch and
 * ledger_transfer_batch (extension 1.1 or later).
 */
#define LEDGER_HAS_SERVER_BATCH 1

/*
 * Feature macros (since 1.2.0): ledger_set_timeout() bounds every call;
 * ledger_generate_key() makes a key before anything is sent.
 */
#define LEDGER_HAS_TIMEOUT 1
#define LEDGER_HAS_GENERATE_KEY 1

/*
 * Feature macro (since 1.2.0): holds -- ledger_hold, ledger_capture,
 * ledger_release, ledger_available, ledger_holds -- with the statuses
 * LEDGER_HOLD_NOT_FOUND and LEDGER_HOLD_NOT_PENDING, and ledger_balance_at
 * and ledger_history_before (extension 1.2 or later).
 */
#define LEDGER_HAS_HOLDS 1

/*
 * Feature macro (since 1.2.0): ledger_set_statements, for connections
 * through a pooler such as pgbouncer.
 */
#define LEDGER_HAS_STATEMENTS 1

/*
 * Feature macro (since 1.3.0): escrow mode -- ledger_set_account_mode,
 * ledger_account_mode, and LEDGER_NOT_FOLDED in a history's balance_after
 * (extension 1.3 or later).
 */
#define LEDGER_HAS_ESCROW 1

/*
 * The verbs' status must be looked at: ignoring it is how a posting that
 * failed, or whose outcome is unknown, passes for done.
 */
#if defined(__GNUC__) || defined(__clang__)
#define LEDGER_MUST_CHECK __attribute__((warn_unused_result))
#else
#define LEDGER_MUST_CHECK
#endif

/*
 * The outcome of every call.  The numeric values are part of the ABI: they
 * are never renumbered, new values are only appended.  Values 1-10 and
 * 15-16 mirror the SQLSTATEs raised by the extension (src/errors.h on the
 * server side).
 */
typedef enum LedgerStatus
{
	LEDGER_OK = 0,
	LEDGER_INSUFFICIENT_FUNDS = 1,	/* LG001 the balance would go below the floor */
	LEDGER_ACCOUNT_NOT_FOUND = 2,	/* LG002 no such account */
	LEDGER_IDEMPOTENCY_CONFLICT = 3,	/* LG003 key reused for a different request */
	LEDGER_CURRENCY_MISMATCH = 4,	/* LG004 transfer across currencies */
	LEDGER_ACCOUNT_EXISTS = 5,	/* LG005 reopened with other parameters */
	LEDGER_INVALID_PARAMETER_VALUE = 6, /* 22023 bad amount, name, key, currency... */
	LEDGER_NULL_VALUE_NOT_ALLOWED = 7,	/* 22004 a required argument was NULL */
	LEDGER_NUMERIC_VALUE_OUT_OF_RANGE = 8,	/* 22003 the balance would overflow */
	LEDGER_INSUFFICIENT_PRIVILEGE = 9,	/* 42501 the role was not granted the function */
	LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE = 10,	/* 55000 posting refused: fsync = off */
	LEDGER_SERVER_ERROR = 11,	/* any other SQLSTATE; read ledger_error_sqlstate() */
	LEDGER_CONNECTION_FAILED = 12,	/* no connection; the request was never executed */
	LEDGER_UNKNOWN_OUTCOME = 13,	/* a write was sent, no answer: it may have applied */
	LEDGER_CLIENT_ERROR = 14,	/* misuse or out of memory; nothing was sent */
	LEDGER_HOLD_NOT_FOUND = 15, /* LG006 no hold has that id (since 1.2.0) */
	LEDGER_HOLD_NOT_PENDING = 16	/* LG007 the hold was captured, released or
									 * expired (since 1.2.0) */
} LedgerStatus;

/*
 * Connection options.  A zeroed struct means "all defaults", so both
 * `LedgerOptions o = {0};` and ledger_options_init(&o) are fine.  The
 * struct is frozen (its layout is part of the 1.x ABI); options added
 * later have setters on the connection, like ledger_set_timeout.
 */
typedef struct LedgerOptions
{
	const char *conninfo;		/* libpq conninfo string or URI; NULL or "":
								 * the PG* environment variables only */
	int			retry_attempts; /* attempts per call, >= 1; 0: default 5 */
	int			backoff_base_ms;	/* sleep before the 2nd attempt, doubled
									 * before each further one; 0: default 50 */
	int			backoff_max_ms; /* cap of that sleep; 0: default 2000 */
} LedgerOptions;

#define LEDGER_DEFAULT_RETRY_ATTEMPTS	5
#define LEDGER_DEFAULT_BACKOFF_BASE_MS	50
#define LEDGER_DEFAULT_BACKOFF_MAX_MS	2000

/* Pass as min_balance to ledger_open_account for "no floor" (SQL NULL). */
#define LEDGER_NO_FLOOR INT64_MIN

/* Length of a generated idempotency key: 128 random bits in lower-case hex. */
#define LEDGER_GENERATED_KEY_LEN 32

/* Room for a generated key and its NUL: the buffer of ledger_generate_key. */
#define LEDGER_KEY_BUFSIZE (LEDGER_GENERATED_KEY_LEN + 1)

/* Opaque connection handle. */
typedef struct LedgerConn LedgerConn;

/*
 * The balance_after of an escrow account's entry that the server's folder
 * has not folded yet (since 1.3.0): the balance after it is not known yet.
 */
#define LEDGER_NOT_FOLDED INT64_MIN

/* One journal entry of ledger_history(); see ledger_history. */
typedef struct LedgerEntry
{
	int64_t		entry_id;
	int64_t		amount;			/* signed: debits are negative */
	int64_t		balance_after;	/* the running balance after this entry, or
								 * LEDGER_NOT_FOLDED (escrow mode, not yet) */
	int64_t		transfer_id;	/* 0 when not part of a transfer */
	const char *idempotency_key;	/* NULL when the posting had none */
	int64_t		created_at_us;	/* microseconds since 1970-01-01 00:00 UTC */
} LedgerEntry;

typedef struct LedgerHistory
{
	size_t		n_entries;
	LedgerEntry *entries;		/* newest first */
} LedgerHistory;

/* One hold of ledger_holds(); see ledger_holds.  Since 1.2.0. */
typedef struct LedgerHold
{
	int64_t		hold_id;
	int64_t		amount;			/* what it reserves (or reserved) */
	int64_t		captured;		/* the amount posted; 0 unless captured */
	const char *status;			/* "pending", "captured", "released" or
								 * "expired" (a pending hold past its expiry
								 * reads "expired" before any sweep) */
	int64_t		created_at_us;	/* microseconds since 1970-01-01 00:00 UTC */
	int64_t		expires_at_us;	/* the same; meaningful when has_expiry */
	int			has_expiry;		/* 0: the hold never expires */
	const char *idempotency_key;	/* NULL when the hold had none */
} LedgerHold;

typedef struct LedgerHolds
{
	size_t		n_holds;
	LedgerHold *holds;			/* newest first */
} LedgerHolds;

/* One row of ledger_verify(). */
typedef struct LedgerProblem
{
	const char *account;		/* may be NULL (e.g. a journal row whose
								 * account vanished) */
	const char *problem;
} LedgerProblem;

typedef struct LedgerAudit
{
	size_t		n_problems;		/* 0: the ledger is consistent */
	LedgerProblem *problems;
} LedgerAudit;

/* The kind of one batch item. */
typedef enum LedgerOp
{
	LEDGER_OP_CREDIT = 1,
	LEDGER_OP_DEBIT = 2,
	LEDGER_OP_TRANSFER = 3
} LedgerOp;

/*
 * One posting of a batch.  The caller fills the "in" fields; ledger_batch
 * and ledger_post_batch fill the "out" fields of every item.  Out strings
 * are owned by the connection and valid until its next call.
 */
typedef struct LedgerPosting
{
	/* in */
	LedgerOp	op;
	const char *account;		/* credit/debit: the account; transfer: from */
	const char *to_account;		/* transfer only */
	int64_t		amount;
	const char *idempotency_key;	/* NULL: the library generates one */
	/* out */
	LedgerStatus status;
	int64_t		result;			/* new balance (credit, debit) or transfer id */
	const char *key;			/* the key used: the caller's or the generated one */
	const char *sqlstate;		/* NULL unless the server refused this item */
	const char *message;		/* "" when status is LEDGER_OK */
	const char *detail;			/* the server's detail, or NULL */
} LedgerPosting;

/* ---- library ------------------------------------------------------------ */

/* LEDGER_VERSION_NUM of the library actually loaded. */
extern int	ledger_library_version(void);

/* Stable lower-case name of a status, e.g. "insufficient_funds". */
extern const char *ledger_status_name(LedgerStatus status);

/* Fill *opts with the defaults (conninfo NULL). */
extern void ledger_options_init(LedgerOptions *opts);

/*
 * Write a new idempotency key (LEDGER_GENERATED_KEY_LEN lower-case hex
 * digits from 128 bits of the kernel's CSPRNG, and a NUL) into buf, which
 * holds size >= LEDGER_KEY_BUFSIZE bytes.  Store it with the intent before
 * posting with it, and a process that crashes mid-call can ask again with
 * the same key after its restart.  LEDGER_OK, or LEDGER_CLIENT_ERROR (buf
 * NULL or too small, no random bytes).  Since 1.2.0.
 */
extern LedgerStatus ledger_generate_key(char *buf, size_t size);

/* ---- connections -------------------------------------------------------- */

/*
 * Open a connection (one attempt, no retry).  *conn is always set, to NULL
 * only when memory ran out, and must be released with ledger_finish, also
 * on failure: like libpq, the handle carries the error message.  Returns
 * LEDGER_OK, LEDGER_CONNECTION_FAILED (the handle stays usable: every call
 * reconnects first) or LEDGER_CLIENT_ERROR (invalid options).  opts may be
 * NULL for all defaults.
 */
extern LedgerStatus ledger_connect(const LedgerOptions *opts, LedgerConn **conn);

/* Close the connection and free everything it owns.  NULL is ignored. */
extern void ledger_finish(LedgerConn *conn);

/*
 * Bound every later call on this connection: each call returns within
 * timeout_ms milliseconds of its start, retries and backoff included; 0
 * (the default) means no bound.  When the time is up mid-call the
 * connection is dropped (the next call reconnects), and the call returns
 * LEDGER_UNKNOWN_OUTCOME if a write had been sent (the server may still
 * commit it), otherwise LEDGER_CONNECTION_FAILED.  This is the one bound
 * on a commit waiting for a synchronous standby, which statement_timeout
 * does not cover.  LEDGER_OK, or LEDGER_CLIENT_ERROR for a negative
 * value.  Since 1.2.0.
 *
 * Independently of it, connections default to connect_timeout=10,
 * keepalives (idle 30 s, interval 10 s, count 3) and tcp_user_timeout=30000,
 * which detect a dead server or network; the conninfo overrides each.
 */
extern LedgerStatus ledger_set_timeout(LedgerConn *conn, int timeout_ms);

/*
 * How calls reach the server; see ledger_set_statements.  Since 1.2.0.
 */
typedef enum LedgerStatements
{
	/*
	 * The default.  Each statement is prepared once per server session,
	 * under a name derived from its text, and then executed by name.  At
	 * the first sign that server sessions are shared or change under the
	 * connection -- a transaction pooler such as pgbouncer with
	 * pool_mode = transaction -- the connection switches to
	 * LEDGER_STATEMENTS_UNNAMED for good.  The sign is the server refusing
	 * the name (26000 "does not exist", 42P05 "already exists"), which it
	 * does before running anything, so the call is simply sent again.
	 */
	LEDGER_STATEMENTS_AUTO = 0,
	/*
	 * Always prepared and executed by name, never switching: for direct
	 * connections, session pooling, and poolers that keep prepared
	 * statements per client (pgbouncer >= 1.21 with max_prepared_statements).
	 * Behind a transaction pooler without that, calls fail with
	 * LEDGER_CONNECTION_FAILED (SQLSTATE 26000).
	 */
	LEDGER_STATEMENTS_PREPARED = 1,
	/*
	 * Every call is parsed and planned by the server (Parse, Bind and
	 * Execute of the unnamed statement in one round trip): works behind
	 * any pooler; costs the server a parse and plan per call.  The ledger
	 * CLI uses it: it makes one call per connection.
	 */
	LEDGER_STATEMENTS_UNNAMED = 2
} LedgerStatements;

/*
 * Choose how later calls on this connection reach the server.  LEDGER_OK,
 * or LEDGER_CLIENT_ERROR for a value outside LedgerStatements.  Since
 * 1.2.0.
 */
extern LedgerStatus ledger_set_statements(LedgerConn *conn, LedgerStatements how);

/*
 * About the last call on this connection.  Strings are owned by the
 * connection (see OWNERSHIP above).
 *   ledger_error_message: the server's primary message, or the library's
 *                         own; "" after LEDGER_OK
 *   ledger_error_sqlstate, _detail, _hint: the server's fields; NULL when
 *                         the server sent none (or the call succeeded)
 *   ledger_last_key:      the idempotency key of the last credit, debit,
 *                         transfer or hold (the caller's or a generated
 *                         one); reset at the start of each of them, so it is
 *                         NULL only if that posting failed before choosing
 *                         a key (LEDGER_CLIENT_ERROR); other calls leave
 *                         it unchanged; NULL before the first posting
 *   ledger_last_attempts: how many attempts the last call began (each a
 *                         connection and, unless that failed, a send);
 *                         0 when it ended before any (LEDGER_CLIENT_ERROR)
 */
extern const char *ledger_error_message(const LedgerConn *conn);
extern const char *ledger_error_sqlstate(const LedgerConn *conn);
extern const char *ledger_error_detail(const LedgerConn *conn);
extern const char *ledger_error_hint(const LedgerConn *conn);
extern const char *ledger_last_key(const LedgerConn *conn);
extern int	ledger_last_attempts(const LedgerConn *conn);

/* ---- verbs -------------------------------------------------------------- */

/*
 * Out-parameters are written only when the call returns LEDGER_OK and may be
 * NULL when the caller does not need the number.  A NULL string argument is
 * sent as SQL NULL (the server answers LEDGER_NULL_VALUE_NOT_ALLOWED).
 */

/* currency NULL: "XXX"; min_balance LEDGER_NO_FLOOR: no floor. */
extern LEDGER_MUST_CHECK LedgerStatus ledger_open_account(LedgerConn *conn, const char *account,
										const char *currency, int64_t min_balance,
										int64_t *account_id);

/* idempotency_key NULL: a key is generated; read it with ledger_last_key. */
extern LEDGER_MUST_CHECK LedgerStatus ledger_credit(LedgerConn *conn, const char *account,
								  int64_t amount, const char *idempotency_key,
								  int64_t *new_balance);
extern LEDGER_MUST_CHECK LedgerStatus ledger_debit(LedgerConn *conn, const char *account,
								 int64_t amount, const char *idempotency_key,
								 int64_t *new_balance);
extern LEDGER_MUST_CHECK LedgerStatus ledger_transfer(LedgerConn *conn, const char *from_account,
									const char *to_account, int64_t amount,
									const char *idempotency_key,
									int64_t *transfer_id);

extern LEDGER_MUST_CHECK LedgerStatus ledger_balance(LedgerConn *conn, const char *account,
								   int64_t *balance);

/*
 * The newest max_rows entries of an account, newest first.  On LEDGER_OK
 * *history is a new result (possibly with 0 entries) that the caller frees
 * with ledger_history_free; otherwise *history is NULL.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_history(LedgerConn *conn, const char *account,
								   int max_rows, LedgerHistory **history);
extern void ledger_history_free(LedgerHistory *history);

/*
 * Keyset paging of the history: like ledger_history, but only the entries
 * older than before_entry_id (entry_id < before_entry_id); 0 starts from
 * the newest.  The next page starts before the last entry_id of this one;
 * a page with fewer than max_rows entries is the last.  Free the result
 * with ledger_history_free.  Since 1.2.0.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_history_before(LedgerConn *conn, const char *account,
										  int max_rows, int64_t before_entry_id,
										  LedgerHistory **history);

/*
 * The balance of an account at a point in time: the running balance after
 * its last journal entry created at or before at_us (microseconds since
 * 1970-01-01 00:00 UTC, exact to the microsecond); 0 before its first
 * entry.  Holds do not count: they change no balance until captured.
 * Statuses: LEDGER_ACCOUNT_NOT_FOUND, _NULL_VALUE_NOT_ALLOWED (account
 * NULL), LEDGER_SERVER_ERROR 22008 for a time outside PostgreSQL's range.
 * Since 1.2.0.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_balance_at(LedgerConn *conn, const char *account,
									  int64_t at_us, int64_t *balance);

/* ---- holds (since 1.2.0) --------------------------------------------------- */

/*
 * A hold reserves money now and posts it later (ledger_capture) or never
 * (ledger_release, or its expiry).  It changes no balance; it lowers what
 * is available (ledger_available): balance minus the pending holds not yet
 * expired, which no debit, transfer or other hold may take below the floor.
 * Each call is one transaction, like every verb; hold, capture and release
 * are writes: retried, confirmed and reported by the OUTCOMES rules above.
 */

/*
 * Reserve amount of account's available balance; *hold_id is the new hold.
 * expires_in_ms 0: the hold never expires; otherwise it stops reserving,
 * exactly, that many milliseconds after it is made, whether or not anything
 * records it (a negative value is sent, and refused by the server).  Keyed
 * like ledger_debit: idempotency_key NULL generates one (ledger_last_key),
 * one key for all attempts; the same key and arguments again return the
 * same hold id, even after the hold ended.
 * Statuses: LEDGER_INSUFFICIENT_FUNDS (available - amount would be below
 * the floor), _ACCOUNT_NOT_FOUND, _IDEMPOTENCY_CONFLICT (the key was used
 * for another request), _INVALID_PARAMETER_VALUE (amount <= 0, a negative
 * expiry, a bad name or key), _NULL_VALUE_NOT_ALLOWED (account NULL),
 * _INSUFFICIENT_PRIVILEGE (a hold on an account without a floor needs the
 * right to create money), _UNKNOWN_OUTCOME (call again with the same key).
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_hold(LedgerConn *conn, const char *account,
								int64_t amount, int64_t expires_in_ms,
								const char *idempotency_key, int64_t *hold_id);

/*
 * Post amount of a pending hold (0: the whole hold) and end it; the rest of
 * the hold is released.  to_account NULL: a debit of the held account;
 * otherwise a transfer to to_account, by the rules of ledger_transfer.
 * *new_balance is the held account's balance afterwards.  There is no
 * idempotency key: the hold id is one.  The same hold id and arguments
 * again return the first result and post nothing, so the call is retried
 * like a keyed posting, and after LEDGER_UNKNOWN_OUTCOME calling it again
 * with the same arguments is safe.
 * Statuses: LEDGER_HOLD_NOT_FOUND, _HOLD_NOT_PENDING (released or
 * expired), _IDEMPOTENCY_CONFLICT (captured before with other arguments),
 * _INVALID_PARAMETER_VALUE (a negative amount, more than the hold, a
 * capture to the held account itself, a bad name), _ACCOUNT_NOT_FOUND and
 * _CURRENCY_MISMATCH (to_account), _NUMERIC_VALUE_OUT_OF_RANGE,
 * _INSUFFICIENT_PRIVILEGE (a hold on an account without a floor needs the
 * right to create money), _UNKNOWN_OUTCOME.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_capture(LedgerConn *conn, int64_t hold_id,
								   int64_t amount, const char *to_account,
								   int64_t *new_balance);

/*
 * End a pending hold without posting: *released is 1.  A hold already
 * released or expired is left as it is: *released is 0.  Retried by hold
 * id like ledger_capture, so *released 0 can also mean that an earlier
 * attempt of this same call released the hold and its answer was lost
 * (ledger_last_attempts > 1); either way the hold no longer reserves.
 * Statuses: LEDGER_HOLD_NOT_FOUND, _HOLD_NOT_PENDING (it was captured),
 * _UNKNOWN_OUTCOME (calling it again is safe).
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_release(LedgerConn *conn, int64_t hold_id,
								   int *released);

/*
 * What an account can spend now: its balance minus its pending holds not
 * yet expired.  Statuses: LEDGER_ACCOUNT_NOT_FOUND, _NULL_VALUE_NOT_ALLOWED.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_available(LedgerConn *conn, const char *account,
									 int64_t *available);

/*
 * The newest max_rows holds of an account, newest first (by hold id),
 * whatever their status.  On LEDGER_OK *holds is a new result (possibly
 * with 0 holds) that the caller frees with ledger_holds_free; otherwise
 * *holds is NULL.  Statuses: LEDGER_ACCOUNT_NOT_FOUND,
 * _INVALID_PARAMETER_VALUE (max_rows negative), _NULL_VALUE_NOT_ALLOWED.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_holds(LedgerConn *conn, const char *account,
								 int max_rows, LedgerHolds **holds);
extern void ledger_holds_free(LedgerHolds *holds);

/*
 * An account's mode (since 1.3.0, extension 1.3): locked (the default:
 * postings lock the account's row to COMMIT) or escrow (postings are
 * admitted against what is in flight and only insert; for hot accounts;
 * the server needs the ledger library preloaded, else
 * LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE).
 */
typedef enum LedgerAccountMode
{
	LEDGER_MODE_LOCKED = 0,
	LEDGER_MODE_ESCROW = 1
} LedgerAccountMode;

/*
 * Set an account's mode; *previous (may be NULL) gets the mode it had --
 * after a retry of an attempt that committed unseen, the new one.
 * Statuses: LEDGER_ACCOUNT_NOT_FOUND, LEDGER_INVALID_PARAMETER_VALUE,
 * LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE (escrow without the library
 * preloaded), LEDGER_SERVER_ERROR 0A000 (called in a REPEATABLE READ
 * transaction, cannot happen here), LEDGER_CLIENT_ERROR (mode not a
 * LedgerAccountMode).
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_set_account_mode(LedgerConn *conn, const char *account,
										   LedgerAccountMode mode,
										   LedgerAccountMode *previous);
extern LEDGER_MUST_CHECK LedgerStatus ledger_account_mode(LedgerConn *conn, const char *account,
									   LedgerAccountMode *mode);
/* "locked" or "escrow" ("unknown" for another value). */
extern const char *ledger_mode_name(LedgerAccountMode mode);

/* The audit.  On LEDGER_OK *audit is freed with ledger_audit_free. */
extern LEDGER_MUST_CHECK LedgerStatus ledger_verify(LedgerConn *conn, LedgerAudit **audit);
extern void ledger_audit_free(LedgerAudit *audit);

/*
 * Post n independent items in one round trip (libpq pipeline mode).  Each
 * item is its own transaction: a refused item does not affect the others.
 * Items are applied in array order, except that an item retried (lost with
 * the connection, or 40001/40P01) applies after the items that went through
 * at the first try; retries use each item's key, like single calls.  Every
 * item gets its own status; the return value is LEDGER_OK when all of them
 * are LEDGER_OK, otherwise the status of the first item that is not (or
 * LEDGER_CLIENT_ERROR for a malformed batch, with no item sent).  The
 * connection's error fields are those of that first failed item.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_batch(LedgerConn *conn, LedgerPosting *items, size_t n);

/*
 * Post n items in one statement, one transaction and one commit, on the
 * server (SELECT ... FROM ledger_debit_batch / ledger_transfer_batch; the
 * extension must be 1.1 or later and the role granted those functions).
 * All items must have the same op: all LEDGER_OP_DEBIT or all
 * LEDGER_OP_TRANSFER.  Credits, mixed ops or an invalid op return
 * LEDGER_CLIENT_ERROR with nothing sent.  n == 0 sends nothing and returns
 * LEDGER_OK.
 *
 * Items apply in array order.  Each gets a status: LEDGER_OK (result is the
 * new balance or the transfer id) or the refusal of that item alone
 * (LEDGER_INSUFFICIENT_FUNDS, _ACCOUNT_NOT_FOUND, _IDEMPOTENCY_CONFLICT,
 * _CURRENCY_MISMATCH, _INVALID_PARAMETER_VALUE, _NUMERIC_VALUE_OUT_OF_RANGE,
 * with that condition's SQLSTATE and no detail), which changes nothing and
 * does not stop the others.  The items that are LEDGER_OK commit together,
 * in one commit, or not at all.
 *
 * A whole-call error applies nothing and gives every item its status and
 * message (the server's, or libpq's): LEDGER_INSUFFICIENT_PRIVILEGE (42501),
 * LEDGER_NULL_VALUE_NOT_ALLOWED (a NULL account or to_account),
 * LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE (fsync = off), LEDGER_SERVER_ERROR
 * (e.g. 40001 after the last attempt, 42883 without the batch functions),
 * LEDGER_CONNECTION_FAILED.
 *
 * Every item carries a key for all attempts (the caller's, or a generated
 * one), so the whole batch is retried like a single posting after a lost
 * connection, 40001 or 40P01: the items a lost attempt committed replay with
 * their original results, and items it refused are evaluated afresh.  When
 * the attempts run out after a lost reply every item is
 * LEDGER_UNKNOWN_OUTCOME: send the same items again with their keys.
 *
 * The return value is LEDGER_OK when every item is LEDGER_OK, otherwise the
 * status of the first item that is not; the connection's error fields are
 * that item's (for a whole-call error: the server's, with its hint).
 * ledger_last_key is left unchanged.
 */
extern LEDGER_MUST_CHECK LedgerStatus ledger_post_batch(LedgerConn *conn, LedgerPosting *items,
									  size_t n);

#ifdef __cplusplus
}
#endif

#endif							/* LEDGER_CLIENT_H */
