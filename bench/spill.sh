#!/usr/bin/env bash
# bench/spill.sh — what one transaction far larger than audit.writer_memory
# costs the writer: its CPU time and the bytes it writes from the start of
# the transaction until flush() returns after the commit, and how long that
# flush() waits.
#
#   make install && sudo bench/spill.sh
#   BENCH_SPILL_ROWS="2000000 10000000" sudo bench/spill.sh
#   BENCH_SPILL_ROWS=200000 sudo bench/spill.sh                  # smoke run
#
# Each measurement is one psql session: the writer's counters are read
# (from /proc/<pid>/stat and /proc/<pid>/io, through pg_read_file()), then
# BEGIN, one INSERT of N rows into t_audit (bench/insert.sql, the table of
# bench/setup.sql), a flush() inside the still open transaction so that the
# writer has read all of it (spilled_bytes and the spill directory are
# sampled then), COMMIT, and a timed flush() that returns once every event
# is delivered; then the counters again.  The table is truncated and a
# CHECKPOINT taken before each measurement.  audit.writer_memory keeps its
# default unless BENCH_WRITER_MEMORY is set.
#
# Reported per N: writer CPU (utime + stime, in seconds), write_bytes (what
# the writer sent to the storage layer: the stream files, and the spill
# files where there are any), wchar and rchar (bytes through write() and
# read() calls: rchar includes the WAL it reads), the stream's own growth
# (writer_status().bytes_written), the WAL the transaction wrote, the
# spilled_bytes and the spill directory's size while it was open, and the
# wall time of the flush() after COMMIT with the writer's CPU and
# read_bytes (reads that reached the disk) during it.  Every event is
# checked to be delivered exactly once (events_delivered).
#
# Like bench/run.sh it makes a throwaway cluster in a temporary directory
# (Unix socket only; run as root, the server runs as the postgres OS user)
# and removes it on exit.
#
# Environment:
#   BENCH_SPILL_ROWS     row counts, one transaction each          (default 2000000)
#   BENCH_WRITER_MEMORY  audit.writer_memory, e.g. 64MB            (default: the GUC's default)
#   BENCH_OS_USER        OS user that runs the server when run as root (default postgres)
#   PG_CONFIG            pg_config of the PostgreSQL to use        (default pg_config)
#   TMPDIR               where the temporary cluster goes          (default /tmp)

set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROWS_LIST=${BENCH_SPILL_ROWS:-2000000}
NAME=spill.sh
. "$HERE/cluster.sh"
for n in $ROWS_LIST; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_SPILL_ROWS must list positive integers (got '$ROWS_LIST')"
done

conf=("max_wal_size = 16GB" "checkpoint_timeout = 30min")
[[ -n ${BENCH_WRITER_MEMORY:-} ]] && conf+=("audit.writer_memory = '$BENCH_WRITER_MEMORY'")
bench_cluster_start "${conf[@]}"
CLK_TCK=$(getconf CLK_TCK)

pg -c "CREATE EXTENSION activity_audit" >/dev/null
pg -f "$HERE/setup.sql" >/dev/null
pg -c "SELECT activity_audit.track('t_audit')" >/dev/null
# warm-up: catalog caches, the stream's first file
pg -v tbl=t_audit -v lo=0 -v hi=0 -f "$HERE/insert.sql" >/dev/null
[[ $(pg -c "SELECT activity_audit.flush('60s')") == t ]] || die "the writer did not deliver the warm-up row"

echo "activity_audit spill benchmark: $("$PG_CONFIG" --version), $(nproc) CPUs," \
	"audit.writer_memory = $(pg -c 'SHOW audit.writer_memory')"

