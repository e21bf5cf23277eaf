#!/usr/bin/env bash
# test/pooler.sh: libledger and the CLI behind pgbouncer (Debian's 1.18,
# which does not keep prepared statements per client).
#
#   C tests   client/test/test_pooler.c through three pgbouncers in front of
#             one cluster: transaction pooling with 4 and with 1 server
#             connection, session pooling with 4.  The pooler's signs on
#             purpose (42P05, and 26000 after its RECONNECT) in every
#             statement mode; 16 threads over 4 server connections making
#             every call kind; session pooling with prepared statements; a
#             terminated server backend and 40001 retried through the pooler.
#   CLI       many calls in a row and at once through transaction pooling
#             (each used to fail after the first with 42P05, "prepared
#             statement already exists"), and a hold captured by another
#             process.
#
# Ends with "pooler: ... OK"; exits non-zero on failure.
source "$(dirname "$0")/lib.sh"

fail() { echo "pooler: FAILED: $*" >&2; exit 1; }

CLIENT=$LEDGER_ROOT/client
LEDGER_CLI=$CLIENT/pg_ledger

ledger_require_packages
ledger_build_install
log "building the client library, the CLI and the C tests"
make -s -C "$CLIENT" PG_CONFIG="$LEDGER_PG_BIN/pg_config" all test_client >/dev/null

cluster_start pooled
psql_q -c 'CREATE DATABASE clientpool'
psql_q -d clientpool <<'SQL' >/dev/null
CREATE EXTENSION ledger;
-- every session of this role is SERIALIZABLE: a debit that waited for a
-- row lock gets 40001 when the lock holder commits
CREATE ROLE serial_app LOGIN;
ALTER ROLE serial_app SET default_transaction_isolation = 'serializable';
GRANT EXECUTE ON FUNCTION ledger_debit(text, bigint, text) TO serial_app;
SQL

pgbouncer_start bouncer-tx transaction 4 serial_app
tx_port=$BOUNCER_PORT
pgbouncer_start bouncer-tx1 transaction 1
tx1_port=$BOUNCER_PORT
pgbouncer_start bouncer-session session 4
session_port=$BOUNCER_PORT

out=$LEDGER_TMP/test_pooler.out
set +e
LEDGER_TEST_DB=clientpool LEDGER_TEST_TX_PORT=$tx_port LEDGER_TEST_TX1_PORT=$tx1_port \
	LEDGER_TEST_SESSION_PORT=$session_port "$CLIENT/test_client" pooler >"$out" 2>&1
status=$?
set -e
grep -E '^(not ok|# )' "$out" || true
[ "$status" -eq 0 ] || { cat "$out" >&2; fail "the C tests through pgbouncer (exit $status)"; }
log "C tests: $(grep -c '^ok' "$out") checks passed"

# The CLI: one connection per call, so every call meets a server session
# that earlier calls used.
ci="host=127.0.0.1 port=$tx_port dbname=clientpool user=postgres"
"$LEDGER_CLI" -d "$ci" open cli-bank --no-floor >/dev/null || fail "cli: open"
"$LEDGER_CLI" -d "$ci" open cli-alice >/dev/null || fail "cli: open"
for i in $(seq 1 20); do
	"$LEDGER_CLI" -d "$ci" transfer cli-bank cli-alice 10 --key "cli-$i" >/dev/null 2>"$LEDGER_TMP/cli.err" ||
		fail "cli: call $i in a row: $(cat "$LEDGER_TMP/cli.err")"
done
pids=""
for p in $(seq 1 8); do
	( for i in $(seq 1 5); do
		"$LEDGER_CLI" -d "$ci" debit cli-alice 1 >/dev/null 2>"$LEDGER_TMP/cli.$p.err" || exit 1
	done ) &
	pids="$pids $!"
done
for pid in $pids; do
	wait "$pid" || fail "cli: a call of 8 at once: $(cat "$LEDGER_TMP"/cli.*.err)"
done
hold=$("$LEDGER_CLI" -d "$ci" hold cli-alice 50) || fail "cli: hold"
"$LEDGER_CLI" -d "$ci" capture "$hold" 20 >/dev/null || fail "cli: capture"
balance=$("$LEDGER_CLI" -d "$ci" balance cli-alice) || fail "cli: balance"
[ "$balance" = $((200 - 40 - 20)) ] || fail "cli: balance $balance, want 140"
[ "$("$LEDGER_CLI" -d "$ci" --json verify)" = '{"status":"ok","problems":[]}' ] ||
	fail "cli: verify: $("$LEDGER_CLI" -d "$ci" --json verify)"
log "CLI: 20 transfers in a row, 8 x 5 debits at once, a hold and its capture, the audit"
echo "pooler: libledger and the CLI through pgbouncer (transaction and session pooling); OK"
