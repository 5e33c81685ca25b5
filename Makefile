# Makefile for activity_audit (PGXS)
#
#   make && make install          build and install into the PostgreSQL found by PG_CONFIG
#   make installcheck             the pg_regress and isolation suites against the running
#                                 server libpq finds (PGHOST, PGPORT, ...; PGXS's convention):
#                                 it must preload the library and have wal_level = logical
#                                 and prepared transactions (test/regress.conf has the
#                                 settings); the suites use databases of their own
#   make installcheck TEMP_INSTANCE=1
#                                 the same, each suite on a throwaway cluster of its own
#   make installcheck TAP_TESTS=1 REGRESS= ISOLATION=
#                                 the TAP suite (each test makes its own clusters)
#
# Run them as a non-root user.  tools/test.sh wraps all of this for a fresh
# machine; see README.md.

MODULE_big = activity_audit
OBJS = \
	src/activity_audit.o \
	src/common/sha256.o \
	src/common/siphash.o \
	src/common/sign.o \
	src/common/event_key.o \
	src/common/json_out.o \
	src/common/stream_line.o \
	src/common/digest.o \
	src/guc.o \
	src/capture/json_value.o \
	src/capture/json_number.o \
	src/capture/relinfo.o \
	src/capture/event.o \
	src/capture/capture.o \
	src/capture/app_event.o \
	src/capture/utility_hook.o \
	src/capture/config_event.o \
	src/writer/worker.o \
	src/writer/slot.o \
	src/writer/gap.o \
	src/writer/status.o \
	src/writer/retention.o \
	src/writer/txnbuf.o \
	src/writer/spill_scan.o \
	src/writer/decode.o \
	src/writer/counters.o \
	src/writer/format1.o \
	src/writer/assemble.o \
	src/writer/deliver.o \
	src/writer/worker_error.o \
	src/writer/stream.o \
	src/writer/stream_rotate.o \
	src/writer/line_out.o \
	src/writer/stream_state.o \
	src/writer/stream_recover.o \
	src/writer/stream_cut.o \
	src/writer/digest_log.o \
	src/reader/files.o \
	src/reader/log_stream.o \
	src/reader/line_jsonb.o \
	src/reader/verify.o \
	src/reader/digest.o

EXTENSION = activity_audit
DATA = sql/activity_audit--0.1.sql sql/activity_audit--0.1--0.2.sql \
	sql/activity_audit--0.2--0.3.sql
PGFILEDESC = "activity_audit - audit trail of row changes through the WAL"

PG_CPPFLAGS = -I$(srcdir)/src

# pg_regress and isolation: a server with the library preloaded and logical
# WAL (the tests read events back through a test_decoding slot), either the
# running one or, with TEMP_INSTANCE=1, a private cluster per suite.
REGRESS = setup track context values capture ddl partition partition_roles truncate writer reader reader_escapes wal_format limits app_events suppressed
ISOLATION = concurrent_ddl commit_order twophase concurrent_writers inval_during_build
ISOLATION_OPTS = --inputdir=$(srcdir)/test/isolation
ifdef TEMP_INSTANCE
REGRESS_OPTS += --temp-instance=tmp_regress --temp-config=$(srcdir)/test/regress.conf
ISOLATION_OPTS += --temp-instance=tmp_isolation --temp-config=$(srcdir)/test/regress.conf
endif

# TAP (only with TAP_TESTS=1, see above)
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = tmp_regress tmp_isolation output_iso results regression.diffs regression.out

# databases of its own on a shared server: contrib_regression_activity_audit,
# isolation_regression_activity_audit
USE_MODULE_DB = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Against a running server, say first what it lacks, instead of a page of
# diffs (test/installcheck_server.sql).
ifndef TEMP_INSTANCE
ifneq ($(strip $(REGRESS)$(ISOLATION)),)
installcheck: installcheck-server
endif
endif

.PHONY: installcheck-server
installcheck-server:
	@'$(bindir)/psql' -X -q -At -v ON_ERROR_STOP=1 -d postgres -f '$(srcdir)/test/installcheck_server.sql'

# every object depends on the shared header (PGXS does not track headers)
$(OBJS): src/activity_audit.h src/guc.h $(wildcard $(srcdir)/src/*/*.h)

# The offline verifier tools/activity_audit_verify: a standalone program
# (no libpq, no server headers).  PGXS's PROGRAM cannot sit next to
# MODULE_big, so it is built, installed and cleaned by hand.
VERIFY_TOOL = tools/activity_audit_verify

all: $(VERIFY_TOOL)

# It checks with the server's own line definition and SHA-256 code
# (src/common/stream_line.c, src/common/sha256.c), built as a frontend
# program against PostgreSQL's libpgcommon and libpgport like pg_waldump.
VERIFY_SRCS = tools/activity_audit_verify.c src/common/stream_line.c src/common/sha256.c src/common/digest.c

$(VERIFY_TOOL): $(VERIFY_SRCS) src/common/digest.h src/common/stream_line.h src/common/stream_format.h src/common/sha256.h
	$(CC) $(CFLAGS) -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers \
		-I$(srcdir)/src -I$(includedir_server) $(CPPFLAGS) -o $@ $(VERIFY_SRCS) \
		-L$(pkglibdir) -lpgcommon -lpgport $(LDFLAGS) -lm

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
