#!/usr/bin/env bash
# The README's second command: every test, against throwaway clusters.
#
#   pg_regress      sql/*.sql vs expected/*.out        (make installcheck)
#   isolation       test/specs/*.spec vs test/expected/*.out (make installcheck)
#   pgTAP           test/pgtap/*.sql                    (pg_prove)
#   durability      test/durability.sh   fsync=off refusal, forced sync commit
#   crash           test/crash.sh        SIGKILL mid-load, every ack survives (keyed debits and holds)
#   crash-nokey     test/crash.sh --no-keys   the same for postings without keys
#   crash-escrow    test/crash.sh --escrow    the same in escrow mode, commits unsettled at the kill
#   restart         test/restart.sh      fast and immediate restarts keep every row, key and setting
#   bank            test/bank.sh         Jepsen bank workload with holds, short run
#   bank-escrow     test/bank.sh --escrow the same, half the accounts in escrow mode
#   failover        test/failover.sh     synchronous standby, kill + promote, no acknowledged loss
#   escrow          test/escrow.sh       escrow mode: standby promoted under load; no preload: 55000; slots; a cancelled wait
#   dump-restore    test/dump_restore.sh pg_dump plain+custom, restore into another cluster, identical
#   logical         test/logical.sh      logical replication of every posting path, whole and in commit order
#   fuzz            test/fuzz.sh         20 000 seeded random calls, only documented SQLSTATEs
#   cron            test/cron.sh         pg_cron runs the expiry sweep as a role granted only it
#   client          test/client.sh       libledger + CLI: statuses, lost reply, threads, batches, valgrind
#   pooler          test/pooler.sh       libledger and the CLI through pgbouncer, transaction and session pooling
#   router          test/router.sh       ledger_router over 4 shards: placement, SQLSTATEs, cross-shard transfers, recovery, roles, the CLI
#   router-bank     test/router_bank.sh  sharded bank: kill -9 of clients, router backends, shard postmasters; recovery; exactly once
#   router-failover test/router_bank.sh failover  the same, with a shard's synchronous standby promoted under load
#   demo            test/demo.sh         the README's first command still works
#   bench smoke     bench/run.sh --smoke a few seconds of every benchmark workload
#
# Prints one line per test (the full output of a suite only when it fails),
# ends with one line "ledger: N passed, N failed" and exits non-zero on any
# failure.
source "$(dirname "$0")/lib.sh"

passed=0
failed=0
failures=""

record() {	# record NAME STATUS
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures="$failures $1"
	fi
}

ledger_require_packages
ledger_build_install

# --- pg_regress and isolation specs -------------------------------------
# escrow mode needs the library preloaded; sql/escrow.sql PREPAREs
cluster_start regress -c shared_preload_libraries=ledger -c max_prepared_transactions=2
set +e
make -C "$LEDGER_ROOT" -s PG_CONFIG="$LEDGER_PG_BIN/pg_config" installcheck \
	>"$LEDGER_TMP/installcheck.log" 2>&1
status=$?
set -e
grep -E '\.\.\. ' "$LEDGER_TMP/installcheck.log" || cat "$LEDGER_TMP/installcheck.log"
# one result per test, from pg_regress's "name ... ok" lines
while read -r line; do
	name=$(echo "$line" | sed -E 's/^(test |ok [0-9]+ +- +)?[[:space:]]*([A-Za-z0-9_]+).*/\2/')
	case "$line" in
		*"... ok"*) record "$name" 0 ;;
		*"... FAILED"*|*"... failed"*) record "$name" 1 ;;
	esac
done < <(grep -E '\.\.\. (ok|FAILED|failed)' "$LEDGER_TMP/installcheck.log")
if [ "$status" -ne 0 ]; then
	record installcheck 1
	[ -f "$LEDGER_ROOT/regression.diffs" ] && cat "$LEDGER_ROOT/regression.diffs"
	[ -f "$LEDGER_ROOT/output_iso/regression.diffs" ] && cat "$LEDGER_ROOT/output_iso/regression.diffs"
fi

# --- pgTAP ---------------------------------------------------------------
psql_q -c 'CREATE DATABASE tap'
for file in "$LEDGER_ROOT"/test/pgtap/*.sql; do
	set +e
	PGDATABASE=tap pg_prove --failures "$file"
	status=$?
	set -e
	record "pgtap/$(basename "$file" .sql)" "$status"
done
cluster_stop regress

# --- shell-driven suites: each starts and stops its own cluster ----------
while read -r name command; do
	set +e
	bash "$LEDGER_ROOT"/$command >"$LEDGER_TMP/$name.log" 2>&1 </dev/null
	status=$?
	set -e
	record "$name" "$status"
	# the full output only when it failed; otherwise the suite's own summary
	if [ "$status" -eq 0 ]; then
		printf 'ok   %-11s %s\n' "$name" "$(grep -v '^[[:space:]]*$' "$LEDGER_TMP/$name.log" | tail -n 1)"
	else
		printf 'FAIL %-11s exit %s; its output:\n' "$name" "$status"
		tail -n 150 "$LEDGER_TMP/$name.log"
	fi
done <<'SUITES'
durability  test/durability.sh
crash       test/crash.sh
crash-nokey test/crash.sh --no-keys
crash-escrow test/crash.sh --escrow
restart     test/restart.sh
bank        test/bank.sh
bank-escrow test/bank.sh --escrow
failover    test/failover.sh
escrow      test/escrow.sh
dump-restore test/dump_restore.sh
logical     test/logical.sh
fuzz        test/fuzz.sh
cron        test/cron.sh
client      test/client.sh
pooler      test/pooler.sh
router      test/router.sh
router-bank test/router_bank.sh
router-failover test/router_bank.sh failover
demo        test/demo.sh
bench-smoke bench/run.sh --smoke
SUITES

[ -n "$failures" ] && echo "failed:$failures"
echo "ledger: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
