/*
 * fuzz.c: seeded random fuzzer of the ledger's SQL API (run by fuzz.sh).
 *
 * Usage: fuzz [-s SEED] [-n CALLS] [-t SECONDS] [-x SQLSTATE] CONNINFO
 *
 * Throws CALLS (default 20000) random calls at every SQL function --
 * ledger_open_account, _credit, _debit, _transfer, _balance, _history,
 * _verify, and the holds of 1.2: _hold, _capture, _release, _available,
 * _holds, _expire_holds, _balance_at -- in every arity their defaults
 * allow, over one connection, with every argument sent as text through
 * PQexecParams (typed text, bigint, int, interval, timestamptz: no SQL is
 * ever built from the data):
 *
 *   names, keys, currencies: NULL; a pool of valid account names (so
 *     postings often succeed: floors 0, -500, INT64_MIN, none; two
 *     currencies); names the fuzzer opened; a pool of 300 reused keys
 *     (replays and LG003); random byte strings of length 0..100000:
 *     ASCII, control characters, valid multi-byte UTF-8, random bytes
 *     (mostly invalid UTF-8), overlong forms, surrogates, truncated
 *     sequences, SQL and format-string fragments, exactly 255/256 bytes
 *   amounts and floors: NULL, 0, +-1, INT64_MIN, INT64_MAX and neighbours,
 *     powers of two +-1, small positive amounts, random 64-bit values, and
 *     text that is not a valid bigint ("", "abc", "9223372036854775808")
 *   max_rows: NULL, 0, -1, INT32_MIN, INT32_MAX, small, random, invalid
 *   hold ids: NULL, ids of holds the fuzzer made (pending, captured,
 *     released, expired), unknown ids, 0, negative, bigint edges, invalid
 *   expires_in: NULL; positive (1 microsecond .. 300000 years, ISO 8601
 *     and @ forms, "-1 month 31 days"); zero or negative ("1 month -30
 *     days", "1 day -24 hours"); past the timestamp range ("178000000
 *     years", "2147483647 days"); not an interval; random bytes
 *   timestamps: NULL, +-infinity, epoch, now, the range's ends, random
 *     dates, out of range, not a timestamp, random bytes
 *   a capture's amount and to_account: NULL (the whole hold; a debit),
 *     above the hold, 0, negative; the held account itself, another
 *     currency, unknown accounts
 *
 * One call in five runs inside an explicit transaction (READ COMMITTED,
 * REPEATABLE READ or SERIALIZABLE; 1-5 calls, each in a savepoint rolled
 * back on error; COMMIT or ROLLBACK at the end).
 *
 * Asserts, for every call:
 *  - it succeeded, or failed with a SQLSTATE documented for that function
 *    in the README's table (minus 42501: this runs as a superuser, and
 *    55000: fsync is on), or 40001/40P01;
 *  - or it failed in Postgres's input layer, before the ledger ran, and
 *    then with exactly the code the input calls for, for the first bad
 *    parameter in order: 22021 (character_not_in_repertoire) for a
 *    parameter that is not valid UTF-8 -- checked by this program with
 *    the same rules as Postgres -- and 22P02 (invalid_text_representation)
 *    or 22003 (numeric_value_out_of_range) for text that is not a bigint
 *    or int, and the code datetime input gives for a listed interval or
 *    timestamp that is not one (22007, 22008, 22015).  These codes are
 *    allowed only when such a parameter was sent; random bytes sent as an
 *    interval or a timestamp may or may not parse, so there any datetime
 *    input code (22007 22008 22009 22015 22023), the function's own codes
 *    or success are allowed;
 *  - the connection is still up (the backend did not crash);
 *  - a successful debit or credit of a pool account returned a balance not
 *    below its floor, and so did a capture of a hold on one, a
 *    ledger_balance_at and a ledger_available of one; ledger_history and
 *    ledger_holds returned at most max_rows rows; ledger_holds' statuses
 *    are the four of §7, a captured amount never more than the hold;
 *    ledger_expire_holds() returned a count >= 0; ledger_verify()
 *    returned no row.
 *
 * Hold amounts cover the whole bigint range, so the pending holds of an
 * account without a floor (or with a balance near the bigint maximum) can
 * add up past bigint: the extension refuses such a hold with 22003.  An
 * expires_in past the timestamp range is 22023, like every invalid one.
 * At the end ledger_verify() is empty, and (for 5000 calls or more) every
 * documented outcome was reached at least once, so the fuzzer really
 * exercises what it claims to.  fuzz.sh also checks the server log.
 *
 * -x SQLSTATE removes a code from every allowed set: the run must then
 * FAIL (how fuzz.sh's self-test shows the check works).  The documented
 * sets per function are in documented[] below; for the holds they are
 * those of ARCHITECTURE §7 and sql/holds.sql (42501 does not apply to a
 * superuser, 55000 not with fsync on).
 *
 * The seed is printed first; the same seed replays the same calls.
 */
#define _POSIX_C_SOURCE 200809L	/* getopt, clock_gettime */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define TEXTOID 25
#define INT8OID 20
#define INT4OID 23
#define INTERVALOID 1186
#define TIMESTAMPTZOID 1184

#define MAX_LENGTH 100000
#define NKEYS 300
#define NOPENED 256
#define MAX_FAILURES 20
#define NHOLDS 512

/* the codes datetime input may raise for text that is not a valid value */
#define DATETIME_INPUT_CODES "22007 22008 22009 22015 22023"

