#!/usr/bin/env bash
#
# tools/demo.sh - try activity_audit on a throwaway cluster.
#
#   tools/demo.sh          (as root, or as a user who may use sudo)
#
# Installs the packages it needs (if missing), builds and installs the
# extension, starts a private PostgreSQL cluster in a temporary directory
# (as the postgres OS user, Unix socket only, nothing else touched), audits a
# "patients" table, makes a few changes and prints the audit events read back
# through logical decoding.  The cluster is stopped and removed on exit.
#
# Environment: WERROR=0 to build without -Werror; KEEP_WORKDIR=1 to keep the
# temporary directory; PG_MAJOR, PG_CONFIG, PG_USER as in tools/common.sh.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

workdir=""
data=""
started=0
server_log=""

cleanup() {
	local status=$?
	if ((started)); then
		as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if ((status != 0)) && [[ -n "$server_log" && -s "$server_log" ]]; then
		printf '\n----- server log (last 50 lines) -----\n' >&2
		tail -n 50 "$server_log" >&2 || true
	fi
	if [[ -n "$workdir" && -d "$workdir" && "${KEEP_WORKDIR:-0}" == 0 ]]; then
		rm -rf "$workdir"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# libkrb5-dev: the server headers include gssapi/gssapi.h
ensure_packages build-essential "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" libkrb5-dev
check_pg_config
bindir="$("$PG_CONFIG" --bindir)"

workdir="$(make_workdir activity_audit_demo)"
copy_tree "$workdir/src"
build_and_install "$workdir/src" >"$workdir/build.log" 2>&1 || {
	cat "$workdir/build.log" >&2
	die "build failed"
}
say "built and installed activity_audit"

# --- a private cluster --------------------------------------------------------
# It listens only on a Unix socket in its own directory, so any port number
# is free there; a random one just keeps the socket name distinct.
data="$workdir/data"
server_log="$workdir/server.log"
port=$((40000 + RANDOM % 20000))
as_pg "$bindir/initdb" -D "$data" --auth=trust --username=postgres --encoding=UTF8 \
	--locale=C.UTF-8 --no-sync >"$workdir/initdb.log" 2>&1 || {
	cat "$workdir/initdb.log" >&2
	die "initdb failed"
}
cat >>"$data/postgresql.conf" <<EOF

# activity_audit demo
shared_preload_libraries = 'activity_audit'
wal_level = logical
listen_addresses = ''
unix_socket_directories = '$workdir'
port = $port
EOF
as_pg "$bindir/pg_ctl" -D "$data" -l "$server_log" -w start >/dev/null
started=1
say "started a throwaway cluster (PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), socket in $workdir, port $port)"

psql_demo() {
	as_pg "$bindir/psql" -X -v ON_ERROR_STOP=1 -h "$workdir" -p "$port" -U postgres \
		-d postgres "$@"
}

# show_events: read the audit messages decoded since the last call, print each
# one pretty (keys stay in the order the message has them), and set n_events
# to the number of events among them: with audit.wal_format = compact (the
# default) a header message holds what a table's rows share and each row has
# a message of its own, [timestamp, event_type, ...] (README, "The WAL
# messages"); with full, every message is a whole event.
# test_decoding prints a logical message as
#   message: transactional: 1 prefix: activity_audit, sz: N content:{...}
# The cast to json checks each message is valid JSON without reordering it.
events_sql="SELECT substr(data, strpos(data, 'content:') + length('content:'))::json
FROM pg_logical_slot_get_changes('demo', NULL, NULL, 'include-xids', '0')
WHERE data LIKE 'message: transactional: 1 prefix: activity\_audit, %';"

show_events() {
	local events
	events="$(psql_demo -A -t -q -c "$events_sql")"
	n_events=0
	[[ -n "$events" ]] || return 0
	n_events="$(printf '%s\n' "$events" | grep -c -e '^\[' -e '^{"timestamp"' || true)"
	printf '%s\n' "$events" | perl -ne '
		# Re-indent one JSON text per line; strings are copied untouched.
		chomp;
		my ($out, $depth) = ("", 0);
		my $nl = sub { "\n" . ("    " x $depth) };
		while (/\G(\s+|"(?:[^"\\]|\\.)*"|[{\[]|[}\]]|[,:]|[^\s"{}\[\],:]+)/gc) {
			my $t = $1;
			if ($t =~ /^\s/) { next; }
			elsif ($t eq "{" || $t eq "[") {
				if (/\G\s*([}\]])/gc) { $out .= $t . $1; next; }
				$depth++;
				$out .= $t . $nl->();
			}
			elsif ($t eq "}" || $t eq "]") { $depth--; $out .= $nl->() . $t; }
			elsif ($t eq ",") { $out .= "," . $nl->(); }
			elsif ($t eq ":") { $out .= ": "; }
			else { $out .= $t; }
		}
		print "$out\n\n";'
}

# --- set up -------------------------------------------------------------------
say "audit the patients table: ssn left out, email redacted"
psql_demo -a -q <<'SQL'
CREATE EXTENSION activity_audit;
CREATE TABLE patients (id int PRIMARY KEY, name text, email text, ssn text, score int);
SELECT activity_audit.track('public.patients', model_name => 'Patient',
                            exclude => '{ssn}', redact => '{email}');
SELECT * FROM activity_audit.tracked;
SELECT 'demo' AS slot FROM pg_create_logical_replication_slot('demo', 'test_decoding');
SQL

# --- a committed transaction ----------------------------------------------------
printf '\n'
say "one transaction, made on behalf of application user 14ab1197"
psql_demo -a -q <<'SQL'
BEGIN;
SELECT activity_audit.set_context('14ab1197', '{"email": "a@b.c"}', 'req-1');
INSERT INTO patients VALUES (1, 'Ada Lovelace', 'ada@example.org', '123-45-6789', 90);
UPDATE patients SET email = 'ada@example.com', score = 95 WHERE id = 1;
DELETE FROM patients WHERE id = 1;
COMMIT;
SQL

printf '\n'
say "its audit messages, as logical decoding (test_decoding) delivers them (a header, then a message per row):"
printf '%s\n' "$events_sql"
printf '\n'
show_events
say "$n_events audit events"
committed_events=$n_events

# --- a rolled-back transaction --------------------------------------------------
printf '\n'
say "a transaction that rolls back"
psql_demo -a -q <<'SQL'
BEGIN;
INSERT INTO patients VALUES (2, 'Charles Babbage', 'cb@example.org', '987-65-4321', 70);
ROLLBACK;
SQL
show_events
say "$n_events audit events from the rolled-back transaction"
rolled_back_events=$n_events

# --- what the writer delivered ----------------------------------------------------
printf '\n'
say "what the writer delivered to the file sink (\$PGDATA/log), hash-chained:"
psql_demo -a -q <<'SQL'
SELECT activity_audit.flush();
SELECT pid IS NOT NULL AS writer_running, events_delivered, current_file, lag_bytes, last_error
  FROM activity_audit.writer_status();
SQL
delivered=0
for f in "$data"/log/audit-*.jsonl; do
	[[ -f $f ]] || continue
	printf '%s:\n' "${f#"$data"/}"
	cat "$f"
	delivered=$((delivered + $(wc -l <"$f")))
done
say "$delivered events in the file"

printf '\n'
if ((committed_events != 3 || rolled_back_events != 0 || delivered != 3)); then
	die "expected 3 events from the committed transaction (in the slot and in the file) and none from the rolled-back one"
fi
say "done; the throwaway cluster is removed now"
