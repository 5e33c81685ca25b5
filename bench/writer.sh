#!/usr/bin/env bash
# bench/writer.sh — what the writer costs and how fast it delivers, next to
# what the trigger costs, in one run:
#
#   1. trigger CPU per event: the backend's own CPU time (user + system, from
#      /proc) for INSERTs of BENCH_ROWS rows into the unaudited and into the
#      audited table, BENCH_RUNS times each; the difference of the medians per
#      row is what capturing one event costs the session (WAL bytes too);
#   2. steady state: BENCH_EVENTS events in transactions of BENCH_TXN_ROWS rows
#      with the writer following: its CPU per event and how long after the
#      last commit it had delivered everything;
#   3. burst: the same events written while the sink directory cannot be
#      created (the writer waits, keeping the WAL), then it can: the time until the lag is 0 gives events/s, and the
#      writer's CPU over the drain gives CPU per event.
#
#   make install && sudo bench/writer.sh
#   BENCH_EVENTS=50000 BENCH_ROWS=20000 BENCH_RUNS=1 sudo bench/writer.sh   # smoke run
#   BENCH_WAL_FORMAT=full sudo bench/writer.sh       # audit.wal_format (default compact)
#
# Like bench/run.sh it makes a throwaway cluster in a temporary directory
# (Unix socket only, server run as the postgres OS user when started as
# root) and removes it on exit.  CPU times come from /proc (10 ms ticks).

set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
EVENTS=${BENCH_EVENTS:-1000000}
TXN_ROWS=${BENCH_TXN_ROWS:-10000}
ROWS=${BENCH_ROWS:-200000}
RUNS=${BENCH_RUNS:-5}
WAL_FORMAT=${BENCH_WAL_FORMAT:-compact}
NAME=writer.sh
. "$HERE/cluster.sh"
for v in EVENTS TXN_ROWS ROWS RUNS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer (got '${!v}')"
done

[[ $WAL_FORMAT == compact || $WAL_FORMAT == full ]] || die "BENCH_WAL_FORMAT must be compact or full (got '$WAL_FORMAT')"
bench_cluster_start "max_wal_size = 8GB" "checkpoint_timeout = 30min" "audit.wal_format = $WAL_FORMAT"
now_ns() { date +%s%N; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }     # user + system, 10 ms ticks
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
status() { pg -c "SELECT $1 FROM activity_audit.writer_status()"; }

pg -c "CREATE EXTENSION activity_audit" >/dev/null
pg -f "$HERE/setup.sql" >/dev/null
pg -c "SELECT activity_audit.track('t_audit')" >/dev/null

# INSERT rows lo..hi into a table in one psql session; prints the backend's
# CPU ms for the statement and the WAL bytes it wrote.
insert_cpu() {
	local tbl=$1 lo=$2 hi=$3
	pg -v tbl="$tbl" -v lo="$lo" -v hi="$hi" <<-'EOF'
		SELECT (split_part(pg_read_file('/proc/self/stat'), ' ', 14)::bigint
		      + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::bigint) AS c0,
		       pg_current_wal_insert_lsn() AS w0 \gset
		\i bench/insert.sql
		SELECT ((split_part(pg_read_file('/proc/self/stat'), ' ', 14)::bigint
		       + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::bigint) - :c0) * 10
		       || ' ' || (pg_current_wal_insert_lsn() - :'w0'::pg_lsn);
	EOF
}

# Write rows 1..EVENTS into t_audit in transactions of TXN_ROWS rows.
insert_events() {
	local lo=1 hi
	while ((lo <= EVENTS)); do
		hi=$((lo + TXN_ROWS - 1))
		((hi > EVENTS)) && hi=$EVENTS
		printf '\\set lo %d\n\\set hi %d\n\\set tbl t_audit\n\\i bench/insert.sql\n' "$lo" "$hi"
		lo=$((hi + 1))
	done | (cd "$HERE/.." && pg)
}

echo "activity_audit writer benchmark: $("$PG_CONFIG" --version), $(nproc) CPUs, audit.wal_format = $WAL_FORMAT"
cd "$HERE/.."

# ---------------------------------------------------------------- 1. trigger
echo "== 1. trigger: backend CPU for INSERT of $ROWS rows, $RUNS runs each"
declare -a plain_ms audit_ms plain_wal audit_wal
for ((r = 1; r <= RUNS; r++)); do
	for tbl in t_plain t_audit; do
		pg -c "TRUNCATE $tbl" -c "CHECKPOINT" >/dev/null
		read -r ms wal < <(insert_cpu "$tbl" 1 "$ROWS")
		printf '   run %d  %-8s %6d ms CPU  %6.1f MB WAL\n' "$r" "$tbl" "$ms" "$(awk -v w="$wal" 'BEGIN{print w/1048576}')"
		if [[ $tbl == t_plain ]]; then plain_ms+=("$ms"); plain_wal+=("$wal"); else audit_ms+=("$ms"); audit_wal+=("$wal"); fi
	done
	pg -c "SELECT activity_audit.flush('600s')" >/dev/null
