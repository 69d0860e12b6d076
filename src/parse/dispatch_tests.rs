//! Synthetic records through [`parse_record`]: every dead-letter stage, the
//! check order, field rules, the three layouts, and no panic on any input.

use super::build::MAX_FUTURE_MICROS;
use super::common::ParseContext;
use super::dispatch::parse_record;
use super::raw::{Headers, RawRecord};
use super::timestamp::parse_timestamp_str;
use crate::config::{Layout, SourceConfig};
use crate::domain::{Change, DeadLetter, DeleteById, Event, Parsed, SkipReason};
use serde_json::{json, Value};

pub(super) fn now() -> i64 {
    parse_timestamp_str("2025-10-01T00:00:00Z").unwrap()
}

pub(super) fn ctx(layout: Layout) -> ParseContext {
    ParseContext::new(
        SourceConfig {
            layout,
            ..SourceConfig::default()
        },
        now(),
    )
}

pub(super) fn run(
    layout: Layout,
    topic: &str,
    key: Option<&str>,
    value: Option<&str>,
    headers: Headers,
) -> Parsed {
    let rec = RawRecord {
        topic,
        partition: 0,
        offset: 0,
        key,
        value,
        headers,
    };
    parse_record(&ctx(layout), &rec)
}

pub(super) fn outbox_value(v: &Value) -> Parsed {
    run(
        Layout::Outbox,
        "experiments_events",
        None,
        Some(&v.to_string()),
        Headers::None,
    )
}

pub(super) fn dead(stage: &'static str, reason: &str) -> Parsed {
    Parsed::Dead(DeadLetter::new(stage, reason))
}

pub(super) fn event_payload() -> Value {
    json!({"id": "e1", "experiment_id": 1, "user_id": "u1", "variant_id": 2, "event_type": "click",
           "timestamp": "2025-09-30T10:00:00+00:00", "properties": {"page": "/p", "value": "1.5"},
           "session_id": 7})
}

pub(super) fn assignment_payload() -> Value {
    json!({"id": 11, "experiment_id": 1, "user_id": "u1", "variant_id": 2, "variant_key": "control",
           "assigned_at": "2025-09-30T08:00:00Z", "source": "api"})
}

/// An outbox envelope; `payload` is embedded as JSON text.
pub(super) fn outbox(op: &str, agg: Value, et: Value, payload: &Value) -> Value {
    json!({"before": null, "after": {"id": 1, "aggregate_id": "agg-1", "aggregate_type": agg, "event_type": et,
           "payload": payload.to_string()}, "source": {"table": "outbox_events"}, "op": op, "ts_ms": 1})
}

pub(super) fn ev_out(op: &str, payload: &Value) -> Parsed {
    outbox_value(&outbox(op, json!("event"), json!("EVENT_CREATED"), payload))
}

