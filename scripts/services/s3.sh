#!/usr/bin/env bash
# Installs (PyPI `moto[server]`) and starts moto's S3-compatible server on
# 127.0.0.1:$PORT (in memory; buckets are gone when it stops). Prints the
# endpoint URL; the server's pid is in $DIR/moto.pid, its log in $DIR/moto.log.
# Clients use any credentials, region us-east-1, path-style requests and
# AWS_ALLOW_HTTP=true; buckets must be created (PUT /<bucket>) before use.
#
#   scripts/services/s3.sh start [PORT]   # default 19900
#   scripts/services/s3.sh stop
set -euo pipefail
PORT="${2:-${S3_PORT:-19900}}"
DIR="${S3_DIR:-${TMPDIR:-/tmp}/neonblue-s3}"
PY="${PYTHON:-python3}"
mkdir -p "$DIR"

have_moto() {
    "$PY" -c "import moto.server, flask, flask_cors" >/dev/null 2>&1
}

answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

case "${1:-start}" in
start)
    if ! have_moto; then
        "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'moto[server]' >/dev/null 2>&1 \
            || "$PY" -m pip install --quiet --break-system-packages 'moto[server]' >/dev/null
    fi
    if [[ -f "$DIR/moto.pid" ]] && kill -0 "$(cat "$DIR/moto.pid")" 2>/dev/null; then
        echo "http://127.0.0.1:$PORT"
        exit 0
    fi
    if answers; then
        echo "port $PORT is already taken by another process" >&2
        exit 1
    fi
    # `python -m moto.server` is `moto_server` without relying on PATH.
    nohup "$PY" -m moto.server -H 127.0.0.1 -p "$PORT" >"$DIR/moto.log" 2>&1 &
    echo $! >"$DIR/moto.pid"
    for _ in $(seq 1 300); do
        if answers; then
            echo "http://127.0.0.1:$PORT"
            exit 0
        fi
        if ! kill -0 "$(cat "$DIR/moto.pid")" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "moto S3 server did not start; log:" >&2
    cat "$DIR/moto.log" >&2
    exit 1
    ;;
stop)
    [[ -f "$DIR/moto.pid" ]] && kill "$(cat "$DIR/moto.pid")" 2>/dev/null || true
    rm -f "$DIR/moto.pid"
    ;;
*)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
