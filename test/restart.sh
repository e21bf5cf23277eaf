#!/usr/bin/env bash
# test/restart.sh: everything the ledger holds survives a restart, clean or not.
#
#  1. Postings: accounts with floors 0, -500 and none, two currencies;
#     keyed transfers, debits and credits (their results recorded), a
#     debit refused for insufficient funds (its key must stay unused),
#     400 keyed transfers in bulk, keyed debit and transfer batches
#     (written by src/direct_write.c, so crash recovery replays its
#     multi-insert records); ALTER SYSTEM SET
#     ledger.data_is_disposable = on.  A snapshot is taken: every row of
#     ledger.accounts, .entries, .transfers and .idempotency_keys, every
#     balance and history through the API, the setting and its source,
#     and amcheck's bt_index_check (every heap row has its index entries).
#  2. Fast stop (SIGINT to the postmaster, a clean shutdown) and start:
#     the snapshot is identical; every keyed posting sent again returns the
#     result it returned the first time and changes nothing (the snapshot
#     after the replays is still identical); the floors still refuse
#     (LG001) what they refused before; ledger_verify() is empty.
#  3. More keyed postings, a new snapshot, then pg_ctl -m immediate stop
#     (no shutdown checkpoint: the start runs crash recovery, which the
#     server log must show) and start: the same checks, for the postings of
#     both rounds.
#  4. The key of the refused debit is still unused: the same debit of a
#     smaller amount with that key now applies.
#
# RESTART_BREAK=unlogged makes ledger.idempotency_keys an UNLOGGED table
# (not WAL-logged, emptied by crash recovery) before the postings, as a
# ledger that did not make its keys durable would be: the run must FAIL
# after the immediate stop.
source "$(dirname "$0")/lib.sh"

BREAK=${RESTART_BREAK:-}
case "$BREAK" in
	''|unlogged) ;;
	*) echo "restart: unknown RESTART_BREAK '$BREAK' (only: unlogged)" >&2; exit 2 ;;
esac

die() {
	echo "restart: FAIL: $*" >&2
	exit 1
}

cluster_start restart
TMP=$LEDGER_TMP
LOG_FILE=$(cluster_dir restart)/server.log
[ "$(psql_q -c 'SHOW fsync')" = on ] || die "fsync is not on"

psql_q <<'SQL' >/dev/null
CREATE EXTENSION ledger;
CREATE EXTENSION amcheck;
LOAD 'ledger';
ALTER SYSTEM SET ledger.data_is_disposable = on;
SELECT pg_reload_conf();
SELECT ledger_open_account('alice');                    -- floor 0
SELECT ledger_open_account('bob', 'XXX', 0);
SELECT ledger_open_account('carol', 'XXX', -500);       -- overdraft of 500
SELECT ledger_open_account('source', 'XXX', NULL);      -- no floor
SELECT ledger_open_account('eur-a', 'EUR');
SELECT ledger_open_account('eur-b', 'EUR', -100);
SQL
if [ "$BREAK" = unlogged ]; then
	log "RESTART_BREAK=unlogged: ledger.idempotency_keys is UNLOGGED; this run must FAIL"
	psql_q -c 'ALTER TABLE ledger.idempotency_keys SET UNLOGGED'
fi

# Keyed postings, one per line "key|result" when run: the recorded results.
cat >"$TMP/round1.sql" <<'SQL'
SELECT 't1', ledger_transfer('source', 'alice', 10000, 't1');
SELECT 't2', ledger_transfer('source', 'bob', 5000, 't2');
SELECT 'd1', ledger_debit('alice', 2500, 'd1');
SELECT 'c1', ledger_credit('carol', 100, 'c1');
SELECT 'd2', ledger_debit('carol', 550, 'd2');
SELECT 't3', ledger_transfer('alice', 'carol', 1, 't3');
SELECT 'c2', ledger_credit('eur-a', 1000, 'c2');
SELECT 't4', ledger_transfer('eur-a', 'eur-b', 750, 't4');
SELECT 'bulk1-' || g, ledger_transfer('source', 'bob', g, 'bulk1-' || g) FROM generate_series(1, 200) g;
SELECT 'bulk1d-' || g, ledger_debit('bob', 1, 'bulk1d-' || g) FROM generate_series(1, 200) g;
SELECT 'batch1-' || ordinal, status, result FROM ledger_debit_batch(
	ARRAY['bob', 'source', 'alice', 'bob', 'nobody'], ARRAY[3, 4, 5, 1000000000000000, 1],
	ARRAY['batch1-1', 'batch1-2', 'batch1-3', 'batch1-4', 'batch1-5']);
