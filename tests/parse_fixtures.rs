//! The parser against the real Debezium 3.6 captures of tests/fixtures
//! (see tests/fixtures/README.md for the conclusions checked here).

use neonblue::config::{Layout, SourceConfig};
use neonblue::domain::{Assignment, Change, Event, Parsed, SkipReason};
use neonblue::parse::timestamp::parse_timestamp_str;
use neonblue::parse::{decode_line, parse_record, Headers, LineDecode, ParseContext, RawRecord};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    let file = Path::new(file!());
    let here = if file.is_absolute() {
        file.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
    };
    here.parent().unwrap().join("fixtures")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ctx(layout: Layout) -> ParseContext {
    let now = parse_timestamp_str("2025-10-01T00:00:00Z").unwrap();
    ParseContext {
        source: SourceConfig {
            layout,
            ..SourceConfig::default()
        },
        now,
    }
}

fn layout_of(name: &str) -> Layout {
    if name.starts_with("outbox_eventrouter") {
        Layout::Eventrouter
    } else if name.starts_with("tables") {
        Layout::Tables
    } else {
        Layout::Outbox
    }
}

/// Parses a `.jsonl` fixture through the file-line decoder (offset = line index).
/// Parsed records without capture times (which differ between captures of
/// the same scenario, and which the routed Event Router value lacks).
fn undated(mut parsed: Vec<Parsed>) -> Vec<Parsed> {
    for p in &mut parsed {
        match p {
            Parsed::Change { captured, .. } => *captured = None,
            Parsed::DeleteById(d) => d.captured = None,
            _ => {}
        }
    }
    parsed
}

fn parse_jsonl(name: &str) -> Vec<Parsed> {
    let ctx = ctx(layout_of(name));
    let text = read(name);
    text.lines()
        .enumerate()
        .map(|(i, line)| match decode_line(line, i as u64, name) {
            LineDecode::Record(rec) => {
                assert_eq!(rec.offset, i as i64);
                assert_eq!(rec.partition, 0);
                assert!(
                    rec.topic.starts_with("experiments.") || rec.topic.starts_with("outbox.event.")
                );
                parse_record(&ctx, &rec)
            }
            other => panic!("{name}:{}: not a record: {other:?}", i + 1),
        })
        .collect()
}

/// Parses a `.raw.jsonl` fixture: the converter's exact key/value strings.
fn parse_raw(name: &str) -> Vec<Parsed> {
    let ctx = ctx(layout_of(name));
    let text = read(name);
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line).unwrap();
            let headers = v["headers"].to_string();
            let rec = RawRecord {
                topic: v["topic"].as_str().unwrap(),
                partition: 0,
                offset: i as i64,
                key: v["key_raw"].as_str(),
                value: v["value_raw"].as_str(),
                headers: Headers::Json(&headers),
            };
            parse_record(&ctx, &rec)
        })
        .collect()
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    assign: usize,
    unassign: usize,
    event: usize,
    delete_by_id: usize,
    snapshot: usize,
    skips: BTreeMap<&'static str, usize>,
    dead: usize,
}

fn counts(parsed: &[Parsed]) -> Counts {
    let mut c = Counts::default();
    for p in parsed {
        match p {
            Parsed::Change {
                change, snapshot, ..
            } => {
                c.snapshot += *snapshot as usize;
                match change {
                    Change::Assign(_) => c.assign += 1,
                    Change::Unassign(_) => c.unassign += 1,
                    Change::Event(_) => c.event += 1,
                }
            }
            Parsed::DeleteById(_) => c.delete_by_id += 1,
            Parsed::Skip(r) => *c.skips.entry(r.as_str()).or_default() += 1,
            Parsed::Dead(_) => c.dead += 1,
        }
    }
    c
}

fn skips(list: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    list.iter().copied().collect()
}

fn event(p: &Parsed) -> &Event {
    match p {
        Parsed::Change {
            change: Change::Event(e),
            ..
        } => e,
        other => panic!("not an event: {other:?}"),
    }
}

