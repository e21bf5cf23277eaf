/*-------------------------------------------------------------------------
 *
 * server_batch.c
 *	  ledger_post_batch: many debits or many transfers in one statement,
 *	  one transaction and one commit, over the extension's
 *	  ledger_debit_batch and ledger_transfer_batch.
 *
 * The items go to the server as the arrays of one prepared statement and
 * come back as one row per item: its ordinal, 'ok' or the condition name
 * of the rule it breaks, and its result.  The statement is one implicit
 * transaction, so the items that are 'ok' commit together or not at all.
 * That makes the batch one request for the retry policy (retry.c): it is
 * sent again whole, with the keys of its first attempt, and the items a
 * lost attempt committed replay instead of applying twice.
 *
 * The arrays are sent in binary format (array_recv): a header, then each
 * element as its length and its bytes, a NULL as length -1.  Nothing is
 * quoted or escaped, so a name or key may hold any character, commas,
 * braces, quotes, backslashes and the word NULL included, and a multibyte
 * client encoding whose second bytes look like a backslash (SJIS, BIG5)
 * cannot be misread; the server still converts each element from the
 * client encoding.  A NULL pointer is a NULL element, which the server
 * refuses for the whole call (22004), as it refuses a NULL argument of a
 * single posting.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"

/* Element types of the arrays, as pg_type knows them (array_recv checks). */
#define INT8_OID	20
#define TEXT_OID	25

/* Binary array header: ndim, flags, element type, one dimension's size and lower bound. */
#define ARRAY_HEADER_SIZE 20

/*
 * The most bytes the parameters of one batch may take: the server refuses
 * a message over 1 GB by closing the connection, which would look like a
 * lost reply.
 */
#define MAX_BATCH_BYTES (((size_t) 1 << 30) - ((size_t) 1 << 20))

/* One binary parameter. */
typedef struct Param
{
	unsigned char *data;
	size_t		size;
} Param;

static void
put_uint32(unsigned char **p, uint32_t v)
{
	(*p)[0] = (unsigned char) (v >> 24);
	(*p)[1] = (unsigned char) (v >> 16);
	(*p)[2] = (unsigned char) (v >> 8);
	(*p)[3] = (unsigned char) v;
	*p += 4;
}

static void
put_header(unsigned char **p, bool has_null, uint32_t element_type, size_t n)
{
	put_uint32(p, 1);			/* one dimension */
	put_uint32(p, has_null ? 1 : 0);
	put_uint32(p, element_type);
	put_uint32(p, (uint32_t) n);
	put_uint32(p, 1);			/* lower bound */
}

/* The string a text[] parameter takes from an item. */
typedef const char *(*ItemField) (const LedgerPosting *item);

static const char *
field_account(const LedgerPosting *item)
{
	return item->account;
}

static const char *
field_to_account(const LedgerPosting *item)
{
	return item->to_account;
}

static const char *
field_key(const LedgerPosting *item)
{
	return item->key;
}

/*
 * A binary text[] of one field of every item.  Adds its size to *total;
 * returns false when memory ran out or *total would pass MAX_BATCH_BYTES
 * (then param->data is NULL and *total is over the limit).
 */
static bool
text_array(const LedgerPosting *items, size_t n, ItemField field, Param *param,
		   size_t *total)
{
	size_t		size = ARRAY_HEADER_SIZE;
	bool		has_null = false;
	unsigned char *p;
	size_t		i;

	param->data = NULL;
	for (i = 0; i < n; i++)
	{
		const char *s = field(&items[i]);
		size_t		len = s != NULL ? strlen(s) : 0;

		has_null |= (s == NULL);
		if (len > MAX_BATCH_BYTES || size + 4 + len > MAX_BATCH_BYTES - *total)
		{
			*total = SIZE_MAX;
			return false;
		}
		size += 4 + len;
	}
	*total += size;
	param->size = size;
	param->data = p = malloc(size);
	if (p == NULL)
		return false;
	put_header(&p, has_null, TEXT_OID, n);
	for (i = 0; i < n; i++)
	{
		const char *s = field(&items[i]);
		size_t		len;

		if (s == NULL)
		{
			put_uint32(&p, UINT32_MAX);	/* -1: NULL */
			continue;
		}
		len = strlen(s);
		put_uint32(&p, (uint32_t) len);
		memcpy(p, s, len);
		p += len;
	}
	return true;
}

