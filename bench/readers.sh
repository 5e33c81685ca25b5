#!/usr/bin/env bash
# bench/readers.sh — speed of reading and proving the delivered stream:
# activity_audit.verify(), activity_audit.log_stream() and the offline
# activity_audit_verify, over a stream of BENCH_EVENTS events (default
# 1,000,000), and how fast the writer delivered them.
#
#   make install && sudo bench/readers.sh
#   BENCH_EVENTS=20000 sudo bench/readers.sh        # quick smoke run
#
# Like bench/run.sh it makes a throwaway cluster in a temporary directory
# (Unix socket only, server run as the postgres OS user when started as
# root) and removes it on exit.

set -euo pipefail

EVENTS=${BENCH_EVENTS:-1000000}
NAME=readers.sh
. "$(dirname "$0")/cluster.sh"
[[ -x "$BINDIR/activity_audit_verify" ]] ||
	die "activity_audit_verify is not installed in $BINDIR; run make install first"

bench_cluster_start "max_wal_size = 4GB"
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }'; }

pg -c "CREATE EXTENSION activity_audit" \
   -c "CREATE TABLE t (id bigint PRIMARY KEY, a int, c text, d numeric, e timestamptz, f boolean, g text, h int)" \
   -c "SELECT activity_audit.track('t')" >/dev/null

echo "== $EVENTS events in transactions of 10000 rows"
t0=$(date +%s%N)
pg -c "DO \$\$ BEGIN FOR i IN 0..($EVENTS - 1) / 10000 LOOP
         INSERT INTO t SELECT g, g, 'some text value number ' || g, g * 1.5, now(), g % 2 = 0, md5(g::text), 7
           FROM generate_series(i * 10000 + 1, least((i + 1) * 10000, $EVENTS)) g;
         COMMIT;
       END LOOP; END \$\$" >/dev/null
ins_ms=$(ms "$t0")
t1=$(date +%s%N)
[[ $(pg -c "SELECT activity_audit.flush('30min')") == t ]] || die "flush() timed out"
lag_ms=$(ms "$t1")
delivered=$(pg -c "SELECT events_delivered FROM activity_audit.writer_status()")
echo "   inserted in $ins_ms ms; the writer was done $lag_ms ms after the last commit; $delivered events delivered"
files=$(ls "$WORK/data/log" | wc -l)
size=$(du -sm "$WORK/data/log" | cut -f1)
echo "   stream: $files files, $size MB"

t0=$(date +%s%N)
v=$(pg -c "SELECT ok || ' ' || events FROM activity_audit.verify()")
v_ms=$(ms "$t0")
echo "verify():               $v_ms ms  ($(rate "$EVENTS" "$v_ms") events/s)   result: $v"

t0=$(date +%s%N)
n=$(pg -c "SELECT count(*) FROM activity_audit.log_stream()")
l_ms=$(ms "$t0")
echo "log_stream() count(*):  $l_ms ms  ($(rate "$n" "$l_ms") events/s)"

since=$(pg -c "SELECT max(ts) - interval '1 second' FROM activity_audit.log_stream()")
t0=$(date +%s%N)
n=$(pg -c "SELECT count(*) FROM activity_audit.log_stream(since => '$since')")
echo "log_stream(last second): $(ms "$t0") ms  ($n events)"

t0=$(date +%s%N)
as_user "$BINDIR/activity_audit_verify" -q "$WORK/data/log" >/dev/null || die "activity_audit_verify reported a broken chain"
o_ms=$(ms "$t0")
echo "activity_audit_verify:  $o_ms ms  ($(rate "$EVENTS" "$o_ms") events/s)"
