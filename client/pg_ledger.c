/*-------------------------------------------------------------------------
 *
 * pg_ledger.c
 *	  The `pg_ledger` command: one libledger call per invocation.  (Not
 *	  `ledger`: Debian's plain-text accounting tool owns /usr/bin/ledger.)
 *
 *	  pg_ledger [-d CONNINFO] [--json] [--retries N] [--timeout SECONDS] COMMAND ARGS...
 *
 * (batch-debit is the one command with many postings: ledger_post_batch.)
 *
 * A hold is a posting with a key like a debit.  capture and release have
 * no key: the hold id is one, and the same command again is safe.
 *
 * The exit status tells what happened (see exit_help below): 0 ok, 1 an
 * internal error, 2 a usage error, 3 verify found problems, and 10 + the
 * LedgerStatus value for every refusal or failure, so scripts can branch
 * on it without parsing text.  With --json every outcome, usage errors
 * included, is one JSON object on stdout, valid JSON whatever bytes the
 * strings hold; otherwise results go to stdout and errors to stderr, with
 * user data escaped so that it cannot split a line or a field.
 *
 * Every argument is checked before anything is sent, and every posting
 * has its key before it is sent (--key, or one generated here), so that
 * after an unknown outcome the command can always say which key a retry
 * needs.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"

#define EXIT_INTERNAL 1
#define EXIT_USAGE 2
#define EXIT_PROBLEMS 3
#define EXIT_STATUS_BASE 10

#define DEFAULT_TIMEOUT_S 60
#define MAX_TIMEOUT_S 86400		/* a day: more is surely a typo */

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
	CMD_BATCH_DEBIT,
	CMD_HOLD,
	CMD_CAPTURE,
	CMD_RELEASE,
	CMD_AVAILABLE,
	CMD_HOLDS,
	CMD_MODE
} Command;

/* The last LedgerStatus: exit codes run up to 10 + this. */
#define LAST_STATUS LEDGER_HOLD_NOT_PENDING

