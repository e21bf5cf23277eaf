/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Many independent postings in one round trip: libpq pipeline mode.
 *
 * Every item is sent as Bind/Execute followed by its own Sync
 * (PQpipelineSync), which makes each item an implicit transaction of its
 * own: it commits at its Sync, and an error aborts only the work since the
 * previous Sync, i.e. that item.  All items are sent before the first reply
 * is read, so the whole batch costs one round trip (plus one per statement
 * kind the first time this connection sees it, to prepare it).
 *
 * An item's answer is complete only at its Sync: its row arrives first,
 * and its commit -- which can still fail (40001 under SERIALIZABLE, a
 * deferred constraint) or warn (a cancelled wait for a synchronous
 * standby) -- happens after.  So an item is judged (outcome.c) on
 * everything up to its PGRES_PIPELINE_SYNC, never on its row alone.
 *
 * The connection is nonblocking: the sends only queue, and reading the
 * replies (io.c) sends what is queued meanwhile, so a large batch cannot
 * deadlock with a server blocked writing replies we have not read yet,
 * and no wait outlasts the call's deadline.
 *
 * If the connection is lost mid-batch, the items that already have an
 * answer keep it; the others are retried after a reconnect, with their
 * keys, like single calls.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"

#define INT64_BUFSIZE 24

/* Retry bookkeeping per item. */
typedef struct ItemState
{
	bool		pending;		/* no final answer yet */
	bool		maybe_applied;	/* an attempt may have committed (outcome.c) */
} ItemState;

static LedgerStmt
stmt_of(LedgerOp op)
{
	switch (op)
	{
		case LEDGER_OP_CREDIT:
			return LEDGER_STMT_CREDIT;
		case LEDGER_OP_DEBIT:
			return LEDGER_STMT_DEBIT;
		case LEDGER_OP_TRANSFER:
			return LEDGER_STMT_TRANSFER;
	}
	return LEDGER_N_STMTS;
}

/* Give an item the connection's current error as its own. */
void
ledger__item_take_error(LedgerConn *conn, LedgerPosting *item, LedgerStatus status)
{
	const char *message = ledger__own(conn, ledger_error_message(conn));

	item->status = status;
	item->sqlstate = ledger__own(conn, ledger_error_sqlstate(conn));
	item->detail = ledger__own(conn, ledger_error_detail(conn));
	item->message = message != NULL ? message : "";
}

static void
item_ok(LedgerPosting *item)
{
	item->status = LEDGER_OK;
	item->sqlstate = NULL;
	item->detail = NULL;
	item->message = "";
}

/* An item whose outcome is unknown: its key is what makes asking again safe. */
static void
item_unknown(LedgerConn *conn, LedgerPosting *item)
{
	char		advice[512];

	snprintf(advice, sizeof(advice), "retry with the same idempotency key (%s) and the"
			 " same arguments; a retry without it may post twice", item->key);
	ledger__item_take_error(conn, item,
							ledger__unknown_outcome(conn, "the item", advice));
}

/* After an attempt of an item: final, retried, or unknown (outcome.c). */
static void
settle_item(LedgerConn *conn, LedgerPosting *item, ItemState *state,
			LedgerAttempt kind, LedgerStatus status)
{
	switch (ledger__next(kind, status, conn->err_sqlstate, true, &state->maybe_applied))
	{
		case NEXT_DONE:
			state->pending = false;
			if (status == LEDGER_OK)
				item_ok(item);
			else
				ledger__item_take_error(conn, item, status);
			break;
		case NEXT_UNKNOWN:
			state->pending = false;
			item_unknown(conn, item);
			break;
		case NEXT_RETRY:
			/* what this attempt got, until the next one */
			ledger__item_take_error(conn, item, status);
			break;
	}
}

static bool
parse_result(const PGresult *res, int64_t *out)
{
	const char *text;
	char	   *end;
	long long	v;

	if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
		return false;
	text = PQgetvalue(res, 0, 0);
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return false;
	*out = (int64_t) v;
	return true;
}

static bool
send_item(LedgerConn *conn, const LedgerPosting *item)
{
	char		amount[INT64_BUFSIZE];
	const char *values[4];
	LedgerStmt	stmt = stmt_of(item->op);
	int			n = 0;

	snprintf(amount, sizeof(amount), "%" PRId64, item->amount);
	values[n++] = item->account;
	if (item->op == LEDGER_OP_TRANSFER)
		values[n++] = item->to_account;
	values[n++] = amount;
	values[n++] = item->key;
	/* libpq copies the parameters into its output buffer right here */
	return ledger__send(conn, stmt, n, values, NULL, NULL);
}

/* Results other than the Sync's that one item may produce, at most. */
#define MAX_ITEM_RESULTS 8

/*
 * Read the answer of one item, up to and including its Sync, and settle
 * it.  Its answer is its statement's result, unless its commit failed
 * after the row was sent: that error wins.  Returns false when the
 * connection was lost or the time ran out before the Sync; the caller
 * settles the item then.  *reconnect is set when this server cannot take
 * the item now (outcome.c).
 */
