#!/usr/bin/env bash
# The whole test suite: formatting, lints-as-errors build, every Rust test.
# Installs what the tests need on a fresh machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain"
cargo --version

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== services: Tansu (Kafka-compatible broker) for the Kafka-mode tests"
TANSU_PORT="${TANSU_PORT:-19092}"
export TANSU_DIR="${TMPDIR:-/tmp}/neonblue-test-tansu"
NEONBLUE_TEST_BROKERS="$(scripts/services/tansu.sh start "$TANSU_PORT")"
export NEONBLUE_TEST_BROKERS NEONBLUE_REQUIRE_BROKER=1
trap 'scripts/services/tansu.sh stop' EXIT
echo "broker at $NEONBLUE_TEST_BROKERS"

echo "== cargo test (workspace)"
cargo test --workspace --all-targets 2>&1 | tee /tmp/neonblue-test.log
grep -E "^test result:" /tmp/neonblue-test.log | awk '{p+=$4; f+=$6; s+=$8} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}'