# measure N: one transaction of N rows; prints one RESULT line
measure() {
	local n=$1
	pg -c "TRUNCATE t_audit" -c "CHECKPOINT" >/dev/null
	[[ $(pg -c "SELECT activity_audit.flush('600s')") == t ]] || die "the writer did not catch up"
	pg -v tbl=t_audit -v lo=1 -v hi="$n" -v script="$HERE/insert.sql" \
		-v spilldir="$WORK/data/pg_activity_audit/spill" <<-'EOF'
		SET client_min_messages = warning;
		-- the writer's CPU ticks and I/O counters, from /proc
		CREATE FUNCTION pg_temp.wproc(pid int, OUT ticks bigint, OUT wbytes bigint,
		                              OUT wchar bigint, OUT rchar bigint, OUT rbytes bigint)
		LANGUAGE sql AS $$
		  SELECT s[12]::bigint + s[13]::bigint,
		         (regexp_match(io, '(?:^|\n)write_bytes: (\d+)'))[1]::bigint,
		         (regexp_match(io, '(?:^|\n)wchar: (\d+)'))[1]::bigint,
		         (regexp_match(io, '(?:^|\n)rchar: (\d+)'))[1]::bigint,
		         (regexp_match(io, '(?:^|\n)read_bytes: (\d+)'))[1]::bigint
		    FROM regexp_split_to_array(regexp_replace(pg_read_file('/proc/' || pid || '/stat'),
		                                              '^.*[)] ', ''), ' ') s,
		         pg_read_file('/proc/' || pid || '/io') io
		$$;
		SELECT pid AS wpid FROM activity_audit.writer_status() \gset
		SELECT p.ticks AS c0, p.wbytes AS w0, p.wchar AS wc0, p.rchar AS rc0,
		       s.bytes_written AS s0, s.events_delivered AS e0,
		       pg_current_wal_insert_lsn() AS l0
		  FROM activity_audit.writer_status() s, pg_temp.wproc(:wpid) p \gset
		BEGIN;
		\i :script
		SELECT pg_current_wal_insert_lsn() AS l1 \gset
		SELECT activity_audit.flush('60min') AS caught_up \gset
		SELECT spilled_bytes AS spilled FROM activity_audit.writer_status() \gset
		\setenv SPILLDIR :spilldir
		\! echo "SPILLDIR $(du -sb "$SPILLDIR" 2>/dev/null | cut -f1)"
		SELECT ticks AS cc, rbytes AS rbc FROM pg_temp.wproc(:wpid) \gset
		COMMIT;
		SELECT clock_timestamp() AS t0 \gset
		SELECT activity_audit.flush('60min') AS delivered,
		       round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 3) AS flush_s \gset
		SELECT p.ticks - :c0 AS cpu, p.ticks - :cc AS fcpu, p.rbytes - :rbc AS frbytes,
		       p.wbytes - :w0 AS wbytes, p.wchar - :wc0 AS wchar,
		       p.rchar - :rc0 AS rchar, s.bytes_written - :s0 AS stream,
		       s.events_delivered - :e0 AS events, s.pid = :wpid AS same_writer,
		       pg_wal_lsn_diff(:'l1', :'l0')::bigint AS wal
		  FROM activity_audit.writer_status() s, pg_temp.wproc(:wpid) p \gset
		\echo RESULT :caught_up :delivered :same_writer :events :cpu :fcpu :frbytes :wbytes :wchar :rchar :stream :wal :spilled :flush_s
	EOF
}

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
secs() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'; }

printf '\n%9s %7s %8s %8s %9s %9s %9s %9s %8s %9s %9s %8s\n' rows "CPU s" "write MB" \
	"wchar MB" "rchar MB" "stream MB" "WAL MB" "spilled MB" "spill MB" "flush s" "flush CPU" "flush rd"
for n in $ROWS_LIST; do
	out=$(measure "$n")
	read -r _ caught delivered same events cpu fcpu frbytes wbytes wchar rchar stream wal spilled flush_s \
		<<<"$(grep '^RESULT ' <<<"$out")"
	spilldir=$(sed -n 's/^SPILLDIR //p' <<<"$out")
	[[ ${caught:-} == t && ${delivered:-} == t ]] || die "flush() timed out for $n rows: $out"
	[[ $same == t ]] || die "the writer restarted during the $n-row transaction: $out"
	[[ $events == "$n" ]] || die "the $n-row transaction delivered $events events"
	printf '%9s %7s %8s %8s %9s %9s %9s %9s %8s %9s %9s %8s\n' "$n" "$(secs "$cpu")" \
		"$(mb "$wbytes")" "$(mb "$wchar")" "$(mb "$rchar")" "$(mb "$stream")" "$(mb "$wal")" \
		"$(mb "$spilled")" "$( [[ -n $spilldir ]] && mb "$spilldir" || echo none)" "$flush_s" \
		"$(secs "$fcpu")" "$(mb "$frbytes")"
done
echo
echo "CPU, write, wchar, rchar: the writer process from before BEGIN until flush() returned after COMMIT"
echo "spilled, spill: spilled_bytes and the spill directory's size while the transaction was open and"
echo "  read by the writer, just before COMMIT"
echo "flush s: wall time of flush() after COMMIT (the writer had read the open transaction already);"
echo "  flush CPU, flush rd: the writer's CPU and read_bytes (reads that reached the disk) meanwhile"
