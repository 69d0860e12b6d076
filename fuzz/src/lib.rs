//! What each fuzz target does with its input (the targets in `fuzz_targets/`
//! are one line each). Besides "never panics", each checks a property the
//! code promises: the parsers with the scanner agree with serde_json alone, a
//! resumed file reads the same lines, a parsed timestamp or duration prints
//! back to itself, a loaded configuration validates.

use neonblue::config::sources::{self, FlagValue, Sources};
use neonblue::config::{duration, Layout, SourceConfig};
use neonblue::domain::Parsed;
use neonblue::parse::json::{PropFields, Props, Row, Shape};
use neonblue::parse::{
    decode_line, headers, parse_line, parse_record, parse_record_serde, timestamp,
    DeadLetterRecord, Headers, LineDecode, ParseContext, ParsedLine, RawRecord,
};
use neonblue_topology::lines::LineSource;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The clock of every parse (2025-10-01T00:00:00Z), as in the parser's tests.
const NOW: i64 = 1_759_276_800_000_000;

/// Separates the parts of a structured input (ASCII record separator).
pub const SEPARATOR: char = '\u{1e}';

fn context(layout: Layout) -> ParseContext {
    ParseContext::new(
        SourceConfig {
            layout,
            ..SourceConfig::default()
        },
        NOW,
    )
}

/// A file of this process for the targets that need one (libFuzzer runs
/// one input at a time per process).
fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("neonblue-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch directory");
        d
    });
    dir.join(name)
}

/// A dead letter's DLQ line must be one line of JSON (RFC 8259's grammar:
/// an input's lone surrogate escape such as `\uDE80` is copied verbatim,
/// which serde_json refuses to decode into a string but the grammar allows).
fn check_dead_letter(rec: &RawRecord, parsed: &Parsed) {
    if let Parsed::Dead(dead) = parsed {
        let line = DeadLetterRecord { record: rec, dead }.json_line();
        assert!(!line.contains('\n'), "DLQ line spans lines: {line}");
        if let Err(e) = serde_json::from_str::<Box<serde_json::value::RawValue>>(&line) {
            panic!("DLQ line is not JSON ({e}): {line}");
        }
    }
}

/// `value␞key␞headers␞topic` (later parts optional): one record of `layout`.
/// Headers starting with `{` are file mode's JSON object, otherwise Kafka's
/// `name=value` pairs, one a line.
pub fn record(layout: Layout, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split(SEPARATOR);
    let value = parts.next().filter(|v| *v != "null");
    let key = parts.next().filter(|k| !k.is_empty() && *k != "null");
    let header_text = parts.next().unwrap_or("");
    let topic = parts.next().unwrap_or("experiments_events");
    let pairs: Vec<(String, String)> = header_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let headers = if header_text.is_empty() {
        Headers::None
    } else if header_text.starts_with('{') {
        Headers::Json(header_text)
    } else {
        Headers::Pairs(&pairs)
    };
    let rec = RawRecord {
        topic,
        partition: 0,
        offset: 0,
        key,
        value,
        headers,
    };
    let ctx = context(layout);
    let parsed = parse_record(&ctx, &rec);
    assert_eq!(parsed, parse_record(&ctx, &rec), "not deterministic");
    assert_eq!(
        parsed,
        parse_record_serde(&ctx, &rec),
        "the scanner and serde_json differ"
    );
    check_dead_letter(&rec, &parsed);
}

/// [`decode_line`] then [`parse_record_serde`]: what [`parse_line`] promises to equal.
fn two_step<'a>(
    ctx: &ParseContext,
    line: &'a str,
    index: u64,
    topic: &'a str,
) -> Option<ParsedLine<'a>> {
    let (rec, parsed) = match decode_line(line, index, topic) {
        LineDecode::Blank => return None,
        LineDecode::Record(rec) => {
            let parsed = parse_record_serde(ctx, &rec);
            (rec, parsed)
        }
        LineDecode::Invalid { record, dead } => (record, Parsed::Dead(dead)),
    };
    check_dead_letter(&rec, &parsed);
    let dlq = match &parsed {
        Parsed::Dead(dead) => Some(DeadLetterRecord { record: &rec, dead }.json_line()),
        _ => None,
    };
    Some(ParsedLine {
        topic: rec.topic,
        partition: rec.partition,
        offset: rec.offset,
        parsed,
        dlq,
    })
}

/// Lines of a file (read like file mode: lossy UTF-8), parsed in every layout.
pub fn file_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for layout in [Layout::Outbox, Layout::Eventrouter, Layout::Tables] {
        let ctx = context(layout);
        for (i, line) in text.split('\n').enumerate() {
            let fast = parse_line(&ctx, line, i as u64, "input.jsonl");
            let slow = two_step(&ctx, line, i as u64, "input.jsonl");
            assert_eq!(
                fast, slow,
                "{layout:?}: one pass and two steps differ on {line:?}"
            );
        }
    }
}

/// A domain payload's text: the row and the properties fields the scanner
/// reads (or leaves to serde_json) are serde_json's, field by field.
pub fn payload(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let serde = Row::parse_text_serde(text);
    assert_eq!(
        format!("{:?}", Row::parse_text(text)),
        format!("{serde:?}"),
        "the row differs on {text:?}"
    );
    assert_eq!(
        format!("{:?}", PropFields::parse_text(text)),
        format!("{:?}", PropFields::parse_text_serde(text)),
        "the properties fields differ on {text:?}"
    );
    if let Shape::Object(Row {
        properties: Props::Object(props),
        ..
    }) = serde
    {
        assert_eq!(
            format!("{:?}", PropFields::parse_text(props)),
            format!("{:?}", PropFields::parse_text_serde(props)),
            "the properties fields differ on {props:?}"
        );
    }
}