static bool
read_item(LedgerConn *conn, LedgerPosting *item, ItemState *state, bool *reconnect)
{
	PGresult   *res;
	PGresult   *answer = NULL;
	bool		synced = false;
	int			results = 0;
	LedgerStatus status;
	LedgerAttempt kind;

	conn->warned = false;
	while (!synced && results++ < MAX_ITEM_RESULTS && ledger__next_result(conn, &res))
	{
		if (res == NULL)
			continue;			/* the end of the statement's results */
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC)
		{
			synced = true;
			PQclear(res);
		}
		else if (answer == NULL ||
				 (PQresultStatus(res) == PGRES_FATAL_ERROR &&
				  PQresultStatus(answer) != PGRES_FATAL_ERROR))
		{
			PQclear(answer);
			answer = res;
		}
		else
			PQclear(res);
		if (PQstatus(conn->pg) == CONNECTION_BAD)
			break;
	}
	if (!synced)
	{
		if (answer != NULL && !conn->out_of_time)
			ledger__set_error_from_result(conn, answer);
		PQclear(answer);
		return false;
	}

	kind = ledger__classify(conn, answer, true, &status);
	if (kind == ATTEMPT_DONE && status == LEDGER_OK && !parse_result(answer, &item->result))
	{
		/* it committed, but what it committed cannot be read */
		ledger__set_error(conn, "unexpected reply from the server: expected one value",
						  NULL, NULL, NULL);
		state->pending = false;
		item_unknown(conn, item);
	}
	else
		settle_item(conn, item, state, kind, status);
	*reconnect |= ledger__needs_new_connection(conn, kind);
	PQclear(answer);
	return true;
}

/*
 * One round: send every pending item, then read every answer.  Items sent
 * and not answered (the connection was lost, the time ran out) may have
 * committed; items not sent stay pending.  The connection is dropped when
 * it must be replaced.
 */
static void
run_round(LedgerConn *conn, LedgerPosting *items, ItemState *states, size_t n,
		  size_t *sent)
{
	size_t		n_sent = 0;
	size_t		n_read;
	size_t		unsent = n;		/* the first item that did not go out */
	size_t		i;
	bool		reconnect = false;

	if (!PQenterPipelineMode(conn->pg))
		unsent = 0;
	for (i = 0; i < n && unsent == n; i++)
	{
		if (!states[i].pending)
			continue;
		if (!send_item(conn, &items[i]))
			unsent = i;			/* not queued: it never went out */
		else
		{
			/* without its Sync it cannot commit; wait for its answer anyway */
			sent[n_sent++] = i;
			if (PQpipelineSync(conn->pg) != 1)
				unsent = i + 1;
		}
	}

	/*
	 * Read the answers to what was sent, even after a failed send: a reply
	 * already received is a definitive answer worth keeping.
	 */
	for (n_read = 0; n_read < n_sent; n_read++)
		if (!read_item(conn, &items[sent[n_read]], &states[sent[n_read]], &reconnect))
			break;
	if ((n_read < n_sent || unsent < n) && !conn->out_of_time)
		ledger__set_connection_error(conn, "connection lost during the batch");
	for (i = n_read; i < n_sent; i++)
		settle_item(conn, &items[sent[i]], &states[sent[i]], ATTEMPT_RETRY_LOST,
					LEDGER_CONNECTION_FAILED);
	for (i = unsent; i < n; i++)
		if (states[i].pending)
			ledger__item_take_error(conn, &items[i], LEDGER_CONNECTION_FAILED);

	if (n_read < n_sent || unsent < n || reconnect || !PQexitPipelineMode(conn->pg))
		ledger__drop_connection(conn);
}

/* Make sure every statement the pending items need is prepared. */
static LedgerAttempt
prepare_all(LedgerConn *conn, const LedgerPosting *items, const ItemState *states,
			size_t n, LedgerStatus *status)
{
	size_t		i;

	*status = LEDGER_OK;
	for (i = 0; i < n; i++)
	{
		LedgerAttempt kind;

		if (!states[i].pending)
			continue;
		kind = ledger__ensure_prepared(conn, stmt_of(items[i].op), status);
		if (kind != ATTEMPT_DONE || *status != LEDGER_OK)
			return kind;
	}
	return ATTEMPT_DONE;
}

/* Refuse a whole batch before anything is sent: every item gets the message. */
LedgerStatus
ledger__batch_malformed(LedgerConn *conn, LedgerPosting *items, size_t n,
						const char *message)
{
	size_t		i;

	ledger__set_error(conn, message, NULL, NULL, NULL);
	for (i = 0; i < n; i++)
	{
		items[i].status = LEDGER_CLIENT_ERROR;
		items[i].result = 0;
		items[i].key = NULL;
		items[i].sqlstate = NULL;
		items[i].detail = NULL;
		items[i].message = ledger_error_message(conn);
	}
	return LEDGER_CLIENT_ERROR;
}

