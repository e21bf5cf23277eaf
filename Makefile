# ledger: PostgreSQL extension (PGXS) plus its tests.
#
#   make && make install     build and install the extension
#   make installcheck        pg_regress + isolation specs against $PGHOST/$PGPORT
#   make demo                the README's first command
#   make test                the README's second command: every test
#   make bench               the standard benchmark set, ledger vs the naive baseline
#   make stress              long bank and fuzz runs

EXTENSION = ledger ledger_router
MODULE_big = ledger
OBJS = \
	src/ledger.o \
	src/durability.o \
	src/guard.o \
	src/statements.o \
	src/arguments.o \
	src/names.o \
	src/rules.o \
	src/account.o \
	src/idempotency.o \
	src/posting.o \
	src/batch.o \
	src/holds.o \
	src/escrow.o \
	src/fold.o \
	src/mode.o \
	src/write.o \
	src/relations.o \
	src/direct_write.o \
	src/journal.o \
	src/audit.o \
	src/transfer_out.o \
	src/router.o

DATA = $(wildcard sql/ledger--*.sql) $(wildcard sql/ledger_router--*.sql)

# pg_regress: sql/<name>.sql against expected/<name>.out
REGRESS = account posting transfer idempotency history verify durability batch direct_write holds escrow escrow_model cross_shard upgrade
# isolation specs: test/specs/<name>.spec against test/expected/<name>.out
ISOLATION = debit_race transfer_cross idempotency_race debit_credit_race batch_race direct_write_ddl \
	hold_race hold_expiry hold_snapshot escrow_race escrow_key escrow_hold transfer_out_race
ISOLATION_OPTS = --inputdir=test

PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers -Wmissing-prototypes -Wno-clobbered

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# README and doc/ go to $(pg_config --docdir)/extension/ledger/, laid out as
# in the checkout so their links resolve: PGXS's DOCS would put them
# straight into extension/, where every extension's README.md meets.
install: install-ledger-docs
uninstall: uninstall-ledger-docs
.PHONY: install-ledger-docs uninstall-ledger-docs
install-ledger-docs:
	$(MKDIR_P) '$(DESTDIR)$(docdir)/$(docmoduledir)/ledger/doc'
	$(INSTALL_DATA) README.md '$(DESTDIR)$(docdir)/$(docmoduledir)/ledger/'
	$(INSTALL_DATA) $(wildcard doc/*.md) '$(DESTDIR)$(docdir)/$(docmoduledir)/ledger/doc/'
uninstall-ledger-docs:
	rm -rf '$(DESTDIR)$(docdir)/$(docmoduledir)/ledger'

# every object depends on the shared headers (PGXS tracks no header changes)
$(OBJS): src/ledger.h src/errors.h
src/relations.o src/direct_write.o: src/target.h

.PHONY: demo test bench stress
demo:
	bash test/demo.sh

test:
	bash test/run_all.sh

bench:
	bash bench/run.sh

# long runs of the bank tests and the fuzzer (about 20 minutes)
stress:
	BANK_ACCOUNTS=100 BANK_CLIENTS=32 BANK_SECONDS=300 bash test/bank.sh
	RBANK_ACCOUNTS=64 RBANK_CLIENTS=16 RBANK_SECONDS=120 bash test/router_bank.sh
	RBANK_ACCOUNTS=64 RBANK_CLIENTS=16 RBANK_SECONDS=120 bash test/router_bank.sh failover
	FUZZ_CALLS=300000 FUZZ_SECONDS=600 bash test/fuzz.sh