/* A binary bigint[] of the amounts; like text_array. */
static bool
amount_array(const LedgerPosting *items, size_t n, Param *param, size_t *total)
{
	size_t		size;
	unsigned char *p;
	size_t		i;

	param->data = NULL;
	if (n > (MAX_BATCH_BYTES - ARRAY_HEADER_SIZE) / 12 ||
		ARRAY_HEADER_SIZE + 12 * n > MAX_BATCH_BYTES - *total)
	{
		*total = SIZE_MAX;
		return false;
	}
	size = ARRAY_HEADER_SIZE + 12 * n;
	*total += size;
	param->size = size;
	param->data = p = malloc(size);
	if (p == NULL)
		return false;
	put_header(&p, false, INT8_OID, n);
	for (i = 0; i < n; i++)
	{
		uint64_t	v = (uint64_t) items[i].amount;

		put_uint32(&p, 8);
		put_uint32(&p, (uint32_t) (v >> 32));
		put_uint32(&p, (uint32_t) v);
	}
	return true;
}

/* The status an item's status text names; LEDGER_SERVER_ERROR if none. */
static LedgerStatus
status_of_name(const char *name)
{
	int			s;

	/* the item statuses are the ones that mirror a SQLSTATE */
	for (s = LEDGER_OK; s <= LEDGER_OBJECT_NOT_IN_PREREQUISITE_STATE; s++)
		if (strcmp(name, ledger_status_name((LedgerStatus) s)) == 0)
			return (LedgerStatus) s;
	return LEDGER_SERVER_ERROR;
}

static bool
parse_int64(const char *text, int64_t *out)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return false;
	*out = (int64_t) v;
	return true;
}

/*
 * An item the reply does not account for.  The batch committed (its reply
 * came), but what became of this item cannot be read: its outcome is
 * unknown, and asking again with its key tells.
 */
static void
item_unexpected(LedgerConn *conn, LedgerPosting *item, const char *what)
{
	char		buf[256];
	char		advice[512];

	snprintf(buf, sizeof(buf), "unexpected reply from the server: %s", what);
	ledger__set_error(conn, buf, NULL, NULL, NULL);
	snprintf(advice, sizeof(advice), "send the item again with its key (%s)", item->key);
	item->status = ledger__unknown_outcome(conn, "the batch", advice);
	item->result = 0;
	item->sqlstate = NULL;
	item->detail = NULL;
	item->message = ledger_error_message(conn);
}

/*
 * One row of the reply: (ordinal, status, result).  Returns false when the
 * row names no item of the batch, or one that already had its row.
 */
static bool
take_row(LedgerConn *conn, const PGresult *res, int row, LedgerPosting *items,
		 size_t n, bool *answered)
{
	int64_t		ordinal;
	LedgerPosting *item;
	const char *name;
	LedgerStatus status;
	char		buf[320];
	const char *message;

	if (PQgetisnull(res, row, 0) || !parse_int64(PQgetvalue(res, row, 0), &ordinal) ||
		ordinal < 1 || (uint64_t) ordinal > (uint64_t) n || answered[ordinal - 1])
		return false;
	item = &items[ordinal - 1];
	answered[ordinal - 1] = true;

	if (PQgetisnull(res, row, 1))
	{
		item_unexpected(conn, item, "an item without a status");
		return true;
	}
	name = PQgetvalue(res, row, 1);
	status = status_of_name(name);
	if (status == LEDGER_OK)
	{
		if (PQgetisnull(res, row, 2) || !parse_int64(PQgetvalue(res, row, 2), &item->result))
			item_unexpected(conn, item, "an ok item without a result");
		else
		{
			item->status = LEDGER_OK;
			item->sqlstate = NULL;
			item->detail = NULL;
			item->message = "";
		}
		return true;
	}

	/* named by its index in the caller's array */
	if (status == LEDGER_SERVER_ERROR)
		snprintf(buf, sizeof(buf), "items[%" PRId64 "]: unexpected status \"%.200s\" from the server",
				 ordinal - 1, name);
	else
		snprintf(buf, sizeof(buf), "items[%" PRId64 "] refused: %s", ordinal - 1, name);
	message = ledger__own(conn, buf);
	item->status = status;
	item->result = 0;
	item->sqlstate = ledger__sqlstate_of_status(status);
	item->detail = NULL;
	item->message = message != NULL ? message : "";
	return true;
}

/* Give every item the outcome of the reply. */
static void
take_reply(LedgerConn *conn, const PGresult *res, LedgerPosting *items, size_t n)
{
	bool	   *answered = calloc(n, sizeof(bool));
	size_t		i;
	int			row;

	if (answered == NULL)
	{
		/* the batch committed; only its reply is lost on us */
		for (i = 0; i < n; i++)
			item_unexpected(conn, &items[i], "out of memory while reading it");
		return;
	}
	if (PQnfields(res) == 3)
		for (row = 0; row < PQntuples(res); row++)
			(void) take_row(conn, res, row, items, n, answered);
	for (i = 0; i < n; i++)
		if (!answered[i])
			item_unexpected(conn, &items[i], "no row for this item");
	free(answered);
}

