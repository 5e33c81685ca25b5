#!/usr/bin/env bash
# bench/memsample.sh — sample one process's memory from /proc while a statement runs.
#
#   memsample.sh start DIR TAG PID   reset PID's VmHWM, then sample it in the background
#   memsample.sh stop  DIR TAG       stop that sampler; leaves DIR/TAG.result
#
# DIR/TAG.result holds one line, all in kB:
#   rss_anon_start rss_anon_peak rss_anon_end rss_shmem_peak vmhwm_end hwm_was_reset(1/0)
# RssAnon is the process's private memory (palloc'd contexts live there); RssShmem is the
# shared memory it has touched (shared_buffers pages, which grow with the data written, not
# with what the backend holds).  VmHWM is the kernel's peak of both together.
#
# run.sh calls it through psql's \! so the sampler starts right before and stops right after
# the measured statement, in the measured backend's own session.  Needs to run as root or as
# the server's OS user (to read /proc/PID/status and write /proc/PID/clear_refs).
set -euo pipefail

cmd=${1:?usage: memsample.sh start|stop DIR TAG [PID]}
dir=${2:?DIR missing}
tag=${3:?TAG missing}
interval=${BENCH_SAMPLE_INTERVAL:-0.01}

read_status()	# PID -> sets anon shmem hwm (kB); fails if the process is gone
{
	local k v _
	anon=0 shmem=0 hwm=0
	while read -r k v _; do
		case $k in
			RssAnon:) anon=$v ;;
			RssShmem:) shmem=$v ;;
			VmHWM:) hwm=$v ;;
		esac
	done < "/proc/$1/status"
}

case $cmd in
start)
	pid=${4:?PID missing}
	rm -f "$dir/$tag.stop" "$dir/$tag.result" "$dir/$tag.done"
	reset=0
	if echo 5 > "/proc/$pid/clear_refs" 2>/dev/null; then reset=1; fi
	read_status "$pid"
	(
		a0=$anon peak_anon=$anon peak_shmem=$shmem last_hwm=$hwm
		while [[ ! -e "$dir/$tag.stop" ]]; do
			read_status "$pid" 2>/dev/null || break
			(( anon > peak_anon )) && peak_anon=$anon
			(( shmem > peak_shmem )) && peak_shmem=$shmem
			last_hwm=$hwm
			sleep "$interval"
		done
		# one last look, after the statement finished
		if read_status "$pid" 2>/dev/null; then
			(( anon > peak_anon )) && peak_anon=$anon
			(( shmem > peak_shmem )) && peak_shmem=$shmem
			last_hwm=$hwm
		fi
		echo "$a0 $peak_anon $anon $peak_shmem $last_hwm $reset" > "$dir/$tag.result"
		touch "$dir/$tag.done"
	) </dev/null >/dev/null 2>&1 &
	echo $! > "$dir/$tag.pid"
	;;
stop)
	touch "$dir/$tag.stop"
	for _ in $(seq 1 500); do
		[[ -e "$dir/$tag.done" ]] && exit 0
		sleep 0.01
	done
	echo "memsample.sh: sampler $tag did not finish" >&2
	exit 1
	;;
*)
	echo "memsample.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
