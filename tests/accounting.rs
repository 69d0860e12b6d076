//! SPEC 2.5: every input record is accounted for exactly once, whatever the
//! input looks like.
//!
//! `records_in = events_emitted + assignments_applied + skipped + dead_lettered`,
//! and `records_in` is the number of non-blank lines of the file. File order
//! is the truth: a line's `offset` (and `partition`) only label its origin,
//! so offsets that go backwards, repeat or jump change nothing else.

mod common;

use neonblue::config::Layout;
use neonblue::domain::Summary;
use neonblue::generate::{generate, GenerateOptions};
use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;

/// Lines of a generated stream with every kind of trouble the generator knows.
fn generated_lines(records: u64, seed: u64) -> Vec<String> {
    let opts = GenerateOptions {
        records,
        seed,
        users: 40,
        snapshot_rows: 20,
        malformed: 0.02,
        duplicates: 0.02,
        late_events: 0.02,
        unassigned_users: 0.05,
        before_assignment: 0.05,
        reassignments: 0.02,
        deletes: 0.02,
        redeliveries: 0.005,
        ..GenerateOptions::default()
    };
    let mut buf = Vec::new();
    generate(&opts, &mut buf).unwrap();
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A line that is not a record: nothing but whitespace (and a byte-order mark).
fn is_blank(line: &[u8]) -> bool {
    let line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

fn non_blank_lines(bytes: &[u8]) -> u64 {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !is_blank(l))
        .count() as u64
}

fn run(bytes: &[u8], dir: &Path, partitions: u32, checkpoint_records: u64) -> Summary {
    let input = dir.join("input.jsonl");
    std::fs::write(&input, bytes).unwrap();
    common::run_into(&input, dir, Layout::Outbox, partitions, checkpoint_records)
}

fn assert_accounted(s: &Summary, bytes: &[u8]) {
    assert_eq!(
        s.records_in,
        non_blank_lines(bytes),
        "records_in must be the number of non-blank lines"
    );
    assert_eq!(
        s.unaccounted(),
        0,
        "records_in = events + assignments + skipped + dead letters must hold: {s:?}"
    );
}

#[test]
fn an_offset_far_ahead_loses_nothing() {
    // The reported case: one record with offset 10^15 at line 100 of a
    // 2,000-line file made the 1,665 records after it vanish.
    let lines = generated_lines(2_000, 5);
    let mut jumped = lines.clone();
    let mut v: Value = serde_json::from_str(&jumped[100]).unwrap();
    v["offset"] = Value::from(1_000_000_000_000_000i64);
    jumped[100] = v.to_string();

    let plain = lines.join("\n") + "\n";
    let mutated = jumped.join("\n") + "\n";
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let expected = run(plain.as_bytes(), a.path(), 1, 500);
    let actual = run(mutated.as_bytes(), b.path(), 1, 500);
    assert_accounted(&actual, mutated.as_bytes());
    assert_eq!(actual, expected, "an offset is a label, not a position");
}

#[test]
fn offsets_that_repeat_or_go_backwards_are_processed_in_file_order() {
    let lines = generated_lines(600, 6);
    let relabelled: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| match serde_json::from_str::<Value>(l) {
            Ok(mut v @ Value::Object(_)) => {
                // Every record claims offset 7, or counts down.
                v["offset"] = Value::from(if i % 2 == 0 { 7 } else { 600 - i as i64 });
                v.to_string()
            }
            _ => l.clone(),
        })
        .collect();
    let plain = lines.join("\n") + "\n";
    let mutated = relabelled.join("\n") + "\n";
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let expected = run(plain.as_bytes(), a.path(), 2, 100);
    let actual = run(mutated.as_bytes(), b.path(), 2, 100);
    assert_accounted(&actual, mutated.as_bytes());
    assert_eq!(actual, expected);
}

