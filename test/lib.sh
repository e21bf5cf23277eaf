# test/lib.sh: shared shell helpers for the demo and the test suites.
#
#   ledger_require_packages   install (as root) or name the missing Debian packages
#   ledger_build_install      build the extension and install it into the server
#   cluster_start NAME [postgres -c options...]
#                             throwaway cluster on a free loopback port, as an
#                             unprivileged user; exports PGHOST/PGPORT/PGUSER
#   cluster_launch NAME       start an existing data directory (a standby) the same way
#   cluster_stop NAME         stop it by the pid in its postmaster.pid
#   cluster_ghost_standby NAME
#                             every commit that writes waits for a synchronous
#                             standby that never comes
#   pgbouncer_start NAME MODE SIZE USER...
#                             pgbouncer in front of the current cluster
#
# Every cluster and pgbouncer started here is stopped when the calling script exits, also
# on failure.  Servers are always stopped by pid, never by process name.

set -euo pipefail

LEDGER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LEDGER_PG_MAJOR=15
LEDGER_PG_BIN=/usr/lib/postgresql/$LEDGER_PG_MAJOR/bin
LEDGER_TEST_USER=${LEDGER_TEST_USER:-ledgertest}
LEDGER_PACKAGES="postgresql-$LEDGER_PG_MAJOR postgresql-server-dev-$LEDGER_PG_MAJOR libpq-dev \
postgresql-$LEDGER_PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl make gcc libc6-dev \
valgrind pkgconf postgresql-$LEDGER_PG_MAJOR-cron postgresql-$LEDGER_PG_MAJOR-plproxy pgbouncer"

LEDGER_TMP=""
LEDGER_CLUSTERS=""
LEDGER_BOUNCERS=""

log() { printf '==> %s\n' "$*" >&2; }

# Install what is missing.  The server and its headers are named in one
# apt-get call: server-dev alone would pull a newer minor release than the
# installed server and upgrade it half-way.
ledger_require_packages() {
	local missing="" pkg
	for pkg in $LEDGER_PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $pkg"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages:$missing" >&2
		echo "install them as root, then run this script again:" >&2
		root_command_hint "apt-get update && apt-get install -y $LEDGER_PACKAGES $*"
		exit 1
	fi
	log "installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $LEDGER_PACKAGES "$@" >/dev/null
}

# root_command_hint "COMMAND": how a user who is not root runs it as root
root_command_hint() {
	echo "  sudo sh -c '$1'" >&2
	echo "  (or, without sudo: su -c '$1')" >&2
}

ledger_build_install() {
	local pg_config=$LEDGER_PG_BIN/pg_config pkglib share
	pkglib=$($pg_config --pkglibdir)
	share=$($pg_config --sharedir)/extension
	log "building the extension"
	make -s -C "$LEDGER_ROOT" PG_CONFIG="$pg_config" EXTRA_CFLAGS=-Werror >/dev/null
	if [ -w "$pkglib" ] && [ -w "$share" ]; then
		make -s -C "$LEDGER_ROOT" PG_CONFIG="$pg_config" install >/dev/null
		return 0
	fi
	# not root: fine if what is installed is exactly this build
	if cmp -s "$LEDGER_ROOT/ledger.so" "$pkglib/ledger.so" &&
		cmp -s "$LEDGER_ROOT/ledger.control" "$share/ledger.control" &&
		(for f in "$LEDGER_ROOT"/sql/ledger--*.sql; do
			cmp -s "$f" "$share/$(basename "$f")" || exit 1
		done); then
		log "the installed extension is this build"
		return 0
	fi
	echo "this build of the extension is not installed, and installing writes to" >&2
	echo "the server's directories; run this once as root, then run this script again:" >&2
	root_command_hint "make -C $LEDGER_ROOT PG_CONFIG=$pg_config install"
	exit 1
}

# Run a command as the unprivileged server user (postgres refuses root).
as_server_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$LEDGER_TEST_USER" -- "$@"
	else
		"$@"
	fi
}

ensure_server_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	id -u "$LEDGER_TEST_USER" >/dev/null 2>&1 ||
		useradd --system --no-create-home --shell /usr/sbin/nologin "$LEDGER_TEST_USER"
}

# Create this script's temp directory and arm the cleanup.  Must run in
# the main shell, never in $(...), or the trap and the path would be lost.
ledger_init_tmp() {
	[ -n "$LEDGER_TMP" ] && return 0
	LEDGER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ledger-test.XXXXXX")
	chmod 755 "$LEDGER_TMP"
	trap ledger_cleanup EXIT
	trap 'exit 130' INT TERM
}