static const struct
{
	const char *name;
	Command		cmd;
	int			min_args;		/* positional arguments after the name */
	int			max_args;		/* -1: no limit */
	const char *synopsis;
	const char *description;
}			commands[] =
{
	{"open", CMD_OPEN, 1, 1,
		"pg_ledger open ACCOUNT [--currency CUR] [--min-balance N | --no-floor]",
		"Open ACCOUNT (currency default XXX, floor default 0) and print its id.\n"
		"Opening again with identical parameters prints the same id."},
	{"credit", CMD_CREDIT, 2, 2,
		"pg_ledger credit ACCOUNT AMOUNT [--key KEY]",
		"Add AMOUNT (minor units, digits only, > 0) to ACCOUNT and print the new\n"
		"balance."},
	{"debit", CMD_DEBIT, 2, 2,
		"pg_ledger debit ACCOUNT AMOUNT [--key KEY]",
		"Take AMOUNT (minor units, digits only, > 0) from ACCOUNT and print the new\n"
		"balance.  Refused (exit 11) if the balance would go below the account's\n"
		"floor."},
	{"transfer", CMD_TRANSFER, 3, 3,
		"pg_ledger transfer FROM TO AMOUNT [--key KEY]",
		"Move AMOUNT (minor units, digits only, > 0) from FROM to TO (same\n"
		"currency) and print the transfer id."},
	{"balance", CMD_BALANCE, 1, 1,
		"pg_ledger balance ACCOUNT [--at TIMESTAMP]",
		"Print the balance of ACCOUNT.  With --at, its balance at that time: the\n"
		"running balance after its last journal entry created at or before\n"
		"TIMESTAMP, 0 before its first (holds change no balance)."},
	{"history", CMD_HISTORY, 1, 1,
		"pg_ledger history ACCOUNT [--limit N] [--before ENTRY_ID]",
		"Print the newest N (default 100) journal entries of ACCOUNT, newest\n"
		"first, one per line, tab-separated: entry_id, amount (debits negative),\n"
		"balance_after, transfer_id, idempotency_key, created_at (UTC);\n"
		"an empty field is NULL (a balance_after: an escrow account's entry\n"
		"not folded yet).  In the key, \\ prints as \\\\, tab, newline and\n"
		"carriage return as \\t, \\n and \\r, other control bytes as \\xHH.\n"
		"With --before, only the entries older than ENTRY_ID: the next page\n"
		"starts before the last entry_id printed."},
	{"verify", CMD_VERIFY, 0, 0,
		"pg_ledger verify",
		"Audit the whole ledger.  Prints \"ok\" and exits 0 when it is\n"
		"consistent; otherwise prints one \"account<TAB>problem\" line per\n"
		"problem and exits 3 (both fields escaped as in history)."},
	{"batch-debit", CMD_BATCH_DEBIT, 1, -1,
		"pg_ledger batch-debit ACCOUNT:AMOUNT... [--key KEY]",
		"Debit each ACCOUNT by its AMOUNT (digits only), in order, in one\n"
		"transaction and one commit (ledger_post_batch); the last ':' of an item\n"
		"separates ACCOUNT from AMOUNT.  A refused item changes nothing and does\n"
		"not stop the others.  Prints one line per item, tab-separated: account\n"
		"(escaped as in history), amount, status, new balance (empty unless ok).\n"
		"Exits 0 when every item is ok, otherwise with the status of the first\n"
		"item that is not (its lines are printed all the same: the ok items were\n"
		"applied)."},
	{"hold", CMD_HOLD, 2, 2,
		"pg_ledger hold ACCOUNT AMOUNT [--expires-in SECONDS] [--key KEY]",
		"Reserve AMOUNT (minor units, digits only, > 0) of what ACCOUNT has\n"
		"available and print the hold id.  The balance stays until the hold is\n"
		"captured; what is available (ledger available) shrinks at once.  Refused\n"
		"(exit 11) if the available balance would go below the account's floor."},
	{"capture", CMD_CAPTURE, 1, 2,
		"pg_ledger capture HOLD_ID [AMOUNT] [--to ACCOUNT]",
		"Post AMOUNT (digits only, > 0; default: the whole hold) of a pending hold\n"
		"and end it; the rest of the hold is released.  Without --to it is a debit\n"
		"of the held account, with --to a transfer to ACCOUNT (same currency).\n"
		"Prints the held account's new balance.  The same command again prints\n"
		"the same balance and posts nothing; other arguments: exit 13.  Exit 25:\n"
		"no such hold; 26: it was released or expired."},
	{"release", CMD_RELEASE, 1, 1,
		"pg_ledger release HOLD_ID",
		"End a pending hold without posting and print true.  Prints false when\n"
		"it was already released or expired -- also when an earlier attempt of\n"
		"this same command released it and its answer was lost.  Exit 25: no such\n"
		"hold; 26: it was captured."},
	{"available", CMD_AVAILABLE, 1, 1,
		"pg_ledger available ACCOUNT",
		"Print what ACCOUNT can spend now: its balance minus its pending holds\n"
		"that have not expired."},
	{"holds", CMD_HOLDS, 1, 1,
		"pg_ledger holds ACCOUNT [--limit N]",
		"Print the newest N (default 100) holds of ACCOUNT, newest first, one per\n"
		"line, tab-separated: hold_id, amount, captured (the amount posted, empty\n"
		"unless captured), status (pending, captured, released or expired; a\n"
		"pending hold past its expiry reads expired), created_at, expires_at\n"
		"(empty: never), idempotency_key (empty: none; escaped as in history).\n"
		"Times are UTC."},
	{"mode", CMD_MODE, 1, 2,
		"pg_ledger mode ACCOUNT [locked|escrow]",
		"Print ACCOUNT's mode, locked or escrow.  With a mode, set it and print\n"
		"the mode it had.  Escrow mode (for hot accounts) needs the ledger library\n"
		"in the server's shared_preload_libraries (exit 20 otherwise)."},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

typedef struct Args
{
	/* as given */
	const char *conninfo;
	bool		json;
	bool		help;
	bool		version;
	Command		cmd;
	int			cmd_index;
	const char **pos;			/* argc entries */
	int			npos;
	const char *key;
	const char *currency;
	const char *min_balance;
	bool		no_floor;
	const char *limit;
	const char *retries;
	const char *timeout;
	const char *expires_in;
	const char *to;
	const char *at;
	const char *before;

	/* checked and converted by check_args, before anything is sent */
	int			retry_attempts; /* 0: the library's default */
	int			timeout_s;
	int64_t		amount;			/* credit, debit, transfer, hold, capture
								 * (0: the whole hold) */
	int64_t		floor;			/* open */
	int			max_rows;		/* history, holds */
	LedgerPosting *items;		/* batch-debit */
	int64_t		hold_id;		/* capture, release */
	int64_t		expires_in_ms;	/* hold; 0: never */
	int64_t		at_us;			/* balance --at */
	int64_t		before_id;		/* history --before; 0: from the newest */

	/* chosen by choose_key, before anything is sent */
	char		generated_key[LEDGER_KEY_BUFSIZE];
	const char *posting_key;	/* --key or generated_key; for batch-debit
								 * the prefix of the item keys */
	char	   *item_keys;		/* batch-debit: KEY.N, one per item */
} Args;

/*
 * The options that take a value, as "--name VALUE" or "--name=VALUE" (-d
 * only as "-d VALUE").  The parser and the --json pre-scan both read this
 * table, so they skip the same values: in "--key --json", --json is a key.
 */
static const struct
{
	const char *name;
	size_t		field;			/* offsetof the const char * in Args */
}			value_options[] =
{
	{"-d", offsetof(Args, conninfo)},
	{"--dbname", offsetof(Args, conninfo)},
	{"--key", offsetof(Args, key)},
	{"--currency", offsetof(Args, currency)},
	{"--min-balance", offsetof(Args, min_balance)},
	{"--limit", offsetof(Args, limit)},
	{"--retries", offsetof(Args, retries)},
	{"--timeout", offsetof(Args, timeout)},
	{"--expires-in", offsetof(Args, expires_in)},
	{"--to", offsetof(Args, to)},
	{"--at", offsetof(Args, at)},
	{"--before", offsetof(Args, before)},
};

#define N_VALUE_OPTIONS (sizeof(value_options) / sizeof(value_options[0]))

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

/* ---- errors before anything is sent ------------------------------------- */

/*
 * Report a usage error (exit 2) or an error of the command itself (exit 1):
 * with --json as the one JSON object on stdout, otherwise on stderr.
 */
#ifdef __GNUC__
static int	command_error(const Args *a, int code, const char *fmt, va_list ap)
			__attribute__((format(printf, 3, 0)));
#endif

static int
command_error(const Args *a, int code, const char *fmt, va_list ap)
{
	va_list		ap2;
	char	   *message;
	int			len;

	if (!a->json)
	{
		fprintf(stderr, "pg_ledger: ");
		vfprintf(stderr, fmt, ap);
		fprintf(stderr, "\n");
		if (code == EXIT_USAGE)
			fprintf(stderr, "Try \"pg_ledger --help\".\n");
		return code;
	}
	va_copy(ap2, ap);
	len = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	message = len >= 0 ? malloc((size_t) len + 1) : NULL;
	if (message != NULL)
		vsnprintf(message, (size_t) len + 1, fmt, ap);
	printf("{\"status\":\"%s\"", code == EXIT_USAGE ? "usage_error" : "internal_error");
	json_field_int("exit_code", code);
	/* out of memory: the message unformatted is still better than none */
	json_field_string("message", message != NULL ? message : fmt);
	printf("}\n");
	free(message);
	return code;
}

#ifdef __GNUC__
static int	usage_error(const Args *a, const char *fmt,...) __attribute__((format(printf, 2, 3)));
static int	internal_error(const Args *a, const char *fmt,...) __attribute__((format(printf, 2, 3)));
#endif

static int
usage_error(const Args *a, const char *fmt,...)
{
	va_list		ap;
	int			rc;

	va_start(ap, fmt);
	rc = command_error(a, EXIT_USAGE, fmt, ap);
	va_end(ap);
	return rc;
}

static int
internal_error(const Args *a, const char *fmt,...)
{
	va_list		ap;
	int			rc;

	va_start(ap, fmt);
	rc = command_error(a, EXIT_INTERNAL, fmt, ap);
	va_end(ap);
	return rc;
}

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
	for (s = LEDGER_INSUFFICIENT_FUNDS; s <= LAST_STATUS; s++)
		fprintf(out, "  %2d  %s\n", EXIT_STATUS_BASE + s, ledger_status_name((LedgerStatus) s));
	fprintf(out,
			"  (10 + the LedgerStatus value.)  After 23 unknown_outcome the posting\n"
			"  may or may not have been applied: run the same command again with\n"
			"  --key KEY, KEY as printed; it cannot apply twice (a retry without that\n"
			"  key may post twice).  capture and release need no key: the same\n"
			"  command again cannot apply twice.  With --json every outcome, 1 and 2\n"
			"  included, is one JSON object on stdout.\n");
}

