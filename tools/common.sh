# shellcheck shell=bash
#
# tools/common.sh - helpers shared by tools/test.sh and tools/demo.sh.
#
# Sourced, never run.  Knows how to find PostgreSQL, install the Debian
# packages a fresh machine lacks, and run a command as the unprivileged user
# that owns the throwaway clusters (PostgreSQL refuses to run as root).
#
# Settings (environment):
#   PG_MAJOR    PostgreSQL major version to build against (default 15)
#   PG_CONFIG   pg_config to use (default /usr/lib/postgresql/$PG_MAJOR/bin/pg_config)
#   PG_USER     OS user that runs servers and tests when invoked as root
#               (default postgres)

PG_MAJOR="${PG_MAJOR:-15}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config}"
PG_USER="${PG_USER:-postgres}"

# The repository root: the parent of the directory holding this file.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# ensure_packages PKG...
#   Install the Debian packages that are missing.  When everything is already
#   installed apt is not touched at all, so repeated runs stay fast.
ensure_packages() {
	local missing=() pkg
	if ! command -v dpkg-query >/dev/null 2>&1; then
		# Not Debian: trust whatever PG_CONFIG points at.
		[[ -x "$PG_CONFIG" ]] || die "pg_config not found at $PG_CONFIG (set PG_CONFIG)"
		return 0
	fi
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	local root=()
	if ! is_root; then
		command -v sudo >/dev/null 2>&1 ||
			die "missing packages: ${missing[*]}; run this script as root, or install them first"
		root=(sudo)
	fi
	say "installing packages: ${missing[*]}"
	"${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${root[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# ensure_packages_no_start PKG...
#   Like ensure_packages, for packages that bring a system service
#   (clickhouse-server): the tests start throwaway servers of their own, so
#   installing must neither start nor wait for the system's.  Unless the
#   machine has a policy-rc.d already (Docker images do), one that denies
#   every service start is in place while apt runs, and removed after it.
ensure_packages_no_start() {
	local policy=/usr/sbin/policy-rc.d pkg lacking=0 status=0 root=()
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			lacking=1
		fi
	done
	if ((lacking == 0)) || ! command -v dpkg-query >/dev/null 2>&1 || [[ -e "$policy" ]] ||
		{ ! is_root && ! command -v sudo >/dev/null 2>&1; }; then
		ensure_packages "$@"
		return 0
	fi
	is_root || root=(sudo)
	"${root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' >'$policy' && chmod 755 '$policy'"
	(ensure_packages "$@") || status=$?
	"${root[@]}" rm -f "$policy"
	((status == 0)) || die "installing $* failed"
}

# check_pg_config: PG_CONFIG must be the server we build for.
check_pg_config() {
	[[ -x "$PG_CONFIG" ]] || die "pg_config not found at $PG_CONFIG (set PG_CONFIG)"
	check_installer
	say "using $("$PG_CONFIG" --version) ($PG_CONFIG)"
}

# as_pg CMD...
#   Run CMD as the unprivileged PostgreSQL user when we are root, else as
#   ourselves.  The locale is pinned so that initdb always creates UTF8
#   clusters and messages come out in English, whatever the caller's locale.
as_pg() {
	local envs=(env -u LC_ALL -u LC_CTYPE -u LC_COLLATE -u LC_MESSAGES -u LANGUAGE
		-u PGHOST -u PGPORT -u PGDATABASE -u PGUSER -u PGSERVICE LANG=C.UTF-8)
	if is_root; then
		id "$PG_USER" >/dev/null 2>&1 || die "OS user $PG_USER does not exist"
		if command -v runuser >/dev/null 2>&1; then
			runuser -u "$PG_USER" -- "${envs[@]}" "$@"
		else
			su "$PG_USER" -s /bin/bash -c "$(printf '%q ' "${envs[@]}" "$@")"
		fi
	else
		"${envs[@]}" "$@"
	fi
}

# check_installer: decide, before building, how "make install" will get the
# rights to write into PostgreSQL's installation directories: directly when
# root or when they are writable, else via sudo.
INSTALLER=()
check_installer() {
	local pkglibdir extdir
	pkglibdir="$("$PG_CONFIG" --pkglibdir)"
	extdir="$("$PG_CONFIG" --sharedir)/extension"
	if is_root || { [[ -w "$pkglibdir" ]] && [[ -w "$extdir" ]]; }; then
		INSTALLER=()
	elif command -v sudo >/dev/null 2>&1; then
		INSTALLER=(sudo)
	else
		die "cannot write to $pkglibdir and sudo is not available; run as root"
	fi
}

# as_installer CMD...: run CMD with those rights.
as_installer() {
	"${INSTALLER[@]}" "$@"
}

# make_workdir PREFIX
#   Print a fresh temporary directory owned by the user that runs the
#   servers.  As root it lives in /tmp so that user can reach it.
make_workdir() {
	local dir
	if is_root; then
		dir="$(mktemp -d "/tmp/$1.XXXXXX")"
		chown "$PG_USER": "$dir"
	else
		dir="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
	fi
	printf '%s\n' "$dir"
}

# copy_tree DEST
#   Copy the source tree (without .git and build or test leftovers) to DEST,
#   owned by the user that builds and tests it.
copy_tree() {
	local dest="$1"
	mkdir -p "$dest"
	tar -C "$REPO_ROOT" \
		--exclude=./.git \
		--exclude=./tmp_regress --exclude=./tmp_isolation --exclude=./tmp_check \
		--exclude=./output_iso --exclude=./results \
		--exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		-cf - . | tar -C "$dest" -xf -
	if is_root; then
		chown -R "$PG_USER": "$dest"
	fi
}

# build_and_install SRC
#   Build in SRC as the unprivileged user, then install as root.  Warnings
#   are errors unless WERROR=0.  Returns non-zero on failure (every step is
#   checked explicitly: callers may run this inside an "if", where set -e
#   does not apply).
build_and_install() {
	local src="$1" copt=()
	if [[ "${WERROR:-1}" != 0 ]]; then
		copt=(COPT=-Werror)
	fi
	say "building (${copt[*]:-warnings allowed})"
	as_pg make -C "$src" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null || return 1
	as_pg make -C "$src" PG_CONFIG="$PG_CONFIG" "${copt[@]}" \
		-j "$(nproc 2>/dev/null || echo 2)" || return 1
	say "installing into $("$PG_CONFIG" --pkglibdir)"
	as_installer make -C "$src" PG_CONFIG="$PG_CONFIG" "${copt[@]}" install || return 1
}
