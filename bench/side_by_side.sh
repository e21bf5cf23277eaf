#!/usr/bin/env bash
# bench/side_by_side.sh REV [PAIRS]: the code at git revision REV against the
# checkout, one build after the other on the same machine, PAIRS times
# (default 2): for each build, make install, a fresh cluster set up as
# bench/run.sh does (10 000 accounts, WAL written and checkpointed first,
# durable settings), then uniform debits (32 clients, 8 rounds) and
# 1 000-item batches (1 client, 3 rounds) against the naive baseline.
# How a change is shown not to slow what it should not touch.
source "$(dirname "$0")/../test/lib.sh"

rev=${1:?usage: bench/side_by_side.sh REV [PAIRS]}
pairs=${2:-2}
ledger_require_packages
ledger_init_tmp
old=$LEDGER_TMP/old-tree
git -C "$LEDGER_ROOT" worktree add -q --detach "$old" "$rev"
trap 'git -C "$LEDGER_ROOT" worktree remove --force "$old"; ledger_cleanup' EXIT
tool=$LEDGER_TMP/bench-tool
cc -std=c99 -O2 -I"$($LEDGER_PG_BIN/pg_config --includedir)" "$LEDGER_ROOT/bench/bench.c" \
	-L"$($LEDGER_PG_BIN/pg_config --libdir)" -lpq -lpthread -lm -o "$tool"

measure() {	# measure TREE LABEL
	local tree=$1 label=$2 name
	make -s -C "$tree" PG_CONFIG="$LEDGER_PG_BIN/pg_config" clean >/dev/null 2>&1
	make -s -C "$tree" PG_CONFIG="$LEDGER_PG_BIN/pg_config" install >/dev/null
	name=sbs-$label-$RANDOM
	cluster_start "$name" -c fsync=on -c synchronous_commit=on -c shared_buffers=512MB \
		-c max_connections=200 -c checkpoint_timeout=30min -c max_wal_size=8GB -c min_wal_size=4GB
	psql_q -c 'CREATE EXTENSION ledger' >/dev/null
	psql_q -f "$LEDGER_ROOT/bench/naive.sql" >/dev/null 2>&1
	psql_q -c "SELECT count(ledger_open_account('a' || i, 'XXX', 0)) FROM generate_series(1, 10000) i" \
		-c "SELECT count(ledger_credit('a' || i, 1000000000000)) FROM generate_series(1, 10000) i" \
		-c "INSERT INTO naive.accounts SELECT 'a' || i, 1000000000000, 0 FROM generate_series(1, 10000) i" \
		-c "VACUUM ANALYZE" >/dev/null
	psql_q -c "CREATE TABLE wal_warmup AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 12000000) g" \
		-c "DROP TABLE wal_warmup" -c "CHECKPOINT" -c "CHECKPOINT" >/dev/null
	echo "== $label: $(git -C "$tree" log --oneline -1 | cut -c1-70)"
	"$tool" -n 10000 -d 5 -r 8 -w 1 -c 32 -W uniform
	"$tool" -n 10000 -d 5 -r 3 -w 1 -c 1 -W batch -b 1000
	cluster_stop "$name"
}

for pair in $(seq 1 "$pairs"); do
	measure "$old" "$rev"
	measure "$LEDGER_ROOT" checkout
done
# leave the checkout's build installed
