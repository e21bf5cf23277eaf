#!/usr/bin/env bash
# The README's first command: build, install, start a throwaway cluster,
# and show debits succeeding and an overdraw being refused, with the
# ledger CLI (client/).
source "$(dirname "$0")/lib.sh"

ledger_require_packages
ledger_build_install
cluster_start demo

psql_q -c 'CREATE EXTENSION ledger'
log "building the ledger CLI (client/)"
make -s -C "$LEDGER_ROOT/client" PG_CONFIG="$LEDGER_PG_BIN/pg_config" ledger >/dev/null
# Show each command, then run it with the CLI against the demo cluster (PG* variables).
# ledger CAPTION ARGS...: show the caption and the command, then run it
ledger() { local caption=$1; shift; printf '\n# %s\n$ ledger %s\n' "$caption" "$*"; "$LEDGER_ROOT/client/ledger" "$@"; }
ledger "open an account in EUR, floor 0 (never negative); prints its id" open alice --currency EUR
ledger "open a source of money: no floor; prints its id" open bank --currency EUR --no-floor
ledger "move 100.00 from bank to alice; prints the transfer id" transfer bank alice 10000 --key deposit-1
ledger "alice pays 25.00; prints her new balance" debit alice 2500 --key coffee-42
ledger "the same call again (a client retry): same key, replayed, not applied twice" debit alice 2500 --key coffee-42
ledger "an overdraw is refused, and nothing changes" debit alice 1000000 || echo "refused: exit $? (11 = insufficient_funds)"
ledger "the same, as JSON for programs" --json debit alice 1000000 || true
ledger "alice's journal, newest first: entry, amount, balance after, transfer, key, time" history alice
ledger "alice's balance" balance alice
ledger "the bank is negative by what it paid out: money is never created" balance bank
ledger "the audit: every balance equals its journal, every transfer sums to zero" verify
log "demo done; the cluster is stopped and removed"