fn assignment(p: &Parsed) -> &Assignment {
    match p {
        Parsed::Change {
            change: Change::Assign(a),
            ..
        } => a,
        other => panic!("not an assignment: {other:?}"),
    }
}

fn events_by_id(parsed: &[Parsed]) -> BTreeMap<String, Event> {
    parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Change {
                change: Change::Event(e),
                ..
            } => Some((e.event_id.clone(), e.clone())),
            _ => None,
        })
        .collect()
}

fn ts(s: &str) -> i64 {
    parse_timestamp_str(s).unwrap()
}

#[test]
fn every_fixture_parses_without_dead_letters() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".jsonl") && !name.ends_with(".raw.jsonl") {
            let parsed = parse_jsonl(&name);
            assert!(!parsed.is_empty());
            assert_eq!(
                counts(&parsed).dead,
                0,
                "{name}: {:?}",
                parsed
                    .iter()
                    .filter(|p| matches!(p, Parsed::Dead(_)))
                    .collect::<Vec<_>>()
            );
            n += 1;
        }
    }
    assert_eq!(n, 6);
}

#[test]
fn outbox_json_counts() {
    for name in ["outbox_json.jsonl", "outbox_json_schema.jsonl"] {
        let parsed = parse_jsonl(name);
        assert_eq!(parsed.len(), 74);
        let want = Counts {
            assign: 27,
            unassign: 1,
            event: 38,
            delete_by_id: 0,
            snapshot: 13,
            skips: skips(&[
                ("tombstone", 2),
                ("outbox_update", 3),
                ("outbox_delete", 2),
                ("truncate", 1),
            ]),
            dead: 0,
        };
        assert_eq!(counts(&parsed), want, "{name}");
        // lines 1–13 are the snapshot
        for (i, p) in parsed.iter().enumerate() {
            if let Parsed::Change { snapshot, .. } = p {
                assert_eq!(*snapshot, i < 13, "{name}:{}", i + 1);
            }
        }
        // line 47 ASSIGNMENT_UPDATED (user_014 → 2 at 10:31), line 50 ASSIGNMENT_DELETED (user_015)
        let a = assignment(&parsed[46]);
        assert_eq!(
            (a.id.as_str(), a.user_id.as_str(), a.variant_id),
            ("14", "user_014", 2)
        );
        assert_eq!(a.assigned_at, ts("2025-09-30T10:31:00Z"));
        match &parsed[49] {
            Parsed::Change {
                change: Change::Unassign(d),
                snapshot: false,
                ..
            } => {
                assert_eq!(
                    (d.id.as_deref(), d.experiment_id, d.user_id.as_str()),
                    (Some("15"), 1, "user_015")
                );
            }
            other => panic!("line 50: {other:?}"),
        }
        assert_eq!(parsed[72], Parsed::Skip(SkipReason::Truncate));
        // line 65 repeats line 33, captured later (dedup is the task's job,
        // not the parser's)
        let again = undated(vec![parsed[64].clone(), parsed[32].clone()]);
        assert_eq!(again[0], again[1]);
    }
    // Two captures of the same scenario: equal but for capture times.
    assert_eq!(
        undated(parse_jsonl("outbox_json.jsonl")),
        undated(parse_jsonl("outbox_json_schema.jsonl"))
    );
}

