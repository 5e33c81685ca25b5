#!/usr/bin/env bash
# bench/run.sh — activity_audit benchmark: audited vs unaudited vs a PL/pgSQL audit trigger,
# next to two floors built from a few lines of C.
#
#   make install && sudo bench/run.sh
#   BENCH_ROWS=2000 BENCH_RUNS=1 sudo bench/run.sh        # quick smoke run
#
# It does not build the extension: activity_audit must already be installed into the
# PostgreSQL that `pg_config` (or $PG_CONFIG) points at.  It makes a throwaway cluster in a
# temporary directory (Unix socket in that directory only, no TCP), runs the workloads, prints
# the results and removes the cluster again.  As root it runs the server as the `postgres` OS user.
#
# Variants, each on its own copy of the 8-column bench table (setup.sql):
#   unaudited        no trigger (the baseline)
#   activity_audit   activity_audit.track(); with audit.wal_format in the build, one variant per
#                    format in BENCH_FORMATS ("activity_audit (compact)", "... (full)").  The
#                    setting is PGC_SIGHUP, so before each statement on such a variant (untimed)
#                    the script runs ALTER SYSTEM SET audit.wal_format + pg_reload_conf() and waits
#                    until a new session's SHOW audit.wal_format gives that format.  A build
#                    without the setting gets one "activity_audit" variant (and a note).
#   plpgsql trigger  the PL/pgSQL to_jsonb audit-table trigger users write today: an AFTER ROW
#                    trigger doing INSERT INTO audit_log (..., to_jsonb(NEW), to_jsonb(OLD))
#   noop_c           floor: a C AFTER ROW trigger that only returns (PostgreSQL's trigger
#                    machinery alone)
#   fixedmsg_c N B   floor: a C AFTER ROW trigger that only writes one transactional logical
#                    message of N bytes per row (LogLogicalMessage(), prefix "bench_floor"), one
#                    variant per size in BENCH_MSG_SIZE.  What any trigger that puts its event
#                    into the WAL, as activity_audit does, cannot go below.
# The two C floors are compiled at run time with PGXS (a 2-line Makefile with MODULES) in the
# temporary directory and loaded from there by absolute path (CREATE FUNCTION ... AS
# '<tmp>/floor/bench_floor.so'); nothing is installed.  Needs a C compiler and the server
# headers (postgresql-server-dev); BENCH_FLOORS=0 skips them.
#
# Environment:
#   BENCH_ROWS      rows per INSERT / UPDATE measurement            (default 200000)
#   BENCH_RUNS      measurements per variant and statement; the median is reported (default 5)
#   BENCH_STEADY    0 skips the second set of rounds, run without a CHECKPOINT before each
#                   statement (the steady state users see)                  (default 1)
#   BENCH_FORMATS   audit.wal_format values to measure, one variant each, if the build has
#                   the setting                                     (default "compact full")
#   BENCH_FLOORS    0 skips the two C floor variants                (default 1)
#   BENCH_MSG_SIZE  message size(s) in bytes of the fixedmsg_c floor, one variant per value,
#                   e.g. "700 350"; 700 is about the size of a format-1 activity_audit
#                   message for the bench's rows                    (default 700)
#   BENCH_MEM_ROWS  row counts of the memory check                  (default "ROWS 5*ROWS")
#   BENCH_MEM       0 skips the memory check                        (default 1)
#   BENCH_WAL_LEVEL wal_level of the cluster                        (default replica)
#   BENCH_TMPDIR    where the temporary cluster goes                (default $TMPDIR or /tmp)
#   BENCH_OS_USER   OS user that runs the server when run as root   (default postgres)
#   BENCH_KEEP      1 keeps the temporary cluster (and prints where it is)
#   BENCH_SKIP_AUDIT 1 runs only the variants without the extension
#                   (for working on this script while the extension is not installed)
#   PG_CONFIG       pg_config to use                                 (default pg_config)
#
# Method.  Each measurement is one psql session: CHECKPOINT, then the statement, timed with
# clock_timestamp() on the server (commit included), with the WAL insert position read before
# and after.  Every round runs all variants' INSERTs, then their UPDATEs, in an order
# rotated from round to round so drift (page cache, CPU clocks) falls on all alike.  Tables
# are truncated before each INSERT.  After each statement, untimed, the script waits with
# activity_audit.flush() until the writer has read (and delivered) everything, so the writer's
# backlog never runs into the next measurement; after each audited statement it checks that
# exactly one event per row was delivered, and counts the logical messages in the statement's
# WAL (pg_waldump): one per row for fixedmsg_c and for activity_audit (plus one header per
# statement in the compact format; the measured session's own audit.wal_format is checked
# too); for every statement pg_waldump also gives the bytes of full-page images in its WAL.
# A second set of rounds (BENCH_STEADY) does the same without the CHECKPOINT: audited
# statements write several times the WAL, so in steady state they meet more checkpoints and
# full-page writes, which the first set hides (which statement meets a checkpoint also
# depends on its place in the round: the FPI table shows it).  The report gives each
# variant's median time, the ratios to the unaudited table (of the median times, and the
# median of the per-round ratios), WAL and FPI bytes per row, and, for the steady state, the
# targets of the issue "WAL format 2" next to activity_audit's ratios.
set -Eeuo pipefail
export LC_ALL=C
unset PGOPTIONS PGSERVICE PGDATABASE PGHOST PGHOSTADDR PGPORT PGUSER

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROWS=${BENCH_ROWS:-200000}
RUNS=${BENCH_RUNS:-5}
MEM=${BENCH_MEM:-1}
STEADY=${BENCH_STEADY:-1}
WAL_LEVEL=${BENCH_WAL_LEVEL:-replica}
SKIP_AUDIT=${BENCH_SKIP_AUDIT:-0}
KEEP=${BENCH_KEEP:-0}
FORMATS=${BENCH_FORMATS:-compact full}
FLOORS=${BENCH_FLOORS:-1}
MSG_SIZES=${BENCH_MSG_SIZE:-700}
PG_CONFIG=${PG_CONFIG:-pg_config}
PORT=5432			# the socket lives in our private directory, so any port will do

