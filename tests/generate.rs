//! The synthetic envelope generator (`neonblue::generate`): determinism,
//! counts, shape of every line, and the effect of each knob.

use neonblue::generate::{generate, generate_to_path, GenerateOptions, GenerateStats};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

fn gen(opts: &GenerateOptions) -> (Vec<u8>, GenerateStats) {
    let mut out = Vec::new();
    let stats = generate(opts, &mut out).expect("generate");
    (out, stats)
}

fn lines(out: &[u8]) -> Vec<&str> {
    std::str::from_utf8(out).expect("utf-8").lines().collect()
}

fn small(records: u64) -> GenerateOptions {
    GenerateOptions {
        records,
        users: 2_000,
        snapshot_rows: 200,
        ..GenerateOptions::default()
    }
}

fn small_clean(records: u64) -> GenerateOptions {
    GenerateOptions {
        records,
        users: 2_000,
        snapshot_rows: 200,
        ..GenerateOptions::clean()
    }
}

/// One parsed line.
struct Rec {
    offset: u64,
    partition: u64,
    key: Value,
    value: Value,
    /// The parsed `after.payload`, when it is JSON.
    payload: Option<Value>,
}

impl Rec {
    fn op(&self) -> Option<&str> {
        self.value.get("op").and_then(Value::as_str)
    }
    fn after(&self) -> Option<&Value> {
        self.value.get("after").filter(|a| !a.is_null())
    }
    fn payload(&self) -> Option<&Value> {
        self.payload.as_ref()
    }
    fn aggregate_type(&self) -> Option<&str> {
        self.after()?.get("aggregate_type")?.as_str()
    }
    fn event_type(&self) -> Option<&str> {
        self.after()?.get("event_type")?.as_str()
    }
}

fn parse_all(out: &[u8]) -> (Vec<Rec>, usize) {
    let mut recs = Vec::new();
    let mut invalid = 0;
    for line in lines(out) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                let obj = v.as_object().expect("record object");
                let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                assert_eq!(
                    keys,
                    ["topic", "partition", "offset", "key", "value", "headers"],
                    "{line}"
                );
                let payload = v["value"]["after"]["payload"]
                    .as_str()
                    .and_then(|p| serde_json::from_str(p).ok());
                recs.push(Rec {
                    offset: v["offset"].as_u64().unwrap(),
                    partition: v["partition"].as_u64().unwrap(),
                    key: v["key"].clone(),
                    value: v["value"].clone(),
                    payload,
                });
            }
            Err(_) => invalid += 1,
        }
    }
    (recs, invalid)
}

/// Python `datetime.isoformat()` of a UTC datetime: `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`.
fn is_python_iso(s: &str) -> bool {
    let b = s.as_bytes();
    let base_ok = |b: &[u8]| {
        b.len() >= 19
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
                .iter()
                .all(|&i| b[i].is_ascii_digit())
    };
    match b.len() {
        25 => base_ok(b) && s.ends_with("+00:00"),
        32 => {
            base_ok(b)
                && b[19] == b'.'
                && b[20..26].iter().all(u8::is_ascii_digit)
                && &s[20..26] != "000000"
                && s.ends_with("+00:00")
        }
        _ => false,
    }
}

/// A Python isoformat UTC timestamp that is also a real calendar time.
fn valid_ts(s: &str) -> bool {
    if !is_python_iso(s) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    (1..=12).contains(&m)
        && d >= 1
        && d <= dim[m as usize - 1]
        && n(11..13) < 24
        && n(14..16) < 60
        && n(17..19) < 60
}

/// Debezium `ZonedTimestamp`: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn is_zoned(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && b[10] == b'T'
        && b[19] == b'.'
        && b[20..26].iter().all(u8::is_ascii_digit)
        && b[26] == b'Z'
}

/// Microseconds since the epoch of a Python isoformat UTC timestamp.
fn micros(s: &str) -> i64 {
    let y: i64 = s[0..4].parse().unwrap();
    let m: i64 = s[5..7].parse().unwrap();
    let d: i64 = s[8..10].parse().unwrap();
    let hh: i64 = s[11..13].parse().unwrap();
    let mm: i64 = s[14..16].parse().unwrap();
    let ss: i64 = s[17..19].parse().unwrap();
    let frac: i64 = if s.as_bytes()[19] == b'.' {
        s[20..26].parse().unwrap()
    } else {
        0
    };
    // days from civil (Howard Hinnant)
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + frac
}

