#!/usr/bin/env bash
# bench/run.sh: the standard benchmark set (make bench), or a few-second
# smoke run that keeps the tool working (bash bench/run.sh --smoke, run by
# the test command).  Builds and installs the extension, starts a
# throwaway cluster with durable settings (fsync = on,
# synchronous_commit = on), loads the naive baseline, opens accounts
# a1..aN in both, and runs bench/bench for each workload.
source "$(dirname "$0")/../test/lib.sh"

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
N=${BENCH_ACCOUNTS:-10000}
CLIENTS=${BENCH_CLIENTS:-32}
SECONDS_PER_ROUND=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-2}
if $smoke; then
	N=100 CLIENTS=4 SECONDS_PER_ROUND=0.5 ROUNDS=1
fi

ledger_require_packages
ledger_build_install
cluster_start bench -c fsync=on -c synchronous_commit=on -c shared_buffers=512MB \
	-c max_connections=200 -c checkpoint_timeout=30min -c max_wal_size=8GB

BENCH_BIN=$LEDGER_TMP/bench-tool
cc -std=c99 -O2 -Wall -Wextra -Werror -I"$($LEDGER_PG_BIN/pg_config --includedir)" \
	"$LEDGER_ROOT/bench/bench.c" -L"$($LEDGER_PG_BIN/pg_config --libdir)" -lpq -lpthread -lm \
	-o "$BENCH_BIN"

psql_q -c 'CREATE EXTENSION ledger' >/dev/null
psql_q -f "$LEDGER_ROOT/bench/naive.sql" >/dev/null
psql_q -c "SELECT count(ledger_open_account('a' || i, 'XXX', 0)) FROM generate_series(1, $N) i" \
	-c "SELECT count(ledger_credit('a' || i, 1000000000000)) FROM generate_series(1, $N) i" \
	-c "INSERT INTO naive.accounts SELECT 'a' || i, 1000000000000, 0 FROM generate_series(1, $N) i" \
	-c "VACUUM ANALYZE" >/dev/null

run() {
	"$BENCH_BIN" -n "$N" -d "$SECONDS_PER_ROUND" -r "$ROUNDS" -w 1 "$@"
}

echo "ledger benchmark: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"PostgreSQL $($LEDGER_PG_BIN/postgres --version | awk '{print $3}'), fsync=on, synchronous_commit=on, $(date -u +%Y-%m-%d)"
run -c "$CLIENTS" -W uniform
run -c "$CLIENTS" -W hot
run -c "$CLIENTS" -W zipf -s 2
run -c "$CLIENTS" -W transfer
if $smoke; then
	run -c 2 -W batch -b 100
else
	run -c 1 -W batch -b 1000
	run -c 4 -W batch -b 1000
fi

[ "$(psql_q -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] || { echo "bench: ledger_verify() found problems" >&2; exit 1; }
echo "bench: done, ledger_verify() clean"