#[test]
fn outbox_json_matches_reference_events() {
    let parsed = parse_jsonl("outbox_json.jsonl");
    let manifest: Value = serde_json::from_str(&read("scenario/manifest.json")).unwrap();
    let reference = manifest["reference_outcome"]["events"].as_array().unwrap();
    assert_eq!(reference.len(), 37);
    for r in reference {
        let line = r["line"].as_u64().unwrap() as usize;
        let e = event(&parsed[line - 1]);
        assert_eq!(e.event_id, r["event_id"].as_str().unwrap(), "line {line}");
        assert_eq!(e.user_id, r["user_id"].as_str().unwrap(), "line {line}");
        assert_eq!(
            e.experiment_id as u64,
            r["experiment_id"].as_u64().unwrap(),
            "line {line}"
        );
        assert_eq!(
            e.event_type,
            r["event_type"].as_str().unwrap(),
            "line {line}"
        );
        assert_eq!(
            e.timestamp,
            ts(r["timestamp"].as_str().unwrap()),
            "line {line}"
        );
        assert_eq!(
            e.claimed_variant_id.map(u64::from),
            r["claimed_variant_id"].as_u64(),
            "line {line}"
        );
        assert_eq!(e.value, r["value"].as_f64(), "line {line}");
        assert_eq!(e.score, r["score"].as_i64(), "line {line}");
    }
}

#[test]
fn outbox_json_field_values() {
    let parsed = parse_jsonl("outbox_json.jsonl");
    let ev = events_by_id(&parsed);
    assert_eq!(ev["e_value_string_1"].value, Some(19.99));
    assert_eq!(ev["e_value_negative_1"].value, Some(-5.0));
    assert_eq!(ev["e_nested_1"].value, Some(0.0));
    assert_eq!(ev["e_nested_1"].score, None);
    assert_eq!(
        ev["e_nested_1"].properties,
        r#"{"page":"/landing","element":{"id":"cta","position":{"x":10,"y":20}},"tags":["hero","above_fold"],"value":0,"meta":{"empty":{},"list":[],"flag":true,"none":null}}"#
    );
    for id in ["e_null_props_1", "e_null_props_2", "e_empty_props_1"] {
        assert_eq!(ev[id].properties, "{}", "{id}");
        assert_eq!((ev[id].page.as_ref(), ev[id].value), (None, None), "{id}");
    }
    let p = &ev["e_props_string_1"];
    assert_eq!(
        p.properties,
        r#"{"page":"/pricing","value":29.99,"score":85,"device":"mobile","browser":"firefox"}"#
    );
    assert_eq!(
        (p.page.as_deref(), p.value, p.score),
        (Some("/pricing"), Some(29.99), Some(85))
    );
    assert_eq!(
        (p.device.as_deref(), p.browser.as_deref()),
        (Some("mobile"), Some("firefox"))
    );
    let seed = &ev["e_seed_u001_exposure"];
    assert_eq!(
        seed.properties,
        r#"{"page":"/landing","device":"desktop","browser":"chrome"}"#
    );
    assert_eq!(
        (seed.page.as_deref(), seed.device.as_deref()),
        (Some("/landing"), Some("desktop"))
    );
    let u = &ev["e_unicode_1"];
    assert_eq!(u.page.as_deref(), Some("/café/ü"));
    let props: Value = serde_json::from_str(&u.properties).unwrap();
    assert_eq!(props["title"], "Bestätigung – 完了 🚀");
    assert!(u.properties.contains("Bestätigung – 完了 🚀"));
    assert_eq!(ev["e_noassign_2"].claimed_variant_id, None);
    assert_eq!(ev["e_noassign_1"].claimed_variant_id, Some(22));
    assert_eq!(ev["e_unknown_exp_1"].experiment_id, 999);
    assert_eq!(ev["e_value_missing_1"].session_id, None);
    assert_eq!(ev["e_value_missing_1"].value, None);
    assert_eq!(
        ev["e_flow_u011_1_exposure"].session_id.as_deref(),
        Some("sess_user_011_10")
    );
    assert_eq!(
        ev["e_flow_u011_1_exposure"].properties,
        r#"{"page":"/landing","device":"mobile","browser":"firefox"}"#
    );
    assert!(ev["e_long_1"].properties.len() > 10_240);
    // 2025-09-30T08:59:59.999999Z = 1759222799 s + 999999 µs
    assert_eq!(ev["e_early_1"].timestamp, 1_759_222_799_999_999);
    assert_eq!(ev["e_flow_u013_after"].timestamp, 1_759_222_800_000_001);
    // user_013's payload has no fraction: "2025-09-30T09:00:00+00:00" (line 16)
    let a = assignment(&parsed[15]);
    assert_eq!(
        (a.user_id.as_str(), a.assigned_at),
        ("user_013", 1_759_222_800_000_000)
    );
    assert_eq!(
        (a.id.as_str(), a.variant_key.as_deref()),
        ("13", Some("control"))
    );
}

