#!/usr/bin/env bash
# test/failover.sh: failover to a synchronous standby loses no acknowledged
# posting.
#
# The guarantee (README, "Never lost"): a transaction that posts money is
# committed synchronously, and with a synchronous standby configured that
# means acknowledged by the standby before the client hears "ok" -- even
# in a session that set synchronous_commit = off or local.  So when the
# primary dies, the promoted standby has every acknowledged posting.
#
# How, with three clusters on 127.0.0.1 (test/replication.sh):
#
#  0. Primary A; standby B made by pg_basebackup -R, its walreceiver
#     connecting as application_name 'b'; A has synchronous_standby_names
#     = 'b', set before the base backup, so B inherits it (the trap: a
#     promoted B would wait for a standby 'b' on its first write).
#  1. Standby stopped: B is shut down; postings from sessions with
#     synchronous_commit = off and = local are seen waiting (wait_event
#     SyncRep) and unacknowledged for 1 s, while an ordinary insert with
#     synchronous_commit = local goes through; B is started again and the
#     waiting postings are released and are on B.
#  2. Failover mid-stream: 8 clients (test/failover_client.c, with
#     synchronous_commit off, local, remote_write and on) post keyed debits
#     and transfers to A and record every acknowledgement; after 3 s A is
#     killed (pg_ctl -m immediate); B's synchronous_standby_names is reset,
#     B is promoted and must take a write at once.
#  3. Failover with a stalled link: standby C of B (now the primary, with
#     synchronous_standby_names = 'c'); clients post to B for 2 s; then B's
#     walsender for C is stopped with SIGSTOP, as a network that stops
#     delivering would.  For 1 s no posting may be acknowledged; then B is
#     killed (pg_ctl -m immediate) and C promoted.
#
# After each failover every acknowledged key of every round is looked up on
# the new primary: present exactly once with the acknowledged result (the
# new balance of a debit, the id of a transfer), the journal holds its
# entries, no client has more than its one in-flight posting committed
# unacknowledged, and ledger_verify() is empty.
#
# FAILOVER_BREAK=async runs the same with synchronous_standby_names = ''
# (asynchronous standbys, which the ledger does not promise anything for)
# and skips part 1 (nothing would wait): it must FAIL, by the postings
# acknowledged during the stall of part 3, which C never received.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/replication.sh"

BREAK=${FAILOVER_BREAK:-}
case "$BREAK" in
	''|async) ;;
	*) echo "failover: unknown FAILOVER_BREAK '$BREAK' (only: async)" >&2; exit 2 ;;
