#!/usr/bin/env bash
# Durability settings against real servers:
#
#  1. fsync = off, or full_page_writes = off: every ledger write is refused
#     (55000) unless a superuser declared the data disposable with
#     ledger.data_is_disposable; and a posting whose transaction is still
#     open when a reload turns either off is refused at COMMIT.
#  2. A synchronous standby is configured but absent: a posting made with
#     synchronous_commit = off or local (even SET LOCAL after the posting)
#     still waits for the standby, while an ordinary write does not.  This
#     is what "acknowledged by the synchronous standby" rests on.  A key
#     replay waits as well: that makes a client's retry after a cancelled
#     wait safe.
source "$(dirname "$0")/lib.sh"

fail() { echo "durability: FAILED: $*" >&2; exit 1; }

# sqlstate_of SQL: run it and print the SQLSTATE it failed with (or "ok")
sqlstate_of() {
	local out
	out=$("$LEDGER_PG_BIN/psql" -X -At -v VERBOSITY=sqlstate -c "$1" 2>&1) && { echo ok; return; }
	echo "$out" | sed -nE 's/^(psql:[^E]*)?ERROR: +([0-9A-Z]{5}).*/\2/p' | head -n 1
}

# --- 1. fsync = off -----------------------------------------------------
cluster_start nofsync -c fsync=off
psql_q -c 'CREATE EXTENSION ledger'

state=$(sqlstate_of "SELECT ledger_open_account('a')")
[ "$state" = 55000 ] || fail "open_account with fsync=off gave '$state', want 55000"
state=$(sqlstate_of "SELECT ledger_balance('a')")
[ "$state" = LG002 ] || fail "nothing was opened, balance gave '$state', want LG002"

# a superuser may declare the data disposable, for this session or server-wide
state=$(sqlstate_of "SET ledger.data_is_disposable = on; SELECT ledger_open_account('a'); SELECT ledger_credit('a', 5)")
[ "$state" = ok ] || fail "postings with ledger.data_is_disposable = on gave '$state'"
state=$(sqlstate_of "SELECT ledger_credit('a', 5)")
[ "$state" = 55000 ] || fail "the setting leaked into another session: '$state'"
psql_q -c "LOAD 'ledger'" -c "ALTER SYSTEM SET ledger.data_is_disposable = on" \
	-c "SELECT pg_reload_conf()" >/dev/null
sleep 1
state=$(sqlstate_of "SELECT ledger_credit('a', 5)")
[ "$state" = ok ] || fail "server-wide ledger.data_is_disposable = on gave '$state'"
[ "$(psql_q -c "SELECT ledger_balance('a')")" = 10 ] || fail "balance of a is not 10"
log "fsync=off: postings refused with 55000 unless ledger.data_is_disposable"
cluster_stop nofsync

# --- 1b. full_page_writes = off --------------------------------------------
cluster_start nofpw -c full_page_writes=off
psql_q -c 'CREATE EXTENSION ledger'
state=$(sqlstate_of "SELECT ledger_open_account('a')")
[ "$state" = 55000 ] || fail "open_account with full_page_writes=off gave '$state', want 55000"
state=$(sqlstate_of "SET ledger.data_is_disposable = on; SELECT ledger_open_account('a'); SELECT ledger_credit('a', 5)")
[ "$state" = ok ] || fail "postings with full_page_writes=off and disposable data gave '$state'"
log "full_page_writes=off: postings refused with 55000 unless ledger.data_is_disposable"
cluster_stop nofpw

