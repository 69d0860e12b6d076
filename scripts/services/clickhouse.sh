#!/usr/bin/env bash
# Installs (Debian's `clickhouse-server`/`clickhouse-client`, 18.16 on bookworm)
# and starts a throwaway ClickHouse server on 127.0.0.1 as a background process,
# with its config, data and logs under $DIR (default /tmp/neonblue-clickhouse).
# Prints the HTTP URL; the server's pid is in $DIR/clickhouse.pid.
#
#   scripts/services/clickhouse.sh start [HTTP_PORT]   # default 8123
#   scripts/services/clickhouse.sh stop
#
# Env: CLICKHOUSE_TCP_PORT (native protocol, default 19000), CLICKHOUSE_DIR.
# Idempotent: `start` on a running server only prints its URL. User `default`,
# no password, loopback only: for tests, never for anything else.
# Note: Debian ships 18.16, which lacks DateTime64/Bool/LowCardinality-by-default:
# apply schemas/clickhouse/legacy-18.16/*.sql to it, not schemas/clickhouse/*.sql.
set -euo pipefail
PORT="${2:-${CLICKHOUSE_HTTP_PORT:-8123}}"
TCP_PORT="${CLICKHOUSE_TCP_PORT:-19000}"
DIR="${CLICKHOUSE_DIR:-${TMPDIR:-/tmp}/neonblue-clickhouse}"
URL="http://127.0.0.1:$PORT/"

server_bin() {
    command -v clickhouse-server 2>/dev/null || { [[ -x /usr/sbin/clickhouse-server ]] && echo /usr/sbin/clickhouse-server; } || true
}

install_if_missing() {
    [[ -n "$(server_bin)" ]] && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q clickhouse-server clickhouse-client >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q clickhouse-server clickhouse-client >/dev/null; }
}

write_config() {
    mkdir -p "$DIR"/{data,tmp,user_files,format_schemas,log}
    cat >"$DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$DIR/log/clickhouse-server.log</log>
        <errorlog>$DIR/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <http_port>$PORT</http_port>
    <tcp_port>$TCP_PORT</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$DIR/data/</path>
    <tmp_path>$DIR/tmp/</tmp_path>
    <user_files_path>$DIR/user_files/</user_files_path>
    <format_schema_path>$DIR/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>536870912</mark_cache_size>
    <max_concurrent_queries>64</max_concurrent_queries>
</yandex>
XML
    cat >"$DIR/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
XML
}

ping() { curl -fsS --max-time 2 "${URL}?query=SELECT%201" >/dev/null 2>&1; }

case "${1:-start}" in
start)
    if [[ -f "$DIR/clickhouse.pid" ]] && kill -0 "$(cat "$DIR/clickhouse.pid")" 2>/dev/null && ping; then
        echo "$URL"
        exit 0
    fi
    install_if_missing
    BIN="$(server_bin)"
    [[ -n "$BIN" ]] || { echo "clickhouse-server not found after install" >&2; exit 1; }
    write_config
    nohup "$BIN" --config-file="$DIR/config.xml" >"$DIR/log/stdout.log" 2>&1 &
    echo $! >"$DIR/clickhouse.pid"
    for _ in $(seq 1 150); do
        if ping; then
            echo "$URL"
            exit 0
        fi
        kill -0 "$(cat "$DIR/clickhouse.pid")" 2>/dev/null || break
        sleep 0.2
    done
    echo "clickhouse-server did not start; logs:" >&2
    tail -n 30 "$DIR/log/stdout.log" "$DIR/log/clickhouse-server.err.log" >&2 2>/dev/null || true
    exit 1
    ;;
stop)
    if [[ -f "$DIR/clickhouse.pid" ]]; then
        PID="$(cat "$DIR/clickhouse.pid")"
        kill "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$DIR/clickhouse.pid"
    ;;
*)
    echo "usage: $0 start [HTTP_PORT] | stop" >&2
    exit 2
    ;;
esac
