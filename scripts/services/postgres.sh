#!/usr/bin/env bash
# Installs (Debian's `postgresql`, 15 on bookworm) and starts a throwaway
# PostgreSQL cluster on 127.0.0.1:$PORT with wal_level=logical, data under
# $DIR (default /tmp/neonblue-postgres), trust auth on loopback only. Creates
# the database `experiments` and applies schemas/postgres/*.sql (idempotent;
# NEONBLUE_PG_SCHEMA=0 skips it). Prints the DSN.
#
#   scripts/services/postgres.sh start [PORT]   # default 55432
#   scripts/services/postgres.sh stop
#
# Runs the server as the `postgres` OS user when started as root. For tests:
# no passwords, never expose it.
set -euo pipefail
PORT="${2:-${POSTGRES_PORT:-55432}}"
DIR="${POSTGRES_DIR:-${TMPDIR:-/tmp}/neonblue-postgres}"
DB="${POSTGRES_DB:-experiments}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCHEMA_DIR="$HERE/../../schemas/postgres"

pg_bindir() {  # newest installed server
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$d" && -x "$d/initdb" ]] && echo "$d"
}

install_if_missing() {
    [[ -n "$(pg_bindir)" ]] && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postgresql >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
}

as_pg() {  # run a server-side command as the postgres user when we are root
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dsn() { echo "postgresql://postgres@127.0.0.1:$(cat "$DIR/port")/$DB"; }

case "${1:-start}" in
start)
    install_if_missing
    BIN="$(pg_bindir)"
    [[ -n "$BIN" ]] || { echo "PostgreSQL binaries not found after install" >&2; exit 1; }
    mkdir -p "$DIR"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$DIR"
    if [[ -f "$DIR/port" ]] && as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        dsn
        exit 0
    fi
    if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
        as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --no-locale >"$DIR/initdb.log" 2>&1 \
            || { cat "$DIR/initdb.log" >&2; exit 1; }
        cat >>"$DIR/data/postgresql.conf" <<CONF
# neonblue test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
timezone = 'UTC'
CONF
    fi
    echo "$PORT" >"$DIR/port"
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -o "-p $PORT" -w -t 60 start >/dev/null \
        || { tail -n 30 "$DIR/server.log" >&2; exit 1; }
    export PGOPTIONS="-c client_min_messages=warning"  # no "already exists, skipping" noise
    PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -q -X)
    if [[ "$("${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]]; then
        "${PSQL[@]}" -d postgres -c "CREATE DATABASE \"$DB\""
    fi
    if [[ "${NEONBLUE_PG_SCHEMA:-1}" != 0 ]]; then
        for f in "$SCHEMA_DIR"/[0-9]*.sql; do
            [[ -e "$f" ]] || continue
            "${PSQL[@]}" -d "$DB" -f "$f" >/dev/null
        done
    fi
    dsn
    ;;
stop)
    BIN="$(pg_bindir || true)"
    if [[ -n "$BIN" && -f "$DIR/data/PG_VERSION" ]]; then
        as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
