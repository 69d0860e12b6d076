//! `--format table`: the status for an operator's terminal.

use super::broker::BrokerStatus;
use super::local::LocalStatus;
use super::{Status, TaskStatus};
use crate::domain::Summary;
use std::fmt::Write;

/// The whole status as text.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    if let Some(l) = &s.state {
        local(&mut out, l);
    }
    if let Some(e) = &s.state_error {
        let _ = writeln!(out, "{e}");
    }
    if let Some(b) = &s.broker {
        if s.state.is_some() || s.state_error.is_some() {
            out.push('\n');
        }
        broker(&mut out, b);
    }
    out
}

fn local(out: &mut String, l: &LocalStatus) {
    let _ = writeln!(
        out,
        "State directory {} ({}, {} mode, {} on disk)",
        l.dir,
        l.format,
        l.mode,
        bytes(l.size_on_disk)
    );
    if let Some(app) = &l.app_id {
        let _ = writeln!(out, "  application id: {app}");
    }
    if let Some(f) = &l.file {
        let _ = writeln!(
            out,
            "  input {} ({}, {} layout, {} partitions, a checkpoint every {} lines)",
            f.input,
            bytes(f.input_bytes),
            f.layout,
            f.partitions,
            f.checkpoint_records
        );
        if !f.checkpointed {
            let _ = writeln!(
                out,
                "  last checkpoint: none yet (the next start begins at the first line)"
            );
        } else {
            let _ = writeln!(
                out,
                "  last checkpoint: line {}, byte {} of {}{}",
                f.committed_lines,
                f.committed_bytes,
                f.input_bytes,
                if f.done {
                    " — the whole input is processed"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(out, "  accounting: {}", accounting(&l.summary));
    tasks(out, &l.tasks);
}

fn broker(out: &mut String, b: &BrokerStatus) {
    let _ = writeln!(out, "Application {} on {}", b.app_id, b.brokers);
    match &b.group {
        None => {
            let _ = writeln!(
                out,
                "  group: unknown to the broker (never ran, or deleted)"
            );
        }
        Some(g) => {
            let _ = writeln!(
                out,
                "  group: {} ({}), {} member{}",
                g.state,
                if g.protocol.is_empty() {
                    "no assignor"
                } else {
                    &g.protocol
                },
                g.members.len(),
                if g.members.len() == 1 { "" } else { "s" }
            );
            for m in &g.members {
                let who = [m.client_id.as_str(), m.host.as_str(), m.id.as_str()]
                    .into_iter()
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = writeln!(
                    out,
                    "    {}: {}",
                    if who.is_empty() {
                        "a member (the broker gives no details)"
                    } else {
                        &who
                    },
                    if m.partitions.is_empty() {
                        "partitions not reported".to_string()
                    } else {
                        m.partitions.join(", ")
                    }
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "  lag: {} input, {} repartition",
        b.input_lag, b.repartition_lag
    );
    let mut rows = vec![row(["ROLE", "PARTITION", "COMMITTED", "LOG END", "LAG"])];
    for p in &b.partitions {
        rows.push(row([
            p.role,
            &format!("{}[{}]", p.topic, p.partition),
            &opt(p.committed),
            &p.log_end.to_string(),
            &p.lag.to_string(),
        ]));
    }
    columns(out, &rows);
    let _ = writeln!(out, "  accounting: {}", accounting(&b.summary));
    tasks(out, &b.tasks);
    let missing: Vec<&str> = b
        .internal_topics
        .iter()
        .filter(|t| t.present.is_none())
        .map(|t| t.name.as_str())
        .collect();
    let wrong: Vec<String> = b
        .internal_topics
        .iter()
        .filter_map(|t| {
            t.present
                .filter(|n| *n != t.partitions)
                .map(|n| format!("{} ({n} partitions, needs {})", t.name, t.partitions))
        })
        .collect();
    let _ = writeln!(
        out,
        "  internal topics: {} of {} present",
        b.internal_topics.len() - missing.len(),
        b.internal_topics.len()
    );
    if !missing.is_empty() {
        let _ = writeln!(out, "    missing: {}", missing.join(", "));
    }
    if !wrong.is_empty() {
        let _ = writeln!(out, "    wrong layout: {}", wrong.join(", "));
    }
}

fn tasks(out: &mut String, tasks: &[TaskStatus]) {
    let mut rows = vec![row([
        "TASK",
        "INPUT",
        "NEXT OFFSET",
        "STREAM TIME",
        "PENDING",
        "WINDOWS",
        "DEDUP",
        "STATE",
        "COUNTERS",
    ])];
    for t in tasks {
        rows.push(row([
            &t.task,
            t.input.as_deref().unwrap_or("-"),
            &opt(t.next_offset),
            t.stream_time
                .as_deref()
                .unwrap_or(if t.checkpointed { "-" } else { "no checkpoint" }),
            &opt(t.pending_events),
            &opt(t.open_windows),
            &opt(t.dedup_entries),
            &t.state_bytes.map_or("-".into(), bytes),
            &counters(&t.counters),
        ]));
    }
    // Columns that say nothing here (e.g. offsets in file mode) are left out.
    let keep: Vec<bool> = (0..rows[0].len())
        .map(|i| i == 0 || rows[1..].iter().any(|r| r[i] != "-"))
        .collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| c)
                .collect()
        })
        .collect();
    columns(out, &rows);
    for t in tasks {
        if let Some(w) = &t.watermark {
            if t.stream_time.as_deref() != Some(w) {
                let _ = writeln!(out, "  {} watermark: {w}", t.task);
            }
        }
    }
    for t in tasks.iter().filter(|t| !t.unfinished_intent.is_empty()) {
        let _ = writeln!(
            out,
            "  UNFINISHED INTENT of {} ({} object{}; discarded and written again at the next start):",
            t.task,
            t.unfinished_intent.len(),
            if t.unfinished_intent.len() == 1 { "" } else { "s" }
        );
        for o in &t.unfinished_intent {
            let _ = writeln!(out, "    {o}");
        }
    }
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns, two spaces apart, indented by two.
fn columns(out: &mut String, rows: &[Vec<String>]) {
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::from(" ");
        for (i, c) in r.iter().enumerate() {
            let _ = write!(line, " {c:<w$}", w = widths[i]);
            line.push(' ');
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |x| x.to_string())
}

fn accounting(s: &Summary) -> String {
    format!(
        "records_in {}, events_emitted {}, assignments_applied {}, skipped {}, dead_lettered {}",
        s.records_in,
        s.events_emitted,
        s.assignments_applied,
        s.skipped_total(),
        s.dead_lettered
    )
}

/// The non-zero counters as `name=value`, nested names flattened.
fn counters(v: &serde_json::Value) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, x, out);
                }
            }
            serde_json::Value::Number(n) if n.as_u64() != Some(0) => {
                out.push(format!("{prefix}={n}"))
            }
            _ => {}
        }
    }
    let mut parts = Vec::new();
    walk("", v, &mut parts);
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// Bytes in binary units.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_only_what_is_not_zero_with_nested_names() {
        let v = serde_json::json!({"records_in": 5, "skipped": {"tombstone": 2, "message": 0}, "late": 0});
        assert_eq!(counters(&v), "records_in=5 skipped.tombstone=2");
        assert_eq!(counters(&serde_json::json!({"late": 0})), "-");
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn columns_that_say_nothing_are_left_out() {
        let mut t = TaskStatus::new("router", crate::status::TaskKind::Router);
        t.stream_time = Some("2025-10-01T00:00:00.000000Z".into());
        t.checkpointed = true;
        let mut out = String::new();
        tasks(&mut out, &[t]);
        let header = out.lines().next().unwrap();
        assert!(header.contains("STREAM TIME"), "{out}");
        assert!(!header.contains("NEXT OFFSET"), "{out}");
    }
}
