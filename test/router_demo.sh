#!/usr/bin/env bash
# test/router_demo.sh: try the router (ledger_router) in one command.
#
#   bash test/router_demo.sh [--shards N] [--standbys] [--keep]
#
# Builds and installs both extensions, starts N shard clusters (default 4;
# a power of two), each with a synchronous standby if --standbys, and a
# router cluster, all throwaway, on free loopback ports, as an unprivileged
# user; then shows the pg_ledger CLI against the router: accounts placed on
# their shards, a transfer between shards, its replay, a refusal, the
# global audit.  With --keep it then prints how to connect and waits for
# Ctrl-C before stopping everything it started (by pid).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/replication.sh"
source "$(dirname "$0")/router_lib.sh"

N=4 STANDBYS=false KEEP=false
while [ $# -gt 0 ]; do
	case "$1" in
		--shards) N=$2; shift ;;
		--standbys) STANDBYS=true ;;
		--keep) KEEP=true ;;
		*) echo "usage: router_demo.sh [--shards N] [--standbys] [--keep]" >&2; exit 2 ;;
	esac
	shift
done
case "$N" in 1|2|4|8|16) ;; *) echo "router_demo: --shards must be 1, 2, 4, 8 or 16" >&2; exit 2 ;; esac

ledger_require_packages
ledger_build_install
ledger_init_tmp
router_start "$N"
if $STANDBYS; then
	for i in $(seq 0 $((N - 1))); do
		psql_on "shard$i" -c "ALTER SYSTEM SET synchronous_standby_names = 's$i'" \
			-c 'SELECT pg_reload_conf()' >/dev/null
		standby_create "shard${i}s" "shard$i" "s$i" -c shared_buffers=32MB
		wait_replication "shard$i" "s$i" sync
	done
fi
log "building the pg_ledger CLI (client/)"
make -s -C "$LEDGER_ROOT/client" PG_CONFIG="$LEDGER_PG_BIN/pg_config" pg_ledger >/dev/null
ROUTER="host=127.0.0.1 port=$(cluster_port router) dbname=postgres user=postgres"

pg_ledger() {
	local caption=$1; shift
	printf '\n# %s\n$ pg_ledger %s\n' "$caption" "$*"
	LD_LIBRARY_PATH=$LEDGER_ROOT/client "$LEDGER_ROOT/client/pg_ledger" -d "$ROUTER" "$@"
}
router_sql() {
	printf '\n# %s\n$ psql -c "%s"\n' "$1" "$2"
	psql_on router -P footer=off -F ' | ' -c "$2"
}
pg_ledger "open alice, through the router; the id names her shard in its low 10 bits" open alice --currency EUR
pg_ledger "open bob" open bob --currency EUR
pg_ledger "open a source of money (no floor)" open bank --currency EUR --no-floor
router_sql "where each account lives: shard = FNV-1a(name) & (N - 1)" \
	"SELECT a AS account, ledger_router.shard(a) AS shard FROM unnest(ARRAY['alice', 'bob', 'bank']) a"
pg_ledger "deposit 100.00 for alice" transfer bank alice 10000 --key deposit-1
pg_ledger "alice pays bob 25.00 (across shards if they differ: hold, credit, capture); prints the transfer id" \
	transfer alice bob 2500 --key pay-1
pg_ledger "the same call again: the same transfer, not applied twice" transfer alice bob 2500 --key pay-1
pg_ledger "an overdraw is refused with the same exit status as on one server" transfer alice bob 1000000 ||
	echo "refused: exit $? (11 = insufficient_funds)"
pg_ledger "alice's balance" balance alice
pg_ledger "bob's balance" balance bob
pg_ledger "the audit on every shard, plus the cross-shard checks" verify
router_sql "finish any cross-shard transfer left half done for a minute (pg_cron runs this every minute)" \
	"SELECT ledger_recover()"

if $KEEP; then
	printf '\nThe router is at: %s\n' "$ROUTER"
	for i in $(seq 0 $((N - 1))); do
		printf 'shard %d: %s user=postgres\n' "$i" "$(shard_conninfo "shard$i")"
	done
	printf 'Try: LD_LIBRARY_PATH=%s %s -d "%s" balance alice\n' \
		"$LEDGER_ROOT/client" "$LEDGER_ROOT/client/pg_ledger" "$ROUTER"
	printf 'Ctrl-C stops and removes every cluster this started.\n'
	while true; do sleep 3600; done
fi
log "router demo done; the clusters are stopped and removed"