port_is_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# cluster_start NAME [-c name=value ...]: initdb and start a new cluster
cluster_start() {
	local name=$1; shift
	local dir
	ensure_server_user
	ledger_init_tmp
	dir=$LEDGER_TMP/$name
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown "$LEDGER_TEST_USER" "$dir"
	as_server_user "$LEDGER_PG_BIN/initdb" -D "$dir/data" -U postgres -A trust \
		--no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	cluster_launch "$name" "$@"
	export PGHOST=127.0.0.1 PGPORT=$(cluster_port "$name") PGUSER=postgres PGDATABASE=postgres
	log "cluster $name up on 127.0.0.1:$PGPORT (data in $dir/data)"
}

# cluster_launch NAME [-c name=value ...]: start the cluster whose data
# directory is $LEDGER_TMP/NAME/data on a free loopback port, and register
# it to be stopped on exit.  Retries another port if one was taken between
# the check and the start.
cluster_launch() {
	local name=$1; shift
	local dir=$LEDGER_TMP/$name port attempt
	for attempt in $(seq 1 20); do
		port=$(( 20000 + (RANDOM % 20000) ))
		port_is_free "$port" || continue
		if as_server_user "$LEDGER_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
			-o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir $*" \
			start >/dev/null 2>&1; then
			LEDGER_CLUSTERS="$LEDGER_CLUSTERS $name"
			echo "$port" >"$dir/port"
			echo "$*" >"$dir/options"
			return 0
		fi
	done
	echo "could not start cluster $name; its log:" >&2
	cat "$dir/server.log" >&2 || true
	return 1
}

cluster_dir() { echo "$LEDGER_TMP/$1"; }
cluster_port() { cat "$LEDGER_TMP/$1/port"; }
cluster_pid() { head -n 1 "$LEDGER_TMP/$1/data/postmaster.pid" 2>/dev/null; }

# Point the PG* variables at cluster NAME.
cluster_use() { export PGHOST=127.0.0.1 PGPORT=$(cluster_port "$1") PGUSER=postgres PGDATABASE=postgres; }

# Start an existing (stopped or crashed) cluster again on its port, with
# the options it was started with (cluster_start, cluster_launch) unless
# others are given.
cluster_restart() {
	local name=$1 dir options
	shift
	dir=$(cluster_dir "$name")
	options=${*:-$(cat "$dir/options" 2>/dev/null || true)}
	as_server_user "$LEDGER_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 \
		-o "-p $(cluster_port "$name") -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir $options" \
		start >/dev/null
}

# Stop cluster NAME: fast shutdown by pid, SIGKILL if it will not go.
cluster_stop() {
	local name=$1 pid i
	pid=$(cluster_pid "$name") || true
	[ -n "$pid" ] || return 0
	kill -INT "$pid" 2>/dev/null || return 0
	for i in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "cluster $name did not stop; killing pid $pid"
	kill -KILL "$pid" 2>/dev/null || true
}