typedef enum
{
	F_OPEN, F_CREDIT, F_DEBIT, F_TRANSFER, F_BALANCE, F_HISTORY, F_VERIFY,
	F_HOLD, F_CAPTURE, F_RELEASE, F_AVAILABLE, F_HOLDS, F_EXPIRE, F_BALANCE_AT,
	F_SET_MODE, F_MODE, NFUNCS
} func;

static const char *const func_names[NFUNCS] = {
	"ledger_open_account", "ledger_credit", "ledger_debit", "ledger_transfer",
	"ledger_balance", "ledger_history", "ledger_verify",
	"ledger_hold", "ledger_capture", "ledger_release", "ledger_available",
	"ledger_holds", "ledger_expire_holds", "ledger_balance_at",
	"ledger_set_account_mode", "ledger_account_mode"
};

/*
 * SQLSTATEs documented per function (README, "SQL API"; ARCHITECTURE §7
 * and sql/holds.sql for the holds), space-separated.  A capture follows
 * the rules of ledger_transfer (LG002, LG004, 22003 for its to_account)
 * but is never refused for funds: the hold reserved them, so LG001 is not
 * in its set.  A release and the sweep name no account.
 */
static const char *const documented[NFUNCS] = {
	"LG005 22023 22004",
	"LG002 LG003 22003 22023 22004",
	"LG001 LG002 LG003 22003 22023 22004",
	"LG001 LG002 LG003 LG004 22003 22023 22004",
	"LG002 22023 22004",
	"LG002 22023 22004",
	"",
	"LG001 LG002 LG003 22003 22023 22004",
	"LG002 LG003 LG004 LG006 LG007 22003 22023 22004",
	"LG006 LG007 22004",
	"LG002 22023 22004",
	"LG002 22023 22004",
	"",
	"LG002 22023 22004",
	/* 0A000: in REPEATABLE READ, or switching an account this transaction posted to in escrow mode */
	"LG002 22023 22004 0A000",
	"LG002 22023 22004"
};
static const char *const always_allowed = "40001 40P01";

/* outcomes every long enough run must reach */
static const char *const must_reach[] = {
	"LG001", "LG002", "LG003", "LG004", "LG005", "LG006", "LG007", "22023", "22004",
	"22003", "22021", "22P02", "22007"
};

/* the pool of accounts opened at the start */
typedef struct
{
	const char *name;
	const char *currency;
	const char *floor;			/* NULL: no floor */
	long long	floor_value;
} pool_account;