/*
 * The checks both batch calls start with.  Returns false, with the call's
 * status in *status, when the call is over before anything is sent: no
 * handle, an empty batch, no items, or a handle with invalid options.
 */
bool
ledger__batch_begin(LedgerConn *conn, LedgerPosting *items, size_t n,
					const char *function, LedgerStatus *status)
{
	char		message[128];

	*status = LEDGER_CLIENT_ERROR;
	if (conn == NULL)
		return false;
	ledger__begin_call(conn);
	if (n == 0)
	{
		*status = LEDGER_OK;
		return false;
	}
	if (items == NULL)
	{
		snprintf(message, sizeof(message), "%s: items must not be NULL", function);
		ledger__set_error(conn, message, NULL, NULL, NULL);
		return false;
	}
	if (conn->retry_attempts < 1)
	{
		*status = ledger__batch_malformed(conn, items, n,
										  "connection handle was created with invalid options");
		return false;
	}
	*status = LEDGER_OK;
	return true;
}

/*
 * Fix every item's key for all attempts (the caller's, which may be the
 * key this connection reported for it in the previous call, or a new one)
 * and clear its out fields.  LEDGER_OK, or the whole batch refused.
 */
LedgerStatus
ledger__batch_keys(LedgerConn *conn, LedgerPosting *items, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		char		generated[LEDGER_KEY_BUFSIZE];
		const char *key = items[i].idempotency_key;

		if (key == NULL)
		{
			if (!ledger__generate_key(generated, sizeof(generated)))
				return ledger__batch_malformed(conn, items, n,
											   "could not read random bytes for an idempotency key");
			key = generated;
		}
		items[i].key = ledger__own(conn, key);
		if (items[i].key == NULL)
			return ledger__batch_malformed(conn, items, n, "out of memory");
		items[i].status = LEDGER_CONNECTION_FAILED;
		items[i].result = 0;
		items[i].sqlstate = NULL;
		items[i].detail = NULL;
		items[i].message = "";
	}
	return LEDGER_OK;
}

/*
 * The call's status: LEDGER_OK, or the status of the first item that is
 * not, whose error fields become the connection's.
 */
LedgerStatus
ledger__batch_status(LedgerConn *conn, const LedgerPosting *items, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		if (items[i].status != LEDGER_OK)
		{
			ledger__set_error(conn, items[i].message, items[i].sqlstate,
							  items[i].detail, NULL);
			return items[i].status;
		}
	ledger__set_error(conn, NULL, NULL, NULL, NULL);
	return LEDGER_OK;
}

LedgerStatus
ledger_batch(LedgerConn *conn, LedgerPosting *items, size_t n)
{
	ItemState  *states;
	size_t	   *sent;
	size_t		i;
	int			attempt;
	bool		pending = true;
	LedgerStatus result = LEDGER_OK;

	if (!ledger__batch_begin(conn, items, n, "ledger_batch", &result))
		return result;
	for (i = 0; i < n; i++)
		if (stmt_of(items[i].op) == LEDGER_N_STMTS)
			return ledger__batch_malformed(conn, items, n, "ledger_batch: an item has an invalid op");
	if ((result = ledger__batch_keys(conn, items, n)) != LEDGER_OK)
		return result;

	states = calloc(n, sizeof(ItemState));
	sent = calloc(n, sizeof(size_t));
	if (states == NULL || sent == NULL)
	{
		free(states);
		free(sent);
		return ledger__batch_malformed(conn, items, n, "out of memory");
	}
	for (i = 0; i < n; i++)
		states[i].pending = true;

	for (attempt = 1; attempt <= conn->retry_attempts && pending; attempt++)
	{
		LedgerStatus status;
		LedgerAttempt kind = ATTEMPT_RETRY_NOT_SENT;

		if (attempt > 1 && !ledger__backoff(conn, attempt))
			break;
		conn->last_attempts = attempt;

		if (ledger__ensure_connected(conn))
		{
			kind = prepare_all(conn, items, states, n, &status);
			if (kind == ATTEMPT_DONE && status == LEDGER_OK)
				run_round(conn, items, states, n, sent);
			else if (kind == ATTEMPT_DONE)
			{
				/* e.g. the extension is missing: every pending item gets it */
				for (i = 0; i < n; i++)
					if (states[i].pending)
						settle_item(conn, &items[i], &states[i], kind, status);
			}
			else
				ledger__drop_connection(conn);
		}
		if (kind != ATTEMPT_DONE)
		{
			/* nothing was sent this time: the pending items carry why */
			for (i = 0; i < n; i++)
				if (states[i].pending)
					ledger__item_take_error(conn, &items[i], LEDGER_CONNECTION_FAILED);
		}

		pending = false;
		for (i = 0; i < n; i++)
			pending |= states[i].pending;
		if (conn->out_of_time)
			break;
	}

	/* out of attempts or time: what is still pending ends here */
	for (i = 0; i < n; i++)
		if (states[i].pending && states[i].maybe_applied)
			item_unknown(conn, &items[i]);

	free(states);
	free(sent);
	return ledger__batch_status(conn, items, n);
}
