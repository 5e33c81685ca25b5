#!/usr/bin/env bash
#
# python/tests/run.sh - the Django app's test suite on a throwaway cluster.
#
#   PG_CONFIG=... python/tests/run.sh        (as root, or as the postgres OS user)
#
# Needs the extension installed into PG_CONFIG's tree (tools/test.sh does it)
# and Debian's python3-django, python3-psycopg2 and pgbouncer.  As root it
# copies python/ to a temporary directory and runs there as $PG_USER
# (PostgreSQL refuses to run as root), like tools/test.sh.  It
#   1. initdb's a cluster that preloads the library, on a port of its own,
#      with the extension in template1 (so Django's test database has it);
#   2. starts pgbouncer in transaction pooling mode in front of it, with one
#      server connection per database (so concurrent clients share it);
#   3. runs "manage.py check" and "manage.py test" of the test project;
#   4. stops both and removes the cluster (kept when KEEP_WORKDIR=1).
# BENCH=1 runs manage.py audit_bench (the layer's cost) instead of the tests.
# The last line is "N passed, M failed".

set -euo pipefail

PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PG_USER="${PG_USER:-postgres}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python_dir="$(dirname "$here")"
PYTHON="${PYTHON:-/usr/bin/python3}"

if [[ "$(id -u)" -eq 0 ]]; then
	copy="$(mktemp -d /tmp/activity_audit_django.XXXXXX)"
	cp -a "$python_dir" "$copy/python"
	chown -R "$PG_USER": "$copy"
	status=0
	runuser -u "$PG_USER" -- env -u PGHOST -u PGPORT -u PGDATABASE -u PGUSER LANG=C.UTF-8 \
		PG_CONFIG="$PG_CONFIG" PYTHON="$PYTHON" KEEP_WORKDIR="${KEEP_WORKDIR:-0}" BENCH="${BENCH:-}" \
		bash "$copy/python/tests/run.sh" || status=$?
	[[ "${KEEP_WORKDIR:-0}" != 0 ]] || rm -rf "$copy"
	exit "$status"
fi

bindir="$("$PG_CONFIG" --bindir)"
work="$(mktemp -d "${TMPDIR:-/tmp}/aa_django_cluster.XXXXXX")"
port="${AUDIT_TEST_PORT:-$((20000 + $$ % 20000))}"
bport=$((port + 1))
data="$work/data"

cleanup() {
	[[ -f "$work/pgbouncer.pid" ]] && kill "$(cat "$work/pgbouncer.pid")" 2>/dev/null || true
	"$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	if [[ "${KEEP_WORKDIR:-0}" == 0 ]]; then rm -rf "$work"; else echo "cluster kept in $work"; fi
}
trap cleanup EXIT

"$bindir/initdb" -D "$data" -A trust -U postgres -E UTF8 >"$work/initdb.log" 2>&1
cat >>"$data/postgresql.conf" <<CONF
shared_preload_libraries = 'activity_audit'
wal_level = logical
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
max_connections = 40
fsync = off
CONF
if [[ -n "${BENCH:-}" ]]; then
	echo "shared_preload_libraries = 'activity_audit,pg_stat_statements'" >>"$data/postgresql.conf"
fi
"$bindir/pg_ctl" -D "$data" -l "$work/postmaster.log" -w start >/dev/null
"$bindir/psql" -X -q -h "$work" -p "$port" -U postgres -d template1 -v ON_ERROR_STOP=1 \
	-c 'CREATE EXTENSION activity_audit'
"$bindir/createdb" -h "$work" -p "$port" -U postgres audit_site
"$bindir/createdb" -h "$work" -p "$port" -U postgres -T template0 audit_noext

bouncer=""
if command -v pgbouncer >/dev/null 2>&1 || [[ -x /usr/sbin/pgbouncer ]]; then
	bouncer="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
	echo '"postgres" ""' >"$work/userlist.txt"
	cat >"$work/pgbouncer.ini" <<INI
[databases]
* = host=$work port=$port
[pgbouncer]
listen_addr =
listen_port = $bport
unix_socket_dir = $work
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 50
ignore_startup_parameters = extra_float_digits
pidfile = $work/pgbouncer.pid
logfile = $work/pgbouncer.log
INI
	"$bouncer" -d "$work/pgbouncer.ini"
	export AUDIT_TEST_BOUNCER_PORT="$bport"
fi

export AUDIT_TEST_PGHOST="$work" AUDIT_TEST_PGPORT="$port"
export PYTHONPATH="$python_dir${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1
cd "$here"
status=0
"$PYTHON" manage.py check || status=$?
"$PYTHON" manage.py makemigrations --check --dry-run activity_audit clinic || status=$?
if [[ -n "${BENCH:-}" ]]; then
	# BENCH=1: measure the Django layer's cost instead of testing
	"$PYTHON" manage.py migrate -v 0
	"$PYTHON" manage.py audit_bench
	exit $?
fi
"$PYTHON" manage.py test -v 2 --noinput clinic 2>&1 | tee "$work/test.out" || status=$?
ran="$(sed -nE 's/^Ran ([0-9]+) tests? .*/\1/p' "$work/test.out" | tail -n 1 || true)"
bad="$(sed -nE 's/^FAILED \((.*)\)$/\1/p' "$work/test.out" | { grep -oE '[0-9]+' || true; } |
	awk '{ s += $1 } END { print s + 0 }')"
ran="${ran:-0}"
skipped="$(sed -nE 's/^OK \(skipped=([0-9]+)\)$/\1/p; s/^FAILED \(.*skipped=([0-9]+).*\)$/\1/p' "$work/test.out" | tail -n 1 || true)"
ran=$((ran - ${skipped:-0}))
((${skipped:-0} == 0)) || echo "skipped: $skipped (see above)"
if ((status != 0 && bad == 0)); then bad=1; fi
if ((status != 0)); then
	tail -n 50 "$work/postmaster.log" || true
	[[ -f "$work/pgbouncer.log" ]] && tail -n 20 "$work/pgbouncer.log"
fi
printf '%s passed, %s failed\n' "$((ran - bad > 0 ? ran - bad : 0))" "$bad"
exit "$status"
