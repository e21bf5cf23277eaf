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
 * The sends run in blocking mode: when the socket is full, libpq waits for
 * read-or-write readiness and reads the server's replies into its buffer
 * meanwhile (pqSendSome), so a large batch cannot deadlock with a server
 * that is blocked writing replies we have not read yet.
 *
 * If the connection is lost mid-batch, the items that already have an
 * answer keep it; the others are retried after a reconnect, with their
 * keys, like single calls (retry.c).
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
	bool		pending;		/* no definitive answer yet */
	bool		maybe_applied;	/* sent at least once and then lost */
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
	return PQsendQueryPrepared(conn->pg, ledger__stmt_name(stmt), n, values,
							   NULL, NULL, 0) == 1;
}

/*
 * Read the answer of one item: its result, the NULL that ends it, and the
 * PGRES_PIPELINE_SYNC of its own Sync.  Returns false when the connection
 * was lost (the item stays pending).
 */
static bool
read_item(LedgerConn *conn, LedgerPosting *item, ItemState *state)
{
	PGresult   *res = PQgetResult(conn->pg);
	LedgerStatus status;
	LedgerAttempt kind;

	if (res == NULL)
		return false;
	kind = ledger__classify(conn, res, &status);
	if (kind == ATTEMPT_RETRY_LOST)
	{
		PQclear(res);
		return false;
	}
	if (kind == ATTEMPT_DONE && status == LEDGER_OK)
	{
		if (parse_result(res, &item->result))
		{
			item->status = LEDGER_OK;
			item->sqlstate = NULL;
			item->detail = NULL;
			item->message = "";
		}
		else
		{
			ledger__set_error(conn, "unexpected reply from the server: expected one value",
							  NULL, NULL, NULL);
			ledger__item_take_error(conn, item, LEDGER_SERVER_ERROR);
		}
		state->pending = false;
	}
	else
	{
		/*
		 * A refusal is final.  40001/40P01 was rolled back and stays pending
		 * for the next round; whether an earlier lost attempt committed is
		 * still open, so maybe_applied is left as it is.
		 */
		ledger__item_take_error(conn, item, status);
		state->pending = (kind == ATTEMPT_RETRY_ROLLED_BACK);
	}
	PQclear(res);

	/* a single-statement item has exactly one result, then its Sync */
	res = PQgetResult(conn->pg);
	if (res != NULL)
	{
		PQclear(res);
		return false;
	}
	res = PQgetResult(conn->pg);
	if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
	{
		PQclear(res);
		return false;
	}
	PQclear(res);
	return true;
}

/*
 * One round: send every pending item, then read every answer.  Returns
 * false when the connection was lost (and has been dropped), with the
 * connection's error set.
 */
