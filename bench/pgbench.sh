#!/usr/bin/env bash
# bench/pgbench.sh — activity_audit under pgbench: throughput (tps) of many small transactions,
# audited vs unaudited, where bench/run.sh measures single big statements.
#
#   make install && sudo bench/pgbench.sh
#   BENCH_PG_SECS=5 BENCH_PG_RUNS=1 sudo bench/pgbench.sh        # quick smoke run
#
# Like bench/run.sh it does not build anything (activity_audit must be installed into the
# PostgreSQL that `pg_config` or $PG_CONFIG points at), makes a throwaway cluster in a
# temporary directory (Unix socket there only, no TCP), runs pgbench against it, prints the
# results and removes the cluster.  As root it runs the server as the `postgres` OS user.
#
# Workloads (BENCH_PG_WORKLOADS), each run for BENCH_PG_SECS seconds with BENCH_PG_CLIENTS
# clients and as many pgbench threads (-c N -j N):
#   insert  single-row OLTP: a custom script, one single-row INSERT per transaction into the
#           8-column bench table of bench/setup.sql (values as bench/insert.sql makes them, ids
#           from a sequence)
#   update  single-row OLTP: one UPDATE of a random row by id per transaction
#           (SET a = a + 1, c = c || 'x', as bench/update.sql) on BENCH_PG_ROWS rows
#   tpcb    pgbench's own TPC-B-like workload on `pgbench -i -s BENCH_PG_SCALE` (3 UPDATEs and
#           1 INSERT per transaction)
# Variants: unaudited; activity_audit (activity_audit.track() on the table, for tpcb on all four
# pgbench tables), once per audit.wal_format in BENCH_FORMATS when the build has that setting
# (set with ALTER SYSTEM + pg_reload_conf() before each run and checked with SHOW, as run.sh
# does); and, for insert and update only, the PL/pgSQL to_jsonb audit-table trigger of
# bench/setup.sql, for reference.  Each variant has its own table (insert, update) or its own
# database initialised by pgbench -i (tpcb).
#
# Method.  For each synchronous_commit value in BENCH_PG_SYNC (set per run through PGOPTIONS),
# BENCH_PG_RUNS rounds; every round runs each workload once per variant, the variants in an
# order rotated from round to round.  Before each run, untimed: for tpcb what pgbench itself
# does before a run (VACUUM of pgbench_branches and pgbench_tellers, TRUNCATE of
# pgbench_history; pgbench then runs with -n), activity_audit.flush() so that no writer
# backlog is left, and a CHECKPOINT.  The run is pgbench -T; its tps (without connection time)
# is the measure.  After it, untimed: flush() (its wait is the writer's lag at the end of the
# run, reported), and checks: the transactions committed, counted in the database (new rows;
# the growth of sum(a); rows in pgbench_history), must have delivered exactly that many events
# by writer_status().events_delivered (4 per tpcb transaction, but 1 for one whose random
# delta is 0: its 3 UPDATEs change nothing, and track() leaves out no-op updates by default),
# or audit_log rows for the PL/pgSQL trigger; a difference to pgbench's own transaction count
# is reported.  Each run starts after a CHECKPOINT, so its first seconds write full-page
# images of every page it touches (pgbench_accounts: ~16,000 pages at scale 10).  WAL bytes
# per transaction come from the WAL insert position before and after.  autovacuum is off in
# this cluster, so it cannot land in some runs and not others.  Before the first round, a
# warm-up of BENCH_PG_WARMUP seconds per workload and variant, not recorded.
#
# The report gives per workload and variant the median tps (min..max), its ratio to unaudited
# (of the medians, and the median of the per-round ratios) and WAL per transaction, next to
# the targets of the issue "WAL format 2" for synchronous_commit = off: single-row >= 0.95 and
# TPC-B-like >= 0.95 of the unaudited tps.
#
# Environment:
#   BENCH_PG_SECS      seconds per pgbench run (-T)                       (default 30)
#   BENCH_PG_RUNS      runs per workload, variant and synchronous_commit; median reported (default 3)
#   BENCH_PG_CLIENTS   pgbench clients and threads (-c, -j)               (default 2)
#   BENCH_PG_SCALE     pgbench -i scale of the tpcb workload               (default 10)
#   BENCH_PG_ROWS      rows in the update workload's tables               (default 100000)
#   BENCH_PG_SYNC      synchronous_commit values, e.g. "off on"           (default off)
#   BENCH_PG_MODE      pgbench query mode (-M) of every workload: simple, extended or prepared
#                      (default: prepared for insert and update -- in simple mode, parsing and
#                      planning the 8-column INSERT costs several times the row itself -- and
#                      simple, pgbench's default, for tpcb)
#   BENCH_PG_WORKLOADS which workloads                                    (default "insert update tpcb")
#   BENCH_PG_WARMUP    seconds of warm-up per workload and variant, 0: none (default 5)
#   BENCH_FORMATS      audit.wal_format values to measure, if the build has it (default "compact full")
#   BENCH_WAL_LEVEL    wal_level of the cluster                           (default replica)
#   BENCH_TMPDIR       where the temporary cluster goes                   (default $TMPDIR or /tmp)
#   BENCH_OS_USER      OS user that runs the server when run as root      (default postgres)
#   BENCH_KEEP         1 keeps the temporary cluster (and prints where it is)
#   PG_CONFIG          pg_config to use                                   (default pg_config)
set -Eeuo pipefail
export LC_ALL=C
unset PGOPTIONS PGSERVICE PGDATABASE PGHOST PGHOSTADDR PGPORT PGUSER

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECS=${BENCH_PG_SECS:-30}
RUNS=${BENCH_PG_RUNS:-3}
CLIENTS=${BENCH_PG_CLIENTS:-2}
SCALE=${BENCH_PG_SCALE:-10}
PROWS=${BENCH_PG_ROWS:-100000}
SYNCS=${BENCH_PG_SYNC:-off}
MODE=${BENCH_PG_MODE:-}
WORKLOADS=${BENCH_PG_WORKLOADS:-insert update tpcb}
WARMUP=${BENCH_PG_WARMUP:-5}
FORMATS=${BENCH_FORMATS:-compact full}
WAL_LEVEL=${BENCH_WAL_LEVEL:-replica}
KEEP=${BENCH_KEEP:-0}
PG_CONFIG=${PG_CONFIG:-pg_config}
PORT=5432			# the socket lives in our private directory, so any port will do

