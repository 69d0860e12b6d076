//! Inputs found by fuzzing (fuzz/, scripts/fuzz.sh), kept as tests.

use neonblue::config::{Layout, SourceConfig};
use neonblue::domain::Parsed;
use neonblue::parse::{parse_record, DeadLetterRecord, Headers, ParseContext, RawRecord};

/// A value with a lone surrogate escape (`\uDE80`, found in a mutated
/// fixture) is dead-lettered by the outbox and Event Router layouts (the
/// tables layout skips it first: no table), and its DLQ line copies the
/// value verbatim: JSON by RFC 8259's grammar, although serde_json refuses
/// to decode the escape into a string.
#[test]
fn a_lone_surrogate_escape_is_dead_lettered_with_a_json_dlq_line() {
    let value = r#"{"op": "c", "after": {"aggregate_type": "event", "event_type": "EVENT_CREATED", "payload": "{\"title\": \"\uDE80\"}"}, "title": "\uDE80"}"#;
    for layout in [Layout::Outbox, Layout::Eventrouter, Layout::Tables] {
        let ctx = ParseContext::new(
            SourceConfig {
                layout,
                ..SourceConfig::default()
            },
            1_759_276_800_000_000,
        );
        let rec = RawRecord {
            topic: "outbox.event.event",
            partition: 0,
            offset: 0,
            key: Some("\"1\""),
            value: Some(value),
            headers: Headers::None,
        };
        let parsed = parse_record(&ctx, &rec);
        let Parsed::Dead(dead) = &parsed else {
            assert_eq!(layout, Layout::Tables, "not dead-lettered: {parsed:?}");
            continue;
        };
        let line = DeadLetterRecord { record: &rec, dead }.json_line();
        assert!(
            serde_json::from_str::<Box<serde_json::value::RawValue>>(&line).is_ok(),
            "{layout:?}: {line}"
        );
        assert!(line.contains(r"\uDE80"), "{layout:?}: {line}");
    }
}
