//! `--format json`: the [`Report`] serialized (SPEC 10.3).

use super::model::Report;

/// The report as pretty-printed JSON (ends with a newline).
pub fn render(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("the report model serializes");
    s.push('\n');
    s
}