die() { echo "bench/pgbench.sh: error: $*" >&2; exit 1; }
note() { echo "$*" >&2; }

for x in SECS RUNS CLIENTS SCALE PROWS; do
	[[ ${!x} =~ ^[1-9][0-9]*$ ]] || die "BENCH_PG_${x#P} must be a positive integer (got '${!x}')"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_PG_WARMUP must be a number of seconds (got '$WARMUP')"
for s in $SYNCS; do
	[[ $s =~ ^(off|on|local|remote_write|remote_apply)$ ]] ||
		die "BENCH_PG_SYNC must list synchronous_commit values such as 'off on' (got '$SYNCS')"
done
[[ $MODE =~ ^(simple|extended|prepared|)$ ]] || die "BENCH_PG_MODE must be simple, extended or prepared (got '$MODE')"
# mode WORKLOAD: its pgbench -M
mode() {
	if [[ -n $MODE ]]; then echo "$MODE"
	elif [[ $1 == tpcb ]]; then echo simple
	else echo prepared
	fi
}
for w in $WORKLOADS; do
	[[ $w =~ ^(insert|update|tpcb)$ ]] || die "BENCH_PG_WORKLOADS must list insert, update and/or tpcb (got '$WORKLOADS')"
done
for f in $FORMATS; do
	[[ $f =~ ^[a-z][a-z0-9_]*$ ]] || die "BENCH_FORMATS must list audit.wal_format values such as 'compact full' (got '$FORMATS')"
done

# ---------------------------------------------------------------- preflight

