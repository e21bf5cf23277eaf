#!/usr/bin/env bash
# test/fuzz.sh: seeded random fuzzing of every ledger SQL function.
#
# Compiles test/fuzz.c and runs it against a throwaway cluster: random
# arguments (byte strings of 0..100000 bytes incl. invalid UTF-8, amounts
# over the whole bigint range, NULLs everywhere, reused keys, unknown
# accounts, hold ids made, unknown and ended, intervals zero, negative and
# past the timestamp range, timestamps) to every function of 1.2 through
# libpq.  Every error must be a documented SQLSTATE (or
# the input layer's 22021/22P02/22003 for input that is not valid UTF-8 or
# not a number, see fuzz.c), the connection must never drop, and
# ledger_verify() must be empty at the end.  Then the server log must show
# no PANIC, no failed assertion (TRAP) and no backend terminated by a
# signal.
#
# Parameters (environment):
#   FUZZ_SEED      seed (default: random; printed, the same seed replays the same calls)
#   FUZZ_CALLS     number of calls (default 20000)
#   FUZZ_SECONDS   time limit (default 60)
#   FUZZ_DISALLOW  a SQLSTATE to remove from the allowed sets: the run must then FAIL
source "$(dirname "$0")/lib.sh"

PG_CONFIG=$LEDGER_PG_BIN/pg_config
CALLS=${FUZZ_CALLS:-20000}
SECONDS_LIMIT=${FUZZ_SECONDS:-60}
args=(-n "$CALLS" -t "$SECONDS_LIMIT")
[ -n "${FUZZ_SEED:-}" ] && args+=(-s "$FUZZ_SEED")
[ -n "${FUZZ_DISALLOW:-}" ] && args+=(-x "$FUZZ_DISALLOW")

die() {
	echo "fuzz: FAIL: $*" >&2
	exit 1
}

for v in "$CALLS" "$SECONDS_LIMIT"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_CALLS and FUZZ_SECONDS must be positive integers"
done

cluster_start fuzz -c shared_preload_libraries=ledger
TMP=$LEDGER_TMP

log "compiling the fuzzer"
cc -std=c99 -Wall -Wextra -Werror -O2 -I"$($PG_CONFIG --includedir)" \
	"$LEDGER_ROOT/test/fuzz.c" -L"$($PG_CONFIG --libdir)" -lpq -o "$TMP/fuzz_client"

[ "$(psql_q -c 'SHOW server_encoding')" = UTF8 ] || die "the cluster is not UTF8"
psql_q -c 'CREATE EXTENSION ledger'

# bounded: the fuzzer stops at its time limit; kill it if a call hangs
status=0
timeout --kill-after=10 $((SECONDS_LIMIT + 120)) "$TMP/fuzz_client" "${args[@]}" "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres client_encoding=UTF8" \
	>"$TMP/fuzz.out" || status=$?
cat "$TMP/fuzz.out"
done_calls=$(sed -n 's/^fuzz: \([0-9]*\) calls in .*/\1/p' "$TMP/fuzz.out")

# the backend never crashed: nothing in the server log says so
if grep -nE 'PANIC|TRAP:|terminated by signal|server process .* exited with exit code|terminating any other active server processes' \
	"$(cluster_dir fuzz)/server.log" >&2; then
	die "the server log shows a crash"
fi
[ "$(psql_q -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] || die "ledger_verify() is not empty"
[ "$status" -ne 124 ] && [ "$status" -ne 137 ] || die "the fuzzer hung"
[ "$status" -eq 0 ] || die "the fuzzer reported failures (exit status $status)"
cluster_stop fuzz
echo "fuzz: $done_calls random calls, only documented SQLSTATEs, no crash, ledger_verify() empty; OK"
