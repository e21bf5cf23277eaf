#!/usr/bin/env bash
# test/cron.sh: the expiry sweep scheduled with pg_cron (ARCHITECTURE §7,
# "Sweep"; Debian package postgresql-15-cron, pg_cron 1.4).
#
# Expiry is data: a hold stops reserving at its expires_at whether or not
# a sweep ran; ledger_expire_holds() only records what already happened.
# This test runs the README's recipe against a throwaway cluster and
# proves that the schedule records the expiries:
#
#   postgresql.conf (then a restart):
#     shared_preload_libraries = 'pg_cron'
#     cron.database_name = '<the database with the ledger>'
#     cron.use_background_workers = on
#   in that database:
#     CREATE EXTENSION pg_cron;
#     CREATE ROLE ledger_sweeper LOGIN;   -- no password: nobody logs in as it
#     GRANT EXECUTE ON FUNCTION ledger_expire_holds() TO ledger_sweeper;
#     GRANT USAGE ON SCHEMA cron TO ledger_sweeper;
#     -- as ledger_sweeper (SET ROLE, or connected as it):
#     SELECT cron.schedule('ledger-expire-holds', '* * * * *', 'SELECT ledger_expire_holds()');
#
# Least privilege: the job runs as the role that scheduled it (cron.job's
# username), and that role may execute exactly one function of the
# ledger, the sweep, and nothing else of it (checked below).  pg_cron 1.4
# cannot run a job as a NOLOGIN role (its worker refuses: "role ... is not
# permitted to log in"), so the role has LOGIN but no password.  With
# cron.use_background_workers = on the job runs in a background worker,
# with no connection and no authentication, so no pg_hba.conf entry lets
# anyone in as it; without it, pg_cron connects through libpq to
# cron.host (default localhost) and pg_hba.conf must let that role in
# without a password.  pg_cron's schedules have minute granularity: the
# job runs at the start of the next minute.
#
# How: holds that expire in a second (and, as controls, one that never
# expires and one for an hour); once they expired, ledger_holds() reads
# them as "expired" but nothing is recorded yet (ledger.hold_ends is
# empty); the sweep is scheduled every minute as ledger_sweeper; the test
# waits (at most CRON_WAIT s, default 90) for cron.job_run_details to show
# the run, which must have succeeded as ledger_sweeper; then the expired
# holds are recorded in ledger.hold_ends with status 'expired', the
# controls are still pending, a sweep by hand finds nothing left, and
# ledger_verify() is empty.
#
# CRON_BREAK=grant (the role is not granted EXECUTE on the sweep) or
# CRON_BREAK=command (the job runs SELECT 1 instead of the sweep) break it
# on purpose: the run must then FAIL.
source "$(dirname "$0")/lib.sh"

DB=ledger_cron
WAIT=${CRON_WAIT:-90}
BREAK=${CRON_BREAK:-}

die() {
	echo "cron: FAIL: $*" >&2
	exit 1
}

case "$BREAK" in
	''|grant|command) ;;
	*) die "CRON_BREAK must be grant or command" ;;
esac
[[ "$WAIT" =~ ^[1-9][0-9]*$ ]] || die "CRON_WAIT must be a positive integer"

ledger_require_packages
[ -f "$("$LEDGER_PG_BIN/pg_config" --pkglibdir)/pg_cron.so" ] ||
	die "pg_cron is not installed (package postgresql-$LEDGER_PG_MAJOR-cron)"

# pg_cron must be preloaded, and its launcher connects to
# cron.database_name at start: create the database, configure, restart.
cluster_start cron
psql_q -c "CREATE DATABASE $DB"
cluster_stop cron
cat >>"$(cluster_dir cron)/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DB'
cron.use_background_workers = on
CONF
cluster_restart cron
export PGDATABASE=$DB
log_file=$(cluster_dir cron)/server.log
for _ in $(seq 1 100); do
	grep -q "pg_cron scheduler started" "$log_file" && break
	sleep 0.1
done
grep -q "pg_cron scheduler started" "$log_file" || die "the pg_cron scheduler did not start"
[ "$(psql_q -c 'SHOW shared_preload_libraries')" = pg_cron ] || die "pg_cron is not preloaded"

psql_q >/dev/null <<'SQL'
CREATE EXTENSION pg_cron;
CREATE EXTENSION ledger;
CREATE ROLE ledger_sweeper LOGIN;
GRANT EXECUTE ON FUNCTION ledger_expire_holds() TO ledger_sweeper;
GRANT USAGE ON SCHEMA cron TO ledger_sweeper;
SQL
if [ "$BREAK" = grant ]; then
	echo "cron: CRON_BREAK=grant: the sweeper role is not granted the sweep; must FAIL" >&2
	psql_q -c 'REVOKE EXECUTE ON FUNCTION ledger_expire_holds() FROM ledger_sweeper'
