#!/usr/bin/env bash
# test/crash.sh: crash durability test.
#
# The guarantee (ARCHITECTURE.md §5, "Never lost"): every transaction that
# posts money commits synchronously, even in a session that set
# synchronous_commit = off.  So after a crash and crash recovery every debit
# whose "ok" reached a client must be there, exactly once, and the ledger
# must still audit clean.
#
# How: 8 clients (test/crash_client.c; 4 of them with
# synchronous_commit = off) post keyed debits of 1 to one account in a
# tight loop, every third request a keyed hold of 1 (never expiring) on
# another account instead, each writing the key of every acknowledged debit
# (and the hold id of every acknowledged hold) to its own file.  After 3 s
# the synchronous clients are paused and the asynchronous ones go on alone
# for 0.5 s; then the postmaster and all its children are SIGKILLed at
# once, the server is restarted (crash recovery replays the WAL), and
# every acknowledged key is looked up: each debit is there exactly once;
# each hold exists exactly once, with the acknowledged id, its key stored,
# still pending (not ended, in ledger.pending_holds, "pending" in
# ledger_holds) and still reserving: ledger_available() is the balance
# less the pending holds, at most the balance less the acknowledged ones,
# and a debit of one more than that is refused (LG001).
#
# SIGKILL loses whatever WAL was still in the server's shared WAL buffers,
# not yet written to the kernel.  An asynchronous commit leaves its commit
# record exactly there and reports "ok" at once, so if the ledger failed to
# force the commit, the last asynchronous debits would be lost.  Why the
# pause: a synchronous commit writes out *all* the WAL before its own
# commit record, so while the synchronous clients run they rescue the
# asynchronous commits within a fraction of a millisecond, and a broken
# forced sync would be caught only when the kill happened to fall into that
# gap (about 1 run in 5 when tried).  With the synchronous clients paused,
# a broken forced sync loses debits in every run.
#
# With --no-keys every client posts without a key instead (the direct-write
# path of src/direct_write.c), each to an account of its own, and the
# check is by count: every acknowledged debit is an entry of its client's
# account, plus at most the one in flight at the crash.
#
# With --escrow both accounts are in escrow mode (the library preloaded),
# and every backend sleeps 2 ms between its commit and the settlement of
# its reservation in shared memory (ledger.escrow_test_stall_ms), so the
# kill finds postings committed but not settled.  After recovery the
# shared state is rebuilt from the tables: the same checks, and in
# particular the debit one unit over what the holds leave is refused while
# one of exactly that is accepted -- the rebuilt state neither lost nor
# double-counted a committed posting.
source "$(dirname "$0")/lib.sh"

NO_KEYS=false
ESCROW=false
case "${1:-}" in
	'') ;;
	--no-keys) NO_KEYS=true ;;
	--escrow) ESCROW=true ;;
	*) echo "usage: crash.sh [--no-keys | --escrow]" >&2; exit 2 ;;
esac

NCLIENTS=8
NASYNC=4          # clients NCLIENTS-NASYNC+1 .. NCLIENTS run with --async
RUN_TICKS=6       # ticks of 0.5 s of traffic from all clients
ASYNC_ONLY=0.5    # then seconds of traffic from the async clients alone
PG_CONFIG=$LEDGER_PG_BIN/pg_config

CLIENT_PIDS=()
crash_cleanup() {
	local pid
	for pid in "${CLIENT_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	ledger_cleanup
}

die() {
	echo "crash: FAIL: $*" >&2
	exit 1
}

client_is_async() { [ "$1" -gt $((NCLIENTS - NASYNC)) ]; }

# ack_lines [FIRST_CLIENT]: acknowledgements so far, of clients FIRST_CLIENT..
ack_lines() {
	local c n total=0
	for c in $(seq "${1:-1}" "$NCLIENTS"); do
		n=$(wc -l <"$TMP/acks.$c")
		total=$((total + n))
	done
	echo "$total"
}

