//! `neonblue report` as a user runs it (SPEC 10): a generated data set run in
//! file mode, then the report's JSON checked for its structure and
//! invariants, the options that narrow it, the page, and clear failures.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_neonblue");

fn neonblue(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NEONBLUE_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = neonblue(args);
    assert!(
        out.status.success(),
        "neonblue {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = neonblue(args);
    assert!(!out.status.success(), "neonblue {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One generated data set (3 experiments, 2 variants, 2 days), run once for all tests.
fn output_root() -> &'static Path {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, out) = ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("cdc.jsonl");
        let out = dir.path().join("out");
        ok(&[
            "generate",
            "--records",
            "30000",
            "--seed",
            "7",
            "--output",
            input.to_str().unwrap(),
        ]);
        ok(&[
            "run",
            "--no-progress",
            "--partitions",
            "2",
            "--now",
            "2100-01-01T00:00:00Z",
            "--input",
            input.to_str().unwrap(),
            "--state",
            dir.path().join("state").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        (dir, out)
    });
    out
}

fn report_json(extra: &[&str]) -> Value {
    let root = output_root().to_str().unwrap().to_string();
    let mut args = vec!["report", "--output", &root, "--format", "json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

#[test]
fn json_has_the_shape_of_spec_10_3() {
    let r = report_json(&[]);
    assert_eq!(keys(&r), ["experiments"]);
    let exps = r["experiments"].as_array().unwrap();
    let ids: Vec<u64> = exps
        .iter()
        .map(|e| e["experiment_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    for e in exps {
        assert_eq!(
            keys(e),
            [
                "experiment_id",
                "date_from",
                "date_to",
                "control_variant_id",
                "multi_variant_users",
                "srm",
                "results",
                "daily"
            ]
        );
        assert_eq!(
            keys(&e["srm"]),
            ["users", "weights", "chi2", "p_value", "flagged"]
        );
        let id = e["experiment_id"].as_u64().unwrap();
        // the variant keyed `control` (id e*100+1) is control by default
        assert_eq!(e["control_variant_id"].as_u64(), Some(id * 100 + 1));
        assert_eq!(
            keys(&e["srm"]["users"]),
            [(id * 100 + 1).to_string(), (id * 100 + 2).to_string()]
        );
        let results = e["results"].as_array().unwrap();
        let metrics: Vec<&str> = results
            .iter()
            .map(|r| r["metric"].as_str().unwrap())
            .collect();
        assert_eq!(
            metrics,
            [
                "conversion_rate",
                "value_per_user",
                "events_per_user",
                "sessions_per_user"
            ]
        );
        for r in results {
            assert_eq!(
                keys(r),
                [
                    "metric",
                    "variant_id",
                    "variant_key",
                    "control",
                    "variant",
                    "absolute",
                    "relative",
                    "sequential",
                    "df",
                    "p_value_adjusted",
                    "chance_to_beat_control",
                    "warning"
                ]
            );
            assert_eq!(keys(&r["control"]), ["n", "mean", "sd"]);
            for k in ["absolute", "relative"] {
                assert_eq!(
                    keys(&r[k]),
                    ["estimate", "se", "ci_low", "ci_high", "p_value"]
                );
            }
            assert_eq!(keys(&r["sequential"]), ["ci_low", "ci_high", "p_value"]);
            assert_eq!(r["variant_key"], "treatment");
        }
        let daily = e["daily"].as_array().unwrap();
        assert!(daily.len() >= 2);
        for d in daily {
            assert_eq!(keys(d), ["date", "results"]);
        }
    }
}

#[test]
fn numbers_hold_together() {
    let r = report_json(&[]);
    for e in r["experiments"].as_array().unwrap() {
        let users: Vec<u64> = e["srm"]["users"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let p = num(&e["srm"]["p_value"]);
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(e["srm"]["flagged"], p < 0.001);
        for r in e["results"].as_array().unwrap() {
            // every metric is over the same analysed users as the SRM check
            assert_eq!(r["control"]["n"].as_u64(), Some(users[0]), "{r}");
            assert_eq!(r["variant"]["n"].as_u64(), Some(users[1]), "{r}");
            assert!(r["warning"].is_null(), "{r}");
            for k in ["absolute", "relative"] {
                let x = &r[k];
                assert!(num(&x["ci_low"]) <= num(&x["estimate"]));
                assert!(num(&x["estimate"]) <= num(&x["ci_high"]));
                assert!(num(&x["se"]) > 0.0);
                assert!((0.0..=1.0).contains(&num(&x["p_value"])));
            }
            let (rel, seq) = (&r["relative"], &r["sequential"]);
            // the always-valid interval is wider than the fixed one
            assert!(num(&seq["ci_low"]) < num(&rel["ci_low"]));
            assert!(num(&seq["ci_high"]) > num(&rel["ci_high"]));
            assert!(num(&seq["p_value"]) >= num(&rel["p_value"]));
            // Holm never lowers a p-value
            assert!(num(&r["p_value_adjusted"]) >= num(&rel["p_value"]));
            let c = num(&r["chance_to_beat_control"]);
            assert!((0.0..=1.0).contains(&c));
            assert_eq!(c > 0.5, num(&rel["estimate"]) > 0.0);
            let lift = num(&rel["estimate"]);
            let means = num(&r["variant"]["mean"]) / num(&r["control"]["mean"]) - 1.0;
            assert!((lift - means).abs() < 1e-12);
        }
        // the last cumulative date is the whole range
        let daily = e["daily"].as_array().unwrap();
        assert_eq!(daily.last().unwrap()["results"], e["results"]);
        let dates: Vec<&str> = daily.iter().map(|d| d["date"].as_str().unwrap()).collect();
        assert!(dates.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(e["date_from"].as_str(), dates.first().copied());
        assert_eq!(e["date_to"].as_str(), dates.last().copied());
    }
}

#[test]
fn options_narrow_and_change_the_report() {
    let all = report_json(&[]);
    let first = all["experiments"][0]["date_from"]
        .as_str()
        .unwrap()
        .to_string();
    let one_day = report_json(&["--experiment", "2", "--from", &first, "--to", &first]);
    let exps = one_day["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 1);
    assert_eq!(exps[0]["experiment_id"], 2);
    assert_eq!(exps[0]["daily"].as_array().unwrap().len(), 1);
    assert_eq!(exps[0]["date_to"], first.as_str());
    // the first day alone is the first cumulative date of the full report
    assert_eq!(
        exps[0]["results"],
        all["experiments"][1]["daily"][0]["results"]
    );

    let swapped = report_json(&["--experiment", "1", "--control", "102"]);
    let e = &swapped["experiments"][0];
    assert_eq!(e["control_variant_id"], 102);
    assert_eq!(e["results"][0]["variant_id"], 101);

    let none = report_json(&["--experiment", "1", "--correction", "none"]);
    for r in none["experiments"][0]["results"].as_array().unwrap() {
        assert_eq!(r["p_value_adjusted"], r["relative"]["p_value"]);
    }

    let weighted = report_json(&["--experiment", "1", "--weights", "9,1"]);
    let srm = &weighted["experiments"][0]["srm"];
    assert_eq!(srm["weights"]["101"], 9.0);
    assert_eq!(srm["flagged"], true, "{srm}");
}

#[test]
fn table_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let root = output_root().to_str().unwrap();
    let table = ok(&["report", "--output", root, "--html", page.to_str().unwrap()]);
    assert!(table.contains("Experiment 1") && table.contains("Experiment 3"));
    assert!(table.contains("SRM χ²") && table.contains("conversion_rate"));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("name=\"viewport\"") && html.contains("prefers-color-scheme: dark"));
    // one lift chart per metric and variant, one users chart, per experiment
    assert_eq!(html.matches("<figure class=\"chart lift\"").count(), 3 * 4);
    assert_eq!(html.matches("<figure class=\"chart users\"").count(), 3);
    // self-contained: nothing to load
    for needle in ["<script src", "<link", "url(http", "@import", "src=\"http"] {
        assert!(!html.contains(needle), "{needle}");
    }
    assert!(!html.contains("NaN") && !html.contains("inf%"));
}

#[test]
fn failures_say_what_is_wrong() {
    let root = output_root().to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let err = fails(&["report", "--output", empty.path().to_str().unwrap()]);
    assert!(err.contains("no user_daily dataset under"), "{err}");

    let missing = empty.path().join("nowhere");
    let err = fails(&["report", "--output", missing.to_str().unwrap()]);
    assert!(err.contains("no such directory"), "{err}");
    assert!(!missing.exists(), "report must not create the root");

    let err = fails(&["report", "--output", root, "--experiment", "99"]);
    assert!(
        err.contains("experiment 99 has no user_daily rows; experiments present: 1, 2, 3"),
        "{err}"
    );

    let err = fails(&["report", "--output", root, "--control", "999"]);
    assert!(
        err.contains("--control 999 is not a variant of experiment 1"),
        "{err}"
    );

    let err = fails(&["report", "--output", root, "--weights", "1,1,1"]);
    assert!(
        err.contains("--weights gives 3 weights but experiment 1 has 2 variants [101, 102]"),
        "{err}"
    );

    let err = fails(&["report", "--output", root, "--weights", "1,x"]);
    assert!(err.contains("is not a non-negative number"), "{err}");

    let err = fails(&["report", "--output", root, "--from", "2025-13-01"]);
    assert!(err.contains("expected YYYY-MM-DD"), "{err}");

    let err = fails(&["report", "--output", root, "--alpha", "0.7"]);
    assert!(err.contains("--alpha 0.7 must be in (0, 0.5)"), "{err}");

    let err = fails(&["report", "--output", root, "--from", "2030-01-01"]);
    assert!(err.contains("no user_daily rows from 2030-01-01"), "{err}");
}