die() { echo "bench/run.sh: error: $*" >&2; exit 1; }
note() { echo "$*" >&2; }

[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROWS must be a positive integer (got '$ROWS')"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer (got '$RUNS')"
MEM_ROWS=${BENCH_MEM_ROWS:-"$ROWS $((ROWS * 5))"}
for n in $MEM_ROWS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEM_ROWS must list positive integers (got '$MEM_ROWS')"
done
for f in $FORMATS; do
	[[ $f =~ ^[a-z][a-z0-9_]*$ ]] || die "BENCH_FORMATS must list audit.wal_format values such as 'compact full' (got '$FORMATS')"
done
[[ $FLOORS == [01] ]] || die "BENCH_FLOORS must be 0 or 1 (got '$FLOORS')"
for n in $MSG_SIZES; do
	[[ $n =~ ^[1-9][0-9]{0,7}$ ]] || die "BENCH_MSG_SIZE must list message sizes in bytes, 1..99999999 (got '$MSG_SIZES')"
done

# ---------------------------------------------------------------- preflight

command -v "$PG_CONFIG" >/dev/null || die "pg_config not found (set PG_CONFIG)"
BINDIR=$("$PG_CONFIG" --bindir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)

if [[ $SKIP_AUDIT != 1 ]]; then
	[[ -f $SHAREDIR/extension/activity_audit.control ]] ||
		die "activity_audit is not installed: $SHAREDIR/extension/activity_audit.control is missing.
Build and install it first (make && sudo make install), then run this script again."
	[[ -f $PKGLIBDIR/activity_audit.so ]] ||
		die "activity_audit is not installed: $PKGLIBDIR/activity_audit.so is missing (run make install)."
fi
for f in setup.sql insert.sql update.sql memsample.sh; do
	[[ -r $HERE/$f ]] || die "$HERE/$f is missing"
done

if [[ $EUID -eq 0 ]]; then
	OS_USER=${BENCH_OS_USER:-postgres}
	id "$OS_USER" >/dev/null 2>&1 || die "OS user '$OS_USER' does not exist (PostgreSQL will not run as root; set BENCH_OS_USER)"
	command -v runuser >/dev/null || die "runuser not found (needed to start the server as $OS_USER)"
	as_server() { runuser -u "$OS_USER" -- "$@"; }
else
	OS_USER=$(id -un)
	as_server() { "$@"; }
fi

# The variants.  VARIANTS is completed once the server runs (the activity_audit ones depend on
# whether the build has audit.wal_format).  Per variant: TABLE (its own copy of the bench
# table), LABEL (in the report), FORMAT (audit.wal_format, for audit_<format>), MSG_SIZE
# (for fixedmsg_<size>).  audit_<format> tables are t_audit_1, t_audit_2, ...: names of equal
# length, as the table's name is part of every event.
declare -A TABLE LABEL FORMAT MSG_SIZE
add_variant() {	# ID TABLE LABEL
	VARIANTS+=("$1")
	TABLE[$1]=$2
	LABEL[$1]=$3
}
VARIANTS=()
add_variant plain t_plain "unaudited"
label() { echo "${LABEL[$1]}"; }
is_audit() { [[ $1 == audit || $1 == audit_* ]]; }

# ---------------------------------------------------------------- the throwaway cluster

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/activity_audit_bench.XXXXXX")
PGDATA=$WORK/data
SERVER_LOG=$WORK/server.log
RESULTS=$WORK/results.tsv
MEMDIR=$WORK/mem
STARTED=0
mkdir -p "$MEMDIR"
: > "$RESULTS"
[[ $EUID -eq 0 ]] && chown "$OS_USER" "$WORK"
chmod 700 "$WORK"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM ERR
	if [[ $STARTED == 1 ]]; then
		as_server "$BINDIR/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			as_server "$BINDIR/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [[ $rc -ne 0 && -f $SERVER_LOG ]]; then
		echo "---- last lines of the server log ($SERVER_LOG) ----" >&2
		tail -n 40 "$SERVER_LOG" >&2 || true
	fi
	if [[ $KEEP == 1 ]]; then
		echo "bench/run.sh: kept the cluster in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "bench/run.sh: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------- the C floors

# build_floors: compile the two floor triggers with PGXS into $WORK/floor; sets FLOOR_SO.
# Loaded by absolute path, so nothing is installed; the server's OS user must read it.
build_floors() {
	local dir=$WORK/floor pgc
	pgc=$(command -v "$PG_CONFIG")
	[[ $pgc == /* ]] || pgc=$PWD/$pgc
	mkdir -p "$dir"
	cat > "$dir/bench_floor.c" <<'EOF'
/* bench_floor.c -- written by bench/run.sh: the floors activity_audit's trigger is measured against. */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "replication/message.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(bench_noop_trigger);
PG_FUNCTION_INFO_V1(bench_fixedmsg_trigger);

/* noop_c: an AFTER ROW trigger that only returns -- PostgreSQL's trigger machinery alone. */
Datum
bench_noop_trigger(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "bench_noop_trigger: not called as a trigger");
	return PointerGetDatum(NULL);
}

/* fixedmsg_c: one transactional logical message of tgargs[0] bytes per row, nothing else. */
Datum
bench_fixedmsg_trigger(PG_FUNCTION_ARGS)
{
	static char *msg = NULL;
	static long msg_size = 0;
	TriggerData *td = (TriggerData *) fcinfo->context;
	long		size;
	char	   *end;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "bench_fixedmsg_trigger: not called as a trigger");
	if (td->tg_trigger->tgnargs != 1)
		elog(ERROR, "bench_fixedmsg_trigger: give the message size in bytes as its one argument");
	size = strtol(td->tg_trigger->tgargs[0], &end, 10);
	if (*end != '\0' || size < 1 || size > 100 * 1000 * 1000)
		elog(ERROR, "bench_fixedmsg_trigger: bad message size \"%s\"", td->tg_trigger->tgargs[0]);
	if (size != msg_size)
	{
		if (msg != NULL)
			pfree(msg);
		msg = NULL;				/* in case the allocation fails */
		msg_size = 0;
		msg = MemoryContextAlloc(TopMemoryContext, size);
		memset(msg, 'x', size);
		msg_size = size;
	}
#if PG_VERSION_NUM >= 170000
	LogLogicalMessage("bench_floor", msg, size, true, false);
#else
	LogLogicalMessage("bench_floor", msg, size, true);
#endif
	return PointerGetDatum(NULL);
}
EOF
	cat > "$dir/Makefile" <<'EOF'
MODULES = bench_floor
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
EOF
	# with_llvm=no: no JIT bitcode, which would need clang and is not used here
	make -C "$dir" PG_CONFIG="$pgc" with_llvm=no > "$dir/build.log" 2>&1 || {
		cat "$dir/build.log" >&2
		die "could not compile the C floor triggers in $dir (needs a C compiler and the server headers of $pgc; BENCH_FLOORS=0 skips them)"
	}
	[[ -f $dir/bench_floor.so ]] || die "the floor build made no $dir/bench_floor.so"
	[[ $EUID -eq 0 ]] && chown -R "$OS_USER" "$dir"
	chmod -R go-w "$dir"
	FLOOR_SO=$dir/bench_floor.so
}
FLOOR_SO=
if [[ $FLOORS == 1 ]]; then
	note "== compiling the C floor triggers (noop_c, fixedmsg_c) with PGXS"
	build_floors
fi

note "== creating a throwaway cluster in $WORK (server runs as $OS_USER)"
as_server "$BINDIR/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C \
	> "$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }

{
	echo "# added by bench/run.sh"
	[[ $SKIP_AUDIT == 1 ]] || echo "shared_preload_libraries = 'activity_audit'"
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$WORK'"
	echo "port = $PORT"
	echo "shared_buffers = 512MB"
	echo "max_wal_size = 4GB"
	echo "checkpoint_timeout = 30min"
	echo "wal_level = $WAL_LEVEL"
} >> "$PGDATA/postgresql.conf"

as_server "$BINDIR/pg_ctl" -D "$PGDATA" -l "$SERVER_LOG" -w -t 120 start > /dev/null ||
	die "the server did not start (see the log above)"
STARTED=1

export PGAPPNAME=activity_audit_bench
# psql runs as the invoking user; ON_ERROR_STOP makes any SQL error fail the script.
pg() {
	"$BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres -d bench "$@"
}

"$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres -d postgres \
	-c "CREATE DATABASE bench"

if [[ $SKIP_AUDIT != 1 ]]; then
	pg -c "CREATE EXTENSION activity_audit"
fi
pg -f "$HERE/setup.sql"

# copy_table NAME: one more copy of the bench table, like t_plain.
copy_table() {
	pg -v t="$1" <<'EOF'
SET client_min_messages = warning;
CREATE TABLE :"t" (LIKE t_plain INCLUDING ALL) WITH (autovacuum_enabled = false);
EOF
}

HAVE_WAL_FORMAT=f
if [[ $SKIP_AUDIT != 1 ]]; then
	# audit.wal_format (enum, PGC_SIGHUP) exists from "WAL format 2" on; SHOW of an unknown
	# audit.* name is an error, as the extension reserves the prefix.
	if pg -c "SHOW audit.wal_format" > /dev/null 2>&1; then
		HAVE_WAL_FORMAT=t
		i=0
		for f in $FORMATS; do
			i=$((i + 1))
			copy_table "t_audit_$i"
			add_variant "audit_$f" "t_audit_$i" "activity_audit ($f)"
			FORMAT[audit_$f]=$f
		done
		note "== audit.wal_format is $(pg -c "SHOW audit.wal_format"); measuring the formats: $FORMATS"
	else
		add_variant audit t_audit "activity_audit"
		note "note: this build has no audit.wal_format (SHOW audit.wal_format failed): one activity_audit variant, in the build's only format; BENCH_FORMATS is ignored"
	fi
	for v in "${VARIANTS[@]}"; do
		is_audit "$v" || continue
		pg -v t="${TABLE[$v]}" > /dev/null <<'EOF'
SET client_min_messages = warning;
SELECT activity_audit.track(:'t');
EOF
	done
	HAVE_FLUSH=$(pg -c "SELECT to_regprocedure('activity_audit.flush(interval)') IS NOT NULL")
	HAVE_STATUS=$(pg -c "SELECT to_regprocedure('activity_audit.writer_status()') IS NOT NULL")
	[[ $HAVE_FLUSH == t ]] || note "warning: activity_audit.flush(interval) is missing: the writer's backlog is not drained between measurements"
	[[ $HAVE_STATUS == t ]] || note "warning: activity_audit.writer_status() is missing: delivered events are not counted"
else
	HAVE_FLUSH=f HAVE_STATUS=f
	note "warning: BENCH_SKIP_AUDIT=1: the activity_audit variant is NOT measured"
fi
add_variant plpgsql t_plpgsql "plpgsql trigger"
if [[ $FLOORS == 1 ]]; then
	pg -v so="$FLOOR_SO" <<'EOF'
