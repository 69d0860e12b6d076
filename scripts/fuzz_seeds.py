#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/), written from the repository's
captured Debezium fixtures (tests/fixtures) and the example configuration.

Usage: scripts/fuzz_seeds.py OUT_DIR   (writes OUT_DIR/<target>/<n>)
The input formats are those of fuzz/src/lib.rs: parts separated by U+001E.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEP = "\x1e"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ][0-9:.]+(?:Z|[+-]\d\d(?::?\d\d)?)?")


def write(out, target, seeds):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(dict.fromkeys(seeds)):  # unique, in order
        (d / f"seed-{i:04}").write_bytes(s.encode() if isinstance(s, str) else s)
    return len(dict.fromkeys(seeds))


def payload_of(line):
    """The domain payload text of a fixture line (an outbox row's payload
    string, or the row itself), or None."""
    try:
        value = json.loads(line).get("value")
    except (ValueError, AttributeError):
        return None
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return None
    payload = (value.get("after") or {}).get("payload")
    return payload if isinstance(payload, str) else json.dumps(value.get("after") or value)


def main(out):
    raw = [json.loads(l) for f in sorted(FIXTURES.glob("*.raw.jsonl")) for l in f.read_text().splitlines() if l]
    lines = [l for f in sorted(FIXTURES.glob("*.jsonl")) if not f.name.endswith(".raw.jsonl")
             for l in f.read_text().splitlines() if l]
    records = [
        SEP.join([r.get("value_raw") or "null", r.get("key_raw") or "",
                  json.dumps(r["headers"]) if r.get("headers") else "", r.get("topic", "")])
        for r in raw
    ]
    # Kafka-style header pairs too (name=value lines).
    records += [
        SEP.join([r.get("value_raw") or "null", r.get("key_raw") or "",
                  "\n".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in r["headers"].items()),
                  r.get("topic", "")])
        for r in raw if r.get("headers")
    ][:40]
    counts = {}
    for layout in ("outbox", "eventrouter", "tables"):
        counts[f"record_{layout}"] = write(out, f"record_{layout}", records)
    counts["file_line"] = write(out, "file_line", lines + ["", "not json", "{}", "null", '"x"'])
    payloads = [p for l in lines for p in [payload_of(l)] if p]
    counts["payload"] = write(out, "payload", payloads + [
        '{"value": -1.5e3, "score": 42.0, "page": "p\\u00e9"}', '{"schema": {}, "payload": {}}', "{}"])
    files = sorted(f for f in FIXTURES.glob("*.jsonl"))
    counts["file_source"] = write(out, "file_source", [bytes([n, n * 3 % 256, n * 7 % 256]) + f.read_bytes()[: 4000 * (n + 1)]
                                                        for n, f in enumerate(files)] + [b"\x02\x03\x01a\n\nb", b"\x00\x00\x00\n"])
    stamps = sorted({m for l in lines for m in TIMESTAMP.findall(l)})
    numbers = sorted({m for l in lines for m in re.findall(r'"ts_(?:ms|us|ns)": (\d+)', l)})
    counts["timestamp"] = write(out, "timestamp", stamps + numbers + [
        "2024-02-29T23:59:59.999999999+14:00", "0000-01-01T00:00:00-23:59", "9999-12-31 23:59:59z",
        "-1", "1e17", "18446744073709551615", "1759276800000.5", "2025-09-30"])
    headers = [json.dumps(r["headers"]) for r in raw if r.get("headers")]
    names = SEP.join(["id", "eventType", "aggregateType"])
    counts["headers"] = write(out, "headers", [h + SEP + names for h in headers] + [
        '{"x": {"schema": {"type": "int64"}, "payload": 4}, "id": "a\\u0062"}' + SEP + "x" + SEP + "id"])
    example = (ROOT / "docs" / "neonblue.example.toml").read_text()
    env = "NEONBLUE_PROCESSING__GRACE=250ms\nNEONBLUE_KAFKA__COMMIT_INTERVAL=1h 30m\nNEONBLUE_KAFKA__PROPERTIES__sasl.password=x"
    flags = "processing.partitions=4\noutput.url=s3://bucket/prefix\nstate.cache_bytes=1048576"
    counts["config"] = write(out, "config", [
        example, example + SEP + env + SEP + flags, SEP + env, SEP + SEP + flags,
        "[processing]\ngrace = \"5m\"\npartitions = 2\n", "[kafka.properties]\n\"sasl.password\" = \"s\"\n",
        "2s", "1.5s", "30d", "18446744073709551615s"])
    print(" ".join(f"{t}={n}" for t, n in counts.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
