#!/usr/bin/env bash
# bench/router.sh: what the router (ledger_router, PL/Proxy) costs and
# gives, measured side by side in one run (make bench runs it last;
# --smoke: a second per case, to keep it working).
#
#   1. overhead per call: one client, ledger_debit and ledger_balance
#      through the router to one shard, against the same calls on a direct
#      connection to that shard, in alternating rounds;
#   2. throughput with 1, 2 and 4 shards: CLIENTS clients, uniform debits
#      over ACCOUNTS accounts through the router;
#   3. a transfer between shards against one within a shard, 4 shards.
#
# Every cluster runs on this one machine: the shards share its cores and
# its disk, so more shards cannot mean more throughput here; doc/router.md
# has the model for shards on machines of their own.  pgbench drives the
# load (prepared statements, fsync and synchronous_commit on).
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/../test/replication.sh"
source "$(dirname "$0")/../test/router_lib.sh"

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
A=${BENCH_ROUTER_ACCOUNTS:-4096}
CLIENTS=${BENCH_CLIENTS:-32}
T=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
if $smoke; then A=64 CLIENTS=4 T=1 ROUNDS=1; fi

ledger_require_packages postgresql-15-plproxy
ledger_build_install
ledger_init_tmp
router_start 4
PGBENCH=$LEDGER_PG_BIN/pgbench
# the shards' settings: durable, as a ledger runs
for i in 0 1 2 3; do
	psql_on "shard$i" -c 'SHOW fsync' | grep -qx on || { echo "bench/router: fsync is off on shard$i" >&2; exit 1; }
done
# accounts r<N>-<i>, placed by the router configured for N shards
open_accounts() {
	psql_on router -c "SELECT count(ledger_open_account('r$1-' || i)) FROM generate_series(1, $A) i" \
		-c "SELECT count(ledger_credit('r$1-' || i, 1000000000000)) FROM generate_series(1, $A) i" >/dev/null
}
use_shards() {	# use_shards N: ledger_shards names shard0 .. shard<N-1>
	local opts="" i has
	for i in 0 1 2 3; do
		has=$(psql_on router -c "SELECT count(*) FROM pg_foreign_server s, pg_options_to_table(s.srvoptions) o
		                         WHERE s.srvname = 'ledger_shards' AND o.option_name = 'p$i'")
		if [ "$i" -lt "$1" ]; then
			opts="$opts${opts:+, }$([ "$has" = 1 ] && echo SET || echo ADD) p$i '$(shard_conninfo "shard$i")'"
		elif [ "$has" = 1 ]; then
			opts="$opts${opts:+, }DROP p$i"
		fi
	done
	psql_on router -c "ALTER SERVER ledger_shards OPTIONS ($opts)" >/dev/null
}
# tps and mean latency of pgbench SCRIPT with C clients against port PORT
pgb() {	# pgb PORT CLIENTS SCRIPT
	local out
	out=$("$PGBENCH" -n -M prepared -h 127.0.0.1 -p "$1" -U postgres -c "$2" -j "$2" -T "$T" -f "$3" postgres 2>&1) ||
		{ echo "$out" >&2; return 1; }
	echo "$out" | awk '/^tps/ { tps = $3 } /^latency average/ { lat = $4 } END { printf "%.0f %.3f", tps, lat }'
}
script() {	# script NAME SQL: a pgbench script with :i random in 1..A
	printf '\\set i random(1, %d)\n%s\n' "$A" "$2" >"$LEDGER_TMP/$1.sql"
	echo "$LEDGER_TMP/$1.sql"
}

$smoke && echo "smoke run: tiny rounds to keep the tool working; the numbers mean nothing"
echo "router benchmark: $(nproc) cores, router and 4 shards on this one machine, PostgreSQL $($LEDGER_PG_BIN/postgres --version | awk '{print $3}'), fsync=on, synchronous_commit=on, $(date -u +%Y-%m-%d)"

# --- 1. the router's overhead per call -------------------------------------
use_shards 1
open_accounts 1
debit=$(script debit "SELECT ledger_debit('r1-' || :i, 1);")
balance=$(script balance "SELECT ledger_balance('r1-' || :i);")
echo "1. one client, mean latency per call (ms), router -> shard0 vs directly on shard0, $ROUNDS rounds of $T s"
for what in debit balance; do
	f=$([ $what = debit ] && echo "$debit" || echo "$balance")
	via="" direct=""
	for r in $(seq 1 "$ROUNDS"); do
		via="$via $(pgb "$(cluster_port router)" 1 "$f" | awk '{ print $2 }')"
		direct="$direct $(pgb "$(cluster_port shard0)" 1 "$f" | awk '{ print $2 }')"
	done
	echo "$what $via | $direct" | awk '{
		n = (NF - 2) / 2; for (i = 2; i <= n + 1; i++) v += $i; for (i = n + 3; i <= NF; i++) d += $i;
		printf "   %-8s via router %.3f ms   direct %.3f ms   overhead %.3f ms per call\n", $1, v / n, d / n, (v - d) / n }'
