//! File mode in one pass: decode a JSONL line and parse its value together.
//!
//! [`decode_line`] + [`parse_record`] read a record-object line twice (once
//! to find the raw `value`, once to parse it). [`parse_line`] deserialises the
//! `value` straight into the layout's envelope while reading the line, and
//! falls back to the two-step path for everything unusual: bare values,
//! non-record objects, lines that are not JSON, and dead letters (whose DLQ
//! line needs the raw value). The outcome is always identical to the two-step
//! path's.
//!
//! Before both, the outbox layout's common line is read by the validating
//! scanner ([`super::scan`]), which skips the members nobody reads at
//! scanning speed and captures the rest exactly as the serde path does; it
//! hands anything it does not handle to the serde path.

use super::common::{unwrap_top, ParseContext, Top, Wrapped};
use super::dead_letter::DeadLetterRecord;
use super::dispatch::{parse_record, parse_record_serde};
use super::eventrouter;
use super::file_line::{clean_line, decode_line, LineDecode, LineFields};
use super::json::{self, FromMap, Row, Shape, Val};
use super::outbox::{self, OutboxEnvelope};
use super::raw::RawRecord;
use super::scan::Scan;
use super::tables::{self, TableEnvelope};
use crate::config::Layout;
use crate::domain::Parsed;

/// One parsed input line of file mode.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedLine<'a> {
    /// Source topic (the line's, else the default).
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Source offset (the line's, else the 0-based line index).
    pub offset: i64,
    /// What the parser concluded.
    pub parsed: Parsed,
    /// For a dead letter, the DLQ line ([`DeadLetterRecord::json_line`]).
    pub dlq: Option<String>,
}

/// Decodes and parses one JSONL line; `None` for a blank line (not a record).
/// Same outcome as [`decode_line`] then [`parse_record`] (and [`DeadLetterRecord::json_line`]
/// for dead letters, including lines that are not JSON), in one pass for the
/// common record-object line.
pub fn parse_line<'a>(
    ctx: &ParseContext,
    line: &'a str,
    line_index: u64,
    default_topic: &'a str,
) -> Option<ParsedLine<'a>> {
    parse_line_with(ctx, line, line_index, default_topic, true)
}

/// [`parse_line`] without the scanner, for the benchmark's comparison.
#[cfg(feature = "bench")]
pub fn parse_line_serde<'a>(
    ctx: &ParseContext,
    line: &'a str,
    line_index: u64,
    default_topic: &'a str,
) -> Option<ParsedLine<'a>> {
    parse_line_with(ctx, line, line_index, default_topic, false)
}

fn parse_line_with<'a>(
    ctx: &ParseContext,
    line: &'a str,
    line_index: u64,
    default_topic: &'a str,
    scanner: bool,
) -> Option<ParsedLine<'a>> {
    let fast = match ctx.source.layout {
        Layout::Outbox => scanner
            .then(|| scanned(ctx, line, line_index, default_topic))
            .flatten()
            .or_else(|| {
                fused::<OutboxEnvelope>(ctx, line, line_index, default_topic, outbox::parse_top)
            }),
        Layout::Eventrouter => {
            fused::<Row>(ctx, line, line_index, default_topic, eventrouter::parse_top)
        }
        Layout::Tables => {
            fused::<TableEnvelope>(ctx, line, line_index, default_topic, tables::parse_top)
        }
    };
    match fast {
        Some(p) => Some(p),
        None if scanner => two_step(ctx, line, line_index, default_topic, parse_record),
        None => two_step(ctx, line, line_index, default_topic, parse_record_serde),
    }
}

/// The fast path; `None` means "use the two-step path".
fn fused<'a, T: FromMap<'a> + Wrapped<'a>>(
    ctx: &ParseContext,
    line: &'a str,
    line_index: u64,
    default_topic: &'a str,
    interpret: fn(&ParseContext, &RawRecord, Top<'a, T>) -> Parsed,
) -> Option<ParsedLine<'a>> {
    let (_, text) = clean_line(line);
    if !text.starts_with('{') {
        return None;
    }
    let Ok(Shape::Object(fields)) = json::from_str::<Shape<LineFields<Shape<T>>>>(text) else {
        return None;
    };
    interpret_line(ctx, fields, line_index, default_topic, interpret)
}

