#!/usr/bin/env bash
# test/router_bank.sh: the sharded bank test (issue 16).
#
# A router and four shards; ACCOUNTS accounts of 200 each, placed by the
# router; CLIENTS clients (test/router_bank.c) transferring random amounts
# between random accounts through the router, most of them between shards,
# each under its own key, retrying what failed with the same key.  While
# they run, every second or two, at random, one of:
#   - kill -9 of a client process (another takes its place),
#   - kill -9 of a router backend serving a client (the router's postmaster
#     then restarts every backend: every client loses its connection),
#   - kill -9 of a shard's postmaster and all its children, restarted a
#     second later (crash recovery).
# With "failover": shard 1 has a synchronous standby; halfway through, its
# primary is killed for good, the standby promoted and the router pointed
# at it with ALTER SERVER ledger_shards OPTIONS (SET p1 ...).
#
# Afterwards ledger_recover(), scheduled with pg_cron on the router every
# minute as a role granted only it (the README's recipe), finishes
# whatever was left half done -- one transfer is cut after its first step
# on purpose, so that there is always one -- and:
#   - every acknowledged transfer is applied, every refused one is not,
#     nothing is applied that no client sent, and no key twice;
#   - every balance is 200 plus what applied transfers brought in, less
#     what they took out (so each applied exactly once), none below its
#     floor, nothing left held;
#   - the sum over the shards is unchanged;
#   - ledger_verify() on the router (every shard's audit and the
#     cross-shard checks, with no unfinished transfer allowed) is clean.
#
# Usage: bash test/router_bank.sh [kills|failover]
# Environment: RBANK_ACCOUNTS (16), RBANK_CLIENTS (8), RBANK_SECONDS (20),
# RBANK_SEED (random, printed).  make stress runs it for 120 s.
# RBANK_BREAK=finish-first breaks the protocol on purpose (the router
# captures the source's hold and never credits the destination); the run
# must then FAIL.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/replication.sh"
source "$(dirname "$0")/router_lib.sh"

MODE=${1:-kills}
A=${RBANK_ACCOUNTS:-16}
M=${RBANK_CLIENTS:-8}
T=${RBANK_SECONDS:-20}
SEED=${RBANK_SEED:-$RANDOM}
NSHARDS=4
PG_CONFIG=$LEDGER_PG_BIN/pg_config

die() { echo "router_bank: FAIL: $*" >&2; exit 1; }
case "$MODE" in kills|failover) ;; *) echo "usage: router_bank.sh [kills|failover]" >&2; exit 2 ;; esac
for v in "$A" "$M" "$T" "$SEED"; do
	[[ "$v" =~ ^[0-9]+$ ]] || die "RBANK_ACCOUNTS, RBANK_CLIENTS, RBANK_SECONDS and RBANK_SEED must be integers"
done
RANDOM=$SEED
log "router_bank $MODE: $A accounts, $M clients, $T s, seed $SEED"

ledger_require_packages postgresql-15-plproxy postgresql-15-cron
ledger_build_install

CLIENT_PIDS=()
bank_cleanup() {
	local pid
	for pid in "${CLIENT_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	ledger_cleanup
}
ledger_init_tmp
trap bank_cleanup EXIT
TMP=$LEDGER_TMP

ROUTER_OPTIONS="-c shared_preload_libraries=pg_cron -c cron.database_name=postgres -c cron.use_background_workers=on"
if [ "$MODE" = failover ]; then router_start $NSHARDS 1; else router_start $NSHARDS; fi
psql_on router >/dev/null <<'SQL'
CREATE EXTENSION pg_cron;
CREATE ROLE ledger_recoverer LOGIN;   -- no password: nobody logs in as it
GRANT EXECUTE ON FUNCTION ledger_recover(interval) TO ledger_recoverer;
GRANT USAGE ON SCHEMA cron TO ledger_recoverer;
SQL
if [ "${RBANK_BREAK:-}" = finish-first ]; then
	log "RBANK_BREAK=finish-first: transfers between shards are never credited; this run must FAIL"
	psql_on router >/dev/null <<'SQL'
CREATE OR REPLACE FUNCTION ledger_router.transfer_complete(source int4, idempotency_key text)
	RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	RETURN ledger_router.transfer_finish(source, idempotency_key);
SQL
elif [ -n "${RBANK_BREAK:-}" ]; then
	die "unknown RBANK_BREAK '$RBANK_BREAK' (only: finish-first)"
fi
ROUTER="$(shard_conninfo router) user=postgres application_name=rbank connect_timeout=5"

log "compiling the client"
cc -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2 -I"$($PG_CONFIG --includedir)" \
	"$LEDGER_ROOT/test/router_bank.c" -L"$($PG_CONFIG --libdir)" -lpq -o "$TMP/router_bank"