pub(super) fn the_event(p: Parsed) -> Event {
    match p {
        Parsed::Change {
            change: Change::Event(e),
            ..
        } => e,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn tombstones() {
    assert_eq!(
        run(Layout::Outbox, "t", None, None, Headers::None),
        Parsed::Skip(SkipReason::Tombstone)
    );
    for v in [
        "null",
        " null ",
        r#"{"schema": {"type": "struct"}, "payload": null}"#,
    ] {
        for layout in [Layout::Outbox, Layout::Eventrouter, Layout::Tables] {
            assert_eq!(
                run(layout, "t", None, Some(v), Headers::None),
                Parsed::Skip(SkipReason::Tombstone),
                "{v}"
            );
        }
    }
}

#[test]
fn envelope_stage() {
    for layout in [Layout::Outbox, Layout::Eventrouter, Layout::Tables] {
        for v in ["{", "", "nul", "{\"op\": \"c\"} x", "\u{1}"] {
            assert_eq!(
                run(layout, "t", None, Some(v), Headers::None),
                dead("envelope", "invalid_json"),
                "{v:?}"
            );
        }
    }
    for v in [
        json!([1]),
        json!("x"),
        json!(3),
        json!({"after": {}}),
        json!({"op": 1}),
        json!({"op": null}),
    ] {
        assert_eq!(
            outbox_value(&v),
            dead("envelope", "invalid_envelope"),
            "{v}"
        );
    }
    for after in [json!(null), json!("x"), json!([])] {
        assert_eq!(
            outbox_value(&json!({"op": "c", "after": after})),
            dead("envelope", "invalid_envelope")
        );
    }
    assert_eq!(
        outbox_value(&json!({"op": "r"})),
        dead("envelope", "invalid_envelope")
    );
}

#[test]
fn op_stage_and_skips() {
    assert_eq!(ev_out("x", &event_payload()), dead("op", "unknown_op"));
    assert_eq!(ev_out("", &event_payload()), dead("op", "unknown_op"));
    assert_eq!(ev_out("C", &event_payload()), dead("op", "unknown_op"));
    // u/d/t/m are skipped whatever the payload: the check order never reaches it
    let garbage = json!("not json at all");
    for (op, why) in [
        ("u", SkipReason::OutboxUpdate),
        ("d", SkipReason::OutboxDelete),
        ("t", SkipReason::Truncate),
        ("m", SkipReason::Message),
    ] {
        let mut v = outbox(op, json!(5), json!(null), &garbage);
        v["after"]["payload"] = json!(12);
        assert_eq!(outbox_value(&v), Parsed::Skip(why), "{op}");
    }
    assert_eq!(
        outbox_value(&json!({"op": "t", "before": null, "after": null})),
        Parsed::Skip(SkipReason::Truncate)
    );
}

#[test]
fn aggregate_and_event_type_stages() {
    let p = event_payload();
    let bad = json!(12);
    assert_eq!(
        outbox_value(&outbox("c", json!(null), json!("EVENT_CREATED"), &p)),
        dead("aggregate_type", "missing_aggregate_type")
    );
    assert_eq!(
        outbox_value(&outbox("c", json!(3), json!("EVENT_CREATED"), &p)),
        dead("aggregate_type", "invalid_aggregate_type")
    );
    let mut v = outbox("c", json!("event"), json!("EVENT_CREATED"), &p);
    v["after"].as_object_mut().unwrap().remove("aggregate_type");
    assert_eq!(
        outbox_value(&v),
        dead("aggregate_type", "missing_aggregate_type")
    );
    // unknown aggregate type: skipped before the event type and the payload are looked at
    assert_eq!(
        outbox_value(&outbox("c", json!("Event"), json!(null), &bad)),
        Parsed::Skip(SkipReason::UnknownAggregateType)
    );
    assert_eq!(
        outbox_value(&outbox("c", json!("event"), json!(null), &p)),
        dead("event_type", "missing_event_type")
    );
    assert_eq!(
        outbox_value(&outbox("c", json!("event"), json!(["x"]), &p)),
        dead("event_type", "invalid_event_type")
    );
    for (agg, et) in [
        ("event", "EVENT_UPDATED"),
        ("assignment", "EVENT_CREATED"),
        ("event", "ASSIGNMENT_CREATED"),
    ] {
        let mut v = outbox("c", json!(agg), json!(et), &p);
        v["after"]["payload"] = json!("garbage {");
        assert_eq!(
            outbox_value(&v),
            Parsed::Skip(SkipReason::UnknownEventType),
            "{agg} {et}"
        );
    }
}

#[test]
fn payload_stage() {
    for payload in [
        json!("not json"),
        json!("[1, 2]"),
        json!("\"str\""),
        json!("null"),
        json!(5),
        json!(null),
        json!([1]),
    ] {
        let mut v = outbox("c", json!("event"), json!("EVENT_CREATED"), &json!({}));
        v["after"]["payload"] = payload.clone();
        assert_eq!(
            outbox_value(&v),
            dead("payload", "invalid_payload"),
            "{payload}"
        );
    }
    let mut v = outbox("c", json!("event"), json!("EVENT_CREATED"), &json!({}));
    v["after"].as_object_mut().unwrap().remove("payload");
    assert_eq!(outbox_value(&v), dead("payload", "invalid_payload"));
    // an already-expanded payload object is accepted
    let mut v = outbox("c", json!("event"), json!("EVENT_CREATED"), &json!({}));
    v["after"]["payload"] = event_payload();
    assert_eq!(outbox_value(&v), ev_out("c", &event_payload()));
}

#[test]
fn event_fields() {
    let e = the_event(ev_out("c", &event_payload()));
    assert_eq!(e.event_id, "e1");
    assert_eq!(e.session_id.as_deref(), Some("7"));
    assert_eq!(e.claimed_variant_id, Some(2));
    assert_eq!((e.value, e.page.as_deref()), (Some(1.5), Some("/p")));
    assert_eq!(e.properties, r#"{"page":"/p","value":"1.5"}"#);
    assert_eq!(
        e.timestamp,
        parse_timestamp_str("2025-09-30T10:00:00Z").unwrap()
    );

    let with = |k: &str, v: Value| {
        let mut p = event_payload();
        p[k] = v;
        ev_out("c", &p)
    };
    let without = |k: &str| {
        let mut p = event_payload();
        p.as_object_mut().unwrap().remove(k);
        ev_out("c", &p)
    };
    for (k, bad, reason) in [
        ("user_id", json!(""), "invalid_user_id"),
        ("user_id", json!(1.5), "invalid_user_id"),
        ("user_id", json!(null), "missing_user_id"),
        ("experiment_id", json!("abc"), "invalid_experiment_id"),
        ("experiment_id", json!(-1), "invalid_experiment_id"),
        (
            "experiment_id",
            json!(4_294_967_296u64),
            "invalid_experiment_id",
        ),
        ("experiment_id", json!(1.0), "invalid_experiment_id"),
        ("experiment_id", json!(null), "missing_experiment_id"),
        ("event_type", json!(""), "invalid_event_type"),
        ("event_type", json!(5), "invalid_event_type"),
        (
            "timestamp",
            json!("2025-02-30T00:00:00Z"),
            "invalid_timestamp",
        ),
        ("timestamp", json!("yesterday"), "invalid_timestamp"),
        ("timestamp", json!(true), "invalid_timestamp"),
        ("id", json!(1.5), "invalid_id"),
        ("id", json!(""), "invalid_id"),
        ("id", json!({"a": 1}), "invalid_id"),
    ] {
        assert_eq!(with(k, bad.clone()), dead("fields", reason), "{k}={bad}");
    }
    for (k, reason) in [
        ("user_id", "missing_user_id"),
        ("experiment_id", "missing_experiment_id"),
        ("event_type", "missing_event_type"),
        ("timestamp", "missing_timestamp"),
    ] {
        assert_eq!(without(k), dead("fields", reason), "{k}");
    }
    // the first failing field names the dead letter
    let mut p = event_payload();
    p["experiment_id"] = json!("x");
    p["user_id"] = json!(null);
    assert_eq!(ev_out("c", &p), dead("fields", "invalid_experiment_id"));
    // optional fields: ill-typed → absent
    let e = the_event(with("session_id", json!({"a": 1})));
    assert_eq!(e.session_id, None);
    assert_eq!(
        the_event(with("variant_id", json!("v2"))).claimed_variant_id,
        None
    );
    assert_eq!(
        the_event(with("variant_id", json!("22"))).claimed_variant_id,
        Some(22)
    );
    assert_eq!(the_event(with("variant_key", json!(5))).event_id, "e1");
    // ids and timestamps in their other forms
    assert_eq!(
        the_event(with("experiment_id", json!("7"))).experiment_id,
        7
    );
    assert_eq!(the_event(with("id", json!(42))).event_id, "42");
    let t = the_event(with("timestamp", json!(1_759_226_400_000u64))).timestamp;
    assert_eq!(t, 1_759_226_400_000_000);
    assert_eq!(
        the_event(with("timestamp", json!(1_759_226_400_000_001u64))).timestamp,
        1_759_226_400_000_001
    );
    // properties forms
    assert_eq!(
        the_event(with("properties", json!("{\"page\": \"/s\"}")))
            .page
            .as_deref(),
        Some("/s")
    );
    for odd in [
        json!("null"),
        json!(null),
        json!([1]),
        json!("oops"),
        json!(3),
    ] {
        assert_eq!(
            the_event(with("properties", odd.clone())).properties,
            "{}",
            "{odd}"
        );
    }
    assert_eq!(the_event(without("properties")).properties, "{}");
    let e = the_event(with(
        "properties",
        json!({"score": 42.0, "value": -0.5, "device": 1, "browser": "ff"}),
    ));
    assert_eq!(
        (e.score, e.value, e.device, e.browser.as_deref()),
        (Some(42), Some(-0.5), None, Some("ff"))
    );
}

#[test]
fn event_id_fallback_to_aggregate_id() {
    let mut p = event_payload();
    p.as_object_mut().unwrap().remove("id");
    assert_eq!(the_event(ev_out("c", &p)).event_id, "agg-1");
    p["id"] = json!(null);
    assert_eq!(the_event(ev_out("c", &p)).event_id, "agg-1");
    let mut v = outbox("c", json!("event"), json!("EVENT_CREATED"), &p);
    v["after"]["aggregate_id"] = json!(99);
    assert_eq!(the_event(outbox_value(&v)).event_id, "99");
    v["after"]["aggregate_id"] = json!(null);
    assert_eq!(outbox_value(&v), dead("fields", "missing_id"));
    v["after"]["aggregate_id"] = json!(true);
    assert_eq!(outbox_value(&v), dead("fields", "invalid_id"));
}

#[test]
fn integer_and_string_user_ids_match() {
    let mut p = event_payload();
    p["user_id"] = json!(123);
    let a = ev_out("c", &p);
    p["user_id"] = json!("123");
    assert_eq!(a, ev_out("c", &p));
    assert_eq!(the_event(a).user_id, "123");
}

#[test]
fn future_timestamps() {
    let at = |micros: i64| {
        let mut p = event_payload();
        p["timestamp"] = json!(micros);
        ev_out("c", &p)
    };
    let limit = now() + MAX_FUTURE_MICROS;
    assert_eq!(the_event(at(limit)).timestamp, limit);
    assert_eq!(at(limit + 1), dead("fields", "future_timestamp"));
    let mut a = assignment_payload();
    a["assigned_at"] = json!("2025-10-02T00:00:00.000001Z");
    assert_eq!(
        outbox_value(&outbox(
            "c",
            json!("assignment"),
            json!("ASSIGNMENT_CREATED"),
            &a
        )),
        dead("fields", "future_assigned_at")
    );
    a["assigned_at"] = json!("2025-10-02T00:00:00Z");
    assert!(matches!(
        outbox_value(&outbox(
            "c",
            json!("assignment"),
            json!("ASSIGNMENT_CREATED"),
            &a
        )),
        Parsed::Change { .. }
    ));
}

#[test]
fn assignments_and_deletes() {
    let p = assignment_payload();
    let got = outbox_value(&outbox(
        "r",
        json!("assignment"),
        json!("ASSIGNMENT_UPDATED"),
        &p,
    ));
    let Parsed::Change {
        change: Change::Assign(a),
        snapshot: true,
        ..
    } = got
    else {
        panic!("{got:?}")
    };
    assert_eq!(
        (
            a.id.as_str(),
            a.experiment_id,
            a.user_id.as_str(),
            a.variant_id
        ),
        ("11", 1, "u1", 2)
    );
    assert_eq!(a.variant_key.as_deref(), Some("control"));
    for (k, reason) in [
        ("id", "missing_id"),
        ("variant_id", "missing_variant_id"),
        ("assigned_at", "missing_assigned_at"),
    ] {
        let mut q = p.clone();
        q.as_object_mut().unwrap().remove(k);
        assert_eq!(
            outbox_value(&outbox(
                "c",
                json!("assignment"),
                json!("ASSIGNMENT_CREATED"),
                &q
            )),
            dead("fields", reason)
        );
    }
    let mut q = p.clone();
    q["variant_key"] = json!(3);
    let got = outbox_value(&outbox(
        "c",
        json!("assignment"),
        json!("ASSIGNMENT_CREATED"),
        &q,
    ));
    assert!(
        matches!(got, Parsed::Change { change: Change::Assign(ref a), .. } if a.variant_key.is_none())
    );

    let del = |payload: Value| {
        outbox_value(&outbox(
            "c",
            json!("assignment"),
            json!("ASSIGNMENT_DELETED"),
            &payload,
        ))
    };
    let Parsed::Change {
        change: Change::Unassign(d),
        snapshot: false,
        captured: Some(1_000), // the envelope's ts_ms, 1 ms
    } = del(p.clone())
    else {
        panic!()
    };
    assert_eq!(
        (d.id.as_deref(), d.experiment_id, d.user_id.as_str()),
        (Some("11"), 1, "u1")
    );
    // a delete needs nothing but experiment_id and user_id
    let Parsed::Change {
        change: Change::Unassign(d),
        ..
    } = del(json!({"experiment_id": "1", "user_id": 5, "assigned_at": "junk"}))
    else {
        panic!()
    };
    assert_eq!((d.id, d.user_id.as_str()), (None, "5"));
    assert_eq!(
        del(json!({"id": 15, "experiment_id": null})),
        Parsed::DeleteById(DeleteById {
            id: "15".into(),
            captured: Some(1_000)
        })
    );
    assert_eq!(
        del(json!({"user_id": "u"})),
        dead("fields", "missing_experiment_id")
    );
    assert_eq!(
        del(json!({"experiment_id": 1})),
        dead("fields", "missing_user_id")
    );
    assert_eq!(
        del(json!({"experiment_id": 1, "user_id": ""})),
        dead("fields", "invalid_user_id")
    );
}

#[test]
fn schema_wrapped_envelopes() {
    let inner = ev_out("c", &event_payload());
    let v = json!({"schema": {"type": "struct"}, "payload": outbox("c", json!("event"), json!("EVENT_CREATED"), &event_payload())});
    assert_eq!(outbox_value(&v), inner);
    // three keys: not a wrapper
    let v = json!({"schema": {}, "payload": {}, "op": "c"});
    assert_eq!(outbox_value(&v), dead("envelope", "invalid_envelope"));
}