static void
common_help(FILE *out)
{
	fprintf(out,
			"\nOptions (before or after the command):\n"
			"  -d, --dbname CONNINFO  libpq conninfo string or URI; default: the PG*\n"
			"                         environment variables\n"
			"  --json                 print exactly one JSON object on stdout, whatever\n"
			"                         the outcome (invalid UTF-8 bytes as \\udcXX)\n"
			"  --retries N            attempts per call, 1 to 1000 (default %d)\n"
			"  --timeout SECONDS      give up on the call after SECONDS, its retries\n"
			"                         included: 0 to %d, 0 for no bound (default %d);\n"
			"                         a posting cut off this way exits 23\n"
			"  -h, --help             help (for a command: pg_ledger COMMAND --help)\n"
			"  --version              print the library version\n",
			LEDGER_DEFAULT_RETRY_ATTEMPTS, MAX_TIMEOUT_S, DEFAULT_TIMEOUT_S);
}

static void
usage_all(FILE *out)
{
	size_t		i;

	fprintf(out, "pg_ledger: post to and read the ledger of a PostgreSQL database.\n\n"
			"Usage: pg_ledger [OPTIONS] COMMAND ARGS...\n\nCommands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].synopsis);
	fprintf(out, "\nAMOUNT is in minor units (cents), ASCII digits only: no sign, no\n"
			"spaces.  Postings without --key get a generated idempotency key; an\n"
			"automatic retry never applies twice.\n");
	common_help(out);
	exit_help(out);
}

static void
usage_command(FILE *out, int i)
{
	fprintf(out, "Usage: %s\n\n%s\n", commands[i].synopsis, commands[i].description);
	if (commands[i].cmd == CMD_CREDIT || commands[i].cmd == CMD_DEBIT ||
		commands[i].cmd == CMD_TRANSFER || commands[i].cmd == CMD_HOLD)
		fprintf(out, "\n  --key KEY   idempotency key (1-255 bytes); the same KEY again returns\n"
				"              the original result and changes nothing (default: a\n"
				"              random KEY, printed after exit 23)\n");
	if (commands[i].cmd == CMD_HOLD)
		fprintf(out, "  --expires-in SECONDS\n"
				"              the hold stops reserving SECONDS (digits, > 0) after it is\n"
				"              made, exactly, whether or not anything records it (default:\n"
				"              never)\n");
	if (commands[i].cmd == CMD_CAPTURE)
		fprintf(out, "\n  --to ACCOUNT   capture as a transfer to ACCOUNT, not a debit\n");
	if (commands[i].cmd == CMD_BALANCE)
		fprintf(out, "\n  --at TIMESTAMP  ISO 8601 with a zone: YYYY-MM-DDTHH:MM:SS, then\n"
				"                  optionally '.' and 1 to 6 digits of fraction, then Z or\n"
				"                  +HH:MM or -HH:MM; T may also be t or one space, Z may\n"
				"                  be z; years 0001-9999, seconds 00-59.  E.g.\n"
				"                  2026-11-29T12:00:00Z, 2026-11-29T13:00:00.25+01:00\n");
	if (commands[i].cmd == CMD_BATCH_DEBIT)
		fprintf(out, "\n  --key KEY   item N gets the idempotency key KEY.N (default: a random\n"
				"              KEY, printed after exit 23); the same command with the same\n"
				"              KEY again returns the original results and changes nothing\n");
	if (commands[i].cmd == CMD_OPEN)
		fprintf(out, "\n  --currency CUR   ^[A-Z0-9_]{1,16}$ (default XXX)\n"
				"  --min-balance N  the floor, <= 0: an optional '-' and digits (default\n"
				"                   0: never negative)\n"
				"  --no-floor       no floor at all (a source of money)\n");
	if (commands[i].cmd == CMD_HISTORY)
		fprintf(out, "\n  --limit N   at most N entries, an optional '-' and digits (default 100)\n"
				"  --before ENTRY_ID\n"
				"              only entries with a smaller entry_id (digits, > 0)\n");
	if (commands[i].cmd == CMD_HOLDS)
		fprintf(out, "\n  --limit N   at most N holds, an optional '-' and digits (default 100)\n");
	common_help(out);
	exit_help(out);
}

/* --help: the text, or with --json the text as the "help" string. */
static int
print_help(const Args *a)
{
	FILE	   *out = stdout;
	char	   *text = NULL;
	size_t		size = 0;

	if (a->json && (out = open_memstream(&text, &size)) == NULL)
		return internal_error(a, "out of memory");
	if (a->cmd_index >= 0)
		usage_command(out, a->cmd_index);
	else
		usage_all(out);
	if (!a->json)
		return 0;
	if (fclose(out) != 0)
	{
		free(text);
		return internal_error(a, "out of memory");
	}
	printf("{\"status\":\"ok\"");
	json_field_string("help", text);
	printf("}\n");
	free(text);
	return 0;
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

/*
 * An integer that is exactly ASCII digits, after one '-' if minus_ok, and
 * fits in int64.  strtoll alone would also take leading spaces and a '+',
 * and an amount like " 5" or "+5" must not pass for 5: what the user typed
 * is either exactly a number or refused.
 */
static bool
parse_integer(const char *s, bool minus_ok, int64_t *out)
{
	const char *d = (minus_ok && s[0] == '-') ? s + 1 : s;
	long long	v;

	if (*d == '\0')
		return false;
	for (; *d; d++)
		if (*d < '0' || *d > '9')
			return false;
	errno = 0;
	v = strtoll(s, NULL, 10);
	if (errno != 0)
		return false;			/* ERANGE: beyond int64 */
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
	if (arg[len] == '=' && name[1] == '-')
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

/*
 * Is there a --json (before any "--")?  Looked for before parsing, so that
 * an error the parser meets before it reaches a later --json still comes
 * out as JSON.  Skips the values of options as parse_args does.
 */
static bool
wants_json(int argc, char **argv)
{
	int			i;
	size_t		o;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--json") == 0)
			return true;
		for (o = 0; o < N_VALUE_OPTIONS; o++)
			if (strcmp(argv[i], value_options[o].name) == 0)
			{
				i++;
				break;
			}
	}
	return false;
}

/* Returns 0 or an exit status.  a->json is already set by wants_json. */
static int
parse_args(int argc, char **argv, Args *a)
{
	bool		options_done = false;
	int			i;

	a->cmd_index = -1;
	a->pos = calloc((size_t) argc, sizeof(const char *));
	if (a->pos == NULL)
		return internal_error(a, "out of memory");
	for (i = 1; i < argc; i++)
	{
		const char *arg = argv[i];

		if (!options_done && arg[0] == '-' && arg[1] != '\0' && !is_negative_number(arg))
		{
			const char *value = NULL;
			int			m = 0;
			size_t		o;

			if (strcmp(arg, "--") == 0)
				options_done = true;
			else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
				a->help = true;
			else if (strcmp(arg, "--version") == 0)
				a->version = true;
			else if (strcmp(arg, "--json") == 0)
				a->json = true;
			else if (strcmp(arg, "--no-floor") == 0)
				a->no_floor = true;
			else
			{
				for (o = 0; o < N_VALUE_OPTIONS; o++)
					if ((m = option_value(argc, argv, &i, value_options[o].name, &value)) != 0)
						break;
				if (o == N_VALUE_OPTIONS)
					return usage_error(a, "unknown option \"%s\"", arg);
				if (m < 0)
					return usage_error(a, "option %s needs a value", value_options[o].name);
				*(const char **) ((char *) a + value_options[o].field) = value;
			}
			continue;
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
				return usage_error(a, "unknown command \"%s\"", arg);
			continue;
		}
		a->pos[a->npos++] = arg;
	}
	return 0;
}

/* The commands with an idempotency key: --key, or one generated here. */
static bool
is_posting(Command cmd)
{
	return cmd == CMD_CREDIT || cmd == CMD_DEBIT || cmd == CMD_TRANSFER ||
		cmd == CMD_BATCH_DEBIT || cmd == CMD_HOLD;
}

/* The commands that name a hold by its id (their first argument). */
static bool
takes_hold_id(Command cmd)
{
	return cmd == CMD_CAPTURE || cmd == CMD_RELEASE;
}

static int
check_amount(const Args *a, const char *text, int64_t *amount)
{
	if (!parse_integer(text, false, amount))
		return usage_error(a, "AMOUNT must be ASCII digits only (minor units, at most %" PRId64
						   "), not \"%s\"", INT64_MAX, text);
	return 0;
}

/* --limit of history and holds (default 100). */
static int
check_limit(Args *a)
{
	int64_t		n;

	a->max_rows = 100;
	if (a->limit == NULL)
		return 0;
	if (!parse_integer(a->limit, true, &n) || n < INT32_MIN || n > INT32_MAX)
		return usage_error(a, "--limit must be an integer ('-' and digits), not \"%s\"",
						   a->limit);
	a->max_rows = (int) n;
	return 0;
}

/* An option that only one command takes: a usage error elsewhere. */
static int
check_option_applies(const Args *a, const char *value, const char *option, Command cmd)
{
	size_t		c;

	if (value == NULL || a->cmd == cmd)
		return 0;
	for (c = 0; c < N_COMMANDS && commands[c].cmd != cmd; c++)
		;
	return usage_error(a, "%s applies to %s only, not %s", option, commands[c].name,
					   commands[a->cmd_index].name);
}

/* Exactly n ASCII digits at s, as a number. */
static bool
digits(const char *s, int n, int *out)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t		era;
	int			yoe;
	int			doy;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (int) (y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/*
 * --at: ISO 8601 with a zone, as balance --help documents it, to
 * microseconds since 1970 UTC.  Nothing else is taken (no date alone, no
 * time without a zone: which zone would be a guess).
 */
static bool
parse_timestamp(const char *s, int64_t *us)
{
	static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			year,
				month,
				day,
				hour,
				minute,
				second,
				frac = 0,
				frac_digits = 0,
				offset_h = 0,
				offset_m = 0,
				sign = 0,
				max_day;

	if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) || s[7] != '-' ||
		!digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
		!digits(s + 11, 2, &hour) || s[13] != ':' || !digits(s + 14, 2, &minute) ||
		s[16] != ':' || !digits(s + 17, 2, &second))
		return false;
	s += 19;
	if (*s == '.')
	{
		for (s++; *s >= '0' && *s <= '9' && frac_digits < 7; s++, frac_digits++)
			frac = frac * 10 + (*s - '0');
		if (frac_digits == 0 || frac_digits > 6)
			return false;
		for (; frac_digits < 6; frac_digits++)
			frac *= 10;
	}
	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0')
		sign = 0;
	else if ((s[0] == '+' || s[0] == '-') && digits(s + 1, 2, &offset_h) && s[3] == ':' &&
			 digits(s + 4, 2, &offset_m) && s[6] == '\0' && offset_h <= 23 && offset_m <= 59)
		sign = s[0] == '+' ? 1 : -1;
	else
		return false;

	if (year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59)
		return false;
	max_day = month_days[month - 1] +
		(month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0));
	if (day < 1 || day > max_day)
		return false;
	*us = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second;
	*us -= (int64_t) sign * (offset_h * 3600 + offset_m * 60);
	*us = *us * 1000000 + frac;
	return true;
}

