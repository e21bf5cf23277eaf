#!/usr/bin/env bash
# test/bank.sh: Jepsen's bank workload against a throwaway cluster.
#
# Compiles test/bank.c and runs it: K accounts with floors plus a no-floor
# source account, M writer connections doing random transfers, deposits and
# withdrawals, holds (some expiring within a second) and their captures and
# releases (and keyed replays), readers checking in one REPEATABLE READ
# snapshot that the total is constant and no balance, nor available
# balance, is below its floor; at the end ledger_verify() is empty, the
# total and every balance match what the writers committed, every hold is
# as its writer left it, and the server log has no crash.  See the header
# of bank.c for the details.
#
# Parameters (environment):
#   BANK_ACCOUNTS  K accounts            (default 10)
#   BANK_CLIENTS   M writer connections  (default 8)
#   BANK_READERS   reader connections    (default 2)
#   BANK_SECONDS   T seconds of load     (default 15)
#   BANK_SEED      seed of the writers' and readers' choices (default: random, printed)
#   --escrow       every other account, and the source, in escrow mode (the
#                  library preloaded)
#   BANK_BREAK     naive | total | floor | hold | release: break a guarantee
#                  on purpose; the run must then FAIL (see bank.c)
#
# The long run of doc/testing.md:
#   BANK_ACCOUNTS=100 BANK_CLIENTS=16 BANK_SECONDS=120 bash test/bank.sh
source "$(dirname "$0")/lib.sh"

K=${BANK_ACCOUNTS:-10}
M=${BANK_CLIENTS:-8}
R=${BANK_READERS:-2}
T=${BANK_SECONDS:-15}
PG_CONFIG=$LEDGER_PG_BIN/pg_config

die() {
	echo "bank: FAIL: $*" >&2
	exit 1
}

for v in "$K" "$M" "$R" "$T"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || die "BANK_ACCOUNTS, BANK_CLIENTS, BANK_READERS and BANK_SECONDS must be positive integers"
done
args=(-k "$K" -m "$M" -r "$R" -t "$T")
ESCROW=false
[ "${1:-}" = --escrow ] && ESCROW=true && args+=(-e)
[ -n "${BANK_SEED:-}" ] && args+=(-s "$BANK_SEED")
[ -n "${BANK_BREAK:-}" ] && args+=(-b "$BANK_BREAK")

# deadlock_timeout 100 ms: deposits and withdrawals deadlock on purpose
# now and then (40P01, retried); no need to wait the default 1 s for it.
max_connections=$(( M + R + 20 > 100 ? M + R + 20 : 100 ))
if $ESCROW; then
	cluster_start bank -c deadlock_timeout=100ms -c max_connections=$max_connections \
		-c shared_preload_libraries=ledger
else
	cluster_start bank -c deadlock_timeout=100ms -c max_connections=$max_connections
fi
TMP=$LEDGER_TMP

log "compiling the bank client"
cc -std=c99 -Wall -Wextra -Werror -O2 -pthread -I"$($PG_CONFIG --includedir)" \
	"$LEDGER_ROOT/test/bank.c" -L"$($PG_CONFIG --libdir)" -lpq -o "$TMP/bank_client"

[ "$(psql_q -c 'SHOW fsync')" = on ] || die "fsync is not on"
psql_q -c 'CREATE EXTENSION ledger'

# bounded: the client stops its threads after T s; kill it if it hangs
status=0
timeout --kill-after=10 $((T + 120)) "$TMP/bank_client" "${args[@]}" "host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" || status=$?

log_file=$(cluster_dir bank)/server.log
if grep -nE 'PANIC|TRAP:|terminated by signal|was terminated|server process .* exited' "$log_file" >&2; then
	die "the server log shows a crash"
fi
[ "$status" -ne 124 ] && [ "$status" -ne 137 ] || die "the bank client hung (killed after $((T + 120)) s)"
[ "$status" -eq 0 ] || die "the bank client reported failures (exit status $status)"
cluster_stop bank
mode=""
$ESCROW && mode=" (half of them and the source in escrow mode)"
echo "bank: $K accounts$mode, $M writers, $R readers, $T s: totals constant, no floor broken (balance or available), every hold as its writer left it, ledger_verify() empty; OK"
