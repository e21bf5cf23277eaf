#!/usr/bin/env bash
# test/logical.sh: a publication of the ledger's schema replicates every
# posting, by every path, to a subscriber in another cluster, whole
# transactions in commit order.
#
#   1. The publisher has a filled ledger (every kind of posting) before the
#      subscription exists: the initial copy brings it over.
#   2. pgbench clients post by every path at once -- the one-statement fast
#      path, keyed postings, transfers, explicit transactions of direct
#      writes, both batch functions, holds captured and released.  Meanwhile
#      the subscriber is audited again and again, each time in one snapshot:
#      every intermediate state it shows must pass ledger_verify(), which it
#      can only if transactions arrive whole and in order.
#   3. Commit order, directly: an ALWAYS trigger on the subscriber numbers
#      journal rows as they are applied.  On the publisher an account's
#      entry ids are drawn under its row lock, held to commit, so their
#      order is the commit order of the transactions that touched the
#      account; on the subscriber each account's rows must be applied in
#      that order.
#   4. Caught up, every row of every ledger table is identical on both sides
#      and the subscriber's audit is clean.
source "$(dirname "$0")/lib.sh"

fail() { echo "logical: FAILED: $*" >&2; exit 1; }

ledger_require_packages
ledger_build_install

cluster_start sub
sub_port=$PGPORT
cluster_start pub -c wal_level=logical
pub_port=$PGPORT
pub() { psql_q -p "$pub_port" -d books "$@"; }
sub() { psql_q -p "$sub_port" -d copy "$@"; }

psql_q -p "$pub_port" -c 'CREATE DATABASE books'
pub -c 'CREATE EXTENSION ledger'
pub -v round=1 -f "$LEDGER_ROOT/test/fill_ledger.sql" >/dev/null
pub -c 'CREATE PUBLICATION ledger_pub FOR TABLES IN SCHEMA ledger'

# The subscriber: the same extension (its empty tables receive the rows),
# and a numbering of journal rows in the order they are applied.
psql_q -p "$sub_port" -c 'CREATE DATABASE copy'
sub -c 'CREATE EXTENSION ledger'
sub <<'SQL'
CREATE TABLE applied (seq bigserial PRIMARY KEY, account_id bigint NOT NULL, entry_id bigint NOT NULL);
-- logical replication workers run with an empty search_path
CREATE FUNCTION number_entry() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.applied (account_id, entry_id) VALUES (NEW.account_id, NEW.entry_id); RETURN NULL; END $$;
CREATE TRIGGER number_entry AFTER INSERT ON ledger.entries
	FOR EACH ROW EXECUTE FUNCTION number_entry();
-- the apply worker runs with session_replication_role = replica
ALTER TABLE ledger.entries ENABLE ALWAYS TRIGGER number_entry;
SQL
sub -c "CREATE SUBSCRIPTION ledger_sub
        CONNECTION 'host=127.0.0.1 port=$pub_port dbname=books user=postgres'
        PUBLICATION ledger_pub"