/* batch-debit: the items, each ACCOUNT:AMOUNT split at its last ':'. */
static int
check_items(Args *a)
{
	int			i;

	a->items = calloc((size_t) a->npos, sizeof(LedgerPosting));
	if (a->items == NULL)
		return internal_error(a, "out of memory");
	for (i = 0; i < a->npos; i++)
	{
		const char *colon = strrchr(a->pos[i], ':');
		char	   *account = (char *) a->pos[i];

		if (colon == NULL)
			return usage_error(a, "batch-debit items are ACCOUNT:AMOUNT, not \"%s\"", a->pos[i]);
		if (!parse_integer(colon + 1, false, &a->items[i].amount))
			return usage_error(a, "AMOUNT must be ASCII digits only (minor units, at most %" PRId64
							   "), not \"%s\" in \"%s\"", INT64_MAX, colon + 1, a->pos[i]);
		/* the account is the item up to its last ':': cut argv in place */
		account[colon - a->pos[i]] = '\0';
		a->items[i].op = LEDGER_OP_DEBIT;
		a->items[i].account = account;
	}
	return 0;
}

/*
 * Everything that can be wrong with the arguments, found before anything is
 * sent: returns 0 or an exit status.
 */
static int
check_args(Args *a)
{
	const char *name;
	int			min_args;
	int			max_args;
	int64_t		n;
	int			rc;

	if (a->cmd == CMD_NONE)
	{
		if (!a->json)
		{
			usage_all(stderr);
			return EXIT_USAGE;
		}
		return usage_error(a, "no command given");
	}
	name = commands[a->cmd_index].name;
	min_args = commands[a->cmd_index].min_args;
	max_args = commands[a->cmd_index].max_args;
	if (a->npos < min_args || (max_args >= 0 && a->npos > max_args))
	{
		char		how_many[64];

		if (max_args < 0)
			snprintf(how_many, sizeof(how_many), "%s takes %d or more arguments", name, min_args);
		else if (max_args > min_args)
			snprintf(how_many, sizeof(how_many), "%s takes %d to %d arguments", name, min_args,
					 max_args);
		else
			snprintf(how_many, sizeof(how_many), "%s takes %d argument%s", name, min_args,
					 min_args == 1 ? "" : "s");
		if (!a->json)
		{
			fprintf(stderr, "pg_ledger: %s\n", how_many);
			usage_command(stderr, a->cmd_index);
			return EXIT_USAGE;
		}
		return usage_error(a, "%s", how_many);
	}
	if (a->key != NULL && !is_posting(a->cmd))
		return usage_error(a, "--key applies to credit, debit, transfer, batch-debit and hold,"
						   " not %s", name);
	if ((rc = check_option_applies(a, a->expires_in, "--expires-in", CMD_HOLD)) != 0 ||
		(rc = check_option_applies(a, a->to, "--to", CMD_CAPTURE)) != 0 ||
		(rc = check_option_applies(a, a->at, "--at", CMD_BALANCE)) != 0 ||
		(rc = check_option_applies(a, a->before, "--before", CMD_HISTORY)) != 0)
		return rc;
	if (takes_hold_id(a->cmd) &&
		(!parse_integer(a->pos[0], false, &a->hold_id) || a->hold_id == 0))
		return usage_error(a, "HOLD_ID must be a hold id (ASCII digits, > 0), not \"%s\"",
						   a->pos[0]);

	if (a->retries != NULL)
	{
		if (!parse_integer(a->retries, false, &n) || n < 1 || n > 1000)
			return usage_error(a, "--retries must be an integer from 1 to 1000, not \"%s\"",
							   a->retries);
		a->retry_attempts = (int) n;
	}
	a->timeout_s = DEFAULT_TIMEOUT_S;
	if (a->timeout != NULL)
	{
		if (!parse_integer(a->timeout, false, &n) || n > MAX_TIMEOUT_S)
			return usage_error(a, "--timeout must be a number of seconds from 0 to %d, not \"%s\"",
							   MAX_TIMEOUT_S, a->timeout);
		a->timeout_s = (int) n;
	}

	switch (a->cmd)
	{
		case CMD_OPEN:
			if (a->no_floor && a->min_balance != NULL)
				return usage_error(a, "%s", "--no-floor and --min-balance exclude each other");
			if (a->no_floor)
				a->floor = LEDGER_NO_FLOOR;
			else if (a->min_balance != NULL && !parse_integer(a->min_balance, true, &a->floor))
				return usage_error(a, "--min-balance must be an integer ('-' and digits), not \"%s\"",
								   a->min_balance);
			return 0;
		case CMD_CREDIT:
		case CMD_DEBIT:
			return check_amount(a, a->pos[1], &a->amount);
		case CMD_TRANSFER:
			return check_amount(a, a->pos[2], &a->amount);
		case CMD_HISTORY:
			if (a->before != NULL &&
				(!parse_integer(a->before, false, &a->before_id) || a->before_id == 0))
				return usage_error(a, "--before must be an entry id (ASCII digits, > 0), not \"%s\"",
								   a->before);
			return check_limit(a);
		case CMD_HOLDS:
			return check_limit(a);
		case CMD_MODE:
			if (a->npos == 2 && strcmp(a->pos[1], "locked") != 0 &&
				strcmp(a->pos[1], "escrow") != 0)
				return usage_error(a, "the mode is locked or escrow, not \"%s\"", a->pos[1]);
			return 0;
		case CMD_HOLD:
			if (a->expires_in != NULL &&
				(!parse_integer(a->expires_in, false, &n) || n == 0 || n > INT64_MAX / 1000))
				return usage_error(a, "--expires-in must be a number of seconds (ASCII digits,"
								   " 1 to %" PRId64 "), not \"%s\"", INT64_MAX / 1000,
								   a->expires_in);
			a->expires_in_ms = a->expires_in != NULL ? n * 1000 : 0;
			return check_amount(a, a->pos[1], &a->amount);
		case CMD_CAPTURE:
			a->amount = 0;
			if (a->npos == 2)
			{
				if ((rc = check_amount(a, a->pos[1], &a->amount)) != 0)
					return rc;
				if (a->amount == 0)
					return usage_error(a, "%s", "AMOUNT must be > 0; leave it out to capture the"
									   " whole hold");
			}
			return 0;
		case CMD_BALANCE:
			if (a->at != NULL && !parse_timestamp(a->at, &a->at_us))
				return usage_error(a, "--at must be a time like 2026-11-29T12:00:00Z or"
								   " 2026-11-29T13:00:00.123456+01:00 (see ledger balance"
								   " --help), not \"%s\"", a->at);
			return 0;
		case CMD_BATCH_DEBIT:
			return check_items(a);
		default:
			return 0;
	}
}