/* A whole-call failure: every item gets the connection's error. */
static void
fail_all(LedgerConn *conn, LedgerPosting *items, size_t n, LedgerStatus status)
{
	const char *message = ledger__own(conn, ledger_error_message(conn));
	const char *sqlstate = ledger__own(conn, ledger_error_sqlstate(conn));
	const char *detail = ledger__own(conn, ledger_error_detail(conn));
	size_t		i;

	for (i = 0; i < n; i++)
	{
		items[i].status = status;
		items[i].result = 0;
		items[i].sqlstate = sqlstate;
		items[i].detail = detail;
		items[i].message = message != NULL ? message : "";
	}
}

/* Check the ops: all debits or all transfers.  NULL when they are. */
static const char *
check_ops(const LedgerPosting *items, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		if (items[i].op != LEDGER_OP_CREDIT && items[i].op != LEDGER_OP_DEBIT &&
			items[i].op != LEDGER_OP_TRANSFER)
			return "ledger_post_batch: an item has an invalid op";
	for (i = 0; i < n; i++)
		if (items[i].op == LEDGER_OP_CREDIT)
			return "ledger_post_batch: credits cannot be posted in a server batch"
				" (only debits or transfers); use ledger_batch or ledger_credit";
	for (i = 1; i < n; i++)
		if (items[i].op != items[0].op)
			return "ledger_post_batch: all items must have the same op"
				" (all debits or all transfers)";
	return NULL;
}

static LedgerStatus
post_batch(LedgerConn *conn, LedgerPosting *items, size_t n)
{
	bool		is_transfer;
	Param		params[4];
	const char *values[4];
	int			lengths[4];
	int			formats[4];
	int			nparams = 0;
	size_t		total = 0;
	bool		built;
	const char *problem;
	PGresult   *res;
	LedgerStatus status;
	LedgerStatus result = LEDGER_OK;
	int			p;

	if (!ledger__batch_begin(conn, items, n, "ledger_post_batch", &result))
		return result;
	if ((problem = check_ops(items, n)) != NULL)
		return ledger__batch_malformed(conn, items, n, problem);
	if (n > INT_MAX)
		return ledger__batch_malformed(conn, items, n, "ledger_post_batch: too many items");
	is_transfer = items[0].op == LEDGER_OP_TRANSFER;

	/* one key per item for all attempts of the batch */
	if ((result = ledger__batch_keys(conn, items, n)) != LEDGER_OK)
		return result;

	/* (accounts, amounts, keys) or (from, to, amounts, keys) */
	built = text_array(items, n, field_account, &params[nparams++], &total);
	if (built && is_transfer)
		built = text_array(items, n, field_to_account, &params[nparams++], &total);
	if (built)
		built = amount_array(items, n, &params[nparams++], &total);
	if (built)
		built = text_array(items, n, field_key, &params[nparams++], &total);
	if (!built)
	{
		for (p = 0; p < nparams; p++)
			free(params[p].data);
		return ledger__batch_malformed(conn, items, n, total == SIZE_MAX
									   ? "ledger_post_batch: the batch is too large for one statement"
									   " (over 1 GB); split it"
									   : "out of memory");
	}
	for (p = 0; p < nparams; p++)
	{
		values[p] = (const char *) params[p].data;
		lengths[p] = (int) params[p].size;
		formats[p] = 1;
	}
	status = ledger__call_params(conn, is_transfer ? LEDGER_STMT_TRANSFER_BATCH
								 : LEDGER_STMT_DEBIT_BATCH,
								 values, lengths, formats, true, &res);
	for (p = 0; p < nparams; p++)
		free(params[p].data);
	if (status != LEDGER_OK)
	{
		fail_all(conn, items, n, status);
		return status;
	}
	take_reply(conn, res, items, n);
	PQclear(res);
	return ledger__batch_status(conn, items, n);
}

#ifdef LEDGER_SHARED
/*
 * The shared library exports ledger_post_batch in node LEDGER_1.1, where
 * it belongs, and also in LEDGER_1, where libledger 1.1.0 exported it, so
 * that programs linked against 1.1.0 keep running (exports.txt).
 */
extern LedgerStatus ledger__post_batch(LedgerConn *conn, LedgerPosting *items, size_t n);
extern LedgerStatus ledger__post_batch_1_1_0(LedgerConn *conn, LedgerPosting *items, size_t n);
__asm__(".symver ledger__post_batch, ledger_post_batch@@LEDGER_1.1");
__asm__(".symver ledger__post_batch_1_1_0, ledger_post_batch@LEDGER_1");

LedgerStatus
ledger__post_batch(LedgerConn *conn, LedgerPosting *items, size_t n)
{
	return post_batch(conn, items, n);
}

LedgerStatus
ledger__post_batch_1_1_0(LedgerConn *conn, LedgerPosting *items, size_t n)
{
	return post_batch(conn, items, n);
}
#else
LedgerStatus
ledger_post_batch(LedgerConn *conn, LedgerPosting *items, size_t n)
{
	return post_batch(conn, items, n);
}
#endif