#[test]
fn eventrouter_counts_and_fields() {
    let reference = parse_jsonl("outbox_json.jsonl");
    for name in [
        "outbox_eventrouter.jsonl",
        "outbox_eventrouter_expanded.jsonl",
    ] {
        let parsed = parse_jsonl(name);
        assert_eq!(parsed.len(), 66);
        let expanded = name.contains("expanded");
        let c = counts(&parsed);
        assert_eq!(
            (c.assign + c.unassign, c.event, c.snapshot, c.dead),
            (28, 38, 0, 0),
            "{name}"
        );
        assert!(c.skips.is_empty(), "{name}: {:?}", c.skips);
        // without an eventType header ASSIGNMENT_DELETED (line 50) reads as an upsert
        assert_eq!(c.unassign, expanded as usize, "{name}");
        let a = assignment(&parsed[46]);
        assert_eq!(
            (a.user_id.as_str(), a.variant_id, a.assigned_at),
            ("user_014", 2, ts("2025-09-30T10:31:00Z"))
        );
        // same domain records as outbox_json lines 1–65 and 74 (the routed
        // value carries no capture time)
        let reference = undated(reference.clone());
        for (i, p) in parsed.iter().enumerate() {
            let r = if i < 65 {
                &reference[i]
            } else {
                &reference[73]
            };
            let (Parsed::Change { change: got, .. }, Parsed::Change { change: want, .. }) = (p, r)
            else {
                panic!("{name}:{}: {p:?} vs {r:?}", i + 1)
            };
            match (got, want) {
                (Change::Event(g), Change::Event(w)) if expanded && g.event_id == "e_nested_1" => {
                    // table.expand.json.payload dropped meta.none and meta.list
                    assert_eq!(
                        g.properties,
                        r#"{"page":"/landing","element":{"id":"cta","position":{"x":10,"y":20}},"tags":["hero","above_fold"],"value":0,"meta":{"empty":{},"flag":true}}"#
                    );
                    assert_eq!(
                        Event {
                            properties: w.properties.clone(),
                            ..g.clone()
                        },
                        *w
                    );
                }
                (Change::Assign(g), Change::Unassign(w)) if !expanded => {
                    assert_eq!(
                        (Some(&g.id), g.experiment_id, &g.user_id),
                        (w.id.as_ref(), w.experiment_id, &w.user_id)
                    );
                }
                _ => assert_eq!(got, want, "{name}:{}", i + 1),
            }
        }
        // the `id` header (outbox row id) is never the event id: lines 33 and 65 are the same event
        assert_eq!(event(&parsed[32]).event_id, "e_flow_u011_4_conversion");
        assert_eq!(parsed[64], parsed[32]);
    }
}