psql_on router -c "SELECT count(ledger_open_account('b-' || i)) FROM generate_series(0, $A - 1) i" \
	-c "SELECT count(ledger_credit('b-' || i, 200)) FROM generate_series(0, $A - 1) i" >/dev/null
[ "$(psql_on router -c "SELECT count(DISTINCT ledger_router.shard('b-' || i)) FROM generate_series(0, $A - 1) i")" = $NSHARDS ] ||
	die "the accounts do not span all $NSHARDS shards"

start=$SECONDS
next_client=1
start_client() {
	local left=$(( T - (SECONDS - start) ))
	[ "$left" -gt 0 ] || left=1
	"$TMP/router_bank" "$next_client" "$ROUTER" "$A" "$left" "$SEED" \
		>"$TMP/client.$next_client.log" 2>"$TMP/client.$next_client.err" &
	CLIENT_PIDS+=($!)
	next_client=$((next_client + 1))
}
for _ in $(seq 1 "$M"); do start_client; done

client_kills=0 router_kills=0 shard_kills=0 failed_over=false
while [ $((SECONDS - start)) -lt "$T" ]; do
	sleep "1.$((RANDOM % 10))"
	if [ "$MODE" = failover ] && ! $failed_over && [ $((SECONDS - start)) -ge $((T / 2)) ]; then
		log "failover: shard1's primary killed, its standby promoted, the router pointed at it"
		cluster_crash shard1
		cluster_promote shard1s
		router_point 1 shard1s
		failed_over=true
		continue
	fi
	case $((RANDOM % 3)) in
	0)	victim=${CLIENT_PIDS[$((RANDOM % ${#CLIENT_PIDS[@]}))]}
		if kill -KILL "$victim" 2>/dev/null; then
			client_kills=$((client_kills + 1))
			start_client
		fi ;;
	1)	pid=$(psql_on router -c "SELECT pid FROM pg_stat_activity
		                         WHERE application_name = 'rbank' ORDER BY random() LIMIT 1" 2>/dev/null || true)
		if [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; then
			router_kills=$((router_kills + 1))
		fi ;;
	2)	shard=$((RANDOM % NSHARDS))
		[ "$MODE" = failover ] && [ "$shard" = 1 ] && continue
		cluster_crash "shard$shard"
		sleep 1
		# a backend forked while the crash was being dealt may hold the
		# shared memory a moment longer: the start is refused until it goes
		for attempt in $(seq 1 20); do
			cluster_restart "shard$shard" 2>/dev/null && break
			[ "$attempt" = 20 ] && die "shard$shard did not start again after its crash"
			sleep 1
		done
		shard_kills=$((shard_kills + 1)) ;;
	esac
done
log "load over: $client_kills clients, $router_kills router backends and $shard_kills shards killed; waiting for the clients' retries"
for pid in "${CLIENT_PIDS[@]}"; do
	wait "$pid" 2>/dev/null && continue
	status=$?
	# 137: one this script killed
	[ "$status" = 137 ] || { cat "$TMP"/client.*.err >&2; die "a client exited with $status"; }
done
CLIENT_PIDS=()
[ "$client_kills" -gt 0 ] && [ "$router_kills" -gt 0 ] && [ "$shard_kills" -gt 0 ] ||
	log "note: not every kind of kill happened in this run (seed $SEED)"

log "recovery by pg_cron"
# one transfer cut after step 1, as if its router backend died right then
cut_from=$(psql_on router -c "SELECT 'b-' || i FROM generate_series(0, $A - 1) i
                              ORDER BY ledger_available('b-' || i) DESC LIMIT 1")
cut_to=$(psql_on router -c "SELECT 'b-' || i FROM generate_series(0, $A - 1) i
                            WHERE ledger_router.shard('b-' || i) <> ledger_router.shard('$cut_from') LIMIT 1")
psql_on router -c "SELECT ledger_router.transfer_out(ledger_router.shard('$cut_from'), '$cut_from', '$cut_to',
                   ledger_router.transfer_check('$cut_from', '$cut_to', 1, 'cut'), 1, 'cut')" >/dev/null
echo "A cut $cut_from $cut_to 1" >"$TMP/client.cut.log"
left=$(psql_on router -c "SELECT count(*) FROM generate_series(0, $NSHARDS - 1) h,
                          LATERAL ledger_router.transfers_unfinished(h, '0')")
[ "$left" -ge 1 ] || die "no transfer is unfinished before recovery"
psql_on router -c "SET ROLE ledger_recoverer" \
	-c "SELECT cron.schedule('ledger-recover', '* * * * *', \$\$SELECT ledger_recover('0')\$\$)" >/dev/null
# pg_cron runs at the start of each minute; a shard restarted at the wrong
# moment leaves work for the next run
for attempt in $(seq 1 180); do
	left=$(psql_on router -c "SELECT count(*) FROM generate_series(0, $NSHARDS - 1) h,
	                          LATERAL ledger_router.transfers_unfinished(h, '0')" 2>/dev/null || echo unknown)
	[ "$left" = 0 ] && break
	sleep 1
done
[ "$left" = 0 ] || die "$left transfers still unfinished after 3 minutes of ledger_recover() by pg_cron"
runs=$(psql_on router -c "SELECT count(*) FROM cron.job_run_details
                          WHERE status = 'succeeded' AND username = 'ledger_recoverer'")
[ "$runs" -ge 1 ] || die "no successful run of the pg_cron job as ledger_recoverer"
psql_on router -c "SET ROLE ledger_recoverer" -c "SELECT cron.unschedule('ledger-recover')" >/dev/null

log "checks"
live_shards="shard0 shard1 shard2 shard3"
$failed_over && live_shards="shard0 shard1s shard2 shard3"
for s in $live_shards; do
	psql_on "$s" -c "SELECT idempotency_key FROM ledger.idempotency_keys WHERE operation = 'transfer'
	                 UNION ALL
	                 SELECT idempotency_key FROM ledger_transfers_out() WHERE status = 'captured'"
done >"$TMP/applied"
cat "$TMP"/client.*.log | awk '{ print $1 "," $2 "," $3 "," $4 "," $5 }' >"$TMP/log.csv"
psql_on router -c "SELECT 'b-' || i || ',' || ledger_balance('b-' || i) || ',' || ledger_available('b-' || i)
                   FROM generate_series(0, $A - 1) i" >"$TMP/balances"

problems=$(psql_on router <<SQL
CREATE TEMP TABLE log (kind text, key text, a text, b text, amount bigint);
CREATE TEMP TABLE applied (key text);
CREATE TEMP TABLE balances (account text, balance bigint, available bigint);
\copy log FROM '$TMP/log.csv' (FORMAT csv)
\copy applied FROM '$TMP/applied'
\copy balances FROM '$TMP/balances' (FORMAT csv)
SET ledger_router.unfinished_limit = '0';
WITH sent AS (SELECT key, a AS from_account, b AS to_account, amount FROM log WHERE kind = 'A'),
     moved AS (SELECT s.* FROM sent s JOIN applied USING (key)),
     expected AS (
        SELECT account, 200 + COALESCE(sum(delta), 0) AS balance
          FROM (SELECT 'b-' || i AS account FROM generate_series(0, $A - 1) i) acc
          LEFT JOIN (SELECT from_account AS account, -amount AS delta FROM moved
                     UNION ALL SELECT to_account, amount FROM moved) d USING (account)
         GROUP BY account)
SELECT format('acknowledged transfer %s was not applied', key)
  FROM log WHERE kind = 'K' AND key NOT IN (SELECT key FROM applied)
UNION ALL
SELECT format('refused transfer %s was applied', key)
  FROM log WHERE kind = 'R' AND key IN (SELECT key FROM applied)
UNION ALL
SELECT format('transfer %s applied %s times', key, count(*)) FROM applied GROUP BY key HAVING count(*) > 1
UNION ALL
SELECT format('transfer %s was applied but never sent', key)
  FROM applied WHERE key NOT IN (SELECT key FROM sent)
UNION ALL
SELECT format('account %s has %s, its applied transfers make %s', b.account, b.balance, e.balance)
  FROM balances b JOIN expected e USING (account) WHERE b.balance <> e.balance
UNION ALL
SELECT format('account %s: balance %s, available %s', account, balance, available)
  FROM balances WHERE balance < 0 OR available <> balance
UNION ALL
SELECT format('the sum over the shards is %s, not %s', sum(balance), $A * 200)
  FROM balances HAVING sum(balance) <> $A * 200
UNION ALL
SELECT format('ledger_verify: %s: %s', account, problem) FROM ledger_verify();
SQL
) || die "the checks could not run"
[ -z "$problems" ] || die "$(printf '%s\n' "$problems" | head -20)"

counts=$(awk -F, '{ n[$1]++ } END { printf "%d sent, %d acknowledged, %d refused", n["A"], n["K"], n["R"] }' "$TMP/log.csv")
acked=$(awk -F, '$1 == "K"' "$TMP/log.csv" | wc -l)
[ "$acked" -ge 50 ] || die "only $acked transfers were acknowledged: the load did not run"
echo "router_bank $MODE: $counts; $(wc -l <"$TMP/applied") applied, each once, the unfinished finished by pg_cron's ledger_recover(); $client_kills clients, $router_kills router backends, $shard_kills shards killed$($failed_over && echo ', shard 1 failed over'); sums, floors and ledger_verify() clean; OK"
