#!/usr/bin/env bash
#
# tools/test.sh - build activity_audit and run every test suite.
#
#   tools/test.sh          (as root, or as a user who may use sudo)
#
# This is the project's test command; CI runs it on a fresh Debian machine as
# root.  It
#   1. installs the Debian packages it needs, if any are missing
#      (build-essential, postgresql-$PG_MAJOR, postgresql-server-dev-$PG_MAJOR,
#      libipc-run-perl, postgresql-$PG_MAJOR-wal2json, util-linux-extra,
#      clickhouse-server, clickhouse-client, python3 -- without starting
#      ClickHouse's system service);
#   2. copies the source tree to a fresh temporary directory owned by the
#      postgres OS user, builds it there with warnings as errors and installs
#      it (the clone itself is left untouched);
#   3. runs "make installcheck" there as postgres (PostgreSQL refuses to run
#      as root), one suite at a time so that a failure in one does not hide
#      the others: pg_regress (sql/, expected/), isolation (test/isolation/)
#      and TAP (test/t/*.pl), each on a throwaway cluster of its own
#      (TEMP_INSTANCE=1; TAP 038 runs "make installcheck" against a running
#      server, as PGXS users do), then the Django app's tests (python/tests/
#      run.sh, with python3-django, python3-psycopg2 and pgbouncer, installed
#      here; skipped with a message if they cannot be);
#   4. prints the diffs and logs of whatever failed, and ends with one line
#      "N passed, M failed".  The exit status is non-zero on any failure.
#
# It also works as an ordinary user: missing packages are installed through
# sudo, the switch to postgres is skipped (the servers run as that user), and
# "make install" uses sudo only if PostgreSQL's directories are not writable.
#
# Environment:
#   WERROR=0          build without -Werror
#   KEEP_WORKDIR=1    keep the temporary directory even when all tests pass
#                     (it is always kept when something fails)
#   PG_MAJOR, PG_CONFIG, PG_USER   see tools/common.sh

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

total_pass=0
total_fail=0
workdir=""
keep_workdir="${KEEP_WORKDIR:-0}"

cleanup() {
	if [[ -n "$workdir" && -d "$workdir" && "$keep_workdir" == 0 ]]; then
		rm -rf "$workdir"
	fi
}
trap cleanup EXIT

# summary: the last line of output, always in the same form.
summary() {
	printf '%s passed, %s failed\n' "$total_pass" "$total_fail"
}

# show_file FILE [MAX_LINES]: print a file under a header, capped in length.
show_file() {
	local file="$1" max="${2:-400}" lines
	[[ -s "$file" ]] || return 0
	lines="$(wc -l <"$file")"
	printf '\n----- %s' "${file#"$workdir"/}"
	if ((lines > max)); then
		printf ' (last %s of %s lines)' "$max" "$lines"
	fi
	printf ' -----\n'
	tail -n "$max" "$file"
	printf -- '----- end of %s -----\n' "${file##*/}"
}

# count_pg_regress OUTPUT_FILE: set n_pass/n_fail from pg_regress output.
# Handles the PostgreSQL 13-15 form ("test foo ... ok", "     foo ... ok" in
# parallel groups) and the 16+ form ("ok 1 - foo", "not ok 2 - bar").  A test
# that started but did not end in "ok" (FAILED, or pg_regress itself broke,
# say on a missing file) is a failure; "failed (ignored)" is not.
count_pg_regress() {
	local started ok15 ok16 notok16
	started="$(grep -cE '^(test +| +)[^ ]+ +\.\.\. ' "$1" || true)"
	ok15="$(grep -cE '^(test +| +)[^ ]+ +\.\.\. (ok( |$)|failed \(ignored\))' "$1" || true)"
	ok16="$(grep -cE '^ok [0-9]+ ' "$1" || true)"
	notok16="$(grep -cE '^not ok [0-9]+ ' "$1" || true)"
	n_pass=$((ok15 + ok16))
	n_fail=$((started - ok15 + notok16))
}

# count_prove OUTPUT_FILE: set n_pass/n_fail from prove's summary.
# Every subtest counts; a script that dies without a failed subtest (bad
# plan, crash) counts as one failure.
count_prove() {
	local total failed extra
	total="$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$1" | tail -n 1)"
	total="${total:-0}"
	failed="$(sed -nE 's/.*\(Wstat: .* Tests: [0-9]+ Failed: ([0-9]+)\)$/\1/p' "$1" |
		awk '{ s += $1 } END { print s + 0 }')"
	extra="$(grep -cE '\(Wstat: .* Tests: [0-9]+ Failed: 0\)$' "$1" || true)"
	n_fail=$((failed + extra))
	n_pass=$((total - failed))
	((n_pass >= 0)) || n_pass=0
}

