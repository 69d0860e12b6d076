//! File mode in one pass: decode a JSONL line and parse its value together.
//!
//! [`decode_line`] + [`parse_record`] read a record-object line twice (once
//! to find the raw `value`, once to parse it). [`parse_line`] deserialises the
//! `value` straight into the layout's envelope while reading the line, and
//! falls back to the two-step path for everything unusual: bare values,
//! non-record objects, lines that are not JSON, and dead letters (whose DLQ
//! line needs the raw value). The outcome is always identical to the two-step
//! path's.

use super::common::{unwrap_top, ParseContext, Top, Wrapped};
use super::dead_letter::DeadLetterRecord;
use super::dispatch::parse_record;
use super::eventrouter;
use super::file_line::{clean_line, decode_line, LineDecode, LineFields};
use super::json::{self, FromMap, Row, Shape};
use super::outbox::{self, OutboxEnvelope};
use super::raw::RawRecord;
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
    let fast = match ctx.source.layout {
        Layout::Outbox => {
            fused::<OutboxEnvelope>(ctx, line, line_index, default_topic, outbox::parse_top)
        }
        Layout::Eventrouter => {
            fused::<Row>(ctx, line, line_index, default_topic, eventrouter::parse_top)
        }
        Layout::Tables => {
            fused::<TableEnvelope>(ctx, line, line_index, default_topic, tables::parse_top)
        }
    };
    match fast {
        Some(p) => Some(p),
        None => two_step(ctx, line, line_index, default_topic),
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

/// [`decode_line`] + [`parse_record`] + [`DeadLetterRecord::json_line`].
fn two_step<'a>(
    ctx: &ParseContext,
    line: &'a str,
    line_index: u64,
    default_topic: &'a str,
) -> Option<ParsedLine<'a>> {
    let (rec, parsed) = match decode_line(line, line_index, default_topic) {
        LineDecode::Blank => return None,
        LineDecode::Record(rec) => {
            let parsed = parse_record(ctx, &rec);
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

    fn reference<'a>(
        ctx: &ParseContext,
        line: &'a str,
        i: u64,
        topic: &'a str,
    ) -> Option<ParsedLine<'a>> {
        two_step(ctx, line, i, topic)
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
}