command -v "$PG_CONFIG" >/dev/null || die "pg_config not found (set PG_CONFIG)"
BINDIR=$("$PG_CONFIG" --bindir)
SHAREDIR=$("$PG_CONFIG" --sharedir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
[[ -f $SHAREDIR/extension/activity_audit.control ]] ||
	die "activity_audit is not installed: $SHAREDIR/extension/activity_audit.control is missing.
Build and install it first (make && sudo make install), then run this script again."
[[ -f $PKGLIBDIR/activity_audit.so ]] ||
	die "activity_audit is not installed: $PKGLIBDIR/activity_audit.so is missing (run make install)."
[[ -x $BINDIR/pgbench ]] || die "pgbench is missing from $BINDIR"
for f in setup.sql insert.sql; do
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

# ---------------------------------------------------------------- the throwaway cluster

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/activity_audit_pgbench.XXXXXX")
PGDATA=$WORK/data
SERVER_LOG=$WORK/server.log
RESULTS=$WORK/results.tsv
STARTED=0
: > "$RESULTS"
mkdir -p "$WORK/scripts" "$WORK/out"
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
		echo "bench/pgbench.sh: kept the cluster in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "bench/pgbench.sh: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

note "== creating a throwaway cluster in $WORK (server runs as $OS_USER)"
as_server "$BINDIR/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C \
	> "$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }

# shared_buffers holds every table and database of the run (no evictions in some runs only);
# autovacuum is off (see Method above).
{
	echo "# added by bench/pgbench.sh"
	echo "shared_preload_libraries = 'activity_audit'"
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$WORK'"
	echo "port = $PORT"
	echo "shared_buffers = 1GB"
	echo "max_wal_size = 4GB"
	echo "checkpoint_timeout = 30min"
	echo "wal_level = $WAL_LEVEL"
	echo "autovacuum = off"
	echo "max_connections = $((CLIENTS + 20))"
} >> "$PGDATA/postgresql.conf"

as_server "$BINDIR/pg_ctl" -D "$PGDATA" -l "$SERVER_LOG" -w -t 120 start > /dev/null ||
	die "the server did not start (see the log above)"
STARTED=1

export PGAPPNAME=activity_audit_pgbench
# psql runs as the invoking user; ON_ERROR_STOP makes any SQL error fail the script.
# pgdb DB ARGS...: psql on database DB; pg ARGS...: on the database "bench".
pgdb() {
	local db=$1
	shift
	"$BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres -d "$db" "$@"
}
pg() { pgdb bench "$@"; }

calc() { awk "BEGIN { x = $1; printf \"$2\", x }"; }

pgdb postgres -c "CREATE DATABASE bench"
pg -c "CREATE EXTENSION activity_audit"
pg -f "$HERE/setup.sql"

# drain: wait until the writer has read and delivered everything written so far (in any
# database: flush() waits for a WAL position); prints seconds.
drain() {
	local ok
	ok=$(pg -F ' ' -c "SELECT activity_audit.flush('30min') AS ok, round(extract(epoch FROM clock_timestamp() - now()), 3) AS s")
	[[ ${ok%% *} == t ]] || die "activity_audit.flush() timed out after 30 minutes"
	echo "${ok#* }"
}
events_delivered() { pg -c "SELECT coalesce(sum(events_delivered), 0) FROM activity_audit.writer_status()"; }

# ---------------------------------------------------------------- variants

# Per variant: TABLE (insert and update workloads), DB (tpcb), LABEL, FORMAT (audit_<format>).
declare -A TABLE DB LABEL FORMAT
VARIANTS=()
add_variant() {	# ID TABLE DB LABEL
	VARIANTS+=("$1")
	TABLE[$1]=$2
	DB[$1]=$3
	LABEL[$1]=$4
}
label() { echo "${LABEL[$1]}"; }
is_audit() { [[ $1 == audit || $1 == audit_* ]]; }

copy_table() {
	pg -v t="$1" <<'EOF'
SET client_min_messages = warning;
CREATE TABLE :"t" (LIKE t_plain INCLUDING ALL) WITH (autovacuum_enabled = false);
EOF
}

add_variant plain t_plain pgb_plain "unaudited"
HAVE_WAL_FORMAT=f
# audit.wal_format (enum, PGC_SIGHUP) exists from "WAL format 2" on; SHOW of an unknown audit.*
# name is an error, as the extension reserves the prefix.
if pg -c "SHOW audit.wal_format" > /dev/null 2>&1; then
	HAVE_WAL_FORMAT=t
	i=0
	for f in $FORMATS; do
		i=$((i + 1))
		copy_table "t_audit_$i"
		add_variant "audit_$f" "t_audit_$i" "pgb_audit_$i" "activity_audit ($f)"
		FORMAT[audit_$f]=$f
	done
	note "== audit.wal_format is $(pg -c "SHOW audit.wal_format"); measuring the formats: $FORMATS"
