//! A consumer group as the broker sees it, read without joining it: its
//! committed offsets against the partitions' log ends, and its members.

use super::{KafkaError, ADMIN_TIMEOUT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// A partition's committed offset in a group and its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The group's committed offset (`None`: never committed).
    pub committed: Option<i64>,
    /// First offset still in the log.
    pub log_start: i64,
    /// The log end (high watermark): the greater of ListOffsets' answer and
    /// a fetch response's.
    pub log_end: i64,
    /// Whether a fetch response confirmed `log_end` (within [`FETCH_WAIT`]);
    /// if not, it is ListOffsets' answer alone, which some brokers give
    /// stale.
    pub end_fetched: bool,
}

impl PartitionLag {
    /// Records not yet consumed: from the committed offset (or the log's
    /// start when nothing was committed) to the log end.
    pub fn lag(&self) -> i64 {
        (self.log_end - self.committed.unwrap_or(self.log_start).max(self.log_start)).max(0)
    }
}

/// A member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub id: String,
    /// Its `client.id`.
    pub client_id: String,
    /// Its host as the broker saw it.
    pub host: String,
    /// Assigned partitions, `(topic, partitions)` (empty when the assignment
    /// is not in the consumer protocol's format).
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group's state and members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// `Stable`, `Empty`, `PreparingRebalance`, `Dead` …
    pub state: String,
    /// The assignor (e.g. `cooperative-sticky`).
    pub protocol: String,
    /// Its members.
    pub members: Vec<GroupMember>,
}

fn reader(base: &ClientConfig, group: &str) -> Result<BaseConsumer, KafkaError> {
    Ok(base
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "1048576")
        .set("max.partition.fetch.bytes", "65536")
        .set("fetch.wait.max.ms", super::SHORT_READ_FETCH_WAIT_MS)
        .create()?)
}

/// How long to wait for fetch responses carrying the log ends.
const FETCH_WAIT: Duration = Duration::from_secs(5);

/// `group`'s committed offsets and the log bounds of `partitions`.
///
/// The log end is the greater of what ListOffsets answers and what a fetch
/// response reports (some brokers, Tansu among them, answer ListOffsets
/// with a stale end; see [`super::fetched_log_end`]).
pub fn group_lag(
    base: &ClientConfig,
    group: &str,
    partitions: &[(String, i32)],
) -> Result<Vec<PartitionLag>, KafkaError> {
    let consumer = reader(base, group)?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    let committed = consumer.committed_offsets(tpl, ADMIN_TIMEOUT)?;
    let bounds = super::query_log_bounds(&consumer, partitions, ADMIN_TIMEOUT)?;
    let mut out = partitions
        .iter()
        .map(|(topic, partition)| {
            let &(log_start, log_end) =
                bounds
                    .get(&(topic.clone(), *partition))
                    .ok_or_else(|| KafkaError::Topic {
                        topic: topic.clone(),
                        problem: format!("the brokers gave no log bounds of partition {partition}"),
                    })?;
            let committed =
                committed
                    .find_partition(topic, *partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
            Ok(PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                committed,
                log_start,
                log_end,
                end_fetched: false,
            })
        })
        .collect::<Result<Vec<_>, KafkaError>>()?;
    // Fetch once from where the group stands: the responses carry the ends.
    let mut fetch = TopicPartitionList::new();
    for p in &out {
        let from = p
            .committed
            .unwrap_or(p.log_end)
            .min(p.log_end)
            .max(p.log_start);
        fetch.add_partition_offset(&p.topic, p.partition, Offset::Offset(from))?;
    }
    consumer.assign(&fetch)?;
    let deadline = Instant::now() + FETCH_WAIT;
    let mut waiting: Vec<usize> = (0..out.len()).collect();
    while !waiting.is_empty() && Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
        waiting.retain(|&i| {
            let p = &mut out[i];
            match super::fetched_log_end(consumer.client(), &p.topic, p.partition) {
                Some(end) => {
                    p.log_end = p.log_end.max(end);
                    p.end_fetched = true;
                    false
                }
                None => true,
            }
        });
    }
    consumer.unassign()?;
    Ok(out)
}

/// `group`'s state and members (`None` when the broker does not know it).
pub fn describe_group(
    base: &ClientConfig,
    group: &str,
) -> Result<Option<GroupDescription>, KafkaError> {
    let consumer = reader(base, group)?;
    let list = consumer.fetch_group_list(Some(group), ADMIN_TIMEOUT)?;
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map(|g| GroupDescription {
            state: g.state().to_string(),
            protocol: g.protocol().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| GroupMember {
                    id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    host: m.client_host().to_string(),
                    assignment: m
                        .assignment()
                        .and_then(parse_assignment)
                        .unwrap_or_default(),
                })
                .collect(),
        }))
}

/// Decodes a consumer protocol assignment: version (i16), then topics
/// (i32 count; each a string (i16 length) and i32 partitions), then user data.
fn parse_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut r = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (r.get(..n)?, r.get(n..)?);
        r = tail;
        Some(head)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let name = String::from_utf8(take(len.max(0) as usize)?.to_vec()).ok()?;
        let n = i32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut parts = Vec::new();
        for _ in 0..n.max(0) {
            parts.push(i32::from_be_bytes(take(4)?.try_into().ok()?));
        }
        out.push((name, parts));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_assignment_and_refuses_a_truncated_one() {
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 2];
        b.extend_from_slice(b"in");
        b.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(parse_assignment(&b), Some(vec![("in".into(), vec![0, 3])]));
        assert_eq!(parse_assignment(&b[..9]), None);
    }

    #[test]
    fn lag_counts_from_the_committed_offset_or_the_log_start() {
        let mut p = PartitionLag {
            topic: "t".into(),
            partition: 0,
            committed: Some(7),
            log_start: 2,
            log_end: 10,
            end_fetched: true,
        };
        assert_eq!(p.lag(), 3);
        p.committed = None;
        assert_eq!(p.lag(), 8);
    }
}