/// The scanner's path for an outbox-layout line; `None` means "use the
/// serde paths".
fn scanned<'a>(
    ctx: &ParseContext,
    line: &'a str,
    line_index: u64,
    default_topic: &'a str,
) -> Option<ParsedLine<'a>> {
    let (_, text) = clean_line(line);
    let fields = Scan::whole_object(text, |s| {
        LineFields::scan(s, |s| match s.peek()? {
            b'{' => OutboxEnvelope::scan(s).map(Shape::Object),
            b'n' => s.val().filter(|v| *v == Val::Null).map(|_| Shape::Null),
            _ => None,
        })
    })?;
    interpret_line(ctx, fields, line_index, default_topic, outbox::parse_top)
}

/// A captured record-object line, interpreted; `None` for what the
/// two-step path must decide (not a record object, a dead letter).
fn interpret_line<'a, T: FromMap<'a> + Wrapped<'a>>(
    ctx: &ParseContext,
    fields: LineFields<'a, Shape<'a, T>>,
    line_index: u64,
    default_topic: &'a str,
    interpret: fn(&ParseContext, &RawRecord, Top<'a, T>) -> Parsed,
) -> Option<ParsedLine<'a>> {
    // `rec.value` stays None: the layouts' interpreters do not read it.
    let rec = fields.record(line_index, default_topic)?;
    let value = fields.value?;
    let parsed = interpret(ctx, &rec, unwrap_top(Ok(value)));
    if matches!(parsed, Parsed::Dead(_)) {
        return None;
    }
    Some(ParsedLine {
        topic: rec.topic,
        partition: rec.partition,
        offset: rec.offset,
        parsed,
        dlq: None,
    })
}

