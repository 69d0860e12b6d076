//! Parse benchmarks' reference points (SPEC 9): the "bare parse" of a JSONL
//! file with the same JSON parser (serde_json), and the neonblue parser over
//! the same file.

use super::envelope::{parse_record, ParseContext};
use super::file_line::{decode_line, LineDecode};
use crate::domain::Parsed;
use serde_json::Value;
use std::path::Path;

/// Bare parse: every line, then its Debezium value (a record object's `value`,
/// else the line itself, schema wrapper removed) and the payload inside it
/// (`after.payload` or the value itself when it is a string holding JSON) are
/// parsed into `serde_json::Value` trees. Returns the number of non-blank
/// lines that were valid JSON.
pub fn parse_file(path: &Path) -> anyhow::Result<u64> {
    let data = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&data);
    let mut n = 0u64;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        n += 1;
        let mut v = match v {
            Value::Object(mut m) if m.contains_key("value") && !m.contains_key("op") => {
                m.remove("value").unwrap_or(Value::Null)
            }
            other => other,
        };
        if let Value::Object(m) = &mut v {
            if m.len() == 2 && m.contains_key("schema") {
                v = m.remove("payload").unwrap_or(Value::Null);
            }
        }
        let payload = match &v {
            Value::String(s) => Some(s.as_str()),
            Value::Object(m) => m
                .get("after")
                .and_then(|a| a.get("payload"))
                .and_then(Value::as_str),
            _ => None,
        };
        if let Some(p) = payload {
            std::hint::black_box(serde_json::from_str::<Value>(p).ok());
        }
        std::hint::black_box(&v);
    }
    Ok(n)
}

/// Runs the real decoder and parser over a JSONL file; returns the number of
/// domain records (changes and deletes by id) produced.
pub fn run_parser(path: &Path, ctx: &ParseContext) -> anyhow::Result<u64> {
    let data = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&data);
    let topic = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u64;
    for (i, line) in text.lines().enumerate() {
        if let LineDecode::Record(rec) = decode_line(line, i as u64, &topic) {
            if matches!(
                parse_record(ctx, &rec),
                Parsed::Change { .. } | Parsed::DeleteById(_)
            ) {
                n += 1;
            }
        }
    }
    Ok(n)
}
