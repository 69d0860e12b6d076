//! Parquet sink: layout, schema, logical types, round trip, determinism,
//! idempotent overwrite, multipart uploads, and (optionally) DuckDB reading
//! the tree with Hive partitioning.

use neonblue::domain::outputs::{
    AggRow, DeadLetterRow, EventRow, InvalidReason, OutputBatch, UserDailyRow, WindowKind,
};
use neonblue::domain::records::{Event, Origin};
use neonblue::sink::{
    read_aggregates, read_dataset, read_dead_letters, read_events, read_user_daily, Dataset,
    OutputRoot, ParquetSink, ParquetSinkOptions, Segment, SinkError,
};
use object_store::path::Path;
use parquet::basic::{Compression, LogicalType, TimeUnit};
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::sync::Arc;

/// 2024-05-01T00:00:00Z.
const DAY0: i64 = 1_714_521_600_000_000;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

fn event(id: &str, user: &str, et: &str, ts: i64) -> EventRow {
    EventRow {
        event: Event {
            event_id: id.into(),
            experiment_id: 7,
            user_id: user.into(),
            event_type: et.into(),
            timestamp: ts,
            session_id: None,
            claimed_variant_id: None,
            page: None,
            device: None,
            browser: None,
            value: None,
            score: None,
            properties: "{}".into(),
        },
        variant_id: None,
        variant_key: None,
        assigned_at: None,
        is_valid: false,
        invalid_reason: Some(InvalidReason::Unassigned),
        is_late: false,
        origin: Origin {
            topic: Arc::from("experiments_events"),
            partition: 0,
            offset: 0,
        },
    }
}

fn agg(kind: WindowKind, start: i64, key: Option<&str>, et: &str, events: u64) -> AggRow {
    AggRow {
        kind,
        window_start: start,
        window_end: start + kind.len_micros(),
        experiment_id: 7,
        variant_id: 2,
        variant_key: key.map(Into::into),
        event_type: et.into(),
        events,
        users: events.min(2),
        value_count: 1,
        value_sum: 12.5,
        value_sum_sq: 156.25,
        partition: 3,
    }
}

fn sample() -> OutputBatch {
    // Valid conversion one microsecond before midnight, unicode everywhere.
    let mut a = event("e-1", "ユーザー🚀", "conversion", DAY0 + DAY - 1);
    a.event.session_id = Some("sess-α".into());
    a.event.claimed_variant_id = Some(1);
    a.event.page = Some("/checkout/ü".into());
    a.event.device = Some("mobile".into());
    a.event.browser = Some("Firefox".into());
    a.event.value = Some(12.5);
    a.event.score = Some(-42);
    a.event.properties =
        r#"{"page":"/checkout/ü","value":"12.50","score":-42,"emoji":"🎉"}"#.into();
    a.variant_id = Some(2);
    a.variant_key = Some("treatment".into());
    a.assigned_at = Some(DAY0 + 3 * HOUR);
    a.is_valid = true;
    a.invalid_reason = None;
    a.origin.partition = 2;
    a.origin.offset = 1_234_567_890_123;
    // Unassigned late exposure exactly at midnight: all optional columns null.
    let mut b = event("e-2", "42", "exposure", DAY0 + DAY);
    b.is_late = true;
    b.origin.offset = 5;
    // Click before the assignment, variant without key, in another hour.
    let mut c = event(
        "e-3",
        "ユーザー🚀",
        "click",
        DAY0 + 22 * HOUR + 15 * 60_000_000,
    );
    c.variant_id = Some(1);
    c.assigned_at = Some(DAY0 + DAY + HOUR);
    c.invalid_reason = Some(InvalidReason::BeforeAssignment);
    c.origin.offset = 6;
    let d = event("e-4", "u-4", "page_view", DAY0 + DAY - 1);

    OutputBatch {
        events: vec![a, b, c, d],
        aggregates: vec![
            agg(WindowKind::Hourly, DAY0 + 22 * HOUR, Some("treatment"), "click", 3),
            agg(WindowKind::Hourly, DAY0 + 23 * HOUR, None, "conversion", 1),
            agg(WindowKind::Daily, DAY0, Some("treatment"), "click", 3),
            agg(WindowKind::Hourly, DAY0 + 22 * HOUR, Some("control"), "exposure", 9),
            agg(WindowKind::Hourly, DAY0 + DAY, Some("treatment"), "exposure", 2),
        ],
        user_daily: vec![
            UserDailyRow {
                date: DAY0,
                experiment_id: 7,
                variant_id: 2,
                user_id: "ユーザー🚀".into(),
                variant_key: Some("treatment".into()),
                events: 3,
                journey: vec!["exposure".into(), "click".into(), "conversión".into()],
                value_sum: 12.5,
                sessions: 1,
                exposed: true,
                converted: true,
                first_ts: DAY0 + 22 * HOUR,
                last_ts: DAY0 + DAY - 1,
                partition: 3,
            },
            UserDailyRow {
                date: DAY0 + DAY,
                experiment_id: 7,
                variant_id: 1,
                user_id: "42".into(),
                variant_key: None,
                events: 1,
                journey: vec!["exposure".into()],
                value_sum: 0.0,
                sessions: 0,
                exposed: true,
                converted: false,
                first_ts: DAY0 + DAY,
                last_ts: DAY0 + DAY,
                partition: 3,
            },
        ],
        dead_letters: vec![
            DeadLetterRow {
                line: r#"{"topic":"t","partition":0,"offset":9,"key":null,"value":"nope","headers":null,"reason":"invalid_json","stage":"envelope"}"#.into(),
            },
            DeadLetterRow {
                line: r#"{"topic":"t","partition":0,"offset":10,"key":"k","value":"ü","headers":null,"reason":"invalid_json","stage":"envelope"}"#.into(),
            },
        ],
    }
}

