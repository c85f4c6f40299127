#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests and benchmarks, listening on 127.0.0.1 only.
#   scripts/pg-test-server.sh [start]   install (Debian) if needed, init, start; prints `export ORDER_MACHINE_TEST_PG_URL=...`
#                                       and `export ORDER_MACHINE_PG_STARTED=1` (0 when it was already running)
#   scripts/pg-test-server.sh url       prints the URL of the running server
#   scripts/pg-test-server.sh status    exit 0 when running
#   scripts/pg-test-server.sh stop      stops it (data kept);  destroy: stops it and deletes its directory
# Idempotent: `start` on a running server just prints the URL again. Use: eval "$(scripts/pg-test-server.sh)".
# Settings: ORDER_MACHINE_PG_DIR (default ${TMPDIR:-/tmp}/order-machine-pg), ORDER_MACHINE_PG_PORT (default
# 54329; the next free port is taken when it is busy), ORDER_MACHINE_PG_USER (system user running the server
# when this script runs as root; default postgres). Logs go to stderr and $ORDER_MACHINE_PG_DIR/server.log.
set -euo pipefail

DIR=${ORDER_MACHINE_PG_DIR:-${TMPDIR:-/tmp}/order-machine-pg}
DATA=$DIR/data
ENV_FILE=$DIR/url.env
DB=order_machine_test
ROLE=order_machine

log() { echo "pg-test-server: $*" >&2; }

find_bin() {
  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$initdb" ]; then
    command -v initdb >/dev/null 2>&1 && initdb=$(command -v initdb)
  fi
  [ -n "$initdb" ] && dirname "$initdb"
}

install_postgres() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  log "installing the Debian postgresql package"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

# as_owner CMD...: run CMD as the user owning the cluster (PostgreSQL refuses to run as root)
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$RUN_AS" -- "$@"
  else
    "$@"
  fi
}

setup_user() {
  RUN_AS=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    RUN_AS=${ORDER_MACHINE_PG_USER:-postgres}
    if ! id "$RUN_AS" >/dev/null 2>&1; then
      log "creating system user $RUN_AS"
      useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_AS"
    fi
  fi
}

running() { [ -f "$DATA/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# print_env STARTED: the URL, and whether this call started the server (1) or found it running (0), so
# a caller stops only a server it started: [ "$ORDER_MACHINE_PG_STARTED" = 1 ] && trap '... stop' EXIT
print_env() {
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  echo "export ORDER_MACHINE_TEST_PG_URL=$ORDER_MACHINE_TEST_PG_URL"
  echo "export ORDER_MACHINE_PG_STARTED=$1"
}

start() {
  BIN=$(find_bin || true)
  if [ -z "$BIN" ]; then
    install_postgres
    BIN=$(find_bin)
  fi
  setup_user
  if running && [ -f "$ENV_FILE" ]; then
    print_env 0
    return 0
  fi
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  [ "$(id -u)" = 0 ] && chown "$RUN_AS" "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    local password pwfile
    password=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
    pwfile=$DIR/.pw
    (umask 077 && printf '%s\n' "$password" >"$pwfile")
    [ "$(id -u)" = 0 ] && chown "$RUN_AS" "$pwfile"
    log "initdb $DATA ($("$BIN/postgres" --version))"
    as_owner "$BIN/initdb" -D "$DATA" -U "$ROLE" --pwfile="$pwfile" --auth=scram-sha-256 \
      -E UTF8 --no-locale >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"
    as_owner mkdir -p "$DIR/run"
    as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
# order-machine test server: loopback TCP only, socket in a private directory
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR/run'
unix_socket_permissions = 0700
max_connections = 200
EOF
    (umask 077 && printf 'PASSWORD=%s\n' "$password" >"$DIR/.secret")
  fi
  local port=${ORDER_MACHINE_PG_PORT:-54329} tries=0
  while port_busy "$port"; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { log "no free port near ${ORDER_MACHINE_PG_PORT:-54329}"; exit 1; }
    port=$((port + 1))
  done
  log "starting on 127.0.0.1:$port"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 -o "-p $port" start >&2 \
    || { tail -n 20 "$DIR/server.log" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$DIR/.secret"
  export PGPASSWORD=$PASSWORD
  if [ -z "$("$BIN/psql" -h 127.0.0.1 -p "$port" -U "$ROLE" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    "$BIN/createdb" -h 127.0.0.1 -p "$port" -U "$ROLE" "$DB"
  fi
  (umask 077 && printf 'ORDER_MACHINE_TEST_PG_URL=postgresql://%s:%s@127.0.0.1:%s/%s\n' \
    "$ROLE" "$PASSWORD" "$port" "$DB" >"$ENV_FILE")
  print_env 1
}

stop() {
  BIN=$(find_bin || true)
  [ -n "$BIN" ] || return 0
  setup_user
  if running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
  fi
  rm -f "$ENV_FILE"
}

case "${1:-start}" in
  start) start ;;
  url)
    BIN=$(find_bin || true); setup_user
    [ -n "$BIN" ] && running && [ -f "$ENV_FILE" ] || { log "not running"; exit 1; }
    # shellcheck disable=SC1090
    . "$ENV_FILE"; echo "$ORDER_MACHINE_TEST_PG_URL" ;;
  status)
    BIN=$(find_bin || true); setup_user
    [ -n "$BIN" ] && running ;;
  stop) stop ;;
  destroy) stop; rm -rf "$DIR" ;;
  *) echo "usage: $0 [start|url|status|stop|destroy]" >&2; exit 2 ;;
esac
