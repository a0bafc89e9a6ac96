#!/usr/bin/env bash
# A throwaway PostgreSQL + pgvector server for tests and benchmarks.
#
#   eval "$(bash scripts/postgres.sh start)"   start one (installing pgvector first if needed) and
#                                              export RAGFT_TEST_PG_DSN
#   bash scripts/postgres.sh stop              stop it and delete its files
#   bash scripts/postgres.sh status            print the DSN if one is running (exit 1 if not)
#
# Only the `export RAGFT_TEST_PG_DSN=...` line goes to stdout; everything else goes to stderr.
# One server per checkout: running `start` again while it runs prints the same line.
#
# The server runs as user `postgres` when started by root (initdb refuses root), listens on
# 127.0.0.1 on a free port, keeps its socket and data in a fresh /tmp directory, and runs with
# fsync=off: it is for tests, never for data you want to keep. The DSN names role `ragft`
# (password auth, random password, CREATEDB) and database `ragft`; extension `vector` exists in
# `ragft` and in template1, so databases created by tests have it too.
#
# pgvector: if the server has no `vector` extension, it is built from Debian trixie's source
# package (bookworm has no pgvector package) against postgresql-server-dev-N. The trixie
# deb-src entry lives in a private, temporary apt configuration: the system's sources, lists and
# pins are untouched, so later `apt-get install`s never see trixie. Needs root (apt, make install)
# the first time only. Override the version with RAGFT_PG_VERSION (default: newest installed),
# the server's shared_buffers with RAGFT_PG_SHARED_BUFFERS (default 128MB, Postgres' own:
# benchmarks at 100k rows want the table and its indexes to fit, e.g. 1GB).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

pg_bin() {
  local version="${RAGFT_PG_VERSION:-}"
  if [[ -z "$version" ]]; then
    version="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)"
  fi
  [[ -n "$version" && -x "/usr/lib/postgresql/$version/bin/initdb" ]] ||
    die "no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql)"
  echo "/usr/lib/postgresql/$version/bin"
}

# One state file per checkout, so several checkouts on one machine each get their own server.
STATE="${TMPDIR:-/tmp}/ragft-pg-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12).state"

