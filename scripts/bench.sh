#!/usr/bin/env bash
# Benchmark neonblue against a bare parse, DuckDB and chDB on the same
# generated file (SPEC 9). See scripts/bench/README.md.
#
#   scripts/bench.sh                 # 1,000,000 envelopes, 1 and 2 threads
#   RECORDS=5000000 scripts/bench.sh
#
# Environment:
#   RECORDS   envelopes to generate (default 1000000)
#   SEED      generator seed (default 42)
#   THREADS   comma list of partition/thread counts (default 1,2)
#   RUNS      runs per case, median reported (default 1)
#   ENGINES   SQL engines to compare (default duckdb,chdb; empty for none)
#   BENCH_DIR work directory (default target/bench)
#   STRICT=1  exit 1 when a SPEC 9 target is missed
#   NO_INSTALL=1  never pip install (fail if duckdb/chdb are missing)
#   CARGO_TARGET_DIR  honoured (the binary is taken from there)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECORDS="${RECORDS:-1000000}"
SEED="${SEED:-42}"
THREADS="${THREADS:-1,2}"
RUNS="${RUNS:-1}"
ENGINES="${ENGINES-duckdb,chdb}"
BENCH_DIR="${BENCH_DIR:-target/bench}"
PY="${PYTHON:-python3}"

say() { printf '==> %s\n' "$*" >&2; }

# 1. Python engines (quietly; works as root on a fresh machine with PyPI).
if [[ -n "$ENGINES" ]]; then
    mods=$(echo "$ENGINES" | tr ',' ' ')
    missing=()
    for m in $mods; do
        "$PY" -c "import $m" 2>/dev/null || missing+=("$m")
    done
    if ((${#missing[@]})); then
        [[ "${NO_INSTALL:-0}" == 1 ]] && { echo "missing Python packages: ${missing[*]}" >&2; exit 1; }
        say "installing ${missing[*]} (pip)"
        if ! "$PY" -m pip --version >/dev/null 2>&1; then
            "$PY" -m ensurepip --upgrade >/dev/null 2>&1 \
                || { apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null; }
        fi
        pipq=(-m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
        "$PY" "${pipq[@]}" "${missing[@]}" 2>/dev/null \
            || "$PY" "${pipq[@]}" --break-system-packages "${missing[@]}" 2>/dev/null \
            || "$PY" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
    fi
fi

# 2. Build.
say "cargo build --release --features bench"
cargo build --release --quiet --features bench
BIN="${CARGO_TARGET_DIR:-target}/release/neonblue"

# 3. Input.
mkdir -p "$BENCH_DIR"
INPUT="$BENCH_DIR/envelopes-$RECORDS-$SEED.jsonl"
say "generating $RECORDS envelopes -> $INPUT"
gen_start=$(date +%s.%N)
"$BIN" --log warn generate --records "$RECORDS" --seed "$SEED" --output "$INPUT"
gen_end=$(date +%s.%N)
awk -v s="$gen_start" -v e="$gen_end" -v n="$RECORDS" \
    'BEGIN { printf "==> generated in %.2f s (%.0f records/s)\n", e - s, n / (e - s) }' >&2

# 4. Measure, side by side.
args=(--bin "$BIN" --input "$INPUT" --records "$RECORDS" --threads "$THREADS"
      --work "$BENCH_DIR" --runs "$RUNS" --engines "$ENGINES")
[[ "${STRICT:-0}" == 1 ]] && args+=(--strict)
exec "$PY" scripts/bench/run.py "${args[@]}"
