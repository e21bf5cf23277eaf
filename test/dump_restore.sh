#!/usr/bin/env bash
# test/dump_restore.sh: a ledger survives pg_dump and a restore into a new
# database of another cluster, in plain and custom format.
#
# The ledger's tables are extension members marked with
# pg_extension_config_dump, so pg_dump writes CREATE EXTENSION and then
# their rows and their sequences' positions.  After the restore, for each
# format: every row of every ledger table is identical (balances, held
# amounts, journal, transfers, keys, holds and their ends, pending holds),
# the extension version is the same, ledger_verify() is empty, old keys
# replay their original results (a pending hold's key too), new postings
# draw ids past the restored ones (a second fill would collide otherwise),
# and the append-only and guard triggers are in force.
source "$(dirname "$0")/lib.sh"

fail() { echo "dump_restore: FAILED: $*" >&2; exit 1; }

ledger_build_install
cluster_start source
psql_q -c 'CREATE DATABASE books'
psql_q -d books -c 'CREATE EXTENSION ledger' >/dev/null
psql_q -d books -v round=1 -f "$LEDGER_ROOT/test/fill_ledger.sql" >/dev/null
[ -z "$(psql_q -d books -c 'SELECT * FROM ledger_verify()')" ] || fail "the source's audit is not clean"
ledger_table_rows books "$LEDGER_TMP/source.tables"
version=$(psql_q -d books -c "SELECT extversion FROM pg_extension WHERE extname = 'ledger'")
triggers=$(psql_q -d books -c "SELECT string_agg(tgrelid::regclass || '.' || tgname || ':' || tgenabled::text, ' ' ORDER BY 1)
                                 FROM pg_trigger WHERE NOT tgisinternal")
key_result=$(psql_q -d books -c "SELECT result FROM ledger.idempotency_keys WHERE idempotency_key = '1-debit-5'")
pending_hold=$(psql_q -d books -c "SELECT result FROM ledger.idempotency_keys WHERE idempotency_key = '1-pending'")
available=$(psql_q -d books -c "SELECT ledger_available('acct-5')")

"$LEDGER_PG_BIN/pg_dump" -h 127.0.0.1 -p "$PGPORT" -U postgres -d books \
	-Fp -f "$LEDGER_TMP/books.sql"
"$LEDGER_PG_BIN/pg_dump" -h 127.0.0.1 -p "$PGPORT" -U postgres -d books \
	-Fc -f "$LEDGER_TMP/books.dump"
log "dumped: $(wc -c <"$LEDGER_TMP/books.sql") bytes plain, $(wc -c <"$LEDGER_TMP/books.dump") bytes custom"

cluster_start target
psql_q -c 'CREATE DATABASE from_plain' -c 'CREATE DATABASE from_custom'
psql_q -d from_plain -v ON_ERROR_STOP=1 -f "$LEDGER_TMP/books.sql" >/dev/null 2>"$LEDGER_TMP/plain.err" ||
	{ cat "$LEDGER_TMP/plain.err" >&2; fail "the plain dump did not restore"; }
"$LEDGER_PG_BIN/pg_restore" -h 127.0.0.1 -p "$PGPORT" -U postgres -d from_custom \
	--exit-on-error "$LEDGER_TMP/books.dump" 2>"$LEDGER_TMP/custom.err" ||
	{ cat "$LEDGER_TMP/custom.err" >&2; fail "the custom dump did not restore"; }

for db in from_plain from_custom; do
	ledger_table_rows "$db" "$LEDGER_TMP/$db.tables"
	diff -q "$LEDGER_TMP/source.tables" "$LEDGER_TMP/$db.tables" >/dev/null ||
		{ diff "$LEDGER_TMP/source.tables" "$LEDGER_TMP/$db.tables" | head -20 >&2; fail "$db: rows differ"; }
	[ "$(psql_q -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'ledger'")" = "$version" ] ||
		fail "$db: the extension version changed"
	[ "$(psql_q -d "$db" -c "SELECT string_agg(tgrelid::regclass || '.' || tgname || ':' || tgenabled::text, ' ' ORDER BY 1)
	                          FROM pg_trigger WHERE NOT tgisinternal")" = "$triggers" ] ||
		fail "$db: the triggers differ"
	[ -z "$(psql_q -d "$db" -c 'SELECT * FROM ledger_verify()')" ] || fail "$db: the audit is not clean"

	# old keys replay, and change nothing
	[ "$(psql_q -d "$db" -c "SELECT ledger_debit('acct-6', 11, '1-debit-5')")" = "$key_result" ] ||
		fail "$db: an old key did not replay its result"
	[ "$(psql_q -d "$db" -c "SELECT ledger_hold('acct-5', 30, NULL, '1-pending')")" = "$pending_hold" ] ||
		fail "$db: a pending hold's key did not replay"
	[ "$(psql_q -d "$db" -c "SELECT ledger_available('acct-5')")" = "$available" ] ||
		fail "$db: the pending hold no longer reserves"

	# new postings draw ids past the restored ones: a second fill collides otherwise
	before=$(psql_q -d "$db" -c "SELECT (SELECT max(entry_id) FROM ledger.entries) || ' ' ||
	                                    (SELECT max(transfer_id) FROM ledger.transfers) || ' ' ||
	                                    (SELECT max(hold_id) FROM ledger.holds)")
	psql_q -d "$db" -v round=2 -f "$LEDGER_ROOT/test/fill_ledger.sql" >/dev/null 2>"$LEDGER_TMP/fill2.err" ||
		{ cat "$LEDGER_TMP/fill2.err" >&2; fail "$db: new postings failed"; }
	[ "$(psql_q -d "$db" -c "SELECT count(*) FROM ledger.entries WHERE entry_id <= ${before%% *}
	                          AND created_at > now() - interval '1 hour'
	                          AND idempotency_key LIKE '2-%'")" = 0 ] || fail "$db: a new entry reused an old id"
	[ -z "$(psql_q -d "$db" -c 'SELECT * FROM ledger_verify()')" ] || fail "$db: the audit after new postings"

	# still append-only, still guarded
	state=$(psql_q -d "$db" -v VERBOSITY=sqlstate -c 'UPDATE ledger.entries SET amount = amount' 2>&1 || true)
	echo "$state" | grep -q 42501 || fail "$db: the journal accepted an UPDATE ($state)"
	psql_q -d "$db" -c "CREATE ROLE etl_$db" -c "GRANT pg_write_all_data TO etl_$db" >/dev/null
	state=$(psql_q -d "$db" -v VERBOSITY=sqlstate -c "SET ROLE etl_$db" \
		-c "INSERT INTO ledger.idempotency_keys (idempotency_key, operation, account, amount, result)
		    VALUES ('forged', 'debit', 'acct-1', 1, 1)" 2>&1 || true)
	echo "$state" | grep -q 42501 || fail "$db: pg_write_all_data wrote a key ($state)"
	log "$db: rows, version, triggers and audit identical; keys replay; new ids are new; still guarded"
done
echo "dump_restore: plain and custom dumps restored into another cluster; OK"
