//! Producing JSONL records (the file format of SPEC 2.4) to a topic: for
//! `generate --topic`, load tests and the integration tests.

use anyhow::{Context, Result};
use neonblue_topology::kafka::{ensure_topics, ChangelogProducer, TopicSpec};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::ClientConfig;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// Produces every line of `path` to `topic` (created with `partitions` when
/// missing). A record-object line keeps its key, headers and partition
/// (modulo the topic's partitions); a bare value line goes to partition 0.
/// Returns the number of records.
pub fn produce_file(base: &ClientConfig, path: &Path, topic: &str, partitions: i32) -> Result<u64> {
    ensure_topics(
        base,
        1,
        &[TopicSpec {
            name: topic.to_string(),
            partitions,
            compacted: false,
        }],
    )?;
    let producer = ChangelogProducer::new(base)?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut inflight = Vec::new();
    let mut n = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let fields = serde_json::from_str::<BTreeMap<&str, &RawValue>>(&line).ok();
        let (key, value, headers, partition) = match fields {
            Some(f) if f.contains_key("value") => {
                let text = |k: &str| {
                    f.get(k)
                        .map(|v| v.get().to_string())
                        .filter(|t| t != "null")
                };
                let mut headers = OwnedHeaders::new();
                if let Some(h) = f.get("headers") {
                    let h: BTreeMap<String, &RawValue> =
                        serde_json::from_str(h.get()).unwrap_or_default();
                    for (k, v) in h {
                        let v = serde_json::from_str::<String>(v.get())
                            .unwrap_or_else(|_| v.get().to_string());
                        headers = headers.insert(Header {
                            key: &k,
                            value: Some(&v),
                        });
                    }
                }
                let p = f
                    .get("partition")
                    .and_then(|p| p.get().parse::<i64>().ok())
                    .unwrap_or(0)
                    .rem_euclid(partitions as i64) as i32;
                (text("key"), text("value"), headers, p)
            }
            _ => (None, Some(line.clone()), OwnedHeaders::new(), 0),
        };
        let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .headers(headers);
        if let Some(k) = &key {
            rec = rec.key(k.as_bytes());
        }
        if let Some(v) = &value {
            rec = rec.payload(v.as_bytes());
        }
        inflight.push(producer.send_record(rec)?);
        n += 1;
        if inflight.len() >= 10_000 {
            ChangelogProducer::await_all(std::mem::take(&mut inflight))?;
        }
    }
    ChangelogProducer::await_all(inflight)?;
    Ok(n)
}
