#!/usr/bin/env bash
# The README's second command: every test, against throwaway clusters.
#
#   pg_regress      sql/*.sql vs expected/*.out        (make installcheck)
#   isolation       test/specs/*.spec vs test/expected/*.out (make installcheck)
#   pgTAP           test/pgtap/*.sql                    (pg_prove)
#   durability      test/durability.sh   fsync=off refusal, forced sync commit
#   crash           test/crash.sh        SIGKILL mid-load, every ack survives
#   restart         test/restart.sh      fast and immediate restarts keep every row, key and setting
#   bank            test/bank.sh         Jepsen bank workload, short run
#   failover        test/failover.sh     synchronous standby, kill + promote, no acknowledged loss
#   fuzz            test/fuzz.sh         20 000 seeded random calls, only documented SQLSTATEs
#   client          test/client.sh       libledger + CLI: statuses, lost reply, threads, batches, valgrind
#   demo            test/demo.sh         the README's first command still works
#   bench smoke     bench/run.sh --smoke a few seconds of every benchmark workload
#
# Ends with one line "ledger: N passed, N failed" and exits non-zero on any
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
cluster_start regress
set +e
make -C "$LEDGER_ROOT" -s PG_CONFIG="$LEDGER_PG_BIN/pg_config" installcheck \
	>"$LEDGER_TMP/installcheck.log" 2>&1
status=$?
set -e
cat "$LEDGER_TMP/installcheck.log"
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
	PGDATABASE=tap pg_prove --verbose --failures "$file"
	status=$?
	set -e
	record "pgtap/$(basename "$file" .sql)" "$status"
done
cluster_stop regress

# --- shell-driven suites: each starts and stops its own cluster ----------
for suite in test/durability.sh test/crash.sh test/restart.sh test/bank.sh test/failover.sh \
	test/fuzz.sh test/client.sh test/demo.sh "bench/run.sh --smoke"; do
	log "suite: $suite"
	set +e
	bash "$LEDGER_ROOT"/$suite
	status=$?
	set -e
	record "$(basename "${suite%% *}" .sh)" "$status"
done

[ -n "$failures" ] && echo "failed:$failures"
echo "ledger: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
