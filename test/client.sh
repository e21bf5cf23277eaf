#!/usr/bin/env bash
# The client suite: libledger and the `pg_ledger` CLI against throwaway clusters.
#
#   C tests      client/test/test_client.c: every status, the lost reply
#                (an in-process TCP proxy), pg_terminate_backend, 40001
#                retries, 16 threads on one account, pipeline batches,
#                server batches (ledger_post_batch);
#                client/test/test_outcomes.c: commit failures, a lost reply
#                then a statement timeout, SERIALIZABLE batches beside
#                audits, cancelled standby waits, ledger_set_timeout;
#                client/test/test_holds.c: holds, capture, release, every
#                status, lost replies, balance_at, history paging
#   valgrind     the C tests and the CLI, --leak-check=full
#   install      make install into a temp prefix; the exported symbols and
#                their version nodes; a program needing 1.2 refuses to
#                start on a 1.0 library; the README's example compiled
#                with pkg-config and run
#   CLI          every subcommand, --help, --json, --key replay, every
#                reachable exit status; holds: authorise, capture, release,
#                expiry, holds (escaped), balance --at, history --before,
#                a lost reply to a hold and to a capture; mode, and an escrow
#                history line not folded yet
#
# Needs the extension installed (builds and installs it if it is not).
# Ends with one line "client: N passed, N failed"; exits non-zero on failure.
source "$(dirname "$0")/lib.sh"

CLIENT=$LEDGER_ROOT/client
passed=0
failed=0
failures=""

pass() { passed=$((passed + 1)); }
fail() {
	failed=$((failed + 1))
	failures="$failures
  $1"
	echo "not ok - $1" >&2
}

ledger_require_packages valgrind pkgconf
[ -f "$("$LEDGER_PG_BIN/pg_config" --sharedir)/extension/ledger.control" ] || ledger_build_install

log "building the client library, the CLI and the C tests"
make -s -C "$CLIENT" PG_CONFIG="$LEDGER_PG_BIN/pg_config" all test_client abi >/dev/null

# --- clusters -------------------------------------------------------------
# fsync = off: postings are refused with 55000
cluster_start nofsync -c fsync=off
for db in clientc clientv clientcli; do
	psql_q -c "CREATE DATABASE $db"
	psql_q -d "$db" -c 'CREATE EXTENSION ledger'
done
FSYNC_OFF_PORT=$(cluster_port nofsync)

# a synchronous standby that never comes: commits that write wait forever
cluster_start syncrep
for db in clientc clientv; do
	psql_q -c "CREATE DATABASE $db"
	psql_q -d "$db" -c 'CREATE EXTENSION ledger' \
		-c "SELECT ledger_open_account('sr-bank', 'EUR', NULL), ledger_open_account('sr', 'EUR')" \
		-c "SELECT ledger_transfer('sr-bank', 'sr', 1000000)" >/dev/null
done
cluster_ghost_standby syncrep
SYNCREP_PORT=$(cluster_port syncrep)

cluster_start client -c max_connections=60 -c shared_preload_libraries=ledger
psql_q -c 'CREATE ROLE ledger_app LOGIN' -c 'CREATE ROLE ledger_nogrant LOGIN'
for db in clientc clientv clientcli clientex; do
	psql_q -c "CREATE DATABASE $db"
	psql_q -d "$db" -c 'CREATE EXTENSION ledger' -c "GRANT EXECUTE ON FUNCTION
		ledger_open_account(text, text, bigint), ledger_credit(text, bigint, text),
		ledger_debit(text, bigint, text), ledger_transfer(text, text, bigint, text),
		ledger_balance(text), ledger_history(text, int, bigint), ledger_verify(),
		ledger_debit_batch(text[], bigint[], text[]),
		ledger_transfer_batch(text[], text[], bigint[], text[]),
		ledger_hold(text, bigint, interval, text), ledger_capture(bigint, bigint, text),
		ledger_release(bigint), ledger_available(text), ledger_holds(text, int),
		ledger_balance_at(text, timestamptz), ledger_account_mode(text)
		TO ledger_app"
done

# A database whose owner is not a superuser and lays traps for unqualified
# calls: its search_path leads to a schema of its own, and a schema named
# after the application role comes first for that role ("$user").
psql_q -c 'CREATE ROLE hostile_owner LOGIN' -c 'CREATE DATABASE clienthostile OWNER hostile_owner'
psql_q -d clienthostile -c 'CREATE EXTENSION ledger' -c "GRANT EXECUTE ON FUNCTION
		ledger_debit(text, bigint, text), ledger_balance(text),
		ledger_debit_batch(text[], bigint[], text[]), ledger_available(text),
		ledger_balance_at(text, timestamptz) TO ledger_app" \
	-c "SELECT ledger_open_account('victim', 'EUR'), ledger_open_account('src', 'EUR', NULL)" \
	-c "SELECT ledger_transfer('src', 'victim', 100)" >/dev/null
for schema in evil ledger_app; do
	psql_q -d clienthostile -U hostile_owner -c "CREATE SCHEMA $schema" \
		-c "GRANT USAGE ON SCHEMA $schema TO PUBLIC" \
		-c "CREATE FUNCTION $schema.ledger_debit(text, bigint, text DEFAULT NULL) RETURNS bigint
			LANGUAGE sql AS 'SELECT 424242::bigint'" \
		-c "CREATE FUNCTION $schema.ledger_balance(text) RETURNS bigint
			LANGUAGE sql AS 'SELECT 424242::bigint'" \
		-c "CREATE FUNCTION $schema.ledger_available(text) RETURNS bigint
			LANGUAGE sql AS 'SELECT 424242::bigint'" \
		-c "CREATE FUNCTION $schema.ledger_balance_at(text, timestamptz) RETURNS bigint
			LANGUAGE sql AS 'SELECT 424242::bigint'" \
		-c "CREATE FUNCTION $schema.ledger_debit_batch(text[], bigint[], text[] DEFAULT NULL)
			RETURNS TABLE(ordinal int, status text, result bigint)
			LANGUAGE sql AS \$\$SELECT 1, 'ok', 424242::bigint\$\$" >/dev/null
done
psql_q -d clienthostile -U hostile_owner \
	-c 'ALTER DATABASE clienthostile SET search_path = evil, "$user", public' >/dev/null

