# test/replication.sh: streaming-replication helpers on top of lib.sh.
#
# Source lib.sh first.  These add what lib.sh's throwaway clusters lack:
#
#   standby_create NAME PRIMARY APPNAME [-c name=value ...]
#                       pg_basebackup -R of cluster PRIMARY into a new
#                       cluster NAME (same temp dir layout as cluster_start:
#                       $LEDGER_TMP/NAME/{data,port,server.log}), whose
#                       walreceiver connects with application_name APPNAME;
#                       started as a hot standby on a free loopback port and
#                       registered for stop-on-exit like any other cluster
#   wait_replication PRIMARY APPNAME STATE
#                       wait until PRIMARY's pg_stat_replication shows
#                       APPNAME streaming with sync_state STATE (sync, async)
#   cluster_stop_immediate NAME
#                       pg_ctl -m immediate stop: the postmaster SIGQUITs
#                       every child, nothing is flushed or checkpointed
#   cluster_promote NAME
#                       clear synchronous_standby_names (a promoted standby
#                       inherits the primary's and would hang on its first
#                       write), reload, pg_ctl promote, wait until writable
#   wait_caught_up PRIMARY STANDBY
#                       wait until STANDBY has replayed everything PRIMARY
#                       has flushed so far
#
# Servers are started and stopped as the unprivileged server user, by the
# pid in postmaster.pid, and only on 127.0.0.1.

# psql against cluster NAME, whatever PG* currently points at
psql_on() {
	local name=$1; shift
	PGHOST=127.0.0.1 PGPORT=$(cluster_port "$name") PGUSER=postgres PGDATABASE=postgres \
		psql_q "$@"
}

standby_create() {
	local name=$1 primary=$2 app=$3 dir
	shift 3
	ensure_server_user
	ledger_init_tmp
	dir=$LEDGER_TMP/$name
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown "$LEDGER_TEST_USER" "$dir"
	# -R writes standby.signal and a primary_conninfo built from this
	# connection string, application_name included.  The copy inherits
	# the primary's postgresql.auto.conf, synchronous_standby_names too.
	as_server_user "$LEDGER_PG_BIN/pg_basebackup" \
		-d "host=127.0.0.1 port=$(cluster_port "$primary") user=postgres application_name=$app" \
		-D "$dir/data" -R -X stream -c fast --no-sync >"$dir/basebackup.log" 2>&1 ||
		{ cat "$dir/basebackup.log" >&2; return 1; }
	cluster_launch "$name" "$@" || return 1
	log "standby $name of $primary up on 127.0.0.1:$(cluster_port "$name") (application_name $app)"
}

wait_replication() {
	local primary=$1 app=$2 state=$3 i got=""
	for i in $(seq 1 300); do
		got=$(psql_on "$primary" -c "SELECT sync_state FROM pg_stat_replication
			WHERE application_name = '$app' AND state = 'streaming'")
		[ "$got" = "$state" ] && return 0
		sleep 0.1
	done
	echo "standby $app never became '$state' on $primary (saw '$got')" >&2
	return 1
}

cluster_stop_immediate() {
	local name=$1 pid
	pid=$(cluster_pid "$name") || true
	[ -n "$pid" ] || return 0
	as_server_user "$LEDGER_PG_BIN/pg_ctl" -D "$(cluster_dir "$name")/data" -m immediate \
		-w -t 60 stop >/dev/null
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

cluster_promote() {
	local name=$1 i
	# ALTER SYSTEM writes postgresql.auto.conf, which a hot standby may do
	psql_on "$name" -c 'ALTER SYSTEM RESET synchronous_standby_names' \
		-c 'SELECT pg_reload_conf()' >/dev/null
	as_server_user "$LEDGER_PG_BIN/pg_ctl" -D "$(cluster_dir "$name")/data" -w -t 60 \
		promote >/dev/null
	for i in $(seq 1 300); do
		[ "$(psql_on "$name" -c 'SELECT pg_is_in_recovery()')" = f ] &&
			[ -z "$(psql_on "$name" -c 'SHOW synchronous_standby_names')" ] && return 0
		sleep 0.1
	done
	echo "cluster $name did not leave recovery" >&2
	return 1
}

wait_caught_up() {
	local primary=$1 standby=$2 lsn i
	lsn=$(psql_on "$primary" -c 'SELECT pg_current_wal_flush_lsn()')
	for i in $(seq 1 300); do
		[ "$(psql_on "$standby" -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] &&
			return 0
		sleep 0.1
	done
	echo "standby $standby never replayed up to $lsn" >&2
	return 1
}