done
p_ms=$(printf '%s\n' "${plain_ms[@]}" | median)
a_ms=$(printf '%s\n' "${audit_ms[@]}" | median)
p_wal=$(printf '%s\n' "${plain_wal[@]}" | median)
a_wal=$(printf '%s\n' "${audit_wal[@]}" | median)
trigger_us=$(awk -v a="$a_ms" -v p="$p_ms" -v n="$ROWS" 'BEGIN { printf "%.2f", (a - p) * 1000 / n }')
wal_per_event=$(awk -v a="$a_wal" -v p="$p_wal" -v n="$ROWS" 'BEGIN { printf "%.0f", (a - p) / n }')

# ---------------------------------------------------------------- 2. steady state
echo "== 2. steady state: $EVENTS events in transactions of $TXN_ROWS rows, writer following"
pg -c "TRUNCATE t_audit" -c "SELECT activity_audit.flush('600s')" >/dev/null
W=$(status pid)
e0=$(status events_delivered)
c0=$(ticks "$W")
t0=$(now_ns)
insert_events
t1=$(now_ns)
pg -c "SELECT activity_audit.flush('600s')" >/dev/null
t2=$(now_ns)
c1=$(ticks "$W")
steady_n=$(( $(status events_delivered) - e0 ))
steady_us=$(awk -v c=$((c1 - c0)) -v n="$steady_n" 'BEGIN { printf "%.2f", c * 10000 / n }')
steady_behind=$(( (t2 - t1) / 1000000 ))
steady_insert=$(( (t1 - t0) / 1000000 ))

# ---------------------------------------------------------------- 3. burst
echo "== 3. burst: $EVENTS events while the sink is unwritable, then the drain"
pg -c "TRUNCATE t_audit" -c "SELECT activity_audit.flush('600s')" >/dev/null
W=$(status pid)
e0=$(status events_delivered)
# the stream moves to a directory the writer cannot create yet
mkdir "$WORK/burst"
[[ $(id -u) -eq 0 ]] && chown "$OS_USER" "$WORK/burst"
chmod 0500 "$WORK/burst"
pg -c "ALTER SYSTEM SET audit.log_directory = '$WORK/burst/log'" -c "SELECT pg_reload_conf()" >/dev/null
insert_events
sleep 2		# the writer is waiting on the sink now
[[ $(status events_delivered) == "$e0" ]] || die "the writer delivered while the sink was unwritable"
backlog=$(status lag_bytes)
c0=$(ticks "$W")
chmod 0700 "$WORK/burst"
t0=$(now_ns)
[[ $(pg -c "SELECT activity_audit.flush('600s')") == t ]] || die "the backlog was not delivered within 600 s"
t1=$(now_ns)
c1=$(ticks "$W")
burst_n=$(( $(status events_delivered) - e0 ))
[[ $burst_n == "$EVENTS" ]] || die "delivered $burst_n events, expected $EVENTS"
burst_ms=$(( (t1 - t0) / 1000000 ))
burst_rate=$(awk -v n="$burst_n" -v ms="$burst_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')
burst_us=$(awk -v c=$((c1 - c0)) -v n="$burst_n" 'BEGIN { printf "%.2f", c * 10000 / n }')

# ---------------------------------------------------------------- report
cat <<EOF

results
  trigger (session) CPU per event     $trigger_us us   (INSERT CPU median: unaudited $p_ms ms, audited $a_ms ms, $ROWS rows)
  WAL per event                       $wal_per_event bytes (audited minus unaudited INSERT)
  writer, steady state                $steady_us us CPU per event; $steady_n events inserted in $steady_insert ms, all delivered $steady_behind ms after the last commit
  writer, burst of $EVENTS        drained in $burst_ms ms = $burst_rate events/s; $burst_us us CPU per event (backlog $backlog bytes of WAL)
  writer CPU / trigger CPU            steady $(awk -v w="$steady_us" -v t="$trigger_us" 'BEGIN { printf "%.2f", w / t }'), burst $(awk -v w="$burst_us" -v t="$trigger_us" 'BEGIN { printf "%.2f", w / t }')
EOF
