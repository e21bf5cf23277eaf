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
ledger() { printf '\n$ ledger %s\n' "$*"; "$LEDGER_ROOT/client/ledger" "$@"; }
ledger open alice --currency EUR
ledger open bank --currency EUR --no-floor        # no floor: a source of money
ledger transfer bank alice 10000 --key deposit-1
ledger debit alice 2500 --key coffee-42           # 7500
ledger debit alice 2500 --key coffee-42           # 7500 again: replayed, not applied twice
ledger debit alice 1000000 || echo "refused: exit $? (11 = insufficient_funds)"
ledger --json debit alice 1000000 || true
ledger history alice
ledger balance alice
ledger balance bank
ledger verify
log "demo done; the cluster is stopped and removed"