/*
 * The key of a posting: --key, or one generated here rather than by the
 * library, so that the key a retry needs is known whatever the call
 * reports.  batch-debit gives item N the key KEY.N.
 */
static int
choose_key(Args *a)
{
	size_t		key_size;
	int			i;

	if (!is_posting(a->cmd))
		return 0;
	a->posting_key = a->key;
	if (a->posting_key == NULL)
	{
		if (ledger_generate_key(a->generated_key, sizeof(a->generated_key)) != LEDGER_OK)
			return internal_error(a, "could not read random bytes for an idempotency key");
		a->posting_key = a->generated_key;
	}
	if (a->cmd != CMD_BATCH_DEBIT)
		return 0;
	key_size = strlen(a->posting_key) + 24; /* ".N" and the NUL */
	a->item_keys = calloc((size_t) a->npos, key_size);
	if (a->item_keys == NULL)
		return internal_error(a, "out of memory");
	for (i = 0; i < a->npos; i++)
	{
		snprintf(a->item_keys + i * key_size, key_size, "%s.%d", a->posting_key, i + 1);
		a->items[i].idempotency_key = a->item_keys + i * key_size;
	}
	return 0;
}

/* ---- results ---------------------------------------------------------------- */

/* Room for format_time's text, whatever the fields hold. */
#define TIME_BUFSIZE 128