else
	add_variant audit t_audit pgb_audit "activity_audit"
	note "note: this build has no audit.wal_format (SHOW audit.wal_format failed): one activity_audit variant, in the build's only format; BENCH_FORMATS is ignored"
fi
add_variant plpgsql t_plpgsql "" "plpgsql trigger"
note "== variants: $(for v in "${VARIANTS[@]}"; do printf '%s; ' "$(label "$v")"; done | sed 's/; $//')"

# variants_of WORKLOAD: the variants that run it (the PL/pgSQL trigger is not set up for tpcb).
variants_of() {
	local v
	for v in "${VARIANTS[@]}"; do
		[[ $1 == tpcb && $v == plpgsql ]] && continue
		echo "$v"
	done
}

# set_format VARIANT: as in run.sh -- for an audit_<format> variant, ALTER SYSTEM + reload,
# then wait until a new session shows the format; nothing for other variants.
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

# ---------------------------------------------------------------- setup

has() { [[ " $WORKLOADS " == *" $1 "* ]]; }

if has insert || has update; then
	note "== single-row tables: $PROWS rows each"
	for v in "${VARIANTS[@]}"; do
		t=${TABLE[$v]}
		if is_audit "$v"; then
			pg -v t="$t" > /dev/null <<'EOF'
SET client_min_messages = warning;
SELECT activity_audit.track(:'t');
EOF
		fi
		set_format "$v"
		pg -v tbl="$t" -v lo=1 -v hi="$PROWS" -f "$HERE/insert.sql"
		pg -c "CREATE SEQUENCE ${t}_ids START $((PROWS + 1))" -c "VACUUM ANALYZE $t"
		# the single-row scripts: insert.sql's values for one id from the sequence
		sed -n '/^INSERT INTO/,$p' "$HERE/insert.sql" |
			sed -e "s/:\"tbl\"/$t/" \
				-e "s/FROM generate_series(:lo::bigint, :hi::bigint) AS i;/FROM (SELECT nextval('${t}_ids') AS i) AS s;/" \
			> "$WORK/scripts/insert_$v.sql"
		grep -q "nextval('${t}_ids')" "$WORK/scripts/insert_$v.sql" ||
			die "could not make the single-row INSERT script from $HERE/insert.sql"
		printf '\\set id random(1, %d)\nUPDATE %s SET a = a + 1, c = c || '"'x'"' WHERE id = :id;\n' \
			"$PROWS" "$t" > "$WORK/scripts/update_$v.sql"
	done
	pg -c "TRUNCATE audit_log"
	drain > /dev/null
fi
if has tpcb; then
	for v in $(variants_of tpcb); do
		db=${DB[$v]}
		note "== pgbench -i -s $SCALE in database $db"
		pgdb postgres -c "CREATE DATABASE $db"
		"$BINDIR/pgbench" -h "$WORK" -p "$PORT" -U postgres -i -q -s "$SCALE" "$db" > "$WORK/out/init_$db.log" 2>&1 ||
			{ cat "$WORK/out/init_$db.log" >&2; die "pgbench -i failed in $db"; }
		if is_audit "$v"; then
			pgdb "$db" > /dev/null <<'EOF'
SET client_min_messages = warning;
CREATE EXTENSION activity_audit;
SELECT activity_audit.track('pgbench_accounts');
SELECT activity_audit.track('pgbench_branches');
SELECT activity_audit.track('pgbench_tellers');
SELECT activity_audit.track('pgbench_history');
EOF
		fi
	done
	drain > /dev/null
fi

# ---------------------------------------------------------------- one run