fi

# Least privilege: of the ledger's functions the role may execute the sweep only.
granted=$(psql_q -c "SELECT string_agg(p.proname, ',' ORDER BY p.proname)
	FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	 AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'ledger'
	WHERE has_function_privilege('ledger_sweeper', p.oid, 'EXECUTE')")
[ "$BREAK" = grant ] || [ "$granted" = ledger_expire_holds ] ||
	die "ledger_sweeper may execute '$granted', not exactly ledger_expire_holds"
[ "$(psql_q -c "SELECT has_schema_privilege('ledger_sweeper', 'ledger', 'USAGE')")" = f ] ||
	die "ledger_sweeper may use schema ledger"

# Holds: three that expire in a second, and two controls.
psql_q >/dev/null <<'SQL'
SELECT ledger_open_account('alice');
SELECT ledger_credit('alice', 1000);
SELECT ledger_hold('alice', 100, '1 second');
SELECT ledger_hold('alice', 200, '1 second', 'cron-hold');
SELECT ledger_hold('alice', 300, '1 second');
SELECT ledger_hold('alice', 50);
SELECT ledger_hold('alice', 25, '1 hour');
SQL
sleep 1.2

# Expired before any sweep: they read "expired" and reserve nothing, but
# nothing is recorded yet.
state=$(psql_q -c "SELECT string_agg(status, ',' ORDER BY hold_id) FROM ledger_holds('alice')")
[ "$state" = expired,expired,expired,pending,pending ] ||
	die "before the sweep ledger_holds() reads '$state'"
[ "$(psql_q -c 'SELECT count(*) FROM ledger.hold_ends')" = 0 ] ||
	die "expiries were recorded before any sweep"
[ "$(psql_q -c "SELECT ledger_available('alice')")" = 925 ] ||
	die "the expired holds still reserve: available is not 1000 - 50 - 25"

command="SELECT ledger_expire_holds()"
if [ "$BREAK" = command ]; then
	echo "cron: CRON_BREAK=command: the job runs SELECT 1; must FAIL" >&2
	command="SELECT 1"
fi
jobid=$(psql_q -c "SET ROLE ledger_sweeper" \
	-c "SELECT cron.schedule('ledger-expire-holds', '* * * * *', '$command')")
[[ "$jobid" =~ ^[0-9]+$ ]] || die "cron.schedule returned '$jobid'"
[ "$(psql_q -c "SELECT username FROM cron.job WHERE jobid = $jobid")" = ledger_sweeper ] ||
	die "the job does not run as ledger_sweeper"
log "job $jobid scheduled at $(date -u +%H:%M:%S) as ledger_sweeper: '* * * * *' $command;" \
	"waiting for its first run (at most $WAIT s)"

run=""
for _ in $(seq 1 "$WAIT"); do
	run=$(psql_q -F '|' -c "SELECT status, username, return_message FROM cron.job_run_details
		WHERE jobid = $jobid AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1")
	[ -n "$run" ] && break
	sleep 1
done
[ -n "$run" ] || die "no run of job $jobid finished within $WAIT s (cron.job_run_details:
$(psql_q -c "SELECT * FROM cron.job_run_details"))"
IFS='|' read -r status username message <<<"$run"
log "first run: $status as $username: $message"
[ "$status" = succeeded ] || die "the job's run $status: $message"
[ "$username" = ledger_sweeper ] || die "the job ran as $username"

# The expiries are recorded, once; the controls are still pending.
recorded=$(psql_q -c "SELECT string_agg(h.amount || ':' || coalesce(e.status, 'none'), ',' ORDER BY h.hold_id)
	FROM ledger.holds h LEFT JOIN ledger.hold_ends e USING (hold_id)")
[ "$recorded" = 100:expired,200:expired,300:expired,50:none,25:none ] ||
	die "after the scheduled sweep the hold ends are '$recorded'"
[ "$(psql_q -c 'SELECT count(*) FROM ledger.pending_holds')" = 2 ] ||
	die "the pending holds are not exactly the two controls"
state=$(psql_q -c "SELECT string_agg(status, ',' ORDER BY hold_id) FROM ledger_holds('alice')")
[ "$state" = expired,expired,expired,pending,pending ] ||
	die "after the sweep ledger_holds() reads '$state'"
[ "$(psql_q -c 'SELECT ledger_expire_holds()')" = 0 ] ||
	die "a sweep by hand still found expired holds"
[ "$(psql_q -c 'SELECT count(*) FROM ledger_verify()')" = 0 ] || die "ledger_verify() is not empty"
psql_q -c "SELECT cron.unschedule($jobid)" >/dev/null
cluster_stop cron
echo "cron: pg_cron ran ledger_expire_holds() as ledger_sweeper (granted only the sweep): 3 expired holds recorded, 2 others still pending, ledger_verify() empty; OK"