done

# --- 2. throughput with 1, 2 and 4 shards ----------------------------------
echo "2. $CLIENTS clients, uniform debits over $A accounts through the router (all shards on these $(nproc) cores)"
for n in 1 2 4; do
	use_shards "$n"
	[ "$n" = 1 ] || open_accounts "$n"
	f=$(script "debit$n" "SELECT ledger_debit('r$n-' || :i, 1);")
	best=0
	for r in $(seq 1 "$ROUNDS"); do
		tps=$(pgb "$(cluster_port router)" "$CLIENTS" "$f" | awk '{ print $1 }')
		[ "$tps" -gt "$best" ] && best=$tps
	done
	direct=0
	if [ "$n" = 1 ]; then
		direct=$(pgb "$(cluster_port shard0)" "$CLIENTS" "$f" | awk '{ print $1 }')
		echo "   1 shard : $best debits/s (best of $ROUNDS); the same load directly on the shard: $direct/s"
	else
		echo "   $n shards: $best debits/s (best of $ROUNDS)"
	fi
done

# --- 3. a transfer between shards against one within a shard ---------------
psql_on router >/dev/null <<SQL
CREATE TABLE pairs (kind text, i int, a text, b text);
INSERT INTO pairs
SELECT 'same', row_number() OVER (), a, b FROM (
  SELECT x.a, y.a AS b FROM
    (SELECT 'r4-' || i AS a, ledger_router.shard('r4-' || i) AS s, row_number() OVER (PARTITION BY ledger_router.shard('r4-' || i) ORDER BY i) AS k FROM generate_series(1, $A) i) x
    JOIN (SELECT 'r4-' || i AS a, ledger_router.shard('r4-' || i) AS s, row_number() OVER (PARTITION BY ledger_router.shard('r4-' || i) ORDER BY i) - 1 AS k FROM generate_series(1, $A) i) y
      ON x.s = y.s AND x.k = y.k) p;
INSERT INTO pairs
SELECT 'cross', row_number() OVER (), 'r4-' || i, 'r4-' || (i % $A + 1) FROM generate_series(1, $A) i
 WHERE ledger_router.shard('r4-' || i) <> ledger_router.shard('r4-' || (i % $A + 1));
CREATE INDEX ON pairs (kind, i);
ANALYZE pairs;
SQL
same_n=$(psql_on router -c "SELECT count(*) FROM pairs WHERE kind = 'same'")
cross_n=$(psql_on router -c "SELECT count(*) FROM pairs WHERE kind = 'cross'")
printf '\\set i random(1, %d)\nSELECT ledger_transfer(a, b, 1) FROM pairs WHERE kind = '"'same'"' AND i = :i;\n' "$same_n" >"$LEDGER_TMP/same.sql"
printf '\\set i random(1, %d)\nSELECT ledger_transfer(a, b, 1) FROM pairs WHERE kind = '"'cross'"' AND i = :i;\n' "$cross_n" >"$LEDGER_TMP/cross.sql"
echo "3. transfers through the router, 4 shards, in alternating rounds: within one shard vs between two"
for c in 1 "$CLIENTS"; do
	same="" cross=""
	for r in $(seq 1 "$ROUNDS"); do
		same="$same $(pgb "$(cluster_port router)" "$c" "$LEDGER_TMP/same.sql")"
		cross="$cross $(pgb "$(cluster_port router)" "$c" "$LEDGER_TMP/cross.sql")"
	done
	echo "$c $same | $cross" | awk '{
		n = (NF - 2) / 4; for (i = 0; i < n; i++) { st += $(2 + 2*i); sl += $(3 + 2*i); ct += $(2 + 2*n + 1 + 2*i); cl += $(3 + 2*n + 1 + 2*i) }
		printf "   %2d client(s): same shard %.0f/s, %.2f ms   across shards %.0f/s, %.2f ms   cross/same throughput %.2fx\n",
			$1, st / n, sl / n, ct / n, cl / n, ct / st }'
done

problems=$(psql_on router -c "SET ledger_router.unfinished_limit = '0'; SELECT count(*) FROM ledger_verify()")
[ "$problems" = 0 ] || { echo "bench/router: ledger_verify() found $problems problems" >&2; exit 1; }
echo "bench/router: done, ledger_verify() on the router clean"