# prepare WORKLOAD VARIANT: untimed, before the run; prints "count before".
prepare() {
	local w=$1 v=$2
	set_format "$v"
	case $w in
		tpcb)
			# what pgbench does before a run unless -n (pgbench then runs with -n)
			pgdb "${DB[$v]}" -c "VACUUM pgbench_branches" -c "VACUUM pgbench_tellers" \
				-c "TRUNCATE pgbench_history"
			;;
		*)
			[[ $v == plpgsql ]] && pg -c "TRUNCATE audit_log"
			;;
	esac
	drain > /dev/null
	pg -c "CHECKPOINT"
	committed_count "$w" "$v"
}

# committed_count WORKLOAD VARIANT: what the committed transactions have left in the database,
# so that the difference before/after counts them: rows (insert), sum(a) (update: a = a + 1
# per transaction), pgbench_history rows (tpcb).
committed_count() {
	case $1 in
		insert) pg -c "SELECT count(*) FROM ${TABLE[$2]}" ;;
		update) pg -c "SELECT coalesce(sum(a), 0) FROM ${TABLE[$2]}" ;;
		tpcb) pgdb "${DB[$2]}" -c "SELECT count(*) FROM pgbench_history" ;;
	esac
}

# run WORKLOAD VARIANT SYNC ROUND SECS: one pgbench run; ROUND 0 is the warm-up (not recorded).
run() {
	local w=$1 v=$2 sc=$3 round=$4 secs=$5 db=bench c0 c1 n ev0=0 ev1 lsn0 lsn1 out tps txns failed
	local drain_s want got wal_txn args zero=0
	if [[ $w == tpcb ]]; then
		db=${DB[$v]}
		args=(-b tpcb-like -s "$SCALE")
	else
		args=(-f "$WORK/scripts/${w}_$v.sql")
	fi
	c0=$(prepare "$w" "$v")
	is_audit "$v" && ev0=$(events_delivered)
	lsn0=$(pg -c "SELECT pg_current_wal_insert_lsn()")
	out=$WORK/out/${w}_${v}_${sc}_$round.log
	PGOPTIONS="-c synchronous_commit=$sc" "$BINDIR/pgbench" -h "$WORK" -p "$PORT" -U postgres -n \
		-c "$CLIENTS" -j "$CLIENTS" -T "$secs" -M "$(mode "$w")" "${args[@]}" "$db" > "$out" 2>&1 ||
		{ cat "$out" >&2; die "pgbench failed: $w on $(label "$v")"; }
	lsn1=$(pg -c "SELECT pg_current_wal_insert_lsn()")
	drain_s=$(drain)
	c1=$(committed_count "$w" "$v")
	n=$((c1 - c0))
	tps=$(awk '/^tps = / { print $3; exit }' "$out")
	txns=$(awk -F ': *' '/^number of transactions actually processed:/ { split($2, a, "/"); print a[1]; exit }' "$out")
	failed=$(awk -F ': *' '/^number of failed transactions:/ { split($2, a, " "); print a[1]; exit }' "$out")
	[[ -n $tps && -n $txns ]] || { cat "$out" >&2; die "no tps in pgbench's output ($out)"; }
	(( n > 0 )) || die "$w on $(label "$v"): no transaction committed"
	[[ $n == "$txns" ]] ||
		note "   note: $w on $(label "$v"): pgbench reports $txns transactions, the database shows $n committed"
	[[ -z $failed || $failed == 0 ]] || note "   note: $w on $(label "$v"): pgbench reports $failed failed transactions"
	if is_audit "$v"; then
		ev1=$(events_delivered)
		want=$n
		if [[ $w == tpcb ]]; then
			# 3 UPDATEs + 1 INSERT per transaction; but with delta = 0 (pgbench draws it from
			# -5000..5000) the 3 UPDATEs change nothing, and track() leaves out such no-op
			# updates by default (log_noop_updates)
			zero=$(pgdb "$db" -c "SELECT count(*) FROM pgbench_history WHERE delta = 0")
			want=$((4 * n - 3 * zero))
		fi
		(( ev1 - ev0 == want )) ||
			die "$w on $(label "$v"): $n transactions delivered $((ev1 - ev0)) events (expected $want)"
		(( zero == 0 )) ||
			note "   note: $w on $(label "$v"): $zero transactions had delta = 0: 3 no-op UPDATEs each, not audited"
	elif [[ $v == plpgsql ]]; then
		got=$(pg -c "SELECT count(*) FROM audit_log")
		(( got == n )) || die "$w on $(label "$v"): audit_log has $got rows after $n transactions (expected $n)"
	fi
	wal_txn=$(pg -c "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / $n)")
	(( round > 0 )) &&
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$w" "$v" "$round" "$tps" "$txns" "$n" "$wal_txn" \
			"$(is_audit "$v" && echo "$drain_s" || echo nan)" >> "$RESULTS"
	note "$(printf '   %-5s %-3s %-6s %-24s %9.1f tps  %8d txns  %6d B WAL/txn%s' \
		"$([[ $round == 0 ]] && echo warm || echo "r$round")" "$sc" "$w" "$(label "$v")" "$tps" "$n" "$wal_txn" \
		"$(is_audit "$v" && echo "   (writer drained in ${drain_s} s)")")"
}