const SEQ: u64 = 1_234;

fn expected_paths() -> Vec<String> {
    let f = "part-p0003-00000000000000001234";
    vec![
        format!("events/event_date=2024-05-01/{f}.parquet"),
        format!("events/event_date=2024-05-02/{f}.parquet"),
        format!("agg_hourly/date=2024-05-01/hour=22/{f}.parquet"),
        format!("agg_hourly/date=2024-05-01/hour=23/{f}.parquet"),
        format!("agg_hourly/date=2024-05-02/hour=00/{f}.parquet"),
        format!("agg_daily/date=2024-05-01/{f}.parquet"),
        format!("user_daily/date=2024-05-01/{f}.parquet"),
        format!("user_daily/date=2024-05-02/{f}.parquet"),
        format!("dlq/{f}.jsonl"),
    ]
}

async fn write_sample(dir: &std::path::Path) -> (ParquetSink, OutputBatch) {
    let sink = ParquetSink::open(dir.to_str().unwrap(), ParquetSinkOptions::default()).unwrap();
    let batch = sample();
    let seg = Segment {
        part: "p0003",
        seq: SEQ,
        batch: &batch,
    };
    let objs = sink.encode(&seg).unwrap();
    sink.put_all(&objs).await.unwrap();
    (sink, batch)
}

fn file_reader(path: &std::path::Path) -> SerializedFileReader<std::fs::File> {
    SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap()
}

#[test]
fn encode_layout_and_determinism() {
    let batch = sample();
    let seg = Segment {
        part: "p0003",
        seq: SEQ,
        batch: &batch,
    };
    let dir = tempfile::tempdir().unwrap();
    let sink =
        ParquetSink::open(dir.path().to_str().unwrap(), ParquetSinkOptions::default()).unwrap();
    let a = sink.encode(&seg).unwrap();
    let names: Vec<String> = a.iter().map(|o| o.path.to_string()).collect();
    assert_eq!(names, expected_paths());
    // Same input → byte-identical objects, also from another sink instance.
    assert_eq!(a, sink.encode(&seg).unwrap());
    let other =
        ParquetSink::open(dir.path().to_str().unwrap(), ParquetSinkOptions::default()).unwrap();
    assert_eq!(a, other.encode(&seg).unwrap());
    // DLQ object: each line + "\n".
    let dlq = a.last().unwrap();
    let text = std::str::from_utf8(&dlq.bytes).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with("\"stage\":\"envelope\"}\n"));
    // Empty segment → nothing.
    let empty = OutputBatch::default();
    assert!(sink
        .encode(&Segment {
            part: "router",
            seq: 0,
            batch: &empty
        })
        .unwrap()
        .is_empty());
    // Part names end up in object names: reject separators.
    let bad = sink.encode(&Segment {
        part: "../x",
        seq: 0,
        batch: &batch,
    });
    assert!(matches!(bad, Err(SinkError::InvalidPart(_))));
}