/// One change to a generated file.
#[derive(Clone, Debug)]
enum Mutation {
    /// Insert arbitrary bytes (may hold newlines, invalid UTF-8) as a line.
    InsertBytes(usize, Vec<u8>),
    /// Set the line's `offset` to any value (or a non-number).
    SetOffset(usize, Value),
    /// Set the line's `partition` to any value.
    SetPartition(usize, Value),
    /// Replace a field of the envelope or of the payload with any JSON.
    SetField(usize, usize, Value),
    /// Remove a field of the envelope or of the payload.
    RemoveField(usize, usize),
    /// Cut the line short.
    Truncate(usize, usize),
    /// Repeat the line.
    Duplicate(usize),
    /// Swap two lines.
    Swap(usize, usize),
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(Value::from("2025-09-30T01:02:03Z")),
        Just(Value::from("12.30")),
        Just(Value::from(u32::MAX as u64 + 1)),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<usize>();
    prop_oneof![
        (i, prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
        (i, any_json()).prop_map(|(i, v)| Mutation::SetOffset(i, v)),
        (
            i,
            prop_oneof![
                any::<i64>().prop_map(Value::from),
                any_json(),
                Just(Value::from(-1))
            ]
        )
            .prop_map(|(i, v)| Mutation::SetPartition(i, v)),
        (i, any::<usize>(), any_json()).prop_map(|(i, f, v)| Mutation::SetField(i, f, v)),
        (i, any::<usize>()).prop_map(|(i, f)| Mutation::RemoveField(i, f)),
        (i, any::<usize>()).prop_map(|(i, at)| Mutation::Truncate(i, at)),
        i.prop_map(Mutation::Duplicate),
        (i, any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

/// Fields a mutation may touch: the envelope's, `after`'s, and the payload's.
const FIELDS: [&str; 14] = [
    "op",
    "after",
    "before",
    "ts_ms",
    "aggregate_type",
    "event_type",
    "payload",
    "aggregate_id",
    "id",
    "user_id",
    "experiment_id",
    "timestamp",
    "variant_id",
    "assigned_at",
];

/// Applies `edit` to the record's value: the envelope, `after`, or the payload (parsed from its string form
/// and written back as a string).
fn edit_field(v: &mut Value, edit: &dyn Fn(&mut serde_json::Map<String, Value>)) {
    let Some(value) = v.get_mut("value").filter(|x| x.is_object()) else {
        return;
    };
    edit(value.as_object_mut().unwrap());
    let Some(after) = value.get_mut("after").and_then(Value::as_object_mut) else {
        return;
    };
    edit(after);
    if let Some(Value::String(s)) = after.get("payload") {
        if let Ok(Value::Object(mut p)) = serde_json::from_str::<Value>(s) {
            edit(&mut p);
            after.insert(
                "payload".into(),
                Value::String(Value::Object(p).to_string()),
            );
        }
    }
}

fn apply(lines: &mut Vec<Vec<u8>>, m: &Mutation) {
    if lines.is_empty() {
        return;
    }
    let n = lines.len();
    let as_json = |l: &[u8]| {
        serde_json::from_slice::<Value>(l)
            .ok()
            .filter(Value::is_object)
    };
    match m {
        Mutation::InsertBytes(i, b) => lines.insert(i % (n + 1), b.clone()),
        Mutation::SetOffset(i, v) | Mutation::SetPartition(i, v) => {
            let key = if matches!(m, Mutation::SetOffset(..)) {
                "offset"
            } else {
                "partition"
            };
            if let Some(mut j) = as_json(&lines[i % n]) {
                j[key] = v.clone();
                lines[i % n] = j.to_string().into_bytes();
            }
        }
        Mutation::SetField(i, f, v) => {
            if let Some(mut j) = as_json(&lines[i % n]) {
                let name = FIELDS[f % FIELDS.len()];
                let v = v.clone();
                edit_field(&mut j, &|o| {
                    if o.contains_key(name) {
                        o.insert(name.to_string(), v.clone());
                    }
                });
                lines[i % n] = j.to_string().into_bytes();
            }
        }
        Mutation::RemoveField(i, f) => {
            if let Some(mut j) = as_json(&lines[i % n]) {
                let name = FIELDS[f % FIELDS.len()];
                edit_field(&mut j, &|o| {
                    o.remove(name);
                });
                lines[i % n] = j.to_string().into_bytes();
            }
        }
        Mutation::Truncate(i, at) => {
            let l = &mut lines[i % n];
            let at = at % (l.len() + 1);
            l.truncate(at);
        }
        Mutation::Duplicate(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::Swap(a, b) => lines.swap(a % n, b % n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary mutations of a generated file (and arbitrary bytes): every
    /// non-blank line is a record, and every record lands in exactly one bucket.
    #[test]
    fn every_record_is_accounted_for(
        seed in 0u64..1_000,
        mutations in prop::collection::vec(mutation(), 0..40),
        partitions in 1u32..4,
        checkpoint_records in prop_oneof![Just(7u64), Just(64), Just(100_000)],
    ) {
        let mut lines: Vec<Vec<u8>> = generated_lines(250, seed)
            .into_iter()
            .map(String::into_bytes)
            .collect();
        for m in &mutations {
            apply(&mut lines, m);
        }
        let bytes = lines.join(&b'\n');
        let dir = tempfile::tempdir().unwrap();
        let s = run(&bytes, dir.path(), partitions, checkpoint_records);
        assert_accounted(&s, &bytes);
    }

    /// Nothing but arbitrary bytes.
    #[test]
    fn arbitrary_bytes_are_accounted_for(bytes in prop::collection::vec(any::<u8>(), 0..2_000)) {
        let dir = tempfile::tempdir().unwrap();
        let s = run(&bytes, dir.path(), 2, 5);
        assert_accounted(&s, &bytes);
    }
}