# ---------------------------------------------------------------- the rounds

CPUS=$(nproc)
LOAD0=$(cut -d " " -f 1-3 /proc/loadavg)
SERVER_VERSION=$(pg -c "SHOW server_version")
note "== PostgreSQL $SERVER_VERSION, $CPUS CPUs; workloads: $WORKLOADS; $CLIENTS clients, $SECS s per run, $RUNS runs; synchronous_commit: $SYNCS"

if (( WARMUP > 0 )); then
	note "== warm-up: $WARMUP s per workload and variant (synchronous_commit = ${SYNCS%% *}), not recorded"
	for w in $WORKLOADS; do
		for v in $(variants_of "$w"); do
			run "$w" "$v" "${SYNCS%% *}" 0 "$WARMUP"
		done
	done
fi

for sc in $SYNCS; do
	for (( r = 1; r <= RUNS; r++ )); do
		note "== round $r/$RUNS, synchronous_commit = $sc"
		for w in $WORKLOADS; do
			mapfile -t vs < <(variants_of "$w")
			for (( i = 0; i < ${#vs[@]}; i++ )); do
				run "$w" "${vs[$(( (i + r - 1) % ${#vs[@]} ))]}" "$sc" "$r" "$SECS"
			done
		done
	done
done

# ---------------------------------------------------------------- report

# agg SYNC WORKLOAD VARIANT COLUMN(5=tps 8=WAL/txn 9=drain) FN(median|min|max)
agg() {
	awk -F '\t' -v s="$1" -v w="$2" -v v="$3" -v c="$4" '$1 == s && $2 == w && $3 == v && $c != "nan" { print $c }' "$RESULTS" |
		sort -g |
		awk -v fn="$5" '{ a[NR] = $1 }
			END {
				if (NR == 0) { print "nan"; exit }
				if (fn == "min") x = a[1]
				else if (fn == "max") x = a[NR]
				else if (NR % 2) x = a[(NR + 1) / 2]
				else x = (a[NR / 2] + a[NR / 2 + 1]) / 2
				printf "%.3f\n", x
			}'
}
# pratio SYNC WORKLOAD NUMERATOR DENOMINATOR: median over rounds of the per-round tps ratio.
pratio() {
	awk -F '\t' -v s="$1" -v w="$2" -v n="$3" -v d="$4" '
		$1 == s && $2 == w && $3 == n { num[$4] = $5 }
		$1 == s && $2 == w && $3 == d { den[$4] = $5 }
		END { for (r in num) if ((r in den) && den[r] > 0) printf "%.6f\n", num[r] / den[r] }' "$RESULTS" |
		sort -g |
		awk '{ a[NR] = $1 }
			END {
				if (NR == 0) { print "nan"; exit }
				if (NR % 2) x = a[(NR + 1) / 2]; else x = (a[NR / 2] + a[NR / 2 + 1]) / 2
				printf "%.3f\n", x
			}'
}

# targets of the issue "WAL format 2": audited tps at least this share of unaudited
TARGET_SINGLE=0.95
TARGET_TPCB=0.95
meets() { awk -v x="$1" -v t="$2" 'BEGIN { print (x != "nan" && x + 0 >= t + 0) ? "met" : "NOT met" }'; }
wl_title() {
	case $1 in
		insert) echo "single-row INSERT" ;;
		update) echo "single-row UPDATE" ;;
		tpcb) echo "TPC-B-like (s=$SCALE)" ;;
	esac
}