/* ISO 8601 in UTC with microseconds; buf holds TIME_BUFSIZE bytes. */
static void
format_time(int64_t us, char *buf)
{
	int64_t		secs = us / 1000000;
	int64_t		frac = us % 1000000;
	time_t		t;
	struct tm	tm;

	if (frac < 0)
	{
		frac += 1000000;
		secs -= 1;
	}
	t = (time_t) secs;
	if (gmtime_r(&t, &tm) == NULL)
	{
		snprintf(buf, TIME_BUFSIZE, "%" PRId64, us);
		return;
	}
	/* not strftime's %Y: years before 1000 need their four digits */
	snprintf(buf, TIME_BUFSIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) frac);
}

/* Report a failed call; returns the exit status. */
static int
report_failure(const Args *a, LedgerConn *conn, LedgerStatus status)
{
	const char *sqlstate = ledger_error_sqlstate(conn);
	const char *detail = ledger_error_detail(conn);
	const char *hint = ledger_error_hint(conn);
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
		else if (takes_hold_id(a->cmd))
			json_field_int("hold_id", a->hold_id);
		else if (a->cmd != CMD_VERIFY && a->cmd != CMD_BATCH_DEBIT)
			json_field_string("account", a->pos[0]);
		if (is_posting(a->cmd))
			json_field_string("key", a->posting_key);
		json_field_int("attempts", ledger_last_attempts(conn));
		printf("}\n");
		return code;
	}
	fprintf(stderr, "pg_ledger: %s failed: %s", commands[a->cmd_index].name,
			ledger_status_name(status));
	if (sqlstate != NULL)
		fprintf(stderr, " (%s)", sqlstate);
	fprintf(stderr, ": %s\n", ledger_error_message(conn));
	if (detail != NULL)
		fprintf(stderr, "DETAIL:  %s\n", detail);
	if (hint != NULL)
		fprintf(stderr, "HINT:  %s\n", hint);
	if (status == LEDGER_UNKNOWN_OUTCOME && is_posting(a->cmd))
	{
		fprintf(stderr, "pg_ledger: the posting may or may not have been applied; run the same"
				" command again with --key ");
		put_field(stderr, a->posting_key);
		fprintf(stderr, " (a retry without that key may post twice)\n");
	}
	if (status == LEDGER_UNKNOWN_OUTCOME && a->cmd == CMD_CAPTURE)
		fprintf(stderr, "pg_ledger: the capture may or may not have been applied; run the same"
				" command again: with the same hold id and arguments it prints the first"
				" result and cannot post twice\n");
	if (status == LEDGER_UNKNOWN_OUTCOME && a->cmd == CMD_RELEASE)
		fprintf(stderr, "pg_ledger: the release may or may not have been applied; run the same"
				" command again: it cannot release twice (it prints false if the first"
				" attempt released the hold)\n");
	return code;
}