as_owner() {  # run a command as the user that owns the cluster
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

apt_quiet() {  # apt-get with its chatter in a log that is shown only on failure
  local logfile="$1"; shift
  if ! DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$logfile" 2>&1; then
    tail -n 30 "$logfile" >&2
    die "apt-get $* failed (log above)"
  fi
}

install_pgvector() {
  local bin="$1" version work sources_dir
  version="$(basename "$(dirname "$bin")")"
  [[ $EUID -eq 0 ]] ||
    die "pgvector is not installed for PostgreSQL $version; run this once as root to build it"
  log "pgvector not installed for PostgreSQL $version: building it from Debian trixie's source package"
  work="$(mktemp -d /tmp/ragft-pgvector-build.XXXXXX)"
  trap 'rm -rf "$work"; trap - RETURN' RETURN
  local aptlog="$work/apt.log"

  if ! dpkg-query -W -f='${Status}' "postgresql-server-dev-$version" 2>/dev/null | grep -q "ok installed"; then
    # From the lists apt already has, which match the installed server; refresh them only if
    # that fails (a refresh can pull a newer point release of the server along with it).
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "postgresql-server-dev-$version" >>"$aptlog" 2>&1; then
      apt_quiet "$aptlog" update -qq
      apt_quiet "$aptlog" install -y -qq --no-install-recommends "postgresql-server-dev-$version"
    fi
  fi

  # A private apt configuration that knows only trixie's deb-src, with its own lists and no
  # package caches: nothing under /etc/apt or /var/lib/apt/lists changes.
  sources_dir="$work/sources.list.d"
  mkdir -p "$sources_dir" "$work/lists/partial" "$work/src"
  local uris signed_by
  uris="$(awk '/^URIs:/ && /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  signed_by="$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  {
    echo "Types: deb-src"
    echo "URIs: ${uris:-http://deb.debian.org/debian}"
    echo "Suites: trixie"
    echo "Components: main"
    echo "Signed-By: ${signed_by:-/usr/share/keyrings/debian-archive-keyring.gpg}"
  } >"$sources_dir/trixie-src.sources"
  local private=(
    -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$sources_dir"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
    -o "APT::Sandbox::User=root"
  )
  apt_quiet "$aptlog" "${private[@]}" update -qq
  (cd "$work/src" && apt_quiet "$aptlog" "${private[@]}" source -qq pgvector)

  local srcdir
  srcdir="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -1)"
  [[ -n "$srcdir" ]] || die "apt-get source pgvector produced no source tree (see $aptlog)"
  # OPTFLAGS="": pgvector's default is -march=native, which would tie the build to this CPU.
  if ! make -C "$srcdir" -s OPTFLAGS="" PG_CONFIG="$bin/pg_config" >"$work/make.log" 2>&1 ||
     ! make -C "$srcdir" -s OPTFLAGS="" PG_CONFIG="$bin/pg_config" install >>"$work/make.log" 2>&1; then
    tail -n 30 "$work/make.log" >&2
    die "building pgvector failed (log above)"
  fi
  log "installed pgvector $(basename "$srcdir" | sed 's/^pgvector-//') for PostgreSQL $version"
}

pgvector_installed() {  # $1 = bin dir; checks the server's extension directory
  local sharedir
  sharedir="$("$1/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$(basename "$(dirname "$1")")")"
  [[ -f "$sharedir/extension/vector.control" ]]
}

running() {  # state file exists and its server answers
  [[ -f "$STATE" ]] || return 1
  local dir; dir="$(sed -n 1p "$STATE")"
  [[ -d "$dir/data" ]] && as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

print_dsn() { echo "export RAGFT_TEST_PG_DSN='$(sed -n 2p "$STATE")'"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local bin; bin="$(pg_bin)"
  if running; then
    log "already running ($(sed -n 1p "$STATE"))"
    print_dsn
    return
  fi
  [[ -f "$STATE" ]] && stop_quietly
  pgvector_installed "$bin" || install_pgvector "$bin"

  local dir port password
  dir="$(mktemp -d /tmp/ragft-pg.XXXXXX)"
  chmod 755 "$dir"
  mkdir -p "$dir/sock"
  [[ $EUID -eq 0 ]] && chown -R postgres:postgres "$dir"
  port="$(free_port)"
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  printf '%s\n' "$password" >"$dir/pwfile"
  [[ $EUID -eq 0 ]] && chown postgres "$dir/pwfile"
  chmod 600 "$dir/pwfile"

  if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"
  fi
  rm -f "$dir/pwfile"
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = ${RAGFT_PG_SHARED_BUFFERS:-128MB}
EOF
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null 2>&1; then
    cat "$dir/server.log" >&2; rm -rf "$dir"; die "the server did not start (log above)"
  fi
  printf '%s\n%s\n' "$dir" "postgresql://ragft:$password@127.0.0.1:$port/ragft" >"$STATE"
  chmod 600 "$STATE"

  local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres)
  if ! as_owner "${psql[@]}" -d template1 >"$dir/setup.log" 2>&1 <<EOF
CREATE EXTENSION IF NOT EXISTS vector;
CREATE ROLE ragft LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE ragft OWNER ragft;
EOF
  then
    cat "$dir/setup.log" >&2; stop_quietly; die "setting up role, database or extension failed"
  fi
  log "PostgreSQL $(basename "$(dirname "$bin")") + pgvector on 127.0.0.1:$port, files in $dir"
  print_dsn
}

stop_quietly() {
  local dir; dir="$(sed -n 1p "$STATE")"
  if [[ -n "$dir" && -d "$dir/data" ]]; then
    as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [[ "$dir" == /tmp/ragft-pg.* ]] && rm -rf "$dir"
  rm -f "$STATE"
}

stop() {
  if [[ ! -f "$STATE" ]]; then
    log "no server running for this checkout"
    return
  fi
  local dir; dir="$(sed -n 1p "$STATE")"
  stop_quietly
  log "stopped and removed $dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then print_dsn; else log "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
