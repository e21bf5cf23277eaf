#!/usr/bin/env bash
# The README's first command: build, install, start a throwaway cluster,
# and show debits succeeding and an overdraw being refused, then a hold
# (authorise, partial capture, release, expiry), with the pg_ledger CLI
# (client/).
source "$(dirname "$0")/lib.sh"

ledger_require_packages
ledger_build_install
cluster_start demo

psql_q -c 'CREATE EXTENSION ledger'
log "building the pg_ledger CLI (client/)"
make -s -C "$LEDGER_ROOT/client" PG_CONFIG="$LEDGER_PG_BIN/pg_config" pg_ledger >/dev/null
# Show each command, then run it with the CLI against the demo cluster (PG* variables).
# pg_ledger CAPTION ARGS...: show the caption and the command, then run it;
# what it printed stays in $LEDGER_TMP/last (printed_id reads a hold id from it)
pg_ledger() {
	local caption=$1; shift
	printf '\n# %s\n$ pg_ledger %s\n' "$caption" "$*"
	"$LEDGER_ROOT/client/pg_ledger" "$@" | tee "$LEDGER_TMP/last"
}
printed_id() { tail -n 1 "$LEDGER_TMP/last"; }
pg_ledger "open an account in EUR, floor 0 (never negative); prints its id" open alice --currency EUR
pg_ledger "open a source of money: no floor; prints its id" open bank --currency EUR --no-floor
pg_ledger "move 100.00 from bank to alice; prints the transfer id" transfer bank alice 10000 --key deposit-1
pg_ledger "alice pays 25.00; prints her new balance" debit alice 2500 --key coffee-42
pg_ledger "the same call again (a client retry): same key, replayed, not applied twice" debit alice 2500 --key coffee-42
pg_ledger "an overdraw is refused, and nothing changes" debit alice 1000000 || echo "refused: exit $? (11 = insufficient_funds)"
pg_ledger "the same, as JSON for programs" --json debit alice 1000000 || true
pg_ledger "open a shop's account" open shop --currency EUR
pg_ledger "a card payment is authorised: 40.00 of alice's money is held; prints the hold id" hold alice 4000 --key card-7
card=$(printed_id)
pg_ledger "the balance is unchanged..." balance alice
pg_ledger "...but what alice can spend is 40.00 less" available alice
pg_ledger "the shop captures 32.50 of the hold; prints alice's new balance; the other 7.50 is released" capture "$card" 3250 --to shop
pg_ledger "the same capture again (a retry): the same result, not posted twice" capture "$card" 3250 --to shop
pg_ledger "another hold of 10.00..." hold alice 1000
pg_ledger "...released: nothing is posted, the money is available again" release "$(printed_id)"
pg_ledger "a pending withdrawal held for 1 second only" hold alice 500 --expires-in 1
printf '\n# (2 seconds later)\n'
sleep 2
pg_ledger "alice's holds, newest first: hold, amount, captured, status, created, expires, key; the last one expired by itself, no sweep needed" holds alice
pg_ledger "so all of alice's balance is available again" available alice
pg_ledger "alice's journal, newest first: entry, amount, balance after, transfer, key, time" history alice
pg_ledger "alice's balance" balance alice
pg_ledger "the bank is negative by what it paid out: money is never created" balance bank
pg_ledger "the audit: every balance equals its journal, every transfer sums to zero" verify
log "demo done; the cluster is stopped and removed"
