//! Synthetic records of the `eventrouter` and `tables` layouts, and the
//! no-panic check over mutated inputs.

use super::common::ParseContext;
use super::dead_letter::DeadLetterRecord;
use super::dispatch::parse_record;
use super::dispatch_tests::{
    assignment_payload, dead, ev_out, event_payload, outbox, run, the_event,
};
use super::file_line::{decode_line, LineDecode};
use super::line_parse::{parse_line, ParsedLine};
use super::raw::Headers;
use crate::config::{Layout, SourceConfig};
use crate::domain::{Change, DeleteById, Parsed, SkipReason};
use serde_json::{json, Value};

fn router(topic: &str, key: Option<&str>, value: &str, headers: &[(&str, &str)]) -> Parsed {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run(
        Layout::Eventrouter,
        topic,
        key,
        Some(value),
        Headers::Pairs(&pairs),
    )
}

#[test]
fn eventrouter_layout() {
    let payload = event_payload().to_string();
    let as_string = Value::String(payload.clone()).to_string();
    // The routed value carries no capture time (the outbox envelope's is 1 ms).
    let mut expected = ev_out("c", &event_payload());
    if let Parsed::Change { captured, .. } = &mut expected {
        *captured = None;
    }
    assert_eq!(
        router("outbox.event.event", None, &as_string, &[("id", "77")]),
        expected
    );
    assert_eq!(router("outbox.event.event", None, &payload, &[]), expected);
    let wrapped = json!({"schema": {"type": "string"}, "payload": payload}).to_string();
    assert_eq!(router("outbox.event.event", None, &wrapped, &[]), expected);
    // aggregate type: header beats topic; unknown ones are skipped before the payload is read
    assert_eq!(
        router("other", None, &payload, &[("aggregateType", "event")]),
        expected
    );
    assert_eq!(
        router("outbox.event.user", None, "12", &[]),
        Parsed::Skip(SkipReason::UnknownAggregateType)
    );
    assert_eq!(router("x.y.event", None, &payload, &[]), expected);
    // event type header
    assert_eq!(
        router(
            "outbox.event.event",
            None,
            "\"junk\"",
            &[("eventType", "EVENT_DELETED")]
        ),
        Parsed::Skip(SkipReason::UnknownEventType)
    );
    assert_eq!(
        router(
            "outbox.event.event",
            None,
            &payload,
            &[("eventType", "ASSIGNMENT_CREATED")]
        ),
        Parsed::Skip(SkipReason::UnknownEventType)
    );
    let a = assignment_payload().to_string();
    assert!(matches!(
        router("outbox.event.assignment", None, &a, &[]),
        Parsed::Change {
            change: Change::Assign(_),
            ..
        }
    ));
    assert!(matches!(
        router(
            "outbox.event.assignment",
            None,
            &a,
            &[("eventType", "ASSIGNMENT_DELETED")]
        ),
        Parsed::Change {
            change: Change::Unassign(_),
            ..
        }
    ));
    // op header
    assert!(matches!(
        router("outbox.event.event", None, &payload, &[("__op", "r")]),
        Parsed::Change { snapshot: true, .. }
    ));
    // payload stage
    for bad in ["\"not json\"", "12", "[1]", "\"[1]\""] {
        assert_eq!(
            router("outbox.event.event", None, bad, &[]),
            dead("payload", "invalid_payload"),
            "{bad}"
        );
    }
    // event id: payload id, else the key, never the `id` header
    let mut p = event_payload();
    p.as_object_mut().unwrap().remove("id");
    let p = p.to_string();
    assert_eq!(
        the_event(router(
            "outbox.event.event",
            Some("\"k-1\""),
            &p,
            &[("id", "5")]
        ))
        .event_id,
        "k-1"
    );
    assert_eq!(
        the_event(router("outbox.event.event", Some("31"), &p, &[])).event_id,
        "31"
    );
    assert_eq!(
        router("outbox.event.event", None, &p, &[("id", "5")]),
        dead("fields", "missing_id")
    );
    assert_eq!(
        router("outbox.event.event", Some("{\"id\": 1}"), &p, &[]),
        dead("fields", "invalid_id")
    );
}

fn table(topic: &str, v: &Value) -> Parsed {
    run(
        Layout::Tables,
        topic,
        None,
        Some(&v.to_string()),
        Headers::None,
    )
}

