#!/usr/bin/env bash
# The README's first command: build, install, start a throwaway cluster,
# and show debits succeeding and an overdraw being refused.
source "$(dirname "$0")/lib.sh"

ledger_require_packages
ledger_build_install
cluster_start demo

"$LEDGER_PG_BIN/psql" -X -v ON_ERROR_STOP=0 -e <<'SQL'
CREATE EXTENSION ledger;
SELECT ledger_open_account('alice', 'EUR') AS alice_id;
SELECT ledger_open_account('bank', 'EUR', NULL) AS bank_id;  -- no floor: a source of money
SELECT ledger_transfer('bank', 'alice', 10000, 'deposit-1') AS transfer_id;
SELECT ledger_debit('alice', 2500, 'coffee-42') AS balance_after_coffee;
SELECT ledger_debit('alice', 2500, 'coffee-42') AS same_key_replays;
SELECT ledger_debit('alice', 1000000) AS overdraw;
\echo refused with SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM ledger_history('alice');
SELECT ledger_balance('alice') AS alice, ledger_balance('bank') AS bank;
SELECT count(*) AS problems FROM ledger_verify();
SQL
log "demo done; the cluster is stopped and removed"
