#!/bin/sh
# Registers the Debezium connector with Kafka Connect, or updates it: one
# idempotent PUT /connectors/<name>/config, then waits until it runs.
#
#   scripts/compose/register-connector.sh [CONNECTOR_JSON]
#
# CONNECTOR_JSON (default $CONNECTOR_FILE, else
# schemas/debezium/postgres-outbox-connector.json) is either the usual
# {"name": ..., "config": {...}} request body or a flat config object with a
# "name" key. PUT .../config takes only the inner config object; it is cut out
# with jq when jq exists, else with the small JSON scanner below (POSIX sh +
# awk, so it also runs in the curlimages/curl image used by `connect-init` in
# docker-compose.yml).
#
# Environment: CONNECT_URL (default http://localhost:8083),
# CONNECT_WAIT_SECONDS (default 180).
set -eu

CONNECT_URL=${CONNECT_URL:-http://localhost:8083}
CONNECT_WAIT_SECONDS=${CONNECT_WAIT_SECONDS:-180}
FILE=${1:-${CONNECTOR_FILE:-schemas/debezium/postgres-outbox-connector.json}}

say() { echo "register-connector: $*"; }
die() { echo "register-connector: error: $*" >&2; exit 1; }

[ -f "$FILE" ] || die "connector file not found: $FILE"

# Prints the raw JSON text of top-level member $2 of the object in file $1;
# prints nothing when there is no such member.
json_member() {
    if command -v jq >/dev/null 2>&1; then
        jq -c --arg k "$2" 'if has($k) then .[$k] else empty end' "$1"
        return
    fi
    awk -v want="$2" '
        { text = text $0 "\n" }
        END {
            n = length(text); depth = 0; instr = 0; esc = 0; inval = 0
            key = ""; kstart = 0; vstart = 0
            for (i = 1; i <= n; i++) {
                c = substr(text, i, 1)
                if (instr) {
                    if (esc) esc = 0
                    else if (c == "\\") esc = 1
                    else if (c == "\"") {
                        instr = 0
                        if (depth == 1 && !inval) key = substr(text, kstart, i - kstart)
                    }
                    continue
                }
                if (c == "\"") { instr = 1; if (depth == 1 && !inval) kstart = i + 1; continue }
                if (c == "{" || c == "[") { depth++; continue }
                if (c == "}" || c == "]") {
                    if (depth == 1 && inval) { emit(vstart, i - 1); inval = 0 }
                    depth--
                    continue
                }
                if (depth == 1 && c == ":" && !inval) { inval = 1; vstart = i + 1; continue }
                if (depth == 1 && c == "," && inval) { emit(vstart, i - 1); inval = 0; continue }
            }
        }
        function emit(a, b,    v) {
            if (key != want) return
            v = substr(text, a, b - a + 1)
            sub(/^[ \t\r\n]+/, "", v); sub(/[ \t\r\n]+$/, "", v)
            print v
            exit 0
        }
    ' "$1"
}

unquote() { sed -e 's/^"//' -e 's/"$//'; }

config=$(json_member "$FILE" config)
if [ -n "$config" ]; then
    name=$(json_member "$FILE" name | unquote)
    if [ -z "$name" ]; then
        tmp=$(mktemp)
        printf '%s\n' "$config" > "$tmp"
        name=$(json_member "$tmp" name | unquote)
        rm -f "$tmp"
    fi
else
    config=$(cat "$FILE")
    name=$(json_member "$FILE" name | unquote)
fi
[ -n "$name" ] || die "$FILE has no connector \"name\""
case "$config" in
    "{"*) ;;
    *) die "$FILE: \"config\" is not a JSON object" ;;
esac

say "waiting for Kafka Connect at $CONNECT_URL"
waited=0
until curl -fsS -o /dev/null "$CONNECT_URL/connectors"; do
    [ "$waited" -lt "$CONNECT_WAIT_SECONDS" ] || die "Kafka Connect did not answer within ${CONNECT_WAIT_SECONDS}s"
    sleep 3
    waited=$((waited + 3))
done

say "PUT $CONNECT_URL/connectors/$name/config (from $FILE)"
body=$(mktemp)
code=$(printf '%s' "$config" | curl -sS -o "$body" -w '%{http_code}' -X PUT \
    -H 'Content-Type: application/json' --data-binary @- \
    "$CONNECT_URL/connectors/$name/config") || code=000
case "$code" in
    200) say "connector $name updated" ;;
    201) say "connector $name created" ;;
    *) cat "$body" >&2 || true; rm -f "$body"; die "Kafka Connect answered HTTP $code" ;;
esac
rm -f "$body"

say "waiting for connector $name to run"
waited=0
while :; do
    status=$(curl -fsS "$CONNECT_URL/connectors/$name/status" 2>/dev/null || true)
    compact=$(printf '%s' "$status" | tr -d ' \n\r\t')
    connector_state=$(printf '%s' "$compact" | sed -n 's/.*"connector":{"state":"\([A-Z_]*\)".*/\1/p')
    task_states=$(printf '%s' "$compact" | sed -n 's/.*"tasks":\[\(.*\)\].*/\1/p' \
        | grep -o '"state":"[A-Z_]*"' | sed 's/.*:"\([A-Z_]*\)"/\1/' | sort -u | tr '\n' ' ')
    case "$connector_state $task_states" in
        *FAILED*) printf '%s\n' "$status" >&2; die "connector $name failed" ;;
        "RUNNING RUNNING ") say "connector $name and its tasks are running"; exit 0 ;;
    esac
    [ "$waited" -lt "$CONNECT_WAIT_SECONDS" ] || { printf '%s\n' "$status" >&2; die "connector $name not running after ${CONNECT_WAIT_SECONDS}s"; }
    sleep 3
    waited=$((waited + 3))
done
