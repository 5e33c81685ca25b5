# Makefile for activity_audit (PGXS)
#
#   make && make install          build and install into the PostgreSQL found by PG_CONFIG
#   make installcheck             pg_regress, isolation and TAP suites, each on a
#                                 throwaway cluster of its own (run as a non-root user)
#
# tools/test.sh wraps all of this for a fresh machine; see README.md.

MODULE_big = activity_audit
OBJS = \
	src/activity_audit.o \
	src/context.o \
	src/json_value.o \
	src/relinfo.o \
	src/event.o \
	src/capture.o \
	src/sign.o \
	src/writer.o \
	src/stream.o \
	src/sha256.o \
	src/reader.o \
	src/utility_hook.o

EXTENSION = activity_audit
DATA = sql/activity_audit--0.1.sql
PGFILEDESC = "activity_audit - audit trail of row changes through the WAL"

PG_CPPFLAGS = -I$(srcdir)/src

# pg_regress: a private cluster with the library preloaded and logical WAL,
# so the tests can read events back through a test_decoding slot.
REGRESS = setup track context values capture ddl partition partition_roles truncate writer reader
REGRESS_OPTS = --temp-instance=tmp_regress --temp-config=$(srcdir)/test/regress.conf

ISOLATION = concurrent_ddl commit_order twophase concurrent_writers
ISOLATION_OPTS = --temp-instance=tmp_isolation --temp-config=$(srcdir)/test/regress.conf \
	--inputdir=$(srcdir)/test/isolation

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = tmp_regress tmp_isolation output_iso results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared header (PGXS does not track headers)
$(OBJS): src/activity_audit.h src/writer.h src/sha256.h

# The offline verifier tools/activity_audit_verify: a standalone program
# (no libpq, no server headers).  PGXS's PROGRAM cannot sit next to
# MODULE_big, so it is built, installed and cleaned by hand.
VERIFY_TOOL = tools/activity_audit_verify

all: $(VERIFY_TOOL)

# It hashes with the writer's own SHA-256 code (src/sha256.c).
$(VERIFY_TOOL): tools/activity_audit_verify.c src/sha256.c src/sha256.h
	$(CC) $(CFLAGS) -Wextra -I$(srcdir)/src -o $@ tools/activity_audit_verify.c src/sha256.c $(LDFLAGS)

install: install-verify-tool

.PHONY: install-verify-tool uninstall-verify-tool clean-verify-tool
install-verify-tool: $(VERIFY_TOOL) installdirs
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(VERIFY_TOOL)$(X) '$(DESTDIR)$(bindir)/activity_audit_verify$(X)'

uninstall: uninstall-verify-tool

uninstall-verify-tool:
	rm -f '$(DESTDIR)$(bindir)/activity_audit_verify$(X)'

clean: clean-verify-tool

clean-verify-tool:
	rm -f $(VERIFY_TOOL)$(X)