# run_suite NAME COUNTER MAKE_ARGS...: run one part of "make installcheck",
# add its counts to the totals, and show its diffs and logs if it failed.
run_suite() {
	local name="$1" counter="$2" out status=0
	shift 2
	out="$workdir/$name.out"
	say "suite: $name"
	as_pg make -C "$src" PG_CONFIG="$PG_CONFIG" installcheck "$@" 2>&1 | tee "$out" || status=$?
	n_pass=0
	n_fail=0
	"$counter" "$out"
	if ((status != 0 && n_fail == 0)); then
		# The suite broke before it could report a test (initdb, server
		# start, a missing file): that is one failure.
		n_fail=1
	fi
	total_pass=$((total_pass + n_pass))
	total_fail=$((total_fail + n_fail))
	suite_lines+=("$(printf '  %-10s %4d ok  %4d not ok%s' "$name" "$n_pass" "$n_fail" \
		"$( ((status == 0)) || echo "  (make exited with $status)")")")
	if ((status == 0 && n_fail == 0)); then
		return 0
	fi

	say "suite $name failed; diffs and logs follow"
	local f
	case "$name" in
	regress)
		show_file "$src/regression.diffs" 1000
		show_file "$src/tmp_regress/log/postmaster.log" 200
		;;
	isolation)
		show_file "$src/output_iso/regression.diffs" 1000
		show_file "$src/tmp_isolation/log/postmaster.log" 200
		;;
	tap)
		for f in "$src"/tmp_check/log/regress_log_*; do
			[[ -e "$f" ]] && show_file "$f" 300
		done
		for f in "$src"/tmp_check/log/*.log; do
			[[ -e "$f" ]] && show_file "$f" 100
		done
		;;
	esac
	return 0
}

# --- 1. packages ------------------------------------------------------------
# libkrb5-dev: the server headers include gssapi/gssapi.h
# util-linux-extra: fincore, for the page-cache test (015)
# postgresql-$PG_MAJOR-wal2json: the logical-decoding recipes' test (037)
ensure_packages build-essential "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" \
	libkrb5-dev \
	libipc-run-perl \
	"postgresql-$PG_MAJOR-wal2json" \
	util-linux-extra
# clickhouse-server, clickhouse-client: the ClickHouse test (060), which
# starts a server of its own; python3 (tomllib) checks contrib/vector's TOML
ensure_packages_no_start clickhouse-server clickhouse-client python3
check_pg_config

# --- 2. build and install in a private copy ----------------------------------
workdir="$(make_workdir activity_audit_test)"
src="$workdir/src"
copy_tree "$src"
say "work directory: $workdir"

if ! build_and_install "$src"; then
	say "build or install failed"
	total_fail=1
	keep_workdir=1
	summary
	exit 1
fi

# --- 3. the suites ------------------------------------------------------------
suite_lines=()
run_suite regress count_pg_regress ISOLATION= TAP_TESTS= TEMP_INSTANCE=1
run_suite isolation count_pg_regress REGRESS= TAP_TESTS= TEMP_INSTANCE=1
if compgen -G "$src/test/t/*.pl" >/dev/null; then
	run_suite tap count_prove REGRESS= ISOLATION= TAP_TESTS=1
else
	say "suite: tap - no test/t/*.pl yet, skipped"
fi

# The Django app (python/): its own throwaway cluster and pgbouncer, as
# python/tests/run.sh sets them up; it prints "N passed, M failed" too.
if (ensure_packages python3-django python3-psycopg2 pgbouncer); then
	say "suite: python"
	py_status=0
	PG_CONFIG="$PG_CONFIG" PG_USER="$PG_USER" bash "$src/python/tests/run.sh" 2>&1 |
		tee "$workdir/python.out" || py_status=$?
	n_pass="$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p' "$workdir/python.out" | tail -n 1)"
	n_fail="$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p' "$workdir/python.out" | tail -n 1)"
	n_pass="${n_pass:-0}"
	n_fail="${n_fail:-0}"
	if ((py_status != 0 && n_fail == 0)); then
		n_fail=1
	fi
	total_pass=$((total_pass + n_pass))
	total_fail=$((total_fail + n_fail))
	suite_lines+=("$(printf '  %-10s %4d ok  %4d not ok%s' python "$n_pass" "$n_fail" \
		"$( ((py_status == 0)) || echo "  (run.sh exited with $py_status)")")")
else
	say "suite: python - skipped: python3-django, python3-psycopg2 and pgbouncer could not be installed"
	suite_lines+=("  python     skipped (packages missing)")
fi

# --- 4. report ----------------------------------------------------------------
say "results per suite:"
printf '%s\n' "${suite_lines[@]}"
if ((total_fail > 0)); then
	keep_workdir=1
	say "FAILED; work directory kept: $workdir"
else
	say "all tests passed"
fi
summary
[[ "$total_fail" -eq 0 ]] || exit 1