#[test]
fn tables_counts_and_fields() {
    let outbox = events_by_id(&parse_jsonl("outbox_json.jsonl"));
    for name in ["tables_json.jsonl", "tables_json_decimal_string.jsonl"] {
        let parsed = parse_jsonl(name);
        assert_eq!(parsed.len(), 75);
        let want = Counts {
            assign: 27,
            unassign: 0,
            event: 37,
            delete_by_id: 1,
            snapshot: 13,
            skips: skips(&[("tombstone", 2), ("event_delete", 1), ("other_table", 7)]),
            dead: 0,
        };
        assert_eq!(counts(&parsed), want, "{name}");
        // line 52: `u` with before null upserts the 10:31 version
        let a = assignment(&parsed[51]);
        assert_eq!(
            (a.id.as_str(), a.user_id.as_str(), a.variant_id),
            ("14", "user_014", 2)
        );
        assert_eq!(
            (a.assigned_at, a.variant_key.as_ref()),
            (ts("2025-09-30T10:31:00Z"), None)
        );
        assert!(matches!(
            parsed[51],
            Parsed::Change {
                snapshot: false,
                ..
            }
        ));
        // line 57: key-only delete of assignment 15, dated by its capture time
        let Parsed::DeleteById(d) = &parsed[56] else {
            panic!("{name}:57: {:?}", parsed[56])
        };
        assert_eq!(d.id, "15");
        assert!(d.captured.is_some_and(|t| t > ts("2025-09-30T00:00:00Z")));
        assert_eq!(parsed[54], Parsed::Skip(SkipReason::EventDelete));
        assert_eq!(parsed[55], Parsed::Skip(SkipReason::Tombstone));
        assert_eq!(parsed[57], Parsed::Skip(SkipReason::Tombstone));
        for i in (13..18).chain(72..74) {
            assert_eq!(
                parsed[i],
                Parsed::Skip(SkipReason::OtherTable),
                "{name}:{}",
                i + 1
            );
        }
        // events carry the same fields as in the outbox capture; properties are
        // jsonb-normalised (key order), so they are compared as JSON
        let ev = events_by_id(&parsed);
        assert_eq!(ev.len(), 37);
        for (id, e) in &ev {
            let o = &outbox[id];
            assert_eq!(
                Event {
                    properties: o.properties.clone(),
                    ..e.clone()
                },
                *o,
                "{id}"
            );
            let (pe, po): (Value, Value) = (
                serde_json::from_str(&e.properties).unwrap(),
                serde_json::from_str(&o.properties).unwrap(),
            );
            assert_eq!(pe, po, "{id}");
        }
        assert_eq!(ev["e_null_props_2"].properties, "{}");
        assert_eq!(
            ev["e_flow_u011_4_conversion"].properties,
            r#"{"page":"/checkout/complete","score":85,"value":29.99,"device":"mobile","browser":"firefox"}"#
        );
    }
    assert_eq!(
        undated(parse_jsonl("tables_json.jsonl")),
        undated(parse_jsonl("tables_json_decimal_string.jsonl"))
    );
}

#[test]
fn raw_twins_parse_identically() {
    for base in [
        "outbox_json",
        "outbox_json_schema",
        "outbox_eventrouter",
        "outbox_eventrouter_expanded",
        "tables_json",
        "tables_json_decimal_string",
    ] {
        let a = parse_jsonl(&format!("{base}.jsonl"));
        let b = parse_raw(&format!("{base}.raw.jsonl"));
        assert_eq!(a.len(), b.len(), "{base}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "{base}:{}", i + 1);
        }
    }
}

#[test]
fn integer_and_string_user_ids_are_the_same_user() {
    let ctx = ctx(Layout::Eventrouter);
    let mk = |user: &str| {
        format!(
            r#"{{"id": "e1", "experiment_id": 1, "user_id": {user}, "event_type": "click", "timestamp": "2025-09-30T10:00:00Z"}}"#
        )
    };
    let (a, b) = (mk("123"), mk("\"123\""));
    let rec = |v: &'static str| RawRecord {
        topic: "outbox.event.event",
        partition: 0,
        offset: 0,
        key: None,
        value: Some(v),
        headers: Headers::None,
    };
    let (a, b): (&'static str, &'static str) =
        (Box::leak(a.into_boxed_str()), Box::leak(b.into_boxed_str()));
    let (pa, pb) = (parse_record(&ctx, &rec(a)), parse_record(&ctx, &rec(b)));
    assert_eq!(pa, pb);
    assert_eq!(event(&pa).user_id, "123");
}
