#!/usr/bin/env bash
# Runs the property tests (proptest) again and again with fresh random seeds
# until MINUTES have passed. CI runs each once per build (48 to 20,000 cases);
# a rare counterexample can then surface in CI long after the change that
# allowed it, so soak before a change to the join, the windows or the parsers.
# A failure stops the loop with proptest's report; proptest has saved the
# case's seed in the test's .proptest-regressions file: keep it with the fix.
# Usage: scripts/soak_properties.sh [MINUTES]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-10}"
TEST=(cargo test --release --locked --quiet)
# Every property test (its cases per run are set in its proptest_config).
run_properties() {
    "${TEST[@]}" --lib -- parse::json::tests::unescaping_matches_serde_json_on_any_token \
        parse::line_parse::tests::the_scanner_agrees_with_serde_on_damaged_lines \
        parse::line_parse::tests::the_scanner_agrees_with_serde_on_damaged_record_values \
        parse::line_parse::tests::the_scanner_agrees_with_serde_on_damaged_payloads \
        parse::line_parse::tests::the_scanner_agrees_with_serde_on_damaged_properties
    "${TEST[@]}" --test join_rules -- reordering_a_users_records_within_grace_gives_identical_outputs
    "${TEST[@]}" --test accounting -- every_record_is_accounted_for
}
PROPERTIES=7

"${TEST[@]}" --no-run --lib --test join_rules --test accounting
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rounds=0
start=$SECONDS
while ((SECONDS - start < MINUTES * 60)); do
    if ! run_properties >"$log" 2>&1; then
        grep -v '^test .* ok$' "$log" | tail -n 80
        echo "soak: a property failed in round $((rounds + 1)); its seed is in the .proptest-regressions file" >&2
        exit 1
    fi
    # A filter that no longer names a test would soak nothing.
    ran="$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' "$log")"
    if ((ran != PROPERTIES)); then
        echo "soak: $ran of the $PROPERTIES property tests ran: a filter above matches no test (renamed?)" >&2
        exit 1
    fi
    rounds=$((rounds + 1))
done
echo "soak: $rounds rounds of every property test in $((SECONDS - start)) s: all passed"
