/*-------------------------------------------------------------------------
 *
 * harness.c
 *	  What the client tests share: TAP output, the admin connection, and
 *	  small helpers to connect, query and build batch items.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <pthread.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

int			n_checks;
int			n_failed;
const char *db;
const char *host;
int			port;
PGconn	   *admin;

static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;

bool
check(bool ok, const char *fmt,...)
{
	va_list		ap;

	pthread_mutex_lock(&check_lock);
	n_checks++;
	if (!ok)
		n_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", n_checks);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	pthread_mutex_unlock(&check_lock);
	return ok;
}

void
die(const char *what)
{
	fprintf(stderr, "test_client: %s\n", what);
	exit(2);
}

void
admin_exec(const char *fmt,...)
{
	char		sql[1024];
	va_list		ap;
	PGresult   *res;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	res = PQexec(admin, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "admin: %s: %s", sql, PQerrorMessage(admin));
		exit(2);
	}
	PQclear(res);
}

int64_t
admin_int(const char *fmt,...)
{
	char		sql[1024];
	va_list		ap;
	PGresult   *res;
	int64_t		v;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	res = PQexec(admin, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		fprintf(stderr, "admin: %s: %s", sql, PQerrorMessage(admin));
		exit(2);
	}
	v = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

PGconn *
raw_connect(const char *conninfo)
{
	PGconn	   *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(c));
		die("raw connection failed");
	}
	return c;
}

/* A library connection; fails the whole test if it cannot connect. */
LedgerConn *
connect_to(const char *conninfo, int attempts)
{
	LedgerOptions o;
	LedgerConn *c;
	LedgerStatus s;

	ledger_options_init(&o);
	o.conninfo = conninfo;
	o.retry_attempts = attempts;
	o.backoff_base_ms = 10;
	o.backoff_max_ms = 40;
	s = ledger_connect(&o, &c);
	if (s != LEDGER_OK)
	{
		fprintf(stderr, "%s: %s\n", conninfo, ledger_error_message(c));
		die("could not connect");
	}
	return c;
}

char *
conninfo_for(const char *extra)
{
	static char buf[8][512];
	static int	next;
	char	   *b = buf[next++ % 8];

	snprintf(b, sizeof(buf[0]), "host=%s port=%d dbname=%s %s", host, port, db, extra);
	return b;
}

double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int64_t
balance_of(const char *account)
{
	return admin_int("SELECT ledger_balance('%s')", account);
}

/* How many journal entries carry this key. */
int64_t
entries_with_key(const char *key)
{
	return admin_int("SELECT count(*) FROM ledger.entries WHERE idempotency_key = '%s'", key);
}

/* A port nobody listens on: bind an ephemeral one and close it. */
int
closed_port(void)
{
	struct sockaddr_in addr;
	socklen_t	len = sizeof(addr);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	int			p;

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
		getsockname(fd, (struct sockaddr *) &addr, &len) != 0)
		die("bind");
	p = ntohs(addr.sin_port);
	close(fd);
	return p;
}

/* An integer from a query with text parameters (names of any shape). */
int64_t
admin_int_params(const char *sql, int nparams, const char *const *values)
{
	PGresult   *res = PQexecParams(admin, sql, nparams, NULL, values, NULL, NULL, 0);
	int64_t		v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		fprintf(stderr, "admin: %s: %s", sql, PQerrorMessage(admin));
		exit(2);
	}
	v = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

void
posting(LedgerPosting *p, LedgerOp op, const char *account, const char *to,
		int64_t amount, const char *key)
{
	memset(p, 0, sizeof(*p));
	p->op = op;
	p->account = account;
	p->to_account = to;
	p->amount = amount;
	p->idempotency_key = key;
}

bool
is_generated_key(const char *key)
{
	return key != NULL && strlen(key) == LEDGER_GENERATED_KEY_LEN &&
		strspn(key, "0123456789abcdef") == LEDGER_GENERATED_KEY_LEN;
}