#[test]
fn same_options_give_identical_bytes() {
    let o = small(20_000);
    let (a, sa) = gen(&o);
    let (b, sb) = gen(&o);
    assert_eq!(sa, sb);
    assert!(a == b, "two runs differ");
    let (c, _) = gen(&GenerateOptions {
        seed: 7,
        ..o.clone()
    });
    assert!(a != c, "another seed gives the same output");
    // generate_to_path writes the same bytes
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.jsonl");
    let sp = generate_to_path(&o, &path).unwrap();
    assert_eq!(sp, sa);
    assert!(std::fs::read(&path).unwrap() == a);
}

#[test]
fn counts_add_up() {
    let o = GenerateOptions {
        records: 30_000,
        users: 2_000,
        malformed: 0.01,
        duplicates: 0.01,
        redeliveries: 0.001,
        ..GenerateOptions::default()
    };
    let (out, st) = gen(&o);
    let ls = lines(&out);
    assert_eq!(ls.len() as u64, o.records);
    assert_eq!(st.records, o.records);
    assert_eq!(st.bytes, out.len() as u64);
    let kinds = st.assignments_created
        + st.assignments_updated
        + st.assignments_deleted
        + st.events
        + st.duplicates
        + st.redelivered
        + st.outbox_updates
        + st.outbox_deletes
        + st.tombstones
        + st.malformed();
    assert_eq!(kinds, st.records, "{st:?}");
    assert_eq!(
        st.exposures + st.page_views + st.clicks + st.conversions,
        st.events
    );
    assert_eq!(st.snapshot, o.snapshot_rows);
    assert_eq!(st.tombstones, st.outbox_deletes);

    // the parsed file agrees with the stats (re-deliveries repeat earlier kinds)
    let (recs, invalid) = parse_all(&out);
    assert_eq!(invalid as u64, st.malformed_invalid_json);
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for r in &recs {
        let k = match (r.op(), r.event_type()) {
            (None, _) => "tombstone".to_string(),
            (Some(op), Some(et)) => format!("{op}:{et}"),
            (Some(op), None) => op.to_string(),
        };
        *by_kind.entry(k).or_default() += 1;
    }
    let get = |k: &str| by_kind.get(k).copied().unwrap_or(0);
    assert_eq!(
        get("r:ASSIGNMENT_CREATED") + get("r:EVENT_CREATED"),
        st.snapshot
    );
    assert!(get("tombstone") >= st.tombstones && get("d") >= st.outbox_deletes);
    let creates = get("c:ASSIGNMENT_CREATED") + get("r:ASSIGNMENT_CREATED");
    assert!(
        creates >= st.assignments_created && creates <= st.assignments_created + st.redelivered
    );
    let events = get("c:EVENT_CREATED") + get("r:EVENT_CREATED");
    let bad_payload_events =
        st.malformed_missing_user_id + st.malformed_bad_timestamp + st.malformed_payload_not_json;
    assert!(events >= st.events + st.duplicates + bad_payload_events);
    assert!(events <= st.events + st.duplicates + bad_payload_events + st.redelivered);
    assert!(st.restarts > 0 && st.redelivered >= st.restarts);
}