/// [`decode_line`] + `parse` (a [`parse_record`]) +
/// [`DeadLetterRecord::json_line`].
fn two_step<'a>(
    ctx: &ParseContext,
    line: &'a str,
    line_index: u64,
    default_topic: &'a str,
    parse: fn(&ParseContext, &RawRecord) -> Parsed,
) -> Option<ParsedLine<'a>> {
    let (rec, parsed) = match decode_line(line, line_index, default_topic) {
        LineDecode::Blank => return None,
        LineDecode::Record(rec) => {
            let parsed = parse(ctx, &rec);
            (rec, parsed)
        }
        LineDecode::Invalid { record, dead } => (record, Parsed::Dead(dead)),
    };
    let dlq = match &parsed {
        Parsed::Dead(d) => Some(
            DeadLetterRecord {
                record: &rec,
                dead: d,
            }
            .json_line(),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;
    use crate::parse::json::{PropFields, Props, Row};

    fn reference<'a>(
        ctx: &ParseContext,
        line: &'a str,
        i: u64,
        topic: &'a str,
    ) -> Option<ParsedLine<'a>> {
        two_step(ctx, line, i, topic, parse_record_serde)
    }

    fn check_all(lines: &[String]) {
        for layout in [Layout::Outbox, Layout::Eventrouter, Layout::Tables] {
            let ctx = ParseContext::new(
                SourceConfig {
                    layout,
                    ..SourceConfig::default()
                },
                1_759_276_800_000_000,
            );
            for (i, l) in lines.iter().enumerate() {
                assert_eq!(
                    parse_line(&ctx, l, i as u64, "f.jsonl"),
                    reference(&ctx, l, i as u64, "f.jsonl"),
                    "{l}"
                );
            }
        }
    }

    #[test]
    fn same_as_two_step_on_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().into_string().unwrap_or_default();
            if name.ends_with(".jsonl") && !name.ends_with(".raw.jsonl") {
                let text = std::fs::read_to_string(e.path()).unwrap();
                check_all(&text.lines().map(str::to_owned).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn same_as_two_step_on_odd_lines() {
        let lines: Vec<String> = [
            "",
            "   ",
            "not json",
            "{",
            "null",
            "\"{\\\"id\\\": 1}\"",
            r#"{"value": null}"#,
            r#"{"value": null, "extra": 1}"#,
            r#"{"topic": "t", "partition": 2, "offset": 5, "value": {"op": "c", "after": {"aggregate_type": "event", "event_type": "EVENT_CREATED", "payload": "{}"}}}"#,
            r#"{"topic": "t", "value": {"op": "zz"}, "headers": {"a": "b"}}"#,
            r#"{"topic": "outbox.event.event", "key": "k", "value": "{\"experiment_id\": 1, \"user_id\": 2, \"event_type\": \"x\", \"timestamp\": 1759226400000}"}"#,
            r#"{"topic": "experiments.public.events", "value": {"op": "d", "before": {"id": "e"}, "source": {"table": "events"}}}"#,
            r#"{"value": {"schema": {}, "payload": null}}"#,
            r#"{"value": {"schema": {}, "payload": {"op": "t"}}}"#,
            r#"{"op": "c", "after": null}"#,
            r#"{"value": 1, "partition": "x"}"#,
            r#"{"topic": "a\u0062", "value": {"op": "u"}}"#,
            "{\"value\": {\"op\": \"u\"}}\r",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        check_all(&lines);
    }

    fn outbox_fixture() -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/outbox_json.jsonl"
        );
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    /// The payload texts (each an escaped JSON string in its line) of the
    /// real outbox lines.
    fn payload_texts() -> &'static [String] {
        static TEXTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            outbox_fixture()
                .iter()
                .filter_map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    Some(v["value"]["after"]["payload"].as_str()?.to_owned())
                })
                .collect()
        });
        &TEXTS
    }

    /// The properties objects of [`payload_texts`], as written there.
    fn properties_texts() -> &'static [String] {
        static TEXTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            payload_texts()
                .iter()
                .filter_map(|t| match Row::parse_text_serde(t) {
                    Shape::Object(Row {
                        properties: Props::Object(p),
                        ..
                    }) => Some(p.to_owned()),
                    _ => None,
                })
                .collect()
        });
        &TEXTS
    }

    #[test]
    fn the_scanner_reads_real_payloads_and_properties_itself() {
        let payloads = payload_texts();
        assert!(payloads.len() > 50, "{}", payloads.len());
        for t in payloads {
            let fast = Row::scan_text(t).unwrap_or_else(|| panic!("left to serde: {t}"));
            let serde = Row::parse_text_serde(t);
            assert_eq!(format!("{:?}", Shape::Object(fast)), format!("{serde:?}"));
        }
        let props = properties_texts();
        assert!(props.iter().any(|p| p.contains("29.99")), "{props:?}");
        for p in props {
            let fast = Scan::whole_object(p, PropFields::scan)
                .unwrap_or_else(|| panic!("left to serde: {p}"));
            let serde = PropFields::parse_text_serde(p);
            assert_eq!(format!("{:?}", Some(fast)), format!("{serde:?}"));
        }
    }

    fn outbox_ctx() -> ParseContext {
        ParseContext::new(SourceConfig::default(), 1_759_276_800_000_000)
    }

    #[test]
    fn the_scanner_reads_real_outbox_lines_itself() {
        let ctx = outbox_ctx();
        let lines = outbox_fixture();
        for (i, l) in lines.iter().enumerate() {
            let scanned = scanned(&ctx, l, i as u64, "f.jsonl");
            let expected = reference(&ctx, l, i as u64, "f.jsonl");
            // Dead letters are written by the two-step path (it keeps the raw value).
            if expected.as_ref().is_some_and(|p| p.dlq.is_none()) {
                assert!(scanned.is_some(), "left to serde: {l}");
                assert_eq!(scanned, expected, "{l}");
            }
        }
    }

    /// Characters that matter to JSON, for the mutations below.
    const JSON_BYTES: &[u8] = b"\"\\{}[],:0123456789-+.eEntrfalsu \t\x01/";

    /// Applies the property tests' edits to `line`: a byte replaced by a
    /// JSON-significant one, one inserted before a quote, colon, comma,
    /// bracket or digit, a byte removed, a span repeated.
    fn damage(line: &mut Vec<u8>, edits: &[(usize, usize, u8, usize)]) {
        for &(at, c, kind, len) in edits {
            let at = at % (line.len() + 1);
            match kind {
                0 if at < line.len() => line[at] = JSON_BYTES[c],
                1 if at < line.len() => {
                    line.remove(at);
                }
                2 => {
                    let marks: Vec<usize> = (0..line.len())
                        .filter(|&i| b"\":,{}[]0123456789".contains(&line[i]))
                        .collect();
                    if !marks.is_empty() {
                        line.insert(marks[at % marks.len()], JSON_BYTES[c]);
                    }
                }
                _ => {
                    let span: Vec<u8> = line[at..(at + len).min(line.len())].to_vec();
                    line.splice(at..at, span);
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// Real outbox lines with up to three edits ([`damage`]): the line
        /// parser with the scanner gives what the two-step serde path gives,
        /// and the scanner's own outcome, when it has one, is the same.
        #[test]
        fn the_scanner_agrees_with_serde_on_damaged_lines(
            which in 0usize..74,
            edits in proptest::collection::vec((0usize..4000, 0usize..JSON_BYTES.len(), 0u8..4, 1usize..40), 0..4),
        ) {
            let ctx = outbox_ctx();
            let lines = outbox_fixture();
            let mut line = lines[which % lines.len()].clone().into_bytes();
            damage(&mut line, &edits);
            let Ok(line) = String::from_utf8(line) else {
                return Ok(());
            };
            let expected = reference(&ctx, &line, 7, "f.jsonl");
            proptest::prop_assert_eq!(parse_line(&ctx, &line, 7, "f.jsonl"), expected.clone(), "{}", line);
            if let Some(fast) = scanned(&ctx, &line, 7, "f.jsonl") {
                proptest::prop_assert_eq!(Some(fast), expected, "{}", line);
            }
        }

        /// A Kafka record's value (an envelope of a real outbox line) with
        /// up to three edits: the outbox layout's parser with the scanner
        /// gives what serde_json alone gives.
        #[test]
        fn the_scanner_agrees_with_serde_on_damaged_record_values(
            which in 0usize..74,
            edits in proptest::collection::vec((0usize..4000, 0usize..JSON_BYTES.len(), 0u8..4, 1usize..40), 0..4),
        ) {
            let ctx = outbox_ctx();
            let lines = outbox_fixture();
            let line = &lines[which % lines.len()];
            let LineDecode::Record(rec) = decode_line(line, 7, "f.jsonl") else {
                return Ok(());
            };
            let mut value = rec.value.unwrap_or("null").as_bytes().to_vec();
            damage(&mut value, &edits);
            let Ok(value) = String::from_utf8(value) else {
                return Ok(());
            };
            let rec = RawRecord { value: Some(&value), ..rec };
            proptest::prop_assert_eq!(parse_record(&ctx, &rec), parse_record_serde(&ctx, &rec), "{}", value);
        }

        /// A real payload text with up to three edits: the row the scanner
        /// captures (or leaves to serde_json) is serde_json's, field by
        /// field, and so are the properties fields read from it.
        #[test]
        fn the_scanner_agrees_with_serde_on_damaged_payloads(
            which in 0usize..74,
            edits in proptest::collection::vec((0usize..400, 0usize..JSON_BYTES.len(), 0u8..4, 1usize..40), 0..4),
        ) {
            let texts = payload_texts();
            let mut text = texts[which % texts.len()].clone().into_bytes();
            damage(&mut text, &edits);
            let Ok(text) = String::from_utf8(text) else {
                return Ok(());
            };
            let serde = Row::parse_text_serde(&text);
            proptest::prop_assert_eq!(format!("{:?}", Row::parse_text(&text)), format!("{serde:?}"), "{}", text);
            if let Shape::Object(Row { properties: Props::Object(p), .. }) = serde {
                proptest::prop_assert_eq!(
                    format!("{:?}", PropFields::parse_text(p)),
                    format!("{:?}", PropFields::parse_text_serde(p)),
                    "{}", p
                );
            }
        }

        /// A real properties object with up to three edits: the fields the
        /// scanner reads are serde_json's.
        #[test]
        fn the_scanner_agrees_with_serde_on_damaged_properties(
            which in 0usize..74,
            edits in proptest::collection::vec((0usize..200, 0usize..JSON_BYTES.len(), 0u8..4, 1usize..20), 0..4),
        ) {
            let texts = properties_texts();
            let mut text = texts[which % texts.len()].clone().into_bytes();
            damage(&mut text, &edits);
            let Ok(text) = String::from_utf8(text) else {
                return Ok(());
            };
            proptest::prop_assert_eq!(
                format!("{:?}", PropFields::parse_text(&text)),
                format!("{:?}", PropFields::parse_text_serde(&text)),
                "{}", text
            );
        }
    }
}