# --- C tests ----------------------------------------------------------------
# run_c_tests DB [wrapper...]: one result per TAP line
run_c_tests() {
	local db=$1 out status line
	shift
	out=$LEDGER_TMP/test_client.$db.out
	set +e
	LEDGER_TEST_DB=$db LEDGER_TEST_FSYNC_OFF_PORT=$FSYNC_OFF_PORT \
		LEDGER_TEST_SYNCREP_PORT=$SYNCREP_PORT LEDGER_TEST_HOSTILE_DB=clienthostile \
		"$@" "$CLIENT/test_client" >"$out" 2>"$out.err"
	status=$?
	set -e
	C_STATUS=$status
	C_OUT=$out
}

log "C tests"
run_c_tests clientc
cat "$C_OUT"
while IFS= read -r line; do
	case "$line" in
		"ok "*) pass ;;
		"not ok "*) fail "C: ${line#not ok }" ;;
	esac
done <"$C_OUT"
if [ "$C_STATUS" -ne 0 ] && ! grep -q '^not ok' "$C_OUT"; then
	cat "$C_OUT.err" >&2
	fail "C tests exited with $C_STATUS"
fi

log "C tests under valgrind"
run_c_tests clientv valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
	--log-file="$LEDGER_TMP/valgrind.%p.log"
if [ "$C_STATUS" -eq 0 ] && ! grep -q '^not ok' "$C_OUT"; then
	pass
	echo "ok - valgrind: test_client is clean ($(grep -c '^ok' "$C_OUT") checks)"
else
	cat "$C_OUT.err" "$LEDGER_TMP"/valgrind.*.log >&2 || true
	grep '^not ok' "$C_OUT" >&2 || true
	fail "valgrind: test_client (exit $C_STATUS)"
fi

# --- install, pkg-config, the example -----------------------------------------
log "install into a temp prefix; build the example with pkg-config"
PREFIX=$LEDGER_TMP/prefix
make -s -C "$CLIENT" PG_CONFIG="$LEDGER_PG_BIN/pg_config" install PREFIX="$PREFIX" >/dev/null
# make install regenerated ledger.pc for that prefix; restore the default
make -s -C "$CLIENT" PG_CONFIG="$LEDGER_PG_BIN/pg_config" ledger.pc >/dev/null

check() {	# check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then pass; echo "ok - $what"; else fail "$what"; fi
}

for f in include/ledger.h lib/libledger.a lib/libledger.so lib/libledger.so.1 \
	lib/pkgconfig/ledger.pc bin/pg_ledger; do
	check "installed $f" test -e "$PREFIX/$f"