CREATE FUNCTION bench_noop_trigger() RETURNS trigger
	AS :'so', 'bench_noop_trigger' LANGUAGE C;
CREATE FUNCTION bench_fixedmsg_trigger() RETURNS trigger
	AS :'so', 'bench_fixedmsg_trigger' LANGUAGE C;
EOF
	copy_table t_noop_c
	pg -c "CREATE TRIGGER t_noop_c_floor AFTER INSERT OR UPDATE OR DELETE ON t_noop_c
	       FOR EACH ROW EXECUTE FUNCTION bench_noop_trigger()"
	add_variant noop_c t_noop_c "noop_c"
	for n in $MSG_SIZES; do
		[[ -n ${MSG_SIZE[fixedmsg_$n]:-} ]] && continue		# listed twice
		copy_table "t_fixedmsg_$n"
		pg -c "CREATE TRIGGER t_fixedmsg_${n}_floor AFTER INSERT OR UPDATE OR DELETE ON t_fixedmsg_$n
		       FOR EACH ROW EXECUTE FUNCTION bench_fixedmsg_trigger('$n')"
		add_variant "fixedmsg_$n" "t_fixedmsg_$n" "fixedmsg_c $n B"
		MSG_SIZE[fixedmsg_$n]=$n
	done
fi
note "== variants: $(for v in "${VARIANTS[@]}"; do printf '%s; ' "$(label "$v")"; done | sed 's/; $//')"

# set_format VARIANT: for an audit_<format> variant, make that format the server's (untimed):
# ALTER SYSTEM + pg_reload_conf(), then wait until a new session shows it.  Sessions started
# after that (every measurement is one) are forked by a postmaster that has the new value.
# Nothing for other variants.
set_format() {
	local f=${FORMAT[$1]:-} got='' i
	[[ -n $f ]] || return 0
	pg -v fmt="$f" > /dev/null <<'EOF'
ALTER SYSTEM SET audit.wal_format = :'fmt';
SELECT pg_reload_conf();
EOF
	for (( i = 0; i < 200; i++ )); do
		got=$(pg -c "SHOW audit.wal_format")
		[[ $got == "$f" ]] && return 0
		sleep 0.05
	done
	die "SHOW audit.wal_format gives '$got' 10 s after ALTER SYSTEM SET audit.wal_format = '$f' and pg_reload_conf()"
}

# ---------------------------------------------------------------- helpers

# reset VARIANT: empty its table (and, for the PL/pgSQL variant, its audit_log).
reset_table() {
	set_format "$1"		# a tracked table's TRUNCATE is an event, too
	case $1 in
		plpgsql) pg -c "TRUNCATE t_plpgsql; TRUNCATE audit_log RESTART IDENTITY" ;;
		*) pg -c "TRUNCATE ${TABLE[$1]}" ;;
	esac
	is_audit "$1" && drain > /dev/null
	return 0
}

# drain: wait until the writer has delivered everything committed so far; prints seconds taken.
drain() {
	local ok
	if [[ $HAVE_FLUSH == t ]]; then
		ok=$(pg -c "SELECT activity_audit.flush('30min') AS ok, round(extract(epoch FROM clock_timestamp() - now()), 3) AS s" -F ' ')
		[[ ${ok%% *} == t ]] || die "activity_audit.flush() timed out after 30 minutes"
		echo "${ok#* }"
	else
		echo "nan"
	fi
}

events_delivered() {
	if [[ $HAVE_STATUS == t ]]; then
		pg -c "SELECT coalesce(sum(events_delivered), 0) FROM activity_audit.writer_status()"
	else
		echo 0
	fi
}

# wal_stats FROM_LSN TO_LSN: "messages message_record_bytes fpi_bytes" of that WAL range: the
# logical-decoding messages and the full-page images of all records.
wal_stats() {
	local stats
	stats=$("$BINDIR/pg_waldump" -p "$PGDATA/pg_wal" -s "$1" -e "$2" --stats=record) ||
		die "pg_waldump could not read the WAL from $1 to $2"
	# lines: TYPE N (%) RECORD_SIZE (%) FPI_SIZE (%) COMBINED (%), where "(%)" may hold a
	# space ("(  0.01)"); the Total line has "[%]" instead
	awk '{ gsub(/\([^)]*\)/, "") }
		$1 == "LogicalMessage/MESSAGE" { n = $2; b = $3 }
		$1 == "Total" { f = $5 }
		END { print n + 0, b + 0, f + 0 }' <<< "$stats"
}

