#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each,
# seeded from the fixtures (scripts/fuzz_seeds.py); the corpora grow in
# fuzz/corpus/<target> and a crash stops with its input in
# fuzz/artifacts/<target>/ (turn it into a regression test, then fix).
# Works with a stable toolchain: no sanitizer (the parsers are safe Rust),
# and RUSTC_BOOTSTRAP=1 for the flags cargo-fuzz passes.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]   (default 20 s, all)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-20}"
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
python3 scripts/fuzz_seeds.py fuzz/seeds
cd fuzz
FUZZ=(cargo fuzz run --sanitizer none --release)
cargo fuzz build --sanitizer none --release
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="$(mktemp)"
    if ! "${FUZZ[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    # libFuzzer's last status line: executions, coverage (cov) and features (ft).
    done_line="$(grep -E '^#[0-9]+' "$log" | tail -n 1)"
    runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
    echo "fuzz: $t ok, ${runs:-?} executions in ${SECONDS_PER_TARGET}s: ${done_line}"
    rm -f "$log"
done
