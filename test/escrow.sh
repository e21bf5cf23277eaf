#!/usr/bin/env bash
# test/escrow.sh: escrow mode across a server's life.
#
#   1. A synchronous standby is promoted while clients post to two escrow
#      accounts (keyed debits, and holds): the primary is stopped with
#      pg_ctl -m immediate.  On the promoted node every acknowledged posting
#      is there exactly once, the audit is clean, and escrow postings go on:
#      its shared state, rebuilt from the tables, refuses a debit one unit
#      over what is available and accepts one of exactly that.
#   2. The same node restarted without the library preloaded: escrow mode
#      cannot be turned on and escrow accounts refuse postings (55000, with
#      a hint), while locked accounts post and every read works; an escrow
#      account can still be switched back to locked mode (its entries are
#      folded without the shared memory) and then posts again.
#   3. Sixteen slots, all holding escrow accounts of a database whose folder
#      cannot start (no worker free): another database still posts to new
#      escrow accounts and its folder folds them; once a worker is free,
#      the first database's new folder finds and folds all its entries.
#   4. A transfer waits for a place among the in-flight ids of x (64
#      transactions posted to x and sleep) and is cancelled: the place it
#      took on y is given back, and y's later entries are folded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/replication.sh"

die() { echo "escrow: FAIL: $*" >&2; exit 1; }
PG_CONFIG=$LEDGER_PG_BIN/pg_config
NCLIENTS=4
CLIENT_PIDS=()
escrow_cleanup() {
	local pid
	for pid in "${CLIENT_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	ledger_cleanup
}

ledger_require_packages
ledger_build_install
cluster_start primary -c shared_preload_libraries=ledger
TMP=$LEDGER_TMP
trap escrow_cleanup EXIT
cc -std=c99 -Wall -Wextra -Werror -O2 -I"$($PG_CONFIG --includedir)" \
	"$LEDGER_ROOT/test/crash_client.c" -L"$($PG_CONFIG --libdir)" -lpq -o "$TMP/crash_client"

psql_q <<'SQL' >/dev/null
CREATE EXTENSION ledger;
SELECT ledger_open_account('crash', 'XXX', NULL);
SELECT ledger_open_account('crash-hold', 'XXX', 0);
SELECT ledger_credit('crash-hold', 1000000000000);
SELECT ledger_set_account_mode('crash', 'escrow'), ledger_set_account_mode('crash-hold', 'escrow');
ALTER SYSTEM SET synchronous_standby_names = 'standby';
SELECT pg_reload_conf();
SQL
standby_create standby primary standby -c shared_preload_libraries=ledger
wait_replication primary standby sync

log "$NCLIENTS clients post to two escrow accounts; then the primary stops (immediate)"
conninfo="host=127.0.0.1 port=$(cluster_port primary) user=postgres dbname=postgres"
for c in $(seq 1 "$NCLIENTS"); do
	"$TMP/crash_client" "$c" "$conninfo" >"$TMP/acks.$c" 2>"$TMP/client.$c.err" &
	CLIENT_PIDS+=($!)
done
sleep 2
cluster_stop_immediate primary
for i in "${!CLIENT_PIDS[@]}"; do
	reap_lost_client "${CLIENT_PIDS[$i]}" "$TMP/client.$((i + 1)).err" || die "client $((i + 1)) failed"
done
CLIENT_PIDS=()
cluster_promote standby
cluster_use standby

