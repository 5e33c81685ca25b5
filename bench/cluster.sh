# bench/cluster.sh — the throwaway cluster of bench/readers.sh and
# bench/writer.sh (sourced, not run).
#
# Before sourcing, set NAME (used in messages and the temporary directory's
# name); PG_CONFIG and BENCH_OS_USER are read from the environment.  After
# bench_cluster_start, $WORK is the temporary directory (removed on exit),
# the server runs in $WORK/data with its socket in $WORK, and pg runs psql
# (unaligned, tuples only, stop on error) as the server's OS user.

PG_CONFIG=${PG_CONFIG:-pg_config}
BINDIR=$("$PG_CONFIG" --bindir)
OS_USER=${BENCH_OS_USER:-postgres}

die() { echo "bench/$NAME: $*" >&2; exit 1; }

# run a command as the server's OS user (PostgreSQL refuses to run as root)
as_user() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u "$OS_USER" -- "$@"
	else
		"$@"
	fi
}

pg() { as_user "$BINDIR/psql" -X -q -A -t -h "$WORK" -d postgres -v ON_ERROR_STOP=1 "$@"; }

# bench_cluster_start [postgresql.conf line ...]: initdb, the library
# preloaded, 512MB of shared buffers, and the given settings; then start it
bench_cluster_start() {
	[[ -f "$("$PG_CONFIG" --sharedir)/extension/activity_audit.control" ]] ||
		die "activity_audit is not installed for $PG_CONFIG; run make install first"
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/activity_audit_$NAME.XXXXXX")
	trap bench_cluster_cleanup EXIT
	[[ $(id -u) -eq 0 ]] && chown "$OS_USER" "$WORK"
	as_user "$BINDIR/initdb" -D "$WORK/data" --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
	{
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$WORK'"
		echo "shared_preload_libraries = 'activity_audit'"
		echo "shared_buffers = 512MB"
		printf '%s\n' "$@"
	} >>"$WORK/data/postgresql.conf"
	as_user "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
}

# stop the server and remove everything (the EXIT trap); a directory the
# benchmark made unwritable is given back first
bench_cluster_cleanup() {
	chmod -R u+w "$WORK" 2>/dev/null || true
	as_user "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