#[test]
fn every_line_is_a_record_object_like_the_fixtures() {
    let o = GenerateOptions {
        malformed: 0.0,
        ..small(20_000)
    };
    let (out, st) = gen(&o);
    let (recs, invalid) = parse_all(&out);
    assert_eq!(invalid, 0);
    assert_eq!(recs.len() as u64, st.records);

    // the fixture's envelope layout
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/outbox_json.jsonl"
    ));
    let fx: Option<Value> = fixture
        .ok()
        .and_then(|f| f.lines().nth(13).map(|l| serde_json::from_str(l).unwrap()));

    let mut lens = 0usize;
    for (i, line) in lines(&out).iter().enumerate() {
        lens += line.len();
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["offset"].as_u64(), Some(i as u64), "offset = line index");
        assert_eq!(v["topic"], "experiments_events");
        assert_eq!(v["partition"], 0);
        let h = v["headers"].as_object().unwrap();
        let names: Vec<&str> = h.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "__debezium.context.connectorLogicalName",
                "__debezium.context.taskId",
                "__debezium.context.connectorName",
                "__debezium.context.runId"
            ]
        );
        assert!(h.values().all(Value::is_string));
        let id = v["key"]["id"].as_u64().expect("key {id}");
        let val = &v["value"];
        if val.is_null() {
            continue; // tombstone
        }
        let keys: Vec<&str> = val
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "before",
                "after",
                "source",
                "transaction",
                "op",
                "ts_ms",
                "ts_us",
                "ts_ns"
            ]
        );
        if let Some(fx) = &fx {
            let fk: Vec<&str> = fx["value"]["source"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let sk: Vec<&str> = val["source"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(sk, fk);
        }
        let op = val["op"].as_str().unwrap();
        let row = if op == "d" {
            &val["before"]
        } else {
            &val["after"]
        };
        let rk: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            rk,
            [
                "id",
                "aggregate_id",
                "aggregate_type",
                "event_type",
                "payload",
                "created_at",
                "processed_at"
            ]
        );
        assert_eq!(row["id"].as_u64(), Some(id), "key id = row id");
        let snap = val["source"]["snapshot"].as_str().unwrap();
        match op {
            "r" => assert!(["first", "true", "last"].contains(&snap)),
            "c" | "u" | "d" => assert_eq!(snap, "false"),
            _ => panic!("op {op}"),
        }
        if op == "d" {
            assert!(val["after"].is_null());
            assert_eq!(row["created_at"], "1970-01-01T00:00:00.000000Z");
            continue;
        }
        assert!(val["before"].is_null());
        assert!(
            is_zoned(row["created_at"].as_str().unwrap()),
            "{}",
            row["created_at"]
        );
        match op {
            "u" => assert!(is_zoned(row["processed_at"].as_str().unwrap())),
            "c" => assert!(row["processed_at"].is_null()),
            _ => {}
        }
        let text = row["payload"].as_str().unwrap();
        assert!(
            text.contains("\", \"") && text.contains("\": "),
            "Python spacing: {text}"
        );
        let p: Value = serde_json::from_str(text).unwrap();
        let pk: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        match row["aggregate_type"].as_str().unwrap() {
            "assignment" => {
                assert_eq!(
                    pk,
                    [
                        "id",
                        "experiment_id",
                        "user_id",
                        "variant_id",
                        "variant_key",
                        "assigned_at",
                        "source"
                    ]
                );
                assert_eq!(
                    row["aggregate_id"].as_str().unwrap(),
                    p["id"].as_u64().unwrap().to_string()
                );
                assert!(
                    is_python_iso(p["assigned_at"].as_str().unwrap()),
                    "{}",
                    p["assigned_at"]
                );
                assert!(row["event_type"]
                    .as_str()
                    .unwrap()
                    .starts_with("ASSIGNMENT_"));
            }
            "event" => {
                assert_eq!(
                    pk,
                    [
                        "id",
                        "experiment_id",
                        "user_id",
                        "variant_id",
                        "variant_key",
                        "event_type",
                        "timestamp",
                        "properties",
                        "session_id"
                    ]
                );
                assert_eq!(row["event_type"], "EVENT_CREATED");
                assert_eq!(row["aggregate_id"], p["id"]);
                assert!(
                    is_python_iso(p["timestamp"].as_str().unwrap()),
                    "{}",
                    p["timestamp"]
                );
                let props = match &p["properties"] {
                    Value::String(s) => serde_json::from_str::<Value>(s).unwrap(),
                    o => o.clone(),
                };
                assert!(props["page"].is_string());
                let et = p["event_type"].as_str().unwrap();
                assert!(["exposure", "page_view", "click", "conversion"].contains(&et));
                if et == "conversion" {
                    assert!(props["value"].is_f64(), "{props}");
                    assert!(props["score"].is_u64());
                }
            }
            t => panic!("aggregate_type {t}"),
        }
    }
    // "about 1 KB per envelope"
    let avg = lens / recs.len();
    assert!((900..1600).contains(&avg), "average line {avg} bytes");
}