SQL
cat >"$TMP/round2.sql" <<'SQL'
SELECT 'r2-t1', ledger_transfer('bob', 'alice', 4321, 'r2-t1');
SELECT 'r2-d1', ledger_debit('carol', 49, 'r2-d1');
SELECT 'r2-c1', ledger_credit('source', 12345, 'r2-c1');
SELECT 'bulk2-' || g, ledger_transfer('alice', 'bob', 1, 'bulk2-' || g) FROM generate_series(1, 200) g;
SELECT 'batch2t-' || ordinal, status, result FROM ledger_transfer_batch(
	ARRAY(SELECT 'source' FROM generate_series(1, 300)),
	ARRAY(SELECT (ARRAY['alice', 'bob', 'carol'])[1 + g % 3] FROM generate_series(1, 300) g),
	ARRAY(SELECT g::bigint FROM generate_series(1, 300) g),
	ARRAY(SELECT 'batch2t-' || g FROM generate_series(1, 300) g));
SELECT 'batch2d-' || ordinal, status, result FROM ledger_debit_batch(
	ARRAY(SELECT (ARRAY['alice', 'bob', 'carol'])[1 + g % 3] FROM generate_series(1, 300) g),
	ARRAY(SELECT 1::bigint FROM generate_series(1, 300) g),
	ARRAY(SELECT 'batch2d-' || g FROM generate_series(1, 300) g));
SQL

# snapshot FILE: the whole ledger, through its tables and its API
snapshot() {
	psql_q >"$1" <<'SQL'
\pset footer off
SELECT 'accounts', * FROM ledger.accounts ORDER BY account_id;
SELECT 'entries', * FROM ledger.entries ORDER BY entry_id;
SELECT 'transfers', * FROM ledger.transfers ORDER BY transfer_id;
SELECT 'keys', * FROM ledger.idempotency_keys ORDER BY idempotency_key;
SELECT 'balance', name, ledger_balance(name) FROM ledger.accounts ORDER BY name;
SELECT 'history', a.name, h.* FROM ledger.accounts a, ledger_history(a.name, 1000) h
ORDER BY a.name, h.entry_id;
SELECT 'verify', * FROM ledger_verify();
SELECT 'indexes intact', count(bt_index_check(indexrelid, true)) FROM pg_index
 WHERE indrelid IN ('ledger.accounts'::regclass, 'ledger.entries'::regclass,
					'ledger.transfers'::regclass, 'ledger.idempotency_keys'::regclass);
LOAD 'ledger';
SELECT 'setting', name, setting, source FROM pg_settings WHERE name = 'ledger.data_is_disposable';
SQL
}

# check_floors: what the floors refused before, they refuse now
check_floors() {
	psql_q <<'SQL' || die "a floor did not hold after the restart"
DO $$
DECLARE
	acct text;
	amount bigint;
BEGIN
	FOR acct, amount IN
		SELECT name, balance - min_balance + 1 FROM ledger.accounts
		WHERE min_balance IS NOT NULL ORDER BY name
	LOOP
		BEGIN
			PERFORM ledger_debit(acct, amount);
			RAISE EXCEPTION 'a debit of % overdrew %', amount, acct;
		EXCEPTION WHEN SQLSTATE 'LG001' THEN
			NULL;
		END;
	END LOOP;
END
$$;
SQL
}