static bool
run_round(LedgerConn *conn, LedgerPosting *items, ItemState *states, size_t n,
		  size_t *sent)
{
	size_t		n_sent = 0;
	size_t		n_read = 0;
	size_t		i;
	bool		ok = true;

	if (!PQenterPipelineMode(conn->pg))
	{
		ledger__set_connection_error(conn, "could not enter pipeline mode");
		ledger__drop_connection(conn);
		return false;
	}
	for (i = 0; i < n && ok; i++)
	{
		if (!states[i].pending)
			continue;
		items[i].status = LEDGER_CONNECTION_FAILED;
		items[i].sqlstate = NULL;
		items[i].detail = NULL;
		items[i].message = "";
		if (!send_item(conn, &items[i]))
			ok = false;			/* without its Sync it can never commit */
		else
		{
			sent[n_sent++] = i;
			ok = PQpipelineSync(conn->pg) == 1;
		}
	}

	/*
	 * Read the answers to what was sent, even after a failed send: a reply
	 * already received is a definitive answer worth keeping.
	 */
	for (n_read = 0; n_read < n_sent; n_read++)
		if (!read_item(conn, &items[sent[n_read]], &states[sent[n_read]]))
		{
			ok = false;
			break;
		}

	/* sent and not answered: it may have committed */
	for (i = n_read; i < n_sent; i++)
		states[sent[i]].maybe_applied = true;

	if (ok && PQexitPipelineMode(conn->pg))
		return true;
	ledger__set_connection_error(conn, "connection lost during the batch");
	ledger__drop_connection(conn);
	return false;
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

LedgerStatus
ledger_batch(LedgerConn *conn, LedgerPosting *items, size_t n)
{
	ItemState  *states;
	size_t	   *sent;
	size_t		i;
	int			attempt;
	bool		pending;
	LedgerStatus result = LEDGER_OK;

	if (!ledger__batch_begin(conn, items, n, "ledger_batch", &result))
		return result;
	for (i = 0; i < n; i++)
		if (stmt_of(items[i].op) == LEDGER_N_STMTS)
			return ledger__batch_malformed(conn, items, n, "ledger_batch: an item has an invalid op");

	states = calloc(n, sizeof(ItemState));
	sent = calloc(n, sizeof(size_t));
	if (states == NULL || sent == NULL)
	{
		free(states);
		free(sent);
		return ledger__batch_malformed(conn, items, n, "out of memory");
	}

	/* one key per item for all its attempts */
	for (i = 0; i < n; i++)
	{
		char		generated[LEDGER_GENERATED_KEY_LEN + 1];
		const char *key = items[i].idempotency_key;

		if (key == NULL)
		{
			if (!ledger__generate_key(generated, sizeof(generated)))
			{
				free(states);
				free(sent);
				return ledger__batch_malformed(conn, items, n,
								 "could not read random bytes for an idempotency key");
			}
			key = generated;
		}
		items[i].key = ledger__own(conn, key);
		if (items[i].key == NULL)
		{
			free(states);
			free(sent);
			return ledger__batch_malformed(conn, items, n, "out of memory");
		}
		items[i].status = LEDGER_CONNECTION_FAILED;
		items[i].result = 0;
		items[i].sqlstate = NULL;
		items[i].detail = NULL;
		items[i].message = "";
		states[i].pending = true;
	}

	pending = true;
	for (attempt = 1; attempt <= conn->retry_attempts && pending; attempt++)
	{
		LedgerStatus status;
		LedgerAttempt kind;
		bool		lost;

		conn->last_attempts = attempt;
		if (attempt > 1)
			ledger__backoff(conn, attempt);

		lost = true;
		if (ledger__ensure_connected(conn))
		{
			kind = prepare_all(conn, items, states, n, &status);
			if (kind == ATTEMPT_DONE && status != LEDGER_OK)
			{
				/*
				 * E.g. the extension is missing: final for every pending
				 * item, except those an earlier round may have applied,
				 * which end as unknown below.
				 */
				for (i = 0; i < n; i++)
					if (states[i].pending && !states[i].maybe_applied)
					{
						ledger__item_take_error(conn, &items[i], status);
						states[i].pending = false;
					}
				break;
			}
			if (kind == ATTEMPT_DONE)
				lost = !run_round(conn, items, states, n, sent);
			else
				ledger__drop_connection(conn);
		}

		pending = false;
		for (i = 0; i < n; i++)
			if (states[i].pending)
			{
				/* unanswered items carry the connection's error */
				if (lost && items[i].status == LEDGER_CONNECTION_FAILED)
					ledger__item_take_error(conn, &items[i], LEDGER_CONNECTION_FAILED);
				pending = true;
			}
	}

	/* out of attempts: what is still pending ends as unknown or failed */
	for (i = 0; i < n; i++)
	{
		if (states[i].pending && states[i].maybe_applied)
		{
			char		buf[512];

			snprintf(buf, sizeof(buf),
					 "the outcome is unknown: the item was sent but no answer came back"
					 " after %d attempts; retry with the same idempotency key (%s)",
					 conn->last_attempts, items[i].key);
			ledger__set_error(conn, buf, NULL, NULL, NULL);
			ledger__item_take_error(conn, &items[i], LEDGER_UNKNOWN_OUTCOME);
		}
		if (items[i].status != LEDGER_OK && result == LEDGER_OK)
		{
			result = items[i].status;
			ledger__set_error(conn, items[i].message, items[i].sqlstate,
							  items[i].detail, NULL);
		}
	}
	if (result == LEDGER_OK)
		ledger__set_error(conn, NULL, NULL, NULL, NULL);

	free(states);
	free(sent);
	return result;
}
