//! The current-release dialect of the ClickHouse sink, checked on ClickHouse
//! 26.x in-process (PyPI `chdb`): the rows the sink would send for a file-mode
//! run are inserted with the sink's own `INSERT … (columns) FORMAT
//! JSONEachRow` into tables made from `schemas/clickhouse/*.sql`, and must
//! equal the run's Parquet, column for column (timestamps to the microsecond).

mod common;

use neonblue::domain::WindowKind;
use neonblue::sink::clickhouse::rows::{self, Dialect, TableRows};
use std::path::Path;
use std::process::{Command, Stdio};

const CHECK: &str = r#"
import sys, glob, chdb
from chdb import session
root, rows_dir, schema_dir = sys.argv[1], sys.argv[2], sys.argv[3]
s = session.Session()
s.query("CREATE DATABASE IF NOT EXISTS neonblue")
s.query("USE neonblue")
for f in sorted(glob.glob(schema_dir + "/0[1-9]*.sql")):
    s.query(open(f).read())
for t in ["events_processed", "agg_hourly", "agg_daily", "user_journeys"]:
    cols = open(f"{rows_dir}/{t}.columns").read().strip()
    data = open(f"{rows_dir}/{t}.jsonl").read()
    if data.strip():
        s.query(f"INSERT INTO {t} ({cols}) FORMAT JSONEachRow\n{data}")
def q(sql):
    return s.query(sql, "TabSeparated").bytes().decode()
checks = {
 "events": ("SELECT event_id, toString(timestamp), toString(event_date), event_hour, toString(variant_id), variant_key, toString(assigned_at), is_valid, invalid_reason, is_late, is_exposure, is_click, is_conversion, toString(claimed_variant_id), variant_mismatch, page, toString(value), toString(score), properties, source_offset FROM events_processed FINAL",
            f"SELECT event_id, toString(timestamp), toString(toDate(timestamp)), event_hour, toString(variant_id), ifNull(variant_key, ''), toString(assigned_at), is_valid, ifNull(invalid_reason, ''), is_late, is_exposure, is_click, is_conversion, toString(claimed_variant_id), variant_mismatch, ifNull(page, ''), toString(value), toString(score), properties, source_offset FROM file('{root}/events/*/*.parquet', Parquet)"),
 "agg_hourly": ("SELECT toString(window_start), experiment_id, variant_id, variant_key, event_type, events, users, value_count, round(value_sum, 6), `partition`, toString(date), hour FROM agg_hourly FINAL",
                f"SELECT toString(window_start), experiment_id, variant_id, ifNull(variant_key, ''), event_type, events, users, value_count, round(value_sum, 6), `partition`, toString(toDate(window_start)), toHour(window_start) FROM file('{root}/agg_hourly/*/*/*.parquet', Parquet)"),
 "agg_daily": ("SELECT toString(window_start), experiment_id, variant_id, variant_key, event_type, events, users FROM agg_daily FINAL",
               f"SELECT toString(window_start), experiment_id, variant_id, ifNull(variant_key, ''), event_type, events, users FROM file('{root}/agg_daily/*/*.parquet', Parquet)"),
 "user_journeys": ("SELECT user_id, experiment_id, variant_id, journey, sessions, exposed, converted, toString(first_ts), toString(last_ts), toString(date) FROM user_journeys FINAL",
                   f"SELECT user_id, experiment_id, variant_id, journey, sessions, exposed, converted, toString(first_ts), toString(last_ts), toString(toDate(first_ts)) FROM file('{root}/user_daily/*/*.parquet', Parquet)"),
}
bad = 0
for name, (a, b) in checks.items():
    n_a = q(f"SELECT count() FROM ({a})").strip(); n_b = q(f"SELECT count() FROM ({b})").strip()
    d1 = q(f"SELECT * FROM (({a}) EXCEPT ({b})) LIMIT 3"); d2 = q(f"SELECT * FROM (({b}) EXCEPT ({a})) LIMIT 3")
    ok = n_a == n_b and not d1 and not d2 and int(n_a) > 0
    print(name, n_a, n_b, "ok" if ok else f"DIFF\n  only clickhouse: {d1}\n  only parquet: {d2}")
    bad += not ok
sys.exit(1 if bad else 0)
"#;

fn write_rows(dir: &Path, t: &TableRows) {
    std::fs::write(
        dir.join(format!("{}.columns", t.table)),
        t.columns
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", "),
    )
    .unwrap();
    let mut data = t.lines.join("\n");
    data.push('\n');
    std::fs::write(dir.join(format!("{}.jsonl", t.table)), data).unwrap();
}

#[test]
fn current_dialect_rows_equal_the_parquet_on_clickhouse_26() {
    let has_chdb = Command::new("python3")
        .args(["-c", "import chdb"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_chdb {
        assert!(
            std::env::var("NEONBLUE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "python3 with chdb is required (scripts/test.sh installs it)"
        );
        eprintln!("skipped: python3 -c 'import chdb' failed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.jsonl");
    let bin = env!("CARGO_BIN_EXE_neonblue");
    assert!(Command::new(bin)
        .args(["generate", "--records", "3000", "--seed", "4", "--output"])
        .arg(&input)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    common::run_into(&input, d, neonblue::config::Layout::Outbox, 2, 1000);
    let root = common::root(&d.join("output").display().to_string());
    let events = common::block(neonblue::sink::read::read_events(&root)).unwrap();
    let aggs_h = common::block(neonblue::sink::read::read_aggregates(
        &root,
        WindowKind::Hourly,
    ))
    .unwrap();
    let aggs_d = common::block(neonblue::sink::read::read_aggregates(
        &root,
        WindowKind::Daily,
    ))
    .unwrap();
    let days = common::block(neonblue::sink::read::read_user_daily(&root)).unwrap();
    let rows_dir = d.join("rows");
    std::fs::create_dir_all(&rows_dir).unwrap();
    let mut aggs = aggs_h;
    aggs.extend(aggs_d);
    write_rows(&rows_dir, &rows::events(Dialect::Current, &events));
    write_rows(
        &rows_dir,
        &rows::aggregates(Dialect::Current, WindowKind::Hourly, &aggs),
    );
    write_rows(
        &rows_dir,
        &rows::aggregates(Dialect::Current, WindowKind::Daily, &aggs),
    );
    write_rows(&rows_dir, &rows::user_journeys(Dialect::Current, &days));
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/clickhouse");
    let out = Command::new("python3")
        .args(["-c", CHECK])
        .arg(d.join("output"))
        .arg(&rows_dir)
        .arg(&schema)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" ok").count(), 4, "{text}");
}