# Until each table's initial copy is done, tables are synchronised by
# separate workers: wait for every one to be ready before auditing.
ntables=$(pub -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'ledger'")
for i in $(seq 1 600); do
	[ "$(sub -c "SELECT count(*) FILTER (WHERE srsubstate <> 'r') || '/' || count(*)
	             FROM pg_subscription_rel")" = "0/$ntables" ] && break
	[ "$i" -eq 600 ] && fail "the initial copy did not finish: $(sub -c 'TABLE pg_subscription_rel')"
	sleep 0.1
done
synced=$(sub -c 'SELECT coalesce(max(seq), 0) FROM applied')
log "initial copy of $ntables tables done ($synced journal rows)"

# Every posting path, from 4 clients at once.  Credits outweigh debits so
# no account runs dry; every amount is small against the deposits.
cat >"$LEDGER_TMP/paths.pgbench" <<'PGBENCH'
\set a random(1, 20)
\set d random(1, 19)
\set b (:a + :d - 1) % 20 + 1
\set k random(1, 1000000000)
SELECT ledger_debit('acct-' || :a, 1);
SELECT ledger_credit('acct-' || :b, 6);
SELECT ledger_debit('acct-' || :a, 1, 'lr-' || :client_id || '-' || :k);
SELECT ledger_transfer('acct-' || :a, 'acct-' || :b, 2);
BEGIN;
SELECT ledger_debit('acct-' || :b, 1);
SELECT ledger_transfer('acct-' || :b, 'shop', 1, 'lt-' || :client_id || '-' || :k);
COMMIT;
SELECT count(*) FROM ledger_debit_batch(ARRAY['acct-' || :a, 'acct-' || :b], ARRAY[1, 1]::bigint[]);
SELECT count(*) FROM ledger_transfer_batch(ARRAY['acct-' || :a], ARRAY['acct-' || :b], ARRAY[1]::bigint[]);
SELECT ledger_capture(ledger_hold('acct-' || :a, 1));
SELECT ledger_release(ledger_hold('acct-' || :b, 1));
PGBENCH
"$LEDGER_PG_BIN/pgbench" -n -h 127.0.0.1 -p "$pub_port" -U postgres -d books \
	-c 4 -j 2 -T 10 -f "$LEDGER_TMP/paths.pgbench" >"$LEDGER_TMP/pgbench.log" 2>&1 &
load=$!

# Audit the subscriber in one snapshot, over and over, while the load runs.
audits=0
states=""
while kill -0 "$load" 2>/dev/null; do
	out=$(sub <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 'entries ' || count(*) FROM ledger.entries;
SELECT account || ': ' || problem FROM ledger_verify();
COMMIT;
SQL
	)
	problems=$(echo "$out" | grep -v '^entries ' || true)
	[ -z "$problems" ] || fail "the subscriber showed a state that fails the audit: $problems"
	audits=$((audits + 1))
	states="$states $(echo "$out" | grep '^entries ')"
done
wait "$load" || { cat "$LEDGER_TMP/pgbench.log" >&2; fail "the load failed"; }
distinct=$(echo "$states" | tr ' ' '\n' | grep -E '^[0-9]+$' | sort -u | wc -l)
log "$(grep -E '^(number of transactions actually processed|tps)' "$LEDGER_TMP/pgbench.log" | tr '\n' ' ')"
log "$audits audits of the subscriber during the load, $distinct distinct states, all clean"
[ "$distinct" -ge 3 ] || fail "the audits saw only $distinct states: they did not run during the load"

# Wait until the subscriber has everything the publisher committed.
target=$(pub -c 'SELECT pg_current_wal_lsn()')
for i in $(seq 1 600); do
	[ "$(pub -c "SELECT confirmed_flush_lsn >= '$target' FROM pg_replication_slots
	             WHERE slot_name = 'ledger_sub'")" = t ] && break
	[ "$i" -eq 600 ] && fail "the subscriber did not catch up to $target"
	sleep 0.1
done

PGPORT=$pub_port ledger_table_rows books "$LEDGER_TMP/pub.tables"
PGPORT=$sub_port ledger_table_rows copy "$LEDGER_TMP/sub.tables"
diff -q "$LEDGER_TMP/pub.tables" "$LEDGER_TMP/sub.tables" >/dev/null ||
	{ diff "$LEDGER_TMP/pub.tables" "$LEDGER_TMP/sub.tables" | head -20 >&2; fail "rows differ"; }
[ -z "$(sub -c 'SELECT * FROM ledger_verify()')" ] || fail "the subscriber's audit is not clean"
log "caught up: $(grep -c . "$LEDGER_TMP/sub.tables") rows identical in $ntables tables, audit clean"

# Commit order: per account, the rows streamed after the initial copy were
# applied in entry id order -- the publisher's commit order for that account.
numbered=$(sub -c "SELECT count(*) FROM applied WHERE seq > $synced")
backwards=$(sub -c "SELECT count(*) FROM (SELECT entry_id, lag(entry_id) OVER (PARTITION BY account_id ORDER BY seq) AS before
                                          FROM applied WHERE seq > $synced) o
                    WHERE entry_id < before")
[ "$numbered" -gt 1000 ] || fail "only $numbered journal rows were applied during the load"
[ "$backwards" = 0 ] || fail "$backwards journal rows were applied before an earlier commit's on their account"
log "$numbered journal rows applied, each account's in the publisher's commit order"
echo "logical: every path replicated whole and in commit order; $audits clean audits mid-stream; OK"