# measure OP VARIANT ROUND [MODE]: one timed statement in its own session; appends to $RESULTS.
# MODE "steady": no CHECKPOINT first; its results are recorded as OP_steady.
measure() {
	local op=$1 v=$2 round=$3 mode=${4:-ckpt} out ms wal lsn0 lsn1 fmt ev0=0 ev1 drain_s=nan n want
	local msgs msgbytes fpi rec=$op
	[[ $mode == steady ]] && rec=${op}_steady
	set_format "$v"
	is_audit "$v" && ev0=$(events_delivered)
	out=$(pg -v tbl="${TABLE[$v]}" -v lo=1 -v hi="$ROWS" -v script="$HERE/$op.sql" \
		-v do_ckpt="$([[ $mode == steady ]] && echo false || echo true)" <<'EOF'
SET client_min_messages = warning;
SELECT coalesce(current_setting('audit.wal_format', true), '-') AS fmt \gset
\if :do_ckpt
CHECKPOINT;
\endif
SELECT pg_current_wal_insert_lsn() AS lsn0, clock_timestamp() AS t0 \gset
\i :script
SELECT round(1000 * extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1) AS ms,
       pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'lsn0'::pg_lsn)::bigint AS wal,
       pg_current_wal_flush_lsn() AS lsn1 \gset
\echo RESULT :ms :wal :lsn0 :lsn1 :fmt
EOF
)
	read -r _ ms wal lsn0 lsn1 fmt <<< "$(grep '^RESULT ' <<< "$out")"
	[[ -n ${fmt:-} ]] || die "no timing from the $op on ${TABLE[$v]}: $out"
	[[ -z ${FORMAT[$v]:-} || $fmt == "${FORMAT[$v]}" ]] ||
		die "the $op on ${TABLE[$v]} ran with audit.wal_format = '$fmt' (expected '${FORMAT[$v]}')"
	# Count the messages in the WAL itself (needs nothing from the writer; nothing else in
	# this range writes any), and the full-page images: a checkpoint that starts between a
	# table's INSERT and its UPDATE makes that UPDATE write one per page.
	read -r msgs msgbytes fpi <<< "$(wal_stats "$lsn0" "$lsn1")"
	# Wait (untimed) until the writer has read this statement's WAL and delivered its events.
	drain_s=$(drain)
	if is_audit "$v"; then
		# one transactional logical message per row, and in the compact format a header
		# per 1000 rows
		(( msgs >= ROWS && msgs <= ROWS + ROWS / 1000 + 1 )) ||
			die "the audited $op of $ROWS rows wrote $msgs logical messages into the WAL (expected $ROWS, and a header per 1000 rows in the compact format)"
		if [[ $HAVE_STATUS == t ]]; then
			ev1=$(events_delivered)
			(( ev1 - ev0 == ROWS )) ||
				die "the audited $op of $ROWS rows delivered $((ev1 - ev0)) events (expected $ROWS)"
		fi
	elif [[ -n ${MSG_SIZE[$v]:-} ]]; then
		(( msgs == ROWS )) ||
			die "the $op of $ROWS rows on ${TABLE[$v]} wrote $msgs logical messages into the WAL (expected $ROWS)"
	elif [[ $v == plpgsql ]]; then
		n=$(pg -c "SELECT count(*) FROM audit_log")
		want=$ROWS; [[ $op == update ]] && want=$((2 * ROWS))
		(( n == want )) || die "audit_log has $n rows after the $op (expected $want)"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rec" "$v" "$round" "$ms" "$wal" "$drain_s" "$msgs" "$msgbytes" "$fpi" >> "$RESULTS"
	note "$(printf '   round %d  %-13s  %-24s %10.1f ms   %8.1f MB WAL%s' "$round" "$rec" "$(label "$v")" "$ms" \
		"$(awk -v w="$wal" 'BEGIN { printf "%.1f", w / 1048576 }')" \
		"$(is_audit "$v" && [[ $drain_s != nan ]] && echo "   (writer drained in ${drain_s} s)")")"
}

# agg OP VARIANT COLUMN(4=ms 5=wal 6=drain 7=messages 8=message bytes 9=FPI bytes) FN(median|min|max)
agg() {
	awk -F '\t' -v op="$1" -v v="$2" -v c="$3" '$1 == op && $2 == v && $c != "nan" { print $c }' "$RESULTS" |
		sort -g |
		awk -v fn="$4" '{ a[NR] = $1 }
			END {
				if (NR == 0) { print "nan"; exit }
				if (fn == "min") x = a[1]
				else if (fn == "max") x = a[NR]
				else if (NR % 2) x = a[(NR + 1) / 2]
				else x = (a[NR / 2] + a[NR / 2 + 1]) / 2
				printf "%.3f\n", x
			}'
}

calc() { awk "BEGIN { x = $1; printf \"$2\", x }"; }

# ---------------------------------------------------------------- timed workloads

CPUS=$(nproc)
LOAD0=$(cut -d " " -f 1-3 /proc/loadavg)
SERVER_VERSION=$(pg -c "SHOW server_version")
note "== PostgreSQL $SERVER_VERSION, $CPUS CPUs; $ROWS rows per statement, $RUNS runs"

# Warm-up: one full round, not recorded.  The first round of a fresh cluster also pays for
# creating WAL segment files (later rounds recycle them), for the page cache and the catalogs;
# without this, round 1 is slower for every variant.
note "== warm-up round ($ROWS rows per variant, not recorded)"
for v in "${VARIANTS[@]}"; do
	reset_table "$v"
	pg -v tbl="${TABLE[$v]}" -v lo=1 -v hi="$ROWS" -f "$HERE/insert.sql"
	pg -v tbl="${TABLE[$v]}" -f "$HERE/update.sql"
	drain > /dev/null
done

