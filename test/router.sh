#!/usr/bin/env bash
# test/router.sh: the ledger_router extension (WORK IN PROGRESS, issue 16).
#
# A router database and four shards, each its own cluster on a free port:
#   1. the placement hash is FNV-1a (fixed values), and every account opened
#      through the router is on the shard its hash names, and only there;
#   2. refusals keep their SQLSTATE through the router;
#   3. holds: the ids the router returns route capture and release to the
#      hold's shard;
#   4. pg_ledger (libledger) works against the router unchanged.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/replication.sh"
source "$(dirname "$0")/router_lib.sh"

die() { echo "router: FAIL: $*" >&2; exit 1; }
NSHARDS=4

ledger_require_packages postgresql-15-plproxy
ledger_build_install

router_start $NSHARDS
shard_sql() { PGPORT=$(cluster_port "shard$1") psql_q -c "$2"; }
router_state() { psql_q -v VERBOSITY=sqlstate -c "$1" 2>&1 | tail -n 1; }

log "placement"
[ "$(psql_q -c "SELECT ledger_router.hash(''), ledger_router.hash('a'), ledger_router.hash('foobar')")" = \
	"-2128831035|-468965076|-1080231576" ] || die "the placement hash is not FNV-1a"
psql_q -c "SELECT count(ledger_open_account('acct-' || i, 'EUR')) FROM generate_series(1, 200) i" >/dev/null
for i in $(seq 0 $((NSHARDS - 1))); do
	expected=$(psql_q -c "SELECT count(*) FROM generate_series(1, 200) i
	                      WHERE ledger_router.hash('acct-' || i) & $((NSHARDS - 1)) = $i")
	here=$(shard_sql "$i" "SELECT count(*) FROM ledger.accounts")
	[ "$here" = "$expected" ] || die "shard $i has $here accounts, the hash gives it $expected"
	wrong=$(psql_q -c "SELECT string_agg('acct-' || i, ',') FROM generate_series(1, 200) i
	                   WHERE ledger_router.hash('acct-' || i) & $((NSHARDS - 1)) <> $i" |
		tr ',' '\n' | sed "s/.*/'&'/" | paste -sd, -)
	[ "$(shard_sql "$i" "SELECT count(*) FROM ledger.accounts WHERE name IN ($wrong)")" = 0 ] ||
		die "shard $i has accounts of another shard"
done
[ "$(psql_q -c "SELECT sum(ledger_credit('acct-' || i, i)) FROM generate_series(1, 200) i")" = 20100 ] ||
	die "credits through the router"
[ "$(psql_q -c "SELECT ledger_debit('acct-7', 7)")" = 0 ] || die "a debit through the router"

log "SQLSTATEs through the router"
[ "$(router_state "SELECT ledger_debit('acct-8', 9)")" = "ERROR:  LG001" ] || die "an overdraft is not LG001"
[ "$(router_state "SELECT ledger_debit('nobody', 1)")" = "ERROR:  LG002" ] || die "an unknown account is not LG002"
[ "$(router_state "SELECT ledger_debit('acct-8', -1)")" = "ERROR:  22023" ] || die "a negative amount is not 22023"
[ "$(router_state "SELECT ledger_debit(NULL, 1)")" = "ERROR:  22004" ] || die "a NULL account is not 22004"
[ "$(router_state "SELECT ledger_open_account('acct-8', 'USD')")" = "ERROR:  LG005" ] ||
	die "an open with another currency is not LG005"
[ "$(psql_q -c "SELECT ledger_open_account('acct-8', 'EUR') = ledger_open_account('acct-8', 'EUR')")" = t ] ||
	die "opening again gives another id"
[ "$(psql_q -c "SELECT ledger_balance('acct-8')")" = 8 ] || die "a refusal changed the balance"

log "transfers on one shard"
same=$(psql_q -c "SELECT 'acct-' || i FROM generate_series(2, 200) i
                  WHERE ledger_router.hash('acct-' || i) & $((NSHARDS - 1)) = ledger_router.hash('acct-1') & $((NSHARDS - 1))
                  LIMIT 1")
other=$(psql_q -c "SELECT 'acct-' || i FROM generate_series(2, 200) i
                   WHERE ledger_router.hash('acct-' || i) & $((NSHARDS - 1)) <> ledger_router.hash('acct-1') & $((NSHARDS - 1))
                   LIMIT 1")
before=$(psql_q -c "SELECT ledger_balance('$same')")
transfer=$(psql_q -c "SELECT ledger_transfer('acct-1', '$same', 1, 't-1')")
[ "$(psql_q -c "SELECT ledger_transfer('acct-1', '$same', 1, 't-1')")" = "$transfer" ] ||
	die "a replayed transfer has another id"
[ "$(psql_q -c "SELECT ledger_balance('acct-1') || ' ' || ledger_balance('$same')")" = "0 $((before + 1))" ] ||
	die "the transfer on one shard did not move the money"
[ "$(psql_q -c "SELECT transfer_id FROM ledger_history('$same', 1)")" = "$transfer" ] ||
	die "the history shows another transfer id than the transfer returned"
[ "$(router_state "SELECT ledger_transfer('acct-1', '$same', 100)")" = "ERROR:  LG001" ] ||
	die "an overdrawing transfer is not LG001"
[ "$(router_state "SELECT ledger_transfer('acct-2', NULL, 1)")" = "ERROR:  22004" ] ||
	die "a transfer to NULL is not 22004"

log "transfers between shards"
# acct-2, -3 and -4 have 2, 3 and 4; $other is on none of their shards
other=$(psql_q -c "SELECT 'acct-' || i FROM generate_series(150, 200) i
                   WHERE ledger_router.shard('acct-' || i) NOT IN
                         (ledger_router.shard('acct-2'), ledger_router.shard('acct-3'), ledger_router.shard('acct-4'))
                   LIMIT 1")
src_shard=$(psql_q -c "SELECT ledger_router.shard('acct-2')")
before=$(psql_q -c "SELECT ledger_balance('$other')")
xfer=$(psql_q -c "SELECT ledger_transfer('acct-2', '$other', 2, 'x-1')")
[ "$(psql_q -c "SELECT ledger_transfer('acct-2', '$other', 2, 'x-1')")" = "$xfer" ] ||
	die "a replayed cross-shard transfer has another id"
[ $((xfer & 1023)) = "$src_shard" ] || die "a cross-shard transfer id does not name its source shard"
[ "$(psql_q -c "SELECT ledger_balance('acct-2') || ' ' || ledger_available('acct-2') || ' ' || ledger_balance('$other')")" = \
	"0 0 $((before + 2))" ] || die "the cross-shard transfer did not move the money exactly once"
[ "$(router_state "SELECT ledger_transfer('acct-2', '$other', 3, 'x-1')")" = "ERROR:  LG003" ] ||
	die "a key reused for another cross-shard transfer is not LG003"
[ "$(router_state "SELECT ledger_transfer('acct-3', '$other', 4)")" = "ERROR:  LG001" ] ||
	die "an overdrawing cross-shard transfer is not LG001"
[ "$(router_state "SELECT ledger_transfer('acct-3', '$other', 0)")" = "ERROR:  22023" ] ||
	die "a cross-shard transfer of 0 is not 22023"
[ "$(router_state "SELECT ledger_transfer('acct-3', '$other', 1, '')")" = "ERROR:  22023" ] ||
	die "a cross-shard transfer with an empty key is not 22023"
nobody=$(psql_q -c "SELECT 'nobody-' || i FROM generate_series(1, 100) i
                    WHERE ledger_router.shard('nobody-' || i) <> ledger_router.shard('acct-3') LIMIT 1")
[ "$(router_state "SELECT ledger_transfer('acct-3', '$nobody', 1)")" = "ERROR:  LG002" ] ||
	die "a cross-shard transfer to an unknown account is not LG002"
usd=$(psql_q -c "SELECT 'usd-' || i FROM generate_series(1, 100) i
                 WHERE ledger_router.shard('usd-' || i) <> ledger_router.shard('acct-3') LIMIT 1")
psql_q -c "SELECT ledger_open_account('$usd', 'USD')" >/dev/null
[ "$(router_state "SELECT ledger_transfer('acct-3', '$usd', 1)")" = "ERROR:  LG004" ] ||
	die "a cross-shard transfer between currencies is not LG004"
[ "$(psql_q -c "SELECT ledger_available('acct-3')")" = 3 ] || die "a refused cross-shard transfer held money"
xhold=$(psql_q -c "SELECT hold_id FROM ledger_holds('acct-2') LIMIT 1")
[ "$(router_state "SELECT ledger_release($xhold)")" = "ERROR:  55000" ] ||
	die "the hold of a cross-shard transfer could be released"
[ "$(router_state "SELECT ledger_hold('acct-3', 1, NULL, 'lr/out/mine')")" = "ERROR:  22023" ] ||
	die "a hold under the reserved key prefix was made"

log "cross-shard transfers interrupted after each step, then recovered"
cur=$(psql_q -c "SELECT ledger_router.transfer_check('acct-4', '$other', 1, 'k')")
four=$(psql_q -c "SELECT ledger_router.shard('acct-4')")
before=$(psql_q -c "SELECT ledger_balance('$other')")
# after step 1: held on the source, nothing on the destination
psql_q -c "SELECT ledger_router.transfer_out($four, 'acct-4', '$other', '$cur', 1, 'cut-1')" >/dev/null
# after step 2: credited too, not yet captured
psql_q -c "SELECT ledger_router.transfer_out($four, 'acct-4', '$other', '$cur', 2, 'cut-2')" >/dev/null
psql_q -c "SELECT ledger_router.transfer_in('$other', '$cur', 2, ledger_router.transfer_origin('acct-4', 'cut-2'))" >/dev/null
[ "$(psql_q -c "SELECT ledger_balance('acct-4') || ' ' || ledger_available('acct-4') || ' ' || ledger_balance('$other')")" = \
	"4 1 $((before + 2))" ] || die "the interrupted transfers are not as their steps left them"
[ "$(psql_q -c "SET ledger_router.unfinished_limit = '0'; SELECT count(*) FROM ledger_verify() WHERE problem LIKE '%unfinished%'")" = 2 ] ||
	die "ledger_verify does not report the unfinished transfers"
[ "$(psql_q -c "SELECT ledger_recover('1 hour')")" = 0 ] || die "ledger_recover finished young transfers"
[ "$(psql_q -c "SELECT ledger_recover('0')")" = 2 ] || die "ledger_recover did not finish both"
[ "$(psql_q -c "SELECT ledger_balance('acct-4') || ' ' || ledger_available('acct-4') || ' ' || ledger_balance('$other')")" = \
	"1 1 $((before + 3))" ] || die "recovery did not apply each transfer exactly once"
[ "$(psql_q -c "SELECT ledger_recover('0')")" = 0 ] || die "a second recovery found work"
[ "$(router_state "SELECT ledger_recover(NULL)")" = "ERROR:  22004" ] || die "ledger_recover(NULL) is not 22004"
[ "$(router_state "SELECT ledger_recover('-1 second')")" = "ERROR:  22023" ] ||
	die "ledger_recover of a negative age is not 22023"
[ "$(psql_q -c "SET ledger_router.unfinished_limit = '0'; SELECT count(*) FROM ledger_verify()")" = 0 ] ||
	die "ledger_verify is not clean after recovery"

log "batches through the router"
psql_q -c "SELECT ledger_credit('acct-' || i, 10) FROM generate_series(20, 29) i" >/dev/null
[ "$(psql_q -c "SELECT string_agg(ordinal || ':' || status, ',' ORDER BY ordinal)
                FROM ledger_debit_batch(ARRAY(SELECT 'acct-' || i FROM generate_series(20, 29) i),
                                        ARRAY[1, 2, 3, 4, 5, 60, 7, 8, 9, 10]::bigint[])")" = \
	"1:ok,2:ok,3:ok,4:ok,5:ok,6:insufficient_funds,7:ok,8:ok,9:ok,10:ok" ] || die "a debit batch over the shards"
[ "$(psql_q -c "SELECT ledger_balance('acct-25') || ' ' || ledger_balance('acct-26')")" = "35 29" ] ||
	die "the debit batch's results"
[ "$(psql_q -c "SELECT string_agg(ordinal || ':' || status, ',' ORDER BY ordinal)
                FROM ledger_transfer_batch(ARRAY['acct-20', 'acct-21', 'acct-22'], ARRAY['acct-23', 'nobody', 'acct-24'],
                                           ARRAY[1, 1, 100]::bigint[])")" = \
	"1:ok,2:account_not_found,3:insufficient_funds" ] || die "a transfer batch over the shards"
[ "$(psql_q -c "SELECT string_agg(ordinal || ':' || status, ',' ORDER BY ordinal)
                FROM ledger_transfer_batch('[0:1]={acct-20,acct-21}'::text[], '[5:6]={acct-22,acct-23}'::text[],
                                           '[2:3]={1,1}'::bigint[])")" = "1:ok,2:ok" ] ||
	die "a transfer batch of arrays with other lower bounds"
[ "$(router_state "SELECT * FROM ledger_debit_batch(ARRAY['acct-20'], NULL)")" = "ERROR:  22004" ] ||
	die "a debit batch without amounts is not 22004"
[ "$(router_state "SELECT * FROM ledger_transfer_batch(ARRAY['acct-20'], ARRAY['acct-21'], ARRAY[1, 2]::bigint[])")" = "ERROR:  22023" ] ||
	die "a transfer batch of arrays of other lengths is not 22023"
[ "$(psql_q -c "SELECT count(*) FROM ledger_verify()")" = 0 ] || die "ledger_verify after the batches"

log "holds by the router's ids"
hold=$(psql_q -c "SELECT ledger_hold('acct-100', 60, NULL, 'h-1')")
[ "$(psql_q -c "SELECT ledger_hold('acct-100', 60, NULL, 'h-1')")" = "$hold" ] || die "a replayed hold has another id"
[ "$(psql_q -c "SELECT hold_id FROM ledger_holds('acct-100')")" = "$hold" ] || die "ledger_holds shows another id"
[ "$(psql_q -c "SELECT ledger_available('acct-100')")" = 40 ] || die "the hold reserves nothing"
[ "$(psql_q -c "SELECT ledger_capture($hold, 25)")" = 75 ] || die "the capture by the router's id"
[ "$(router_state "SELECT ledger_release($hold)")" = "ERROR:  LG007" ] || die "a captured hold released"
other=$(psql_q -c "SELECT ledger_hold('acct-101', 1)")
[ "$(psql_q -c "SELECT ledger_release($other)")" = t ] || die "the release by the router's id"
[ "$(router_state "SELECT ledger_release(($other >> 10) + 1 << 10 | ($other & 1023))")" = "ERROR:  LG006" ] ||
	die "an unknown hold is not LG006"
[ "$(psql_q -c 'SELECT ledger_expire_holds()')" = 0 ] || die "ledger_expire_holds over the shards"
log "libledger's CLI against the router, unchanged: every command"
make -s -C "$LEDGER_ROOT/client" PG_CONFIG="$LEDGER_PG_BIN/pg_config" all >/dev/null
ROUTER="host=127.0.0.1 port=$(cluster_port router) dbname=postgres user=postgres"
cli() { LD_LIBRARY_PATH=$LEDGER_ROOT/client "$LEDGER_ROOT/client/pg_ledger" -d "$ROUTER" "$@"; }
# cli_status EXPECTED ARGS...: the exit status of a refused command
cli_status() {
	local expected=$1 status=0
	shift
	cli "$@" >/dev/null 2>&1 || status=$?
	[ "$status" = "$expected" ] || die "pg_ledger $* exits $status, not $expected"
}
cli_a=$(psql_q -c "SELECT 'cli-' || i FROM generate_series(1, 100) i
                   WHERE ledger_router.shard('cli-' || i) = 0 LIMIT 1")
cli_b=$(psql_q -c "SELECT 'cli-' || i FROM generate_series(1, 100) i
                   WHERE ledger_router.shard('cli-' || i) = 1 LIMIT 1")
cli open "$cli_a" --currency EUR >/dev/null && cli open "$cli_b" --currency EUR >/dev/null || die "pg_ledger open"
cli_status 15 open "$cli_a" --currency USD
[ "$(cli credit "$cli_a" 100 --key cli-c1)" = 100 ] || die "pg_ledger credit through the router"
[ "$(cli debit "$cli_a" 10 --key cli-d1)" = 90 ] || die "pg_ledger debit through the router"
[ "$(cli debit "$cli_a" 10 --key cli-d1)" = 90 ] || die "pg_ledger's replay through the router"
cli_status 11 debit "$cli_a" 91
cli_status 12 debit nobody-at-all 1
cli_status 13 debit "$cli_a" 11 --key cli-d1
xid=$(cli transfer "$cli_a" "$cli_b" 30 --key cli-t1) || die "pg_ledger transfer across shards"
[ "$(cli transfer "$cli_a" "$cli_b" 30 --key cli-t1)" = "$xid" ] || die "pg_ledger's replayed transfer across shards"
cli_status 11 transfer "$cli_a" "$cli_b" 61
cli_status 12 transfer "$cli_a" nobody-at-all 1
[ "$(cli balance "$cli_a") $(cli balance "$cli_b")" = "60 30" ] || die "pg_ledger balance after the transfer"
cli history "$cli_b" --limit 1 | grep -q -- 30 || die "pg_ledger history through the router"
[ "$(cli batch-debit "$cli_a:5" "$cli_b:5" "$cli_b:500" 2>/dev/null | grep -c ok)" = 2 ] ||
	die "pg_ledger batch-debit across shards"
hid=$(cli hold "$cli_a" 20 --key cli-h1) || die "pg_ledger hold"
[ "$(cli available "$cli_a")" = 35 ] || die "pg_ledger available"
cli holds "$cli_a" | grep -q "$hid" || die "pg_ledger holds shows another id"
[ "$(cli capture "$hid" 5)" = 50 ] || die "pg_ledger capture by the router's id"
cli_status 0 release "$(cli hold "$cli_a" 1)"
cli_status 0 verify
[ "$(cli mode "$cli_a")" = locked ] || die "pg_ledger mode through the router"
log "a shard down: libledger's outcome is unknown (XX000 from PL/Proxy), and a retry with the key applies once"
down=$(psql_q -c "SELECT ledger_router.shard('$cli_a')")
cluster_stop "shard$down"
cli_status 23 --retries 2 --timeout 5 debit "$cli_a" 1 --key cli-down
cluster_restart "shard$down"
before=$(cli balance "$cli_a")
[ "$(cli debit "$cli_a" 1 --key cli-down)" = $((before - 1)) ] || die "the retry after a shard came back"
[ "$(cli debit "$cli_a" 1 --key cli-down)" = $((before - 1)) ] || die "the replay after a shard came back"

log "roles: per-role user mappings, and an application role that tries to create money"
# On every shard the README's two recipes: the application's, with the two
# steps of a cross-shard transfer it runs itself (check, out), and the
# operator's, every function.  The owner of ledger_router (postgres here)
# maps to the operator: it runs steps 2 and 3 and recovery.
for i in $(seq 0 $((NSHARDS - 1))); do
	shard_sql "$i" "
	CREATE ROLE ledger_app LOGIN;
	GRANT EXECUTE ON FUNCTION ledger_open_account(text, text, bigint), ledger_debit(text, bigint, text),
		ledger_transfer(text, text, bigint, text), ledger_balance(text), ledger_history(text, int, bigint),
		ledger_hold(text, bigint, interval, text), ledger_capture(bigint, bigint, text),
		ledger_release(bigint), ledger_available(text), ledger_holds(text, int),
		ledger_transfer_check(text, text, bigint, text), ledger_transfer_out(text, text, text, bigint, text)
		TO ledger_app;
	CREATE ROLE ledger_operator LOGIN;
	GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO ledger_operator;"
done
psql_q >/dev/null <<'SQL'
CREATE ROLE app;
GRANT USAGE ON SCHEMA ledger_router TO app;
GRANT USAGE ON FOREIGN SERVER ledger_shards TO app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ledger_router TO app;
GRANT EXECUTE ON FUNCTION ledger_open_account(text, text, bigint), ledger_debit(text, bigint, text),
	ledger_transfer(text, text, bigint, text), ledger_balance(text), ledger_available(text),
	ledger_hold(text, bigint, interval, text), ledger_capture(bigint, bigint, text),
	ledger_release(bigint), ledger_holds(text, int) TO app;
CREATE USER MAPPING FOR app SERVER ledger_shards OPTIONS (user 'ledger_app');
-- the owner of ledger_router runs steps 2 and 3 (and recovery): not a superuser on the shards
CREATE USER MAPPING FOR postgres SERVER ledger_shards OPTIONS (user 'ledger_operator');
SQL
as_app() { { psql_q -v VERBOSITY=sqlstate -c "SET ROLE app" -c "$1" 2>&1 || true; } | tail -n 1; }
far=$(psql_q -c "SELECT 'acct-' || i FROM generate_series(150, 200) i
                 WHERE ledger_router.shard('acct-' || i) <> ledger_router.shard('acct-5') LIMIT 1")
idr=$(psql_q -c "SELECT 'idr-' || i FROM generate_series(1, 100) i
                 WHERE ledger_router.shard('idr-' || i) = ledger_router.shard('acct-5') LIMIT 1")
psql_q -c "SELECT ledger_open_account('$idr', 'IDR'), ledger_credit('$idr', 1000000)" >/dev/null
src=$(psql_q -c "SELECT 'src-' || i FROM generate_series(1, 100) i
                 WHERE ledger_router.shard('src-' || i) <> ledger_router.shard('$far') LIMIT 1")
psql_q -c "SELECT ledger_open_account('$src', 'EUR', NULL)" >/dev/null
before=$(psql_q -c "SELECT ledger_balance('acct-5') || ' ' || ledger_balance('$far') || ' ' || ledger_balance('$usd')")
[ "$(as_app "SELECT ledger_transfer('acct-5', '$far', 5, 'app-1') > 0")" = t ] ||
	die "the application's cross-shard transfer, through its own mapping and the router's steps"
[ "$(as_app "SELECT ledger_credit('acct-5', 1)")" = "ERROR:  42501" ] || die "the application credits through the router"
[ "$(as_app "SELECT ledger_router.transfer_in('$far', 'EUR', 1000, 'mine')")" = "ERROR:  42501" ] ||
	die "the application runs a transfer's credit by itself"
src5=$(psql_q -c "SELECT ledger_router.shard('acct-5')")
[ "$(as_app "SELECT ledger_router.transfer_out($src5, '$idr', '$usd', 'IDR', 100, 'app-2') > 0")" = t ] ||
	die "the application sends a transfer out, going around ledger_transfer"
[ "$(as_app "SELECT ledger_router.transfer_complete($src5 + $NSHARDS, 'app-1')")" = "ERROR:  22023" ] ||
	die "the application completed a transfer again under another shard number (a second credit)"
wrong=$(( ($(psql_q -c "SELECT ledger_router.shard('app-made')") + 1) % NSHARDS ))
as_app "SELECT ledger_router.open_account($wrong, 'app-made', 'EUR', 0)" >/dev/null
[ "$(shard_sql "$(psql_q -c "SELECT ledger_router.shard('app-made')")" "SELECT count(*) FROM ledger.accounts WHERE name = 'app-made'")" = 1 ] &&
	[ "$(shard_sql "$wrong" "SELECT count(*) FROM ledger.accounts WHERE name = 'app-made'")" = 0 ] ||
	die "the application opened an account on a shard of its choosing"
[ "$(as_app "SELECT ledger_router.transfer_finish($src5, 'app-2')")" = "ERROR:  42501" ] ||
	die "the application finishes a transfer before its credit"
[ "$(as_app "SELECT ledger_router.transfer_complete($src5, 'app-2')")" = "ERROR:  LG004" ] ||
	die "a transfer of rupiah, sent out as dollars, was credited in dollars"
[ "$(psql_q -c "SELECT ledger_recover('0')")" = 0 ] || die "recovery credited the rupiah in dollars"
xhold=$(psql_q -c "SELECT hold_id FROM ledger_holds('$idr') WHERE status = 'pending'")
[ "$(as_app "SELECT ledger_release($xhold)")" = "ERROR:  55000" ] || die "the application released a transfer's hold"
[ "$(as_app "SELECT ledger_transfer('$src', '$far', 1)")" = "ERROR:  42501" ] ||
	die "the application took money out of a source across shards"
[ "$(as_app "SELECT ledger_recover('0')")" = "ERROR:  42501" ] || die "the application may run ledger_recover"
[ "$(psql_q -c "SELECT ledger_balance('acct-5') || ' ' || ledger_balance('$far') || ' ' || ledger_balance('$usd')")" = \
	"$(echo "$before" | awk '{ print $1 - 5 " " $2 + 5 " " $3 }')" ] || die "money moved other than by the one transfer"
[ "$(psql_q -c "SET ledger_router.unfinished_limit = '0'; SELECT string_agg(problem, '; ') FROM ledger_verify()")" = \
	"cross-shard transfer $(psql_q -c "SELECT transfer_id FROM ledger_router.transfers_out($src5) WHERE idempotency_key = 'app-2'") to account \"$usd\" unfinished since $(psql_q -c "SELECT created_at FROM ledger_router.transfers_out($src5) WHERE idempotency_key = 'app-2'")" ] ||
	die "ledger_verify does not report (only) the rupiah held for a transfer that can never be credited"
psql_q -c "SELECT ledger_router.transfer_in('$far', 'EUR', 7, 'made-up')" >/dev/null
[ "$(psql_q -c "SELECT count(*) FROM ledger_verify()
                WHERE problem = 'credit of 7 under key \"lr/in/made-up\" belongs to no cross-shard transfer'")" = 1 ] ||
	die "ledger_verify does not report a transfer's credit that no intent made"

log "an account opened around the router, on another shard, is reported once it sends a transfer"
dup_home=$(psql_q -c "SELECT ledger_router.shard('dup-x')")
dup_wrong=$(( (dup_home + 1) % NSHARDS ))
shard_sql "$dup_wrong" "SELECT ledger_open_account('dup-x', 'EUR')" >/dev/null
shard_sql "$dup_wrong" "SELECT ledger_credit('dup-x', 5)" >/dev/null
shard_sql "$dup_wrong" "SELECT ledger_transfer_out('dup-x', '$far', 'EUR', 1, 'dup')" >/dev/null
[ "$(psql_q -c "SELECT count(*) FROM ledger_verify()
                WHERE problem LIKE '%is on shard $dup_wrong, but account \"dup-x\" lives on shard $dup_home'")" = 1 ] ||
	die "ledger_verify does not report an intent on a shard its account does not live on"

echo "router: placement by FNV-1a on $NSHARDS shards, SQLSTATEs kept, transfers on one shard and across shards (interrupted after each step and recovered), batches, holds routed by their ids, pg_ledger unchanged, per-role mappings hold against an application role; OK"