done
soname=$(objdump -p "$PREFIX/lib/libledger.so" 2>/dev/null | awk '/SONAME/ {print $2}') ||
	soname=$(readelf -d "$PREFIX/lib/libledger.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
check "SONAME is libledger.so.1 ($soname)" test "$soname" = libledger.so.1
exported=$(nm -D --defined-only "$PREFIX/lib/libledger.so" | awk '$2 == "T" {print $3}')
check "the shared library exports only ledger_* symbols" \
	test -z "$(echo "$exported" | sed 's/@.*//' | grep -v '^ledger_' || true)"
check "every symbol in exports.txt is exported, in the version node it names" \
	test "$(awk '!/^#/ && NF >= 2 {print $1 "@" $2}' "$CLIENT/exports.txt" | sort)" = \
	"$(echo "$exported" | sed 's/@@*/@/' | sort)"
check "the static library defines nothing outside ledger_*" \
	test -z "$(nm -g --defined-only "$PREFIX/lib/libledger.a" | awk 'NF == 3 {print $3}' | grep -v '^ledger_' || true)"
version=$(sed -n 's/^#define LEDGER_VERSION_\(MAJOR\|MINOR\|PATCH\)[[:space:]]*\([0-9]*\).*/\2/p' \
	"$CLIENT/ledger.h" | paste -sd.)
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
check "pkg-config --modversion ledger is $version (ledger.h)" test "$(pkg-config --modversion ledger)" = "$version"

# abi_app_1_N calls one function of release 1.N (client/Makefile, abi).
abi_run() {	# abi_run APP LIBDIR: its output, "exit N" last
	local out status=0
	out=$(LD_LIBRARY_PATH=$2 "$CLIENT/$1" 2>&1) || status=$?
	printf '%s\nexit %s' "$out" "$status"
}
out=$(abi_run abi_app_1_2 "$CLIENT/abi/1.0")
check "a program using 1.2 does not start on a 1.0 library: $(echo "$out" | head -n 1)" \
	test "$(echo "$out" | grep -c "version \`LEDGER_1.2' not found")$(echo "$out" | grep -c '^ran$')" = 10
out=$(abi_run abi_app_1_2 "$CLIENT")
check "it runs on this library" test "$(echo "$out" | head -n 1)" = ran
out=$(abi_run abi_app_1_0 "$CLIENT/abi/1.0")
check "a program using only 1.0 calls runs on a 1.0 library" test "$(echo "$out" | head -n 1)" = ran
out=$(abi_run abi_app_1_1 "$CLIENT")
check "a program linked against 1.1.0 (ledger_post_batch in LEDGER_1) runs on this library" \
	test "$(echo $out)" = "ran client_error exit 0"
set +e
cc -std=c99 -Wall -Wextra -Werror -o "$LEDGER_TMP/example" "$CLIENT/example.c" \
	$(pkg-config --cflags --libs ledger)
status=$?
set -e
check "example.c compiles with \$(pkg-config --cflags --libs ledger)" test "$status" -eq 0
if [ "$status" -eq 0 ]; then
	check "the example links the installed libledger.so.1" \
		grep -q "$PREFIX/lib/libledger.so.1" <(LD_LIBRARY_PATH=$PREFIX/lib ldd "$LEDGER_TMP/example")
	out=$(LD_LIBRARY_PATH=$PREFIX/lib "$LEDGER_TMP/example" "dbname=clientex" 2>&1) || true
	check "example run 1: balance 750 ($out)" test "$out" = "balance 750"
	out=$(PGDATABASE=clientex LD_LIBRARY_PATH=$PREFIX/lib "$LEDGER_TMP/example" 2>&1) || true
	check "example run 2 (PG* environment): balance 500 ($out)" test "$out" = "balance 500"
fi
check "installed CLI runs" "$PREFIX/bin/pg_ledger" --version
# the example printed in the README is the one compiled here
for readme in "$CLIENT/README.md" "$LEDGER_ROOT/README.md"; do
	grep -q '^/\* example.c:' "$readme" || continue
	check "the example in ${readme#"$LEDGER_ROOT"/} is client/example.c" \
		diff <(awk '/^\/\* example.c:/ {p = 1} p {print} p && /^}$/ {exit}' "$readme") "$CLIENT/example.c"
done
unset PKG_CONFIG_PATH

# --- CLI ------------------------------------------------------------------------
log "CLI"
LEDGER_CLI=$CLIENT/pg_ledger
export PGDATABASE=clientcli
# From here on a failed check is counted and the next one runs: with errexit
# the first failing `cli` outside an && list would end the suite before its
# summary.  The suite's exit status still comes from the count at the end.
set +e

# cli EXPECTED_EXIT DESCRIPTION ARGS...: run ledger; output in $OUT / $ERR
cli() {
	local want=$1 what=$2 got
	shift 2
	"$LEDGER_CLI" "$@" >"$LEDGER_TMP/cli.out" 2>"$LEDGER_TMP/cli.err"
	got=$?
	OUT=$(cat "$LEDGER_TMP/cli.out")
	ERR=$(cat "$LEDGER_TMP/cli.err")
	if [ "$got" -eq "$want" ]; then
		pass
		echo "ok - cli: $what (exit $got)"
		return 0
	fi
	fail "cli: $what: exit $got, want $want; stdout: $OUT; stderr: $ERR"
	return 1
}
# expect DESCRIPTION PATTERN TEXT: TEXT contains PATTERN (fixed string)
expect() {
	if printf '%s' "$3" | grep -qF -- "$2"; then
		pass
		echo "ok - cli: $1"
	else
		fail "cli: $1: '$2' not in: $3"
	fi
}
# json_one DESCRIPTION TEXT: TEXT is exactly one JSON object (json.load
# refuses trailing data); skipped when there is no python3
if command -v python3 >/dev/null 2>&1; then
	have_python=1
else
	have_python=""
	log "no python3: the JSON parse checks are skipped"
fi
json_one() {
	[ -n "$have_python" ] || return 0
	check "cli: $1: stdout is one JSON object" python3 -c \
		'import json, sys; sys.exit(not isinstance(json.load(sys.stdin), dict))' <<<"$2"
}
# usage_json DESCRIPTION ARGS...: a usage error reported as one JSON object
# on stdout, and nothing on stderr
usage_json() {
	local what=$1
	shift
	cli 2 "$what" "$@" || return 0
	check "cli: $what: stdout starts with {\"status\":\"usage_error\"" \
		test "${OUT:0:23}" = '{"status":"usage_error"'
	expect "$what: the exit code is in the object" '"exit_code":2,"message":"' "$OUT"
	check "cli: $what: nothing on stderr ($ERR)" test -z "$ERR"
	json_one "$what" "$OUT"
}
# a port nothing listens on: a command that connects there exits 22
closed=$(( $(cluster_port client) + 1 ))
port_is_free "$closed" || closed=1
tab=$(printf '\t')

cli 0 "--help" --help && expect "--help lists the exit statuses" "23  unknown_outcome" "$OUT"
expect "--help: exit 2" "2  usage error (nothing was sent)" "$OUT"
expect "--help: --timeout" "--timeout SECONDS" "$OUT"
expect "--help: amounts are digits" "ASCII digits only" "$OUT"
expect "--help: the retry advice" "may post twice" "$OUT"
cli 0 "debit --help" debit --help && expect "debit --help: digits" "digits only" "$OUT"
expect "debit --help: --timeout" "--timeout SECONDS" "$OUT"
expect "--help lists exit 25" "25  hold_not_found" "$OUT"
expect "--help lists exit 26" "26  hold_not_pending" "$OUT"
for cmd in open credit debit transfer balance history verify batch-debit hold capture release \
	available holds mode; do
	cli 0 "$cmd --help" "$cmd" --help && expect "$cmd --help" "Usage: pg_ledger $cmd" "$OUT"
done
cli 0 "--version" --version
cli 2 "no command"
cli 2 "unknown command" frobnicate
cli 2 "missing argument" debit alice
cli 2 "amount not a number" debit alice ten
cli 2 "--key on a read" balance alice --key k
cli 2 "--retries 0" --retries 0 balance alice
cli 2 "unknown option" balance alice --frob
cli 2 "option without its value" balance alice --limit
check "cli: usage errors without --json: nothing on stdout" test -z "$OUT"
expect "usage errors without --json: on stderr" 'option --limit needs a value' "$ERR"

# with --json every usage error is one JSON object, wherever --json is
usage_json "--json: unknown option" --json balance alice --frob
usage_json "--json after the unknown option" balance alice --frob --json
usage_json "--json: unknown command" frobnicate --json
usage_json "--json: no command" --json
usage_json "--json: missing argument" --json debit alice
usage_json "--json: option without its value" --json balance alice --limit
usage_json "--json: bad amount" debit alice +5 --json
usage_json "--json: bad batch item" --json batch-debit alice:1 bob
usage_json "--json: --key on a read" --json balance alice --key k
cli 2 "--json after -- is an argument, not the option" debit -- alice --json &&
	check "cli: ... so the error is plain text" test -z "$OUT"
cli 2 "--key --json: --json is the key" --key --json balance alice &&
	check "cli: ... so the error is plain text" test -z "$OUT"
cli 0 "--json --help" --json --help && expect "json help" '{"status":"ok","help":"pg_ledger: ' "$OUT"
json_one "--json --help" "$OUT"
cli 0 "--json --version" --version --json && expect "json version" '{"status":"ok","version":"' "$OUT"

# AMOUNT is exactly ASCII digits within int64; --limit and --min-balance an
# optional '-' and digits; all refused before anything is sent
for amount in -5 +5 ' 5' '5 ' 0x10 1e3 '' 99999999999999999999 9223372036854775808; do
	cli 2 "debit amount \"$amount\"" debit alice "$amount"
done
cli 2 "credit amount +5" credit alice +5
cli 2 "transfer amount ' 5'" transfer bank alice ' 5'
cli 2 "batch-debit amount +5" batch-debit alice:1 alice:+5
cli 2 "batch-debit amount ' 5'" batch-debit 'alice: 5'
cli 2 "batch-debit amount overflow" batch-debit alice:99999999999999999999
cli 2 "a bad amount is refused before connecting (no exit 22)" \
	-d "host=127.0.0.1 port=$closed" --retries 1 debit alice +5
for limit in ' 5' +5 5x -- -; do
	cli 2 "--limit \"$limit\"" history alice --limit="$limit"
done
cli 2 "--limit beyond int32" history alice --limit 2147483648
for floor in ' -5' +0 -5x -- 99999999999999999999; do
	cli 2 "--min-balance \"$floor\"" open x --min-balance="$floor"
done
cli 2 "--retries ' 2'" --retries ' 2' balance alice
for timeout in abc -1 ' 5' +5 86401; do
	cli 2 "--timeout \"$timeout\"" --timeout "$timeout" balance alice
done

cli 0 "open alice" open alice --currency EUR && expect "open prints the id" "1" "$OUT"
cli 0 "open alice again: same id" open alice --currency EUR && expect "same id" "1" "$OUT"
cli 0 "open bank without a floor" open bank --currency EUR --no-floor
cli 0 "open an account with an overdraft" -d "dbname=clientcli" open over --currency EUR --min-balance -500
cli 0 "open usd" open usd --currency USD
cli 0 "transfer" transfer bank alice 10000 --key deposit-1
tid=$OUT
cli 0 "transfer replayed" transfer bank alice 10000 --key=deposit-1 &&
	expect "transfer replay: same id" "$tid" "$OUT"
cli 0 "debit" debit alice 2500 --key coffee-42 && expect "debit prints the balance" "7500" "$OUT"
cli 0 "debit replayed with --key" debit alice 2500 --key coffee-42 && expect "replay: 7500 again" "7500" "$OUT"
cli 0 "balance" balance alice && expect "applied once" "7500" "$OUT"
cli 0 "--timeout 5" --timeout 5 balance alice && expect "balance with --timeout" "7500" "$OUT"
cli 0 "--timeout=0 (no bound)" balance alice --timeout=0 && expect "balance with --timeout=0" "7500" "$OUT"
cli 0 "--json debit replay" --json debit alice 2500 --key coffee-42 &&
	expect "json ok" '{"status":"ok","account":"alice","amount":2500,"balance":7500,"key":"coffee-42","attempts":1}' "$OUT"
cli 0 "credit without a key" credit alice 100 && expect "credit" "7600" "$OUT"
cli 0 "--json credit: a generated key" credit alice 100 --json &&
	expect "json has a 32-digit key" '"key":"' "$OUT"
cli 0 "--json balance" --json balance alice &&
	expect "json balance" '{"status":"ok","account":"alice","balance":7700,"attempts":1}' "$OUT"
cli 0 "--json transfer" --json transfer bank alice 1 --key t-2 &&
	expect "json transfer" '"from":"bank","to":"alice","amount":1,"transfer_id":' "$OUT"
cli 0 "history" history alice --limit 2 &&
	check "cli: history --limit 2 prints 2 lines" test "$(printf '%s\n' "$OUT" | wc -l)" -eq 2
expect "history line: the transfer with its key" "t-2" "$OUT"
cli 0 "--json history" --json history alice &&
	expect "json history" '"idempotency_key":"coffee-42"' "$OUT"
expect "json history entries" '"entries":[{"entry_id":' "$OUT"
cli 0 "verify" verify && expect "verify prints ok" "ok" "$OUT"
cli 0 "--json verify" --json verify && expect "json verify" '{"status":"ok","problems":[]}' "$OUT"
cli 0 "odd account name" open 'quote"back\slash' --json &&
	expect "json escapes the name" '"account":"quote\"back\\slash"' "$OUT"
cli 0 "UTF-8 account name" open 'café' --currency EUR --json &&
	expect "json: UTF-8 passes through" '"account":"café"' "$OUT"
# the database is UTF-8: the server refuses these bytes (22021), and the
# JSON names the account with each stray byte as \udcXX
cli 21 "invalid UTF-8 in a name" --json open $'bad\xffname\xc3\x28' &&
	expect "json: the server's SQLSTATE" '"sqlstate":"22021"' "$OUT"
expect "json: stray bytes as \\udcXX" '"account":"bad\udcffname\udcc3("' "$OUT"
json_one "invalid UTF-8 in a name" "$OUT"

# user data in plain-text lines is escaped: a key with a tab, a newline, a
# backslash and a control byte stays one field of one line
cli 0 "credit with a key holding a tab and a newline" credit alice 1 --key $'tab\there\nnl\\bs\x01'
cli 0 "history shows that key" history alice --limit 1 &&
	check "cli: history: still one line" test "$(printf '%s\n' "$OUT" | wc -l)" -eq 1
check "cli: history: still six fields" test "$(printf '%s\n' "$OUT" | awk -F'\t' '{print NF}')" -eq 6
expect "history escapes the key" "${tab}"'tab\there\nnl\\bs\x01'"${tab}" "$OUT"
cli 0 "--json history shows that key" --json history alice --limit 1 &&
	expect "json escapes the key" '"idempotency_key":"tab\there\nnl\\bs\u0001"' "$OUT"
json_one "--json history" "$OUT"
cli 0 "debit to undo that credit" debit alice 1

# batch-debit: one server batch (ledger_post_batch), one line per item
before=$("$LEDGER_CLI" balance alice)
cli 0 "batch-debit" batch-debit alice:100 alice:200 --key b-1 &&
	check "cli: batch-debit prints one line per item" test "$OUT" = "alice${tab}100${tab}ok${tab}$((before - 100))
alice${tab}200${tab}ok${tab}$((before - 300))"
cli 0 "batch-debit replayed with the same --key" batch-debit alice:100 alice:200 --key b-1 &&
	expect "replay: the original balances" "alice${tab}200${tab}ok${tab}$((before - 300))" "$OUT"
cli 0 "balance after the replay" balance alice && expect "applied once" "$((before - 300))" "$OUT"
cli 11 "batch-debit with a refusal in the middle" batch-debit alice:1 alice:100000000 nobody:1 alice:2 &&
	expect "the refused item's line" "alice${tab}100000000${tab}insufficient_funds${tab}" "$OUT"
expect "the not-found item's line" "nobody${tab}1${tab}account_not_found${tab}" "$OUT"
expect "the item after the refusals applied" "alice${tab}2${tab}ok${tab}$((before - 303))" "$OUT"
expect "stderr names the first refusal" "insufficient_funds (LG001)" "$ERR"
cli 0 "--json batch-debit" --json batch-debit alice:1 --key b-2 &&
	expect "json batch" "{\"status\":\"ok\",\"items\":[{\"account\":\"alice\",\"amount\":1,\"status\":\"ok\",\"balance\":$((before - 304)),\"key\":\"b-2.1\"}],\"key\":\"b-2\",\"attempts\":1}" "$OUT"
cli 0 "open an account whose name has a colon" open 'co:lon' --currency EUR --no-floor
cli 16 "batch-debit: an amount of 0 is refused for that item" batch-debit 'co:lon:5' 'quote"back\slash:0' &&
	expect "the item splits at the last colon" "co:lon${tab}5${tab}ok${tab}-5" "$OUT"
expect "the refused item (its backslash escaped)" 'quote"back\\slash'"${tab}0${tab}invalid_parameter_value${tab}" "$OUT"
cli 2 "batch-debit without items" batch-debit
cli 2 "batch-debit item without an amount" batch-debit alice
cli 2 "batch-debit amount not a number" batch-debit alice:ten
cli 12 "batch-debit: a name with a tab and a newline" batch-debit $'no\tbo\ndy:1' &&
	check "cli: the item is one line of four fields" \
		test "$OUT" = 'no\tbo\ndy'"${tab}1${tab}account_not_found${tab}"
expect "stderr escapes the name too" '(no\tbo\ndy:1)' "$ERR"
cli 19 "batch-debit: insufficient privilege (whole call)" -d "dbname=clientcli user=ledger_nogrant" --json \
	batch-debit alice:1 --key b-5 && expect "json whole-call failure" '"status":"insufficient_privilege"' "$OUT"
expect "json whole-call failure names the key" '"key":"b-5"' "$OUT"
cli 0 "batch-debit as the granted role" -d "dbname=clientcli user=ledger_app" batch-debit alice:1

# every reachable exit status (17 and 24 cannot come from the CLI: it never
# sends NULL, and it validates its options)
cli 11 "insufficient funds" debit alice 1000000 && expect "stderr names LG001" "(LG001)" "$ERR"
expect "stderr has the detail" "DETAIL:" "$ERR"
cli 11 "--json insufficient funds" --json debit alice 1000000 &&
	expect "json error" '"status":"insufficient_funds","status_code":1,"exit_code":11,"sqlstate":"LG001"' "$OUT"
cli 12 "account not found" balance nobody
cli 13 "idempotency conflict" debit alice 1 --key coffee-42
cli 14 "currency mismatch" transfer alice usd 1
cli 15 "account exists" open alice --currency USD
cli 16 "invalid parameter value" debit alice 0
cli 2 "negative amount (a usage error now: nothing is sent)" debit alice -5
cli 0 "open big" open big --currency EUR
cli 0 "credit to INT64_MAX" credit big 9223372036854775807
cli 18 "numeric value out of range" credit big 1
cli 19 "insufficient privilege" -d "dbname=clientcli user=ledger_nogrant" balance alice
cli 0 "granted role" -d "dbname=clientcli user=ledger_app" balance alice
cli 0 "a hostile database owner's look-alikes are not called" \
	-d "dbname=clienthostile user=ledger_app" balance victim &&
	check "cli: the real balance, not the look-alike's 424242 ($OUT)" test "$OUT" != 424242
cli 20 "object not in prerequisite state (fsync = off)" \
	-d "host=127.0.0.1 port=$FSYNC_OFF_PORT dbname=clientc" open x
cli 21 "server error (no extension in that database)" -d "dbname=postgres" --json balance alice &&
	expect "json server error" '"sqlstate":"42883"' "$OUT"
cli 22 "connection failed" -d "host=127.0.0.1 port=$closed" --retries 2 balance alice

# 23: the reply to a posting is lost and the server stays unreachable.
# start_proxy: a proxy to the client cluster that drops the second reply to a
# command that ran (the first is the lookup of the extension's schema, the
# second the posting, after its commit) and refuses every later connection;
# sets proxy_ci.  stop_proxy ends it, by its pid.
start_proxy() {
	rm -f "$LEDGER_TMP/proxy.port"
	"$CLIENT/test_client" proxy 2 >"$LEDGER_TMP/proxy.port" &
	proxy_pid=$!
	for _ in $(seq 1 100); do [ -s "$LEDGER_TMP/proxy.port" ] && break; sleep 0.05; done
	proxy_ci="host=127.0.0.1 port=$(cat "$LEDGER_TMP/proxy.port") dbname=clientcli"
}
stop_proxy() {
	kill "$proxy_pid" 2>/dev/null || true
	wait "$proxy_pid" 2>/dev/null || true
}
advice="pg_ledger: the posting may or may not have been applied; run the same command again with --key"
retry_note="(a retry without that key may post twice)"

before=$("$LEDGER_CLI" balance alice)
start_proxy
cli 23 "unknown outcome" -d "$proxy_ci" --retries 3 --json debit alice 5
stop_proxy
expect "json unknown outcome" '"status":"unknown_outcome"' "$OUT"
json_one "unknown outcome" "$OUT"
key=$(printf '%s' "$OUT" | sed -n 's/.*"key":"\([0-9a-f]*\)".*/\1/p')
check "cli: the unknown outcome reports its key ($key)" test "${#key}" -eq 32
cli 0 "retry with that --key returns the original result" debit alice 5 --key "$key" &&
	expect "original result" "$((before - 5))" "$OUT"
cli 0 "balance moved once" balance alice && expect "once" "$((before - 5))" "$OUT"

# plain text: the advice on stderr, with the key escaped like any user data
before=$("$LEDGER_CLI" balance alice)
start_proxy
cli 23 "unknown outcome, a key with a tab" -d "$proxy_ci" --retries 3 debit alice 5 --key $'lost\tkey'
stop_proxy
expect "the advice names the key, escaped" "$advice "'lost\tkey'" $retry_note" "$ERR"
cli 0 "retry with that key" debit alice 5 --key $'lost\tkey' &&
	expect "original result" "$((before - 5))" "$OUT"

# the same for batch-debit: the reply to the batch is lost; the same command
# with the printed --key replays every item
before=$("$LEDGER_CLI" balance alice)
start_proxy
cli 23 "batch-debit: unknown outcome" -d "$proxy_ci" --retries 3 batch-debit alice:5 alice:6
stop_proxy
key=$(printf '%s' "$ERR" | sed -n "s/.*run the same command again with --key \([0-9a-f]*\) (a retry without that key may post twice)\$/\1/p")
check "cli: the batch's unknown outcome prints its --key ($key)" test "${#key}" -eq 32
expect "the batch's advice" "$advice $key $retry_note" "$ERR"
cli 0 "batch-debit again with that --key: the original results" batch-debit alice:5 alice:6 --key "$key" &&
	expect "original result" "alice${tab}6${tab}ok${tab}$((before - 11))" "$OUT"
cli 0 "balance moved once" balance alice && expect "once" "$((before - 11))" "$OUT"

# and with --json: the batch's key is in the object
before=$("$LEDGER_CLI" balance alice)
start_proxy
cli 23 "--json batch-debit: unknown outcome" -d "$proxy_ci" --retries 3 --json batch-debit alice:7 alice:8
stop_proxy
expect "json batch unknown outcome" '"status":"unknown_outcome"' "$OUT"
json_one "batch unknown outcome" "$OUT"
key=$(printf '%s' "$OUT" | sed -n 's/.*"key":"\([0-9a-f]*\)".*/\1/p')
check "cli: the json batch's unknown outcome has its key ($key)" test "${#key}" -eq 32
cli 0 "batch-debit again with that --key" batch-debit alice:7 alice:8 --key "$key" &&
	expect "original result" "alice${tab}8${tab}ok${tab}$((before - 15))" "$OUT"
cli 0 "balance moved once" balance alice && expect "once" "$((before - 15))" "$OUT"

# --- holds, balance --at, history --before ------------------------------------
cli 0 "hold --help: --expires-in" hold --help && expect "hold --help" "--expires-in SECONDS" "$OUT"
cli 0 "balance --help: what --at takes" balance --help &&
	expect "balance --help: the format" "YYYY-MM-DDTHH:MM:SS" "$OUT"
cli 2 "capture: HOLD_ID not digits" capture x
cli 2 "capture: HOLD_ID 0" capture 0
cli 2 "capture: AMOUNT 0 (leave it out for the whole hold)" capture 1 0
cli 2 "capture: AMOUNT +5" capture 1 +5
cli 2 "capture: three arguments" capture 1 2 3
cli 2 "release: --to is capture's" release 1 --to shop
cli 2 "hold: --expires-in 0" hold alice 1 --expires-in 0
cli 2 "hold: --expires-in 1.5" hold alice 1 --expires-in 1.5
cli 2 "available: --key" available alice --key k
cli 2 "history --before 0" history alice --before 0
cli 2 "holds --before" holds alice --before 5
usage_json "--json: capture x" --json capture x
for at in 2026-11-29T12:00:00 2026-11-29 2026-02-29T00:00:00Z 2026-11-29T24:00:00Z \
	2026-11-29T12:00:60Z 2026-11-29T12:00:00.1234567Z 2026-11-29T12:00:00.Z \
	'2026-11-29T12:00:00+1:00' 2026-11-29T12:00:00+01 now; do
	cli 2 "balance --at \"$at\"" balance alice --at "$at"
done

cli 0 "open ha" open ha --currency EUR
cli 0 "open hs" open hs --currency EUR
cli 0 "fund ha" transfer bank ha 1000 --key ha-fund
cli 0 "hold" hold ha 300 --key ha-hold-1 && hid=$OUT
check "cli: hold prints the hold id ($hid)" test -n "$hid" -a "$hid" -gt 0
cli 0 "hold replayed with its key" hold ha 300 --key ha-hold-1 && expect "the same hold id" "$hid" "$OUT"
cli 13 "hold: the key with another amount" hold ha 301 --key ha-hold-1
cli 0 "available" available ha && check "cli: available 700 ($OUT)" test "$OUT" = 700
cli 0 "the balance stays" balance ha && check "cli: balance 1000 ($OUT)" test "$OUT" = 1000
cli 11 "hold beyond what is available" hold ha 701 && expect "stderr names LG001" "(LG001)" "$ERR"
cli 0 "--json hold" --json hold ha 100 --expires-in 3600 --key ha-hold-2 &&
	expect "json hold" '{"status":"ok","account":"ha","amount":100,"expires_in":3600,"hold_id":' "$OUT"
expect "json hold: its key" '"key":"ha-hold-2","attempts":1}' "$OUT"
json_one "--json hold" "$OUT"
hid2=$(printf '%s' "$OUT" | sed -n 's/.*"hold_id":\([0-9]*\).*/\1/p')
cli 0 "--json available" --json available ha &&
	expect "json available" '{"status":"ok","account":"ha","available":600,"attempts":1}' "$OUT"

cli 0 "capture 200 of 300 to hs" capture "$hid" 200 --to hs && check "cli: ha's balance 800 ($OUT)" test "$OUT" = 800
cli 0 "the same capture again" capture "$hid" 200 --to hs && check "cli: 800 again ($OUT)" test "$OUT" = 800
cli 0 "hs got 200, once" balance hs && check "cli: hs 200 ($OUT)" test "$OUT" = 200
cli 0 "--json capture replayed" --json capture "$hid" 200 --to hs &&
	expect "json capture" "{\"status\":\"ok\",\"hold_id\":$hid,\"to\":\"hs\",\"amount\":200,\"balance\":800,\"attempts\":1}" "$OUT"
cli 13 "capture again with another amount" capture "$hid" 100 --to hs
cli 26 "release a captured hold" release "$hid" && expect "stderr names LG007" "hold_not_pending (LG007)" "$ERR"
cli 26 "--json release a captured hold" --json release "$hid" &&
	expect "json LG007" '"status":"hold_not_pending","status_code":16,"exit_code":26,"sqlstate":"LG007"' "$OUT"
expect "json LG007 names the hold" "\"hold_id\":$hid," "$OUT"
cli 0 "release" release "$hid2" && check "cli: release prints true ($OUT)" test "$OUT" = true
cli 0 "release again" release "$hid2" && check "cli: then false ($OUT)" test "$OUT" = false
cli 0 "--json release" --json release "$hid2" &&
	expect "json release" "{\"status\":\"ok\",\"hold_id\":$hid2,\"released\":false,\"attempts\":1}" "$OUT"
cli 26 "capture a released hold" capture "$hid2"
cli 25 "capture no hold" capture 999999999 && expect "stderr names LG006" "hold_not_found (LG006)" "$ERR"
cli 25 "--json capture no hold" --json capture 999999999 &&
	expect "json LG006" '"status":"hold_not_found","status_code":15,"exit_code":25,"sqlstate":"LG006"' "$OUT"
json_one "--json capture no hold" "$OUT"
cli 25 "release no hold" release 999999999
cli 0 "hold 5" hold ha 5 && hid3=$OUT
cli 14 "capture to another currency" capture "$hid3" --to usd
cli 16 "capture more than held" capture "$hid3" 6
cli 12 "capture to no account" capture "$hid3" --to nobody
cli 16 "capture to the held account" capture "$hid3" --to ha
cli 0 "capture the whole hold as a debit" capture "$hid3" && check "cli: 795 ($OUT)" test "$OUT" = 795

# holds: one line of seven fields per hold, the key escaped
cli 0 "hold with a key holding a tab and a newline" hold ha 7 --key $'tab\there\nnl\\bs' && hid_tab=$OUT
cli 0 "holds" holds ha &&
	check "cli: holds: one line per hold (4)" test "$(printf '%s\n' "$OUT" | wc -l)" -eq 4
check "cli: holds: seven fields on every line" \
	test -z "$(printf '%s\n' "$OUT" | awk -F'\t' 'NF != 7')"
expect "holds: the newest first, pending" "$hid_tab${tab}7${tab}${tab}pending${tab}" "$(printf '%s\n' "$OUT" | head -n 1)"
expect "holds escapes the key" "${tab}"'tab\there\nnl\\bs' "$OUT"
expect "holds: the captured hold" "$hid${tab}300${tab}200${tab}captured${tab}" "$OUT"
expect "holds: the released hold" "$hid2${tab}100${tab}${tab}released${tab}" "$OUT"
check "cli: holds: a hold without expiry has an empty expires_at" \
	test "$(printf '%s\n' "$OUT" | awk -F'\t' -v id="$hid" '$1 == id {print $6}')" = ""
cli 0 "holds --limit 1" holds ha --limit 1 &&
	check "cli: holds --limit 1: one line" test "$(printf '%s\n' "$OUT" | wc -l)" -eq 1
cli 0 "--json holds" --json holds ha --limit 1 &&
	expect "json holds" '{"status":"ok","account":"ha","holds":[{"hold_id":' "$OUT"
expect "json holds: not captured is null" '"captured":null,"status":"pending"' "$OUT"
expect "json holds: the key escaped" '"expires_at":null,"idempotency_key":"tab\there\nnl\\bs"}]}' "$OUT"
json_one "--json holds" "$OUT"
cli 12 "holds of no account" holds nobody
cli 16 "holds --limit -1" holds ha --limit -1
cli 0 "release that hold" release "$hid_tab" && check "cli: true ($OUT)" test "$OUT" = true

# expiry is data: no sweep needed
before=$("$LEDGER_CLI" available ha)
cli 0 "hold expiring in 1 s" hold ha 50 --expires-in 1 && hid4=$OUT
cli 0 "available while it holds" available ha && check "cli: $((before - 50)) ($OUT)" test "$OUT" = "$((before - 50))"
sleep 2
cli 0 "holds after 2 s" holds ha --limit 1 && expect "the hold reads expired" "$hid4${tab}50${tab}${tab}expired${tab}" "$OUT"
cli 0 "available after it expired" available ha && check "cli: $before again ($OUT)" test "$OUT" = "$before"
cli 26 "capture an expired hold" capture "$hid4"
cli 0 "release an expired hold" release "$hid4" && check "cli: false ($OUT)" test "$OUT" = false

# balance --at: the balance after the last entry at or before that instant
line=$("$LEDGER_CLI" history ha --limit 2 | tail -n 1)
at=$(printf '%s' "$line" | cut -f 6)
cli 0 "balance --at an entry's created_at ($at)" balance ha --at "$at" &&
	check "cli: its balance_after ($OUT)" test "$OUT" = "$(printf '%s' "$line" | cut -f 3)"
cli 0 "balance --at the same instant as +00:00" balance ha --at "${at%Z}+00:00" &&
	check "cli: the same ($OUT)" test "$OUT" = "$(printf '%s' "$line" | cut -f 3)"
cli 0 "balance --at the same instant with a space for T" balance ha \
	--at "$(printf '%s' "$at" | sed 's/^\(.\{10\}\)T\([0-9][0-9]\)/\1 \2/')" &&
	check "cli: the same again ($OUT)" test "$OUT" = "$(printf '%s' "$line" | cut -f 3)"
cli 0 "balance --at before the account existed" balance ha --at 2000-01-01T00:00:00Z &&
	check "cli: 0 ($OUT)" test "$OUT" = 0
cli 0 "--json balance --at" --json balance ha --at 2000-01-01T01:30:00.5+01:30 &&
	expect "json balance --at: normalised to UTC" '{"status":"ok","account":"ha","at":"2000-01-01T00:00:00.500000Z","balance":0,"attempts":1}' "$OUT"
cli 12 "balance --at of no account" balance nobody --at 2026-11-29T12:00:00Z

# history --before: keyset paging
full=$("$LEDGER_CLI" history ha)
first=$(printf '%s\n' "$full" | head -n 1 | cut -f 1)
cli 0 "history --before the newest" history ha --before "$first" --limit 2 &&
	check "cli: the next two entries" test "$OUT" = "$(printf '%s\n' "$full" | sed -n '2,3p')"
cli 0 "--json history --before" --json history ha --before "$first" --limit 1 &&
	expect "json history --before" "{\"status\":\"ok\",\"account\":\"ha\",\"before\":$first,\"entries\":[{\"entry_id\":" "$OUT"
cli 12 "history --before of no account" history nobody --before 5

# a lost reply to a hold: the same command with the printed --key replays it
start_proxy
cli 23 "hold: unknown outcome" -d "$proxy_ci" --retries 3 --json hold ha 9
stop_proxy
key=$(printf '%s' "$OUT" | sed -n 's/.*"key":"\([0-9a-f]*\)".*/\1/p')
check "cli: the hold's unknown outcome reports its key ($key)" test "${#key}" -eq 32
cli 0 "hold again with that --key" hold ha 9 --key "$key" && hid5=$OUT
check "cli: one hold with that key, the id printed ($hid5)" \
	test "$(psql_q -c "SELECT count(*) || ':' || min(hold_id) FROM ledger.holds WHERE idempotency_key = '$key'")" = "1:$hid5"

# a lost reply to a capture: the same command again replays it
before=$("$LEDGER_CLI" balance ha)
start_proxy
cli 23 "capture: unknown outcome" -d "$proxy_ci" --retries 3 capture "$hid5"
stop_proxy
expect "capture: what to do" "pg_ledger: the capture may or may not have been applied; run the same command again" "$ERR"
cli 0 "the same capture again" capture "$hid5" && check "cli: the first result ($OUT)" test "$OUT" = "$((before - 9))"
check "cli: posted once" test "$(psql_q -c "SELECT count(*) FROM ledger.entries WHERE hold_id = $hid5")" = 1

# mode: read, set (prints the previous mode), an escrow history line with no
# balance_after yet (an open transaction holds the account's fold limit)
cli 0 "open em" open em --currency EUR
cli 0 "mode of a new account" mode em && check "cli: locked ($OUT)" test "$OUT" = locked
cli 0 "mode em escrow" mode em escrow && check "cli: prints the previous mode ($OUT)" test "$OUT" = locked
cli 0 "--json mode em escrow" --json mode em escrow &&
	expect "json mode" '{"status":"ok","account":"em","mode":"escrow","previous":"escrow","attempts":1}' "$OUT"
cli 0 "--json mode em" --json mode em &&
	expect "json mode read" '{"status":"ok","account":"em","mode":"escrow","attempts":1}' "$OUT"
cli 2 "mode with a mode that is none" mode em frozen
cli 2 "mode with too many arguments" mode em escrow locked
cli 12 "mode of no account" mode nobody
cli 19 "mode set by a role without the grant" -d "dbname=clientcli user=ledger_app" mode em locked
cli 0 "mode read by the application" -d "dbname=clientcli user=ledger_app" mode em &&
	check "cli: escrow ($OUT)" test "$OUT" = escrow
cli 0 "credit em" credit em 100
coproc BLOCKER { "$LEDGER_PG_BIN/psql" -X -q -At -d clientcli 2>&1; }
echo "BEGIN; SELECT ledger_debit('em', 1);" >&"${BLOCKER[1]}"
read -r -t 30 line <&"${BLOCKER[0]}"
check "cli: a debit on em in an open transaction ($line)" test "$line" = 99
cli 0 "debit em beside it" debit em 10 && check "cli: 90 ($OUT)" test "$OUT" = 90
cli 0 "history of em" history em --limit 1 &&
	check "cli: no balance_after yet: an empty field ($OUT)" \
		test "$(printf '%s\n' "$OUT" | awk -F'\t' '{print NF ":" $2 ":" $3}')" = "6:-10:"
cli 0 "--json history of em" --json history em --limit 1 &&
	expect "json: balance_after null" '"amount":-10,"balance_after":null' "$OUT"
json_one "--json history em" "$OUT"
echo "COMMIT;" >&"${BLOCKER[1]}"
exec {BLOCKER[1]}>&-
wait "$BLOCKER_PID"
cli 0 "mode em locked (folds what committed)" mode em locked &&
	check "cli: escrow ($OUT)" test "$OUT" = escrow
cli 0 "history of em, folded" history em --limit 1 &&
	check "cli: balance_after 89 ($OUT)" \
		test "$(printf '%s\n' "$OUT" | awk -F'\t' '{print $2 ":" $3}')" = "-10:89"

# 3: the audit finds a tampered balance
cli 0 "open an account with a tab and a newline in its name" open $'ta\tb\nc' --currency EUR
psql_q -c "UPDATE ledger.accounts SET balance = balance + 1 WHERE name IN ('over', E'ta\\tb\\nc')"
cli 3 "verify finds problems" verify && expect "the problem names the account" "over" "$OUT"
expect "verify escapes the name" 'ta\tb\nc'"${tab}" "$OUT"
check "cli: every verify line has two fields" \
	test -z "$(printf '%s\n' "$OUT" | awk -F'\t' 'NF != 2')"
cli 3 "--json verify with problems" --json verify && expect "json problems" '"problems":[{"account":"over"' "$OUT"
expect "json verify escapes the name" '"account":"ta\tb\nc"' "$OUT"
json_one "--json verify" "$OUT"

# valgrind over the CLI: a success with output, and a refusal (exit 11);
# 99 is valgrind's own verdict
for args in "--json history alice" "debit alice 1000000" "batch-debit alice:1 alice:1000000" \
	"--json debit alice +5" "--json --help" "--json holds ha" "hold ha 1000000" \
	"balance ha --at 2026-11-29T12:00:00.5+01:00" "capture 999999999"; do
	valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=99 "$LEDGER_CLI" $args >/dev/null 2>"$LEDGER_TMP/cli.valgrind"
	status=$?
	if [ "$status" -ne 99 ]; then
		pass
		echo "ok - valgrind: pg_ledger $args (exit $status)"
	else
		cat "$LEDGER_TMP/cli.valgrind" >&2
		fail "valgrind: pg_ledger $args"
	fi
done

if [ "$failed" -ne 0 ]; then
	echo "failed:$failures"
fi
echo "client: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