acked=$(cat "$TMP"/acks.* | wc -l)
[ "$acked" -gt 100 ] || die "only $acked postings were acknowledged"
result=$(
	{
		echo "CREATE TEMP TABLE acked (line text); COPY acked FROM STDIN;"
		cat "$TMP"/acks.*
		echo '\.'
		cat <<'SQL'
CREATE FUNCTION pg_temp.debit_outcome(amount bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM ledger_debit('crash-hold', amount);
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
SELECT concat_ws('|',
	(SELECT count(*) FROM acked a
	  WHERE (SELECT count(*) FROM ledger.idempotency_keys k
			  WHERE k.idempotency_key = split_part(a.line, ' ', 1)) <> 1),
	(SELECT count(*) FROM ledger.entries e JOIN ledger.accounts a USING (account_id)
	  WHERE a.name = 'crash') + ledger_balance('crash'),
	(SELECT count(*) FROM ledger_verify()),
	pg_temp.debit_outcome(ledger_available('crash-hold') + 1),
	pg_temp.debit_outcome(ledger_available('crash-hold')),
	ledger_account_mode('crash-hold'));
SQL
	} | psql_q
) || die "the checks on the promoted standby failed"
IFS='|' read -r missing imbalance problems over exact mode <<<"$result"
log "promoted standby: $acked acknowledged, $missing missing; balance off by $imbalance;" \
	"$problems audit problems; over-available debit: $over; exact: $exact; mode $mode"
[ "$missing" = 0 ] || die "$missing acknowledged postings are not on the promoted standby exactly once"
[ "$imbalance" = 0 ] || die "the escrow account's balance does not equal its journal"
[ "$problems" = 0 ] || die "ledger_verify() reports $problems problems"
[ "$over" = LG001 ] && [ "$exact" = accepted ] ||
	die "the rebuilt escrow state is wrong: over-available debit $over, exact debit $exact"

log "the promoted node restarted without the library preloaded"
cluster_stop standby
cluster_restart standby -c work_mem=4MB
state() { psql_q -v VERBOSITY=sqlstate -c "$1" 2>&1 | tail -n 1; }
[ "$(state "SELECT ledger_debit('crash-hold', 1)")" = "ERROR:  55000" ] ||
	die "an escrow account took a posting without the shared memory"
psql_q -c "SELECT ledger_open_account('later', 'XXX')" >/dev/null
[ "$(state "SELECT ledger_set_account_mode('later', 'escrow')")" = "ERROR:  55000" ] ||
	die "escrow mode was turned on without the shared memory"
hint=$(psql_q -c "SELECT ledger_debit('crash-hold', 1)" 2>&1 || true)
echo "$hint" | grep -q "shared_preload_libraries" || die "no hint to preload the library: $hint"
psql_q -c "SELECT ledger_open_account('plain', 'XXX', NULL), ledger_debit('plain', 5)" >/dev/null ||
	die "a locked account could not post"
[ "$(psql_q -c "SELECT ledger_balance('crash-hold') > 0 AND ledger_available('crash-hold') >= 0")" = t ] ||
	die "reading an escrow account failed"
[ "$(psql_q -c "SELECT ledger_set_account_mode('crash-hold', 'locked')")" = escrow ] ||
	die "the escrow account could not be switched back to locked mode"
psql_q -c "SELECT ledger_credit('crash-hold', 2), ledger_debit('crash-hold', 1)" >/dev/null ||
	die "the switched account could not post"
[ "$(psql_q -c "SELECT count(*) FROM ledger.entries e JOIN ledger.accounts a USING (account_id)
                 WHERE a.name = 'crash-hold' AND e.balance_after IS NULL")" = 0 ] ||
	die "the switch to locked mode left entries unfolded"
[ "$(psql_q -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] || die "ledger_verify() after the switch"
cluster_stop standby

log "16 slots, a database whose folder cannot start, and another database"
# max_worker_processes 2: the logical replication launcher and one folder
cluster_start slots -c shared_preload_libraries=ledger -c ledger.escrow_accounts=16 \
	-c max_worker_processes=2
for db in busy nofolder; do
	psql_q -c "CREATE DATABASE $db"
	psql_q -d "$db" -c 'CREATE EXTENSION ledger'
done
unfolded() {
	psql_q -d "$1" -c "SELECT count(*) FROM ledger.entries WHERE balance_after IS NULL"
}
wait_folded() {
	local i
	for i in $(seq 1 300); do
		[ "$(unfolded "$1")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}
psql_q -d busy -c "SET ledger.escrow_by_default = on" \
	-c "SELECT ledger_open_account('b0', 'XXX', NULL), ledger_credit('b0', 10)" >/dev/null
wait_folded busy || die "the folder of the first database did not fold"
# every slot to an account of a database without a folder, with work for it
# (each posting its own transaction: a transaction pins the slots it posts to)
postings() {
	local i
	echo "SET ledger.escrow_by_default = on; SET client_min_messages = error;"
	for i in $(seq 1 "$2"); do
		echo "SELECT ledger_open_account('$1$i', 'XXX', NULL); SELECT ledger_credit('$1$i', $i);"
	done
}
postings n 16 | psql_q -d nofolder >/dev/null
[ "$(unfolded nofolder)" = 16 ] || die "entries were folded without a folder"
# the other database still gets slots, and its folder folds
postings b 20 | psql_q -d busy >/dev/null ||
	die "slots with work for a folder that does not run kept another database from posting"
wait_folded busy || die "the second round of the first database was not folded"
[ "$(psql_q -d nofolder -c "SELECT sum(ledger_balance('n' || i)) FROM generate_series(1, 16) i")" = 136 ] ||
	die "a balance without its folded entries is wrong"
[ "$(psql_q -d nofolder -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] ||
	die "ledger_verify() with entries not folded"
# a folder started later finds the work of the evicted slots in the tables
psql_q -d busy -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'ledger folder'" >/dev/null
for i in $(seq 1 100); do
	[ "$(psql_q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ledger folder'")" = 0 ] && break
	sleep 0.1
done
sleep 1.5	# a failed start is tried again a second later
psql_q -d nofolder -c "SELECT ledger_credit('n1', 1)" >/dev/null
wait_folded nofolder || die "a folder started later left $(unfolded nofolder) entries unfolded"
[ "$(psql_q -d nofolder -c "SELECT count(*) FROM ledger.accounts WHERE balance <> (SELECT sum(amount) FROM ledger.entries e WHERE e.account_id = accounts.account_id)")" = 0 ] ||
	die "a folded balance differs from its journal"
log "a transfer cancelled while it waits for a place among 64 transactions in flight"
psql_q -d nofolder -c "SELECT ledger_open_account('y', 'XXX', NULL), ledger_open_account('x', 'XXX', NULL)" \
	-c "SELECT ledger_set_account_mode('y', 'escrow'), ledger_set_account_mode('x', 'escrow')" \
	-c "SELECT ledger_credit('y', 100), ledger_credit('x', 100)" >/dev/null
HOLDERS=()
for i in $(seq 1 64); do
	psql_q -d nofolder -c "BEGIN; SELECT ledger_debit('x', 1); SELECT pg_sleep(6); COMMIT" >/dev/null &
	HOLDERS+=($!)
done
CLIENT_PIDS+=("${HOLDERS[@]}")
for i in $(seq 1 200); do
	[ "$(psql_q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")" = 64 ] && break
	sleep 0.1
done
[ "$(psql_q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")" = 64 ] ||
	die "the 64 transactions on x did not all start"
# y comes first in account_id order: the transfer takes a place on y, then waits for one on x
cancelled=$(psql_q -d nofolder -v VERBOSITY=sqlstate -c "SET statement_timeout = '1s'" \
	-c "SELECT ledger_transfer('y', 'x', 1)" 2>&1 | tail -n 1 || true)
[ "$cancelled" = "ERROR:  57014" ] || die "the waiting transfer was not cancelled: $cancelled"
wait "${HOLDERS[@]}" || die "a transaction holding a place on x failed"
psql_q -d nofolder -c "SELECT ledger_credit('y', 1)" >/dev/null
wait_folded nofolder ||
	die "the cancelled transfer left its place on y behind: $(unfolded nofolder) entries never folded"
[ "$(psql_q -d nofolder -c "SELECT ledger_balance('x') || ' ' || ledger_balance('y')")" = "36 101" ] ||
	die "balances after the cancelled transfer: $(psql_q -d nofolder -c "SELECT ledger_balance('x') || ' ' || ledger_balance('y')")"
echo "escrow: $acked escrow postings all on the promoted synchronous standby, its rebuilt state exact; without the library preloaded escrow refuses (55000) and everything else works; slots with work for a folder that cannot run do not keep another database from posting, and a folder started later folds it all; a transfer cancelled while waiting for a place leaves none behind; OK"