NV=${#VARIANTS[@]}
# rounds MODE: every variant's INSERT, then their UPDATEs, in a rotated order.
rounds() {
	local mode=$1 r i v order
	for (( r = 1; r <= RUNS; r++ )); do
		note "== round $r/$RUNS ($([[ $mode == steady ]] && echo 'no CHECKPOINT before each statement' || echo 'CHECKPOINT before each statement'))"
		order=()
		for (( i = 0; i < NV; i++ )); do
			order+=("${VARIANTS[$(( (i + r - 1) % NV ))]}")
		done
		for v in "${order[@]}"; do
			reset_table "$v"
			measure insert "$v" "$r" "$mode"
		done
		for v in "${order[@]}"; do
			measure update "$v" "$r" "$mode"
		done
	done
}
rounds ckpt
[[ $STEADY == 1 ]] && rounds steady

# ---------------------------------------------------------------- report: time and WAL

echo
echo "activity_audit benchmark"
echo "  PostgreSQL $SERVER_VERSION, $CPUS CPUs, $(awk '/MemTotal/ { printf "%.1f GB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "  load average (1, 5, 15 min) before the rounds: $LOAD0; after: $(cut -d " " -f 1-3 /proc/loadavg)"
echo "  shared_buffers=512MB max_wal_size=4GB checkpoint_timeout=30min wal_level=$WAL_LEVEL, fsync and synchronous_commit on (defaults)"
echo "  $ROWS rows per statement; median of $RUNS runs (min..max); time includes commit"
if [[ $SKIP_AUDIT != 1 ]]; then
	if [[ $HAVE_WAL_FORMAT == t ]]; then
		echo "  activity_audit once per audit.wal_format: $FORMATS (set by ALTER SYSTEM + reload before each statement)"
	else
		echo "  this build has no audit.wal_format: one activity_audit variant, in the build's only format"
	fi
fi

ratio() {	# OP NUMERATOR DENOMINATOR
	calc "$(agg "$1" "$2" 4 median) / $(agg "$1" "$3" 4 median)" '%.2f'
}
# pratio OP NUMERATOR DENOMINATOR: median over rounds of the ratio of the two
# variants' times in the same round.  Rounds run the variants back to back,
# so this cancels much of the drift a shared machine shows between rounds.
pratio() {
	awk -F '\t' -v op="$1" -v n="$2" -v d="$3" '
		$1 == op && $2 == n { num[$3] = $4 }
		$1 == op && $2 == d { den[$3] = $4 }
		END { for (r in num) if ((r in den) && den[r] > 0) printf "%.6f\n", num[r] / den[r] }' "$RESULTS" |
		sort -g |
		awk '{ a[NR] = $1 }
			END {
				if (NR == 0) { print "nan"; exit }
				if (NR % 2) x = a[(NR + 1) / 2]; else x = (a[NR / 2] + a[NR / 2 + 1]) / 2
				printf "%.2f\n", x
			}'
}

# Targets of the issue "WAL format 2" for activity_audit in the steady state (ratios to unaudited).
TARGET_INSERT=1.30
TARGET_UPDATE=1.45
meets() { awk -v x="$1" -v t="$2" 'BEGIN { print (x != "nan" && x + 0 <= t + 0) ? "met" : "NOT met" }'; }

# report SUFFIX TITLE: the time and WAL tables of one set of rounds.
report() {
	local I=insert$1 U=update$1 v a f ri ru
	echo
	echo "== $2"
	printf '%-24s %28s %28s %14s %14s\n' "variant" "INSERT ms" "UPDATE ms" "INSERT WAL/row" "UPDATE WAL/row"
	for v in "${VARIANTS[@]}"; do
		printf '%-24s %28s %28s %14s %14s\n' "$(label "$v")" \
			"$(printf '%.1f (%.1f..%.1f)' "$(agg "$I" "$v" 4 median)" "$(agg "$I" "$v" 4 min)" "$(agg "$I" "$v" 4 max)")" \
			"$(printf '%.1f (%.1f..%.1f)' "$(agg "$U" "$v" 4 median)" "$(agg "$U" "$v" 4 min)" "$(agg "$U" "$v" 4 max)")" \
			"$(calc "$(agg "$I" "$v" 5 median) / $ROWS" '%.0f B')" \
			"$(calc "$(agg "$U" "$v" 5 median) / $ROWS" '%.0f B')"
	done
	echo
	echo "ratio to unaudited: of the median times, and the median of the per-round ratios (rounds run"
	echo "the variants back to back, so the latter cancels much of the drift between rounds)"
	printf '%-52s %10s %10s %10s %10s\n' "" "INSERT" "per round" "UPDATE" "per round"
	for v in "${VARIANTS[@]}"; do
		[[ $v == plain ]] && continue
		printf '%-52s %9sx %9sx %9sx %9sx\n' "$(label "$v") / unaudited" \
			"$(ratio "$I" "$v" plain)" "$(pratio "$I" "$v" plain)" "$(ratio "$U" "$v" plain)" "$(pratio "$U" "$v" plain)"
	done
	for a in "${VARIANTS[@]}"; do
		is_audit "$a" || continue
		printf '%-52s %9sx %9sx %9sx %9sx\n' "speedup of $(label "$a") over plpgsql" \
			"$(ratio "$I" plpgsql "$a")" "$(pratio "$I" plpgsql "$a")" "$(ratio "$U" plpgsql "$a")" "$(pratio "$U" plpgsql "$a")"
		for f in "${VARIANTS[@]}"; do
			[[ -n ${MSG_SIZE[$f]:-} ]] || continue
			printf '%-52s %9sx %9sx %9sx %9sx\n' "$(label "$a") / $(label "$f") floor" \
				"$(ratio "$I" "$a" "$f")" "$(pratio "$I" "$a" "$f")" "$(ratio "$U" "$a" "$f")" "$(pratio "$U" "$a" "$f")"
		done
	done
	echo
	printf '%-52s %10s %10s\n' "WAL bytes per row minus unaudited (median)" "INSERT" "UPDATE"
	for v in "${VARIANTS[@]}"; do
		[[ $v == plain ]] && continue
		printf '%-52s %10s %10s\n' "$(label "$v")" \
			"$(calc "($(agg "$I" "$v" 5 median) - $(agg "$I" plain 5 median)) / $ROWS" '%.0f' | sed 's/^-0$/0/')" \
			"$(calc "($(agg "$U" "$v" 5 median) - $(agg "$U" plain 5 median)) / $ROWS" '%.0f' | sed 's/^-0$/0/')"
	done
	echo
	echo "of that WAL, full-page images per row (pg_waldump), median (min..max): they are written for"
	echo "pages first changed after a checkpoint began, so in the steady state a statement that meets a"
	echo "checkpoint pays them, whichever variant it is"
	printf '%-52s %22s %22s\n' "" "INSERT" "UPDATE"
	for v in "${VARIANTS[@]}"; do
		printf '%-52s %22s %22s\n' "$(label "$v")" \
			"$(printf '%.0f (%.0f..%.0f)' "$(calc "$(agg "$I" "$v" 9 median) / $ROWS" '%f')" \
				"$(calc "$(agg "$I" "$v" 9 min) / $ROWS" '%f')" "$(calc "$(agg "$I" "$v" 9 max) / $ROWS" '%f')")" \
			"$(printf '%.0f (%.0f..%.0f)' "$(calc "$(agg "$U" "$v" 9 median) / $ROWS" '%f')" \
				"$(calc "$(agg "$U" "$v" 9 min) / $ROWS" '%f')" "$(calc "$(agg "$U" "$v" 9 max) / $ROWS" '%f')")"
	done
	if [[ ${#MSG_SIZE[@]} -gt 0 || $SKIP_AUDIT != 1 ]]; then
		echo
		echo "logical messages in the statements' WAL (pg_waldump, median): messages per row and their"
		echo "record bytes per row (record = 24 B header + 5 B data header + 24 B message header + prefix"
		echo "with its NUL (15 B for activity_audit, 12 B for bench_floor) + the message)"
		printf '%-52s %10s %10s %10s %10s\n' "" "INSERT" "bytes/row" "UPDATE" "bytes/row"
		for v in "${VARIANTS[@]}"; do
			is_audit "$v" || [[ -n ${MSG_SIZE[$v]:-} ]] || continue
			printf '%-52s %10s %10s %10s %10s\n' "$(label "$v")" \
				"$(calc "$(agg "$I" "$v" 7 median) / $ROWS" '%.2f')" "$(calc "$(agg "$I" "$v" 8 median) / $ROWS" '%.0f')" \
				"$(calc "$(agg "$U" "$v" 7 median) / $ROWS" '%.2f')" "$(calc "$(agg "$U" "$v" 8 median) / $ROWS" '%.0f')"
		done
	fi
	if [[ $HAVE_FLUSH == t ]]; then
		for a in "${VARIANTS[@]}"; do
			is_audit "$a" || continue
			printf 'writer delivery after commit (flush() wait, median, untimed above), %s: INSERT %.2f s, UPDATE %.2f s\n' \
				"$(label "$a")" "$(agg "$I" "$a" 6 median)" "$(agg "$U" "$a" 6 median)"
		done
	fi
	if [[ $1 == _steady ]]; then
		echo
		printf 'targets (issue "WAL format 2", steady state, ratio to unaudited): INSERT <= %.2fx, UPDATE <= %.2fx\n' \
			"$TARGET_INSERT" "$TARGET_UPDATE"
		for a in "${VARIANTS[@]}"; do
			is_audit "$a" || continue
			ri=$(ratio "$I" "$a" plain) ru=$(ratio "$U" "$a" plain)
			printf '  %-24s INSERT %sx (%s), UPDATE %sx (%s)\n' "$(label "$a")" \
				"$ri" "$(meets "$ri" "$TARGET_INSERT")" "$ru" "$(meets "$ru" "$TARGET_UPDATE")"
		done
	fi
}
report "" "CHECKPOINT before each statement"
if [[ $STEADY == 1 ]]; then
	report _steady "steady state: no CHECKPOINT before each statement"
else
	echo
	echo "(the targets of the issue \"WAL format 2\" are for the steady state, which BENCH_STEADY=0 skipped)"
fi
if [[ $SKIP_AUDIT != 1 && $HAVE_STATUS == t ]]; then
	echo
	echo "every audited statement delivered exactly one event per row (checked with writer_status())"
fi
if [[ $FLOORS == 1 ]]; then
	echo "floors: noop_c = a C AFTER ROW trigger that only returns; fixedmsg_c N B = a C AFTER ROW trigger"
	echo "that only writes one transactional logical message of N bytes per row (checked in the WAL)"
fi

# ---------------------------------------------------------------- memory

if [[ $MEM == 1 ]]; then
	note "== memory check ($MEM_ROWS rows, one transaction each)"
	export BENCH_MEMSAMPLE=$HERE/memsample.sh BENCH_MEMDIR=$MEMDIR
	MEMRESULTS=$WORK/mem.tsv
	: > "$MEMRESULTS"
	for n in $MEM_ROWS; do
		for v in "${VARIANTS[@]}"; do
			reset_table "$v"
			pg -c "CHECKPOINT"
			writer_pid=
			if is_audit "$v"; then
				if [[ $HAVE_STATUS == t ]]; then
					writer_pid=$(pg -c "SELECT pid FROM activity_audit.writer_status() LIMIT 1")
				else
					writer_pid=$(pg -c "SELECT pid FROM pg_stat_activity WHERE backend_type ILIKE '%audit%' LIMIT 1")
				fi
				[[ -n $writer_pid ]] && "$BENCH_MEMSAMPLE" start "$MEMDIR" writer "$writer_pid"
			fi
			set_format "$v"
			out=$(pg -v tbl="${TABLE[$v]}" -v nrows="$n" -v script="$HERE/insert.sql" <<'EOF'
SET client_min_messages = warning;
SELECT pg_backend_pid() AS pid \gset
\setenv BENCH_PID :pid
BEGIN;
-- warm-up row (id 0): catalog caches, trigger and per-relation state exist before "before"
\set lo 0
\set hi 0
\i :script
SELECT sum(total_bytes) AS ctx0 FROM pg_backend_memory_contexts \gset
\! "$BENCH_MEMSAMPLE" start "$BENCH_MEMDIR" backend "$BENCH_PID"
\set lo 1
\set hi :nrows
\i :script
\! "$BENCH_MEMSAMPLE" stop "$BENCH_MEMDIR" backend
SELECT sum(total_bytes) AS ctx1 FROM pg_backend_memory_contexts \gset
COMMIT;
SELECT sum(total_bytes) AS ctx2 FROM pg_backend_memory_contexts \gset
\echo MEM :pid :ctx0 :ctx1 :ctx2
EOF
)
			read -r _ _ ctx0 ctx1 ctx2 <<< "$(grep '^MEM ' <<< "$out")"
			[[ -n ${ctx2:-} && -f $MEMDIR/backend.result ]] || die "memory check on ${TABLE[$v]} failed: $out"
			read -r a0 apeak a1 _ hwm hwreset < "$MEMDIR/backend.result"
			wpeak=nan wdrain=nan
			if is_audit "$v"; then
				wdrain=$(drain)
				if [[ -n $writer_pid ]]; then
					"$BENCH_MEMSAMPLE" stop "$MEMDIR" writer
					read -r _ wpeak _ _ _ _ < "$MEMDIR/writer.result"
				fi
			else
				drain > /dev/null
			fi
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$v" "$ctx0" "$ctx1" "$ctx2" \
				"$a0" "$apeak" "$a1" "$hwm" "$hwreset" "$wpeak" "$wdrain" >> "$MEMRESULTS"
			note "   $n rows  $(label "$v"): contexts $((ctx0 / 1024)) -> $((ctx1 / 1024)) kB, RssAnon peak $((apeak / 1024)) MB"
		done
	done

	echo
	echo "memory of the inserting backend: one INSERT ... SELECT of N rows inside one transaction"
	echo "  contexts = sum(total_bytes) of pg_backend_memory_contexts in that session: before the statement"
	echo "  (after a 1-row warm-up insert), after it (same transaction), after COMMIT.  RssAnon = private"
	echo "  memory from /proc/PID/status, peak sampled every 10 ms during the statement.  VmHWM = kernel peak"
	echo "  RSS during the statement (reset just before it), which includes the shared_buffers pages touched."
	echo
	printf '%9s %-24s %11s %11s %11s %11s %11s %11s %11s\n' \
		"rows" "variant" "ctx before" "ctx after" "ctx commit" "anon before" "anon peak" "anon growth" "VmHWM"
	while IFS=$'\t' read -r n v ctx0 ctx1 ctx2 a0 apeak a1 hwm hwreset wpeak wdrain; do
		printf '%9s %-24s %8.0f kB %8.0f kB %8.0f kB %8.1f MB %8.1f MB %8.1f MB %8.1f MB%s\n' \
			"$n" "$(label "$v")" "$(calc "$ctx0 / 1024" '%.1f')" "$(calc "$ctx1 / 1024" '%.1f')" \
			"$(calc "$ctx2 / 1024" '%.1f')" "$(calc "$a0 / 1024" '%.2f')" "$(calc "$apeak / 1024" '%.2f')" \
			"$(calc "($apeak - $a0) / 1024" '%.2f')" "$(calc "$hwm / 1024" '%.2f')" \
			"$([[ $hwreset == 1 ]] || echo ' (not reset: since backend start)')"
	done < "$MEMRESULTS"

	read -r -a mrows <<< "$MEM_ROWS"
	if (( ${#mrows[@]} >= 2 )); then
		lo=${mrows[0]} hi=${mrows[${#mrows[@]} - 1]}
		echo
		echo "growth from $lo to $hi rows (a backend whose memory does not depend on the row count keeps"
		echo "the 'minus unaudited' column near 0; the unaudited INSERT itself buffers generate_series"
		echo "output in a tuplestore of at most work_mem):"
		printf '  %-24s %17s %22s %12s %17s %12s\n' "variant" "ctx left after" "peak private memory" "per row" "minus unaudited" "per row"
		base_growth=
		for v in "${VARIANTS[@]}"; do
			row_lo=$(awk -F '\t' -v n="$lo" -v v="$v" '$1 == n && $2 == v' "$MEMRESULTS")
			row_hi=$(awk -F '\t' -v n="$hi" -v v="$v" '$1 == n && $2 == v' "$MEMRESULTS")
			IFS=$'\t' read -r _ _ c0l c1l _ a0l apl _ <<< "$row_lo"
			IFS=$'\t' read -r _ _ c0h c1h _ a0h aph _ <<< "$row_hi"
			growth=$(calc "($aph - $a0h) - ($apl - $a0l)" '%.0f')		# kB
			[[ $v == plain ]] && base_growth=$growth
			printf '  %-24s %+14.1f kB %+19.2f MB %+10.1f B %+14.2f MB %+10.1f B\n' \
				"$(label "$v")" \
				"$(calc "(($c1h - $c0h) - ($c1l - $c0l)) / 1024" '%.1f')" \
				"$(calc "$growth / 1024" '%.2f')" \
				"$(calc "$growth * 1024 / ($hi - $lo)" '%.1f')" \
				"$(calc "($growth - ${base_growth:-0}) / 1024" '%.2f')" \
				"$(calc "($growth - ${base_growth:-0}) * 1024 / ($hi - $lo)" '%.1f')"
		done
		echo "  (any AFTER ROW trigger makes PostgreSQL queue a ~12-16 byte event per row until the end of"
		echo "   the statement; compare activity_audit with the plpgsql trigger, which pays the same.)"
	fi
	if [[ $SKIP_AUDIT != 1 ]]; then
		echo
		while IFS=$'\t' read -r n v _ _ _ _ _ _ _ _ wpeak wdrain; do
			is_audit "$v" || continue
			if [[ $wpeak != nan ]]; then
				printf 'writer process, %s, %s-row transaction: peak private memory %.1f MB; delivered %s s after commit\n' \
					"$(label "$v")" "$n" "$(calc "$wpeak / 1024" '%.1f')" "$wdrain"
			fi
		done < "$MEMRESULTS"
	fi
fi

if [[ $HAVE_STATUS == t ]]; then
	echo
	echo "writer_status() at the end:"
	pg -P pager=off -x -c "SELECT * FROM activity_audit.writer_status()" | sed 's/^/  /'
fi
