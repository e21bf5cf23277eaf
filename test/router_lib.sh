# test/router_lib.sh: a router and its shards, on top of lib.sh and
# replication.sh (source both first).
#
#   router_start N [STANDBY_SHARD]
#       clusters shard0 .. shard<N-1>, each with CREATE EXTENSION ledger,
#       and cluster router with CREATE EXTENSION ledger_router, the SQL/MED
#       server ledger_shards naming the shards, and a user mapping for
#       PUBLIC (every router role connects as postgres: the tests' trust
#       setup; the README shows per-role mappings).  With STANDBY_SHARD,
#       that shard also gets a synchronous standby, cluster
#       shard<STANDBY_SHARD>s (application_name s<STANDBY_SHARD>).
#       Leaves the PG* variables pointing at the router.  ROUTER_OPTIONS:
#       more "-c name=value" options for the router cluster.
#   shard_conninfo NAME     the conninfo of cluster NAME, as ledger_shards holds
#                           it (the user comes from the user mapping)
#   router_point SHARD NAME point partition SHARD at cluster NAME (a failover)

shard_conninfo() {
	echo "host=127.0.0.1 port=$(cluster_port "$1") dbname=postgres"
}

router_start() {
	local n=$1 standby=${2:-} i options=""
	for i in $(seq 0 $((n - 1))); do
		cluster_start "shard$i" -c shared_buffers=32MB -c max_connections=60
		psql_q -c 'CREATE EXTENSION ledger'
		if [ "$i" = "$standby" ]; then
			psql_q -c "ALTER SYSTEM SET synchronous_standby_names = 's$i'" \
				-c 'SELECT pg_reload_conf()' >/dev/null
			standby_create "shard${i}s" "shard$i" "s$i" -c shared_buffers=32MB -c max_connections=60
			wait_replication "shard$i" "s$i" sync
		fi
		options="$options${options:+, }p$i '$(shard_conninfo "shard$i")'"
	done
	# shellcheck disable=SC2086  # ROUTER_OPTIONS: more -c options, split on purpose
	cluster_start router -c shared_buffers=32MB -c max_connections=60 ${ROUTER_OPTIONS:-}
	psql_q >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION ledger_router CASCADE;
CREATE SERVER ledger_shards FOREIGN DATA WRAPPER plproxy OPTIONS ($options);
CREATE USER MAPPING FOR PUBLIC SERVER ledger_shards OPTIONS (user 'postgres');
SQL
}

router_point() {
	psql_on router -c "ALTER SERVER ledger_shards OPTIONS (SET p$1 '$(shard_conninfo "$2")')"
}