# wal_writer_delay = 10 s: the WAL writer is what eventually writes out an
# asynchronous commit that nobody else flushes; with it asleep for 10 s,
# an asynchronous commit that the ledger failed to force would sit in the
# WAL buffers until the crash and be lost, instead of being written out by
# chance within the default 200 ms.  fsync stays on (the ledger refuses
# to post without it).
if $ESCROW; then
	cluster_start crash -c wal_writer_delay=10000 -c shared_preload_libraries=ledger \
		-c ledger.escrow_test_stall_ms=2
else
	cluster_start crash -c wal_writer_delay=10000
fi
# cluster_start made this script's temp dir and armed the stop-on-exit
# trap; extend the trap to the clients.
TMP=$LEDGER_TMP
[ -n "$TMP" ] && [ -d "$TMP" ] || die "lib.sh did not set up LEDGER_TMP"
trap crash_cleanup EXIT

log "compiling the crash client"
cc -std=c99 -Wall -Wextra -Werror -O2 -I"$($PG_CONFIG --includedir)" \
	"$LEDGER_ROOT/test/crash_client.c" -L"$($PG_CONFIG --libdir)" -lpq \
	-o "$TMP/crash_client"

[ "$(psql_q -c 'SHOW fsync')" = on ] || die "fsync is not on"
psql_q <<'SQL' >/dev/null
CREATE EXTENSION ledger;
SELECT ledger_open_account('crash', 'XXX', NULL);  -- no floor: debits never fail
SELECT ledger_open_account('crash-hold', 'XXX', 0); -- floor 0: its holds reserve
SELECT ledger_credit('crash-hold', 1000000000000);  -- holds of 1 never fail
SQL
if $NO_KEYS; then
	psql_q -c "SELECT count(ledger_open_account('crash-u' || c, 'XXX', NULL)) FROM generate_series(1, $NCLIENTS) c" >/dev/null
fi
if $ESCROW; then
	psql_q -c "SELECT ledger_set_account_mode('crash', 'escrow'), ledger_set_account_mode('crash-hold', 'escrow')" >/dev/null
fi

log "starting $NCLIENTS clients ($NASYNC with synchronous_commit = off)"
conninfo="host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres"
for c in $(seq 1 "$NCLIENTS"); do
	flag=()
	client_is_async "$c" && flag=(--async)
	$NO_KEYS && flag+=(--unkeyed)
	"$TMP/crash_client" "${flag[@]}" "$c" "$conninfo" \
		>"$TMP/acks.$c" 2>"$TMP/client.$c.err" &
	CLIENT_PIDS+=($!)
done

# Let them run, checking that none died and that acknowledgements pile up.
prev=0
for tick in $(seq 1 "$RUN_TICKS"); do
	sleep 0.5
	for i in "${!CLIENT_PIDS[@]}"; do
		kill -0 "${CLIENT_PIDS[$i]}" 2>/dev/null || {
			cat "$TMP/client.$((i + 1)).err" >&2
			die "client $((i + 1)) exited before the crash"
		}
	done
	now=$(ack_lines)
	[ "$now" -gt "$prev" ] || die "no new acknowledgements in tick $tick ($now in all)"
	prev=$now
done
for c in $(seq 1 "$NCLIENTS"); do
	[ -s "$TMP/acks.$c" ] || die "client $c has no acknowledged debit"
done

# Pause the synchronous clients (see the top) and let the asynchronous
# ones post alone.  A paused client's backend is idle: its last debit has
# committed and released the row lock, the reply waits in the socket.
first_async=$((NCLIENTS - NASYNC + 1))
SYNC_PIDS=("${CLIENT_PIDS[@]:0:$((first_async - 1))}")
kill -STOP "${SYNC_PIDS[@]}"
before=$(ack_lines "$first_async")
sleep "$ASYNC_ONLY"
after=$(ack_lines "$first_async")
[ "$after" -gt "$before" ] || die "the async clients acknowledged nothing while alone"

log "SIGKILL to the postmaster and all its children" \
	"($(ack_lines) postings acknowledged so far, $((after - before)) by async clients alone)"