#[tokio::test]
async fn writes_hive_tree_readable_by_parquet_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out/nested"); // created by the sink
    let (_sink, batch) = write_sample(&root).await;
    for p in expected_paths() {
        assert!(root.join(&p).is_file(), "{p} missing");
    }

    // events/event_date=2024-05-01: rows a, c, d in emission order.
    let f = file_reader(&root.join(&expected_paths()[0]));
    let meta = f.metadata();
    assert_eq!(meta.file_metadata().num_rows(), 3);
    let schema = meta.file_metadata().schema_descr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names.len(), 27);
    assert_eq!(
        &names[..6],
        [
            "event_id",
            "experiment_id",
            "user_id",
            "session_id",
            "event_type",
            "timestamp"
        ]
    );
    assert_eq!(names[26], "source_offset");
    assert!(!names.contains(&"event_date"));
    let ts_utc_micros = LogicalType::timestamp(true, TimeUnit::MICROS);
    for col in schema.columns() {
        match col.name() {
            "timestamp" | "assigned_at" => assert_eq!(
                col.logical_type_ref(),
                Some(&ts_utc_micros),
                "{}",
                col.name()
            ),
            "experiment_id" | "variant_id" | "claimed_variant_id" => {
                assert_eq!(
                    col.logical_type_ref(),
                    Some(&LogicalType::integer(32, false))
                )
            }
            "event_hour" => assert_eq!(
                col.logical_type_ref(),
                Some(&LogicalType::integer(8, false))
            ),
            _ => {}
        }
    }
    for rg in meta.row_groups() {
        for c in rg.columns() {
            assert!(
                matches!(c.compression(), Compression::ZSTD(_)),
                "{:?}",
                c.column_path()
            );
            // Per-row-unique columns are written plain, others such as
            // user_id with a dictionary.
            let name = c.column_path().string();
            let plain = ["event_id", "timestamp", "source_offset"].contains(&name.as_str());
            if plain || name == "user_id" {
                assert_eq!(c.dictionary_page_offset().is_none(), plain, "{name}");
            }
        }
    }
    let created_by = meta.file_metadata().created_by().unwrap_or_default();
    assert!(created_by.starts_with("parquet-rs"), "{created_by}");

    // Values through the arrow reader of the parquet crate.
    let bytes = bytes::Bytes::from(std::fs::read(root.join(&expected_paths()[0])).unwrap());
    let rb = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    use arrow::array::AsArray;
    use arrow::datatypes::{TimestampMicrosecondType, UInt8Type};
    let ids: Vec<_> = rb
        .column_by_name("event_id")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, ["e-1", "e-3", "e-4"]);
    let hours: Vec<u8> = rb
        .column_by_name("event_hour")
        .unwrap()
        .as_primitive::<UInt8Type>()
        .values()
        .to_vec();
    assert_eq!(hours, [23, 22, 23]);
    let ts = rb
        .column_by_name("timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.timezone(), Some("UTC"));
    assert_eq!(ts.value(0), DAY0 + DAY - 1);
    let flags = |n: &str| -> Vec<bool> {
        rb.column_by_name(n)
            .unwrap()
            .as_boolean()
            .iter()
            .flatten()
            .collect()
    };
    assert_eq!(flags("is_conversion"), [true, false, false]);
    assert_eq!(flags("is_click"), [false, true, false]);
    assert_eq!(flags("is_exposure"), [false, false, false]);
    assert_eq!(flags("variant_mismatch"), [true, false, false]);
    let user = rb.column_by_name("user_id").unwrap().as_string::<i32>();
    assert_eq!(user.value(0), "ユーザー🚀");
    assert_eq!(rb.column_by_name("variant_key").unwrap().null_count(), 2);

    // user_daily: list column with non-null items, no `date` column.
    let f = file_reader(&root.join(&expected_paths()[6]));
    let cols: Vec<String> = f
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.path().string())
        .collect();
    assert!(cols.iter().any(|c| c.starts_with("journey.")), "{cols:?}");
    assert!(!cols.iter().any(|c| c == "date"));
    // Unique per user and day: user_id and its times are written plain.
    let dictionary = |name: &str| {
        f.metadata().row_groups()[0]
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap()
            .dictionary_page_offset()
            .is_some()
    };
    assert!(!dictionary("user_id") && !dictionary("first_ts") && dictionary("variant_key"));
    let f = file_reader(&root.join(&expected_paths()[2]));
    let cols: Vec<&str> = f
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name())
        .collect();
    assert!(!cols.contains(&"date") && !cols.contains(&"hour"));
    assert_eq!(f.metadata().file_metadata().num_rows(), 2);
    // An aggregate file is a few rows: no dictionary at all.
    let columns = f.metadata().row_groups()[0].columns();
    assert!(columns.iter().all(|c| c.dictionary_page_offset().is_none()));
    drop(batch);
}