#[test]
fn tables_layout() {
    let row = json!({"id": 14, "experiment_id": 1, "user_id": "u", "variant_id": 2, "assigned_at": "2025-09-30T10:31:00.000000Z"});
    let env = |op: &str, before: Value, after: Value, tbl: Option<&str>| {
        let mut v =
            json!({"before": before, "after": after, "op": op, "source": {"schema": "public"}});
        if let Some(t) = tbl {
            v["source"]["table"] = json!(t);
        }
        v
    };
    let t = "experiments.public.assignments";
    assert!(matches!(
        table(t, &env("u", json!(null), row.clone(), None)),
        Parsed::Change {
            change: Change::Assign(_),
            snapshot: false,
            ..
        }
    ));
    assert!(matches!(
        table(
            "x",
            &env("r", json!(null), row.clone(), Some("assignments"))
        ),
        Parsed::Change { snapshot: true, .. }
    ));
    assert_eq!(
        table(t, &env("c", json!(null), row.clone(), Some("variants"))),
        Parsed::Skip(SkipReason::OtherTable)
    );
    assert_eq!(
        table(
            "experiments.public.variants",
            &env("c", json!(null), json!(1), None)
        ),
        Parsed::Skip(SkipReason::OtherTable)
    );
    let key_only = json!({"id": 15, "experiment_id": null, "user_id": null, "variant_id": null, "assigned_at": null});
    assert_eq!(
        table(t, &env("d", key_only.clone(), json!(null), None)),
        Parsed::DeleteById(DeleteById {
            id: "15".into(),
            captured: None
        })
    );
    // The envelope's capture time dates the delete.
    let mut dated = env("d", key_only, json!(null), None);
    dated["ts_ms"] = json!(1_759_228_800_123i64);
    assert_eq!(
        table(t, &dated),
        Parsed::DeleteById(DeleteById {
            id: "15".into(),
            captured: Some(1_759_228_800_123_000)
        })
    );
    assert_eq!(
        table(t, &env("d", json!(null), json!(null), None)),
        dead("envelope", "invalid_envelope")
    );
    assert_eq!(
        table(t, &env("c", json!(null), json!(null), None)),
        dead("envelope", "invalid_envelope")
    );
    assert_eq!(
        table(t, &env("t", json!(null), json!(null), None)),
        Parsed::Skip(SkipReason::Truncate)
    );
    assert_eq!(
        table(t, &env("q", json!(null), json!(null), None)),
        dead("op", "unknown_op")
    );
    let ev = json!({"id": "e9", "experiment_id": 1, "user_id": "u", "variant_id": 3, "event_type": "click",
                    "timestamp": "2025-09-30T10:00:00.000000Z", "properties": "null", "session_id": null, "created_at": 0});
    let e = the_event(table(
        "experiments.public.events",
        &env("c", json!(null), ev.clone(), None),
    ));
    assert_eq!(
        (e.properties.as_str(), e.claimed_variant_id, e.session_id),
        ("{}", Some(3), None)
    );
    assert_eq!(
        table(
            "experiments.public.events",
            &env("d", json!({"id": "e9"}), json!(null), None)
        ),
        Parsed::Skip(SkipReason::EventDelete)
    );
    let mut no_id = ev;
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(
        table(
            "experiments.public.events",
            &env("c", json!(null), no_id, None)
        ),
        dead("fields", "missing_id")
    );
}

/// Every prefix and many byte-mutated variants of real records, in every
/// layout, must parse to *something* without panicking.
#[test]
fn never_panics() {
    let samples = [
        outbox("c", json!("event"), json!("EVENT_CREATED"), &event_payload()).to_string(),
        outbox("c", json!("assignment"), json!("ASSIGNMENT_DELETED"), &assignment_payload()).to_string(),
        json!({"schema": {}, "payload": {"op": "d", "before": {"id": 1}, "source": {"table": "assignments"}}}).to_string(),
        Value::String(event_payload().to_string()).to_string(),
    ];
    // the same as file lines (record objects)
    let lines: Vec<String> = samples
        .iter()
        .map(|v| {
            format!(r#"{{"topic": "experiments.public.events", "key": {{"id": 4}}, "value": {v}, "headers": {{"eventType": "EVENT_CREATED"}}}}"#)
        })
        .collect();
    let samples: Vec<String> = samples.into_iter().chain(lines).collect();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pairs = vec![("eventType".to_string(), "EVENT_CREATED".to_string())];
    for s in &samples {
        let mut variants: Vec<String> = (0..=s.len())
            .filter(|&i| s.is_char_boundary(i))
            .map(|i| s[..i].to_string())
            .collect();
        for _ in 0..300 {
            let mut b = s.clone().into_bytes();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % b.len();
                let alphabet = b"{}[]\",:\\ 0123456789.eE-+nulltrueabc";
                b[i] = alphabet[(next() as usize) % alphabet.len()];
            }
            variants.push(String::from_utf8_lossy(&b).into_owned());
        }
        for v in &variants {
            for layout in [Layout::Outbox, Layout::Eventrouter, Layout::Tables] {
                for headers in [Headers::None, Headers::Json(v), Headers::Pairs(&pairs)] {
                    let _ = run(layout, "outbox.event.event", Some(v), Some(v), headers);
                }
            }
            let _ = super::fields::compact_json(v);
            for layout in [Layout::Outbox, Layout::Eventrouter, Layout::Tables] {
                let ctx = ParseContext::new(
                    SourceConfig {
                        layout,
                        ..SourceConfig::default()
                    },
                    0,
                );
                let want = match decode_line(v, 3, "f") {
                    LineDecode::Blank => None,
                    LineDecode::Record(r) => {
                        let p = parse_record(&ctx, &r);
                        let dlq = if let Parsed::Dead(d) = &p {
                            Some(
                                DeadLetterRecord {
                                    record: &r,
                                    dead: d,
                                }
                                .json_line(),
                            )
                        } else {
                            None
                        };
                        Some(ParsedLine {
                            topic: r.topic,
                            partition: r.partition,
                            offset: r.offset,
                            parsed: p,
                            dlq,
                        })
                    }
                    LineDecode::Invalid { record: r, dead } => Some(ParsedLine {
                        topic: r.topic,
                        partition: r.partition,
                        offset: r.offset,
                        dlq: Some(
                            DeadLetterRecord {
                                record: &r,
                                dead: &dead,
                            }
                            .json_line(),
                        ),
                        parsed: Parsed::Dead(dead),
                    }),
                };
                assert_eq!(parse_line(&ctx, v, 3, "f"), want, "{v}");
            }
        }
    }
}