#[test]
fn snapshot_comes_first_in_heap_order() {
    let o = small(5_000);
    let (out, st) = gen(&o);
    let (recs, _) = parse_all(&out);
    let n = st.snapshot as usize;
    assert_eq!(n, 200);
    for (i, r) in recs.iter().enumerate().take(n) {
        assert_eq!(r.op(), Some("r"));
        let flag = r.value["source"]["snapshot"].as_str().unwrap();
        let want = if i == 0 {
            "first"
        } else if i + 1 == n {
            "last"
        } else {
            "true"
        };
        assert_eq!(flag, want);
        assert!(r.value["source"]["sequence"]
            .as_str()
            .unwrap()
            .starts_with("[null,"));
    }
    assert_ne!(recs[n].op(), Some("r"));
    // rows processed before the snapshot come last, with processed_at set
    let processed: Vec<usize> = (0..n)
        .filter(|&i| !recs[i].after().unwrap()["processed_at"].is_null())
        .collect();
    assert!(!processed.is_empty());
    assert!(processed.iter().all(|&i| i >= n - processed.len()));
    // so the snapshot is not in outbox id order
    let ids: Vec<u64> = recs[..n]
        .iter()
        .map(|r| r.key["id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).any(|w| w[0] > w[1]));
}

#[test]
fn malformed_zero_means_every_line_parses_and_every_payload_is_complete() {
    let o = GenerateOptions {
        malformed: 0.0,
        ..small(20_000)
    };
    let (out, st) = gen(&o);
    assert_eq!(st.malformed(), 0);
    let (recs, invalid) = parse_all(&out);
    assert_eq!(invalid, 0);
    for r in &recs {
        if r.aggregate_type() == Some("event") && r.op() != Some("d") {
            let p = r.payload().expect("payload parses");
            assert!(p["user_id"].is_string());
            assert!(is_python_iso(p["timestamp"].as_str().unwrap()));
        }
    }
}

#[test]
fn malformed_records_are_of_each_kind() {
    let o = GenerateOptions {
        malformed: 0.02,
        ..small(20_000)
    };
    let (out, st) = gen(&o);
    assert!(st.malformed_invalid_json > 0 && st.malformed_missing_user_id > 0);
    assert!(st.malformed_bad_timestamp > 0 && st.malformed_payload_not_json > 0);
    let (recs, invalid) = parse_all(&out);
    assert_eq!(invalid as u64, st.malformed_invalid_json);
    let (mut not_json, mut no_user, mut bad_ts) = (0, 0, 0);
    for r in &recs {
        if r.aggregate_type() != Some("event") || r.op() == Some("d") {
            continue;
        }
        match r.payload() {
            None => not_json += 1,
            Some(p) => {
                if p.get("user_id").is_none() {
                    no_user += 1;
                } else if !valid_ts(p["timestamp"].as_str().unwrap_or("")) {
                    bad_ts += 1;
                }
            }
        }
    }
    assert_eq!(not_json, st.malformed_payload_not_json);
    assert_eq!(no_user, st.malformed_missing_user_id);
    assert_eq!(bad_ts, st.malformed_bad_timestamp);
}

const GRACE: i64 = 300 * 1_000_000;

/// Replays the file the way the processor joins (SPEC 4, 5; one task, no
/// dedup): versions per (experiment, user) in file order, deletes clear them,
/// events without a version wait until stream time passes `timestamp +
/// grace`, stream time is frozen during the snapshot. Returns the number of
/// valid, `before_assignment` and `unassigned` events (every copy) and how
/// often each event id was seen.
fn replay(recs: &[Rec]) -> (usize, usize, usize, HashMap<String, usize>) {
    type Key = (u64, String);
    let mut versions: HashMap<Key, Vec<i64>> = HashMap::new();
    let mut pending: HashMap<Key, Vec<i64>> = HashMap::new();
    let mut expiry: BinaryHeap<Reverse<(i64, Key)>> = BinaryHeap::new();
    let (mut valid, mut before, mut unassigned) = (0, 0, 0);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut stream_time = i64::MIN;
    let mut held = i64::MIN;
    let mut in_snapshot = true;
    let judge = |v: &[i64], ts: i64, valid: &mut usize, before: &mut usize| {
        if v.iter().any(|&a| a <= ts) {
            *valid += 1
        } else {
            *before += 1
        }
    };
    for r in recs {
        let op = r.op();
        if in_snapshot && op.is_some() && op != Some("r") {
            in_snapshot = false;
            stream_time = stream_time.max(held);
        }
        if matches!(op, Some("c") | Some("r")) {
            if let Some(p) = r.payload() {
                let e = p["experiment_id"].as_u64().unwrap();
                if let Some(u) = p["user_id"].as_str() {
                    let key = (e, u.to_string());
                    let mut t = None;
                    match r.event_type().unwrap() {
                        "ASSIGNMENT_CREATED" | "ASSIGNMENT_UPDATED" => {
                            let at = micros(p["assigned_at"].as_str().unwrap());
                            let v = versions.entry(key.clone()).or_default();
                            v.push(at);
                            for ts in pending.remove(&key).unwrap_or_default() {
                                judge(v, ts, &mut valid, &mut before);
                            }
                            t = Some(at);
                        }
                        "ASSIGNMENT_DELETED" => {
                            versions.remove(&key);
                        }
                        _ => {
                            let ts_text = p["timestamp"].as_str().unwrap_or("");
                            if valid_ts(ts_text) {
                                let id = p["id"].as_str().unwrap().to_string();
                                *seen.entry(id).or_default() += 1;
                                let ts = micros(ts_text);
                                match versions.get(&key) {
                                    Some(v) => judge(v, ts, &mut valid, &mut before),
                                    None => {
                                        expiry.push(Reverse((ts + GRACE, key.clone())));
                                        pending.entry(key).or_default().push(ts);
                                    }
                                }
                                t = Some(ts);
                            }
                        }
                    }
                    if let Some(t) = t {
                        if in_snapshot {
                            held = held.max(t);
                        } else {
                            stream_time = stream_time.max(t);
                        }
                    }
                }
            }
        }
        // expire pending events
        while !in_snapshot
            && expiry
                .peek()
                .is_some_and(|Reverse((due, _))| *due <= stream_time)
        {
            let Reverse((due, key)) = expiry.pop().unwrap();
            if let Some(list) = pending.get_mut(&key) {
                if let Some(i) = list.iter().position(|&ts| ts + GRACE == due) {
                    list.swap_remove(i);
                    unassigned += 1;
                }
                if list.is_empty() {
                    pending.remove(&key);
                }
            }
        }
    }
    unassigned += pending.values().map(Vec::len).sum::<usize>();
    (valid, before, unassigned, seen)
}

#[test]
fn clean_stream_has_no_trouble() {
    let o = small_clean(20_000);
    let (out, st) = gen(&o);
    assert_eq!(
        st.malformed() + st.duplicates + st.redelivered + st.events_late,
        0
    );
    assert_eq!(st.events_unassigned_user + st.events_before_assignment, 0);
    let (recs, invalid) = parse_all(&out);
    assert_eq!(invalid, 0);
    let (valid, before, unassigned, seen) = replay(&recs);
    assert_eq!(
        (before, unassigned),
        (0, 0),
        "every clean event joins an assignment"
    );
    assert_eq!(valid as u64, st.events);
    assert!(
        seen.values().all(|&n| n == 1),
        "clean() has no duplicate event ids"
    );
    // no reordering: event time never goes backwards in file order (outside the snapshot)
    let mut last = i64::MIN;
    for r in recs.iter().skip(st.snapshot as usize) {
        if r.op() == Some("c") && r.aggregate_type() == Some("event") {
            let ts = micros(r.payload().unwrap()["timestamp"].as_str().unwrap());
            assert!(ts >= last);
            last = ts;
        }
    }
}

#[test]
fn default_stream_has_some_of_every_trouble() {
    let o = small(30_000);
    let (out, st) = gen(&o);
    for (name, n) in [
        ("assignments_updated", st.assignments_updated),
        ("assignments_deleted", st.assignments_deleted),
        ("events_unassigned_user", st.events_unassigned_user),
        ("events_before_assignment", st.events_before_assignment),
        ("events_late", st.events_late),
        ("duplicates", st.duplicates),
        ("outbox_updates", st.outbox_updates),
        ("outbox_deletes", st.outbox_deletes),
        ("malformed", st.malformed()),
    ] {
        assert!(n > 0, "{name} = 0");
    }
    let (recs, _) = parse_all(&out);
    let (valid, before, unassigned, seen) = replay(&recs);
    assert!(before > 0 && unassigned > 0 && valid > 0);
    assert!(seen.values().any(|&n| n > 1));
    // reordering within the jitter: some event is older than one before it
    let ts: Vec<i64> = recs
        .iter()
        .filter(|r| r.op() == Some("c") && r.aggregate_type() == Some("event"))
        .filter_map(|r| r.payload())
        .filter_map(|p| p["timestamp"].as_str().filter(|t| valid_ts(t)).map(micros))
        .collect();
    assert!(ts.windows(2).any(|w| w[1] < w[0]));
}

#[test]
fn knobs_have_their_effect() {
    // every assignment after its user's first event
    let o = GenerateOptions {
        before_assignment: 1.0,
        ..small_clean(10_000)
    };
    let (out, st) = gen(&o);
    let (recs, _) = parse_all(&out);
    let (_, before, _, _) = replay(&recs);
    assert!(st.events_before_assignment > 0);
    assert!(
        before as u64 >= st.events_before_assignment * 9 / 10,
        "{before} vs {}",
        st.events_before_assignment
    );

    // nobody assigned
    let o = GenerateOptions {
        unassigned_users: 1.0,
        ..small_clean(10_000)
    };
    let (out, st) = gen(&o);
    assert_eq!(st.assignments_created, 0);
    assert_eq!(st.events_unassigned_user, st.events);
    let (recs, _) = parse_all(&out);
    assert!(recs
        .iter()
        .all(|r| r.aggregate_type() != Some("assignment")));

    // late events are hours behind the moment they are written
    let o = GenerateOptions {
        late_events: 0.05,
        ..small_clean(10_000)
    };
    let (out, st) = gen(&o);
    let (recs, _) = parse_all(&out);
    let mut late = 0;
    for r in &recs {
        if matches!(r.op(), Some("c") | Some("r")) && r.aggregate_type() == Some("event") {
            let p = r.payload().unwrap();
            let ts = micros(p["timestamp"].as_str().unwrap());
            let created = r.after().unwrap()["created_at"]
                .as_str()
                .unwrap()
                .replace('Z', "+00:00");
            if micros(&created) - ts >= 2 * 3600 * 1_000_000 {
                late += 1;
            }
        }
    }
    assert_eq!(late, st.events_late);
    assert!(late > 0);

    // duplicates repeat an event id under a new outbox id
    let o = GenerateOptions {
        duplicates: 0.05,
        ..small_clean(10_000)
    };
    let (out, st) = gen(&o);
    let (recs, _) = parse_all(&out);
    let mut by_id: HashMap<String, HashSet<u64>> = HashMap::new();
    for r in recs
        .iter()
        .filter(|r| matches!(r.op(), Some("c") | Some("r")) && r.aggregate_type() == Some("event"))
    {
        let id = r.payload().unwrap()["id"].as_str().unwrap().to_string();
        by_id
            .entry(id)
            .or_default()
            .insert(r.key["id"].as_u64().unwrap());
    }
    let extra: usize = by_id.values().map(|s| s.len() - 1).sum();
    assert_eq!(extra as u64, st.duplicates);

    // re-deliveries repeat earlier records verbatim, with a new runId
    let o = GenerateOptions {
        redeliveries: 0.01,
        ..small_clean(10_000)
    };
    let (out, st) = gen(&o);
    assert!(st.restarts > 0);
    let mut bodies: HashMap<String, usize> = HashMap::new();
    let mut run_ids = HashSet::new();
    for line in lines(&out) {
        let v: Value = serde_json::from_str(line).unwrap();
        run_ids.insert(
            v["headers"]["__debezium.context.runId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let body = format!("{}|{}", v["key"], v["value"]);
        *bodies.entry(body).or_default() += 1;
    }
    let repeats: usize = bodies.values().map(|n| n - 1).sum();
    assert_eq!(repeats as u64, st.redelivered);
    assert_eq!(run_ids.len() as u64, st.restarts + 1);

    // jitter: reordered, never more than jitter_secs behind the write
    let o = GenerateOptions {
        jitter_secs: 60.0,
        ..small_clean(10_000)
    };
    let (out, _) = gen(&o);
    let (recs, _) = parse_all(&out);
    let mut behind_max = 0;
    for r in recs
        .iter()
        .filter(|r| r.op() == Some("c") && r.aggregate_type() == Some("event"))
    {
        let ts = micros(r.payload().unwrap()["timestamp"].as_str().unwrap());
        let created = micros(
            &r.after().unwrap()["created_at"]
                .as_str()
                .unwrap()
                .replace('Z', "+00:00"),
        );
        behind_max = behind_max.max(created - ts);
    }
    assert!(
        behind_max > 10_000_000 && behind_max <= 60_000_000,
        "{behind_max}"
    );

    // outbox deletes are followed by their tombstone
    let o = GenerateOptions {
        outbox_deletes: 0.05,
        ..small_clean(10_000)
    };
    let (out, st) = gen(&o);
    let (recs, _) = parse_all(&out);
    let mut n = 0;
    for w in recs.windows(2) {
        if w[0].op() == Some("d") {
            assert!(w[1].value.is_null());
            assert_eq!(w[0].key, w[1].key);
            n += 1;
        }
    }
    assert_eq!(n, st.outbox_deletes);
    assert!(n > 0);

    // no side records at all
    let o = GenerateOptions {
        outbox_updates: 0.0,
        outbox_deletes: 0.0,
        snapshot_rows: 0,
        ..small_clean(5_000)
    };
    let (out, st) = gen(&o);
    let (recs, _) = parse_all(&out);
    assert!(recs.iter().all(|r| r.op() == Some("c")));
    assert_eq!(st.snapshot + st.outbox_updates + st.tombstones, 0);

    // three experiments of three variants
    let o = GenerateOptions {
        variants: 3,
        experiments: 2,
        conversion_rates: vec![0.1],
        ..small_clean(10_000)
    };
    let (out, _) = gen(&o);
    let (recs, _) = parse_all(&out);
    let keys: HashSet<(u64, u64, String)> = recs
        .iter()
        .filter(|r| r.aggregate_type() == Some("assignment"))
        .filter_map(|r| r.payload())
        .map(|p| {
            (
                p["experiment_id"].as_u64().unwrap(),
                p["variant_id"].as_u64().unwrap(),
                p["variant_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: HashSet<(u64, u64, String)> = [
        (1, 101, "control"),
        (1, 102, "treatment"),
        (1, 103, "variant_3"),
        (2, 201, "control"),
        (2, 202, "treatment"),
        (2, 203, "variant_3"),
    ]
    .into_iter()
    .map(|(e, v, k)| (e, v, k.to_string()))
    .collect();
    assert_eq!(keys, want);
}

#[test]
fn partitions_and_offsets() {
    let o = GenerateOptions {
        partitions: 3,
        ..small(10_000)
    };
    let (out, _) = gen(&o);
    let (recs, invalid) = parse_all(&out);
    let mut per: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in &recs {
        per.entry(r.partition).or_default().push(r.offset);
    }
    assert_eq!(per.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
    for offs in per.values() {
        assert!(
            offs.windows(2).all(|w| w[0] < w[1]),
            "offsets increase within a partition"
        );
    }
    let all: HashSet<u64> = recs.iter().map(|r| r.offset).collect();
    assert_eq!(all.len() + invalid, recs.len() + invalid, "offsets unique");
    // a delete and its tombstone share the partition (same key)
    for w in recs.windows(2) {
        if w[0].op() == Some("d") {
            assert_eq!(w[0].partition, w[1].partition);
        }
    }
}

#[test]
fn conversion_rate_differs_by_variant() {
    let o = GenerateOptions {
        records: 100_000,
        users: 20_000,
        ..GenerateOptions::clean()
    };
    let (out, st) = gen(&o);
    let pv = &st.per_variant;
    assert_eq!(pv.len(), 2);
    assert_eq!(
        (pv[0].variant_key.as_str(), pv[1].variant_key.as_str()),
        ("control", "treatment")
    );
    let rate = |i: usize| pv[i].conversions as f64 / pv[i].exposures as f64;
    assert!((rate(0) - 0.10).abs() < 0.01, "control {}", rate(0));
    assert!((rate(1) - 0.12).abs() < 0.01, "treatment {}", rate(1));
    // the file agrees with the stats (clean: every event claims its session's variant)
    drop(out);
    let (out, st) = gen(&GenerateOptions {
        records: 30_000,
        ..o
    });
    let (recs, _) = parse_all(&out);
    let mut count: HashMap<(String, String), u64> = HashMap::new();
    for r in recs
        .iter()
        .filter(|r| r.aggregate_type() == Some("event") && matches!(r.op(), Some("c") | Some("r")))
    {
        let p = r.payload().unwrap();
        let k = (
            p["variant_key"].as_str().unwrap().to_string(),
            p["event_type"].as_str().unwrap().to_string(),
        );
        *count.entry(k).or_default() += 1;
    }
    for v in &st.per_variant {
        let c = |e: &str| {
            count
                .get(&(v.variant_key.clone(), e.to_string()))
                .copied()
                .unwrap_or(0)
        };
        assert_eq!(
            (c("exposure"), c("conversion")),
            (v.exposures, v.conversions),
            "{}",
            v.variant_key
        );
    }
}

#[test]
fn timestamps_follow_start_and_span() {
    let o = GenerateOptions {
        start: "2024-02-28T23:00:00+01:00".into(),
        span_secs: 3 * 86_400,
        ..small_clean(10_000)
    };
    let (out, _) = gen(&o);
    let (recs, _) = parse_all(&out);
    let start = micros("2024-02-28T22:00:00+00:00");
    let end = start + 3 * 86_400 * 1_000_000;
    let mut days = HashSet::new();
    for r in &recs {
        if let Some(p) = r.payload() {
            let t = p
                .get("timestamp")
                .or_else(|| p.get("assigned_at"))
                .unwrap()
                .as_str()
                .unwrap()
                .to_string();
            let us = micros(&t);
            assert!(us >= start && us <= end, "{t}");
            days.insert(t[..10].to_string());
        }
    }
    // crosses the leap day
    assert!(
        days.contains("2024-02-29") && days.contains("2024-03-01"),
        "{days:?}"
    );
}

#[test]
fn options_serde_and_validation() {
    let d: GenerateOptions = serde_json::from_str("{}").unwrap();
    assert_eq!(d, GenerateOptions::default());
    let o: GenerateOptions = serde_json::from_str(r#"{"records": 5, "seed": 9}"#).unwrap();
    assert_eq!(
        (o.records, o.seed, o.users),
        (5, 9, GenerateOptions::default().users)
    );
    assert!(serde_json::from_str::<GenerateOptions>(r#"{"recrods": 5}"#).is_err());
    let back: GenerateOptions =
        serde_json::from_str(&serde_json::to_string(&GenerateOptions::clean()).unwrap()).unwrap();
    assert_eq!(back, GenerateOptions::clean());

    let mut sink = Vec::new();
    for bad in [
        GenerateOptions {
            variants: 0,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            users: 0,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            malformed: 1.5,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            start: "yesterday".into(),
            ..GenerateOptions::default()
        },
        GenerateOptions {
            start: "2025-02-30T00:00:00Z".into(),
            ..GenerateOptions::default()
        },
        GenerateOptions {
            conversion_rates: vec![],
            ..GenerateOptions::default()
        },
    ] {
        assert!(generate(&bad, &mut sink).is_err());
    }
    // zero records: empty output
    let (out, st) = gen(&GenerateOptions {
        records: 0,
        ..GenerateOptions::default()
    });
    assert!(out.is_empty());
    assert_eq!(st.records, 0);
    // tiny user base: fewer pairs than active sessions still works
    let (out, st) = gen(&GenerateOptions {
        users: 3,
        experiments: 1,
        ..small(2_000)
    });
    assert_eq!(lines(&out).len(), 2_000);
    assert!(st.events > 0);
}