# cluster_ghost_standby NAME: from now on every commit that writes on cluster
# NAME waits for a synchronous standby ("ghost") that never connects.
# Returns once a probe commit was seen waiting (a reload reaches the
# backends asynchronously); the probe is then cancelled, which leaves it
# committed locally.  Points the PG* variables at NAME.
cluster_ghost_standby() {
	local name=$1 attempt i client waiting
	cluster_use "$name"
	psql_q -c 'CREATE TABLE IF NOT EXISTS ghost_probe (x int)' \
		-c "ALTER SYSTEM SET synchronous_standby_names = 'ghost'" -c 'SELECT pg_reload_conf()' >/dev/null
	for attempt in $(seq 1 10); do
		PGAPPNAME=ghost_probe timeout 60 "$LEDGER_PG_BIN/psql" -X -q \
			-c 'INSERT INTO ghost_probe VALUES (1)' >/dev/null 2>&1 &
		client=$!
		waiting=""
		for i in $(seq 1 50); do
			waiting=$(psql_q -c "SELECT pid FROM pg_stat_activity
			                      WHERE application_name = 'ghost_probe' AND wait_event = 'SyncRep'")
			[ -n "$waiting" ] && break
			kill -0 "$client" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$waiting" ] && psql_q -c "SELECT pg_cancel_backend($waiting)" >/dev/null
		wait "$client" || true
		[ -n "$waiting" ] && return 0
	done
	echo "cluster $name: synchronous_standby_names never took effect" >&2
	return 1
}

# Kill the postmaster and all its children at once with SIGKILL, as a
# machine crash would: nothing gets a chance to flush.
cluster_crash() {
	local name=$1 pid children
	pid=$(cluster_pid "$name")
	children=$(children_of "$pid")
	kill -KILL "$pid" $children 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	for child in $children; do
		while kill -0 "$child" 2>/dev/null; do sleep 0.05; done
	done
}

# Pids whose parent is $1, read from /proc (procps may not be installed).
children_of() {
	local parent=$1 stat line fields
	for stat in /proc/[0-9]*/stat; do
		read -r line <"$stat" 2>/dev/null || continue
		fields=(${line##*) })
		if [ "${fields[1]}" = "$parent" ]; then
			stat=${stat#/proc/}
			echo "${stat%/stat}"
		fi
	done
}

# reap_lost_client PID ERRFILE: wait (10 s at most) for a test client whose
# server was killed; it must exit 0, meaning "connection lost".  On failure
# prints ERRFILE and why, and returns 1.
reap_lost_client() {
	local pid=$1 errfile=$2 status=0
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "it did not exit after its server was killed" >&2
		return 1
	fi
	wait "$pid" || status=$?
	if [ "$status" -ne 0 ]; then
		cat "$errfile" >&2
		echo "it exited with status $status" >&2
		return 1
	fi
}

# pgbouncer_start NAME MODE SIZE USER...: pgbouncer in front of the cluster
# PGPORT points at, as the server user, on a free loopback port: every
# database, pool_mode MODE, SIZE server connections per database and user,
# the USERs may log in without a password (trust, like the cluster), and
# postgres may use its console (database pgbouncer).  Sets BOUNCER_PORT;
# stopped by its pid when the calling script exits.
pgbouncer_start() {
	local name=$1 mode=$2 size=$3 dir attempt user
	shift 3
	dir=$LEDGER_TMP/$name
	mkdir -p "$dir"
	: >"$dir/users.txt"
	for user in postgres "$@"; do
		echo "\"$user\" \"\"" >>"$dir/users.txt"
	done
	[ "$(id -u)" -eq 0 ] && chown -R "$LEDGER_TEST_USER" "$dir"
	for attempt in $(seq 1 20); do
		BOUNCER_PORT=$(( 20000 + (RANDOM % 20000) ))
		port_is_free "$BOUNCER_PORT" || continue
		cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$PGPORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
admin_users = postgres
pool_mode = $mode
default_pool_size = $size
max_client_conn = 200
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
		if as_server_user pgbouncer -d "$dir/pgbouncer.ini" 2>>"$dir/start.err"; then
			LEDGER_BOUNCERS="$LEDGER_BOUNCERS $name"
			for _ in $(seq 1 100); do
				"$LEDGER_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$BOUNCER_PORT" -d pgbouncer &&
					break
				sleep 0.05
			done
			log "pgbouncer $name ($mode, $size per pool) on 127.0.0.1:$BOUNCER_PORT"
			return 0
		fi
	done
	cat "$dir/start.err" "$dir/pgbouncer.log" >&2 2>/dev/null || true
	return 1
}

# Stop pgbouncer NAME by the pid in its pidfile.
pgbouncer_stop() {
	local pid i
	pid=$(cat "$LEDGER_TMP/$1/pgbouncer.pid" 2>/dev/null) || return 0
	kill -INT "$pid" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
}

ledger_cleanup() {
	local name
	for name in $LEDGER_BOUNCERS; do
		pgbouncer_stop "$name" || true
	done
	for name in $LEDGER_CLUSTERS; do
		cluster_stop "$name" || true
	done
	if [ -n "$LEDGER_TMP" ] && [ -z "${LEDGER_KEEP_TMP:-}" ]; then
		rm -rf "$LEDGER_TMP"
	fi
}

psql_q() { "$LEDGER_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# ledger_table_rows DB FILE: every row of every ledger table, each table in
# its key order, into FILE -- for comparing two copies of one ledger.
LEDGER_TABLES="accounts:account_id entries:entry_id transfers:transfer_id
idempotency_keys:idempotency_key holds:hold_id hold_ends:hold_id pending_holds:hold_id
transfers_out:transfer_id"
ledger_table_rows() {
	local db=$1 file=$2 table
	: >"$file"
	for table in $LEDGER_TABLES; do
		echo "-- ${table%%:*}" >>"$file"
		psql_q -d "$db" -c "COPY (SELECT * FROM ledger.${table%%:*} ORDER BY ${table##*:}) TO STDOUT" >>"$file"
	done
}