# --- 1c. turned off while a posting's transaction is open -------------------
# Session A posts in an open transaction; the server's fsync (then
# full_page_writes) is turned off by a reload; A's COMMIT must fail with
# 55000 and leave nothing behind.
cluster_start recheck
psql_q -c 'CREATE EXTENSION ledger' -c "SELECT ledger_open_account('r', 'XXX', NULL)" >/dev/null
for setting in fsync full_page_writes; do
	rm -f "$LEDGER_TMP/go"
	{ echo "BEGIN;"; echo "SELECT ledger_credit('r', 1);"
	  while [ ! -e "$LEDGER_TMP/go" ]; do sleep 0.1; done
	  echo "COMMIT;"; } |
		PGAPPNAME=recheck "$LEDGER_PG_BIN/psql" -X -At -v VERBOSITY=sqlstate \
		>"$LEDGER_TMP/recheck.out" 2>&1 &
	client=$!
	for _ in $(seq 1 100); do
		[ "$(psql_q -c "SELECT state FROM pg_stat_activity WHERE application_name = 'recheck'")" = \
			"idle in transaction" ] && break
		sleep 0.1
	done
	psql_q -c "ALTER SYSTEM SET $setting = off" -c 'SELECT pg_reload_conf()' >/dev/null
	sleep 1
	touch "$LEDGER_TMP/go"
	wait "$client" || true
	grep -q '55000' "$LEDGER_TMP/recheck.out" ||
		{ cat "$LEDGER_TMP/recheck.out" >&2; fail "COMMIT after $setting = off was not refused"; }
	psql_q -c "ALTER SYSTEM RESET $setting" -c 'SELECT pg_reload_conf()' >/dev/null
	sleep 1
	[ "$(psql_q -c "SELECT ledger_balance('r')")" = 0 ] || fail "the refused commit left a posting"
	log "$setting turned off mid-transaction: the COMMIT was refused (55000)"
done
cluster_stop recheck

# --- 2. synchronous standby configured but absent -------------------------
cluster_start syncrep
psql_q -c 'CREATE EXTENSION ledger' \
	-c "SELECT ledger_open_account('acct', 'XXX', NULL)" \
	-c 'CREATE TABLE plain (x int)' >/dev/null
cluster_ghost_standby syncrep

# sees_sync_wait NAME SQL...: run SQL in a new session named NAME; true if
# that session is seen waiting for the standby (it is then cancelled: the
# transaction stays committed locally, the client gets a warning).
sees_sync_wait() {
	local name=$1 client i waiting=""; shift
	PGAPPNAME=$name timeout 60 "$LEDGER_PG_BIN/psql" -X -q "$@" \
		>"$LEDGER_TMP/$name.out" 2>&1 &
	client=$!
	for i in $(seq 1 100); do
		waiting=$(psql_q -c "SELECT pid FROM pg_stat_activity
		                      WHERE application_name = '$name' AND wait_event = 'SyncRep'")
		[ -n "$waiting" ] && break
		kill -0 "$client" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$waiting" ] && psql_q -c "SELECT pg_cancel_backend($waiting)" >/dev/null
	kill "$client" 2>/dev/null || true
	wait "$client" || true
	[ -n "$waiting" ]
}

# an ordinary write with synchronous_commit = off does not wait
PGOPTIONS='-c synchronous_commit=off' timeout 20 \
	"$LEDGER_PG_BIN/psql" -X -q -c 'INSERT INTO plain VALUES (1)' ||
	fail "an ordinary asynchronous insert waited for the absent standby"

# a ledger posting does, however the session lowered synchronous_commit
expect_sync_wait() {
	local name=$1
	sees_sync_wait "$@" || { cat "$LEDGER_TMP/$name.out" >&2; fail "$name: the posting did not wait for the standby"; }
	log "$name: waited for the synchronous standby"
}

expect_sync_wait off_session -c 'SET synchronous_commit = off' -c "SELECT ledger_credit('acct', 1)"
expect_sync_wait local_session -c 'SET synchronous_commit = local' -c "SELECT ledger_debit('acct', 1)"
expect_sync_wait set_local_after -c 'BEGIN' -c "SELECT ledger_credit('acct', 1, 'k1')" \
	-c 'SET LOCAL synchronous_commit = off' -c 'COMMIT'

# A replay waits too, whatever the session's setting: the key was committed
# locally above, and a client retrying after a cancelled wait must not hear
# "ok" until the original is on the standby (the replay's own commit comes
# after it in the WAL).
expect_sync_wait replay_waits -c 'SET synchronous_commit = local' -c "SELECT ledger_credit('acct', 1, 'k1')"
[ "$(psql_q -c "SELECT count(*) FROM ledger.entries WHERE idempotency_key = 'k1'")" = 1 ] ||
	fail "the replay of k1 applied a second time"

cluster_stop syncrep
echo "durability: fsync and full_page_writes refusals (also at COMMIT) and forced synchronous commit verified"