#[tokio::test]
async fn round_trip_through_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, batch) = write_sample(tmp.path()).await;
    let root = sink.root();

    // Events: ordered by path (date) then emission order.
    let got = read_events(root).await.unwrap();
    let want = vec![
        batch.events[0].clone(),
        batch.events[2].clone(),
        batch.events[3].clone(),
        batch.events[1].clone(),
    ];
    assert_eq!(got, want);

    let hourly = read_aggregates(root, WindowKind::Hourly).await.unwrap();
    let want: Vec<_> = [0, 3, 1, 4]
        .iter()
        .map(|&i| batch.aggregates[i].clone())
        .collect();
    assert_eq!(hourly, want);
    let daily = read_aggregates(root, WindowKind::Daily).await.unwrap();
    assert_eq!(daily, vec![batch.aggregates[2].clone()]);
    assert_eq!(read_user_daily(root).await.unwrap(), batch.user_daily);
    assert_eq!(read_dead_letters(root).await.unwrap(), batch.dead_letters);

    // Hive keys re-added as columns.
    let rbs = read_dataset(root, Dataset::AggHourly).await.unwrap();
    let schema = rbs[0].schema();
    assert_eq!(schema.field(schema.fields().len() - 2).name(), "date");
    assert_eq!(schema.field(schema.fields().len() - 1).name(), "hour");
    use arrow::array::AsArray;
    use arrow::datatypes::{Date32Type, Int32Type};
    let hours: Vec<i32> = rbs
        .iter()
        .flat_map(|b| {
            b.column_by_name("hour")
                .unwrap()
                .as_primitive::<Int32Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(hours, [22, 22, 23, 0]);
    let dates: Vec<i32> = rbs
        .iter()
        .flat_map(|b| {
            b.column_by_name("date")
                .unwrap()
                .as_primitive::<Date32Type>()
                .values()
                .to_vec()
        })
        .collect();
    let d0 = (DAY0 / DAY) as i32;
    assert_eq!(dates, [d0, d0, d0, d0 + 1]);

    // A missing dataset reads as empty.
    let empty = OutputRoot::open(tmp.path().join("nothing").to_str().unwrap()).unwrap();
    assert!(read_events(&empty).await.unwrap().is_empty());
}

#[tokio::test]
async fn idempotent_overwrite_delete_and_file_url() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("viaurl").display());
    let sink = ParquetSink::open(&url, ParquetSinkOptions::default()).unwrap();
    let batch = sample();
    let seg = Segment {
        part: "router",
        seq: 0,
        batch: &batch,
    };
    let objs = sink.encode(&seg).unwrap();
    sink.put_all(&objs).await.unwrap();
    let first = std::fs::read(tmp.path().join("viaurl").join(objs[0].path.as_ref())).unwrap();
    // Re-delivery after a crash: same names, same bytes, nothing twice.
    sink.put_all(&sink.encode(&seg).unwrap()).await.unwrap();
    let again = std::fs::read(tmp.path().join("viaurl").join(objs[0].path.as_ref())).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        read_events(sink.root()).await.unwrap().len(),
        batch.events.len()
    );

    // Delete what an intent named, plus something that never existed.
    let mut paths: Vec<Path> = objs.iter().map(|o| o.path.clone()).collect();
    paths.push(Path::from(
        "events/event_date=2000-01-01/part-router-00000000000000000000.parquet",
    ));
    sink.delete_all(&paths).await.unwrap();
    sink.delete_all(&paths).await.unwrap();
    assert!(read_events(sink.root()).await.unwrap().is_empty());
    assert!(read_dead_letters(sink.root()).await.unwrap().is_empty());
}