/// `[max_lines, block, resume_at, file…]`: the file read in calls of at
/// most `max_lines % 8 + 1` lines, through a buffer of `block % 16 + 1`
/// bytes, gives back exactly its lines, and resuming at any call's span
/// gives the rest.
pub fn file_source(data: &[u8]) {
    let [max_lines, block, resume_at, content @ ..] = data else {
        return;
    };
    let max_lines = *max_lines as usize % 8 + 1;
    let block = *block as usize % 16 + 1;
    let path = scratch("input.jsonl");
    std::fs::write(&path, content).expect("write the input");
    let expected: Vec<&[u8]> = match content.strip_suffix(b"\n") {
        None if content.is_empty() => Vec::new(),
        None => content.split(|b| *b == b'\n').collect(),
        Some(body) => body.split(|b| *b == b'\n').collect(),
    };
    let read = |pos: u64, line: u64| {
        let mut source = LineSource::open(&path, pos, line, block).expect("open");
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut checkpoints = Vec::new();
        let mut next = line;
        loop {
            let span = source.next_lines(max_lines, |b| {
                assert_eq!(b.first_line, next, "line index");
                for l in b.lines() {
                    lines.push(l.to_vec());
                    next += 1;
                }
            });
            let Some(span) = span.expect("read") else {
                break;
            };
            assert!(
                (1..=max_lines as u64).contains(&span.lines),
                "{} lines in a call of at most {max_lines}",
                span.lines
            );
            assert_eq!(span.first_line + span.lines, next, "lines in the span");
            checkpoints.push((span.end_pos, next));
        }
        (lines, checkpoints)
    };
    let (lines, checkpoints) = read(0, 0);
    assert_eq!(lines, expected, "lines of {content:?}");
    assert_eq!(
        checkpoints.last().map_or(0, |c| c.0),
        content.len() as u64,
        "end position"
    );
    if let Some(&(pos, line)) = checkpoints.get(*resume_at as usize % checkpoints.len().max(1)) {
        let (rest, _) = read(pos, line);
        assert_eq!(
            rest,
            expected[line as usize..],
            "resumed at byte {pos}, line {line}"
        );
    }
}

/// A timestamp as text, and as a number when it reads as one.
pub fn timestamp(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(us) = timestamp::parse_timestamp_str(s) {
        let iso = neonblue::time::format_iso(us);
        // Years 0000–9999 print in the four digits the parser reads.
        if iso.len() == "2025-01-01T00:00:00.000000Z".len() && iso.as_bytes()[0].is_ascii_digit() {
            assert_eq!(
                timestamp::parse_timestamp_str(&iso),
                Some(us),
                "{s:?} → {iso}"
            );
        }
    }
    if let Some(days) = neonblue::time::parse_date(s) {
        assert_eq!(neonblue::time::format_date(days), s, "date {s:?}");
    }
    if let Ok(n) = s.parse::<i64>() {
        let us = timestamp::parse_timestamp_i64(n);
        if let Ok(u) = u64::try_from(n) {
            assert_eq!(timestamp::parse_timestamp_u64(u), us, "{n} as u64");
        }
    } else if let Ok(n) = s.parse::<u64>() {
        assert!(timestamp::parse_timestamp_u64(n).is_some(), "{n} as u64");
    }
    if let Ok(f) = s.parse::<f64>() {
        let _ = timestamp::parse_timestamp_f64(f);
    }
    if let Ok(n) = serde_json::from_str::<serde_json::Number>(s) {
        let _ = timestamp::parse_timestamp_number(&n);
    }
}

/// `headers␞name␞name…`: the names looked up in the headers, as a JSON
/// object and as Kafka pairs.
pub fn headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split(SEPARATOR);
    let header_text = parts.next().unwrap_or("");
    let names: Vec<&str> = parts.collect();
    let [a, b, c] = std::array::from_fn(|i| names.get(i).copied().unwrap_or(""));
    let json = headers::lookup(&Headers::Json(header_text), [a, b, c]);
    assert_eq!(
        json,
        headers::lookup(&Headers::Json(header_text), [a, b, c])
    );
    let pairs: Vec<(String, String)> = header_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = headers::lookup(&Headers::Pairs(&pairs), [a, b, c]);
}

/// `toml␞NAME=value lines␞key=value lines`: a configuration file, the
/// environment and flags. A configuration that loads is valid and prints;
/// every value that reads as a duration prints back to itself.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split(SEPARATOR);
    let toml = parts.next().unwrap_or("");
    let pairs = |part: Option<&str>| -> Vec<(String, String)> {
        part.unwrap_or("")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let env = pairs(parts.next());
    let flags = pairs(parts.next())
        .into_iter()
        .map(|(k, v)| FlagValue::new(&k, "--fuzz", v))
        .collect();
    let file = scratch("neonblue.toml");
    std::fs::write(&file, toml).expect("write the file");
    let loaded = sources::load(&Sources {
        file: Some(file),
        env: env.clone(),
        flags,
    });
    match loaded {
        Ok(loaded) => {
            assert_eq!(loaded.config.validate(), vec![], "loaded but invalid");
            let _ = loaded.render();
        }
        Err(e) => assert!(!e.problems.is_empty() && !e.to_string().is_empty()),
    }
    for value in std::iter::once(toml).chain(env.iter().map(|(_, v)| v.as_str())) {
        if let Ok(d) = duration::parse(value) {
            let text = duration::format(d);
            assert_eq!(duration::parse(&text), Ok(d), "{value:?} → {text:?}");
        }
    }
}