static int
run_number(const Args *a, LedgerConn *conn)
{
	LedgerStatus status = LEDGER_CLIENT_ERROR;
	const char *label = "balance";
	int64_t		result = 0;

	switch (a->cmd)
	{
		case CMD_OPEN:
			label = "account_id";
			status = ledger_open_account(conn, a->pos[0], a->currency, a->floor, &result);
			break;
		case CMD_CREDIT:
			status = ledger_credit(conn, a->pos[0], a->amount, a->posting_key, &result);
			break;
		case CMD_DEBIT:
			status = ledger_debit(conn, a->pos[0], a->amount, a->posting_key, &result);
			break;
		case CMD_TRANSFER:
			label = "transfer_id";
			status = ledger_transfer(conn, a->pos[0], a->pos[1], a->amount, a->posting_key,
									 &result);
			break;
		case CMD_BALANCE:
			if (a->at != NULL)
				status = ledger_balance_at(conn, a->pos[0], a->at_us, &result);
			else
				status = ledger_balance(conn, a->pos[0], &result);
			break;
		case CMD_HOLD:
			label = "hold_id";
			status = ledger_hold(conn, a->pos[0], a->amount, a->expires_in_ms, a->posting_key,
								 &result);
			break;
		case CMD_CAPTURE:
			status = ledger_capture(conn, a->hold_id, a->amount, a->to, &result);
			break;
		case CMD_AVAILABLE:
			label = "available";
			status = ledger_available(conn, a->pos[0], &result);
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
	if (a->cmd == CMD_TRANSFER)
	{
		json_field_string("from", a->pos[0]);
		json_field_string("to", a->pos[1]);
	}
	else if (a->cmd == CMD_CAPTURE)
	{
		json_field_int("hold_id", a->hold_id);
		json_field_string("to", a->to);
	}
	else
		json_field_string("account", a->pos[0]);
	if (a->cmd == CMD_CAPTURE && a->amount == 0)
		printf(",\"amount\":null");	/* the whole hold */
	else if (a->cmd != CMD_BALANCE && a->cmd != CMD_OPEN && a->cmd != CMD_AVAILABLE)
		json_field_int("amount", a->amount);
	if (a->cmd == CMD_HOLD && a->expires_in_ms != 0)
		json_field_int("expires_in", a->expires_in_ms / 1000);
	else if (a->cmd == CMD_HOLD)
		printf(",\"expires_in\":null");
	if (a->cmd == CMD_BALANCE && a->at != NULL)
	{
		char		when[TIME_BUFSIZE];

		format_time(a->at_us, when);
		json_field_string("at", when);
	}
	json_field_int(label, result);
	if (is_posting(a->cmd))
		json_field_string("key", a->posting_key);
	json_field_int("attempts", ledger_last_attempts(conn));
	printf("}\n");
	return 0;
}

static int
run_history(const Args *a, LedgerConn *conn)
{
	LedgerHistory *h;
	LedgerStatus status;
	size_t		i;

	if (a->before_id != 0)
		status = ledger_history_before(conn, a->pos[0], a->max_rows, a->before_id, &h);
	else
		status = ledger_history(conn, a->pos[0], a->max_rows, &h);
	if (status != LEDGER_OK)
		return report_failure(a, conn, status);

	if (a->json)
	{
		printf("{\"status\":\"ok\"");
		json_field_string("account", a->pos[0]);
		if (a->before_id != 0)
			json_field_int("before", a->before_id);
		printf(",\"entries\":[");
	}
	for (i = 0; i < h->n_entries; i++)
	{
		const LedgerEntry *e = &h->entries[i];
		char		when[TIME_BUFSIZE];
		char		transfer[32] = "";

		format_time(e->created_at_us, when);
		if (e->transfer_id != 0)
			snprintf(transfer, sizeof(transfer), "%" PRId64, e->transfer_id);
		if (a->json)
		{
			printf("%s{\"entry_id\":%" PRId64, i ? "," : "", e->entry_id);
			json_field_int("amount", e->amount);
			if (e->balance_after == LEDGER_NOT_FOLDED)
				printf(",\"balance_after\":null");
			else
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
			char		after[32] = "";

			if (e->balance_after != LEDGER_NOT_FOLDED)
				snprintf(after, sizeof(after), "%" PRId64, e->balance_after);
			printf("%" PRId64 "\t%" PRId64 "\t%s\t%s\t", e->entry_id, e->amount, after, transfer);
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
run_release(const Args *a, LedgerConn *conn)
{
	LedgerStatus status;
	int			released = 0;

	status = ledger_release(conn, a->hold_id, &released);
	if (status != LEDGER_OK)
		return report_failure(a, conn, status);
	if (!a->json)
	{
		printf("%s\n", released ? "true" : "false");
		return 0;
	}
	printf("{\"status\":\"ok\"");
	json_field_int("hold_id", a->hold_id);
	printf(",\"released\":%s", released ? "true" : "false");
	json_field_int("attempts", ledger_last_attempts(conn));
	printf("}\n");
	return 0;
}

/* mode ACCOUNT [MODE]: the mode, or set it and print the one it had */
static int
run_mode(const Args *a, LedgerConn *conn)
{
	LedgerAccountMode mode;
	LedgerStatus status;

	if (a->npos == 2)
		status = ledger_set_account_mode(conn, a->pos[0],
										 strcmp(a->pos[1], "escrow") == 0
										 ? LEDGER_MODE_ESCROW : LEDGER_MODE_LOCKED,
										 &mode);
	else
		status = ledger_account_mode(conn, a->pos[0], &mode);
	if (status != LEDGER_OK)
		return report_failure(a, conn, status);
	if (!a->json)
	{
		printf("%s\n", ledger_mode_name(mode));
		return 0;
	}
	printf("{\"status\":\"ok\"");
	json_field_string("account", a->pos[0]);
	if (a->npos == 2)
	{
		json_field_string("mode", a->pos[1]);
		json_field_string("previous", ledger_mode_name(mode));
	}
	else
		json_field_string("mode", ledger_mode_name(mode));
	json_field_int("attempts", ledger_last_attempts(conn));
	printf("}\n");
	return 0;
}

static int
run_holds(const Args *a, LedgerConn *conn)
{
	LedgerHolds *h;
	LedgerStatus status;
	size_t		i;

	status = ledger_holds(conn, a->pos[0], a->max_rows, &h);
	if (status != LEDGER_OK)
		return report_failure(a, conn, status);

	if (a->json)
	{
		printf("{\"status\":\"ok\"");
		json_field_string("account", a->pos[0]);
		printf(",\"holds\":[");
	}
	for (i = 0; i < h->n_holds; i++)
	{
		const LedgerHold *hold = &h->holds[i];
		bool		captured = strcmp(hold->status, "captured") == 0;
		char		created[TIME_BUFSIZE];
		char		expires[TIME_BUFSIZE] = "";
		char		amount_captured[32] = "";

		format_time(hold->created_at_us, created);
		if (hold->has_expiry)
			format_time(hold->expires_at_us, expires);
		if (captured)
			snprintf(amount_captured, sizeof(amount_captured), "%" PRId64, hold->captured);
		if (a->json)
		{
			printf("%s{\"hold_id\":%" PRId64, i ? "," : "", hold->hold_id);
			json_field_int("amount", hold->amount);
			if (captured)
				json_field_int("captured", hold->captured);
			else
				printf(",\"captured\":null");
			json_field_string("status", hold->status);
			json_field_string("created_at", created);
			json_field_string("expires_at", hold->has_expiry ? expires : NULL);
			json_field_string("idempotency_key", hold->idempotency_key);
			printf("}");
		}
		else
		{
			printf("%" PRId64 "\t%" PRId64 "\t%s\t", hold->hold_id, hold->amount,
				   amount_captured);
			put_field(stdout, hold->status);
			printf("\t%s\t%s\t", created, expires);
			put_field(stdout, hold->idempotency_key ? hold->idempotency_key : "");
			putchar('\n');
		}
	}
	if (a->json)
		printf("]}\n");
	ledger_holds_free(h);
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

/* The statuses one item of a server batch can be refused with. */
static bool
is_item_refusal(LedgerStatus status)
{
	return status == LEDGER_INSUFFICIENT_FUNDS || status == LEDGER_ACCOUNT_NOT_FOUND ||
		status == LEDGER_IDEMPOTENCY_CONFLICT || status == LEDGER_CURRENCY_MISMATCH ||
		status == LEDGER_INVALID_PARAMETER_VALUE ||
		status == LEDGER_NUMERIC_VALUE_OUT_OF_RANGE ||
		status == LEDGER_INSUFFICIENT_PRIVILEGE;
}

/*
 * batch-debit: every item keyed KEY.N, so that the same command with the
 * same --key replays the whole batch, also after an unknown outcome.
 */
static int
run_batch_debit(const Args *a, LedgerConn *conn)
{
	LedgerPosting *items = a->items;
	size_t		n = (size_t) a->npos;
	LedgerStatus status;
	size_t		i;

	status = ledger_post_batch(conn, items, n);
	if (status != LEDGER_OK && !is_item_refusal(status))
	{
		/* a whole-call failure: nothing was applied, nothing to list */
		return report_failure(a, conn, status);
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
		json_field_string("key", a->posting_key);
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
		fprintf(stderr, "pg_ledger: batch-debit: %zu of %zu items refused, the first is item %zu (",
				refused, n, first + 1);
		put_field(stderr, items[first].account);
		fprintf(stderr, ":%" PRId64 "): %s (%s)\n", items[first].amount,
				ledger_status_name(status), items[first].sqlstate ? items[first].sqlstate : "");
	}
	return status == LEDGER_OK ? 0 : EXIT_STATUS_BASE + (int) status;
}

/* Everything main does; *a holds what main frees. */
static int
run_command(int argc, char **argv, Args *a)
{
	LedgerOptions opts;
	LedgerConn *conn;
	int			rc;

	a->json = wants_json(argc, argv);
	if ((rc = parse_args(argc, argv, a)) != 0)
		return rc;
	if (a->version)
	{
		int			v = ledger_library_version();

		if (a->json)
			printf("{\"status\":\"ok\",\"version\":\"%d.%d.%d\"}\n",
				   v / 10000, v / 100 % 100, v % 100);
		else
			printf("pg_ledger (libledger) %d.%d.%d\n", v / 10000, v / 100 % 100, v % 100);
		return 0;
	}
	if (a->help)
		return print_help(a);
	if ((rc = check_args(a)) != 0 || (rc = choose_key(a)) != 0)
		return rc;

	ledger_options_init(&opts);
	opts.conninfo = a->conninfo;
	if (a->retry_attempts > 0)
		opts.retry_attempts = a->retry_attempts;

	/*
	 * A failed first connection is not final: the call reconnects with the
	 * retry policy, and its status is what we report.
	 */
	(void) ledger_connect(&opts, &conn);
	if (conn == NULL)
		return internal_error(a, "out of memory");
	/*
	 * One call per connection: an unnamed statement is one round trip
	 * fewer than preparing it, and works behind any pooler.
	 */
	if (ledger_set_statements(conn, LEDGER_STATEMENTS_UNNAMED) != LEDGER_OK ||
		ledger_set_timeout(conn, a->timeout_s * 1000) != LEDGER_OK)
	{
		rc = internal_error(a, "could not set up the connection: %s", ledger_error_message(conn));
		ledger_finish(conn);
		return rc;
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
		case CMD_RELEASE:
			rc = run_release(a, conn);
			break;
		case CMD_HOLDS:
			rc = run_holds(a, conn);
			break;
		case CMD_MODE:
			rc = run_mode(a, conn);
			break;
		default:
			rc = run_number(a, conn);
			break;
	}
	ledger_finish(conn);
	return rc;
}

int
main(int argc, char **argv)
{
	Args		a = {0};
	int			rc = run_command(argc, argv, &a);

	/*
	 * A full disk or a closed pipe: the output, JSON included, is incomplete
	 * and nothing more can be written to stdout, so this goes to stderr.
	 */
	if (fflush(stdout) != 0 || ferror(stdout))
	{
		fprintf(stderr, "pg_ledger: could not write the output: %s\n", strerror(errno));
		rc = EXIT_INTERNAL;
	}
	free(a.pos);
	free(a.items);
	free(a.item_keys);
	return rc;
}
