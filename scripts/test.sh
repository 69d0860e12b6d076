#!/usr/bin/env bash
# The whole test suite: formatting, every Rust test (with the real services
# they need), and the checks written in Python (analytics on chDB and DuckDB,
# the experiment report against scipy/statsmodels, chDB, its notebook and a
# headless browser, the docker-compose stack, the Debezium end-to-end run).
# Installs what the build and the tests need on a fresh Debian machine (system
# packages via apt, Python packages via pip; idempotent) and starts the
# services; stops the services it started at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WORK="${TMPDIR:-/tmp}/neonblue-test"
mkdir -p "$WORK"

echo "== system packages (librdkafka with TLS/SASL/zstd: C toolchain, OpenSSL, Cyrus SASL, zlib; stunnel for the TLS tests)"
# Debian names; installed only when missing (CI runs as root with apt reachable).
SYSTEM_PACKAGES=(build-essential pkg-config libssl-dev libsasl2-dev zlib1g-dev openssl stunnel4)
if command -v dpkg-query >/dev/null; then
    missing=()
    for p in "${SYSTEM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}"
        SUDO=()
        [[ $(id -u) -eq 0 ]] || SUDO=(sudo -n)
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
else
    echo "not Debian: make sure a C toolchain, pkg-config, OpenSSL, Cyrus SASL and zlib headers, openssl and stunnel are installed"
fi

echo "== toolchain"
cargo --version

echo "== cargo fmt --check (the workspace and the fuzz crate outside it)"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)

echo "== supply chain: clippy -D warnings, rust-version, cargo-deny, no build artefacts in git"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The benchmark baselines (scripts/bench) are built only with this feature.
cargo clippy -p neonblue --all-targets --locked --features bench -- -D warnings
# The build for heap profilers: the system allocator, without mimalloc.
cargo clippy -p neonblue --all-targets --locked --no-default-features -- -D warnings
"$PY" scripts/check_msrv.py
# Advisories (RustSec database, fetched from GitHub), licences, bans, sources: deny.toml.
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked
cargo deny --locked check licenses bans sources
# The advisory database comes from GitHub: checked whenever it can be fetched
# (or a copy is already in ~/.cargo/advisory-dbs: a database has a crates/
# folder; a failed fetch leaves only a lock file); said loudly when not.
if timeout 180 cargo deny --locked fetch db >/dev/null 2>&1 || compgen -G "$HOME/.cargo/advisory-dbs/*/crates" >/dev/null; then
    cargo deny --locked --offline check advisories 2>/dev/null || cargo deny --locked check advisories
else
    echo "WARNING: the RustSec advisory database could not be fetched: advisories NOT checked this run" >&2
fi
if git rev-parse --git-dir >/dev/null 2>&1; then
    if artefacts="$(git ls-files | grep -E '(^|/)(__pycache__|target)/|\.py[co]$')"; then
        echo "build artefacts are tracked by git:" >&2
        echo "$artefacts" >&2
        exit 1
    fi
fi

echo "== Python packages (chdb, duckdb, pyarrow, confluent-kafka, pyyaml, jsonschema; for the report check:"
echo "   scipy, statsmodels, pandas, polars, matplotlib, pillow, nbclient, nbformat, ipykernel)"
"$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    chdb duckdb pyarrow pytz confluent-kafka pyyaml jsonschema \
    numpy scipy statsmodels pandas polars matplotlib pillow nbclient nbformat ipykernel 2>&1 | grep -v -i warning || true

echo "== Chromium (Debian) for the report page check"
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }
fi
chromium --version 2>/dev/null || echo "chromium missing: the report check will try to install it"

stop_services() {
    scripts/services/tansu.sh stop || true
    scripts/services/clickhouse.sh stop >/dev/null 2>&1 || true
    scripts/services/s3.sh stop >/dev/null 2>&1 || true
    scripts/services/postgres.sh stop >/dev/null 2>&1 || true
}
trap stop_services EXIT

echo "== services: Tansu (Kafka-compatible broker; and behind TLS), ClickHouse 18.16, S3 (moto)"
export TANSU_DIR="$WORK/tansu"
NEONBLUE_TEST_BROKERS="$(scripts/services/tansu.sh start "${TANSU_PORT:-19092}")"
# Tansu behind stunnel with a throwaway CA: NEONBLUE_TEST_TLS_BROKERS, NEONBLUE_TEST_TLS_CA, … (tests/kafka_tls.rs)
TLS_SETTINGS="$(scripts/services/tansu.sh start-tls "${TANSU_TLS_PORT:-19093}")"
while IFS='=' read -r name value; do
    if [[ "$name" == NEONBLUE_TEST_* ]]; then export "$name=$value"; fi
