/*-------------------------------------------------------------------------
 *
 * ledger_cli.c
 *	  The `ledger` command: one libledger call per invocation.
 *
 *	  ledger [-d CONNINFO] [--json] [--retries N] COMMAND ARGS...
 *
 * (batch-debit is the one command with many postings: ledger_post_batch.)
 *
 * The exit status tells what happened (see exit_help below): 0 ok, 2 a
 * usage error, 3 verify found problems, and 10 + the LedgerStatus value
 * for every refusal or failure, so scripts can branch on it without
 * parsing text.  With --json one JSON object goes to stdout, also on
 * failure; otherwise results go to stdout and errors to stderr.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"

#define EXIT_INTERNAL 1
#define EXIT_USAGE 2
#define EXIT_PROBLEMS 3
#define EXIT_STATUS_BASE 10

typedef enum Command
{
	CMD_NONE,
	CMD_OPEN,
	CMD_CREDIT,
	CMD_DEBIT,
	CMD_TRANSFER,
	CMD_BALANCE,
	CMD_HISTORY,
	CMD_VERIFY,
	CMD_BATCH_DEBIT
} Command;

static const struct
{
	const char *name;
	Command		cmd;
	int			nargs;			/* positional arguments after the name;
								 * -1: one or more */
	const char *synopsis;
	const char *description;
}			commands[] =
{
	{"open", CMD_OPEN, 1,
		"ledger open ACCOUNT [--currency CUR] [--min-balance N | --no-floor]",
		"Open ACCOUNT (currency default XXX, floor default 0) and print its id.\n"
		"Opening again with identical parameters prints the same id."},
	{"credit", CMD_CREDIT, 2,
		"ledger credit ACCOUNT AMOUNT [--key KEY]",
		"Add AMOUNT (minor units, > 0) to ACCOUNT and print the new balance."},
	{"debit", CMD_DEBIT, 2,
		"ledger debit ACCOUNT AMOUNT [--key KEY]",
		"Take AMOUNT (minor units, > 0) from ACCOUNT and print the new balance.\n"
		"Refused (exit 11) if the balance would go below the account's floor."},
	{"transfer", CMD_TRANSFER, 3,
		"ledger transfer FROM TO AMOUNT [--key KEY]",
		"Move AMOUNT from FROM to TO (same currency) and print the transfer id."},
	{"balance", CMD_BALANCE, 1,
		"ledger balance ACCOUNT",
		"Print the balance of ACCOUNT."},
	{"history", CMD_HISTORY, 1,
		"ledger history ACCOUNT [--limit N]",
		"Print the newest N (default 100) journal entries of ACCOUNT, newest\n"
		"first, one per line, tab-separated: entry_id, amount (debits negative),\n"
		"balance_after, transfer_id, idempotency_key, created_at (UTC);\n"
		"an empty field is NULL.  In the key, \\ prints as \\\\, tab, newline and\n"
		"carriage return as \\t, \\n and \\r, other control bytes as \\xHH."},
	{"verify", CMD_VERIFY, 0,
		"ledger verify",
		"Audit the whole ledger.  Prints \"ok\" and exits 0 when it is\n"
		"consistent; otherwise prints one \"account<TAB>problem\" line per\n"
		"problem and exits 3 (both fields escaped as in history)."},
	{"batch-debit", CMD_BATCH_DEBIT, -1,
		"ledger batch-debit ACCOUNT:AMOUNT... [--key KEY]",
		"Debit each ACCOUNT by its AMOUNT, in order, in one transaction and one\n"
		"commit (ledger_post_batch); the last ':' of an item separates ACCOUNT\n"
		"from AMOUNT.  A refused item changes nothing and does not stop the\n"
		"others.  Prints one line per item, tab-separated: account (escaped as in\n"
		"history), amount, status, new balance (empty unless ok).  Exits 0 when\n"
		"every item is ok, otherwise with the status of the first item that is\n"
		"not (its lines are printed all the same: the ok items were applied)."},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

typedef struct Args
{
	const char *conninfo;
	bool		json;
	int			retries;
	bool		help;
	Command		cmd;
	int			cmd_index;
	const char **pos;			/* argc entries */
	int			npos;
	const char *key;
	char		batch_key[300];	/* batch-debit: the prefix of the item keys */
	const char *currency;
	const char *min_balance;
	bool		no_floor;
	const char *limit;
} Args;

/* ---- help ---------------------------------------------------------------- */

static void
exit_help(FILE *out)
{
	int			s;

	fprintf(out,
			"\nExit status:\n"
			"   0  ok\n"
			"   1  internal error of the command itself (e.g. out of memory)\n"
			"   2  usage error (nothing was sent)\n"
			"   3  verify: the audit found problems\n");
	for (s = LEDGER_INSUFFICIENT_FUNDS; s <= LEDGER_CLIENT_ERROR; s++)
		fprintf(out, "  %2d  %s\n", EXIT_STATUS_BASE + s, ledger_status_name((LedgerStatus) s));
	fprintf(out,
			"  (10 + the LedgerStatus value.  After 23 unknown_outcome, run the\n"
			"  same command again with --key KEY, KEY as printed: it cannot apply twice.)\n");
}

static void
common_help(FILE *out)
{
	fprintf(out,
			"\nOptions (before or after the command):\n"
			"  -d, --dbname CONNINFO  libpq conninfo string or URI; default: the PG*\n"
			"                         environment variables\n"
			"  --json                 print one JSON object on stdout, also on failure\n"
			"                         (invalid UTF-8 bytes as \\udcXX)\n"
			"  --retries N            attempts per call, >= 1 (default %d)\n"
			"  -h, --help             help (for a command: ledger COMMAND --help)\n"
			"  --version              print the library version\n",
			LEDGER_DEFAULT_RETRY_ATTEMPTS);
}

static void
usage_all(FILE *out)
{
	size_t		i;

	fprintf(out, "ledger: post to and read the ledger of a PostgreSQL database.\n\n"
			"Usage: ledger [OPTIONS] COMMAND ARGS...\n\nCommands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].synopsis);
	fprintf(out, "\nAMOUNT is in minor units (cents).  Postings without --key get a\n"
			"generated idempotency key; an automatic retry never applies twice.\n");
	common_help(out);
	exit_help(out);
}

static void
usage_command(FILE *out, int i)
{
	fprintf(out, "Usage: %s\n\n%s\n", commands[i].synopsis, commands[i].description);
	if (commands[i].cmd == CMD_CREDIT || commands[i].cmd == CMD_DEBIT ||
		commands[i].cmd == CMD_TRANSFER)
		fprintf(out, "\n  --key KEY   idempotency key (1-255 bytes); the same KEY again returns\n"
				"              the original result and changes nothing\n");
	if (commands[i].cmd == CMD_BATCH_DEBIT)
		fprintf(out, "\n  --key KEY   item N gets the idempotency key KEY.N (default: a random\n"
				"              KEY); the same command with the same KEY again returns the\n"
				"              original results and changes nothing\n");
	if (commands[i].cmd == CMD_OPEN)
		fprintf(out, "\n  --currency CUR   ^[A-Z0-9_]{1,16}$ (default XXX)\n"
				"  --min-balance N  the floor, <= 0 (default 0: never negative)\n"
				"  --no-floor       no floor at all (a source of money)\n");
	if (commands[i].cmd == CMD_HISTORY)
		fprintf(out, "\n  --limit N   at most N entries (default 100)\n");
	common_help(out);
	exit_help(out);
}

#ifdef __GNUC__
static int	usage_error(const char *fmt,...) __attribute__((format(printf, 1, 2)));
#endif

static int
usage_error(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "ledger: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry \"ledger --help\".\n");
	return EXIT_USAGE;
}

/* ---- argument parsing ------------------------------------------------------ */

static bool
is_negative_number(const char *s)
{
	if (s[0] != '-' || s[1] == '\0')
		return false;
	for (s++; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static bool
parse_int64(const char *s, int64_t *out)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return false;
	*out = (int64_t) v;
	return true;
}

/*
 * Match "--name VALUE" or "--name=VALUE".  Returns 1 and advances *i when
 * matched, 0 when not this option, -1 when the value is missing.
 */
static int
option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
	size_t		len = strlen(name);
	const char *arg = argv[*i];

	if (strncmp(arg, name, len) != 0)
		return 0;
	if (arg[len] == '=')
	{
		*value = arg + len + 1;
		return 1;
	}
	if (arg[len] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*value = argv[++*i];
	return 1;
}

/* Returns 0 or an exit status. */
static int
parse_args(int argc, char **argv, Args *a)
{
	bool		options_done = false;
	int			i;

	memset(a, 0, sizeof(*a));
	a->cmd_index = -1;
	a->pos = calloc((size_t) argc, sizeof(const char *));
	if (a->pos == NULL)
	{
		fprintf(stderr, "ledger: out of memory\n");
		return EXIT_INTERNAL;
	}
	for (i = 1; i < argc; i++)
	{
		const char *arg = argv[i];
		const char *value;
		int			m;

		if (!options_done && arg[0] == '-' && arg[1] != '\0' && !is_negative_number(arg))
		{
			if (strcmp(arg, "--") == 0)
			{
				options_done = true;
				continue;
			}
			if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			{
				a->help = true;
				continue;
			}
			if (strcmp(arg, "--version") == 0)
			{
				int			v = ledger_library_version();

				printf("ledger (libledger) %d.%d.%d\n", v / 10000, v / 100 % 100, v % 100);
				exit(0);
			}
			if (strcmp(arg, "--json") == 0)
			{
				a->json = true;
				continue;
			}
			if (strcmp(arg, "--no-floor") == 0)
			{
				a->no_floor = true;
				continue;
			}
			if (strcmp(arg, "-d") == 0)
			{
				if (i + 1 >= argc)
					return usage_error("option %s needs a value", arg);
				a->conninfo = argv[++i];
				continue;
			}
#define OPTION(name, field) \
			if ((m = option_value(argc, argv, &i, name, &value)) != 0) \
			{ \
				if (m < 0) \
					return usage_error("option %s needs a value", name); \
				field = value; \
				continue; \
			}
			OPTION("--dbname", a->conninfo);
			OPTION("--key", a->key);
			OPTION("--currency", a->currency);
			OPTION("--min-balance", a->min_balance);
			OPTION("--limit", a->limit);
#undef OPTION
			if ((m = option_value(argc, argv, &i, "--retries", &value)) != 0)
			{
				int64_t		n;

				if (m < 0)
					return usage_error("option %s needs a value", "--retries");
				if (!parse_int64(value, &n) || n < 1 || n > 1000)
					return usage_error("--retries must be an integer from 1 to 1000, not \"%s\"", value);
				a->retries = (int) n;
				continue;
			}
			return usage_error("unknown option \"%s\"", arg);
		}

		if (a->cmd == CMD_NONE)
		{
			size_t		c;

			for (c = 0; c < N_COMMANDS; c++)
				if (strcmp(arg, commands[c].name) == 0)
				{
					a->cmd = commands[c].cmd;
					a->cmd_index = (int) c;
				}
			if (a->cmd == CMD_NONE)
				return usage_error("unknown command \"%s\"", arg);
			continue;
		}
		a->pos[a->npos++] = arg;
	}
	return 0;
}

/* ---- output ---------------------------------------------------------------- */

/*
 * Length of the well-formed UTF-8 sequence at p (1 to 4 bytes), or 0 when
 * p does not start one: a stray continuation byte, an overlong form, a
 * surrogate (U+D800-DFFF), a code point above U+10FFFF, or a sequence cut
 * short.  These are the ranges of RFC 3629, section 4.  p is NUL-terminated,
 * and the NUL fails every continuation test, so nothing past it is read.
 */
static int
utf8_sequence_length(const unsigned char *p)
{
	unsigned char lo = 0x80;	/* the range of the second byte */
	unsigned char hi = 0xbf;
	int			len;
	int			i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
	{
		len = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;			/* below: overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;			/* above: surrogates */
	}
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
	{
		len = 4;
		if (p[0] == 0xf0)
			lo = 0x90;			/* below: overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;			/* above: beyond U+10FFFF */
	}
	else
		return 0;				/* 0x80-0xc1 and 0xf5-0xff never start one */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * Write s as a JSON string (NULL as null).  Account names, keys and server
 * messages are bytes, not necessarily UTF-8, and JSON must be UTF-8: a byte
 * that is not part of a well-formed sequence is written as \udcXX (XX its
 * value), Python's "surrogateescape", so a reader gets valid JSON and can
 * still recover the exact bytes.  Well-formed UTF-8 passes through.
 */
static void
json_string(const char *s)
{
	const unsigned char *p;
	int			len;

	if (s == NULL)
	{
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (p = (const unsigned char *) s; *p; p += len)
	{
		len = 1;
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p == '\r')
			fputs("\\r", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else if (*p < 0x80)
			putchar(*p);
		else if ((len = utf8_sequence_length(p)) > 0)
			fwrite(p, 1, (size_t) len, stdout);
		else
		{
			printf("\\udc%02x", *p);
			len = 1;			/* the next byte may start a good sequence */
		}
	}
	putchar('"');
}

static void
json_field_string(const char *name, const char *value)
{
	printf(",\"%s\":", name);
	json_string(value);
}

static void
json_field_int(const char *name, int64_t value)
{
	printf(",\"%s\":%" PRId64, name, value);
}

/*
 * Write s as one field of a tab-separated output line.  Names, keys and
 * problem texts can hold tabs, newlines or any other control byte, which
 * would split the field or forge another line; those are escaped, and so
 * is the backslash, so the escaping can be undone.  Other bytes pass
 * through unchanged.
 */
static void
put_field(FILE *out, const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *) s; *p; p++)
	{
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '\t')
			fputs("\\t", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p == '\r')
			fputs("\\r", out);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\x%02x", *p);
		else
			putc(*p, out);
	}
}

/* ISO 8601 in UTC with microseconds. */
static void
format_time(int64_t us, char *buf, size_t size)
{
	int64_t		secs = us / 1000000;
	int64_t		frac = us % 1000000;
	time_t		t;
	struct tm	tm;
	char		date[32];

	if (frac < 0)
	{
		frac += 1000000;
		secs -= 1;
	}
	t = (time_t) secs;
	if (gmtime_r(&t, &tm) == NULL ||
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
	{
		snprintf(buf, size, "%" PRId64, us);
		return;
	}
	snprintf(buf, size, "%s.%06dZ", date, (int) frac);
}

static bool
is_posting(Command cmd)
{
	return cmd == CMD_CREDIT || cmd == CMD_DEBIT || cmd == CMD_TRANSFER ||
		cmd == CMD_BATCH_DEBIT;
}

/* Report a failed call; returns the exit status. */
static int
report_failure(const Args *a, LedgerConn *conn, LedgerStatus status)
{
	const char *sqlstate = ledger_error_sqlstate(conn);
	const char *detail = ledger_error_detail(conn);
	const char *hint = ledger_error_hint(conn);
	const char *key = a->cmd == CMD_BATCH_DEBIT ? a->batch_key
		: is_posting(a->cmd) ? ledger_last_key(conn) : NULL;
	int			code = EXIT_STATUS_BASE + (int) status;

	if (a->json)
	{
		printf("{\"status\":");
		json_string(ledger_status_name(status));
		json_field_int("status_code", status);
		json_field_int("exit_code", code);
		json_field_string("sqlstate", sqlstate);
		json_field_string("message", ledger_error_message(conn));
		json_field_string("detail", detail);
		json_field_string("hint", hint);
		if (a->cmd == CMD_TRANSFER)
		{
			json_field_string("from", a->pos[0]);
			json_field_string("to", a->pos[1]);
		}
		else if (a->cmd != CMD_VERIFY && a->cmd != CMD_BATCH_DEBIT)
			json_field_string("account", a->pos[0]);
		if (is_posting(a->cmd))
			json_field_string("key", key);
		json_field_int("attempts", ledger_last_attempts(conn));
		printf("}\n");
		return code;
	}
	fprintf(stderr, "ledger: %s failed: %s", commands[a->cmd_index].name,
			ledger_status_name(status));
	if (sqlstate != NULL)
		fprintf(stderr, " (%s)", sqlstate);
	fprintf(stderr, ": %s\n", ledger_error_message(conn));
	if (detail != NULL)
		fprintf(stderr, "DETAIL:  %s\n", detail);
	if (hint != NULL)
		fprintf(stderr, "HINT:  %s\n", hint);
	if (status == LEDGER_UNKNOWN_OUTCOME && key != NULL)
	{
		fprintf(stderr, "ledger: it may or may not have been applied; run the same"
				" command again with --key ");
		put_field(stderr, key);
		fputc('\n', stderr);
	}
	return code;
}

/* ---- the commands ---------------------------------------------------------- */

static int
need_amount(const char *text, int64_t *amount)
{
	if (!parse_int64(text, amount))
		return usage_error("AMOUNT must be an integer (minor units), not \"%s\"", text);
	return 0;
}

static int
run_number(const Args *a, LedgerConn *conn)
{
	LedgerStatus status = LEDGER_CLIENT_ERROR;
	const char *label = "balance";
	int64_t		amount = 0;
	int64_t		result = 0;
	int			rc;

	switch (a->cmd)
	{
		case CMD_OPEN:
			{
				int64_t		floor = 0;

				if (a->no_floor && a->min_balance != NULL)
					return usage_error("%s", "--no-floor and --min-balance exclude each other");
				if (a->no_floor)
					floor = LEDGER_NO_FLOOR;
				else if (a->min_balance != NULL && !parse_int64(a->min_balance, &floor))
					return usage_error("--min-balance must be an integer, not \"%s\"",
									   a->min_balance);
				label = "account_id";
				status = ledger_open_account(conn, a->pos[0], a->currency, floor, &result);
				break;
			}
		case CMD_CREDIT:
		case CMD_DEBIT:
			if ((rc = need_amount(a->pos[1], &amount)) != 0)
				return rc;
			status = (a->cmd == CMD_CREDIT ? ledger_credit : ledger_debit)
				(conn, a->pos[0], amount, a->key, &result);
			break;
		case CMD_TRANSFER:
			if ((rc = need_amount(a->pos[2], &amount)) != 0)
				return rc;
			label = "transfer_id";
			status = ledger_transfer(conn, a->pos[0], a->pos[1], amount, a->key, &result);
			break;
		case CMD_BALANCE:
			status = ledger_balance(conn, a->pos[0], &result);
			break;
		default:
			break;
	}
	if (status != LEDGER_OK)
		return report_failure(a, conn, status);

	if (!a->json)
	{
		printf("%" PRId64 "\n", result);
		return 0;
	}
	printf("{\"status\":\"ok\"");
	if (a->cmd != CMD_TRANSFER)
		json_field_string("account", a->pos[0]);
	else
	{
		json_field_string("from", a->pos[0]);
		json_field_string("to", a->pos[1]);
	}
	if (a->cmd != CMD_BALANCE && a->cmd != CMD_OPEN)
		json_field_int("amount", amount);
	json_field_int(label, result);
	if (is_posting(a->cmd))
		json_field_string("key", ledger_last_key(conn));
	json_field_int("attempts", ledger_last_attempts(conn));
	printf("}\n");
	return 0;
}

static int
run_history(const Args *a, LedgerConn *conn)
{
	LedgerHistory *h;
	LedgerStatus status;
	int64_t		limit = 100;
	size_t		i;

	if (a->limit != NULL && (!parse_int64(a->limit, &limit) ||
							 limit < INT32_MIN || limit > INT32_MAX))
		return usage_error("--limit must be an integer, not \"%s\"", a->limit);
	status = ledger_history(conn, a->pos[0], (int) limit, &h);
	if (status != LEDGER_OK)
		return report_failure(a, conn, status);

	if (a->json)
	{
		printf("{\"status\":\"ok\"");
		json_field_string("account", a->pos[0]);
		printf(",\"entries\":[");
	}
	for (i = 0; i < h->n_entries; i++)
	{
		const LedgerEntry *e = &h->entries[i];
		char		when[64];
		char		transfer[32] = "";

		format_time(e->created_at_us, when, sizeof(when));
		if (e->transfer_id != 0)
			snprintf(transfer, sizeof(transfer), "%" PRId64, e->transfer_id);
		if (a->json)
		{
			printf("%s{\"entry_id\":%" PRId64, i ? "," : "", e->entry_id);
			json_field_int("amount", e->amount);
			json_field_int("balance_after", e->balance_after);
			if (e->transfer_id != 0)
				json_field_int("transfer_id", e->transfer_id);
			else
				printf(",\"transfer_id\":null");
			json_field_string("idempotency_key", e->idempotency_key);
			json_field_string("created_at", when);
			printf("}");
		}
		else
		{
			printf("%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%s\t",
				   e->entry_id, e->amount, e->balance_after, transfer);
			put_field(stdout, e->idempotency_key ? e->idempotency_key : "");
			printf("\t%s\n", when);
		}
	}
	if (a->json)
		printf("]}\n");
	ledger_history_free(h);
	return 0;
}

static int
run_verify(const Args *a, LedgerConn *conn)
{
	LedgerAudit *audit;
	LedgerStatus status;
	size_t		i;
	int			rc;

	status = ledger_verify(conn, &audit);
	if (status != LEDGER_OK)
		return report_failure(a, conn, status);

	if (a->json)
	{
		printf("{\"status\":\"ok\",\"problems\":[");
		for (i = 0; i < audit->n_problems; i++)
		{
			printf("%s{\"account\":", i ? "," : "");
			json_string(audit->problems[i].account);
			json_field_string("problem", audit->problems[i].problem);
			printf("}");
		}
		printf("]}\n");
	}
	else if (audit->n_problems == 0)
		printf("ok\n");
	else
		for (i = 0; i < audit->n_problems; i++)
		{
			put_field(stdout, audit->problems[i].account ? audit->problems[i].account : "");
			putchar('\t');
			put_field(stdout, audit->problems[i].problem ? audit->problems[i].problem : "");
			putchar('\n');
		}
	rc = audit->n_problems == 0 ? 0 : EXIT_PROBLEMS;
	ledger_audit_free(audit);
	return rc;
}

/* 32 random hex digits, the default key prefix of batch-debit. */
static bool
random_key(char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bits[16];
	FILE	   *f = fopen("/dev/urandom", "rb");
	size_t		got;
	size_t		i;

	if (f == NULL || size < 2 * sizeof(bits) + 1)
	{
		if (f != NULL)
			fclose(f);
		return false;
	}
	got = fread(bits, 1, sizeof(bits), f);
	fclose(f);
	if (got != sizeof(bits))
		return false;
	for (i = 0; i < sizeof(bits); i++)
	{
		buf[2 * i] = hex[bits[i] >> 4];
		buf[2 * i + 1] = hex[bits[i] & 0x0f];
	}
	buf[2 * sizeof(bits)] = '\0';
	return true;
}

/* The statuses one item of a server batch can be refused with. */
static bool
is_item_refusal(LedgerStatus status)
{
	return status == LEDGER_INSUFFICIENT_FUNDS || status == LEDGER_ACCOUNT_NOT_FOUND ||
		status == LEDGER_IDEMPOTENCY_CONFLICT || status == LEDGER_CURRENCY_MISMATCH ||
		status == LEDGER_INVALID_PARAMETER_VALUE ||
		status == LEDGER_NUMERIC_VALUE_OUT_OF_RANGE;
}

/*
 * batch-debit: every item keyed KEY.N, so that the same command with the
 * same --key replays the whole batch, also after an unknown outcome.
 */
static int
run_batch_debit(Args *a, LedgerConn *conn)
{
	LedgerPosting *items;
	char	   *keys;
	size_t		key_size;
	size_t		n = (size_t) a->npos;
	LedgerStatus status;
	size_t		i;
	int			rc = 0;

	if (a->key != NULL)
		snprintf(a->batch_key, sizeof(a->batch_key), "%s", a->key);
	else if (!random_key(a->batch_key, sizeof(a->batch_key)))
	{
		fprintf(stderr, "ledger: could not read random bytes for the keys\n");
		return EXIT_INTERNAL;
	}
	key_size = strlen(a->batch_key) + 24;	/* ".N" and the NUL */
	items = calloc(n, sizeof(LedgerPosting));
	keys = calloc(n, key_size);
	if (items == NULL || keys == NULL)
	{
		free(items);
		free(keys);
		fprintf(stderr, "ledger: out of memory\n");
		return EXIT_INTERNAL;
	}
	for (i = 0; i < n && rc == 0; i++)
	{
		const char *colon = strrchr(a->pos[i], ':');

		if (colon == NULL)
			rc = usage_error("batch-debit items are ACCOUNT:AMOUNT, not \"%s\"", a->pos[i]);
		else if (!parse_int64(colon + 1, &items[i].amount))
			rc = usage_error("AMOUNT must be an integer (minor units), not \"%s\" in \"%s\"",
							 colon + 1, a->pos[i]);
		else
		{
			/* the account is the item up to its last ':': cut argv in place */
			char	   *account = (char *) a->pos[i];

			account[colon - a->pos[i]] = '\0';
			items[i].op = LEDGER_OP_DEBIT;
			items[i].account = account;
			snprintf(keys + i * key_size, key_size, "%s.%zu", a->batch_key, i + 1);
			items[i].idempotency_key = keys + i * key_size;
		}
	}
	if (rc != 0)
	{
		free(items);
		free(keys);
		return rc;
	}

	status = ledger_post_batch(conn, items, n);
	if (status != LEDGER_OK && !is_item_refusal(status))
	{
		/* a whole-call failure: nothing was applied, nothing to list */
		rc = report_failure(a, conn, status);
		free(items);
		free(keys);
		return rc;
	}

	if (a->json)
	{
		printf("{\"status\":");
		json_string(ledger_status_name(status));
		if (status != LEDGER_OK)
		{
			json_field_int("status_code", status);
			json_field_int("exit_code", EXIT_STATUS_BASE + (int) status);
			json_field_string("message", ledger_error_message(conn));
		}
		printf(",\"items\":[");
	}
	for (i = 0; i < n; i++)
	{
		if (a->json)
		{
			printf("%s{\"account\":", i ? "," : "");
			json_string(items[i].account);
			json_field_int("amount", items[i].amount);
			json_field_string("status", ledger_status_name(items[i].status));
			if (items[i].status == LEDGER_OK)
				json_field_int("balance", items[i].result);
			else
				printf(",\"balance\":null");
			json_field_string("key", items[i].key);
			printf("}");
			continue;
		}
		put_field(stdout, items[i].account);
		printf("\t%" PRId64 "\t%s\t", items[i].amount, ledger_status_name(items[i].status));
		if (items[i].status == LEDGER_OK)
			printf("%" PRId64, items[i].result);
		putchar('\n');
	}
	if (a->json)
	{
		printf("]");
		json_field_string("key", a->batch_key);
		json_field_int("attempts", ledger_last_attempts(conn));
		printf("}\n");
	}
	else if (status != LEDGER_OK)
	{
		size_t		refused = 0;
		size_t		first = n;

		for (i = 0; i < n; i++)
			if (items[i].status != LEDGER_OK)
			{
				refused++;
				if (first == n)
					first = i;
			}
		fprintf(stderr, "ledger: batch-debit: %zu of %zu items refused, the first is item %zu (",
				refused, n, first + 1);
		put_field(stderr, items[first].account);
		fprintf(stderr, ":%" PRId64 "): %s (%s)\n", items[first].amount,
				ledger_status_name(status), items[first].sqlstate ? items[first].sqlstate : "");
	}
	free(items);
	free(keys);
	return status == LEDGER_OK ? 0 : EXIT_STATUS_BASE + (int) status;
}

/* Everything main does; *a holds the parsed arguments for main to free. */
static int
run_command(int argc, char **argv, Args *a)
{
	LedgerOptions opts;
	LedgerConn *conn;
	int			rc;

	if ((rc = parse_args(argc, argv, a)) != 0)
		return rc;
	if (a->help)
	{
		if (a->cmd_index >= 0)
			usage_command(stdout, a->cmd_index);
		else
			usage_all(stdout);
		return 0;
	}
	if (a->cmd == CMD_NONE)
	{
		usage_all(stderr);
		return EXIT_USAGE;
	}
	if (commands[a->cmd_index].nargs < 0 && a->npos < 1)
	{
		fprintf(stderr, "ledger: %s takes one or more arguments\n", commands[a->cmd_index].name);
		usage_command(stderr, a->cmd_index);
		return EXIT_USAGE;
	}
	if (commands[a->cmd_index].nargs >= 0 && a->npos != commands[a->cmd_index].nargs)
	{
		fprintf(stderr, "ledger: %s takes %d argument%s\n", commands[a->cmd_index].name,
				commands[a->cmd_index].nargs, commands[a->cmd_index].nargs == 1 ? "" : "s");
		usage_command(stderr, a->cmd_index);
		return EXIT_USAGE;
	}
	if (a->key != NULL && !is_posting(a->cmd))
		return usage_error("--key applies to credit, debit, transfer and batch-debit, not %s",
						   commands[a->cmd_index].name);

	ledger_options_init(&opts);
	opts.conninfo = a->conninfo;
	if (a->retries > 0)
		opts.retry_attempts = a->retries;

	/*
	 * A failed first connection is not final: the call reconnects with the
	 * retry policy, and its status is what we report.
	 */
	(void) ledger_connect(&opts, &conn);
	if (conn == NULL)
	{
		fprintf(stderr, "ledger: out of memory\n");
		return EXIT_INTERNAL;
	}

	switch (a->cmd)
	{
		case CMD_HISTORY:
			rc = run_history(a, conn);
			break;
		case CMD_VERIFY:
			rc = run_verify(a, conn);
			break;
		case CMD_BATCH_DEBIT:
			rc = run_batch_debit(a, conn);
			break;
		default:
			rc = run_number(a, conn);
			break;
	}
	ledger_finish(conn);
	if (fflush(stdout) != 0 || ferror(stdout))
	{
		fprintf(stderr, "ledger: could not write the output: %s\n", strerror(errno));
		return EXIT_INTERNAL;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	Args		a = {0};
	int			rc = run_command(argc, argv, &a);

	free(a.pos);
	return rc;
}