cluster_crash crash
kill -CONT "${SYNC_PIDS[@]}"

# The clients see the connection drop and exit 0; anything else is a failure.
for i in "${!CLIENT_PIDS[@]}"; do
	c=$((i + 1))
	reap_lost_client "${CLIENT_PIDS[$i]}" "$TMP/client.$c.err" || die "client $c failed after the crash"
done
CLIENT_PIDS=()

log "restarting: crash recovery (pg_ctl warns about the stale postmaster.pid)"
cluster_restart crash
grep -q "database system was not properly shut down; automatic recovery in progress" \
	"$(cluster_dir crash)/server.log" || die "the restart did not go through crash recovery"

if $NO_KEYS; then
	# Count per client: acknowledged <= entries <= acknowledged + 1.
	fail=0
	acked_sync=0
	acked_async=0
	for c in $(seq 1 "$NCLIENTS"); do
		grep -qvE "^u$c-[0-9]+\$" "$TMP/acks.$c" && die "malformed line in the acknowledgements of client $c"
		acked=$(wc -l <"$TMP/acks.$c")
		entries=$(psql_q -c "SELECT count(*) FROM ledger.entries e JOIN ledger.accounts a USING (account_id) WHERE a.name = 'crash-u$c' AND e.amount = -1") ||
			die "counting the entries of crash-u$c failed"
		balance=$(psql_q -c "SELECT ledger_balance('crash-u$c')") || die "reading the balance of crash-u$c failed"
		if client_is_async "$c"; then kind=async; acked_async=$((acked_async + acked)); else kind=sync; acked_sync=$((acked_sync + acked)); fi
		[ "$entries" -ge "$acked" ] ||
			{ echo "crash: FAIL: client $c ($kind): $((acked - entries)) of $acked acknowledged debits lost in the crash" >&2; fail=1; }
		[ "$entries" -le $((acked + 1)) ] ||
			{ echo "crash: FAIL: client $c ($kind): $entries entries for $acked acknowledged debits" >&2; fail=1; }
		[ "$entries" -eq $((-balance)) ] ||
			{ echo "crash: FAIL: client $c: $entries journal entries but the balance is $balance" >&2; fail=1; }
	done
	[ "$(psql_q -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] ||
		{ echo "crash: FAIL: ledger_verify() reports problems" >&2; fail=1; }
	[ "$fail" -eq 0 ] || exit 1
	echo "crash: $((acked_sync + acked_async)) acknowledged debits without keys ($acked_sync sync, $acked_async async) all present after SIGKILL + recovery"
	exit 0
fi

# Every acknowledgement file holds whole lines "c<C>-<i>" (debits) and
# "h<C>-<i> <hold id>" (holds).
for c in $(seq 1 "$NCLIENTS"); do
	if grep -qvE "^(c$c-[0-9]+|h$c-[0-9]+ [0-9]+)\$" "$TMP/acks.$c"; then
		die "malformed line in the acknowledgements of client $c"
	fi
done

# Load the acknowledged keys and check each one.  One line of results:
# acked|acked_sync|acked_async|distinct|found|missing_sync|missing_async|
# wrong|unacked_excess|entries|balance|problems|
# holds_acked|holds_sync|holds_async|holds_distinct|holds_found|
# holds_missing_sync|holds_missing_async|holds_wrong|hold_balance|
# hold_available|holds_pending|over_available_debit
result=$(
	{
		cat <<'SQL'
CREATE TEMP TABLE acked (key text COLLATE "C" NOT NULL, client int NOT NULL, async bool NOT NULL);
COPY acked FROM STDIN;
SQL
		for c in $(seq 1 "$NCLIENTS"); do
			async=f
			client_is_async "$c" && async=t
			awk -v c="$c" -v a="$async" '/^c/ { print $0 "\t" c "\t" a }' "$TMP/acks.$c"
		done
		cat <<'SQL'
\.
CREATE TEMP TABLE acked_holds (key text COLLATE "C" NOT NULL, hold_id bigint NOT NULL,
							   client int NOT NULL, async bool NOT NULL);
COPY acked_holds FROM STDIN;
SQL
		for c in $(seq 1 "$NCLIENTS"); do
			async=f
			client_is_async "$c" && async=t
			awk -v c="$c" -v a="$async" '/^h/ { print $1 "\t" $2 "\t" c "\t" a }' "$TMP/acks.$c"
		done
		cat <<'SQL'
\.
CREATE TEMP TABLE checked AS
WITH acct AS (
	SELECT account_id FROM ledger.accounts WHERE name = 'crash'
), k AS (
	SELECT idempotency_key AS key, count(*) AS n
	FROM ledger.idempotency_keys
	WHERE operation = 'debit' AND account = 'crash' AND amount = 1
	GROUP BY 1
), e AS (
	SELECT idempotency_key AS key, count(*) AS n
	FROM ledger.entries
	WHERE account_id = (SELECT account_id FROM acct) AND amount = -1
	GROUP BY 1
)
SELECT a.key, a.client, a.async,
	   coalesce(k.n, 0) AS n_keys, coalesce(e.n, 0) AS n_entries
FROM acked a LEFT JOIN k USING (key) LEFT JOIN e USING (key);

-- Each client has at most one request in flight: a debit that committed
-- but whose "ok" was lost in the crash.  More than one unacknowledged
-- committed key per client would mean the acknowledgements are wrong.
CREATE TEMP TABLE unacked AS
SELECT substring(i.idempotency_key from '^[ch]([0-9]+)-')::int AS client, count(*) AS n
FROM ledger.idempotency_keys i
WHERE NOT EXISTS (SELECT 1 FROM acked a WHERE a.key = i.idempotency_key)
  AND NOT EXISTS (SELECT 1 FROM acked_holds a WHERE a.key = i.idempotency_key)
GROUP BY 1;

-- Each acknowledged hold: its rows under its key, whether they are the
-- hold acknowledged (id, account, amount, no expiry), and whether it is
-- still pending by every account of it.
CREATE TEMP TABLE checked_holds AS
WITH listed AS (
	SELECT hold_id, status FROM ledger_holds('crash-hold', 2147483647)
)
SELECT a.key, a.hold_id, a.client, a.async,
	   (SELECT count(*) FROM ledger.holds h WHERE h.idempotency_key = a.key) AS n_holds,
	   (SELECT count(*) FROM ledger.holds h JOIN ledger.accounts ac USING (account_id)
		 WHERE h.idempotency_key = a.key AND h.hold_id = a.hold_id AND ac.name = 'crash-hold'
		   AND h.amount = 1 AND h.expires_at IS NULL) AS n_right,
	   (SELECT count(*) FROM ledger.idempotency_keys k
		 WHERE k.idempotency_key = a.key AND k.operation = 'hold' AND k.account = 'crash-hold'
		   AND k.amount = 1 AND k.result = a.hold_id) AS n_keys,
	   EXISTS (SELECT FROM ledger.pending_holds p WHERE p.hold_id = a.hold_id) AS in_pending,
	   EXISTS (SELECT FROM ledger.hold_ends e WHERE e.hold_id = a.hold_id) AS ended,
	   l.status
FROM acked_holds a LEFT JOIN listed l USING (hold_id);

-- A debit of one more than the balance less the acknowledged holds must
-- be refused, whatever else is pending: the holds still reserve.
CREATE FUNCTION pg_temp.debit_outcome(amount bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM ledger_debit('crash-hold', amount);
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;

SELECT concat_ws('|',
	(SELECT count(*) FROM acked),
	(SELECT count(*) FROM acked WHERE NOT async),
	(SELECT count(*) FROM acked WHERE async),
	(SELECT count(DISTINCT key) FROM acked),
	(SELECT count(*) FROM checked WHERE n_keys = 1 AND n_entries = 1),
	(SELECT count(*) FROM checked WHERE n_keys = 0 AND n_entries = 0 AND NOT async),
	(SELECT count(*) FROM checked WHERE n_keys = 0 AND n_entries = 0 AND async),
	(SELECT count(*) FROM checked
	  WHERE NOT (n_keys = 1 AND n_entries = 1) AND NOT (n_keys = 0 AND n_entries = 0)),
	(SELECT count(*) FROM unacked WHERE client IS NULL OR n > 1),
	(SELECT count(*) FROM ledger.entries e JOIN ledger.accounts a USING (account_id)
	  WHERE a.name = 'crash'),
	(SELECT ledger_balance('crash')),
	(SELECT count(*) FROM ledger_verify()),
	(SELECT count(*) FROM acked_holds),
	(SELECT count(*) FROM acked_holds WHERE NOT async),
	(SELECT count(*) FROM acked_holds WHERE async),
	(SELECT count(DISTINCT key) FROM acked_holds),
	(SELECT count(*) FROM checked_holds
	  WHERE n_holds = 1 AND n_right = 1 AND n_keys = 1 AND in_pending AND NOT ended
		AND status = 'pending'),
	(SELECT count(*) FROM checked_holds WHERE n_holds = 0 AND n_keys = 0 AND NOT async),
	(SELECT count(*) FROM checked_holds WHERE n_holds = 0 AND n_keys = 0 AND async),
	(SELECT count(*) FROM checked_holds
	  WHERE NOT (n_holds = 0 AND n_keys = 0)
		AND NOT (n_holds = 1 AND n_right = 1 AND n_keys = 1 AND in_pending AND NOT ended
				 AND status = 'pending')),
	(SELECT ledger_balance('crash-hold')),
	(SELECT ledger_available('crash-hold')),
	(SELECT coalesce(sum(p.amount), 0) FROM ledger.pending_holds p
	   JOIN ledger.accounts a USING (account_id) WHERE a.name = 'crash-hold'),
	(SELECT pg_temp.debit_outcome(ledger_balance('crash-hold')
								  - (SELECT count(*) FROM acked_holds) + 1)),
	(SELECT pg_temp.debit_outcome(ledger_available('crash-hold'))));
SELECT 'missing (first 10): ' || string_agg(key, ' ' ORDER BY client, length(key), key)
FROM (SELECT key, client FROM checked WHERE n_keys = 0 AND n_entries = 0
	  ORDER BY client, length(key), key LIMIT 10) m
HAVING count(*) > 0;
SELECT 'holds missing or wrong (first 10): ' || string_agg(format('%s (hold %s: %s rows, %s keys, %s, %s)',
		key, hold_id, n_holds, n_keys,
		CASE WHEN in_pending THEN 'in pending_holds' ELSE 'not in pending_holds' END,
		coalesce(status, 'not listed')), ' ' ORDER BY client, length(key), key)
FROM (SELECT * FROM checked_holds
	   WHERE NOT (n_holds = 1 AND n_right = 1 AND n_keys = 1 AND in_pending AND NOT ended
				  AND status = 'pending')
	   ORDER BY client, length(key), key LIMIT 10) m
HAVING count(*) > 0;
SELECT 'verify: ' || account || ': ' || problem FROM ledger_verify();
SQL
	} | psql_q
) || die "the checking queries failed"

IFS='|' read -r acked acked_sync acked_async distinct found missing_sync missing_async \
	wrong unacked_excess entries balance problems \
	holds_acked holds_sync holds_async holds_distinct holds_found holds_missing_sync \
	holds_missing_async holds_wrong hold_balance hold_available holds_pending over_debit \
	exact_debit <<<"$(head -n 1 <<<"$result")"
missing=$((missing_sync + missing_async))
holds_missing=$((holds_missing_sync + holds_missing_async))
log "acknowledged debits: $acked ($acked_sync sync, $acked_async async); found exactly once: $found;" \
	"missing: $missing ($missing_sync sync, $missing_async async)"
log "acknowledged holds: $holds_acked ($holds_sync sync, $holds_async async); found once and pending:" \
	"$holds_found; missing: $holds_missing ($holds_missing_sync sync, $holds_missing_async async)"
log "entries: $entries; balance: $balance; holds' account: balance $hold_balance, available" \
	"$hold_available, $holds_pending pending; a debit of more than the acknowledged holds" \
	"leave: $over_debit; ledger_verify() problems: $problems"
tail -n +2 <<<"$result" | sed 's/^/    /' >&2

fail=0
[ "$acked" -gt 0 ] || { echo "crash: FAIL: nothing was acknowledged" >&2; fail=1; }
[ "$acked_sync" -gt 0 ] && [ "$acked_async" -gt 0 ] ||
	{ echo "crash: FAIL: need acknowledgements from both sync and async clients" >&2; fail=1; }
[ "$distinct" -eq "$acked" ] ||
	{ echo "crash: FAIL: $((acked - distinct)) keys acknowledged twice" >&2; fail=1; }
[ "$missing" -eq 0 ] ||
	{ echo "crash: FAIL: $missing acknowledged debits lost in the crash ($missing_sync sync, $missing_async async)" >&2; fail=1; }
[ "$wrong" -eq 0 ] ||
	{ echo "crash: FAIL: $wrong acknowledged keys not present exactly once in both idempotency_keys and entries" >&2; fail=1; }
[ "$found" -eq "$acked" ] ||
	{ echo "crash: FAIL: only $found of $acked acknowledged debits present exactly once" >&2; fail=1; }
[ "$unacked_excess" -eq 0 ] ||
	{ echo "crash: FAIL: committed keys that no client could have had in flight" >&2; fail=1; }
[ "$entries" -eq $((-balance)) ] ||
	{ echo "crash: FAIL: $entries journal entries but the balance is $balance" >&2; fail=1; }
[ "$problems" -eq 0 ] ||
	{ echo "crash: FAIL: ledger_verify() reports $problems problems" >&2; fail=1; }
[ "$holds_acked" -gt 0 ] && [ "$holds_sync" -gt 0 ] && [ "$holds_async" -gt 0 ] ||
	{ echo "crash: FAIL: need acknowledged holds from both sync and async clients" >&2; fail=1; }
[ "$holds_distinct" -eq "$holds_acked" ] ||
	{ echo "crash: FAIL: $((holds_acked - holds_distinct)) hold keys acknowledged twice" >&2; fail=1; }
[ "$holds_missing" -eq 0 ] ||
	{ echo "crash: FAIL: $holds_missing acknowledged holds lost in the crash ($holds_missing_sync sync, $holds_missing_async async)" >&2; fail=1; }
[ "$holds_wrong" -eq 0 ] ||
	{ echo "crash: FAIL: $holds_wrong acknowledged holds not present exactly once with their id, key and pending state" >&2; fail=1; }
[ "$holds_found" -eq "$holds_acked" ] ||
	{ echo "crash: FAIL: only $holds_found of $holds_acked acknowledged holds present once and pending" >&2; fail=1; }
[ "$hold_available" -eq $((hold_balance - holds_pending)) ] ||
	{ echo "crash: FAIL: ledger_available() is $hold_available, not the balance $hold_balance less the $holds_pending pending" >&2; fail=1; }
[ "$hold_available" -le $((hold_balance - holds_acked)) ] ||
	{ echo "crash: FAIL: ledger_available() is $hold_available: the $holds_acked acknowledged holds do not all reserve" >&2; fail=1; }
[ "$over_debit" = LG001 ] ||
	{ echo "crash: FAIL: a debit of more than the acknowledged holds leave was $over_debit, not refused (LG001)" >&2; fail=1; }
[ "$exact_debit" = accepted ] ||
	{ echo "crash: FAIL: a debit of exactly what is available was $exact_debit, not accepted" >&2; fail=1; }
[ "$fail" -eq 0 ] || exit 1

mode=""
$ESCROW && mode=" (escrow mode, settlement stalled 2 ms after each commit)"
echo "crash$mode: $acked acknowledged debits ($acked_sync sync, $acked_async async) and $holds_acked acknowledged holds ($holds_sync sync, $holds_async async) all present after SIGKILL + recovery, the holds still pending and reserving"