esac
MODES=(off local remote_write on off local off local)   # client c uses MODES[c-1]
NCLIENTS=${#MODES[@]}
PG_CONFIG=$LEDGER_PG_BIN/pg_config

CLIENT_PIDS=()
STOPPED_PIDS=()
failover_cleanup() {
	local pid
	for pid in "${STOPPED_PIDS[@]}"; do
		kill -CONT "$pid" 2>/dev/null || true
	done
	for pid in "${CLIENT_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	ledger_cleanup
}

die() {
	echo "failover: FAIL: $*" >&2
	exit 1
}

sync_state=sync
[ "$BREAK" = async ] && sync_state=async

# set_sync_names NODE NAMES: synchronous_standby_names on NODE, live
set_sync_names() {
	psql_on "$1" -c "ALTER SYSTEM SET synchronous_standby_names = '$2'" \
		-c 'SELECT pg_reload_conf()' >/dev/null
}

# --- 0. primary A, synchronous standby B ----------------------------------
cluster_start a -c deadlock_timeout=100ms
TMP=$LEDGER_TMP
trap failover_cleanup EXIT

log "compiling the failover client"
cc -std=c99 -Wall -Wextra -Werror -O2 -I"$($PG_CONFIG --includedir)" \
	"$LEDGER_ROOT/test/failover_client.c" -L"$($PG_CONFIG --libdir)" -lpq \
	-o "$TMP/failover_client"

[ "$(psql_q -c 'SHOW fsync')" = on ] || die "fsync is not on"
psql_q <<'SQL' >/dev/null
CREATE EXTENSION ledger;
SELECT ledger_open_account('failover', 'XXX', NULL);  -- no floor: debits never fail
SELECT ledger_open_account('sink');
-- part 1: one account per waiting session (a session waiting for the
-- standby still holds its row lock)
SELECT ledger_open_account('wait_off', 'XXX', NULL);
SELECT ledger_open_account('wait_local', 'XXX', NULL);
CREATE TABLE plain (x int);
SQL
if [ "$BREAK" = async ]; then
	log "FAILOVER_BREAK=async: standbys are asynchronous; this run must FAIL"
	set_sync_names a ''
else
	set_sync_names a b
fi
standby_create b a b
[ "$(psql_on b -c 'SHOW synchronous_standby_names')" = "$([ "$BREAK" = async ] || echo b)" ] ||
	die "standby b did not inherit synchronous_standby_names"
wait_replication a b "$sync_state" || die "standby b is not $sync_state"
log "standby b streaming from a as a $sync_state standby"

# --- 1. with the standby stopped a posting waits ---------------------------
if [ "$BREAK" = async ]; then
	log "part 1 skipped: with an asynchronous standby nothing waits"
else
	cluster_stop b
	for _ in $(seq 1 100); do
		[ -z "$(psql_on a -c "SELECT 1 FROM pg_stat_replication WHERE application_name = 'b'")" ] && break
		sleep 0.1
	done
	PGOPTIONS='-c synchronous_commit=local' timeout 20 \
		"$LEDGER_PG_BIN/psql" -X -q -c 'INSERT INTO plain VALUES (1)' ||
		die "an ordinary insert with synchronous_commit = local waited for the stopped standby"
	WAIT_PIDS=()
	for mode in off local; do
		PGAPPNAME=wait_$mode PGOPTIONS="-c synchronous_commit=$mode" timeout 120 \
			"$LEDGER_PG_BIN/psql" -X -At -v ON_ERROR_STOP=1 \
			-c "SELECT ledger_debit('wait_$mode', 1, 'wait-$mode')" \
			>"$TMP/wait_$mode.out" 2>"$TMP/wait_$mode.err" &
		WAIT_PIDS+=($!)
	done
	CLIENT_PIDS=("${WAIT_PIDS[@]}")
	waiting=0
	for _ in $(seq 1 100); do
		waiting=$(psql_on a -c "SELECT count(*) FROM pg_stat_activity
			WHERE application_name IN ('wait_off', 'wait_local') AND wait_event = 'SyncRep'")
		[ "$waiting" -eq 2 ] && break
		sleep 0.1
	done
	[ "$waiting" -eq 2 ] || die "postings with synchronous_commit = off/local did not wait for the stopped standby"
	sleep 1
	for i in 0 1; do
		kill -0 "${WAIT_PIDS[$i]}" 2>/dev/null || die "a posting finished while the standby was stopped"
	done
	[ ! -s "$TMP/wait_off.out" ] && [ ! -s "$TMP/wait_local.out" ] ||
		die "a posting was acknowledged while the standby was stopped"
	waiting=$(psql_on a -c "SELECT count(*) FROM pg_stat_activity
		WHERE application_name IN ('wait_off', 'wait_local') AND wait_event = 'SyncRep'")
	[ "$waiting" -eq 2 ] || die "after 1 s only $waiting of 2 postings still wait for the standby"
	log "standby stopped: postings with synchronous_commit = off and local wait (SyncRep); an ordinary insert does not"

	cluster_restart b
	for i in 0 1; do
		status=0
		wait "${WAIT_PIDS[$i]}" || status=$?
		[ "$status" -eq 0 ] || { cat "$TMP"/wait_*.err >&2; die "a waiting posting failed (status $status)"; }
	done
	CLIENT_PIDS=()
	grep -qE '^-?[0-9]+$' "$TMP/wait_off.out" && grep -qE '^-?[0-9]+$' "$TMP/wait_local.out" ||
		die "the released postings returned no balance"
	wait_replication a b sync || die "standby b did not come back as synchronous"
	wait_caught_up a b || die "standby b did not catch up"
	n=$(psql_on b -c "SELECT count(*) FROM ledger.idempotency_keys WHERE idempotency_key IN ('wait-off', 'wait-local')")
	[ "$n" -eq 2 ] || die "the released postings are not on the standby"
	log "standby back: both postings released, acknowledged and present on the standby"

	# A standby refuses every posting with 25006, on every path.
	psql_on b <<'SQL' >/dev/null || die "a posting on the standby did not fail with 25006"
DO $$
DECLARE
	call text;
	state text;
BEGIN
	FOREACH call IN ARRAY ARRAY[
		'SELECT ledger_credit(''failover'', 1)',
		'SELECT ledger_debit(''failover'', 1)',
		'SELECT ledger_debit(''failover'', 1, ''on-the-standby'')',
		'SELECT ledger_transfer(''failover'', ''sink'', 1)',
		'SELECT ledger_debit_batch(ARRAY[''failover''], ARRAY[1])',
		'SELECT ledger_open_account(''on-the-standby'')']
	LOOP
		state := NULL;
		BEGIN
			EXECUTE call;
		EXCEPTION WHEN OTHERS THEN
			state := SQLSTATE;
		END;
		IF state IS DISTINCT FROM '25006' THEN
			RAISE EXCEPTION '% on the standby: SQLSTATE %, not 25006', call, coalesce(state, 'none');
		END IF;
	END LOOP;
END
$$;
SQL
	log "standby: every kind of posting refused with 25006"
	printf 'wait-off\tdebit\t%s\n' "$(cat "$TMP/wait_off.out")" >"$TMP/acks.wait"
	printf 'wait-local\tdebit\t%s\n' "$(cat "$TMP/wait_local.out")" >>"$TMP/acks.wait"
fi
touch "$TMP/acks.wait"

# --- helpers for the rounds ------------------------------------------------
# start_clients NODE ROUND: clients ROUND*100+1.. against NODE
start_clients() {
	local node=$1 round=$2 c id conninfo
	conninfo="host=127.0.0.1 port=$(cluster_port "$node") user=postgres dbname=postgres"
	CLIENT_PIDS=()
	for c in $(seq 1 "$NCLIENTS"); do
		id=$((round * 100 + c))
		"$TMP/failover_client" --sync-commit="${MODES[$((c - 1))]}" "$id" "$conninfo" \
			>"$TMP/acks.$id" 2>"$TMP/client.$id.err" &
		CLIENT_PIDS+=($!)
	done
}

# ack_count ROUND: acknowledgements so far in that round
ack_count() {
	cat "$TMP"/acks."$1"[0-9][0-9] | wc -l
}

# run_clients ROUND TICKS: let them run, checking they live and progress
run_clients() {
	local round=$1 ticks=$2 tick i prev=0 now
	for tick in $(seq 1 "$ticks"); do
		sleep 0.5
		for i in "${!CLIENT_PIDS[@]}"; do
			kill -0 "${CLIENT_PIDS[$i]}" 2>/dev/null || {
				cat "$TMP/client.$((round * 100 + i + 1)).err" >&2
				die "client $((round * 100 + i + 1)) exited before the failover"
			}
		done
		now=$(ack_count "$round")
		[ "$now" -gt "$prev" ] || die "round $round: no new acknowledgements in tick $tick"
		prev=$now
	done
}

# reap_clients ROUND: after the kill every client must exit 0 (connection lost)
reap_clients() {
	local round=$1 i c
	for i in "${!CLIENT_PIDS[@]}"; do
		c=$((round * 100 + i + 1))
		reap_lost_client "${CLIENT_PIDS[$i]}" "$TMP/client.$c.err" || die "client $c failed after the kill"
	done
	CLIENT_PIDS=()
}

# check_acks NODE: every acknowledgement so far, looked up on NODE.
# Prints "acked|missing|wrong|journal|excess|problems" and details.
check_acks() {
	local node=$1 f
	for f in "$TMP"/acks.*; do
		grep -qvE $'^(c[0-9]+-[0-9]+|wait-(off|local)|first-on-[a-z]+)\t(debit|transfer)\t-?[0-9]+$' "$f" &&
			die "malformed acknowledgement in $f"
	done
	{
		cat <<'SQL'
CREATE TEMP TABLE acked (key text COLLATE "C" NOT NULL, kind text NOT NULL, result bigint NOT NULL);
COPY acked FROM STDIN;
SQL
		cat "$TMP"/acks.*
		cat <<'SQL'
\.
CREATE TEMP TABLE checked AS
WITH e AS (
	SELECT idempotency_key AS key, count(*) AS n FROM ledger.entries
	WHERE idempotency_key IS NOT NULL GROUP BY 1
), t AS (
	SELECT idempotency_key AS key, count(*) AS n FROM ledger.transfers
	WHERE idempotency_key IS NOT NULL GROUP BY 1
)
SELECT a.key, a.kind, a.result, k.operation, k.result AS k_result,
	   coalesce(e.n, 0) AS n_entries, coalesce(t.n, 0) AS n_transfers
FROM acked a
LEFT JOIN ledger.idempotency_keys k ON k.idempotency_key = a.key
LEFT JOIN e ON e.key = a.key
LEFT JOIN t ON t.key = a.key;
-- a client has at most one posting in flight: committed, "ok" lost in the kill
CREATE TEMP TABLE unacked AS
SELECT substring(k.idempotency_key from '^(c[0-9]+)-') AS client, count(*) AS n
FROM ledger.idempotency_keys k
WHERE NOT EXISTS (SELECT 1 FROM acked a WHERE a.key = k.idempotency_key)
GROUP BY 1;
SELECT concat_ws('|',
	(SELECT count(*) FROM acked),
	(SELECT count(*) FROM checked WHERE operation IS NULL),
	(SELECT count(*) FROM checked WHERE operation IS NOT NULL
	   AND (operation <> kind OR k_result <> result)),
	(SELECT count(*) FROM checked WHERE operation IS NOT NULL
	   AND (n_entries, n_transfers) <> (CASE kind WHEN 'debit' THEN (1::bigint, 0::bigint)
	                                              ELSE (2::bigint, 1::bigint) END)),
	(SELECT count(*) FROM unacked WHERE client IS NULL OR n > 1),
	(SELECT count(*) FROM ledger_verify()));
SELECT 'missing (first 10): ' || string_agg(key, ' ')
FROM (SELECT key FROM checked WHERE operation IS NULL ORDER BY length(key), key LIMIT 10) m
HAVING count(*) > 0;
SELECT 'verify: ' || account || ': ' || problem FROM ledger_verify();
SQL
	} | psql_on "$node"
}

# assert_acks NODE WHAT
assert_acks() {
	local node=$1 what=$2 result acked missing wrong journal excess problems fail=0
	result=$(check_acks "$node") || die "the checking queries failed on $node"
	IFS='|' read -r acked missing wrong journal excess problems <<<"$(head -n 1 <<<"$result")"
	tail -n +2 <<<"$result" | sed 's/^/    /' >&2
	log "$what: $acked acknowledged postings checked on $node: missing $missing," \
		"wrong result $wrong, wrong journal $journal; ledger_verify() problems: $problems"
	[ "$acked" -gt 0 ] || { echo "failover: FAIL: nothing was acknowledged" >&2; fail=1; }
	[ "$missing" -eq 0 ] ||
		{ echo "failover: FAIL: $what: $missing acknowledged postings lost" >&2; fail=1; }
	[ "$wrong" -eq 0 ] ||
		{ echo "failover: FAIL: $what: $wrong keys with another operation or result than acknowledged" >&2; fail=1; }
	[ "$journal" -eq 0 ] ||
		{ echo "failover: FAIL: $what: $journal keys without exactly their journal rows" >&2; fail=1; }
	[ "$excess" -eq 0 ] ||
		{ echo "failover: FAIL: $what: committed keys no client could have had in flight" >&2; fail=1; }
	[ "$problems" -eq 0 ] ||
		{ echo "failover: FAIL: $what: ledger_verify() reports $problems problems" >&2; fail=1; }
	[ "$fail" -eq 0 ] || exit 1
	ACKED=$acked
}

# promote_and_write NODE: promote; the first posting must not hang
promote_and_write() {
	local node=$1 balance
	cluster_promote "$node" || die "could not promote $node"
	balance=$(PGPORT=$(cluster_port "$node") timeout 10 "$LEDGER_PG_BIN/psql" -X -q -At \
		-c "SELECT ledger_debit('failover', 1, 'first-on-$node')") ||
		die "the first posting on the promoted $node failed or hung"
	printf 'first-on-%s\tdebit\t%s\n' "$node" "$balance" >"$TMP/acks.first_$node"
	log "$node promoted (synchronous_standby_names reset); its first posting went through"
}

# --- 2. failover mid-stream: kill A, promote B ------------------------------
log "round 1: $NCLIENTS clients (synchronous_commit ${MODES[*]}) post to a"
start_clients a 1
run_clients 1 6
log "pg_ctl -m immediate stop of primary a ($(ack_count 1) postings acknowledged)"
cluster_stop_immediate a
reap_clients 1
promote_and_write b
assert_acks b "round 1 (a killed mid-stream)"

# --- 3. failover with a stalled link: stop B's walsender, kill B, promote C -
if [ "$BREAK" = async ]; then
	set_sync_names b ''
else
	set_sync_names b c
fi
standby_create c b c
wait_replication b c "$sync_state" || die "standby c is not $sync_state"
log "round 2: standby c streaming from b as a $sync_state standby; clients post to b"
start_clients b 2
run_clients 2 4
walsender=$(psql_on b -c "SELECT pid FROM pg_stat_replication WHERE application_name = 'c'")
[ -n "$walsender" ] || die "no walsender for c on b"
kill -STOP "$walsender"
STOPPED_PIDS=("$walsender")
sleep 0.3   # let acknowledgements already on their way arrive
stall_before=$(ack_count 2)
sleep 1
stall_after=$(ack_count 2)
log "walsender $walsender for c stopped: $((stall_after - stall_before)) postings acknowledged during 1 s"
if [ "$BREAK" != async ] && [ "$stall_after" -ne "$stall_before" ]; then
	die "$((stall_after - stall_before)) postings acknowledged while the synchronous standby received nothing"
fi

# Immediate stop while the walsender is stopped: it must die on the
# postmaster's SIGQUIT without sending anything, so continue it only once
# that signal is pending (bit 3 of the pending masks in /proc).
b_pid=$(cluster_pid b)
as_server_user "$LEDGER_PG_BIN/pg_ctl" -D "$(cluster_dir b)/data" -m immediate -W stop >/dev/null
for _ in $(seq 1 100); do
	pending=$(awk '/^(SigPnd|ShdPnd):/ { print $2 }' "/proc/$walsender/status" 2>/dev/null | tr '\n' ' ')
	for mask in $pending; do
		(( (16#$mask & 4) != 0 )) && break 2
	done
	sleep 0.05
done
kill -CONT "$walsender"
STOPPED_PIDS=()
for _ in $(seq 1 200); do
	kill -0 "$b_pid" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$b_pid" 2>/dev/null && die "primary b did not stop"
log "pg_ctl -m immediate stop of primary b ($(ack_count 2) postings acknowledged in round 2)"
reap_clients 2
promote_and_write c
assert_acks c "round 2 (b killed with its walsender stalled)"

cluster_stop c
echo "failover: $(ack_count 1) + $(ack_count 2) acknowledged postings (synchronous_commit off/local/remote_write/on) all on the promoted standby after 2 failovers (mid-stream, stalled link); postings wait for a stopped standby; OK"