done <<<"$TLS_SETTINGS"
NEONBLUE_TEST_CLICKHOUSE="$(scripts/services/clickhouse.sh start "${CLICKHOUSE_HTTP_PORT:-8123}")"
NEONBLUE_TEST_CLICKHOUSE="${NEONBLUE_TEST_CLICKHOUSE%/}"
export NEONBLUE_TEST_BROKERS NEONBLUE_TEST_CLICKHOUSE NEONBLUE_REQUIRE_BROKER=1 NEONBLUE_REQUIRE_SERVICES=1
NEONBLUE_TEST_S3_ENDPOINT="$(scripts/services/s3.sh start "${S3_PORT:-19900}")"
export NEONBLUE_TEST_S3_ENDPOINT
echo "broker $NEONBLUE_TEST_BROKERS (TLS ${NEONBLUE_TEST_TLS_BROKERS:-none}), clickhouse $NEONBLUE_TEST_CLICKHOUSE, s3 ${NEONBLUE_TEST_S3_ENDPOINT:-none}"

echo "== cargo test (workspace)"
cargo test --workspace --all-targets 2>&1 | tee "$WORK/cargo-test.log"
grep -E "^test result:" "$WORK/cargo-test.log" | awk '{p+=$4; f+=$6; s+=$8} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}'

BIN=target/debug/neonblue

echo "== fuzzing: every parser's fuzz target for a short while (scripts/fuzz.sh; cargo-fuzz on stable)"
# The instrumented build of every dependency is the cost (about 38 CPU-minutes
# from scratch here); FUZZ_SECONDS=0 leaves fuzzing out.
if [[ "${FUZZ_SECONDS:-10}" != 0 ]]; then
    scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
fi

echo "== analytics: ClickHouse DDL + queries on chDB (26.x) vs DuckDB over the Parquet"
rm -rf "$WORK/analytics" && mkdir -p "$WORK/analytics"
"$BIN" generate --records 20000 --seed 7 --output "$WORK/analytics/in.jsonl" 2>/dev/null
"$BIN" run --no-progress --partitions 2 --now 2100-01-01T00:00:00Z --input "$WORK/analytics/in.jsonl" \
    --state "$WORK/analytics/state" --output "$WORK/analytics/out" >/dev/null 2>&1
"$PY" scripts/analytics_check.py "$WORK/analytics/out"

echo "== kill soak: SIGKILLs at random moments for a minute; every restart opens, every finished run is identical (scripts/kill_soak.py)"
"$PY" scripts/kill_soak.py --bin "$BIN" --minutes "${KILL_SOAK_MINUTES:-1}" --records 10000

echo "== broker kill soak: the broker SIGKILLed under running instances for a minute; each run recovers exactly or names the records the broker lost (scripts/broker_kill_soak.py)"
"$PY" scripts/broker_kill_soak.py --bin "$BIN" --minutes "${BROKER_KILL_SOAK_MINUTES:-1}" --records 6000

echo "== freeze soak: one of two instances frozen (SIGSTOP) past its group session for a minute; every run equal to an undisturbed one (scripts/freeze_soak.py)"
"$PY" scripts/freeze_soak.py --bin "$BIN" --minutes "${FREEZE_SOAK_MINUTES:-1}" --records 6000

echo "== report: scipy/statsmodels cross-check, experiment_arms.sql on chDB, the notebook, the page in headless Chromium"
rm -rf "$WORK/report"
"$PY" scripts/report_check.py --bin "$BIN" --work "$WORK/report"

echo "== docker-compose stack (static checks; no Docker engine needed)"
"$PY" scripts/check_compose.py

echo "== operations: metric catalogue, README, alert rules, dashboards (scripts/check_ops.py)"
"$PY" scripts/check_ops.py

echo "== architecture: layers only point down, no import cycles (scripts/module_deps.py)"
"$PY" scripts/module_deps.py src

echo "== end to end: PostgreSQL -> Debezium 3.6 -> Kafka (Tansu) -> neonblue -> ClickHouse + Parquet"
"$PY" scripts/e2e/debezium_e2e.py --bin "$BIN"

echo "== disk taken by the builds (a CI machine's disk is not unlimited)"
du -sh "${CARGO_TARGET_DIR:-target}" fuzz/target 2>/dev/null || true

echo "== all checks passed"