echo
echo "activity_audit under pgbench"
echo "  PostgreSQL $SERVER_VERSION, $CPUS CPUs, $(awk '/MemTotal/ { printf "%.1f GB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "  load average (1, 5, 15 min) before the rounds: $LOAD0; after: $(cut -d " " -f 1-3 /proc/loadavg)"
echo "  shared_buffers=1GB max_wal_size=4GB checkpoint_timeout=30min wal_level=$WAL_LEVEL autovacuum=off, fsync on"
echo "  pgbench -c $CLIENTS -j $CLIENTS -T $SECS -n, -M: $(for w in $WORKLOADS; do printf '%s %s, ' "$w" "$(mode "$w")"; done | sed 's/, $//')"
echo "  median of $RUNS runs (min..max); tps without connection time"
echo "  single-row tables: 8 columns, $PROWS rows; TPC-B-like: pgbench -i -s $SCALE, all four tables tracked"
if [[ $HAVE_WAL_FORMAT == t ]]; then
	echo "  activity_audit once per audit.wal_format: $FORMATS (set by ALTER SYSTEM + reload before each run)"
else
	echo "  this build has no audit.wal_format: one activity_audit variant, in the build's only format"
fi
for sc in $SYNCS; do
	echo
	echo "== synchronous_commit = $sc"
	printf '%-22s %-24s %24s %9s %10s %11s %12s\n' "workload" "variant" "tps" "ratio" "per round" "WAL/txn" "writer lag"
	for w in $WORKLOADS; do
		first=1
		for v in $(variants_of "$w"); do
			ratio=$(calc "$(agg "$sc" "$w" "$v" 5 median) / $(agg "$sc" "$w" plain 5 median)" '%.3f')
			printf '%-22s %-24s %24s %8.2fx %9.2fx %9.0f B %12s\n' \
				"$([[ $first == 1 ]] && wl_title "$w")" "$(label "$v")" \
				"$(printf '%.0f (%.0f..%.0f)' "$(agg "$sc" "$w" "$v" 5 median)" "$(agg "$sc" "$w" "$v" 5 min)" "$(agg "$sc" "$w" "$v" 5 max)")" \
				"$ratio" "$(pratio "$sc" "$w" "$v" plain)" "$(agg "$sc" "$w" "$v" 8 median)" \
				"$(is_audit "$v" && printf '%.2f s' "$(agg "$sc" "$w" "$v" 9 median)")"
			first=0
		done
	done
	echo
	echo "  ratio = median tps / median unaudited tps; per round = median of the per-round ratios (runs"
	echo "  of one round are back to back); WAL/txn = WAL bytes per committed transaction (median);"
	echo "  writer lag = flush() wait right after the run (median): events still to deliver then."
	printf '  targets (issue "WAL format 2", for synchronous_commit = off): single-row >= %.2f, TPC-B-like >= %.2f of unaudited tps\n' \
		"$TARGET_SINGLE" "$TARGET_TPCB"
	for w in $WORKLOADS; do
		target=$TARGET_SINGLE; [[ $w == tpcb ]] && target=$TARGET_TPCB
		for v in $(variants_of "$w"); do
			is_audit "$v" || continue
			ratio=$(calc "$(agg "$sc" "$w" "$v" 5 median) / $(agg "$sc" "$w" plain 5 median)" '%.2f')
			printf '    %-22s %-24s %sx (%s), per round %.2fx (%s)\n' "$(wl_title "$w")" "$(label "$v")" \
				"$ratio" "$(meets "$ratio" "$target")" \
				"$(pratio "$sc" "$w" "$v" plain)" "$(meets "$(pratio "$sc" "$w" "$v" plain)" "$target")"
		done
	done
done
echo
echo "every audited run delivered exactly one event per committed row change (single-row: 1 per"
echo "transaction, TPC-B-like: 4, or 1 when delta = 0 makes its 3 UPDATEs no-ops, which track()"
echo "leaves out by default), counted in the database and checked with writer_status()"
echo
echo "writer_status() at the end:"
pg -P pager=off -x -c "SELECT * FROM activity_audit.writer_status()" | sed 's/^/  /'