# check_after_restart WHAT SNAPSHOT ROUNDS...: the checks of steps 2 and 3
check_after_restart() {
	local what=$1 before=$2 round; shift 2
	snapshot "$TMP/after.$what"
	diff "$before" "$TMP/after.$what" >"$TMP/diff.$what" ||
		{ head -n 20 "$TMP/diff.$what" >&2; die "$what: the ledger changed across the restart"; }
	for round in "$@"; do
		psql_q -f "$TMP/$round.sql" >"$TMP/replay.$round.$what" ||
			die "$what: replaying the keyed postings of $round failed"
		diff "$TMP/results.$round" "$TMP/replay.$round.$what" >"$TMP/diff.replay.$what" ||
			{ head -n 20 "$TMP/diff.replay.$what" >&2
			  die "$what: replayed keys of $round returned other results than the first time"; }
	done
	snapshot "$TMP/replayed.$what"
	diff "$before" "$TMP/replayed.$what" >"$TMP/diff.replayed.$what" ||
		{ head -n 20 "$TMP/diff.replayed.$what" >&2; die "$what: replaying keys changed the ledger"; }
	check_floors
	[ "$(psql_q -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] ||
		die "$what: ledger_verify() is not empty"
}

# --- 1. postings -----------------------------------------------------------
psql_q -f "$TMP/round1.sql" >"$TMP/results.round1" || die "the postings of round 1 failed"
psql_q -c "SELECT ledger_debit('bob', 999999999, 'refused')" >/dev/null 2>"$TMP/refused.err" &&
	die "a debit beyond bob's floor was accepted"
grep -q 'insufficient funds' "$TMP/refused.err" || { cat "$TMP/refused.err" >&2; die "the refused debit failed otherwise"; }
check_floors
snapshot "$TMP/before.fast"
grep -q '^setting|ledger.data_is_disposable|on|configuration file$' "$TMP/before.fast" ||
	die "ledger.data_is_disposable is not on from the configuration file"
grep -q '^verify' "$TMP/before.fast" && die "ledger_verify() is not empty before the restart"
log "round 1: $(wc -l <"$TMP/results.round1") keyed postings," \
	"$(grep -cE '^(entries|transfers|keys)\|' "$TMP/before.fast") journal, transfer and key rows"

# --- 2. fast stop, start -----------------------------------------------------
log_lines=$(wc -l <"$LOG_FILE")
cluster_stop restart
cluster_restart restart
tail -n +$((log_lines + 1)) "$LOG_FILE" >"$TMP/log.fast"
grep -q 'database system was shut down at' "$TMP/log.fast" &&
	! grep -q 'automatic recovery in progress' "$TMP/log.fast" ||
	die "the fast stop was not a clean shutdown"
check_after_restart fast "$TMP/before.fast" round1
log "fast stop + start: ledger identical, keys replay the same results, floors hold, setting kept"

# --- 3. more postings, immediate stop, start (crash recovery) ----------------
psql_q -f "$TMP/round2.sql" >"$TMP/results.round2" || die "the postings of round 2 failed"
snapshot "$TMP/before.immediate"
log_lines=$(wc -l <"$LOG_FILE")
as_server_user "$LEDGER_PG_BIN/pg_ctl" -D "$(cluster_dir restart)/data" -m immediate -w stop >/dev/null
cluster_restart restart
tail -n +$((log_lines + 1)) "$LOG_FILE" >"$TMP/log.immediate"
grep -q 'database system was not properly shut down; automatic recovery in progress' "$TMP/log.immediate" ||
	die "the immediate stop did not lead to crash recovery"
check_after_restart immediate "$TMP/before.immediate" round1 round2
log "immediate stop + crash recovery: ledger identical, keys of both rounds replay the same results, floors hold, setting kept"

# --- 4. the refused debit's key is still unused --------------------------------
balance=$(psql_q -c "SELECT ledger_debit('bob', 1, 'refused')") || die "the refused key could not be used afresh"
[ "$(psql_q -c "SELECT result FROM ledger.idempotency_keys WHERE idempotency_key = 'refused'")" = "$balance" ] ||
	die "the refused key did not record its new use"
[ "$(psql_q -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] || die "ledger_verify() is not empty at the end"

if grep -nE 'PANIC|TRAP:|terminated by signal' "$LOG_FILE" >&2; then
	die "the server log shows a crash"
fi
cluster_stop restart
echo "restart: $(cat "$TMP"/results.round* | wc -l) keyed postings, $(grep -cE '^(accounts|entries|transfers|keys)\|' "$TMP/before.immediate") rows identical after a fast and an immediate stop; keys replay, floors hold, setting kept, ledger_verify() empty; OK"