#[tokio::test]
async fn multipart_uploads_and_row_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ParquetSinkOptions {
        row_group_rows: 2,
        multipart_threshold: 0,
        multipart_part_size: 100,
        max_concurrency: 2,
        ..ParquetSinkOptions::default()
    };
    let sink = ParquetSink::open(tmp.path().to_str().unwrap(), opts).unwrap();
    let mut batch = OutputBatch::default();
    for i in 0..5 {
        let mut e = event(&format!("m-{i}"), &format!("u{i}"), "click", DAY0 + i);
        e.origin.offset = i;
        batch.events.push(e);
    }
    let objs = sink
        .encode(&Segment {
            part: "p0000",
            seq: 0,
            batch: &batch,
        })
        .unwrap();
    assert_eq!(objs.len(), 1);
    assert!(objs[0].bytes.len() > 300, "several parts");
    sink.put_all(&objs).await.unwrap();
    let on_disk = std::fs::read(tmp.path().join(objs[0].path.as_ref())).unwrap();
    assert_eq!(on_disk, objs[0].bytes.to_vec());
    let f = file_reader(&tmp.path().join(objs[0].path.as_ref()));
    let rgs: Vec<i64> = f
        .metadata()
        .row_groups()
        .iter()
        .map(|r| r.num_rows())
        .collect();
    assert_eq!(rgs, [2, 2, 1]);
    assert_eq!(read_events(sink.root()).await.unwrap(), batch.events);
}

#[test]
fn in_memory_store_url() {
    let root = OutputRoot::open("memory:///prefix").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let sink = ParquetSink::new(root, ParquetSinkOptions::default()).unwrap();
        let batch = sample();
        sink.write_segment(&Segment {
            part: "p0001",
            seq: 9,
            batch: &batch,
        })
        .await
        .unwrap();
        assert_eq!(
            read_user_daily(sink.root()).await.unwrap(),
            batch.user_daily
        );
    });
    assert!(matches!(
        OutputRoot::open(""),
        Err(SinkError::InvalidRoot { .. })
    ));
    assert!(matches!(
        OutputRoot::open("nosuchscheme://x/y"),
        Err(SinkError::InvalidRoot { .. })
    ));
}

/// DuckDB (Python package) reads the tree with Hive partitioning. Skipped,
/// with a note, when `python3 -c "import duckdb"` fails.
#[tokio::test]
async fn duckdb_reads_hive_tree() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("note: skipping duckdb_reads_hive_tree: python3 cannot import duckdb");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write_sample(tmp.path()).await;
    let script = r#"
import duckdb, json, sys
root = sys.argv[1]
con = duckdb.connect()
def q(sql):
    return con.execute(sql).fetchall()
ev = f"read_parquet('{root}/events/*/*.parquet', hive_partitioning=true)"
out = {
  "ev": q(f"select event_id, cast(event_date as varchar), event_hour, user_id, typeof(event_date), typeof(timestamp), typeof(experiment_id), variant_key, is_conversion from {ev} order by event_id"),
  "cnt": q(f"select cast(event_date as varchar), count(*) from {ev} group by 1 order by 1"),
  "hourly": q(f"select cast(date as varchar), hour, typeof(hour), sum(events)::bigint from read_parquet('{root}/agg_hourly/*/*/*.parquet', hive_partitioning=true, hive_types={{'date': DATE, 'hour': INTEGER}}) group by 1, 2, 3 order by 1, 2"),
  "ud": q(f"select user_id, journey, cast(date as varchar) from read_parquet('{root}/user_daily/*/*.parquet', hive_partitioning=true) order by date"),
  "tz": q(f"select cast(timestamp at time zone 'UTC' as varchar) from {ev} where event_id = 'e-2'"),
}
print(json.dumps(out, ensure_ascii=False))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ev = v["ev"].as_array().unwrap();
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[0][0], "e-1");
    assert_eq!(ev[0][1], "2024-05-01");
    assert_eq!(ev[0][2], 23);
    assert_eq!(ev[0][3], "ユーザー🚀");
    assert_eq!(ev[0][4], "DATE");
    assert_eq!(ev[0][5], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(ev[0][6], "UINTEGER");
    assert_eq!(ev[0][7], "treatment");
    assert_eq!(ev[0][8], true);
    assert_eq!(ev[1][1], "2024-05-02");
    assert_eq!(ev[1][7], serde_json::Value::Null);
    assert_eq!(
        v["cnt"],
        serde_json::json!([["2024-05-01", 3], ["2024-05-02", 1]])
    );
    assert_eq!(
        v["hourly"],
        serde_json::json!([
            ["2024-05-01", 22, "INTEGER", 12],
            ["2024-05-01", 23, "INTEGER", 1],
            ["2024-05-02", 0, "INTEGER", 2]
        ])
    );
    assert_eq!(
        v["ud"][0][1],
        serde_json::json!(["exposure", "click", "conversión"])
    );
    assert_eq!(v["ud"][1][2], "2024-05-02");
    assert_eq!(v["tz"][0][0], "2024-05-02 00:00:00");
}