static char long_name[256];		/* 255 bytes: the longest valid name */
static pool_account pool[] = {
	{"alice", "XXX", "0", 0},
	{"bob", "XXX", "0", 0},
	{"carol", "XXX", "-500", -500},
	{"source", "XXX", NULL, 0},
	{"deep", "XXX", "-9223372036854775808", INT64_MIN},
	{"eur-1", "EUR", "0", 0},
	{"eur-2", "EUR", NULL, 0},
	{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb0", "XXX", "0", 0},
	{"o'brien; DROP TABLE ledger.accounts; --", "XXX", "-1", -1},
	{"%s%n\\x00", "A_1", "0", 0},
	{long_name, "XXX", "0", 0},
};
#define NPOOL ((int) (sizeof(pool) / sizeof(pool[0])))

static uint64_t rng;
static const char *disallowed;
static char opened[NOPENED][256];
static int	nopened;

/* holds the fuzzer made (maybe rolled back since): id and pool account */
typedef struct
{
	long long	id;
	int			pool_account;	/* -1: not a pool account */
} made_hold;
static made_hold holds_made[NHOLDS];
static int	nholds_made;

/* statistics */
static long long calls_per_func[NFUNCS];
static long long ok_per_func[NFUNCS];
typedef struct
{
	char		code[6];
	long long	n;
} code_count;
static code_count codes[64];
static int	ncodes;
static int	failures;

/* splitmix64 */
static uint64_t
next_random(void)
{
	uint64_t	z = (rng += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static int
below(int n)
{
	return (int) (next_random() % (uint64_t) n);
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n);

	if (p == NULL)
	{
		fprintf(stderr, "fuzz: out of memory\n");
		exit(2);
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	size_t		n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

/*
 * Is s valid UTF-8 by Postgres's rules (pg_utf8_islegal): no overlong
 * forms, no surrogates, nothing above U+10FFFF.  s never contains NUL.
 */
static int
valid_utf8(const unsigned char *s)
{
	while (*s)
	{
		unsigned char c = *s;
		int			n, i;
		unsigned char lo = 0x80, hi = 0xBF;

		if (c < 0x80)
		{
			s++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF)
		{
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			n = 3;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		}
		else
			return 0;
		if (s[1] < lo || s[1] > hi)
			return 0;
		for (i = 2; i <= n; i++)
			if (s[i] < 0x80 || s[i] > 0xBF)
				return 0;
		s += n + 1;
	}
	return 1;
}

/* Append the UTF-8 encoding of code point cp (valid scalar) to buf. */
static size_t
put_utf8(char *buf, uint32_t cp)
{
	if (cp < 0x80)
	{
		buf[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		buf[0] = (char) (0xC0 | (cp >> 6));
		buf[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		buf[0] = (char) (0xE0 | (cp >> 12));
		buf[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		buf[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	buf[0] = (char) (0xF0 | (cp >> 18));
	buf[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	buf[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	buf[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

static size_t
random_length(void)
{
	int			d = below(100);

	if (d < 40)
		return (size_t) below(17);
	if (d < 70)
		return (size_t) below(301);
	if (d < 80)
		return d < 75 ? 255 : 256;
	if (d < 95)
		return (size_t) below(5001);
	return (size_t) below(MAX_LENGTH + 1);
}

/* A random NUL-free byte string of about len bytes, of one random kind. */
static char *
random_bytes(void)
{
	static const char *const fragments[] = {
		"'", "''", "\"", ";", "--", "/*", "*/", "\\", "%s", "%n", "$1", "::text",
		"DROP TABLE ledger.accounts", "' OR '1'='1", "\xc0\x80", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xe2\x82", "\xff", "\xef\xbb\xbf", "\xe2\x80\xae", " ", "\t\n"
	};
	size_t		len = random_length(), n = 0;
	char	   *s = xmalloc(len + 5);
	int			kind = below(6);

	while (n < len)
	{
		switch (kind)
		{
			case 0:				/* printable ASCII */
				s[n++] = (char) (' ' + below(95));
				break;
			case 1:				/* any ASCII but NUL */
				s[n++] = (char) (1 + below(127));
				break;
			case 2:				/* valid UTF-8, all lengths */
				{
					uint32_t	cp;

					do
						cp = (uint32_t) (below(4) == 0 ? 1 + below(0x7F)
										 : 0x80 + below(0x10FFFF - 0x80));
					while (cp >= 0xD800 && cp <= 0xDFFF);
					n += put_utf8(s + n, cp);
				}
				break;
			case 3:				/* random bytes: mostly invalid UTF-8 */
				s[n++] = (char) (1 + below(255));
				break;
			case 4:				/* valid text with one bad sequence in it */
				if (n == len / 2)
				{
					const char *f = fragments[14 + below(5)];
					size_t		fl = strlen(f);

					memcpy(s + n, f, fl < len - n ? fl : len - n);
					n += fl < len - n ? fl : len - n;
				}
				else
					s[n++] = (char) ('a' + below(26));
				break;
			default:			/* fragments */
				{
					const char *f = fragments[below((int) (sizeof(fragments) / sizeof(fragments[0])))];
					size_t		fl = strlen(f);

					memcpy(s + n, f, fl < len - n ? fl : len - n);
					n += fl < len - n ? fl : len - n;
				}
				break;
		}
	}
	s[n > len ? len : n] = '\0';
	return s;
}

/* An account name argument (NULL: SQL NULL).  Caller frees. */
static char *
gen_name(void)
{
	int			d = below(100);

	if (d < 4)
		return NULL;
	if (d < 55)
		return xstrdup(pool[below(NPOOL)].name);
	if (d < 65 && nopened > 0)
		return xstrdup(opened[below(nopened)]);
	if (d < 75)
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "acct-%d", below(200));	/* often unknown */
		return xstrdup(buf);
	}
	return random_bytes();
}

/* An idempotency key argument. */
static char *
gen_key(void)
{
	int			d = below(100);

	if (d < 25)
		return NULL;
	if (d < 75)
	{
		char		buf[16];

		snprintf(buf, sizeof(buf), "k%d", below(NKEYS));
		return xstrdup(buf);
	}
	if (d < 85)
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "fresh-%" PRIu64, next_random());
		return xstrdup(buf);
	}
	return random_bytes();
}

static char *
gen_currency(void)
{
	static const char *const fixed[] = {"XXX", "EUR", "A_1", "xxx", "", "EUR ", "ABCDEFGHIJKLMNOP",
	"ABCDEFGHIJKLMNOPQ", "€"};
	int			d = below(100);

	if (d < 5)
		return NULL;
	if (d < 70)
		return xstrdup(fixed[below((int) (sizeof(fixed) / sizeof(fixed[0])))]);
	if (d < 85)
	{
		char	   *s = xmalloc(21);
		int			i, n = below(21);
		static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

		for (i = 0; i < n; i++)
			s[i] = alphabet[below((int) sizeof(alphabet) - 1)];
		s[n] = '\0';
		return s;
	}
	return random_bytes();
}

/*
 * An integer argument as text.  bits 64 (bigint) or 32 (int).  Sets *bad
 * when the text is not a valid value of that type.
 */
static char *
gen_integer(int bits, int amount, int *bad)
{
	static const char *const invalid[] = {
		"", " ", "abc", "1e5", "0x10", "12abc", "--1", "+", "1.5", "\xd9\xa1\xd9\xa2",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999999",
		"2147483648", "-2147483649"
	};
	char		buf[32];
	int			d = below(100);
	long long	v;

	*bad = 0;
	if (d < 5)
		return NULL;
	if (d < 8)
	{
		const char *s = invalid[below((int) (sizeof(invalid) / sizeof(invalid[0])))];

		/* 2147483648 is a valid bigint: bad only for int */
		if (bits == 64 && (strcmp(s, "2147483648") == 0 || strcmp(s, "-2147483649") == 0))
			return xstrdup(s);
		*bad = 1;
		return xstrdup(s);
	}
	if (d < 50 && amount)
		v = 1 + below(1000);
	else if (d < 60)
	{
		static const long long special[] = {
			0, 1, -1, INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1,
			INT32_MIN, INT32_MAX, (long long) INT32_MIN - 1, (long long) INT32_MAX + 1, -500
		};

		v = special[below((int) (sizeof(special) / sizeof(special[0])))];
	}
	else if (d < 75)
	{
		int			shift = below(63);

		v = (long long) (UINT64_C(1) << shift) + (below(3) - 1);
		if (below(2))
			v = -v;
	}
	else if (d < 85 && !amount)
		v = below(20);
	else
		v = (long long) next_random();

	if (bits == 32 && (v < INT32_MIN || v > INT32_MAX))
		*bad = 1;				/* out of range for int: 22003 from int4in */
	snprintf(buf, sizeof(buf), "%lld", v);
	return xstrdup(buf);
}

/* ------------------------------------------------------------ a call */

typedef struct
{
	func		f;
	int			nparams;
	char	   *values[4];
	Oid			types[4];
	int			bad_integer[4];
	const char *bad_datetime[4];	/* input codes of a listed bad value */
	int			maybe_bad[4];	/* random bytes as a datetime: may not parse */
	int			required[4];	/* NULL is an error (22004) here */
	int			pool_account;	/* debit/credit/available/balance_at: index in pool,
								 * or -1; capture: the held account's */
	long long	max_rows;		/* history, holds: -1 for the default 100 */
} call;

static void
free_call(call *c)
{
	int			i;

	for (i = 0; i < c->nparams; i++)
		free(c->values[i]);
}

static void
add_text(call *c, char *v, int required)
{
	c->values[c->nparams] = v;
	c->types[c->nparams] = TEXTOID;
	c->bad_integer[c->nparams] = 0;
	c->bad_datetime[c->nparams] = NULL;
	c->maybe_bad[c->nparams] = 0;
	c->required[c->nparams] = required;
	c->nparams++;
}

static void
add_integer(call *c, int bits, int amount, int required)
{
	int			bad;

	c->values[c->nparams] = gen_integer(bits, amount, &bad);
	c->types[c->nparams] = bits == 64 ? INT8OID : INT4OID;
	c->bad_integer[c->nparams] = bad;
	c->bad_datetime[c->nparams] = NULL;
	c->maybe_bad[c->nparams] = 0;
	c->required[c->nparams] = required;
	c->nparams++;
}

/* A literal of a datetime type and the input codes it raises ("" if valid). */
typedef struct
{
	const char *text;
	const char *codes;
} datetime_literal;

/*
 * An expires_in argument: positive, not, huge (past 1000 years, or past
 * the timestamp range), invalid input, or random bytes.
 */
static void
add_interval(call *c)
{
	static const datetime_literal positive[] = {
		{"1 microsecond", ""}, {"1 millisecond", ""}, {"10 milliseconds", ""},
		{"1 second", ""}, {"00:00:01", ""}, {"1", ""}, {"1 hour", ""}, {"1 day", ""},
		{"1 mon", ""}, {"1 year", ""}, {"P1D", ""}, {"@ 1 hour", ""}, {"1 day 2", ""},
		{"-1 month 31 days", ""}, {"1 day -1 hour", ""}, {"100000 years", ""}
	};
	static const datetime_literal not_positive[] = {
		{"0", ""}, {"0 seconds", ""}, {"-1 day", ""}, {"-1 microsecond", ""},
		{"1 month -30 days", ""}, {"1 day -24 hours", ""}, {"-178000000 years", ""},
		{"1 day ago", ""}
	};
	static const datetime_literal huge[] = {
		{"178000000 years", ""}, {"300000 years", ""}, {"2147483647 days", ""},
		{"9223372036854775807 microseconds", ""}, {"2147483647 months", ""}
	};
	static const datetime_literal invalid[] = {
		{"", "22007"}, {"abc", "22007"}, {"1 fortnight", "22007"}, {"--1 day", "22007"},
		{"infinity", "22007"}, {"P", "22007"}, {"99999999999 years", "22015"},
		{"2147483648 days", "22015"}, {"9223372036854775808 microseconds", "22015"}
	};
	int			d = below(100);
	const datetime_literal *l;

#define PICK(list) (&(list)[below((int) (sizeof(list) / sizeof((list)[0])))])
	c->types[c->nparams] = INTERVALOID;
	c->bad_integer[c->nparams] = 0;
	c->bad_datetime[c->nparams] = NULL;
	c->maybe_bad[c->nparams] = 0;
	c->required[c->nparams] = 0;	/* NULL: never expires */
	if (d < 30)
		c->values[c->nparams] = NULL;
	else if (d < 90)
	{
		l = d < 60 ? PICK(positive) : d < 75 ? PICK(not_positive) : d < 82 ? PICK(huge)
			: PICK(invalid);
		c->values[c->nparams] = xstrdup(l->text);
		if (l->codes[0] != '\0')
			c->bad_datetime[c->nparams] = l->codes;
	}
	else
	{
		c->values[c->nparams] = random_bytes();
		c->maybe_bad[c->nparams] = 1;
	}
	c->nparams++;
}

/* A timestamptz argument (required). */
static void
add_timestamp(call *c)
{
	static const datetime_literal valid[] = {
		{"infinity", ""}, {"-infinity", ""}, {"epoch", ""}, {"now", ""}, {"today", ""},
		{"294276-12-31 23:59:59+00", ""}, {"4714-11-24 00:00:00+00 BC", ""},
		{"J2451187", ""}, {"1999-01-08 04:05:06 PST", ""}, {"20000-01-01", ""}
	};
	static const datetime_literal invalid[] = {
		{"", "22007"}, {"abc", "22007"}, {"2000-13-01", "22008"}, {"2000-02-30", "22008"},
		{"294277-01-01", "22008"}, {"4714-11-23 00:00:00+00 BC", "22008"},
		{"2000-01-01 00:00:00+99", "22009"}, {"2000-01-01 00:00 America/Nowhere", "22023"}
	};
	int			d = below(100);
	const datetime_literal *l;

	c->types[c->nparams] = TIMESTAMPTZOID;
	c->bad_integer[c->nparams] = 0;
	c->bad_datetime[c->nparams] = NULL;
	c->maybe_bad[c->nparams] = 0;
	c->required[c->nparams] = 1;
	if (d < 5)
		c->values[c->nparams] = NULL;
	else if (d < 40)
	{
		l = PICK(valid);
		c->values[c->nparams] = xstrdup(l->text);
	}
	else if (d < 80)
	{
		char		buf[64];

		/* a date in the last years, when the fuzzer's entries are or are not */
		snprintf(buf, sizeof(buf), "%d-%02d-%02d %02d:%02d:%02d.%06d+00",
				 1990 + below(50), 1 + below(12), 1 + below(28), below(24), below(60),
				 below(60), below(1000000));
		c->values[c->nparams] = xstrdup(buf);
	}
	else if (d < 92)
	{
		l = PICK(invalid);
		c->values[c->nparams] = xstrdup(l->text);
		c->bad_datetime[c->nparams] = l->codes;
	}
	else
	{
		c->values[c->nparams] = random_bytes();
		c->maybe_bad[c->nparams] = 1;
	}
	c->nparams++;
#undef PICK
}

/* A hold id argument: mostly of holds the fuzzer made. */
static void
add_hold_id(call *c)
{
	if (nholds_made > 0 && below(100) < 60)
	{
		const made_hold *h = &holds_made[below(nholds_made)];
		char		buf[32];

		snprintf(buf, sizeof(buf), "%lld", h->id);
		c->values[c->nparams] = xstrdup(buf);
		c->types[c->nparams] = INT8OID;
		c->bad_integer[c->nparams] = 0;
		c->bad_datetime[c->nparams] = NULL;
		c->maybe_bad[c->nparams] = 0;
		c->required[c->nparams] = 1;
		c->nparams++;
		if (c->f == F_CAPTURE)
			c->pool_account = h->pool_account;
		return;
	}
	add_integer(c, 64, 1, 1);	/* small ids: often holds made, or unknown */
}

static int
pool_index(const char *name)
{
	int			i;

	for (i = 0; name != NULL && i < NPOOL; i++)
		if (strcmp(pool[i].name, name) == 0)
			return i;
	return -1;
}

static void
gen_call(call *c)
{
	int			d = below(100);

	memset(c, 0, sizeof(*c));
	c->pool_account = -1;
	c->max_rows = -1;
	c->f = d < 7 ? F_OPEN : d < 17 ? F_CREDIT : d < 32 ? F_DEBIT : d < 47 ? F_TRANSFER :
		d < 54 ? F_BALANCE : d < 62 ? F_HISTORY : d < 64 ? F_VERIFY : d < 76 ? F_HOLD :
		d < 85 ? F_CAPTURE : d < 90 ? F_RELEASE : d < 93 ? F_AVAILABLE : d < 96 ? F_HOLDS :
		d < 98 ? F_EXPIRE : F_BALANCE_AT;
	if (below(50) == 0)
		c->f = below(2) == 0 ? F_SET_MODE : F_MODE;
	switch (c->f)
	{
		case F_OPEN:
			add_text(c, gen_name(), 1);
			if (below(4) > 0)
				add_text(c, gen_currency(), 1);
			if (c->nparams == 2 && below(3) > 0)
				add_integer(c, 64, 0, 0);	/* NULL: no floor */
			break;
		case F_CREDIT:
		case F_DEBIT:
			add_text(c, gen_name(), 1);
			c->pool_account = pool_index(c->values[0]);
			add_integer(c, 64, 1, 1);
			if (below(4) > 0)
				add_text(c, gen_key(), 0);	/* NULL: no key */
			break;
		case F_TRANSFER:
			add_text(c, gen_name(), 1);
			add_text(c, gen_name(), 1);
			add_integer(c, 64, 1, 1);
			if (below(4) > 0)
				add_text(c, gen_key(), 0);
			break;
		case F_BALANCE:
			add_text(c, gen_name(), 1);
			break;
		case F_HISTORY:
		case F_HOLDS:
			add_text(c, gen_name(), 1);
			if (below(3) > 0)
			{
				add_integer(c, 32, 0, 1);
				c->max_rows = c->values[1] == NULL || c->bad_integer[1]
					? -2 : strtoll(c->values[1], NULL, 10);
				if (c->f == F_HISTORY && below(2) == 0)
					add_integer(c, 64, 0, 0);	/* before_entry_id; NULL: no paging */
			}
			break;
		case F_HOLD:
			add_text(c, gen_name(), 1);
			c->pool_account = pool_index(c->values[0]);
			add_integer(c, 64, 1, 1);
			if (below(4) > 0)
			{
				add_interval(c);
				if (below(2) > 0)
					add_text(c, gen_key(), 0);	/* NULL: no key */
			}
			break;
		case F_CAPTURE:
			add_hold_id(c);
			if (below(4) > 0)
			{
				if (below(3) == 0)
					add_text(c, NULL, 0);	/* NULL amount: the whole hold */
				else
					add_integer(c, 64, 1, 0);
				c->types[1] = INT8OID;
				if (below(3) > 0)
					add_text(c, below(3) == 0 ? NULL : gen_name(), 0);	/* NULL: a debit */
			}
			break;
		case F_RELEASE:
			add_hold_id(c);
			break;
		case F_AVAILABLE:
			add_text(c, gen_name(), 1);
			c->pool_account = pool_index(c->values[0]);
			break;
		case F_BALANCE_AT:
			add_text(c, gen_name(), 1);
			c->pool_account = pool_index(c->values[0]);
			add_timestamp(c);
			break;
		case F_SET_MODE:
			{
				static const char *const modes[] = {"escrow", "locked", "escrow", "locked",
				"fast", "", "ESCROW"};
				int			m = below(9);

				add_text(c, gen_name(), 1);
				c->pool_account = pool_index(c->values[0]);
				add_text(c, m < 7 ? xstrdup(modes[m]) : m == 7 ? NULL : random_bytes(), 1);
				break;
			}
		case F_MODE:
			add_text(c, gen_name(), 1);
			c->pool_account = pool_index(c->values[0]);
			break;
		case F_VERIFY:
		case F_EXPIRE:
		case NFUNCS:
			break;
	}
}

static const char *
call_sql(const call *c)
{
	static char sql[160];
	int			i, n;

	if (c->f == F_HISTORY)
		n = snprintf(sql, sizeof(sql), "SELECT amount, balance_after FROM %s(", func_names[c->f]);
	else if (c->f == F_HOLDS)
		n = snprintf(sql, sizeof(sql), "SELECT hold_id, amount, captured, status FROM %s(",
					 func_names[c->f]);
	else if (c->f == F_VERIFY)
		n = snprintf(sql, sizeof(sql), "SELECT account, problem FROM %s(", func_names[c->f]);
	else
		n = snprintf(sql, sizeof(sql), "SELECT %s(", func_names[c->f]);
	for (i = 0; i < c->nparams; i++)
		n += snprintf(sql + n, sizeof(sql) - n, "%s$%d", i > 0 ? ", " : "", i + 1);
	snprintf(sql + n, sizeof(sql) - n, ")");
	return sql;
}

/* Print an argument: its length and its first bytes, escaped. */
static void
print_value(FILE *out, const char *v)
{
	size_t		i, len;

	if (v == NULL)
	{
		fprintf(out, "NULL");
		return;
	}
	len = strlen(v);
	fprintf(out, "(%zu bytes) '", len);
	for (i = 0; i < len && i < 60; i++)
	{
		unsigned char ch = (unsigned char) v[i];

		if (ch >= 0x20 && ch < 0x7F && ch != '\\')
			fputc(ch, out);
		else
			fprintf(out, "\\x%02x", ch);
	}
	fprintf(out, "%s'", len > 60 ? "..." : "");
}

static void
failure(long long n, const call *c, const char *what, const PGresult *res)
{
	int			i;

	failures++;
	if (failures > MAX_FAILURES)
		return;
	fprintf(stderr, "fuzz: FAILURE at call %lld: %s\n    %s", n, what, call_sql(c));
	for (i = 0; i < c->nparams; i++)
	{
		fprintf(stderr, "\n    $%d = ", i + 1);
		print_value(stderr, c->values[i]);
	}
	fprintf(stderr, "\n");
	if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR)
		fprintf(stderr, "    %s", PQresultErrorMessage(res));
}

static int
in_list(const char *list, const char *code)
{
	size_t		n = strlen(code);
	const char *p = list;

	if (n != 5)
		return 0;
	while ((p = strstr(p, code)) != NULL)
	{
		if ((p == list || p[-1] == ' ') && (p[5] == ' ' || p[5] == '\0'))
			return 1;
		p++;
	}
	return 0;
}

static void
count_code(const char *code)
{
	int			i;

	for (i = 0; i < ncodes; i++)
		if (strcmp(codes[i].code, code) == 0)
		{
			codes[i].n++;
			return;
		}
	if (ncodes < (int) (sizeof(codes) / sizeof(codes[0])))
	{
		snprintf(codes[ncodes].code, sizeof(codes[ncodes].code), "%s", code);
		codes[ncodes].n = 1;
		ncodes++;
	}
}

static long long
code_seen(const char *code)
{
	int			i;

	for (i = 0; i < ncodes; i++)
		if (strcmp(codes[i].code, code) == 0)
			return codes[i].n;
	return 0;
}

/*
 * The input-layer errors a call may fail with, or NULL: Postgres converts
 * the parameters in order, each first checked as UTF-8, then parsed.
 * *certain says whether the call must fail with one of them (a bad
 * parameter the ledger never sees); it is 0 when only random bytes sent
 * as a datetime may fail to parse, or may parse.
 */
static const char *
input_error(const call *c, int *certain)
{
	static char codes[64];
	int			i;

	codes[0] = '\0';
	*certain = 0;
	for (i = 0; i < c->nparams; i++)
	{
		const char *add = NULL;

		if (c->values[i] == NULL)
			continue;
		if (!valid_utf8((const unsigned char *) c->values[i]))
			add = "22021";
		else if (c->bad_integer[i])
			add = "22P02 22003";
		else if (c->bad_datetime[i] != NULL)
			add = c->bad_datetime[i];
		else if (c->maybe_bad[i])
		{
			snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%s",
					 codes[0] != '\0' ? " " : "", DATETIME_INPUT_CODES);
			continue;
		}
		if (add != NULL)
		{
			snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%s",
					 codes[0] != '\0' ? " " : "", add);
			*certain = 1;
			return codes;
		}
	}
	return codes[0] != '\0' ? codes : NULL;
}

/* Is a required argument NULL? */
static int
null_required(const call *c)
{
	int			i;

	for (i = 0; i < c->nparams; i++)
		if (c->required[i] && c->values[i] == NULL)
			return 1;
	return 0;
}

/* Check a successful result; reports what is wrong. */
static void
check_success(long long n, const call *c, const PGresult *res)
{
	if (c->f == F_VERIFY)
	{
		if (PQntuples(res) != 0)
			failure(n, c, "ledger_verify() reported a problem", res);
		return;
	}
	if (c->f == F_HISTORY || c->f == F_HOLDS)
	{
		long long	limit = c->max_rows == -1 ? 100 : c->max_rows;
		int			row;

		if (c->max_rows != -2 && PQntuples(res) > limit)
			failure(n, c, "more than max_rows rows", res);
		for (row = 0; c->f == F_HOLDS && row < PQntuples(res); row++)
		{
			const char *status = PQgetvalue(res, row, 3);

			if (strcmp(status, "pending") != 0 && strcmp(status, "captured") != 0 &&
				strcmp(status, "released") != 0 && strcmp(status, "expired") != 0)
				failure(n, c, "a hold status that is none of the four", res);
			if (PQgetisnull(res, row, 2) != (strcmp(status, "captured") != 0) ||
				(!PQgetisnull(res, row, 2) &&
				 strtoll(PQgetvalue(res, row, 2), NULL, 10) > strtoll(PQgetvalue(res, row, 1), NULL, 10)))
				failure(n, c, "a captured amount that is missing, or more than the hold", res);
		}
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
	{
		failure(n, c, "not exactly one non-NULL value", res);
		return;
	}
	if ((c->f == F_DEBIT || c->f == F_CREDIT || c->f == F_BALANCE || c->f == F_CAPTURE ||
		 c->f == F_AVAILABLE || c->f == F_BALANCE_AT) &&
		c->pool_account >= 0 && pool[c->pool_account].floor != NULL &&
		strtoll(PQgetvalue(res, 0, 0), NULL, 10) < pool[c->pool_account].floor_value)
		failure(n, c, c->f == F_AVAILABLE ? "an available balance below the account's floor"
				: "a balance below the account's floor", res);
	if (c->f == F_EXPIRE && strtoll(PQgetvalue(res, 0, 0), NULL, 10) < 0)
		failure(n, c, "a negative count of expired holds", res);
	if (c->f == F_HOLD)
	{
		made_hold  *h = &holds_made[nholds_made < NHOLDS ? nholds_made++ : below(NHOLDS)];

		h->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		h->pool_account = c->pool_account;
	}
	if (c->f == F_OPEN && nopened < NOPENED && c->values[0] != NULL &&
		strlen(c->values[0]) < sizeof(opened[0]) && pool_index(c->values[0]) < 0)
		snprintf(opened[nopened++], sizeof(opened[0]), "%s", c->values[0]);
}

/*
 * Run one call.  Returns 1 if it succeeded, 0 if it failed as allowed;
 * exits if the connection is gone.
 */
static int
run_call(PGconn *conn, long long n, const call *c)
{
	const char *values[4];
	PGresult   *res;
	const char *state;
	int			input_certain;
	const char *expected_input = input_error(c, &input_certain);
	int			i, ok;

	for (i = 0; i < c->nparams; i++)
		values[i] = c->values[i];
	calls_per_func[c->f]++;
	res = PQexecParams(conn, call_sql(c), c->nparams, c->types, values, NULL, NULL, 0);
	if (PQstatus(conn) != CONNECTION_OK || res == NULL)
	{
		failure(n, c, "the connection dropped: the backend crashed or was terminated", res);
		fprintf(stderr, "fuzz: %s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		exit(1);
	}
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (ok)
	{
		ok_per_func[c->f]++;
		count_code("ok");
		if (expected_input != NULL && input_certain)
			failure(n, c, "succeeded although a parameter is not valid input", res);
		else if (null_required(c))
			failure(n, c, "succeeded with NULL for a required argument", res);
		else
			check_success(n, c, res);
	}
	else if (PQresultStatus(res) != PGRES_FATAL_ERROR)
		failure(n, c, "unexpected result status", res);
	else
	{
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state == NULL)
			state = "";
		count_code(state);
		if (disallowed != NULL && strcmp(state, disallowed) == 0)
			failure(n, c, "SQLSTATE removed from the allowed set by -x", res);
		else if (expected_input != NULL && input_certain)
		{
			if (!in_list(expected_input, state))
				failure(n, c, "wrong SQLSTATE for invalid input (want the input layer's)", res);
		}
		else if (expected_input != NULL && in_list(expected_input, state))
			;					/* random bytes that did not parse as a datetime */
		else if (!in_list(documented[c->f], state) && !in_list(always_allowed, state))
			failure(n, c, "undocumented SQLSTATE", res);
	}
	PQclear(res);
	return ok;
}

/* Transaction control; exits if it fails (the fuzzer's own SQL). */
static void
control(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "fuzz: %s failed: %s", sql,
				res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		exit(1);
	}
	PQclear(res);
}

static void
setup(PGconn *conn)
{
	int			i;

	memset(long_name, 'L', 255);
	long_name[255] = '\0';
	for (i = 0; i < NPOOL; i++)
	{
		const char *open_params[3] = {pool[i].name, pool[i].currency, pool[i].floor};
		const char *credit_params[2] = {pool[i].name, "1000000"};
		Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
		PGresult   *res = PQexecParams(conn, "SELECT ledger_open_account($1, $2, $3)",
									   3, types, open_params, NULL, NULL, 0);

		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "fuzz: cannot open pool account %d: %s", i,
					res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
			PQclear(res);
			PQfinish(conn);
			exit(1);
		}
		PQclear(res);
		types[1] = INT8OID;
		res = PQexecParams(conn, "SELECT ledger_credit($1, $2)", 2, types, credit_params,
						   NULL, NULL, 0);
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "fuzz: cannot fund pool account %d: %s", i,
					res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
			PQclear(res);
			PQfinish(conn);
			exit(1);
		}
		PQclear(res);
		if (i % 2 == 0)
		{
			/* half the pool in escrow mode (the library is preloaded) */
			res = PQexecParams(conn, "SELECT ledger_set_account_mode($1, 'escrow')", 1, NULL,
							   open_params, NULL, NULL, 0);
			if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
			{
				fprintf(stderr, "fuzz: cannot put pool account %d in escrow mode: %s", i,
						res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
				PQclear(res);
				PQfinish(conn);
				exit(1);
			}
			PQclear(res);
		}
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: fuzz [-s SEED] [-n CALLS] [-t SECONDS] [-x SQLSTATE] CONNINFO\n");
	exit(2);
}

static long long
parse_number(const char *s, long long min, long long max)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	long long	ncalls = 20000, n = 0, seconds = 60, in_txn = 0;
	uint64_t	seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
	struct timespec begin, now;
	PGconn	   *conn;
	PGresult   *res;
	int			opt, i, unreached = 0;

	while ((opt = getopt(argc, argv, "s:n:t:x:S")) != -1)
	{
		switch (opt)
		{
			case 's': seed = (uint64_t) parse_number(optarg, 0, INT64_MAX); break;
			case 'n': ncalls = parse_number(optarg, 1, INT64_MAX); break;
			case 't': seconds = parse_number(optarg, 1, 86400); break;
			case 'x': disallowed = optarg; break;
			default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	seed &= (uint64_t) INT64_MAX;
	rng = seed;
	printf("fuzz: seed %" PRIu64 ", %lld calls, at most %lld s%s%s\n", seed, ncalls, seconds,
		   disallowed != NULL ? "; must FAIL: not allowed: " : "",
		   disallowed != NULL ? disallowed : "");
	fflush(stdout);

	conn = PQconnectdb(argv[optind]);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "fuzz: cannot connect: %s",
				conn != NULL ? PQerrorMessage(conn) : "out of memory\n");
		PQfinish(conn);
		return 1;
	}
	setup(conn);

	clock_gettime(CLOCK_MONOTONIC, &begin);
	while (n < ncalls)
	{
		call		c;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - begin.tv_sec >= seconds)
		{
			printf("fuzz: time limit of %lld s reached after %lld calls\n", seconds, n);
			break;
		}
		if (below(5) == 0)
		{
			/* a transaction of 1-5 calls, each in a savepoint */
			static const char *const begins[] = {
				"BEGIN ISOLATION LEVEL READ COMMITTED",
				"BEGIN ISOLATION LEVEL REPEATABLE READ",
				"BEGIN ISOLATION LEVEL SERIALIZABLE"
			};
			int			k, steps = 1 + below(5);

			control(conn, begins[below(3)]);
			in_txn++;
			for (k = 0; k < steps && n < ncalls; k++)
			{
				gen_call(&c);
				control(conn, "SAVEPOINT s");
				n++;
				control(conn, run_call(conn, n, &c) ? "RELEASE SAVEPOINT s"
						: "ROLLBACK TO SAVEPOINT s");
				free_call(&c);
			}
			control(conn, below(10) < 7 ? "COMMIT" : "ROLLBACK");
		}
		else
		{
			gen_call(&c);
			n++;
			run_call(conn, n, &c);
			free_call(&c);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &now);

	res = PQexec(conn, "SELECT account, problem FROM ledger_verify()");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "fuzz: final ledger_verify() failed: %s", PQerrorMessage(conn));
		failures++;
	}
	else
	{
		for (i = 0; i < PQntuples(res) && i < 10; i++)
			fprintf(stderr, "fuzz: ledger_verify(): %s: %s\n",
					PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		if (PQntuples(res) > 0)
			failures++;
	}
	PQclear(res);
	PQfinish(conn);

	printf("fuzz: %lld calls in %.1f s (%lld transactions of several calls); per function "
		   "(succeeded/called):", n,
		   (double) (now.tv_sec - begin.tv_sec) + (now.tv_nsec - begin.tv_nsec) / 1e9, in_txn);
	for (i = 0; i < NFUNCS; i++)
		printf(" %s %lld/%lld", func_names[i] + 7, ok_per_func[i], calls_per_func[i]);
	printf("\nfuzz: outcomes:");
	for (i = 0; i < ncodes; i++)
		printf(" %s %lld", codes[i].code, codes[i].n);
	printf("\n");

	for (i = 0; i < NFUNCS; i++)
		if (calls_per_func[i] == 0)
		{
			fprintf(stderr, "fuzz: %s was never called\n", func_names[i]);
			unreached++;
		}
	if (n >= 5000)
	{
		for (i = 0; i < (int) (sizeof(must_reach) / sizeof(must_reach[0])); i++)
			if (code_seen(must_reach[i]) == 0)
			{
				fprintf(stderr, "fuzz: outcome %s never reached\n", must_reach[i]);
				unreached++;
			}
		for (i = 0; i < NFUNCS; i++)
			if (i != F_VERIFY && ok_per_func[i] == 0)
			{
				fprintf(stderr, "fuzz: %s never succeeded\n", func_names[i]);
				unreached++;
			}
	}
	if (failures > 0 || unreached > 0)
	{
		printf("fuzz: FAIL: %d failed checks, %d outcomes not reached (seed %" PRIu64 ")\n",
			   failures, unreached, seed);
		return 1;
	}
	printf("fuzz: %lld calls, every error a documented SQLSTATE, the connection never "
		   "dropped, ledger_verify() empty (seed %" PRIu64 ")\n", n, seed);
	return 0;
}
